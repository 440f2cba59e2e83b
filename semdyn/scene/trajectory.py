"""Smooth SE(3) trajectories of O rigid objects: uniform cubic B-splines on translation and on rotation vectors.

An object's pose at normalised time t in [0, 1] is ``T(t) = [R(t) | c(t)]`` (object-to-world, scene units): ``c(t)``
is a uniform cubic B-spline of K control points ``[O, K, 3]`` and ``R(t) = exp([r(t)]_x)`` with ``r(t)`` a uniform
cubic B-spline of K rotation-vector control points ``[O, K, 3]`` (radians). Both are C2 in time: velocity and
acceleration are continuous, unlike piecewise-linear paths. A rotation-vector spline is exact for rotation about a
fixed axis (a car turning on a flat road, the common case) and smooth elsewhere below a half turn away from the
identity; yaw is unwrapped when it is initialised, so a car turning by more than 180 degrees stays smooth too.

The K control points span [0, 1] uniformly in the curve's parameter: segment ``i`` of the K - 3 segments covers
``t in [i, i + 1] / (K - 3)`` and blends control points i..i+3. Times outside [0, 1] are clamped.

Everything is batched over objects and times: no Python loop over objects.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from semdyn.errors import InputError

_CUBIC = (
    torch.tensor(
        [[1.0, 4.0, 1.0, 0.0], [-3.0, 0.0, 3.0, 0.0], [3.0, -6.0, 3.0, 0.0], [-1.0, 3.0, -3.0, 1.0]],
        dtype=torch.float64,
    )
    / 6.0
)
"""Uniform cubic B-spline basis: ``[1, s, s^2, s^3] @ _CUBIC`` gives the four blend weights at s in [0, 1]."""


def bspline_weights(t: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Where times ``t`` [M] (normalised, clamped to [0, 1]) fall on a uniform cubic B-spline of ``k`` >= 4 control
    points: ``(first [M] int64, weights [M, 4])``; the curve at t is ``sum_j weights[:, j] * ctrl[first + j]``."""
    if k < 4:
        raise InputError(f"a cubic B-spline needs at least 4 control points, got {k}")
    segments = k - 3
    u = t.clamp(0.0, 1.0) * segments
    first = u.floor().long().clamp(max=segments - 1)
    s = (u - first.to(u.dtype))[:, None]
    powers = torch.cat([torch.ones_like(s), s, s * s, s * s * s], dim=1)  # [M, 4]
    return first, powers @ _CUBIC.to(powers)


def bspline_matrix(t: Tensor, k: int) -> Tensor:
    """[M, K] dense blend matrix of times ``t`` [M]: the curve at the times is ``matrix @ ctrl``."""
    first, w = bspline_weights(t, k)
    out = torch.zeros(t.shape[0], k, dtype=w.dtype, device=t.device)
    cols = first[:, None] + torch.arange(4, device=t.device)[None]
    return out.scatter_add_(1, cols, w)


def bspline_eval(ctrl: Tensor, objects: Tensor, t: Tensor) -> Tensor:
    """[M, D] values of the splines ``ctrl`` [O, K, D] of ``objects`` [M] (indices into O) at times ``t`` [M]."""
    first, w = bspline_weights(t.to(ctrl.dtype), ctrl.shape[1])
    cols = first[:, None] + torch.arange(4, device=ctrl.device)[None]  # [M, 4]
    return (ctrl[objects[:, None], cols] * w[..., None].to(ctrl.dtype)).sum(1)


def fit_bspline(t: Tensor, values: Tensor, weights: Tensor, k: int, ridge: float = 1e-3, order: int = 2) -> Tensor:
    """Control points ``[O, K, D]`` whose splines best fit ``values`` [O, M, D] at times ``t`` [M] with ``weights``
    [O, M] (least squares plus ``ridge`` times the squared ``order``-th differences of the control points, which
    bridges times without data: second differences hold the track straight, third ones let it keep turning, so a
    steady turn's ends are not straightened). One batched K x K solve."""
    if order not in (2, 3) or k <= order:
        raise InputError(f"fit_bspline: order must be 2 or 3 and below k = {k}, got {order}")
    basis = bspline_matrix(t.to(values.dtype), k)  # [M, K]
    gram = torch.einsum("om,mi,mj->oij", weights, basis, basis)
    rhs = torch.einsum("om,mi,omd->oid", weights, basis, values)
    stencil = (1.0, -2.0, 1.0) if order == 2 else (-1.0, 3.0, -3.0, 1.0)
    diff = torch.zeros(k - order, k, dtype=values.dtype, device=values.device)
    idx = torch.arange(k - order, device=values.device)
    for offset, c in enumerate(stencil):
        diff[idx, idx + offset] = c
    scale = weights.sum(1).clamp_min(1e-12)[:, None, None] / k
    system = gram + ridge * scale * (diff.T @ diff) + 1e-9 * torch.eye(k, dtype=values.dtype, device=values.device)
    return torch.linalg.solve(system, rhs)


