"""The render entry point: input validation, known answers, the CPU fallback and what strategies read."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from semdyn.errors import InputError
from semdyn.render import RenderConfig, render
from tests.helpers import look_at_viewmat, random_scene


@pytest.fixture
def scene() -> dict:
    return random_scene(50, cameras=2, width=32, height=24, seed=1)


@pytest.mark.parametrize(
    "name,bad,expected",
    [
        ("means", torch.zeros(50, 2), "[N, 3]"),
        ("quats", torch.zeros(50, 3), "[N, 4]"),
        ("quats", torch.zeros(49, 4), "[N, 4]"),
        ("scales", torch.zeros(50), "[N, 3]"),
        ("opacities", torch.zeros(50, 1), "[N]"),
        ("colors", torch.zeros(50, 4), "[N, K, 3]"),
        ("colors", torch.zeros(50, 3, 3), "K>=4"),
        ("viewmats", torch.zeros(2, 3, 4), "[C, 4, 4]"),
        ("Ks", torch.zeros(3, 3, 3), "[C, 3, 3]"),
        ("means", torch.zeros(50, 3, dtype=torch.int32), "floating-point"),
        ("quats", "not a tensor", "torch.Tensor"),
        ("width", 0, "positive int"),
        ("height", 24.0, "positive int"),
    ],
)
def test_bad_input_names_argument_and_shape(scene: dict, name: str, bad, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        render(**{**scene, name: bad})
    assert isinstance(info.value, InputError)
    assert name in str(info.value) and expected in str(info.value)


def test_bad_background_device_and_topk(scene: dict) -> None:
    with pytest.raises(InputError, match=r"backgrounds must have shape \[C, D\]"):
        render(**scene, backgrounds=torch.zeros(3, 3))
    with pytest.raises(InputError, match="scales is on meta"):
        render(**{**scene, "scales": scene["scales"].to("meta")})
    with pytest.raises(InputError, match="topk"):
        render(**scene, topk=64)
    with pytest.raises(InputError, match="sh_degree"):
        render(**scene | {"sh_degree": 4})
    with pytest.raises(InputError, match="CUDA"):
        render(**scene, config=RenderConfig(backend="gsplat"))


def test_single_opaque_disc_known_colour_and_depth() -> None:
    """A wide, flat, opaque Gaussian 5 m in front of the camera: its colour and its depth at the centre."""
    view = look_at_viewmat(torch.tensor([0.0, -5.0, 0.0]), torch.zeros(3))
    K = torch.tensor([[40.0, 0, 16.0], [0, 40.0, 12.0], [0, 0, 1.0]])
    sh = torch.zeros(1, 1, 3)
    sh[0, 0] = torch.tensor([0.5, -0.5, 1.0]) / 0.28209479177387814  # colour = coeff * C0 + 0.5
    out = render(
        means=torch.zeros(1, 3),
        quats=torch.tensor([[1.0, 0, 0, 0]]),
        scales=torch.tensor([[2.0, 1e-3, 2.0]]),
        opacities=torch.tensor([0.99]),
        colors=sh,
        viewmats=view[None],
        Ks=K[None],
        width=32,
        height=24,
        sh_degree=0,
        backgrounds=torch.tensor([[0.0, 0.0, 1.0]]),
    )
    centre = out.image[0, 12, 16]
    a = out.alpha[0, 12, 16, 0].item()
    assert a == pytest.approx(0.99, abs=1e-3)
    assert torch.allclose(centre, torch.tensor([1.0, 0.0, 1.5]) * a + torch.tensor([0, 0, 1.0]) * (1 - a), atol=1e-3)
    assert out.depth[0, 12, 16, 0].item() == pytest.approx(5.0, abs=1e-3)


def test_features_and_meta_for_strategies(scene: dict) -> None:
    s = random_scene(80, cameras=1, width=40, height=30, seed=2, sh_degree=None, feature_dim=7)
    means = s["means"].requires_grad_(True)
    out = render(**s)
    assert out.image.shape == (1, 30, 40, 7) and out.depth.shape == (1, 30, 40, 1) and out.alpha.shape == (1, 30, 40, 1)
    meta = out.meta
    assert meta["n_cameras"] == 1 and meta["width"] == 40 and meta["height"] == 30
    assert meta["radii"].shape == (1, 80) and meta["means2d"].shape == (1, 80, 2)
    out.image.sum().backward()
    assert meta["means2d"].grad is not None and meta["means2d"].grad.abs().sum() > 0
    assert means.grad is not None


def test_fallback_without_extension_says_so() -> None:
    """SEMDYN_BUILD_NO_EXT=1 renders with the PyTorch reference and logs one line saying why."""
    code = (
        "import logging, torch; logging.basicConfig(level=logging.INFO);"
        "from tests.helpers import random_scene; from semdyn.render import render;"
        "o = render(**random_scene(20, cameras=1, width=16, height=16)); print('BACKEND', o.backend)"
    )
    env = {**os.environ, "SEMDYN_BUILD_NO_EXT": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "BACKEND torch" in res.stdout
    assert res.stderr.count("SEMDYN_BUILD_NO_EXT is set") == 1


def test_gaussians_behind_or_at_the_camera_get_finite_zero_gradients() -> None:
    """A Gaussian at depth ~0 is culled; 1/z must not overflow into NaN gradients."""
    s = random_scene(30, cameras=1, width=32, height=24, seed=3)
    eye = torch.linalg.inv(s["viewmats"][0])[:3, 3]
    means = s["means"].clone()
    means[0] = eye + 1e-21  # at the camera centre: z ~ 1e-21
    means[1] = eye - 5.0 * s["viewmats"][0, 2, :3]  # 5 m behind the camera
    means.requires_grad_(True)
    out = render(**{**s, "means": means})
    (out.image.sum() + out.alpha.sum()).backward()
    assert torch.isfinite(means.grad).all()
    assert means.grad[:2].abs().sum() == 0
    assert (out.meta["radii"][0, :2] == 0).all()
