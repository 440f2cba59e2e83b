"""Object paths from the lifted groups: which groups move, which of their Gaussians are on the path, and the path
from which a rigid object node's first trajectory starts (:mod:`semdyn.scene.promotion`).

With temporal visibility a car's Gaussians are anchored at their capture times, all along the car's path: a
member anchored at ``a_i`` sits where the car was at ``a_i``. Regressing the members' centres on their anchor
times therefore gives the object's path ``c_g(t)``, with no tracker and no ground truth. The path's inlier members
become a rigid object node (object-local Gaussians on a learned SE(3) trajectory, :mod:`semdyn.scene.nodes.rigid`),
Street Gaussians' per-object pose with the track estimated from the lifted groups themselves.

The path is a penalised linear spline (P-spline): ``knots`` values per group, linear between them, fitted by
weighted least squares with a second-difference penalty (so gaps are bridged and the ends continued in a straight
line), made robust by reweighting (Cauchy weights at about the size of a car): Gaussians wrongly labelled with the
car (road under its path, a parked car it passed) neither drag the path nor ride it. A group moves when its path,
over the times it was seen, travels farther than ``min_travel`` times its own size; parked cars stay put.
Everything is segment sums over groups and one batched [G, K, K] solve per pass: no Python loop over groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from semdyn.deform.regularizers import GroupLabels, check_labels
from semdyn.errors import InputError


@dataclass(frozen=True)
class GroupMotionConfig:
    """How object paths are estimated from the groups (used only once lifting has produced groups)."""

    min_conf: float = 0.5
    """Members of rigid, non-static groups with a label confidence below this keep the deformation field."""
    knots: int = 12
    """Knots of each path, uniform over normalised time [0, 1]; the path is linear between them."""
    smoothness: float = 1.0
    """Weight of the second-difference penalty, relative to the group's data weight per knot."""
    inlier_radius: float = 2.0
    """Metres: the scale of the robust (Cauchy) weights of the fit, about half a car's length."""
    member_radius: float = 1.5
    """A candidate rides the path only if, at its anchor time, it lies within this many ``inlier_radius`` of its
    group's path; the others (most wrong labels) keep the deformation field."""
    iterations: int = 8
    """Reweighting passes of the robust fit."""
    min_travel: float = 1.0
    """A group moves when the extent of its path over the times it was seen exceeds this many times its size
    (twice its members' weighted RMS distance from the path)."""

    def __post_init__(self) -> None:
        if self.knots < 3:
            raise InputError(f"group_motion.knots must be at least 3, got {self.knots}")
        if self.iterations < 1:
            raise InputError(f"group_motion.iterations must be at least 1, got {self.iterations}")
        if self.smoothness < 0 or self.inlier_radius <= 0:
            raise InputError("group_motion.smoothness must be >= 0 and group_motion.inlier_radius > 0")


@dataclass(frozen=True)
class GroupPaths:
    """Estimated paths of G groups at K knots, and which Gaussians ride on them."""

    knots: Tensor
    """[K] normalised times, increasing, 0 to 1."""
    centre: Tensor
    """[G, K, 3] path of each group (scene units); meaningful where ``moving``."""
    moving: Tensor
    """[G] bool: the group travels (its members ride its path)."""
    members: Tensor
    """[N] bool: the Gaussians carried by their group's path (confident members of moving rigid groups)."""
    first: Tensor
    """[G] the earliest anchor (normalised time) of a group's inlier members (2 for groups with none)."""
    last: Tensor
    """[G] the latest anchor of a group's inlier members (-1 for groups with none)."""


