"""Canonical 3D Gaussians: initialisation, activations and one optimiser per attribute.

The parameters live in a :class:`torch.nn.ParameterDict` in gsplat's naming, so that gsplat's
densification strategies (:mod:`semdyn.scene.strategy`) can grow and prune them:

- ``means``     [N, 3]        centres in world coordinates (metres)
- ``quats``     [N, 4]        rotations (w, x, y, z), not necessarily unit
- ``scales``    [N, 3]        log of the standard deviations along the local axes (log metres)
- ``opacities`` [N]           logit of the opacity
- ``sh0``       [N, 1, 3]     degree-0 spherical-harmonic coefficient (the DC term)
- ``shN``       [N, K - 1, 3] higher-degree coefficients, K = (sh_degree + 1) ** 2
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from semdyn.conventions import SH_C0
from semdyn.errors import InputError

"""The degree-0 spherical-harmonic basis constant, 1 / (2 sqrt(pi))."""

PARAM_KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN")
"""The keys of the parameter dict that :func:`init_gaussians` returns, in order."""


@dataclass(frozen=True)
class GaussianInitConfig:
    """How the canonical Gaussians are initialised."""

    sh_degree: int = 3
    """Largest spherical-harmonic degree stored per Gaussian (0-3); shN holds (sh_degree + 1) ** 2 - 1 bands."""
    initial_opacity: float = 0.1
    """Opacity (after the sigmoid, in (0, 1)) every Gaussian starts with."""
    scale_multiplier: float = 1.0
    """Initial scale = this times the mean distance to the ``knn`` nearest neighbours (then log)."""
    knn: int = 3
    """Number of nearest neighbours whose mean distance sets a Gaussian's initial scale."""
    min_scale: float = 1e-4
    """Floor on the initial scale (metres), so that duplicate points do not get log(0)."""
    random_count: int = 50_000
    """Number of Gaussians drawn uniformly in the scene box when there are no points."""
    random_extent: float = 1.0
    """Fraction of the scene box (about its centre, per axis) that random Gaussians fill; 1 = the whole box."""
    max_points: int = 200_000
    """At most this many points are used; a larger cloud is subsampled (see ``subsample``)."""
    subsample: Literal["random", "voxel"] = "random"
    """How a cloud of more than ``max_points`` is thinned. ``random``: a uniform random subset. ``voxel``: one
    random point per cell of the coarsest cubic grid that still has at least ``max_points`` occupied cells, then a
    random subset of those. A driving log scans static structure again at every frame while a moving car leaves
    its points at a new place each time, so the voxel grid drops repeated scans and keeps the traffic."""
    random_quats: bool = True
    """True: rotations uniformly random on SO(3) (as splatfacto); False: identity (1, 0, 0, 0)."""


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient whose colour is ``rgb``: (rgb - 0.5) / SH_C0. [..., 3] -> [..., 3].

    >>> sh0_to_rgb(rgb_to_sh0(torch.tensor([0.2, 0.5, 1.0])))
    tensor([0.2000, 0.5000, 1.0000])
    """
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_sh0`: sh0 * SH_C0 + 0.5. [..., 3] -> [..., 3]."""
    return sh0 * SH_C0 + 0.5


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int | None = None) -> Tensor:
    """Mean Euclidean distance of each point to its ``k`` nearest other points (exact).

    Brute force in chunks of ``chunk`` rows with :func:`torch.cdist` on the points' device (fast on a
    GPU; about 1 s for 10k points on two CPU cores, quadratic). On the CPU, clouds of more than 8192
    points use ``scipy.spatial.cKDTree`` when scipy is importable (same result, ~0.3 s for 100k points);
    scipy is optional, not a dependency.

    Args:
        points: [P, 3] positions (metres), P > k.
        k: number of neighbours.
        chunk: rows per cdist block (memory is chunk * P floats); None: at most 1024 rows and 2**26 floats.

    Returns:
        [P] mean distances (metres), same dtype and device as ``points``.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise InputError(f"knn_mean_distance: points must have shape [P, 3], got {list(points.shape)}")
    n = points.shape[0]
    if n <= k:
        raise InputError(f"knn_mean_distance: points must hold more than k={k} points, got {n}")
    if points.device.type == "cpu" and n > 8192:
        try:
            # scipy re-exports it from a compiled module without a stub, where ty finds no such member
            from scipy.spatial import cKDTree  # ty: ignore[missing-module-member]
        except ImportError:
            pass
        else:
            pts = points.detach().double().numpy()
            dist, _ = cKDTree(pts).query(pts, k=k + 1)
            return torch.from_numpy(dist[:, 1:].mean(axis=1)).to(points.dtype)
    x = points.detach()
    x = x - x.mean(dim=0)  # smaller magnitudes, better float precision
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    if chunk is None:
        chunk = max(1, min(1024, 2**26 // n))
    for s in range(0, n, chunk):
        # The matrix-product form of cdist loses precision for small distances far from the origin.
        d = torch.cdist(x[s : s + chunk], x, compute_mode="donot_use_mm_for_euclid_dist")
        # The k + 1 smallest include the point itself (distance 0); drop the smallest.
        out[s : s + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, 1:].mean(dim=1)
    return out


def random_quats(n: int, generator: torch.Generator | None = None) -> Tensor:
    """[n, 4] unit quaternions (w, x, y, z) uniform on SO(3) (Shoemake's method), on the CPU."""
    u, v, w = torch.rand(3, n, generator=generator)
    a, b = torch.sqrt(1 - u), torch.sqrt(u)
    return torch.stack(
        [
            a * torch.sin(2 * math.pi * v),
            a * torch.cos(2 * math.pi * v),
            b * torch.sin(2 * math.pi * w),
            b * torch.cos(2 * math.pi * w),
        ],
        dim=-1,
    )


def _check_inputs(points: Tensor | None, colors: Tensor | None, aabb: Tensor, config: GaussianInitConfig) -> None:
    if not isinstance(aabb, Tensor) or aabb.shape != (2, 3) or not aabb.is_floating_point():
        raise InputError(f"init_gaussians: aabb must be a float tensor of shape [2, 3] (min, max), got {aabb!r}")
    if not bool((aabb[1] > aabb[0]).all()):
        raise InputError(f"init_gaussians: aabb must have max > min on every axis, got {aabb.tolist()}")
    if not 0 <= config.sh_degree <= 3:
        raise InputError(f"init_gaussians: config.sh_degree must be 0, 1, 2 or 3, got {config.sh_degree}")
    if not 0.0 < config.initial_opacity < 1.0:
        raise InputError(f"init_gaussians: config.initial_opacity must be in (0, 1), got {config.initial_opacity}")
    if points is None:
        if colors is not None:
            raise InputError("init_gaussians: colors were given without points")
        if config.random_count <= config.knn:
            raise InputError(f"init_gaussians: config.random_count must exceed knn={config.knn}")
        return
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 3 or not points.is_floating_point():
        raise InputError(f"init_gaussians: points must be a float tensor of shape [P, 3], got {_desc(points)}")
    if points.shape[0] <= config.knn:
        raise InputError(f"init_gaussians: points must hold more than knn={config.knn} points, got {points.shape[0]}")
    if colors is not None:
        if not isinstance(colors, Tensor) or colors.shape != points.shape:
            raise InputError(f"init_gaussians: colors must have shape [P, 3] like points, got {_desc(colors)}")
        if colors.dtype != torch.uint8 and not colors.is_floating_point():
            raise InputError(f"init_gaussians: colors must be uint8 or float in [0, 1], got {colors.dtype}")
        if colors.is_floating_point() and colors.numel() and (colors.min() < 0 or colors.max() > 1):
            raise InputError("init_gaussians: float colors must lie in [0, 1] (pass uint8 for 0-255)")


def _desc(t: object) -> str:
    return f"{list(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__


def voxel_representatives(points: Tensor, voxel: float, generator: torch.Generator | None = None) -> Tensor:
    """Index of one random point per occupied cubic cell of side ``voxel`` (same units as ``points`` [P, 3]).

    Returns:
        int64 [V] indices into ``points``, one per occupied cell, in increasing cell order.
    """
    order = torch.randperm(points.shape[0], generator=generator)
    cells = torch.floor(points[order] / voxel).long()
    _, inverse = torch.unique(cells, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), points.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(points.shape[0]), reduce="amin")
    return order[first]