def so3_exp(rotvec: Tensor) -> Tensor:
    """[..., 3, 3] rotation matrices of rotation vectors ``rotvec`` [..., 3] (axis times angle, radians; Rodrigues,
    with the Taylor series near zero so that the gradient is finite at the identity).

    >>> import math
    >>> r = so3_exp(torch.tensor([0.0, 0.0, math.pi / 2]))  # a quarter turn about z takes x to y
    >>> torch.allclose(r @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    True
    >>> round(float(so3_angle(r)), 6) == round(math.pi / 2, 6)
    True
    """
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    hat = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(hat)
    return eye + a * hat + b * (hat @ hat)


def so3_angle(rot: Tensor) -> Tensor:
    """[...] rotation angles (radians, in [0, pi]) of rotation matrices ``rot`` [..., 3, 3]."""
    trace = rot.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0))


def unwrap_angles(angle: Tensor) -> Tensor:
    """``angle`` [..., M] (radians) made continuous along its last axis (steps folded into (-pi, pi])."""
    step = torch.remainder(torch.diff(angle, dim=-1) + math.pi, 2 * math.pi) - math.pi
    return torch.cat([angle[..., :1], angle[..., :1] + step.cumsum(-1)], dim=-1)


def fill_nearest_valid(values: Tensor, valid: Tensor) -> Tensor:
    """``values`` [..., M] with each entry where ``valid`` [..., M] is False replaced by the nearest valid one along
    the last axis (0 where a row has none)."""
    m = values.shape[-1]
    pos = torch.arange(m, device=values.device)
    dist = (pos[:, None] - pos[None]).abs().to(values.dtype).expand(*values.shape[:-1], m, m)
    dist = torch.where(valid[..., None, :], dist, torch.full_like(dist, math.inf))
    out = values.gather(-1, dist.argmin(-1))
    return torch.where(valid.any(-1, keepdim=True), out, torch.zeros_like(out))


def nearest_index(values: Tensor, grid: Tensor) -> Tensor:
    """[P] int64 index into ``grid`` [T] (any order, repeats allowed) of the entry nearest each of ``values`` [P]:
    ``(values[:, None] - grid[None]).abs().argmin(1)``, ties to the lowest index as there, in O(P + T) memory
    (that ``[P, T]`` table is gigabytes for a long sequence's LiDAR points against its frame times).

    >>> nearest_index(torch.tensor([0.1, 0.5, 2.0]), torch.tensor([1.0, 0.0, 0.0]))  # 0.5: a tie, the lower index
    tensor([1, 0, 0])
    """
    if grid.numel() == 0:
        raise ValueError("nearest_index: empty grid")
    grid = grid.to(values)
    ordered, order = torch.sort(grid, stable=True)  # equal entries keep their order: a run starts at its lowest index
    t = ordered.numel()
    above = torch.searchsorted(ordered, values).clamp(max=t - 1)  # first entry >= value (or the last)
    below = torch.searchsorted(ordered, ordered[(above - 1).clamp(min=0)])  # start of the run just below
    d_above, d_below = (values - ordered[above]).abs(), (values - ordered[below]).abs()
    pick_above = (d_above < d_below) | ((d_above == d_below) & (order[above] < order[below]))
    return order[torch.where(pick_above, above, below)]


def second_difference(ctrl: Tensor) -> Tensor:
    """[O, K - 2, D] second differences of control points ``ctrl`` [O, K, D] (the spline's acceleration, up to the
    factor (K - 3)^2)."""
    return ctrl[:, 2:] - 2 * ctrl[:, 1:-1] + ctrl[:, :-2]


__all__ = [
    "nearest_index",
    "bspline_eval",
    "bspline_matrix",
    "bspline_weights",
    "fill_nearest_valid",
    "fit_bspline",
    "second_difference",
    "so3_angle",
    "so3_exp",
    "unwrap_angles",
]
