"""The object-wise deformation regularizers: zero on rigid motion, positive otherwise, gradients toward rigidity."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semdyn.conventions import quat_from_axis_angle, quat_to_rotmat
from semdyn.deform import Deformation, HexPlaneConfig, HexPlaneField
from semdyn.deform.group_motion import GroupMotionConfig, estimate_paths
from semdyn.deform.regularizers import (
    GROUP_TERMS,
    PAIR_TERMS,
    PER_TIME_TERMS,
    TERM_NAMES,
    GroupLabels,
    GroupRegularizerConfig,
    check_labels,
    config_fields_of_terms,
    covered_mask,
    deform_mask_from_groups,
    fit_rigid,
    group_regularizer_losses,
    group_regularizer_terms,
    relative_deformation,
    rigid_position_loss,
    rigid_rotation_loss,
    rotmat_to_quat,
    sample_times,
    scale_loss,
    segment_sum,
    static_loss,
)
from semdyn.errors import InputError

RIGID_TERMS = ("reg_rigid_position", "reg_rigid_rotation", "reg_scale")


def make_labels(ids: list[int] | torch.Tensor, static: list[bool], rigid: list[bool], conf=None) -> GroupLabels:
    ids = torch.as_tensor(ids, dtype=torch.int64)
    conf = torch.rand(len(ids), generator=torch.Generator().manual_seed(1)) * 0.9 + 0.1 if conf is None else conf
    return GroupLabels(ids, conf, torch.tensor(static, dtype=torch.bool), torch.tensor(rigid, dtype=torch.bool))


def rigid_scene(n: int, g: int, times: int, seed: int, dtype=torch.float32, offset: float = 20.0):
    """N centres (around ``offset``, scene units) in G dynamic groups moved by one random rigid motion per group and
    time; returns means, the T deformations, the labels (group 0 rigid-dynamic, others alternate rigid/non-rigid)."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.randn(n, 3, generator=gen) * 3 + offset).to(dtype)
    ids = torch.randint(-1, g, (n,), generator=gen)
    labels = make_labels(ids, [False] * g, [k % 2 == 0 for k in range(g)])
    labels = GroupLabels(labels.ids, labels.conf.to(dtype), labels.is_static, labels.is_rigid)
    deformations = []
    for _ in range(times):
        q = quat_from_axis_angle(torch.randn(g, 3, generator=gen), torch.rand(g, generator=gen) * math.pi).to(dtype)
        t = (torch.randn(g, 3, generator=gen) * 5).to(dtype)
        gi = ids.clamp(min=0)
        moved = (quat_to_rotmat(q)[gi] @ means[:, :, None]).squeeze(-1) + t[gi]
        dx = torch.where((ids >= 0)[:, None], moved - means, torch.randn(n, 3, generator=gen).to(dtype))
        dr = torch.where((ids >= 0)[:, None], q[gi], torch.randn(n, 4, generator=gen).to(dtype))
        ds = torch.where(
            (ids >= 0)[:, None], torch.zeros(n, 3, dtype=dtype), torch.randn(n, 3, generator=gen).to(dtype)
        )
        deformations.append(Deformation(dx=dx, dr=dr, ds=ds))
    return means, deformations, labels


def perturbed(d: Deformation, amount: float, seed: int) -> Deformation:
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.randn(d.dx.shape, generator=gen).to(d.dx.dtype) * amount for _ in range(3)]
    dr = d.dr + torch.randn(d.dr.shape, generator=gen).to(d.dr.dtype) * amount
    return Deformation(dx=d.dx + noise[0], dr=dr, ds=d.ds + noise[2])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 80), g=st.integers(1, 6), times=st.integers(1, 3))
def test_terms_vanish_on_exactly_rigid_motions(seed: int, n: int, g: int, times: int) -> None:
    means, deformations, labels = rigid_scene(n, g, times, seed)
    terms = group_regularizer_terms(means, deformations, labels, nonrigid_factor=0.5)
    assert list(terms) == list(TERM_NAMES)
    for name in RIGID_TERMS:
        assert 0.0 <= terms[name].item() < 1e-5, (name, terms[name].item())
    assert terms["reg_static"].item() == 0.0  # no static group


