"""Random scenes for the rendering tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def look_at_viewmat(eye: Tensor, target: Tensor) -> Tensor:
    """World-to-camera [4, 4] (OpenCV: +z forward, +y down) for a camera at eye looking at target."""
    fwd = torch.nn.functional.normalize(target - eye, dim=0)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, up), dim=0)
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])  # rows: camera axes in world
    view = torch.eye(4, dtype=eye.dtype)
    view[:3, :3] = R
    view[:3, 3] = -R @ eye
    return view


def random_scene(
    n: int,
    cameras: int = 2,
    width: int = 48,
    height: int = 32,
    seed: int = 0,
    sh_degree: int | None = 1,
    feature_dim: int = 3,
) -> dict:
    """N random Gaussians in a 2 m ball in front of C cameras, with the kwargs of ``semdyn.render.render``."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 2.0
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 1.5 - 3.5)  # 3 cm to 13 cm
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(n, feature_dim, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3
    views, Ks = [], []
    for c in range(cameras):
        ang = 2 * math.pi * c / max(cameras, 1) + 0.3
        eye = torch.tensor([3.5 * math.cos(ang), 3.5 * math.sin(ang), 0.8])
        views.append(look_at_viewmat(eye, torch.zeros(3)))
        f = 0.9 * width
        Ks.append(torch.tensor([[f, 0.0, width / 2 + 1.3], [0.0, f, height / 2 - 0.7], [0.0, 0.0, 1.0]]))
    return dict(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=torch.stack(views),
        Ks=torch.stack(Ks),
        width=width,
        height=height,
        sh_degree=sh_degree,
    )
