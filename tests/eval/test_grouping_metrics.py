"""Grouping metrics against sklearn and hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from semdyn.errors import InputError
from semdyn.eval.grouping import adjusted_rand_index, purity


@pytest.mark.parametrize("seed", range(8))
def test_ari_equals_sklearn_on_random_labelings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    gt = rng.integers(0, int(rng.integers(1, 12)), n)
    pred = rng.integers(0, int(rng.integers(1, 12)), n) * 7 + 3  # arbitrary label values
    if seed % 2:  # correlated labelings
        pred = np.where(rng.random(n) < 0.7, gt * 5, pred)
    ours = adjusted_rand_index(torch.from_numpy(pred), torch.from_numpy(gt), ignore_label=None)
    assert abs(ours - adjusted_rand_score(gt, pred)) < 1e-12
    assert abs(adjusted_rand_index(pred, gt, ignore_label=None) - ours) < 1e-15  # numpy input


def test_ari_large_n_is_exact() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, 50_000)
    pred = np.where(rng.random(gt.size) < 0.9, gt, rng.integers(0, 5, gt.size))
    assert abs(adjusted_rand_index(pred, gt) - adjusted_rand_score(gt, pred)) < 1e-12


def test_ari_hand_cases() -> None:
    gt = torch.tensor([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(gt, gt) == 1.0
    assert adjusted_rand_index(torch.tensor([5, 5, 9, 9, 1, 1]), gt) == 1.0  # permuted labels
    # everything in one group against singletons: ARI 0 (no pair agrees beyond chance)
    assert adjusted_rand_index(torch.zeros(6, dtype=torch.int64), torch.arange(6)) == 0.0
    assert adjusted_rand_index(torch.arange(6), torch.zeros(6, dtype=torch.int64)) == 0.0
    # sklearn's documented example: [0, 0, 1, 2] vs [0, 0, 1, 1] -> 0.57
    assert abs(adjusted_rand_index(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1])) - 0.5714285714) < 1e-9


def test_unlabelled_entries_are_excluded() -> None:
    gt = torch.tensor([0, 0, 1, 1, -1, -1, 2])
    pred = torch.tensor([4, 4, 6, 6, 4, 6, -1])  # -1 in gt and -1 in pred both dropped -> perfect
    assert adjusted_rand_index(pred, gt) == 1.0
    assert purity(pred, gt) == 1.0
    kept = torch.tensor([True, True, True, True, False, False, False])
    with_unlabelled = adjusted_rand_index(pred, gt, ignore_label=None)
    assert with_unlabelled < 1.0 and abs(with_unlabelled - adjusted_rand_score(gt.numpy(), pred.numpy())) < 1e-12
    assert adjusted_rand_index(pred[kept], gt[kept], ignore_label=None) == 1.0
    assert math.isnan(adjusted_rand_index(torch.full((3,), -1), torch.arange(3)))
    assert math.isnan(purity(torch.arange(3), torch.full((3,), -1)))


def test_purity_hand_cases() -> None:
    gt = torch.tensor([0, 0, 0, 1, 1, 2])
    assert purity(gt, gt) == 1.0
    assert purity(torch.arange(6), gt) == 1.0  # singletons are pure
    assert purity(torch.zeros(6, dtype=torch.int64), gt) == 3 / 6  # one group: majority instance has 3
    # groups {0,1,3} (majority 0: 2) and {2,4,5} (majority any: 1) -> (2 + 1) / 6
    assert purity(torch.tensor([7, 7, 8, 7, 8, 8]), gt) == 3 / 6
    # groups {0,1,2,3} (3 of instance 0) and {4,5} (1 each) -> (3 + 1) / 6
    assert purity(np.array([1, 1, 1, 1, 2, 2]), gt.numpy()) == 4 / 6


@pytest.mark.parametrize(
    "pred,gt",
    [
        (torch.zeros(3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64)),
        (torch.zeros(3), torch.zeros(3, dtype=torch.int64)),
        (torch.zeros(3, 1, dtype=torch.int64), torch.zeros(3, 1, dtype=torch.int64)),
        ([0, 1], [0, 1]),
    ],
)
def test_bad_labels_raise(pred, gt) -> None:
    with pytest.raises(InputError):
        adjusted_rand_index(pred, gt)
    with pytest.raises(InputError):
        purity(pred, gt)