def test_terms_are_positive_on_non_rigid_motion() -> None:
    means, deformations, labels = rigid_scene(300, 4, 2, seed=3)
    bent = [perturbed(d, 0.05, seed=k) for k, d in enumerate(deformations)]
    terms = group_regularizer_terms(means, bent, labels)
    for name in RIGID_TERMS:
        assert terms[name].item() > 1e-4, (name, terms[name].item())


def test_static_term_is_zero_for_identity_and_positive_for_any_motion() -> None:
    n = 50
    labels = make_labels([0] * 20 + [1] * 20 + [-1] * 10, [True, False], [False, True])
    means = torch.randn(n, 3)
    still = Deformation.identity(n)
    assert group_regularizer_terms(means, [still], labels, ["reg_static"])["reg_static"].item() == 0.0
    for part in ("dx", "dr", "ds"):  # each part alone makes it positive
        moved = Deformation.identity(n)
        tensor = getattr(moved, part)
        tensor[:20] += 0.1
        assert group_regularizer_terms(means, [moved], labels, ["reg_static"])["reg_static"].item() > 1e-4, part
    moved = Deformation.identity(n)
    moved.dx[20:] += 1.0  # the dynamic and the unlabelled Gaussians may move
    assert group_regularizer_terms(means, [moved], labels, ["reg_static"])["reg_static"].item() == 0.0


def test_rigid_fit_recovers_the_motion_and_never_reflects() -> None:
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    ids = torch.tensor([0] * 20 + [1] * 20)
    q = quat_from_axis_angle(torch.tensor([[0.3, -1.0, 0.5]], dtype=torch.float64), 2.0)
    rot = quat_to_rotmat(q)[0]
    dst = torch.cat([src[:20] @ rot.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), src[20:] * -1.0])
    fit = fit_rigid(src, dst[None], ids, torch.ones(40, dtype=torch.float64), 2)
    torch.testing.assert_close(fit.rot[0, 0], rot)
    # Group 1 is a point reflection: the best proper rotation has det +1, and the residual is not zero.
    assert torch.linalg.det(fit.rot[0]).sub(1.0).abs().max().item() < 1e-9
    mirror = ids.clamp(max=1) == 1
    loss = rigid_position_loss(src, (dst - src)[None], fit, ids, mirror.double())
    assert loss.item() > 0.1


def test_segment_sum_matches_a_loop_and_ignores_unlabelled() -> None:
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(2, 30, 4, generator=gen)
    ids = torch.randint(-1, 5, (30,), generator=gen)
    ids[ids == 3] = 4  # group 3 empty
    expected = torch.stack([values[:, ids == k].sum(1) for k in range(6)], dim=1)
    torch.testing.assert_close(segment_sum(values, ids, 6), expected)
    assert segment_sum(values, ids, 6)[:, 3].abs().max().item() == 0.0


def _descend(loss_fn, x: torch.Tensor, lr: float, steps: int) -> list[float]:
    x = x.clone().requires_grad_(True)
    history = []
    for _ in range(steps):
        loss = loss_fn(x)
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(grad).all()
        history.append(loss.item())
        with torch.no_grad():
            x -= lr * grad
    history.append(loss_fn(x).item())
    return history


def test_gradient_steps_move_every_term_toward_rigidity() -> None:
    means, deformations, labels = rigid_scene(200, 4, 1, seed=5, dtype=torch.float64)
    labels = GroupLabels(labels.ids, labels.conf, torch.tensor([True, False, False, False]), labels.is_rigid)
    d = perturbed(deformations[0], 0.1, seed=9)
    # For the static term, one part at a time moves away from the identity (the others stay exactly still).
    still = perturbed(Deformation.identity(200, dtype=torch.float64), 0.1, seed=10)

    def term(name: str, base: Deformation, **parts):
        full = dict(dx=base.dx, dr=base.dr, ds=base.ds) | parts
        return group_regularizer_terms(means, [Deformation(**full)], labels, [name], nonrigid_factor=0.5)[name]

    identity = Deformation.identity(200, dtype=torch.float64)
    for name, part, base in (
        ("reg_rigid_position", "dx", d),
        ("reg_rigid_rotation", "dr", d),
        ("reg_scale", "ds", d),
        ("reg_static", "dx", identity),
        ("reg_static", "dr", identity),
        ("reg_static", "ds", identity),
    ):
        start = getattr(still if base is identity else d, part)
        history = _descend(lambda x, n=name, p=part, b=base: term(n, b, **{p: x}), start, 20.0, 30)
        assert history[0] > 1e-4, (name, part)
        assert all(b < a for a, b in zip(history, history[1:])), (name, part, history[:5])
        assert history[-1] < 0.05 * history[0], (name, part, history[0], history[-1])


