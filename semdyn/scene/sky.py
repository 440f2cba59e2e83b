"""The sky as a learned environment map, so that it is not explained by floaters.

Gaussians draw the scene over a black background; whatever opacity they leave, ``1 - alpha``, shows
the sky: a colour looked up by each pixel's world-space ray direction in an equirectangular texture
(:class:`SkyModel`), blended in by :func:`composite_sky`. With sky masks (from a segmenter),
:func:`sky_opacity_loss` keeps Gaussians out of the sky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semdyn.errors import InputError
from semdyn.shapes import check_shape


@dataclass(frozen=True)
class SkyConfig:
    """The learned sky environment map."""

    height: int = 64
    """Texture rows, from straight up (row 0) to straight down (elevation +90 to -90 degrees)."""
    width: int = 128
    """Texture columns, azimuth -180 to +180 degrees about the up axis, wrapping around."""
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """World up direction (semdyn's world frame is z up)."""
    forward: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """World direction of azimuth 0 (the texture's middle column); must not be parallel to ``up``."""
    init_color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Initial RGB in (0, 1) of the whole texture."""
    lr: float = 1e-2
    """Adam learning rate of the texture logits."""


def _check_cameras(name: str, viewmats: Tensor, Ks: Tensor, width: int, height: int) -> None:
    dims: dict[str, int] = {}
    check_shape(viewmats, "[C, 4, 4]", f"{name}: viewmats", dims=dims)
    check_shape(Ks, "[C, 3, 3]", f"{name}: Ks", dims=dims)
    if Ks.device != viewmats.device:
        raise InputError(f"{name}: Ks is on {Ks.device} but viewmats is on {viewmats.device}")
    for arg, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"{name}: {arg} must be a positive int, got {v!r}")


def pixel_directions(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """Unit world-space direction of the ray through each pixel centre.

    Args:
        viewmats: [C, 4, 4] world-to-camera transforms (OpenCV: +x right, +y down, +z forward).
        Ks: [C, 3, 3] pinhole intrinsics (pixels); pixel (u, v) has its centre at (u + 0.5, v + 0.5).
        width, height: image size (pixels).

    Returns:
        [C, H, W, 3] unit directions in world coordinates.
    """
    _check_cameras("pixel_directions", viewmats, Ks, width, height)
    dev, dt = viewmats.device, viewmats.dtype
    v, u = torch.meshgrid(
        torch.arange(height, device=dev, dtype=dt) + 0.5, torch.arange(width, device=dev, dtype=dt) + 0.5, indexing="ij"
    )
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # [H, W, 3]
    cam = torch.einsum("cij,hwj->chwi", torch.linalg.inv(Ks.to(dt)), pix)  # [C, H, W, 3]
    rot = viewmats[:, :3, :3]  # world-to-camera rotation; its transpose takes camera axes to world
    world = torch.einsum("cji,chwj->chwi", rot, cam)
    return F.normalize(world, dim=-1)


class SkyModel(nn.Module):
    """An equirectangular RGB texture (sigmoid of learned logits) looked up by ray direction."""

    basis: Tensor
    """[3, 3] buffer (registered in __init__): rows the local axes azimuth 0, +90, up."""

    def __init__(self, config: SkyConfig = SkyConfig(), device: torch.device | str = "cpu") -> None:
        super().__init__()
        if config.height < 2 or config.width < 2:
            raise InputError(
                f"SkyModel: config.height and config.width must be >= 2, got {config.height}x{config.width}"
            )
        if not all(0.0 < c < 1.0 for c in config.init_color):
            raise InputError(f"SkyModel: config.init_color must lie in (0, 1), got {config.init_color}")
        up = F.normalize(torch.tensor(config.up, dtype=torch.float32), dim=0)
        fwd = torch.tensor(config.forward, dtype=torch.float32)
        fwd = fwd - (fwd @ up) * up
        if fwd.norm() < 1e-6:
            raise InputError(f"SkyModel: config.forward {config.forward} is parallel to config.up {config.up}")
        fwd = F.normalize(fwd, dim=0)
        left = torch.linalg.cross(up, fwd)
        self.config = config
        self.register_buffer("basis", torch.stack([fwd, left, up]).to(device))  # [3, 3] rows: azimuth 0, +90, up
        logits = torch.logit(torch.tensor(config.init_color, dtype=torch.float32))
        self.texture = nn.Parameter(logits.view(1, 3, 1, 1).repeat(1, 1, config.height, config.width).to(device))
        """[1, 3, H, W] logits of the texture colours."""

    def forward(self, directions: Tensor) -> Tensor:
        """Sky colour seen along world directions. [..., 3] (any norm) -> [..., 3] RGB in (0, 1)."""
        if not isinstance(directions, Tensor) or directions.shape[-1:] != (3,):
            raise InputError(f"SkyModel: directions must have shape [..., 3], got {getattr(directions, 'shape', None)}")
        d = F.normalize(directions.reshape(-1, 3).to(self.basis.dtype), dim=-1) @ self.basis.T  # [M, 3] local
        azimuth = torch.atan2(d[:, 1], d[:, 0])  # (-pi, pi]
        elevation = torch.asin(d[:, 2].clamp(-1.0, 1.0))  # [-pi/2, pi/2]
        w = self.config.width
        x = azimuth / math.pi  # [-1, 1] over the W texels (align_corners=False)
        x = ((x + 1) * w + 2) / (w + 2) - 1  # the same place in the texture padded by one column each side
        y = -elevation / (math.pi / 2)
        tex = torch.sigmoid(self.texture)
        tex = torch.cat([tex[..., -1:], tex, tex[..., :1]], dim=-1)  # wrap around in azimuth
        grid = torch.stack([x, y], dim=-1)[None, None]  # [1, 1, M, 2]
        rgb = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)  # [1, 3, 1, M]
        return rgb[0, :, 0].T.reshape(*directions.shape[:-1], 3)

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
        """[C, H, W, 3] sky colour of every pixel of C cameras (arguments as :func:`pixel_directions`)."""
        return self(pixel_directions(viewmats, Ks, width, height))


def composite_sky(image: Tensor, alpha: Tensor, sky_rgb: Tensor) -> Tensor:
    """Blend the sky behind Gaussians rendered over black: ``image + (1 - alpha) * sky_rgb``.

    Args:
        image: [C, H, W, 3] rendered colours with a black background.
        alpha: [C, H, W, 1] accumulated opacity.
        sky_rgb: [C, H, W, 3] sky colours (:meth:`SkyModel.render`).

    Returns:
        [C, H, W, 3] composited colours.
    """
    if image.dim() != 4 or image.shape[-1] != 3:
        raise InputError(f"composite_sky: image must have shape [C, H, W, 3], got {list(image.shape)}")
    if alpha.shape != (*image.shape[:-1], 1):
        raise InputError(f"composite_sky: alpha must have shape {[*image.shape[:-1], 1]}, got {list(alpha.shape)}")
    if sky_rgb.shape != image.shape:
        raise InputError(f"composite_sky: sky_rgb must have shape {list(image.shape)}, got {list(sky_rgb.shape)}")
    return image + (1.0 - alpha) * sky_rgb


def sky_opacity_loss(alpha: Tensor, sky_mask: Tensor) -> Tensor:
    """Mean accumulated opacity over the pixels the ground truth calls sky (0 when there are none).

    Args:
        alpha: [C, H, W, 1] accumulated opacity.
        sky_mask: [C, H, W, 1] or [C, H, W], bool (or 0/1) true where the pixel is sky.

    Returns:
        Scalar loss, differentiable in ``alpha``.
    """
    if alpha.dim() != 4 or alpha.shape[-1] != 1:
        raise InputError(f"sky_opacity_loss: alpha must have shape [C, H, W, 1], got {list(alpha.shape)}")
    mask = sky_mask if sky_mask.dim() == 4 else sky_mask[..., None]
    if mask.shape != alpha.shape:
        raise InputError(f"sky_opacity_loss: sky_mask must have shape {list(alpha.shape[:-1])} (or [..., 1])")
    mask = mask.to(alpha.dtype)
    return (alpha * mask).sum() / mask.sum().clamp_min(1.0)
