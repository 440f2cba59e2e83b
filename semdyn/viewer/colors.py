"""Stable colours for ids and heat maps for scalars, shared by the viewer outputs and the render script."""

from __future__ import annotations

import torch
from torch import Tensor

GOLDEN = 0.6180339887498949
UNLABELLED_GREY = 0.5


def id_colors(ids: Tensor) -> Tensor:
    """[N] integer ids -> [N, 3] RGB in [0, 1]; -1 (unlabelled) is grey.

    The hue of id k is ``frac(k * golden ratio)`` (neighbouring ids far apart on the colour wheel), with fixed
    saturation and value, so an id has the same colour in every frame, view and run.
    """
    hue = torch.remainder(ids.double() * GOLDEN + 0.05, 1.0).float()
    sat, val = 0.75, 0.95
    k = torch.remainder(hue[:, None] * 6.0 + torch.tensor([5.0, 3.0, 1.0], device=ids.device), 6.0)
    rgb = val - val * sat * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return torch.where((ids < 0)[:, None], torch.full_like(rgb, UNLABELLED_GREY), rgb)


def heat_map(values: Tensor, vmax: float | None = None) -> Tensor:
    """[...] non-negative scalars -> [..., 3] RGB in [0, 1] (black - red - yellow - white ramp).

    vmax: the value shown white; default the 99th percentile of ``values`` (1e-9 when all are 0).
    """
    if vmax is None:
        flat = values.reshape(-1).float()
        vmax = float(torch.quantile(flat[: 1 << 24], 0.99)) if flat.numel() else 1.0
    x = (values.float() / max(vmax, 1e-9)).clamp(0.0, 1.0)
    return torch.stack([(3 * x).clamp(max=1.0), (3 * x - 1).clamp(0.0, 1.0), (3 * x - 2).clamp(0.0, 1.0)], dim=-1)