def test_gradient_with_a_fixed_fit_is_the_gradient_of_the_refitted_minimum() -> None:
    # The envelope theorem: detaching R, t loses nothing when the fit minimises the weighted sum of the two rigid
    # terms. Central differences of the refitted weighted sum agree with autograd, for dx and for dr.
    means, deformations, labels = rigid_scene(60, 3, 1, seed=2, dtype=torch.float64, offset=0.0)
    labels = GroupLabels(labels.ids, labels.conf, labels.is_static, torch.ones(3, dtype=torch.bool))
    d = perturbed(deformations[0], 0.2, seed=4)
    weights = (1.0, 0.7)

    def f(dx: torch.Tensor, dr: torch.Tensor) -> torch.Tensor:
        names = ["reg_rigid_position", "reg_rigid_rotation"]
        terms = group_regularizer_terms(means, [Deformation(dx, dr, d.ds)], labels, names, fit_weights=weights)
        return weights[0] * terms[names[0]] + weights[1] * terms[names[1]]

    dx, dr = d.dx.clone().requires_grad_(True), d.dr.clone().requires_grad_(True)
    grads = torch.autograd.grad(f(dx, dr), [dx, dr])
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        vx, vr = (torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in (d.dx, d.dr))
        eps = 1e-5
        numeric = (f(d.dx + eps * vx, d.dr + eps * vr) - f(d.dx - eps * vx, d.dr - eps * vr)).item() / (2 * eps)
        analytic = (grads[0] * vx).sum().item() + (grads[1] * vr).sum().item()
        assert numeric == pytest.approx(analytic, rel=1e-5, abs=1e-10)


def test_rotation_deltas_decide_the_rotation_of_groups_of_one_or_two_points() -> None:
    n = 3
    means = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    labels = make_labels([0, 1, 1], [False, False], [True, True])
    q = quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]), 1.0)  # about z: the pair's axis x is not fixed
    dx = (means @ quat_to_rotmat(q).T) - means
    terms = group_regularizer_terms(means, [Deformation(dx, q.expand(n, 4), torch.zeros(n, 3))], labels)
    assert terms["reg_rigid_position"].item() < 1e-10 and terms["reg_rigid_rotation"].item() < 1e-10
    only_positions = group_regularizer_terms(
        means, [Deformation(dx, q.expand(n, 4), torch.zeros(n, 3))], labels, fit_weights=(1.0, 0.0)
    )
    assert only_positions["reg_rigid_position"].item() < 1e-10  # positions alone leave the rotation ambiguous


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_groups_single_points_and_all_unlabelled_give_finite_values_and_gradients(dtype) -> None:
    n = 6
    means = torch.randn(n, 3, dtype=dtype)
    # Group 0: one Gaussian; group 1: two; group 2: empty; group 3: zero confidence; group 4: static, empty.
    cases = {
        "mixed": make_labels([0, 1, 1, 3, 3, -1], [False] * 4 + [True], [True, True, True, False, False]),
        "unlabelled": make_labels([-1] * n, [False, True], [True, False]),
        "no groups": GroupLabels(
            torch.full((n,), -1), torch.ones(n), torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool)
        ),
    }
    cases["mixed"].conf[3:5] = 0.0
    for case, labels in cases.items():
        labels = GroupLabels(labels.ids, labels.conf.to(dtype), labels.is_static, labels.is_rigid)
        dx = (torch.randn(n, 3, dtype=dtype) * 3).requires_grad_(True)
        dr = torch.randn(n, 4, dtype=dtype).requires_grad_(True)
        ds = torch.randn(n, 3, dtype=dtype).requires_grad_(True)
        terms = group_regularizer_terms(means, [Deformation(dx, dr, ds)] * 2, labels)
        grads = torch.autograd.grad(sum(terms.values()), [dx, dr, ds], allow_unused=True)
        for name, value in terms.items():
            assert value.dtype == dtype and value.device == means.device and value.dim() == 0
            assert torch.isfinite(value), (case, name)
            if case != "mixed":
                assert value.item() == 0.0, (case, name)
        assert all(g is None or torch.isfinite(g).all() for g in grads), case
    # A group of one point is always exactly rigid, whatever its offset and rotation.
    one = make_labels([0, -1, -1, -1, -1, -1], [False], [True])
    moved = Deformation(
        torch.randn(n, 3, dtype=dtype) * 5, torch.randn(n, 4, dtype=dtype), torch.zeros(n, 3, dtype=dtype)
    )
    terms = group_regularizer_terms(
        means, [moved], GroupLabels(one.ids, one.conf.to(dtype), one.is_static, one.is_rigid)
    )
    assert terms["reg_rigid_position"].item() < 1e-10 and terms["reg_rigid_rotation"].item() < 1e-6


