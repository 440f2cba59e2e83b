"""The conventions every layer shares, written once: camera axes, the degree-0 SH constant, and quaternions.

- Cameras: sequences on disk (nerfstudio's ``transforms.json``) hold OpenGL camera-to-world matrices (x right,
  y up, the camera looking down -z); the rasterisers take OpenCV ones (x right, y down, looking down +z). The two
  differ by :data:`OPENGL_TO_OPENCV` on the right, which is its own inverse:
  ``c2w_cv = c2w_gl @ OPENGL_TO_OPENCV`` and ``c2w_gl = c2w_cv @ OPENGL_TO_OPENCV``.
- Colour: a Gaussian's degree-0 spherical-harmonic coefficient ``sh0`` shows the colour ``sh0 * SH_C0 + 0.5``.
- Quaternions are ``(w, x, y, z)``, as gsplat's; every helper is pure, batched over leading dimensions and
  differentiable (except :func:`rotmat_to_quat`).

>>> import torch
>>> q = quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]), torch.pi / 2)
>>> torch.allclose(quat_to_rotmat(q) @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
True
>>> bool((OPENGL_TO_OPENCV @ OPENGL_TO_OPENCV == np.eye(4)).all())
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

OPENGL_TO_OPENCV: np.ndarray = np.diag([1.0, -1.0, -1.0, 1.0])
"""[4, 4] flip of the camera's y and z axes between OpenGL and OpenCV camera-to-world matrices (its own inverse)."""

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical-harmonic basis constant, 1 / (2 sqrt(pi))."""


def quat_identity(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Identity rotations (1, 0, 0, 0), shape [n, 4]."""
    q = torch.zeros(n, 4, device=device, dtype=dtype)
    q[:, 0] = 1.0
    return q


def quat_normalize(q: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit quaternions q / |q|, shape [..., 4] (a zero quaternion stays zero instead of turning into NaN)."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of [..., 4] quaternions (w, x, y, z); broadcasts like ``a + b``.

    For unit quaternions the rotation of the product is R(a) @ R(b): b is applied first, then a.
    """
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (normalised first, so any non-zero q works)."""
    w, x, y, z = quat_normalize(q).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(rot: Tensor) -> Tensor:
    """Unit quaternions [..., 4] (w, x, y, z; sign arbitrary) of rotation matrices [..., 3, 3] (Shepperd's method:
    from the largest of the four diagonal combinations, so never dividing by a small number). Not differentiated."""
    m = rot.detach()
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    candidates = torch.stack(  # [..., 4 candidates, 4]: each is 4 q_k q for k = w, x, y, z
        (
            torch.stack((1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20), -1),
            torch.stack((m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21), -1),
            torch.stack((m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22), -1),
        ),
        -2,
    )
    best = torch.diagonal(candidates, dim1=-2, dim2=-1).argmax(-1)  # [...]
    q = torch.take_along_dim(candidates, best[..., None, None].expand(*best.shape, 1, 4), dim=-2).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def quat_from_axis_angle(axis: Tensor, angle: Tensor | float) -> Tensor:
    """Unit quaternions [..., 4] rotating by ``angle`` radians (right-handed) about ``axis`` [..., 3]."""
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    half = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device) / 2
    return torch.cat((torch.cos(half)[..., None].expand(*axis.shape[:-1], 1), torch.sin(half)[..., None] * axis), -1)
