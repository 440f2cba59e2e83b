"""A camera path to render: poses, intrinsics and times, and nerfstudio's camera-path JSON in and out.

Poses are stored as the core renders them: OpenCV world-to-camera ``viewmats`` in the run's normalised (scene)
units, which are also nerfstudio's dataparser units (the core trainer normalises the world exactly as the
``semdyn-data`` dataparser), so a path exported from the viewer's render panel renders here unchanged.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.data.sequence import load_json
from semdyn.errors import DataFormatError, InputError

MAX_SIDE = 16384
"""Largest image side rendered, pixels."""
"""Flips y and z: nerfstudio/OpenGL camera axes <-> OpenCV camera axes (right-multiplied on camera-to-world)."""


@dataclass
class CameraPath:
    """M cameras to render, each at its own time."""

    viewmats: Tensor
    """[M, 4, 4] float32 world-to-camera, OpenCV (x right, y down, z forward), scene units."""
    Ks: Tensor
    """[M, 3, 3] float32 pinhole intrinsics, pixels."""
    times: Tensor
    """[M] float32 normalised times in [0, 1]."""
    width: int
    """Image width, pixels."""
    height: int
    """Image height, pixels."""

    def __post_init__(self) -> None:
        m = len(self.viewmats)
        if self.viewmats.shape != (m, 4, 4) or self.Ks.shape != (m, 3, 3) or self.times.shape != (m,):
            raise InputError(
                f"CameraPath: viewmats {tuple(self.viewmats.shape)}, Ks {tuple(self.Ks.shape)} and times "
                f"{tuple(self.times.shape)} must be [M, 4, 4], [M, 3, 3] and [M]"
            )
        if m == 0:
            raise InputError("CameraPath: the path has no cameras")
        for name, value in (("viewmats", self.viewmats), ("Ks", self.Ks), ("times", self.times)):
            if not bool(torch.isfinite(value).all()):
                raise InputError(f"CameraPath: {name} has NaN or infinite entries")
        if not (1 <= int(self.width) <= MAX_SIDE and 1 <= int(self.height) <= MAX_SIDE):
            raise InputError(f"CameraPath: image size {self.width}x{self.height} is not in 1..{MAX_SIDE} pixels")
        if not bool((self.Ks[:, 0, 0] > 0).all() and (self.Ks[:, 1, 1] > 0).all()):
            raise InputError("CameraPath: every focal length (Ks[:, 0, 0], Ks[:, 1, 1]) must be positive")

    def __len__(self) -> int:
        return len(self.viewmats)

    @property
    def camera_to_worlds(self) -> np.ndarray:
        """[M, 4, 4] float64 camera-to-world, OpenGL (nerfstudio) convention, scene units."""
        return np.linalg.inv(self.viewmats.double().numpy()) @ OPENGL_TO_OPENCV

    @classmethod
    def from_camera_to_worlds(cls, c2w: np.ndarray, Ks: np.ndarray | Tensor, times: np.ndarray, width: int,
                              height: int) -> CameraPath:  # fmt: skip
        """From OpenGL camera-to-world [M, 4, 4] (scene units), Ks [M, 3, 3] or [3, 3], times [M]."""
        c2w = np.asarray(c2w, dtype=np.float64)
        viewmats = torch.from_numpy(np.linalg.inv(c2w @ OPENGL_TO_OPENCV)).float()
        Ks = torch.as_tensor(np.asarray(Ks), dtype=torch.float32)
        Ks = Ks.expand(len(c2w), 3, 3).clone() if Ks.dim() == 2 else Ks
        return cls(viewmats, Ks, torch.as_tensor(np.asarray(times), dtype=torch.float32), int(width), int(height))


def write_camera_path_json(
    path: Path, camera_path: CameraPath, fps: float, extra: dict[str, Any] | None = None
) -> Path:
    """Write nerfstudio's camera-path JSON (what ``ns-render camera-path`` and the viewer's render panel read), with
    each camera's ``render_time``; atomically. The vertical field of view comes from fy; cx, cy are not stored."""
    c2w = camera_path.camera_to_worlds
    frames = []
    for i in range(len(camera_path)):
        fy = float(camera_path.Ks[i, 1, 1])
        frames.append({
            "camera_to_world": c2w[i].reshape(-1).tolist(),
            "fov": math.degrees(2 * math.atan(camera_path.height / (2 * fy))),
            "aspect": camera_path.width / camera_path.height,
            "render_time": float(camera_path.times[i]),
        })  # fmt: skip
    data = {"camera_type": "perspective", "render_height": camera_path.height, "render_width": camera_path.width,
            "fps": fps, "seconds": len(frames) / fps, "camera_path": frames, **(extra or {})}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return path


def read_camera_path_json(path: Path, default_time: float = 0.0) -> CameraPath:
    """Read nerfstudio's camera-path JSON (the viewer's render panel, ``ns-render camera-path``).

    Perspective only. Focal lengths from each camera's vertical ``fov`` (degrees), the principal point at the
    centre. Times from ``render_time`` when every camera has one, else the file's ``default_time``, else
    ``default_time``. Raises :class:`DataFormatError` naming the file and the field at fault.
    """
    data = load_json(path)
    try:
        width, height = int(data["render_width"]), int(data["render_height"])
        cameras = data["camera_path"]
        c2w = np.array([np.asarray(c["camera_to_world"], dtype=np.float64).reshape(4, 4) for c in cameras])
        fovs = np.array([float(c["fov"]) for c in cameras])
    except (KeyError, TypeError, ValueError) as err:
        raise DataFormatError(path, f"not a nerfstudio camera path (render_width, render_height, camera_path[]"
                                    f" with camera_to_world and fov): {type(err).__name__} {err}") from err  # fmt: skip
    if data.get("camera_type", "perspective") != "perspective":
        raise DataFormatError(path, f"camera_type {data['camera_type']!r}: only perspective paths are rendered")
    if len(cameras) == 0:
        raise DataFormatError(path, "camera_path is empty")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise DataFormatError(path, f"render_width x render_height {width}x{height} is not in 1..{MAX_SIDE} pixels")
    for i in range(len(cameras)):
        if not np.isfinite(c2w[i]).all():
            raise DataFormatError(path, f"camera_path[{i}].camera_to_world has NaN or infinite entries")
        rotation = c2w[i, :3, :3]
        if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-3 or np.linalg.det(rotation) <= 0:
            raise DataFormatError(path, f"camera_path[{i}].camera_to_world: the rotation part is not a rotation")
        if not 0 < fovs[i] < 180:
            raise DataFormatError(
                path, f"camera_path[{i}].fov {fovs[i]}: give a vertical field of view in (0, 180) degrees"
            )
    if all("render_time" in c for c in cameras):
        times = np.array([float(c["render_time"]) for c in cameras])
        if not np.isfinite(times).all():
            bad = int(np.flatnonzero(~np.isfinite(times))[0])
            raise DataFormatError(path, f"camera_path[{bad}].render_time {times[bad]} is not a number")
    else:
        fallback = data.get("default_time")
        times = np.full(len(cameras), float(default_time if fallback is None else fallback))
    focal = height / (2 * np.tan(np.radians(fovs) / 2))
    Ks = np.zeros((len(cameras), 3, 3))
    Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = focal, focal, width / 2, height / 2, 1.0
    return CameraPath.from_camera_to_worlds(c2w, Ks, np.clip(times, 0.0, 1.0), width, height)