def test_n_zero_gaussians() -> None:
    labels = GroupLabels(torch.zeros(0, dtype=torch.int64), torch.zeros(0), torch.tensor([False]), torch.tensor([True]))
    terms = group_regularizer_terms(torch.zeros(0, 3), [Deformation.identity(0)], labels)
    assert all(v.item() == 0.0 for v in terms.values())


def test_config_weights_start_steps_and_static_skip() -> None:
    means, deformations, labels = rigid_scene(100, 3, 2, seed=1)
    labels = GroupLabels(labels.ids, labels.conf, torch.tensor([True, False, False]), labels.is_rigid)
    bent = [perturbed(d, 0.05, seed=k) for k, d in enumerate(deformations)]
    cfg = GroupRegularizerConfig(
        rigid_position_weight=2.0,
        rigid_rotation_start=100,
        scale_weight=0.0,
        static_weight=3.0,
        skip_static_deformation=False,
    )
    assert cfg.active_terms(99) == ("reg_rigid_position", "reg_static")
    assert cfg.active_terms(100) == ("reg_rigid_position", "reg_rigid_rotation", "reg_static")
    raw = group_regularizer_terms(means, bent, labels, nonrigid_factor=cfg.nonrigid_factor, fit_weights=(2.0, 0.1))
    losses = group_regularizer_losses(cfg, 100, means, bent, labels)
    assert list(losses) == ["reg_rigid_position", "reg_rigid_rotation", "reg_static"]
    torch.testing.assert_close(losses["reg_rigid_position"], 2.0 * raw["reg_rigid_position"])
    torch.testing.assert_close(losses["reg_rigid_rotation"], 0.1 * raw["reg_rigid_rotation"])
    torch.testing.assert_close(losses["reg_static"], 3.0 * raw["reg_static"])
    later = dict(rigid_position_start=10, rigid_rotation_start=10, scale_start=10)
    skip = GroupRegularizerConfig(skip_static_deformation=True, static_skip_min_conf=0.5, **later)
    skipped = group_regularizer_losses(skip, 0, means, bent, labels)
    below = group_regularizer_terms(means, bent, labels, ["reg_static"], static_below_conf=0.5)["reg_static"]
    everything = group_regularizer_terms(means, bent, labels, ["reg_static"])["reg_static"]
    assert list(skipped) == ["reg_static"] and below.item() != everything.item()
    torch.testing.assert_close(skipped["reg_static"], 1.0 * below)
    assert group_regularizer_losses(GroupRegularizerConfig(static_start=10, **later), 9, means, bent, labels) == {}


def test_nonrigid_factor_scales_only_the_non_rigid_groups() -> None:
    means, deformations, labels = rigid_scene(120, 2, 1, seed=6)
    bent = [perturbed(deformations[0], 0.05, seed=0)]
    rigid_only = group_regularizer_terms(means, bent, labels, ["reg_rigid_position"], nonrigid_factor=0.0)
    with_people = group_regularizer_terms(means, bent, labels, ["reg_rigid_position"], nonrigid_factor=1.0)
    assert rigid_only["reg_rigid_position"].item() > 0.0
    assert with_people["reg_rigid_position"].item() != rigid_only["reg_rigid_position"].item()


