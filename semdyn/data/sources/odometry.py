"""Ego poses from the LiDAR itself: scan-to-map odometry for recordings without GPS/IMU poses.

`lidar_odometry` registers each sweep (in the sensor frame) to the ones before it and returns the sensor's pose
at every sweep relative to the first. kiss-icp (Vizzo et al., RA-L 2023, made for and benchmarked on KITTI) does
the work when it is installed; otherwise open3d's point-to-plane ICP registers each sweep to the previous one with
a constant-velocity initial guess (less accurate over long drives: it has no local map).

Poses are ``first_sensor_from_sensor`` [N, 4, 4]: the first is the identity, metres, the sensor's own axes (KITTI's
Velodyne: x forward, y left, z up).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rich.progress import track

from semdyn.errors import InputError

log = logging.getLogger("semdyn")

Backend = Literal["auto", "kiss-icp", "open3d"]


@dataclass(frozen=True)
class OdometryOptions:
    """How the LiDAR odometry registers sweeps."""

    backend: Backend = "auto"
    """``kiss-icp`` (default when installed), ``open3d`` (scan-to-scan ICP), or ``auto`` (the first installed)."""
    max_range: float = 80.0
    """Returns farther than this from the sensor are ignored for registration, metres."""
    min_range: float = 2.5
    """Returns nearer than this are ignored (the ego vehicle's own body), metres."""
    voxel_size: float | None = None
    """Map voxel size, metres; default max_range / 100 (kiss-icp's rule)."""

    def validate(self) -> None:
        """Raise `InputError` naming the first bad option."""
        if self.backend not in ("auto", "kiss-icp", "open3d"):
            raise InputError(f"--odometry.backend must be auto, kiss-icp or open3d, got {self.backend!r}")
        if not (0.0 <= self.min_range < self.max_range):
            raise InputError(
                f"--odometry.min-range and --odometry.max-range must satisfy 0 <= min < max, "
                f"got {self.min_range} and {self.max_range}"
            )
        if self.voxel_size is not None and not self.voxel_size > 0:
            raise InputError(f"--odometry.voxel-size must be positive, got {self.voxel_size}")


def resolve_backend(backend: Backend) -> Literal["kiss-icp", "open3d"]:
    """The backend ``backend`` names, checked to be importable. Raises `InputError` when it is not."""
    have_kiss = importlib.util.find_spec("kiss_icp") is not None
    have_o3d = importlib.util.find_spec("open3d") is not None
    if backend == "auto":
        if have_kiss:
            return "kiss-icp"
        if have_o3d:
            return "open3d"
        raise InputError("LiDAR odometry needs kiss-icp or open3d, and neither is installed: pip install kiss-icp")
    if backend == "kiss-icp" and not have_kiss:
        raise InputError("--odometry.backend kiss-icp: kiss-icp is not installed (pip install kiss-icp)")
    if backend == "open3d" and not have_o3d:
        raise InputError("--odometry.backend open3d: open3d is not installed (pip install open3d)")
    return backend


def lidar_odometry(
    scans: Sequence[Callable[[], np.ndarray]], options: OdometryOptions = OdometryOptions()
) -> np.ndarray:
    """Poses of the LiDAR at each sweep relative to the first.

    Args:
        scans: per sweep, a loader returning its points in the sensor frame, float [P, 3] metres (loaded one by one,
            so a long drive never sits in memory whole).
        options: backend and ranges.

    Returns:
        first_sensor_from_sensor, float64 [N, 4, 4] (the first is the identity).
    """
    options.validate()
    if not scans:
        raise InputError("LiDAR odometry needs at least one sweep")
    backend = resolve_backend(options.backend)
    voxel = options.voxel_size if options.voxel_size is not None else options.max_range / 100.0
    register = _kiss_icp(options, voxel) if backend == "kiss-icp" else _open3d_icp(options, voxel)
    poses = [register(np.asarray(load(), dtype=np.float64)) for load in track(scans, f"LiDAR odometry ({backend})")]
    out = np.stack(poses)
    return np.linalg.inv(out[0]) @ out


def _in_range(points: np.ndarray, options: OdometryOptions) -> np.ndarray:
    points = points[np.isfinite(points).all(axis=1)]
    distance = np.linalg.norm(points, axis=1)
    return points[(distance >= options.min_range) & (distance <= options.max_range)]


def _kiss_icp(options: OdometryOptions, voxel: float) -> Callable[[np.ndarray], np.ndarray]:
    from kiss_icp.config import KISSConfig
    from kiss_icp.kiss_icp import KissICP

    config = KISSConfig()
    config.data.max_range = options.max_range
    config.data.min_range = options.min_range
    config.data.deskew = False  # sweeps come without per-point times
    config.mapping.voxel_size = voxel
    config.registration.max_num_threads = 1  # a shared CPU; a sweep takes tens of milliseconds anyway
    odometry = KissICP(config)

    def register(points: np.ndarray) -> np.ndarray:
        odometry.register_frame(np.ascontiguousarray(points[:, :3]), np.zeros(0))
        return odometry.last_pose.copy()

    return register


def _open3d_icp(options: OdometryOptions, voxel: float) -> Callable[[np.ndarray], np.ndarray]:
    import open3d as o3d

    registration = o3d.pipelines.registration
    state: dict[str, Any] = {"previous": None, "pose": np.eye(4), "delta": np.eye(4)}

    def cloud(points: np.ndarray) -> o3d.geometry.PointCloud:
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(_in_range(points, options)))
        pcd = pcd.voxel_down_sample(voxel)
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=4.0 * voxel, max_nn=30))
        return pcd

    def register(points: np.ndarray) -> np.ndarray:
        current = cloud(points)
        previous = state["previous"]
        if previous is not None:
            guess = state["delta"]  # constant velocity: last step's motion
            for distance in (6.0 * voxel, 2.0 * voxel):  # coarse, then fine
                result = registration.registration_icp(
                    current,
                    previous,
                    distance,
                    guess,
                    registration.TransformationEstimationPointToPlane(),
                    registration.ICPConvergenceCriteria(max_iteration=50),
                )
                guess = result.transformation
            state["delta"] = np.asarray(guess)
            state["pose"] = state["pose"] @ state["delta"]
        state["previous"] = current
        return np.array(state["pose"])

    return register
