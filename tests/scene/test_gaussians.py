"""Initialisation, activations and optimisers of the canonical Gaussians."""

from __future__ import annotations

import math

import pytest
import torch

from semdyn.errors import InputError
from semdyn.scene import (
    PARAM_KEYS,
    GaussianInitConfig,
    LearningRates,
    activated,
    init_gaussians,
    knn_mean_distance,
    make_optimizers,
    means_lr_scheduler,
    sh0_to_rgb,
)
from semdyn.scene.gaussians import subsample_points

AABB = torch.tensor([[-2.0, -1.0, 0.0], [2.0, 1.0, 3.0]])


def _grid(spacing: float, n: int = 6) -> torch.Tensor:
    r = torch.arange(n, dtype=torch.float32) * spacing
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(-1, 3) + 100.0  # far from the origin


def test_init_from_points_count_colours_and_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(500, 3, generator=g) * 4 - 2
    cols = torch.randint(0, 256, (500, 3), generator=g, dtype=torch.uint8)
    params = init_gaussians(pts, cols, AABB, GaussianInitConfig(sh_degree=2), "cpu", g)
    assert set(params.keys()) == set(PARAM_KEYS)
    assert params["means"].shape == (500, 3) and torch.equal(params["means"], pts)
    assert params["quats"].shape == (500, 4)
    assert torch.allclose(params["quats"].norm(dim=-1), torch.ones(500), atol=1e-5)
    assert params["scales"].shape == (500, 3)
    assert params["opacities"].shape == (500,)
    assert torch.allclose(torch.sigmoid(params["opacities"]), torch.full((500,), 0.1))
    assert params["sh0"].shape == (500, 1, 3) and params["shN"].shape == (500, 8, 3)
    assert torch.count_nonzero(params["shN"]) == 0
    assert torch.allclose(sh0_to_rgb(params["sh0"][:, 0]), cols.float() / 255, atol=1e-6)
    # float colours round-trip too
    fcols = torch.rand(500, 3, generator=g)
    params = init_gaussians(pts, fcols, AABB, GaussianInitConfig(sh_degree=0), "cpu", g)
    assert params["shN"].shape == (500, 0, 3)
    assert torch.allclose(sh0_to_rgb(params["sh0"][:, 0]), fcols, atol=1e-6)


def test_scales_are_log_mean_neighbour_distance_on_a_grid() -> None:
    spacing = 0.25
    params = init_gaussians(_grid(spacing), None, AABB, GaussianInitConfig(), "cpu", torch.Generator().manual_seed(1))
    # every grid point has at least 3 neighbours at exactly one spacing
    assert torch.allclose(params["scales"], torch.full_like(params["scales"], math.log(spacing)), atol=1e-5)
    identity = init_gaussians(_grid(spacing), None, AABB, GaussianInitConfig(random_quats=False), "cpu")
    assert torch.equal(identity["quats"], torch.tensor([1.0, 0, 0, 0]).expand(216, 4))


def test_knn_matches_a_naive_reference() -> None:
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(300, 3, generator=g) * 10 + 500
    d = torch.cdist(pts.double(), pts.double()).sort(dim=1).values[:, 1:4].mean(dim=1)
    assert torch.allclose(knn_mean_distance(pts, 3, chunk=64).double(), d, atol=1e-4)


def test_subsample_is_seeded_and_capped() -> None:
    pts = torch.rand(2000, 3) * 4 - 2
    cfg = GaussianInitConfig(max_points=300)
    a = init_gaussians(pts, None, AABB, cfg, "cpu", torch.Generator().manual_seed(3))
    b = init_gaussians(pts, None, AABB, cfg, "cpu", torch.Generator().manual_seed(3))
    assert a["means"].shape == (300, 3) and torch.equal(a["means"], b["means"])


