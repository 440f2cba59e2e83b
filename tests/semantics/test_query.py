"""relevancy(): high where a feature matches the query, 0.5 when it is equally like the negative."""

from __future__ import annotations

import pytest
import torch

from semdyn.errors import InputError
from semdyn.semantics.query import relevancy


def test_relevancy_orders_matches_above_non_matches() -> None:
    pos, neg = torch.tensor([1.0, 0, 0]), torch.tensor([[0.0, 1, 0], [0.0, 0, 1]])
    feats = torch.tensor([[1.0, 0, 0], [0.0, 1, 0], [1.0, 1, 0]])
    r = relevancy(feats, pos, neg)
    assert r[0] > 0.99 and r[1] < 0.01 and abs(float(r[2]) - 0.5) < 1e-5
    img = relevancy(feats[None].expand(2, 3, 3), pos, neg)
    assert img.shape == (2, 3)
    with pytest.raises(InputError, match="negatives"):
        relevancy(feats, pos, neg[:, :2])
