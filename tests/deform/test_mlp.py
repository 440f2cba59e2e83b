"""The MLP deformation field (Deformable-3DGS ablation)."""

from __future__ import annotations

import torch

from semdyn.conventions import quat_identity
from semdyn.deform import MLPDeformConfig, MLPDeformField, make_deformation
from semdyn.deform.mlp import positional_encoding

AABB = torch.tensor([[-10.0, -10.0, -2.0], [10.0, 10.0, 4.0]])
CONFIG = MLPDeformConfig(depth=3, width=32, skip_layers=(1,))


def random_means(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * (AABB[1] - AABB[0]) + AABB[0]


def one_step(field: MLPDeformField, means: torch.Tensor) -> None:
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    d = field(means, 0.5)
    loss = (d.dx - 1.0).square().mean() + (d.ds + 1.0).square().mean() + (d.dr[:, 2] - 0.3).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_identity_at_initialisation_with_the_default_config() -> None:
    torch.manual_seed(0)
    field = make_deformation(MLPDeformConfig(), AABB)
    assert len(field.layers) == 8 and field.layers[5].in_features == 256 + field.in_dim
    assert field.in_dim == 3 * 21 + 13
    means = random_means(100)
    for t in (0.0, 0.5, 1.0):
        d = field(means, t)
        assert torch.equal(d.dx, torch.zeros(100, 3))
        assert torch.equal(d.dr, quat_identity(100))
        assert torch.equal(d.ds, torch.zeros(100, 3))
    assert field.regularization() == {}


def test_one_step_moves_the_output_and_it_depends_on_t() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    means = random_means(64)
    one_step(field, means)
    d = field(means, 0.5)
    assert d.dx.abs().min() > 0 and d.ds.abs().min() > 0 and (d.dr[:, 2].abs() > 0).all()
    (d.dx.sum() + d.dr.sum() + d.ds.sum()).backward()
    for name, p in field.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    a, b = field(means, 0.1), field(means, 0.9)
    assert (a.dx - b.dx).abs().max() > 1e-5


def test_mask_gives_exact_identity_and_skips_the_network() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    means = random_means(30)
    one_step(field, means)
    rows: list[int] = []
    field.layers[0].register_forward_hook(lambda _m, inputs, _out: rows.append(inputs[0].shape[0]))
    mask = torch.arange(30) % 4 == 0
    d = field(means, 0.25, mask=mask)
    assert rows == [int(mask.sum())]
    assert torch.equal(d.dx[~mask], torch.zeros(int((~mask).sum()), 3))
    assert torch.equal(d.dr[~mask], quat_identity(int((~mask).sum())))
    assert torch.equal(d.ds[~mask], torch.zeros(int((~mask).sum()), 3))
    torch.testing.assert_close(d.dx[mask], field(means, 0.25).dx[mask])


def test_disabled_heads_and_small_preset() -> None:
    config = MLPDeformConfig.small()
    config.deform_position = False
    field = make_deformation(config, AABB)
    assert field.dx_head is None and len(field.layers) == 4
    means = random_means(10)
    one_step(field, means)
    d = field(means, 0.5)
    assert torch.equal(d.dx, torch.zeros(10, 3)) and d.ds.abs().max() > 0


def test_positional_encoding() -> None:
    p = torch.tensor([[0.25, -0.5, 1.0]])
    enc = positional_encoding(p, 2)
    assert enc.shape == (1, 15)
    torch.testing.assert_close(enc[0, :3], p[0])
    torch.testing.assert_close(enc[0, 3:9], torch.sin(torch.pi * torch.tensor([0.25, 0.5, -0.5, -1.0, 1.0, 2.0])))
    assert torch.equal(positional_encoding(p, 0), p)
