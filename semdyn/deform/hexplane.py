"""HexPlane deformation field (as in 4DGaussians / K-Planes): six feature planes and small MLP heads.

The planes xy, xz, yz (spatial) and xt, yt, zt (space-time) are sampled bilinearly at a Gaussian's
normalised centre and the time, multiplied together (Hadamard product) per resolution and concatenated
over resolutions; a shared trunk and three heads turn the feature into dx, dr and ds.

Layout: spatial planes of one resolution are stored stacked as [3, D, R, R] (xy, xz, yz; grid_sample's
x = the first axis, y = the second); space-time planes as [3, D, T, R] (xt, yt, zt; rows = time,
columns = x, y or z). Spatial planes start uniform in (0.1, 0.5), space-time planes at one, so at
initialisation the feature depends on space only; the heads' last layers are zero, so the deformation
starts as the exact identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semdyn.deform.field import (
    Deformation,
    DeformationField,
    heads_to_deformation,
    make_head,
    normalize_to_aabb,
)
from semdyn.errors import InputError

SPATIAL_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))
"""Axes of the spatial planes xy, xz, yz (grid_sample x, grid_sample y)."""


@dataclass
class HexPlaneConfig:
    """HexPlane deformation field (the default). The defaults are a CPU-friendly version of 4DGaussians."""

    feature_dim: int = 16
    """Feature channels D of every plane (per resolution); the field's feature has D x len(multires) channels."""
    spatial_resolution: int = 32
    """Base resolution of the spatial axes (cells per axis of the scene box at multiplier 1)."""
    multires: tuple[int, ...] = (1, 2)
    """Multipliers of the spatial resolution, one set of six planes each (time resolution is not multiplied)."""
    time_resolution: int = 20
    """Samples along time, about half the number of frames (20 suits the 40-frame synthetic sequences); >= 2."""
    net_width: int = 64
    """Width W of the MLP trunk and heads."""
    trunk_depth: int = 1
    """Linear layers of the shared trunk (feature -> W, then W -> W)."""
    head_depth: int = 1
    """Hidden W -> W layers of each head before its zero-initialised output layer."""
    deform_position: bool = True
    """Predict the position offset dx (off: dx = 0)."""
    deform_rotation: bool = True
    """Predict the rotation delta dr (off: dr = identity)."""
    deform_scale: bool = True
    """Predict the log-scale delta ds (off: ds = 0)."""

    def setup(self, aabb: Tensor) -> HexPlaneField:
        """The field over the scene box ``aabb`` [2, 3] (scene units)."""
        return HexPlaneField(self, aabb)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first option out of range."""
        checks = [
            ("feature_dim", self.feature_dim >= 1, "at least 1"),
            ("spatial_resolution", self.spatial_resolution >= 2, "at least 2"),
            ("multires", len(self.multires) >= 1 and all(m >= 1 for m in self.multires), "non-empty, each >= 1"),
            ("time_resolution", self.time_resolution >= 2, "at least 2"),
            ("net_width", self.net_width >= 1, "at least 1"),
            ("trunk_depth", self.trunk_depth >= 1, "at least 1"),
            ("head_depth", self.head_depth >= 0, "at least 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"HexPlaneConfig.{name} must be {expected}, got {getattr(self, name)!r}")


def _time_row(planes: Tensor, t: float) -> Tensor:
    """Linear interpolation of space-time planes [P, D, T, R] along time (rows) at t in [0, 1] -> [P, D, R]."""
    pos = t * (planes.shape[2] - 1)
    i0 = min(int(math.floor(pos)), planes.shape[2] - 2)
    w = pos - i0
    return planes[:, :, i0] * (1.0 - w) + planes[:, :, i0 + 1] * w


def hexplane_features(xyz: Tensor, t: float, spatial: list[Tensor], temporal: list[Tensor]) -> Tensor:
    """HexPlane features of normalised points at one time.

    Args:
        xyz: [M, 3] positions in [-1, 1].
        t: time in [0, 1].
        spatial: per resolution, planes [3, D, R, R] (xy, xz, yz).
        temporal: per resolution, planes [3, D, T, R] (xt, yt, zt).

    Returns:
        [M, D * len(spatial)]: per resolution the product of the six bilinear samples, concatenated.

    Bilinear sampling is separable, so each space-time plane is first interpolated along time at t (one
    row, shared by all points) and then sampled along space: the same values as sampling the full plane
    at (x, 2t - 1), see :func:`_hexplane_features`, at a fraction of the cost.
    """
    m = xyz.shape[0]
    spatial_grid = xyz[:, list(SPATIAL_PAIRS)].permute(1, 0, 2).unsqueeze(1)  # [3, 1, M, 2]
    line_grid = torch.stack((xyz.T, torch.zeros_like(xyz.T)), dim=-1).unsqueeze(1)  # [3, 1, M, 2], y = 0
    feats = []
    for planes_s, planes_t in zip(spatial, temporal):
        f_s = F.grid_sample(planes_s, spatial_grid, mode="bilinear", align_corners=True)  # [3, D, 1, M]
        row = _time_row(planes_t, t).unsqueeze(2)  # [3, D, 1, R]
        f_t = F.grid_sample(row, line_grid, mode="bilinear", align_corners=True)  # [3, D, 1, M]
        f = f_s.prod(dim=0) * f_t.prod(dim=0)  # [D, 1, M]
        feats.append(f.reshape(-1, m).T)
    return torch.cat(feats, dim=-1)


def _hexplane_features(xyz: Tensor, t: float, spatial: list[Tensor], temporal: list[Tensor]) -> Tensor:
    """Reference of :func:`hexplane_features`: six full 2D ``grid_sample`` calls per resolution."""
    m = xyz.shape[0]
    tt = torch.full((m,), 2.0 * t - 1.0, dtype=xyz.dtype, device=xyz.device)
    feats = []
    for planes_s, planes_t in zip(spatial, temporal):
        f = torch.ones(planes_s.shape[1], m, dtype=xyz.dtype, device=xyz.device)
        for p, (a, b) in enumerate(SPATIAL_PAIRS):
            grid = torch.stack((xyz[:, a], xyz[:, b]), -1).view(1, 1, m, 2)
            f = f * F.grid_sample(planes_s[p : p + 1], grid, mode="bilinear", align_corners=True).view(-1, m)
        for axis in range(3):
            grid = torch.stack((xyz[:, axis], tt), -1).view(1, 1, m, 2)
            f = f * F.grid_sample(planes_t[axis : axis + 1], grid, mode="bilinear", align_corners=True).view(-1, m)
        feats.append(f.T)
    return torch.cat(feats, dim=-1)


def plane_tv(planes: list[Tensor]) -> Tensor:
    """Total variation of planes [P, D, H, W]: mean squared first difference along H plus along W, summed."""
    total = planes[0].new_zeros(())
    for p in planes:
        total = total + (p[..., 1:, :] - p[..., :-1, :]).square().mean() + (p[..., 1:] - p[..., :-1]).square().mean()
    return total


def time_smoothness(planes: list[Tensor]) -> Tensor:
    """Mean squared second difference along time (H) of space-time planes [P, D, T, R], summed over the list."""
    total = planes[0].new_zeros(())
    for p in planes:
        if p.shape[-2] >= 3:
            total = total + (p[..., 2:, :] - 2.0 * p[..., 1:-1, :] + p[..., :-2, :]).square().mean()
    return total


def time_l1(planes: list[Tensor]) -> Tensor:
    """Mean |1 - value| of space-time planes [P, D, T, R], summed over the list (zero = no time dependence)."""
    total = planes[0].new_zeros(())
    for p in planes:
        total = total + (1.0 - p).abs().mean()
    return total


class HexPlaneField(DeformationField):
    """HexPlane features of (x, y, z, t) -> shared MLP trunk -> heads for dx, dr, ds."""

    def __init__(self, config: HexPlaneConfig, aabb: Tensor) -> None:
        super().__init__(aabb)
        config.validate()
        self.config = config
        d, t_res = config.feature_dim, config.time_resolution
        self.spatial = nn.ParameterList()
        self.temporal = nn.ParameterList()
        for mult in config.multires:
            r = config.spatial_resolution * mult
            self.spatial.append(nn.Parameter(torch.empty(3, d, r, r).uniform_(0.1, 0.5)))
            self.temporal.append(nn.Parameter(torch.ones(3, d, t_res, r)))
        w = config.net_width
        trunk: list[nn.Module] = [nn.Linear(d * len(config.multires), w)]
        for _ in range(config.trunk_depth - 1):
            trunk += [nn.ReLU(), nn.Linear(w, w)]
        self.trunk = nn.Sequential(*trunk)
        self.dx_head = make_head(w, 3, config.head_depth) if config.deform_position else None
        self.dr_head = make_head(w, 4, config.head_depth) if config.deform_rotation else None
        self.ds_head = make_head(w, 3, config.head_depth) if config.deform_scale else None

    def features(self, means: Tensor, t: float) -> Tensor:
        """HexPlane features [M, D * len(multires)] of centres [M, 3] (scene units) at time t in [0, 1]."""
        return hexplane_features(normalize_to_aabb(means, self.aabb), t, list(self.spatial), list(self.temporal))

    def deform(self, means: Tensor, t: float) -> Deformation:
        hidden = self.trunk(self.features(means, t))
        return heads_to_deformation(hidden, self.dx_head, self.dr_head, self.ds_head)

    def regularization(self) -> dict[str, Tensor]:
        """4DGaussians' plane terms, unweighted: "plane_tv", "time_smoothness", "time_l1"."""
        return {
            "plane_tv": plane_tv(list(self.spatial)),
            "time_smoothness": time_smoothness(list(self.temporal)),
            "time_l1": time_l1(list(self.temporal)),
        }

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """ "deform_grid": the planes; "deform_mlp": trunk and heads (4DGaussians uses a 10x larger lr on planes)."""
        grid = [*self.spatial, *self.temporal]
        ids = {id(p) for p in grid}
        return {"deform_grid": grid, "deform_mlp": [p for p in self.parameters() if id(p) not in ids]}
