"""Matching mask embeddings to a dictionary: cosine similarity, a threshold, and a margin over the runner-up."""

from __future__ import annotations

import torch
from torch import Tensor

from semdyn.errors import InputError


def match_to_dictionary(
    embeddings: Tensor, text: Tensor, threshold: float = 0.2, margin: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Object-ID of each mask: the best prompt when its similarity clears ``threshold`` and beats the runner-up by
    ``margin``, else 0 (no match).

    Args:
        embeddings: [M, D] unit-norm mask embeddings.
        text: [P, D] unit-norm prompt embeddings (prompt p is object-ID p + 1).
        threshold: minimum cosine similarity of the best prompt.
        margin: minimum difference between the best and the second-best similarity.

    Returns:
        ``(ids [M] int64 in 0..P, best similarity [M] float)``.
    """
    if embeddings.dim() != 2 or text.dim() != 2 or embeddings.shape[1] != text.shape[1]:
        raise InputError(
            f"match_to_dictionary: embeddings [M, D] and text [P, D] must share D, got {list(embeddings.shape)} "
            f"and {list(text.shape)}"
        )
    if embeddings.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0)
    sims = embeddings.float() @ text.float().T  # [M, P]
    top = sims.topk(min(2, sims.shape[1]), dim=1).values
    best, idx = sims.max(dim=1)
    second = top[:, 1] if top.shape[1] > 1 else torch.full_like(best, -float("inf"))
    ok = (best >= threshold) & (best - second >= margin)
    return torch.where(ok, idx + 1, torch.zeros_like(idx)), best


def paint_id_map(masks: Tensor, ids: Tensor) -> Tensor:
    """[H, W] int64 object-ID map from masks [M, H, W] bool (largest first) and their ids [M]: smaller masks are
    painted over larger ones; unmatched masks (id 0) paint nothing; 0 where no matched mask covers a pixel."""
    out = torch.zeros(masks.shape[1:], dtype=torch.int64)
    for m in range(masks.shape[0]):
        if int(ids[m]) > 0:
            out[masks[m]] = int(ids[m])
    return out


def mask_index_map(masks: Tensor) -> Tensor:
    """[H, W] int64 index of the smallest mask covering each pixel (masks largest first), -1 where none: the
    pixel's CLIP feature is that mask's embedding."""
    out = torch.full(masks.shape[1:], -1, dtype=torch.int64)
    for m in range(masks.shape[0]):
        out[masks[m]] = m
    return out
