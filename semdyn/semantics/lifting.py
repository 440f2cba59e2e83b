"""Lifting per-pixel object-ID maps onto Gaussians by a closed-form vote over top-k blend weights (as FlashSplat).

Every training view is rendered once without gradients; each pixel's K largest contributors (ids and blend weights
``w = alpha * T`` from :func:`semdyn.render.render`) add ``w`` to ``votes[gaussian, label of the pixel]``. A Gaussian's
label is the argmax of its accumulated weights; its confidence is that weight over its total weight. Label 0 (no
object / sky) takes part in the vote, so a floater seen mostly against the sky ends unlabelled.

Labels are arbitrary non-negative ints (GT instance ids or dictionary object-IDs, up to 65535); they are mapped onto
a compact index ``0..L-1`` by :func:`label_index` so the vote table is ``[N, L]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from rich.progress import track
from torch import Tensor

from semdyn.data.frame_cache import FrameCache
from semdyn.errors import InputError

LabelMaps = Sequence[Tensor] | Tensor | FrameCache
"""ID maps by view index: a list, a stacked [F, H, W] tensor, or a :class:`FrameCache` that reads them from disk."""


@dataclass
class LiftResult:
    """Per-Gaussian outcome of a lift. N Gaussians."""

    labels: Tensor
    """[N] int64 winning label value (in the ID maps' space); -1 where unlabelled (no votes, label 0, low conf)."""
    conf: Tensor
    """[N] float32 winning weight / total weight, in [0, 1] (0 where no votes)."""
    total_weight: Tensor
    """[N] float32 sum of the Gaussian's blend weights over all voted pixels (its visibility)."""


def label_index(label_map: Tensor, values: Tensor) -> Tensor:
    """Position of each pixel's label in the sorted ``values`` [L], -1 for labels not in it. Shape of label_map."""
    flat = label_map.reshape(-1).to(torch.int64)
    pos = torch.searchsorted(values, flat).clamp(max=len(values) - 1)
    found = values[pos] == flat
    return torch.where(found, pos, torch.full_like(pos, -1)).reshape(label_map.shape)


def _vote_pairs(
    topk_ids: Tensor, topk_weights: Tensor, label_idx: Tensor, n: int, caller: str
) -> tuple[Tensor, Tensor, Tensor]:
    """``(gaussian [P], label index [P], weight [P])`` of every (pixel, contributor) that votes."""
    if topk_ids.shape != topk_weights.shape or topk_ids.shape[:-1] != label_idx.shape:
        raise InputError(
            f"{caller}: topk_ids {list(topk_ids.shape)}, topk_weights {list(topk_weights.shape)} and "
            f"label_idx {list(label_idx.shape)} must agree ([..., K] and [...])"
        )
    ids = topk_ids.reshape(-1)
    w = topk_weights.reshape(-1)
    lab = label_idx.unsqueeze(-1).expand(topk_ids.shape).reshape(-1)
    keep = (ids >= 0) & (lab >= 0) & (w > 0)
    if bool((ids[keep] >= n).any()):
        raise InputError(f"{caller}: a contributor id exceeds the {n} Gaussians of the vote table")
    return ids[keep], lab[keep], w[keep]


def accumulate_votes(votes: Tensor, topk_ids: Tensor, topk_weights: Tensor, label_idx: Tensor) -> None:
    """Add one batch of pixels' top-k blend weights to the vote table, in place.

    Args:
        votes: [N, L] float accumulated weight per Gaussian and label index.
        topk_ids: [..., K] int64 contributor ids (-1 where fewer than K).
        topk_weights: [..., K] their blend weights.
        label_idx: [...] int64 label index of each pixel into 0..L-1 (-1: the pixel does not vote).
    """
    n, num_labels = votes.shape
    ids, lab, w = _vote_pairs(topk_ids, topk_weights, label_idx, n, "accumulate_votes")
    votes.view(-1).index_add_(0, ids * num_labels + lab, w.to(votes.dtype))


def decide(votes: Tensor, values: Tensor, min_conf: float = 0.0, background: int = 0) -> LiftResult:
    """Argmax of the vote table.

    Args:
        votes: [N, L] accumulated weights.
        values: [L] sorted label values of the columns.
        min_conf: Gaussians whose winning share is below this are unlabelled.
        background: the label value meaning "no object" (its winners are unlabelled).
    """
    total = votes.sum(dim=1)
    best_w, best = votes.max(dim=1)
    conf = torch.where(total > 0, best_w / total.clamp_min(1e-12), torch.zeros_like(total))
    labels = values[best]
    unlabelled = (total <= 0) | (conf < min_conf) | (labels == background)
    labels = torch.where(unlabelled, torch.full_like(labels, -1), labels)
    return LiftResult(labels=labels, conf=conf.float(), total_weight=total.float())


RenderTopK = Callable[[int], tuple[Tensor, Tensor]]
"""``view index -> (topk_ids [1, H, W, K], topk_weights [1, H, W, K])`` of that view, rendered without gradients."""


@torch.no_grad()
def lift_labels(
    render_topk: RenderTopK,
    label_maps: LabelMaps,
    views: Sequence[int],
    num_gaussians: int,
    values: Tensor | None = None,
    min_conf: float = 0.0,
    show_progress: bool = False,
) -> LiftResult:
    """One pass over the views: render top-k contributors, vote with each view's ID map, take the argmax.

    Args:
        render_topk: renders view i's top-k contributors (see :data:`RenderTopK`).
        label_maps: ID map per view index ([H, W] int; 0 = no object), indexed like ``views``' entries.
        views: the view indices to vote with (e.g. the training frames).
        num_gaussians: N.
        values: [L] sorted label values to vote over; default every value in the maps of ``views``.
        min_conf: see :func:`decide`.
        show_progress: show a progress bar.

    Returns:
        A :class:`LiftResult`. Memory is ``N * L`` floats for the vote table.
    """
    if len(views) == 0:
        raise InputError("lift_labels: no views to vote with")
    if values is None:
        values = torch.unique(torch.cat([torch.unique(label_maps[v]).to(torch.int64) for v in views]))
    values = values.to(torch.int64).sort().values
    votes: Tensor | None = None
    for v in track(views, "lifting labels", disable=not show_progress, transient=True):
        ids, weights = render_topk(v)
        if votes is None:
            votes = torch.zeros(num_gaussians, len(values), device=ids.device)
        lab = label_index(label_maps[v].to(ids.device), values.to(ids.device))
        accumulate_votes(votes, ids[0], weights[0], lab)
    assert votes is not None
    return decide(votes, values.to(votes.device), min_conf=min_conf)


@dataclass
class SparseVotes:
    """A vote table kept as its non-zero (Gaussian, label) pairs: for label sets too large for ``[N, L]`` (tracks).
    P pairs, N Gaussians, L labels."""

    gaussian: Tensor
    """[P] int64 Gaussian of each pair (pairs sorted by Gaussian, then label)."""
    label: Tensor
    """[P] int64 label index into ``values``."""
    weight: Tensor
    """[P] float32 accumulated blend weight."""
    values: Tensor
    """[L] sorted label values."""
    num_gaussians: int
    """N."""

    def collapse(self, column: Tensor, num_columns: int) -> Tensor:
        """[N, num_columns] dense table: each label's weight added into column ``column[label]`` ([L] int64)."""
        if column.shape != self.values.shape:
            raise InputError(
                f"SparseVotes.collapse: column must be [L] = [{len(self.values)}], got {list(column.shape)}"
            )
        out = torch.zeros(self.num_gaussians, num_columns, device=self.weight.device)
        keys = self.gaussian * num_columns + column.to(self.label.device)[self.label]
        out.view(-1).index_add_(0, keys, self.weight)
        return out


def _coalesce(keys: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted unique keys and the summed weight of each."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    return uniq, torch.zeros(len(uniq), dtype=weights.dtype, device=weights.device).index_add_(0, inverse, weights)


@torch.no_grad()
def lift_sparse_votes(
    render_topk: RenderTopK,
    label_maps: LabelMaps,
    views: Sequence[int],
    num_gaussians: int,
    values: Tensor | None = None,
    show_progress: bool = False,
) -> SparseVotes:
    """The vote of :func:`lift_labels` without the argmax, kept sparse (memory grows with the pairs that get
    weight, not with ``N * L``). Arguments as for :func:`lift_labels`."""
    if len(views) == 0:
        raise InputError("lift_sparse_votes: no views to vote with")
    if values is None:
        values = torch.unique(torch.cat([torch.unique(label_maps[v]).to(torch.int64) for v in views]))
    values = values.to(torch.int64).sort().values
    num_labels = len(values)
    keys: Tensor | None = None
    weights: Tensor | None = None
    for v in track(views, "lifting labels", disable=not show_progress, transient=True):
        ids, w = render_topk(v)
        lab = label_index(label_maps[v].to(ids.device), values.to(ids.device))
        g, lab_k, w_k = _vote_pairs(ids[0], w[0], lab, num_gaussians, "lift_sparse_votes")
        new_keys, new_w = g * num_labels + lab_k, w_k.float()
        if keys is not None and weights is not None:
            new_keys, new_w = torch.cat([keys, new_keys]), torch.cat([weights, new_w])
        keys, weights = _coalesce(new_keys, new_w)
    assert keys is not None and weights is not None
    return SparseVotes(
        gaussian=keys // num_labels,
        label=keys % num_labels,
        weight=weights,
        values=values.to(keys.device),
        num_gaussians=num_gaussians,
    )
