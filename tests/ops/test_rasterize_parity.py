"""Parity of semdyn's CPU rasteriser: the C++ extension against the PyTorch reference, and both
against gsplat's own PyTorch reference functions (projection, spherical harmonics, tile binning)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gsplat.cuda import _torch_impl as gs_ref

from semdyn.ops import _torch_impl as ref
from semdyn.ops._backend import get_ext
from semdyn.ops.rasterize import isect_tiles, rasterize_to_pixels, topk_contributors
from semdyn.render import RenderConfig, render
from tests.helpers import random_scene

PARAMS = ("means", "quats", "scales", "opacities", "colors")

pytestmark = pytest.mark.skipif(get_ext() is None, reason="the C++ extension could not be built")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def _loss(out, weights: torch.Tensor) -> torch.Tensor:
    # A loss that touches every output with different weights, so no gradient term can hide.
    return (out.image * weights).sum() + 0.3 * out.alpha.sum() + 0.05 * (out.depth * out.alpha).sum()


def _render_and_grad(scene: dict, backend: str, bg: torch.Tensor | None, mode: str = "classic"):
    leaves = {k: scene[k].detach().clone().requires_grad_(True) for k in PARAMS}
    bg_leaf = bg.detach().clone().requires_grad_(True) if bg is not None else None
    out = render(**{**scene, **leaves}, backgrounds=bg_leaf, config=RenderConfig(backend=backend, rasterize_mode=mode))
    w = torch.linspace(0.2, 1.0, out.image.shape[-1])
    grads = torch.autograd.grad(_loss(out, w), [leaves[k] for k in PARAMS] + ([bg_leaf] if bg is not None else []))
    return out, grads


@pytest.mark.parametrize(
    "seed,sh_degree,with_bg,mode",
    [
        (0, 0, False, "classic"),
        (1, 1, True, "classic"),
        (2, 2, True, "antialiased"),
        (3, 3, False, "classic"),
        (4, None, True, "classic"),
    ],
)
def test_cpp_matches_torch_reference(seed: int, sh_degree: int | None, with_bg: bool, mode: str) -> None:
    scene = random_scene(300, cameras=2, width=56, height=40, seed=seed, sh_degree=sh_degree, feature_dim=5)
    d = scene["colors"].shape[-1]
    bg = torch.rand(2, d, generator=torch.Generator().manual_seed(seed)) if with_bg else None
    out_c, g_c = _render_and_grad(scene, "cpu", bg, mode)
    out_r, g_r = _render_and_grad(scene, "torch", bg, mode)
    assert out_c.backend == "cpu" and out_r.backend == "torch"
    assert 0.05 < out_r.alpha.mean().item() < 0.95, "the scene should be partly covered"
    for name in ("image", "alpha", "depth"):
        assert rel_err(getattr(out_c, name), getattr(out_r, name)) < 1e-4, name
    for name, a, b in zip(PARAMS + ("backgrounds",), g_c, g_r):
        assert b.abs().sum() > 0, f"reference gradient of {name} is zero: the test would prove nothing"
        assert cosine(a, b) > 0.999, name
        assert rel_err(a, b) < 1e-3, name


def test_isect_tiles_matches_gsplat_reference() -> None:
    scene = random_scene(40, cameras=2, width=70, height=38, seed=5)
    covars = ref._covariances(scene["quats"], scene["scales"])
    radii, means2d, depths, _, _ = ref._project(scene["means"], covars, scene["viewmats"], scene["Ks"], 70, 38)
    tile_w, tile_h = 5, 3
    _, isect_ids, gs_flat = gs_ref._isect_tiles(means2d, radii, depths, 16, tile_w, tile_h)
    gs_offsets = gs_ref._isect_offset_encode(isect_ids, 2, tile_w, tile_h)
    for backend in ("ext", "torch"):
        offsets, flat = isect_tiles(means2d, radii, depths, 70, 38, 16, backend=backend)
        assert flat.numel() > 40, "Gaussians should span several tiles"
        assert torch.equal(offsets, gs_offsets), backend
        assert torch.equal(flat, gs_flat.int()), backend


def test_projection_matches_gsplat_reference() -> None:
    scene = random_scene(500, cameras=3, width=64, height=48, seed=6)
    means = scene["means"].clone().requires_grad_(True)
    scales = scene["scales"].clone().requires_grad_(True)
    covars = ref._covariances(scene["quats"], scales)
    gs_covars, _ = gs_ref._quat_scale_to_covar_preci(scene["quats"], scales, compute_preci=False)
    assert rel_err(covars, gs_covars) < 1e-5
    ours = ref._project(means, covars, scene["viewmats"], scene["Ks"], 64, 48, antialiased=True)
    theirs = gs_ref._fully_fused_projection(
        means, gs_covars, scene["viewmats"], scene["Ks"], 64, 48, calc_compensations=True
    )
    radii, means2d, depths, conics, comp = ours
    g_radii, g_means2d, g_depths, g_conics, g_comp = theirs
    assert (radii > 0).sum() > 100
    assert torch.equal(radii, g_radii)
    for a, b in ((means2d, g_means2d), (depths, g_depths), (conics, g_conics), (comp, g_comp)):
        assert rel_err(a, b) < 1e-5
    w = torch.randn_like(conics)
    ga = torch.autograd.grad((conics * w).sum() + means2d.sum(), [means, scales], retain_graph=True)
    gb = torch.autograd.grad((g_conics * w).sum() + g_means2d.sum(), [means, scales])
    for a, b in zip(ga, gb):
        assert cosine(a, b) > 0.999


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spherical_harmonics_match_gsplat_reference(degree: int) -> None:
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(200, 3, generator=g)
    coeffs = torch.randn(200, 16, 3, generator=g)
    assert rel_err(ref._eval_sh(degree, dirs, coeffs), gs_ref._spherical_harmonics(degree, dirs, coeffs)) < 1e-5


def test_full_render_matches_gsplat_reference_pipeline() -> None:
    """gsplat's reference projection, SH and tile binning, composited, against semdyn's CPU render."""
    scene = random_scene(400, cameras=2, width=64, height=48, seed=7, sh_degree=2)
    leaves = {k: scene[k].clone().requires_grad_(True) for k in PARAMS}
    covars, _ = gs_ref._quat_scale_to_covar_preci(leaves["quats"], leaves["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = gs_ref._fully_fused_projection(
        leaves["means"], covars, scene["viewmats"], scene["Ks"], 64, 48
    )
    campos = torch.linalg.inv(scene["viewmats"])[:, :3, 3]
    dirs = leaves["means"][None] - campos[:, None]
    rgb = torch.clamp_min(gs_ref._spherical_harmonics(2, dirs, leaves["colors"][None].expand(2, -1, -1, -1)) + 0.5, 0)
    feats = torch.cat([rgb, depths[..., None]], dim=-1)
    opac = leaves["opacities"][None].expand(2, -1)
    _, isect_ids, flat = gs_ref._isect_tiles(means2d, radii, depths, 16, 4, 3)
    offsets = gs_ref._isect_offset_encode(isect_ids, 2, 4, 3)
    img, alpha = rasterize_to_pixels(
        means2d, conics, feats, opac, radii, depths, 64, 48, 16, isect=(offsets, flat.int()), backend="ext"
    )
    gs_loss = (img[..., :3] * torch.tensor([0.2, 0.6, 1.0])).sum() + 0.3 * alpha.sum() + 0.05 * img[..., 3].sum()
    gs_grads = torch.autograd.grad(gs_loss, [leaves[k] for k in PARAMS])

    out, grads = _render_and_grad(scene, "cpu", None)
    assert rel_err(out.image, img[..., :3]) < 1e-4
    assert rel_err(out.alpha, alpha) < 1e-4
    for name, a, b in zip(PARAMS, grads, gs_grads):
        assert cosine(a, b) > 0.999, name


def test_topk_matches_reference_and_blend_weights() -> None:
    scene = random_scene(600, cameras=2, width=48, height=40, seed=8)
    out = render(**scene, topk=6, config=RenderConfig(backend="cpu"))
    covars = ref._covariances(scene["quats"], scene["scales"])
    radii, means2d, depths, conics, _ = ref._project(scene["means"], covars, scene["viewmats"], scene["Ks"], 48, 40)
    opac = scene["opacities"][None].expand(2, -1)
    ids_r, w_r = topk_contributors(means2d, conics, opac, radii, depths, 48, 40, 6, backend="torch")
    assert out.topk_ids.shape == (2, 40, 48, 6) and out.topk_ids.dtype == torch.int64
    assert (out.topk_ids == ids_r).float().mean() > 0.999
    assert rel_err(out.topk_weights, w_r) < 1e-5
    # Weights are sorted, their sum never exceeds the pixel's alpha, and -1 ids carry zero weight.
    w = out.topk_weights
    assert torch.all(w[..., :-1] >= w[..., 1:])
    assert torch.all(w.sum(-1) <= out.alpha[..., 0] + 1e-5)
    assert torch.all(w[out.topk_ids < 0] == 0)
    assert (out.topk_ids >= 0).any() and out.topk_ids.max() < 600
    # With k large enough to hold every contributor, the weights add up to alpha exactly.
    few = random_scene(12, cameras=1, width=32, height=24, seed=9)
    o = render(**few, topk=12, config=RenderConfig(backend="cpu"))
    assert torch.allclose(o.topk_weights.sum(-1), o.alpha[..., 0], atol=1e-5)