def subsample_points(
    points: Tensor, count: int, mode: str = "random", generator: torch.Generator | None = None
) -> Tensor:
    """Indices of ``count`` of ``points`` [P, 3] (P > count), chosen as :attr:`GaussianInitConfig.subsample` says.

    ``voxel`` bisects (in log space, 20 steps) for the coarsest cell size with at least ``count`` occupied cells.

    Returns:
        int64 [count] distinct indices into ``points``.
    """
    if mode == "voxel":
        extent = float((points.max(0).values - points.min(0).values).max().clamp_min(1e-12))
        lo, hi = extent * 1e-6, extent  # lo: (practically) every point its own cell; hi: a single cell
        best = torch.arange(points.shape[0])
        for _ in range(20):
            mid = math.sqrt(lo * hi)
            reps = voxel_representatives(points, mid, generator)
            if reps.numel() >= count:
                lo, best = mid, reps
            else:
                hi = mid
        pick = torch.randperm(best.numel(), generator=generator)[:count]
        return best[pick]
    if mode != "random":
        raise InputError(f"GaussianInitConfig.subsample must be 'random' or 'voxel', got {mode!r}")
    return torch.randperm(points.shape[0], generator=generator)[:count]


def init_gaussians(
    points: Tensor | None,
    colors: Tensor | None,
    aabb: Tensor,
    config: GaussianInitConfig = GaussianInitConfig(),
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.nn.ParameterDict:
    """Canonical Gaussians from a point cloud (SfM or LiDAR), or random ones in the scene box.

    Each point becomes one Gaussian: isotropic scale from the mean distance to its ``config.knn``
    nearest neighbours, opacity ``config.initial_opacity``, colour from ``colors`` in the DC band
    (random when ``colors`` is None) and zero higher bands. Rotations are uniformly random unit
    quaternions, or the identity when ``config.random_quats`` is False (isotropic scales make the
    choice matter only once the scales diverge).

    Args:
        points: [P, 3] world positions (metres), or None for ``config.random_count`` random ones
            uniform in the central ``config.random_extent`` of ``aabb``.
        colors: [P, 3] uint8 (0-255) or float in [0, 1], or None.
        aabb: [2, 3] scene box (min row, max row), metres.
        config: initialisation options.
        device: where the parameters are created.
        generator: CPU random generator for the subsample, random points, colours and rotations
            (None: torch's global one).

    Returns:
        A ParameterDict with ``means [N, 3]``, ``quats [N, 4]``, ``scales [N, 3]`` (log),
        ``opacities [N]`` (logit), ``sh0 [N, 1, 3]``, ``shN [N, K - 1, 3]`` (zeros), K = (sh_degree + 1) ** 2.
    """
    _check_inputs(points, colors, aabb, config)
    if points is None:
        lo, hi = aabb.detach().float().cpu()
        centre, half = (lo + hi) / 2, (hi - lo) / 2 * config.random_extent
        n = config.random_count
        means = centre + (2 * torch.rand(n, 3, generator=generator) - 1) * half
        rgb = None
    else:
        means = points.detach().cpu().float().clone()  # never train in place the caller's points
        rgb = None if colors is None else colors.detach().cpu()
        if means.shape[0] > config.max_points:
            keep = subsample_points(means, config.max_points, config.subsample, generator)
            means = means[keep]
            rgb = None if rgb is None else rgb[keep]
        n = means.shape[0]
    if rgb is None:
        rgb = torch.rand(n, 3, generator=generator)
    elif rgb.dtype == torch.uint8:
        rgb = rgb.float() / 255.0
    rgb = rgb.float()
    quats = random_quats(n, generator) if config.random_quats else torch.tensor([1.0, 0, 0, 0]).repeat(n, 1)
    dist = knn_mean_distance(means.to(device), config.knn).cpu()
    log_scale = torch.log((dist * config.scale_multiplier).clamp_min(config.min_scale))
    n_rest = (config.sh_degree + 1) ** 2 - 1
    tensors = {
        "means": means,
        "quats": quats,
        "scales": log_scale[:, None].repeat(1, 3),
        "opacities": torch.full((n,), math.log(config.initial_opacity / (1 - config.initial_opacity))),
        "sh0": rgb_to_sh0(rgb)[:, None, :],
        "shN": torch.zeros(n, n_rest, 3),
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device).contiguous()) for k, v in tensors.items()})


