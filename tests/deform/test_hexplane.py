"""The HexPlane deformation field: identity at init, training, the mask, fitting a motion, regularizers."""

from __future__ import annotations

import pytest
import torch

from semdyn.conventions import quat_identity
from semdyn.deform import HexPlaneConfig, HexPlaneField, make_deformation
from semdyn.deform.hexplane import _hexplane_features, hexplane_features

AABB = torch.tensor([[-10.0, -10.0, -2.0], [10.0, 10.0, 4.0]])
CONFIG = HexPlaneConfig(feature_dim=8, spatial_resolution=8, multires=(1, 2), time_resolution=6, net_width=16)


def random_means(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * (AABB[1] - AABB[0]) + AABB[0]


def train_steps(field: HexPlaneField, means: torch.Tensor, steps: int) -> None:
    """A few Adam steps on a loss whose minimiser depends on t (and on x)."""
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    for step in range(steps):
        t = (step % 4 + 1) / 4  # never 0, where the identity is already optimal
        d = field(means, t)
        target = torch.sin(means[:, :1]) * t
        loss = (d.dx - target).square().mean() + (d.ds - t).square().mean() + (d.dr[:, 1] - 0.1 * t).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_identity_at_initialisation() -> None:
    torch.manual_seed(0)
    field = make_deformation(HexPlaneConfig(), AABB)
    means = random_means(100)
    for t in (0.0, 0.3, 1.0):
        d = field(means, t)
        assert torch.equal(d.dx, torch.zeros(100, 3))
        assert torch.equal(d.dr, quat_identity(100))
        assert torch.equal(d.ds, torch.zeros(100, 3))
    # Time planes start at one: the feature depends on space only.
    assert torch.equal(field.features(means, 0.0), field.features(means, 0.9))


def test_gradients_reach_every_parameter_and_output_depends_on_t() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    means = random_means(64)
    train_steps(field, means, 4)
    d = field(means, 0.8)
    (d.dx.sum() + d.dr.sum() + d.ds.sum()).backward()
    for name, p in field.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    a, b = field(means, 0.2), field(means, 0.8)
    # The time planes have moved for only two steps, so the dependence is small but not zero.
    assert (a.dx - b.dx).abs().max() > 1e-6
    assert (a.ds - b.ds).abs().max() > 1e-6
    assert (a.dr - b.dr).abs().max() > 1e-7
    torch.testing.assert_close(b.dr.norm(dim=1), torch.ones(64))


def test_mask_gives_exact_identity_and_skips_the_network() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    means = random_means(50)
    train_steps(field, means, 3)
    rows: list[int] = []
    field.trunk[0].register_forward_hook(lambda _m, inputs, _out: rows.append(inputs[0].shape[0]))
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[1, 4, 9, 10, 33, 49, 20]] = True
    d = field(means, 0.6, mask=mask)
    assert rows == [7]
    assert torch.equal(d.dx[~mask], torch.zeros(43, 3))
    assert torch.equal(d.dr[~mask], quat_identity(43))
    assert torch.equal(d.ds[~mask], torch.zeros(43, 3))
    full = field(means, 0.6)
    torch.testing.assert_close(d.dx[mask], full.dx[mask])
    torch.testing.assert_close(d.dr[mask], full.dr[mask])
    assert (d.dx[mask].abs() > 0).any()
    # Gradients flow through the scatter; an empty mask never calls the network.
    d.dx.sum().backward()
    assert field.trunk[0].weight.grad is not None
    empty = field(means, 0.6, mask=torch.zeros(50, dtype=torch.bool))
    assert rows == [7, 50] and torch.equal(empty.dr, quat_identity(50))


def test_disabled_heads_give_identity_parts() -> None:
    torch.manual_seed(0)
    config = HexPlaneConfig(feature_dim=4, spatial_resolution=4, multires=(1,), time_resolution=3, net_width=8)
    config.deform_rotation = False
    config.deform_scale = False
    field = make_deformation(config, AABB)
    assert field.dr_head is None and field.ds_head is None
    means = random_means(20)
    train_steps(field, means, 2)
    d = field(means, 0.5)
    assert torch.equal(d.dr, quat_identity(20)) and torch.equal(d.ds, torch.zeros(20, 3))
    assert d.dx.abs().max() > 0


