"""The sky environment map, its ray directions and compositing."""

from __future__ import annotations

import math

import pytest
import torch

from semdyn.errors import InputError
from semdyn.scene import SkyConfig, SkyModel, composite_sky, pixel_directions, sky_opacity_loss


def _rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    k = axis / axis.norm()
    kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return torch.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _cameras() -> tuple[torch.Tensor, torch.Tensor]:
    rots = [_rotation(torch.tensor([0.3, -1.0, 0.5]), 0.7), _rotation(torch.tensor([1.0, 0.2, 0.0]), -2.0)]
    viewmats = torch.eye(4).repeat(2, 1, 1)
    for i, r in enumerate(rots):
        viewmats[i, :3, :3] = r
        viewmats[i, :3, 3] = torch.tensor([1.0, -2.0, 0.5 * i])
    Ks = torch.tensor([[[30.0, 0, 7.5], [0, 25.0, 4.5], [0, 0, 1]], [[20.0, 0, 3.5], [0, 20.0, 2.5], [0, 0, 1]]])
    return viewmats, Ks


def test_principal_point_looks_along_the_camera_forward_axis() -> None:
    viewmats, Ks = _cameras()
    dirs = pixel_directions(viewmats, Ks, 12, 8)
    assert dirs.shape == (2, 8, 12, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(2, 8, 12), atol=1e-6)
    # principal points (7.5, 4.5) and (3.5, 2.5) are the centres of pixels (7, 4) and (3, 2)
    forward = viewmats[:, 2, :3]  # camera +z in world: third row of the world-to-camera rotation
    assert torch.allclose(dirs[0, 4, 7], forward[0], atol=1e-6)
    assert torch.allclose(dirs[1, 2, 3], forward[1], atol=1e-6)
    # pixels to the right lean towards camera +x
    right = viewmats[0, 0, :3]
    assert float(dirs[0, 4, 11] @ right) > float(dirs[0, 4, 7] @ right)


def test_sky_fits_a_constant_colour() -> None:
    viewmats, Ks = _cameras()
    sky = SkyModel(SkyConfig(height=16, width=32))
    target = torch.tensor([0.2, 0.5, 0.9])
    opt = torch.optim.Adam(sky.parameters(), lr=0.2)
    for _ in range(40):
        loss = (sky.render(viewmats, Ks, 12, 8) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((sky.render(viewmats, Ks, 12, 8).detach() - target).abs().max()) < 0.03


def test_sky_lookup_wraps_in_azimuth_and_orients_up() -> None:
    sky = SkyModel(SkyConfig(height=8, width=16))
    with torch.no_grad():
        sky.texture.fill_(-5.0)
        sky.texture[:, 0, :4] = 5.0  # red in the top rows (up)
        sky.texture[:, 1, 4:, 0] = 5.0  # green in the first column (azimuth -180) ...
        sky.texture[:, 1, 4:, -1] = 5.0  # ... and the last (+180)
    rgb = sky(torch.tensor([[0.0, 0.0, 1.0], [-1.0, 1e-4, -0.5], [-1.0, -1e-4, -0.5], [1.0, 0.0, -0.5]]))
    assert rgb[0, 0] > 0.9  # up is red
    assert rgb[1, 1] > 0.9 and rgb[2, 1] > 0.9  # behind (azimuth +-180) is green from both sides: no seam
    assert rgb[3, 1] < 0.1


def test_composite_formula_and_sky_loss() -> None:
    g = torch.Generator().manual_seed(0)
    image, alpha, sky = torch.rand(2, 4, 5, 3, generator=g), torch.rand(2, 4, 5, 1, generator=g), torch.rand(2, 4, 5, 3)
    out = composite_sky(image, alpha, sky)
    assert torch.allclose(out, image + (1 - alpha) * sky)
    assert torch.equal(composite_sky(image, torch.ones_like(alpha), sky), image)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[0, :2] = True
    alpha.requires_grad_()
    loss = sky_opacity_loss(alpha, mask)
    assert torch.allclose(loss, alpha[0, :2].mean())
    loss.backward()
    assert alpha.grad[1].abs().sum() == 0
    assert float(sky_opacity_loss(alpha.detach(), torch.zeros_like(mask))) == 0.0
    with pytest.raises(InputError, match="alpha"):
        composite_sky(image, alpha[..., 0], sky)
