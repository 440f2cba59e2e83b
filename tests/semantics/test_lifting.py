"""The top-k vote: exact on hand-made inputs, and recovers known labels through the real renderer."""

from __future__ import annotations

import torch

from semdyn.render import render
from semdyn.semantics.lifting import accumulate_votes, decide, label_index, lift_labels
from tests.helpers import random_scene


def test_vote_is_the_weighted_argmax() -> None:
    # pixel 0 (label 7): Gaussians 0 (0.6) and 1 (0.2); pixel 1 (label 3): Gaussian 0 (0.3) and no second one.
    ids = torch.tensor([[0, 1], [0, -1]])
    w = torch.tensor([[0.6, 0.2], [0.3, 0.0]])
    values = torch.tensor([0, 3, 7])
    lab = label_index(torch.tensor([7, 3]), values)
    votes = torch.zeros(3, 3)
    accumulate_votes(votes, ids, w, lab)
    torch.testing.assert_close(votes, torch.tensor([[0.0, 0.3, 0.6], [0.0, 0.0, 0.2], [0.0, 0.0, 0.0]]))
    res = decide(votes, values, min_conf=0.5)
    assert res.labels.tolist() == [7, 7, -1]  # Gaussian 2 never voted
    torch.testing.assert_close(res.conf, torch.tensor([2 / 3, 1.0, 0.0]))
    assert decide(votes, values, min_conf=0.7).labels.tolist() == [-1, 7, -1]


def test_background_label_leaves_gaussians_unlabelled() -> None:
    votes = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert decide(votes, torch.tensor([0, 5])).labels.tolist() == [-1, 5]


def test_lifting_recovers_labels_painted_by_the_renderer() -> None:
    """Gaussians get a true label by the sign of x; each view's ID map is rendered from those labels (the label of
    the pixel's strongest contributor); lifting must give most visible Gaussians their true label back."""
    scene = random_scene(400, cameras=3, width=48, height=32, seed=1)
    truth = torch.where(scene["means"][:, 0] > 0, 2, 1)
    args = {k: scene[k] for k in ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks")}
    out = render(**args, width=48, height=32, sh_degree=scene["sh_degree"], topk=4)
    top1 = out.topk_ids[..., 0]
    maps = torch.where(top1 >= 0, truth[top1.clamp_min(0)], 0)  # [C, H, W]

    def render_topk(v: int) -> tuple[torch.Tensor, torch.Tensor]:
        return out.topk_ids[v : v + 1], out.topk_weights[v : v + 1]

    res = lift_labels(render_topk, maps, [0, 1, 2], 400, min_conf=0.0)
    seen = res.total_weight > 0.05
    assert int(seen.sum()) > 50
    agree = (res.labels[seen] == truth[seen]).float().mean()
    assert agree > 0.85, float(agree)