def test_skipping_the_field_for_static_groups_zeroes_their_deformation() -> None:
    aabb = torch.tensor([[-2.0, -2.0, -1.0], [2.0, 2.0, 1.0]])
    field = HexPlaneField(
        HexPlaneConfig(feature_dim=4, spatial_resolution=4, multires=(1,), time_resolution=4, net_width=8), aabb
    )
    for p in field.parameters():  # leave the identity start so that every Gaussian moves
        torch.nn.init.normal_(p, std=0.3)
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(40, 3, generator=gen) * 2 - 1
    labels = make_labels(
        [0] * 10 + [1] * 10 + [2] * 10 + [-1] * 10, [True, False, True], [False, True, False], conf=torch.ones(40)
    )
    labels.conf[20:25] = 0.2  # doubtful static labels keep the field
    mask = deform_mask_from_groups(labels, min_conf=0.5)
    assert mask.tolist() == [False] * 10 + [True] * 10 + [True] * 5 + [False] * 5 + [True] * 10
    masked = [field(means, t, mask=mask) for t in sample_times(2, gen)]
    free = [field(means, t) for t in (0.25, 0.75)]
    static_masked = group_regularizer_terms(means, masked, labels, ["reg_static"])["reg_static"]
    static_free = group_regularizer_terms(means, free, labels, ["reg_static"])["reg_static"]
    dx, dr, ds = (torch.stack([getattr(d, k) for d in masked]) for k in ("dx", "dr", "ds"))
    assert static_loss(dx, dr, ds, (~mask).float()).item() == 0.0  # the skipped ones do not move at all
    # With the skip on, reg_static covers only the doubtful static Gaussians (which still deform).
    doubtful = group_regularizer_terms(means, masked, labels, ["reg_static"], static_below_conf=0.5)["reg_static"]
    assert doubtful.item() > static_masked.item() > 0.0
    assert static_free.item() > static_masked.item() > 0.0


def test_sample_times_are_stratified() -> None:
    times = sample_times(4, torch.Generator().manual_seed(0))
    assert len(times) == 4 and all(k / 4 <= t <= (k + 1) / 4 for k, t in enumerate(times))
    with pytest.raises(InputError, match="num_times"):
        sample_times(0)


def test_bad_inputs_raise_one_clear_sentence() -> None:
    means, deformations, labels = rigid_scene(10, 2, 1, seed=0)
    d = deformations[0]
    bad = [
        (dict(means=means[:, :2]), "means must be a floating-point tensor of shape \\[N, 3\\]"),
        (dict(deformations=[Deformation(d.dx[:5], d.dr, d.ds)]), r"deformations\[0\]\.dx must .* \[10, 3\]"),
        (dict(deformations=[Deformation(d.dx, d.dr[:, :3], d.ds)]), r"deformations\[0\]\.dr must .* \[10, 4\]"),
        (dict(deformations=[]), "at least one Deformation"),
        (
            dict(labels=GroupLabels(labels.ids.int(), labels.conf, labels.is_static, labels.is_rigid)),
            "group_ids must be an int64",
        ),
        (dict(labels=GroupLabels(labels.ids, labels.conf[:3], labels.is_static, labels.is_rigid)), "group_conf must"),
        (
            dict(labels=GroupLabels(labels.ids, labels.conf, labels.is_static.int(), labels.is_rigid)),
            "group_is_static must be a bool",
        ),
        (
            dict(labels=GroupLabels(labels.ids, labels.conf, labels.is_static, labels.is_rigid[:1])),
            r"group_is_rigid must .* \[2\]",
        ),
        (dict(terms=["reg_rigid"]), "unknown regularizer term"),
    ]
    for change, message in bad:
        kwargs = dict(means=means, deformations=[d], labels=labels) | change
        with pytest.raises(InputError, match=message):
            group_regularizer_terms(**kwargs)
    fit = fit_rigid(means, (means + d.dx)[None], labels.ids, labels.conf, 2)
    with pytest.raises(InputError, match=r"dx must be a floating-point tensor of shape \[T, N, 3\] = \[T, 10, 3\]"):
        rigid_position_loss(means, d.dx, fit, labels.ids, labels.conf)
    with pytest.raises(InputError, match=r"dr must .* \[T, N, 4\]"):
        rigid_rotation_loss(d.dr, fit, labels.ids, labels.conf)
    with pytest.raises(InputError, match="weights must"):
        scale_loss(d.ds[None], labels.ids, labels.conf, labels.conf[:2], 2)