def activated(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The rasteriser's inputs from the raw parameters, differentiable.

    Returns:
        ``means [N, 3]``, ``quats [N, 4]`` (normalised), ``scales [N, 3]`` (exp, metres),
        ``opacities [N]`` (sigmoid), ``colors [N, K, 3]`` (sh0 and shN concatenated).
    """
    return {
        "means": params["means"],
        "quats": F.normalize(params["quats"], dim=-1),
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "colors": torch.cat([params["sh0"], params["shN"]], dim=1),
    }


@dataclass(frozen=True)
class LearningRates:
    """Adam learning rates per Gaussian attribute (gsplat simple_trainer / splatfacto defaults)."""

    means: float = 1.6e-4
    """Initial learning rate of the centres, multiplied by the scene scale (metres per step per unit scale)."""
    means_final: float = 1.6e-6
    """Learning rate of the centres at ``max_steps`` (times the scene scale); decays exponentially to it."""
    scales: float = 5e-3
    """Learning rate of the log scales."""
    quats: float = 1e-3
    """Learning rate of the quaternions."""
    opacities: float = 5e-2
    """Learning rate of the opacity logits."""
    sh0: float = 2.5e-3
    """Learning rate of the DC colour band."""
    shN: float = 2.5e-3 / 20
    """Learning rate of the higher SH bands."""


def make_optimizers(
    params: Mapping[str, torch.nn.Parameter] | torch.nn.ParameterDict,
    lrs: LearningRates = LearningRates(),
    scene_scale: float = 1.0,
    extra_lrs: Mapping[str, float] | None = None,
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (eps 1e-15, as gsplat), keyed like ``params``, as gsplat's strategies expect.

    Args:
        params: the Gaussian parameters (keys of :data:`PARAM_KEYS`, plus any in ``extra_lrs``).
        lrs: learning rates of the standard attributes.
        scene_scale: scene radius (metres); multiplies the learning rate of ``means``.
        extra_lrs: learning rates of further per-Gaussian parameters (e.g. features), by key.
    """
    extra = dict(extra_lrs or {})
    out: dict[str, torch.optim.Adam] = {}
    for key, p in params.items():
        if key == "means":
            lr = lrs.means * scene_scale
        elif key in extra:
            lr = extra[key]
        elif key in PARAM_KEYS:
            lr = getattr(lrs, key)
        else:
            raise InputError(f"make_optimizers: params has key {key!r} with no learning rate; pass it in extra_lrs")
        out[key] = torch.optim.Adam([{"params": [p], "lr": lr, "name": key}], eps=1e-15)
    return out


def means_lr_scheduler(
    optimizer: torch.optim.Optimizer, lrs: LearningRates, max_steps: int
) -> torch.optim.lr_scheduler.ExponentialLR:
    """Exponential decay of the centres' learning rate from ``lrs.means`` to ``lrs.means_final`` over
    ``max_steps`` calls of ``scheduler.step()`` (once per training step), as gsplat's simple_trainer."""
    if max_steps <= 0:
        raise InputError(f"means_lr_scheduler: max_steps must be positive, got {max_steps}")
    gamma = (lrs.means_final / lrs.means) ** (1.0 / max_steps)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
