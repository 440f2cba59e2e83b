"""Camera trajectories through a sequence's world: the test views, a spline through the training cameras, the ego
path moved sideways (lane shift), an orbit at a frozen time (bullet time) and a fixed camera with time sweeping.

All in scene (normalised) units and the OpenGL camera-to-world convention of :class:`CameraPath`; the up axis of
the world is +z (converters write z-up metres and the normalisation keeps the axes). The ego path is the path of
one reference camera of the rig (default the first camera), one pose per timestamp: the rig is rigid, so its
lateral axis is the ego's. Lateral = up x forward, i.e. positive offsets move to the ego's left.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline

from semdyn.data.scene_data import SceneData
from semdyn.errors import InputError
from semdyn.paths.camera_path import CameraPath

UP = np.array([0.0, 0.0, 1.0])


def dataset_path(data: SceneData, indices: np.ndarray) -> CameraPath:
    """The frames ``indices`` of the sequence at their own cameras and times (e.g. the test split)."""
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise InputError("dataset trajectory: no frames selected (is the test split empty?)")
    return CameraPath(
        data.viewmats[idx].clone(), data.Ks[idx].clone(), data.times[idx].clone(), data.width, data.height
    )


def ego_frames(data: SceneData, camera: str | None = None, indices: np.ndarray | None = None) -> np.ndarray:
    """Frame indices of the reference camera (default the first), one per timestamp, in time order.

    indices: restrict to these frames (e.g. the training split).
    """
    seq = data.sequence
    name = seq.cameras[0] if camera is None else camera
    if name not in seq.cameras:
        raise InputError(f"--camera {name!r}: the sequence's cameras are {list(seq.cameras)}")
    frames = np.flatnonzero(seq.camera_indices == seq.cameras.index(name))
    if indices is not None:
        frames = np.intersect1d(frames, np.asarray(indices))
    return frames[np.argsort(data.times[frames].numpy(), kind="stable")]


def c2w_of(data: SceneData, frames: np.ndarray) -> np.ndarray:
    """[M, 4, 4] OpenGL camera-to-world of the given frames (scene units)."""
    return CameraPath(
        data.viewmats[frames], data.Ks[frames], data.times[frames], data.width, data.height
    ).camera_to_worlds


def lateral_axes(c2w: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    """[M, 3] unit lateral (left) axes of an ego path c2w [M, 4, 4]: ``up x forward``, forward being the horizontal
    direction of travel (np.gradient of the centres), or the camera's horizontal viewing direction where the ego
    does not move."""
    centres = c2w[:, :3, 3]
    travel = np.gradient(centres, axis=0) if len(c2w) > 1 else np.zeros_like(centres)
    view = -c2w[:, :3, 2]  # OpenGL cameras look down -z
    forward = np.where((np.linalg.norm(travel, axis=1) > 1e-9)[:, None], travel, view)
    forward = forward - (forward @ up)[:, None] * up
    norms = np.linalg.norm(forward, axis=1, keepdims=True)
    if np.any(norms < 1e-9):
        raise InputError("lane shift: the ego's forward direction is vertical; no lateral axis")
    lateral = np.cross(up, forward / norms)
    return lateral / np.linalg.norm(lateral, axis=1, keepdims=True)


def lane_shift(c2w: np.ndarray, offset: float, up: np.ndarray = UP) -> np.ndarray:
    """The poses c2w [M, 4, 4] moved by ``offset`` (scene units; > 0 to the left) along the ego's lateral axis."""
    out = c2w.copy()
    out[:, :3, 3] += offset * lateral_axes(c2w, up)
    return out


def spline_path(c2w: np.ndarray, times: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A C2-smooth path through poses c2w [M, 4, 4] at times [M] (ascending): cubic splines of the centres and a
    rotation spline, sampled at ``num_frames`` times evenly spaced between the first and last; (c2w, times)."""
    if len(c2w) < 2:
        raise InputError("interpolate: needs at least two cameras to pass through")
    key = np.arange(len(c2w), dtype=np.float64)
    s = np.linspace(0.0, key[-1], num_frames)
    out = np.tile(np.eye(4), (num_frames, 1, 1))
    out[:, :3, 3] = CubicSpline(key, c2w[:, :3, 3], axis=0)(s)
    out[:, :3, :3] = RotationSpline(key, Rotation.from_matrix(c2w[:, :3, :3]))(s).as_matrix()
    return out, np.interp(s, key, times)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    """[4, 4] OpenGL camera-to-world at ``eye`` looking at ``target`` with ``up`` up."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right)
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = right, np.cross(back, right), back, eye
    return out


def orbit_path(reference: np.ndarray, distance: float, degrees: float, num_frames: int,
               up: np.ndarray = UP) -> np.ndarray:  # fmt: skip
    """Bullet time: [num_frames, 4, 4] cameras swinging through +-degrees/2 about the vertical axis through the
    point ``distance`` (scene units) in front of the reference camera [4, 4], all looking at that point."""
    eye = reference[:3, 3]
    view = -reference[:3, 2]
    target = eye + distance * view
    arm = eye - target
    out = []
    for a in np.radians(np.linspace(-degrees / 2, degrees / 2, num_frames)):
        R = Rotation.from_rotvec(a * up).as_matrix()
        out.append(look_at(target + R @ arm, target, up))
    return np.stack(out)