@pytest.mark.parametrize("t", [0.0, 0.37, 0.8, 1.0])
def test_fast_features_match_the_reference_forward_and_backward(t: float) -> None:
    g = torch.Generator().manual_seed(1)
    spatial = [torch.rand(3, 5, r, r, generator=g).requires_grad_() for r in (4, 7)]
    temporal = [torch.rand(3, 5, 6, r, generator=g).requires_grad_() for r in (4, 7)]
    xyz = torch.rand(40, 3, generator=g) * 2 - 1
    xyz[0] = torch.tensor([-1.0, 1.0, 1.0])  # corners are inside
    weights = torch.randn(40, 10, generator=g)
    fast = hexplane_features(xyz, t, spatial, temporal)
    ref = _hexplane_features(xyz, t, spatial, temporal)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=1e-5)
    grads_fast = torch.autograd.grad((fast * weights).sum(), [*spatial, *temporal])
    grads_ref = torch.autograd.grad((ref * weights).sum(), [*spatial, *temporal])
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_points_outside_the_box_are_clamped_to_its_surface() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    with torch.no_grad():
        for p in field.temporal:
            p.uniform_(0.5, 1.5)
    inside = torch.tensor([[10.0, 0.0, 4.0], [-10.0, -10.0, 1.0]])
    outside = torch.tensor([[25.0, 0.0, 9.0], [-11.0, -30.0, 1.0]])
    torch.testing.assert_close(field.features(outside, 0.4), field.features(inside, 0.4))


def test_fits_a_linear_translation() -> None:
    """200 points move along x by 0.5 t (box [-1, 1]^3): 300 Adam steps get within 5% of the box."""
    torch.manual_seed(0)
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    means = torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = HexPlaneConfig(feature_dim=8, spatial_resolution=8, multires=(1,), time_resolution=8, net_width=32)
    field = make_deformation(config, aabb)
    groups = field.param_groups()
    opt = torch.optim.Adam(
        [{"params": groups["deform_grid"], "lr": 3e-2}, {"params": groups["deform_mlp"], "lr": 1e-2}]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 ** (s / 300))
    frames = torch.linspace(0, 1, 11)
    velocity = torch.tensor([0.5, 0.0, 0.0])
    for _ in range(300):
        t = float(frames[torch.randint(0, 11, ())])
        loss = (field(means, t).dx - velocity * t).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        errors = [(field(means, t).dx - velocity * t).norm(dim=1).max() for t in torch.linspace(0, 1, 9).tolist()]
    assert max(errors) < 0.05


def test_regularizers_vanish_on_flat_planes_and_grow_with_noise() -> None:
    torch.manual_seed(0)
    field = make_deformation(CONFIG, AABB)
    reg = field.regularization()
    assert set(reg) == {"plane_tv", "time_smoothness", "time_l1"}
    assert reg["plane_tv"] > 0  # uniform(0.1, 0.5) initialisation
    assert reg["time_smoothness"] == 0 and reg["time_l1"] == 0  # time planes start at one
    with torch.no_grad():
        for p in field.spatial:
            p.fill_(0.3)
        for p in field.temporal:  # linear in time: smooth but time-dependent
            p.copy_(torch.linspace(0.5, 1.5, p.shape[2]).view(1, 1, -1, 1).expand_as(p))
    reg = field.regularization()
    assert reg["plane_tv"] == 0
    assert reg["time_smoothness"] < 1e-10
    expected_l1 = 0.3 * len(CONFIG.multires)  # mean |1 - v| over rows 0.5, 0.7, ..., 1.5, per resolution
    torch.testing.assert_close(reg["time_l1"], torch.tensor(expected_l1))
    with torch.no_grad():
        for p in [*field.spatial, *field.temporal]:
            p.add_(torch.randn_like(p) * 0.1)
    reg = field.regularization()
    assert reg["plane_tv"] > 1e-3 and reg["time_smoothness"] > 1e-3 and reg["time_l1"] > 0.1
    sum(reg.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*field.spatial, *field.temporal])