@pytest.mark.cuda
def test_results_stay_on_the_device_of_the_inputs() -> None:
    means, deformations, labels = rigid_scene(50, 3, 2, seed=0)
    dev = torch.device("cuda")
    moved = [Deformation(d.dx.to(dev), d.dr.to(dev), d.ds.to(dev)) for d in deformations]
    labels_dev = GroupLabels(*(getattr(labels, k).to(dev) for k in ("ids", "conf", "is_static", "is_rigid")))
    terms = group_regularizer_terms(means.to(dev), moved, labels_dev)
    assert all(v.device.type == "cuda" for v in terms.values())
    cpu = group_regularizer_terms(means, deformations, labels)
    for name in terms:
        torch.testing.assert_close(terms[name].cpu(), cpu[name], atol=1e-5, rtol=1e-3)
    with pytest.raises(InputError, match="on one device"):
        group_regularizer_terms(means.to(dev), deformations, labels_dev)


def test_regularizers_train_a_deformation_field_toward_rigid_groups() -> None:
    # The hook's path: field -> deformations at sampled times -> losses -> Adam on the field's parameters.
    torch.manual_seed(0)
    aabb = torch.tensor([[-2.0, -2.0, -1.0], [2.0, 2.0, 1.0]])
    small = HexPlaneConfig(feature_dim=4, spatial_resolution=6, multires=(1,), time_resolution=4, net_width=16)
    field = HexPlaneField(small, aabb)
    for p in field.parameters():  # a random, non-rigid start
        torch.nn.init.normal_(p, std=0.3)
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(120, 3, generator=gen) * 2 - 1
    labels = make_labels(torch.arange(120) % 3, [True, False, False], [False, True, True], conf=torch.ones(120))
    cfg = GroupRegularizerConfig(num_times=2)
    covered = covered_mask(labels, cfg)
    assert covered.tolist() == [k % 3 != 0 for k in range(120)]
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-2)
    history = []
    for _ in range(15):
        deformations = [field(means, t, mask=covered) for t in sample_times(cfg.num_times, gen)]
        losses = group_regularizer_losses(cfg, 0, means, deformations, labels)
        assert set(losses) == {"reg_rigid_position", "reg_rigid_rotation", "reg_scale", "reg_static"}
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert history[-1] < 0.5 * history[0], history


def test_rotmat_to_quat_inverts_quat_to_rotmat_on_every_branch() -> None:
    gen = torch.Generator().manual_seed(0)
    axes = torch.cat([torch.eye(3), torch.randn(60, 3, generator=gen)]).double()
    angles = torch.cat([torch.full((3,), math.pi - 1e-3), torch.rand(60, generator=gen) * math.pi]).double()
    q = quat_from_axis_angle(axes, angles)  # near 180 degrees about x, y, z: the x, y, z branches; others: w
    back = rotmat_to_quat(quat_to_rotmat(q))
    assert ((back * q).sum(-1).abs() - 1).abs().max().item() < 1e-12  # equal up to sign


def test_relative_deformation_composes_back_to_the_second_time() -> None:
    """x + dx1 moved by the t1 -> t2 deformation lands on x + dx2, and its rotation on R(dr2)."""
    means, (first, second), _ = rigid_scene(50, 3, 2, seed=4)
    rel = relative_deformation(first, second)
    assert torch.allclose(means + first.dx + rel.dx, means + second.dx, atol=1e-5)
    composed = quat_to_rotmat(rel.dr) @ quat_to_rotmat(first.dr / first.dr.norm(dim=-1, keepdim=True))
    assert torch.allclose(composed, quat_to_rotmat(second.dr / second.dr.norm(dim=-1, keepdim=True)), atol=1e-4)


