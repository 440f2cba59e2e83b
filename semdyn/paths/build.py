"""Build a :class:`CameraPath` for one of the render script's trajectories from a loaded sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from semdyn.data.scene_data import SceneData
from semdyn.errors import InputError
from semdyn.paths.camera_path import CameraPath, read_camera_path_json
from semdyn.paths.trajectories import c2w_of, dataset_path, ego_frames, lane_shift, orbit_path, spline_path

Kind = Literal["dataset", "interpolate", "lane-shift", "frozen", "timelapse", "camera-path"]


@dataclass(frozen=True)
class PathOptions:
    """Options of the trajectories (each reads the ones it needs)."""

    camera: str | None = None
    """Reference camera of the rig (the ego path); default the sequence's first camera."""
    num_frames: int = 120
    """Frames of interpolate, frozen and timelapse."""
    offset: float = 2.0
    """lane-shift: metres along the ego's lateral axis (> 0: left)."""
    time: float = 0.5
    """frozen: the normalised time held fixed; timelapse: picks the camera (the reference pose at this time)."""
    orbit_degrees: float = 40.0
    """frozen: total swing of the orbit, degrees."""
    orbit_distance: float = 12.0
    """frozen: metres from the reference camera to the orbit's centre (straight ahead)."""
    camera_path: Path | None = None
    """camera-path: a nerfstudio camera-path JSON (the viewer's render panel)."""


def _nearest_frame(data: SceneData, frames: np.ndarray, t: float) -> int:
    if not 0.0 <= t <= 1.0:
        raise InputError(f"--time {t}: give a normalised time in [0, 1]")
    return int(frames[np.argmin(np.abs(data.times[frames].numpy() - t))])


def check_path_options(opts: PathOptions) -> None:
    """Refuse, naming the flag, options no trajectory can use: a frame count below 1, a non-finite number."""
    if isinstance(opts.num_frames, bool) or not isinstance(opts.num_frames, int) or not 1 <= opts.num_frames <= 100_000:
        raise InputError(f"--num-frames {opts.num_frames!r}: give a number of frames in 1..100000")
    for name in ("offset", "time", "orbit_degrees", "orbit_distance"):
        value = getattr(opts, name)
        if not math.isfinite(value):
            raise InputError(f"--{name.replace('_', '-')} {value}: give a finite number")
    if opts.orbit_distance <= 0:
        raise InputError(f"--orbit-distance {opts.orbit_distance}: give a positive distance in metres")


def build_path(kind: Kind, data: SceneData, opts: PathOptions) -> CameraPath:
    """The cameras and times of trajectory ``kind`` in the run's scene units (metres scaled by the normalisation)."""
    check_path_options(opts)
    if kind == "dataset":
        return dataset_path(data, data.test_idx.numpy())
    if kind == "camera-path":
        if opts.camera_path is None:
            raise InputError("camera-path: give --camera-path <file.json>")
        return read_camera_path_json(opts.camera_path)
    frames = ego_frames(data, opts.camera)
    K = data.Ks[frames[0]]
    times = data.times[frames].numpy()
    if kind == "interpolate":
        train = ego_frames(data, opts.camera, data.train_idx.numpy())
        c2w, t = spline_path(c2w_of(data, train), data.times[train].numpy(), opts.num_frames)
        return CameraPath.from_camera_to_worlds(c2w, K, t, data.width, data.height)
    if kind == "lane-shift":
        shifted = lane_shift(c2w_of(data, frames), opts.offset * data.normalization.scale)
        return CameraPath.from_camera_to_worlds(shifted, K, times, data.width, data.height)
    reference = c2w_of(data, np.array([_nearest_frame(data, frames, opts.time)]))[0]
    if kind == "frozen":
        c2w = orbit_path(reference, opts.orbit_distance * data.normalization.scale, opts.orbit_degrees, opts.num_frames)
        return CameraPath.from_camera_to_worlds(c2w, K, np.full(opts.num_frames, opts.time), data.width, data.height)
    if kind == "timelapse":
        c2w = np.repeat(reference[None], opts.num_frames, axis=0)
        return CameraPath.from_camera_to_worlds(c2w, K, np.linspace(0, 1, opts.num_frames), data.width, data.height)
    raise InputError(f"unknown trajectory {kind!r}")