def _hat(anchors: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(lo [M] int64, frac [M]): ``anchors`` (normalised time, clamped to [0, 1]) lie between knots lo and lo + 1 of
    ``k`` uniform knots, at ``frac`` of the way; the hat basis values are 1 - frac and frac."""
    u = anchors.clamp(0, 1) * (k - 1)
    lo = u.floor().long().clamp(max=k - 2)
    return lo, u - lo.to(u.dtype)


def _along(centre: Tensor, group: Tensor, lo: Tensor, frac: Tensor) -> Tensor:
    """[M, 3] points on the paths ``centre`` [G, K, 3] of ``group`` [M], at ``frac`` [M] of the way from knot ``lo``
    [M] to the next (as :func:`_hat` gives them)."""
    w = frac.to(centre.dtype)[:, None]
    return centre[group, lo] * (1 - w) + centre[group, lo + 1] * w


def _fit_spline(x: Tensor, lo: Tensor, frac: Tensor, w: Tensor, sid: Tensor, g: int, k: int, smooth: float) -> Tensor:
    """[G, K, 3] knot values minimising, per group, sum_i w_i |x_i - c(a_i)|^2 + lam_g |second differences of c|^2
    with lam_g = smooth * sum_i w_i / K. x [M, 3], lo/frac [M] (from :func:`_hat`), w [M], sid [M] group index."""
    dt = torch.float64
    x, frac, w = x.to(dt), frac.to(dt), w.to(dt)
    basis = torch.stack([1 - frac, frac], dim=1)  # [M, 2]
    cols = torch.stack([lo, lo + 1], dim=1)  # [M, 2]
    gram = torch.zeros(g * k * k, dtype=dt, device=x.device)
    for p in range(2):
        for q in range(2):
            flat = sid * k * k + cols[:, p] * k + cols[:, q]
            gram.index_add_(0, flat, w * basis[:, p] * basis[:, q])
    rhs = torch.zeros(g * k, 3, dtype=dt, device=x.device)
    for p in range(2):
        rhs.index_add_(0, sid * k + cols[:, p], (w * basis[:, p])[:, None] * x)
    second = torch.zeros(k - 2, k, dtype=dt, device=x.device)
    idx = torch.arange(k - 2, device=x.device)
    second[idx, idx], second[idx, idx + 1], second[idx, idx + 2] = 1.0, -2.0, 1.0
    total = torch.zeros(g, dtype=dt, device=x.device).index_add_(0, sid, w)
    lam = (smooth * total / k).clamp_min(1e-9)[:, None, None]
    system = gram.view(g, k, k) + lam * (second.T @ second) + 1e-9 * torch.eye(k, dtype=dt, device=x.device)
    return torch.linalg.solve(system, rhs.view(g, k, 3))


@torch.no_grad()
def estimate_paths(
    means: Tensor,
    anchors: Tensor,
    weights: Tensor,
    labels: GroupLabels,
    config: GroupMotionConfig,
    units_per_metre: float = 1.0,
) -> GroupPaths:
    """Each group's path from its members' canonical centres and visibility anchors.

    Args:
        means: [N, 3] canonical centres (scene units); a member's centre is where it is at its anchor time.
        anchors: [N] visibility anchors (normalised time).
        weights: [N] non-negative trust in each Gaussian (e.g. its opacity); multiplied by the label confidence.
        labels: the groups (rigid, non-static groups are candidates).
        config: see :class:`GroupMotionConfig`.
        units_per_metre: scene units per metre (the sequence's normalisation scale), for the metric radii.

    Returns:
        :class:`GroupPaths` (no gradient).
    """
    n = means.shape[0]
    if means.shape != (n, 3) or anchors.shape != (n,) or weights.shape != (n,) or labels.ids.shape != (n,):
        raise InputError(
            f"estimate_paths needs means [N, 3], anchors [N], weights [N] and labels of N Gaussians, got "
            f"{list(means.shape)}, {list(anchors.shape)}, {list(weights.shape)}, {list(labels.ids.shape)}"
        )
    check_labels(labels, n, means.device, values=True)
    dev, g, k = means.device, labels.num_groups, config.knots
    knots = torch.linspace(0.0, 1.0, k, device=dev, dtype=torch.float32)
    ids = labels.ids
    safe = ids.clamp(min=0)
    is_rigid, is_static = labels.is_rigid.to(dev), labels.is_static.to(dev)
    candidate = is_rigid[safe] & ~is_static[safe] & (ids >= 0) & (labels.conf >= config.min_conf)
    sel = candidate.nonzero().squeeze(1)
    x, a, sid = means[sel].double(), anchors[sel].double(), ids[sel]
    base = (weights[sel] * labels.conf[sel]).double()
    lo, frac = _hat(a, k)
    radius = config.inlier_radius * units_per_metre
    w = base
    for _ in range(config.iterations):  # IRLS with Cauchy weights: members far from the path stop pulling it
        centre = _fit_spline(x, lo, frac, w, sid, g, k, config.smoothness)
        residual = (x - _along(centre, sid, lo, frac)).norm(dim=-1)  # distance from the path at the anchor
        w = base / (1 + (residual / radius) ** 2)
    total = torch.zeros(g, dtype=w.dtype, device=dev).index_add_(0, sid, w)
    spread = torch.zeros(g, dtype=w.dtype, device=dev).index_add_(0, sid, w * residual.square())
    size = 2 * (spread / total.clamp_min(1e-12)).sqrt()  # [G]
    inlier = residual <= config.member_radius * radius
    first = torch.full((g,), 2.0, dtype=a.dtype, device=dev).scatter_reduce(0, sid[inlier], a[inlier], "amin")
    last = torch.full((g,), -1.0, dtype=a.dtype, device=dev).scatter_reduce(0, sid[inlier], a[inlier], "amax")
    seen = last > first
    span = torch.linspace(0, 1, 32, dtype=a.dtype, device=dev)
    t = (first[:, None] + (last - first).clamp_min(0)[:, None] * span[None]).clamp(0, 1)  # [G, 32]
    glo, gfrac = _hat(t.reshape(-1), k)
    gid = torch.arange(g, device=dev).repeat_interleave(32)
    trace = _along(centre, gid, glo, gfrac).view(g, 32, 3)
    extent = (trace.amax(1) - trace.amin(1)).norm(dim=-1)  # [G]
    moving = seen & (extent > config.min_travel * size) & is_rigid & ~is_static
    members = torch.zeros_like(candidate)
    members[sel] = inlier & moving[sid]
    return GroupPaths(knots, centre.to(means.dtype), moving, members, first.to(means.dtype), last.to(means.dtype))


def path_at(paths: GroupPaths, group: Tensor, t: Tensor) -> Tensor:
    """[M, 3] positions on the paths of ``group`` [M] (indices into G) at normalised times ``t`` [M], linear
    between knots and clamped to [0, 1]."""
    return _along(paths.centre, group, *_hat(t.float(), paths.knots.shape[0]))


__all__ = ["GroupMotionConfig", "GroupPaths", "estimate_paths", "path_at"]