def test_voxel_subsample_drops_repeated_scans_and_keeps_sparse_traffic() -> None:
    """A wall scanned 40 times at the same place against a car seen once at 40 places: the voxel grid keeps far
    more of the car than a random subset would (which keeps each point with the same probability)."""
    g = torch.Generator().manual_seed(0)
    wall = (torch.rand(500, 3, generator=g) * torch.tensor([4.0, 0.01, 2.0])).repeat(40, 1)
    wall = wall + 1e-3 * torch.randn(wall.shape, generator=g)  # repeated scans, a millimetre of noise
    car = torch.rand(2000, 3, generator=g) * torch.tensor([40.0, 2.0, 1.5]) + torch.tensor([0.0, 5.0, 0.0])
    pts = torch.cat([wall, car])
    is_car = torch.arange(len(pts)) >= len(wall)
    keep = subsample_points(pts, 1500, "voxel", torch.Generator().manual_seed(1))
    assert keep.numel() == 1500 and keep.unique().numel() == 1500
    car_share = is_car[keep].float().mean().item()
    assert car_share > 0.5 and car_share > 5 * is_car.float().mean().item()  # random keeps ~9 % car points
    again = subsample_points(pts, 1500, "voxel", torch.Generator().manual_seed(1))
    assert torch.equal(keep, again)
    with pytest.raises(InputError, match="subsample"):
        subsample_points(pts, 10, "grid")


def test_random_init_inside_the_box() -> None:
    cfg = GaussianInitConfig(random_count=1000, random_extent=0.5, sh_degree=1)
    params = init_gaussians(None, None, AABB, cfg, "cpu", torch.Generator().manual_seed(4))
    m = params["means"]
    assert m.shape == (1000, 3) and params["shN"].shape == (1000, 3, 3)
    centre, half = AABB.mean(0), (AABB[1] - AABB[0]) / 2
    assert bool(((m - centre).abs() <= half * 0.5 + 1e-6).all())
    assert bool(((m - centre).abs() > half * 0.4).any())  # fills the box, not a point
    assert torch.isfinite(params["scales"]).all()


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(InputError, match="points"):
        init_gaussians(torch.rand(10, 2), None, AABB)
    with pytest.raises(InputError, match="colors"):
        init_gaussians(torch.rand(10, 3), torch.rand(9, 3), AABB)
    with pytest.raises(InputError, match="aabb"):
        init_gaussians(None, None, torch.zeros(2, 3))
    with pytest.raises(InputError, match="colors"):
        init_gaussians(torch.rand(10, 3), torch.rand(10, 3) * 255, AABB)


def test_activated_and_one_optimiser_per_key() -> None:
    params = init_gaussians(torch.rand(50, 3), None, AABB, GaussianInitConfig(sh_degree=1))
    act = activated(params)
    assert torch.allclose(act["quats"].norm(dim=-1), torch.ones(50))
    assert torch.allclose(act["scales"], params["scales"].exp())
    assert act["colors"].shape == (50, 4, 3)
    lrs = LearningRates()
    opts = make_optimizers(params, lrs, scene_scale=10.0)
    assert set(opts) == set(PARAM_KEYS)
    for key, opt in opts.items():
        assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"][0] is params[key]
    assert opts["means"].param_groups[0]["lr"] == pytest.approx(1.6e-3)
    assert opts["shN"].param_groups[0]["lr"] == pytest.approx(2.5e-3 / 20)
    sched = means_lr_scheduler(opts["means"], lrs, max_steps=10)
    for _ in range(10):
        opts["means"].step()
        sched.step()
    assert opts["means"].param_groups[0]["lr"] == pytest.approx(1.6e-5, rel=1e-4)
    params["feat"] = torch.nn.Parameter(torch.zeros(50, 4))
    with pytest.raises(InputError, match="feat"):
        make_optimizers(params, lrs)
    assert make_optimizers(params, lrs, extra_lrs={"feat": 1e-3})["feat"].param_groups[0]["lr"] == 1e-3


def test_knn_of_a_large_cloud_matches_brute_force_rows() -> None:
    """Above 8192 CPU points the k-d tree path (when scipy is importable) must agree with brute force."""
    g = torch.Generator().manual_seed(5)
    pts = torch.rand(9000, 3, generator=g) * 30 + 200
    d = knn_mean_distance(pts)
    ref = torch.cdist(pts[:200].double(), pts.double()).sort(dim=1).values[:, 1:4].mean(dim=1)
    assert d.shape == (9000,) and torch.allclose(d[:200].double(), ref, atol=1e-4)
