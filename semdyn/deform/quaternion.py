"""Quaternion helpers in the (w, x, y, z) convention that gsplat uses.

All functions are pure, batched over leading dimensions and differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor


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


def quat_from_axis_angle(axis: Tensor, angle: Tensor | float) -> Tensor:
    """Unit quaternions [..., 4] rotating by ``angle`` radians (right-handed) about ``axis`` [..., 3]."""
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    half = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device) / 2
    return torch.cat((torch.cos(half)[..., None].expand(*axis.shape[:-1], 1), torch.sin(half)[..., None] * axis), -1)