def test_members_anchored_at_different_places_still_score_zero_on_their_relative_motion() -> None:
    """Temporal visibility puts one car's Gaussians along its path in canonical space: the canonical-to-t motion is
    then not rigid, but the t1 -> t2 motion is, and the relative terms vanish on it."""
    gen = torch.Generator().manual_seed(0)
    n = 40
    body = torch.randn(n, 3, generator=gen)  # points on the car, car frame
    start = torch.rand(n, generator=gen) * 10  # where along the path each point was captured
    path = lambda s: torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], -1)  # noqa: E731
    canonical = body + path(start)
    ident = torch.tensor([1.0, 0, 0, 0]).repeat(n, 1)
    first = Deformation(path(torch.full((n,), 3.0)) - path(start), ident, torch.zeros(n, 3))
    second = Deformation(path(torch.full((n,), 4.0)) - path(start), ident, torch.zeros(n, 3))
    labels = make_labels([0] * n, [False], [True], conf=torch.ones(n))
    absolute = group_regularizer_terms(canonical, [first, second], labels, ("reg_rigid_position",))
    relative = group_regularizer_terms(
        canonical + first.dx, [relative_deformation(first, second)], labels, ("reg_rigid_position",)
    )
    assert absolute["reg_rigid_position"] > 1.0
    assert relative["reg_rigid_position"] < 1e-8


def test_fit_scale_lets_the_visible_members_decide_the_motion() -> None:
    """Half a group moves by +1 along x (visible, constrained by images), half stays (invisible): with the fit
    weighted by visibility the target motion is the visible half's, so only the invisible half is penalised."""
    n = 20
    means = torch.randn(n, 3, generator=torch.Generator().manual_seed(2))
    visible = torch.arange(n) < n // 2
    dx = torch.where(visible[:, None], torch.tensor([1.0, 0, 0]), torch.zeros(3)).requires_grad_(True)
    d = Deformation(dx, torch.tensor([1.0, 0, 0, 0]).repeat(n, 1), torch.zeros(n, 3))
    labels = make_labels([0] * n, [False], [True], conf=torch.ones(n))
    cfg = GroupRegularizerConfig(rigid_rotation_weight=0.0, scale_weight=0.0)
    loss = group_regularizer_losses(cfg, 0, means, [d], labels, fit_scale=visible.float())["reg_rigid_position"]
    loss.backward()
    assert torch.allclose(dx.grad[visible], torch.zeros(n // 2, 3), atol=1e-6)
    assert bool((dx.grad[~visible][:, 0] < 0).all())  # the hidden half is pushed to follow (+x)


def test_every_term_of_the_table_has_its_config_fields_and_every_weight_field_a_term() -> None:
    names = {f.name for f in dataclasses.fields(GroupRegularizerConfig)}
    assert config_fields_of_terms() <= names, sorted(config_fields_of_terms() - names)
    weights = {n for n in names if n.endswith("_weight")}
    assert weights == {f"{t.key}_weight" for t in GROUP_TERMS}, "a weight field without a term is never applied"
    assert set(PAIR_TERMS) | set(PER_TIME_TERMS) == set(TERM_NAMES) and not set(PAIR_TERMS) & set(PER_TIME_TERMS)


def test_an_unknown_term_is_named() -> None:
    with pytest.raises(InputError, match="reg_nothing"):
        GroupRegularizerConfig().weight("reg_nothing")


def test_group_ids_out_of_range_are_refused_where_labels_enter() -> None:
    """The id range costs a host sync: checked where labels enter (a lift's path estimate, a resumed or loaded
    checkpoint), not in the per-step regularizers, which only see labels densification copied."""
    means, _, labels = rigid_scene(10, 2, 1, seed=0)
    wrong = GroupLabels(labels.ids.clamp(max=0) + 2, labels.conf, labels.is_static, labels.is_rigid)
    check_labels(wrong, 10, means.device)  # shapes, dtypes and devices only
    with pytest.raises(InputError, match=r"group_ids must lie in -1\.\.G-1 = -1\.\.1"):
        check_labels(wrong, 10, means.device, values=True)
    with pytest.raises(InputError, match=r"group_ids must lie in -1\.\.G-1"):
        estimate_paths(means, torch.zeros(10), torch.ones(10), wrong, GroupMotionConfig())
