"""Pinhole cameras in the nerfstudio/OpenGL convention: intrinsics, pixel rays, projection.

A pixel (column u, row v) covers [u, u + 1) x [v, v + 1); its ray goes through the centre (u + 0.5, v + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from semdyn.conventions import OPENGL_TO_OPENCV

"""Flips the y and z axes: OpenGL camera axes (right, up, back) <-> OpenCV (right, down, forward)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics with zero distortion."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @staticmethod
    def from_fov(width: int, height: int, horizontal_fov_deg: float) -> Intrinsics:
        """Square pixels, principal point at the image centre."""
        f = width / (2.0 * math.tan(math.radians(horizontal_fov_deg) / 2.0))
        return Intrinsics(f, f, width / 2.0, height / 2.0, width, height)

    def as_json(self) -> dict[str, float | int]:
        """The per-frame intrinsics fields of transforms.json (OPENCV model, zero distortion)."""
        return {
            "fl_x": self.fx,
            "fl_y": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "w": self.width,
            "h": self.height,
            "k1": 0.0,
            "k2": 0.0,
            "p1": 0.0,
            "p2": 0.0,
        }


def pixel_rays(intr: Intrinsics, cam_to_world_gl: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    """Rays through every pixel centre, scaled so that the ray parameter t equals the z-depth.

    Args:
        intr: intrinsics.
        cam_to_world_gl: [4, 4] camera-to-world, OpenGL camera axes.
        device: torch device.

    Returns:
        origin [3] and directions [H * W, 3] (row-major pixel order) in the world.
    """
    v, u = torch.meshgrid(
        torch.arange(intr.height, dtype=torch.float32, device=device),
        torch.arange(intr.width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    x = (u.reshape(-1) + 0.5 - intr.cx) / intr.fx
    y = (v.reshape(-1) + 0.5 - intr.cy) / intr.fy
    dirs_cv = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    rot = torch.as_tensor(cam_to_world_gl[:3, :3] @ OPENGL_TO_OPENCV[:3, :3], dtype=torch.float32, device=device)
    origin = torch.as_tensor(cam_to_world_gl[:3, 3], dtype=torch.float32, device=device)
    return origin, dirs_cv @ rot.T


def world_to_cv(cam_to_world_gl: np.ndarray) -> np.ndarray:
    """World-to-camera in OpenCV axes from an OpenGL camera-to-world.  [4, 4] -> [4, 4]."""
    c2w = cam_to_world_gl.copy()
    c2w[:3, :3] = c2w[:3, :3] @ OPENGL_TO_OPENCV[:3, :3]
    return np.linalg.inv(c2w)


def project(points: np.ndarray, cam_to_world_gl: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Project world points with a transforms.json camera.

    Args:
        points: [N, 3] world points.
        cam_to_world_gl: [4, 4] transform_matrix (OpenGL axes).
        intr: intrinsics.

    Returns:
        uv [N, 2] continuous pixel coordinates (pixel (u, v) covers [u, u + 1)) and z-depth [N].
    """
    w2c = world_to_cv(cam_to_world_gl)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
    uv = np.stack([intr.fx * pc[:, 0] / safe + intr.cx, intr.fy * pc[:, 1] / safe + intr.cy], axis=-1)
    return uv, z
