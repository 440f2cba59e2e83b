"""Separating objects that match one prompt: connected components of same-label Gaussians in 3D.

Two cars matched by "a photo of a car" carry the same object-ID after lifting; their Gaussians are apart in space,
so each connected component (26-neighbourhood on a voxel grid of edge ``voxel``) becomes its own instance. Pure
torch: occupied (label, voxel) cells are linked to their neighbours once, then component ids propagate by min-label
passes with pointer jumping until they settle.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from semdyn.errors import InputError


def _neighbour_edges(keys: Tensor, strides: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """(src, dst) index pairs of occupied cells [M] (sorted unique keys) that are 26-neighbours."""
    src, dst = [], []
    m = torch.arange(len(keys), device=keys.device)
    for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3):
        if (dx, dy, dz) == (0, 0, 0):
            continue
        nk = keys + dx * strides[0] + dy * strides[1] + dz * strides[2]
        pos = torch.searchsorted(keys, nk).clamp(max=len(keys) - 1)
        found = keys[pos] == nk
        src.append(m[found])
        dst.append(pos[found])
    return torch.cat(src), torch.cat(dst)


def connected_components(means: Tensor, labels: Tensor, voxel: float, min_size: int = 1) -> tuple[Tensor, Tensor]:
    """Split each label's Gaussians into spatially connected instances.

    Args:
        means: [N, 3] positions (any unit; ``voxel`` in the same unit).
        labels: [N] int64 label per Gaussian (-1: none, stays -1).
        voxel: cell edge; Gaussians in the same or adjacent cells (26-neighbourhood) are connected.
        min_size: components with fewer Gaussians are dropped (their Gaussians get -1).

    Returns:
        ``(instance [N] int64 in 0..I-1 or -1, instance_label [I] int64 the label of each instance)``.
    """
    if means.dim() != 2 or means.shape[1] != 3 or labels.shape != means.shape[:1]:
        raise InputError(
            f"connected_components: means must be [N, 3] and labels [N], got {list(means.shape)}, {list(labels.shape)}"
        )
    if voxel <= 0:
        raise InputError(f"connected_components: voxel must be positive, got {voxel}")
    out = torch.full_like(labels, -1)
    sel = torch.nonzero(labels >= 0).squeeze(1)
    if sel.numel() == 0:
        return out, torch.zeros(0, dtype=torch.int64, device=labels.device)
    cell = torch.floor(means[sel].double() / voxel).to(torch.int64)
    cell = cell - cell.min(0).values + 1  # padded by one on each side: neighbour keys never wrap
    dims = cell.max(0).values + 2
    strides = (int(dims[1] * dims[2]), int(dims[2]), 1)
    lab = labels[sel]
    keys = lab * int(dims.prod()) + cell[:, 0] * strides[0] + cell[:, 1] * strides[1] + cell[:, 2]
    ukeys, inverse = torch.unique(keys, return_inverse=True)
    src, dst = _neighbour_edges(ukeys, strides)
    comp = torch.arange(len(ukeys), device=labels.device)
    while True:
        new = comp.scatter_reduce(0, src, comp[dst], reduce="amin")
        new = new[new]  # pointer jumping
        if torch.equal(new, comp):
            break
        comp = new
    gauss_comp = comp[inverse]
    uniq, inst, counts = torch.unique(gauss_comp, return_inverse=True, return_counts=True)
    keep = counts >= min_size
    remap = torch.full((len(uniq),), -1, dtype=torch.int64, device=labels.device)
    remap[keep] = torch.arange(int(keep.sum()), device=labels.device)
    out[sel] = remap[inst]
    first = torch.zeros(len(uniq), dtype=torch.int64, device=labels.device).scatter_(0, inst, lab)
    return out, first[keep]
