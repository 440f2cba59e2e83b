"""Grouping metrics: how well predicted Gaussian groups match ground-truth instances.

Both metrics take one label per Gaussian. Entries labelled ``ignore_label`` (default -1: "no group" in the
prediction, "no instance" in the ground truth, e.g. from ``semdyn.eval.motion.assign_to_objects``) in either
labelling are excluded from both labellings before scoring, so the metrics measure how the labelled Gaussians are
split, not how many are labelled. Pass ``ignore_label=None`` to score every entry, -1 included as an ordinary label.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from semdyn.errors import InputError

ArrayLike = Tensor | np.ndarray


def _labels(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integer labels, shape [N], got dtype {x.dtype}")
        x = torch.from_numpy(x.astype(np.int64))
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch tensor or numpy array of int labels, shape [N]")
    if torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool:
        raise InputError(f"{name} must hold integer labels, shape [N], got dtype {x.dtype}")
    if x.ndim != 1:
        raise InputError(f"{name} must have shape [N], got {list(x.shape)}")
    return x.to(torch.int64)


def _prepare(pred: Any, gt: Any, ignore_label: int | None) -> tuple[Tensor, Tensor]:
    """Validated labels with ignored entries removed, relabelled to ``0..K-1`` each: ``[M]``, ``[M]``."""
    p = _labels(pred, "pred")
    g = _labels(gt, "gt")
    if p.shape != g.shape:
        raise InputError(f"pred and gt must have the same shape [N], got {list(p.shape)} and {list(g.shape)}")
    g = g.to(p.device)
    if ignore_label is not None:
        keep = (p != ignore_label) & (g != ignore_label)
        p, g = p[keep], g[keep]
    p = torch.unique(p, return_inverse=True)[1]
    g = torch.unique(g, return_inverse=True)[1]
    return p, g


def _contingency(p: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse contingency table: the non-zero cells as (pred index ``[C]``, gt index ``[C]``, count ``[C]``)."""
    num_g = int(g.max()) + 1
    codes, counts = torch.unique(p * num_g + g, return_counts=True)
    return codes // num_g, codes % num_g, counts


def adjusted_rand_index(pred: ArrayLike, gt: ArrayLike, ignore_label: int | None = -1) -> float:
    """Adjusted Rand index between two labellings, as ``sklearn.metrics.adjusted_rand_score``.

    Computed from the pair-confusion matrix of the contingency table with exact integer arithmetic; 1 when the
    labellings agree up to a renaming, about 0 for independent random labellings, may be negative.

    Args:
        pred: ``[N]`` int predicted group per Gaussian.
        gt: ``[N]`` int ground-truth instance per Gaussian.
        ignore_label: entries with this label in either input are excluded (see the module docstring).

    Returns:
        ARI (unitless). NaN when no entry is left after exclusion.
    """
    p, g = _prepare(pred, gt, ignore_label)
    n = int(p.numel())
    if n == 0:
        return math.nan
    _, _, cells = _contingency(p, g)
    sum_cells_sq = int((cells * cells).sum())
    sum_pred_sq = int((torch.bincount(p) ** 2).sum())
    sum_gt_sq = int((torch.bincount(g) ** 2).sum())
    # pair confusion (ordered pairs), as sklearn.metrics.cluster.pair_confusion_matrix
    tp = sum_cells_sq - n
    fp = sum_pred_sq - sum_cells_sq  # together in pred, apart in gt
    fn = sum_gt_sq - sum_cells_sq  # apart in pred, together in gt
    tn = n * n - fp - fn - sum_cells_sq
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def purity(pred: ArrayLike, gt: ArrayLike, ignore_label: int | None = -1) -> float:
    """Purity of the predicted groups against ground-truth instances.

    For each predicted group, the fraction of its members in its majority ground-truth instance, averaged with the
    groups' sizes as weights: ``sum_groups max_instance |group & instance| / N``. 1 when every group lies within one
    instance (over-segmentation is not penalised; pair it with the ARI).

    Args:
        pred: ``[N]`` int predicted group per Gaussian.
        gt: ``[N]`` int ground-truth instance per Gaussian.
        ignore_label: entries with this label in either input are excluded (see the module docstring).

    Returns:
        Purity in [0, 1]. NaN when no entry is left after exclusion.
    """
    p, g = _prepare(pred, gt, ignore_label)
    n = int(p.numel())
    if n == 0:
        return math.nan
    rows, _, cells = _contingency(p, g)
    majority = torch.zeros(int(p.max()) + 1, dtype=torch.int64, device=p.device)
    majority = majority.scatter_reduce(0, rows, cells, reduce="amax")
    return int(majority.sum()) / n
