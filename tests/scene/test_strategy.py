"""gsplat's densification strategies on the CPU with semdyn's renderer, and labels that follow the Gaussians."""

from __future__ import annotations

import math

import gsplat.strategy.ops as gsplat_ops
import pytest
import torch

from semdyn.errors import InputError
from semdyn.render import render
from semdyn.scene import (
    DensifyConfig,
    GaussianInitConfig,
    activated,
    compute_relocation_reference,
    densify_pre_backward,
    densify_step,
    get_labels,
    init_gaussians,
    make_optimizers,
    make_strategy,
    set_labels,
)

W, H = 48, 32


def _cameras() -> tuple[torch.Tensor, torch.Tensor]:
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.3  # second camera shifted sideways
    Ks = torch.tensor([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]).repeat(2, 1, 1)
    return viewmats, Ks


def _scene(n: int, seed: int) -> tuple[torch.nn.ParameterDict, dict[str, torch.optim.Adam], torch.Tensor]:
    """n Gaussians in front of the cameras, half small and half large, labelled 0..n-1 with random confidences."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g) * torch.tensor([3.0, 2.0, 3.0]) + torch.tensor([-1.5, -1.0, 3.0])
    aabb = torch.tensor([[-2.0, -2.0, 2.0], [2.0, 2.0, 7.0]])
    params = init_gaussians(pts, None, aabb, GaussianInitConfig(sh_degree=1, initial_opacity=0.5), "cpu", g)
    with torch.no_grad():
        params["scales"][: n // 2] = math.log(0.005)  # small: duplicated
        params["scales"][n // 2 :] = math.log(0.05)  # large: split
        params["opacities"][::10] = math.log(0.001 / 0.999)  # nearly transparent: pruned / relocated
        params["shN"].normal_(generator=g)  # distinct per Gaussian, so a copy's source can be recognised
    return params, make_optimizers(params), torch.rand(n, generator=g)


def _render_loss(params: torch.nn.ParameterDict) -> tuple[torch.Tensor, dict]:
    viewmats, Ks = _cameras()
    a = activated(params)
    out = render(a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], viewmats, Ks, W, H, sh_degree=1)
    assert out.backend in ("cpu", "torch")
    return (out.image - 0.3).abs().mean(), out.meta


def _snapshot(params: torch.nn.ParameterDict) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in params.items()}


def test_default_strategy_on_cpu_splits_duplicates_prunes_and_carries_labels() -> None:
    torch.manual_seed(0)
    n = 300
    params, optimizers, conf = _scene(n, seed=1)
    config = DensifyConfig(refine_start_iter=0, refine_every=2, reset_every=10_000, grow_grad2d=1e-7)
    strategy, state = make_strategy(config, scene_scale=1.0)
    strategy.check_sanity(params, optimizers)
    set_labels(state, torch.arange(n), conf)
    before = None
    for step in (1, 2):
        loss, info = _render_loss(params)
        densify_pre_backward(strategy, params, optimizers, state, step, info)
        loss.backward()
        before = _snapshot(params)
        densify_step(strategy, params, optimizers, state, step, info)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
    assert before is not None
    ids, conf_after = get_labels(state)
    m = params["means"].shape[0]
    assert m != n and ids.shape == (m,) and conf_after.shape == (m,) and ids.dtype == torch.int64
    assert all(p.shape[0] == m for p in params.values()) and state["grad2d"].shape == (m,)
    counts = torch.bincount(ids, minlength=n)
    small, large, transparent = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool), counts == 0
    small[: n // 2], large[n // 2 :] = True, True
    assert int((counts[small] == 2).sum()) > 10, "duplication happened"
    assert int((counts[large] == 2).sum()) > 10, "splitting happened"
    assert torch.equal(transparent, torch.arange(n) % 10 == 0), "exactly the transparent ones were pruned"
    # Every Gaussian carries the label of the one it came from: duplicate and split copy these exactly.
    for key in ("quats", "opacities", "sh0", "shN"):
        assert torch.equal(params[key].detach(), before[key][ids]), key
    assert torch.equal(conf_after, conf[ids])
    # Split children sit near their parent and shrink by 1.6; duplicates are exact copies.
    split_child = large[ids] & (counts[ids] == 2)
    assert torch.allclose(params["scales"][split_child].detach(), before["scales"][ids[split_child]] - math.log(1.6))
    dup = small[ids]
    assert torch.equal(params["means"][dup].detach(), before["means"][ids[dup]])


def test_mcmc_strategy_on_cpu_grows_to_cap_relocates_and_carries_labels() -> None:
    torch.manual_seed(0)
    n, cap = 200, 230
    params, optimizers, conf = _scene(n, seed=2)
    config = DensifyConfig(kind="mcmc", refine_start_iter=0, refine_every=1, cap_max=cap)
    strategy, state = make_strategy(config)
    set_labels(state, torch.arange(n), conf)
    before = _snapshot(params)
    dead = torch.arange(n) % 10 == 0
    sizes = []
    for step in (1, 2, 3, 4):
        loss, info = _render_loss(params)
        densify_pre_backward(strategy, params, optimizers, state, step, info)
        loss.backward()
        densify_step(strategy, params, optimizers, state, step, info, lr=1.6e-4)
        sizes.append(params["means"].shape[0])
    assert sizes == [210, 220, 230, 230]
    assert gsplat_ops.compute_relocation.__module__ == "gsplat.relocation", "CPU fallbacks restored"
    assert "_semdyn_source_index" not in params and "_semdyn_source_index" not in optimizers
    ids, conf_after = get_labels(state)
    assert ids.shape == (cap,) and set(state) == {"binoms", "group_ids", "group_conf"}
    assert not bool(dead[ids].any()), "relocated slots took their source's label"
    # relocate and sample_add copy everything but opacity/scale (and means get noise): so copies match their source
    for key in ("quats", "sh0", "shN"):
        assert torch.equal(params[key].detach(), before[key][ids]), key
    assert torch.equal(conf_after, conf[ids])
    # sources that were copied had their opacity lowered by the paper's formula
    assert bool((torch.sigmoid(params["opacities"]) > 0.004).all())
    assert not torch.equal(params["means"].detach(), before["means"][ids]), "noise was injected"


def _relocation_by_the_paper(o: float, s: float, n: int) -> tuple[float, float]:
    o_new = 1 - (1 - o) ** (1 / n)
    denom = sum(
        math.comb(i - 1, k) * (-1) ** k * o_new ** (k + 1) / math.sqrt(k + 1) for i in range(1, n + 1) for k in range(i)
    )
    return o_new, o / denom * s


def test_relocation_reference_matches_the_paper() -> None:
    binoms = torch.tensor([[math.comb(i, k) for k in range(51)] for i in range(51)], dtype=torch.float32)
    opac = torch.tensor([0.9, 0.5, 0.05, 0.999, 0.3])
    scales = torch.rand(5, 3) + 0.1
    ratios = torch.tensor([1, 2, 3, 7, 20])
    new_o, new_s = compute_relocation_reference(opac, scales, ratios, binoms)
    for i in range(5):
        o_ref, f_ref = _relocation_by_the_paper(float(opac[i]), 1.0, int(ratios[i]))
        assert float(new_o[i]) == pytest.approx(o_ref, rel=1e-5)
        assert torch.allclose(new_s[i], scales[i] * f_ref, rtol=1e-5)
    assert torch.allclose(new_o[0], opac[0]) and torch.allclose(new_s[0], scales[0])  # one copy: unchanged


def test_densify_step_checks_its_inputs() -> None:
    params, optimizers, _ = _scene(20, seed=3)
    strategy, state = make_strategy(DensifyConfig(kind="mcmc"))
    with pytest.raises(InputError, match="lr"):
        densify_step(strategy, params, optimizers, state, 1, {})
    set_labels(state, torch.arange(19))
    with pytest.raises(InputError, match="group_ids"):
        densify_step(strategy, params, optimizers, state, 1, {}, lr=1e-4)
    with pytest.raises(InputError, match="ids"):
        set_labels(state, torch.rand(20))
    with pytest.raises(InputError, match="kind"):
        make_strategy(DensifyConfig(kind="bogus"))  # type: ignore[arg-type]
    assert get_labels({}) is None
