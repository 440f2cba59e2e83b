"""The one rasterisation entry point of semdyn.

``render`` draws 3D Gaussians into cameras and returns the image (RGB from spherical harmonics, or
any N-channel feature), the expected depth, the accumulated alpha and, on request, each pixel's top-k
contributing Gaussians with their blend weights ``w = alpha * T`` (what semantic lifting votes with).

On CUDA tensors it calls gsplat. On the CPU it runs semdyn's own differentiable implementation:
projection and spherical harmonics in PyTorch (:mod:`semdyn.ops._torch_impl`) and tile compositing
in the C++/OpenMP extension (:mod:`cuda_ext`), or its pure-PyTorch reference when the extension is
unavailable. Both follow gsplat's classic 3DGS semantics, and tests hold them to each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from semdyn.errors import InputError
from semdyn.ops import _torch_impl
from semdyn.ops._backend import get_ext
from semdyn.ops.rasterize import isect_tiles, rasterize_to_pixels, tile_grid, topk_contributors

log = logging.getLogger("semdyn")

Backend = Literal["auto", "gsplat", "cpu", "torch"]


@dataclass(frozen=True)
class RenderConfig:
    """How Gaussians are rasterised."""

    backend: Backend = "auto"
    """auto: gsplat for CUDA tensors, the C++ extension on the CPU (its PyTorch reference if it cannot be
    built); gsplat, cpu (the extension) or torch (the pure-PyTorch reference) force one."""
    near_plane: float = 0.01
    """Gaussians closer to the camera than this (metres along the optical axis) are culled."""
    far_plane: float = 1e10
    """Gaussians farther than this (metres) are culled."""
    eps2d: float = 0.3
    """Added to the projected 2D covariance's diagonal (pixels squared), as in 3DGS."""
    rasterize_mode: Literal["classic", "antialiased"] = "classic"
    """antialiased scales opacities by the Mip-Splatting compensation factor."""
    tile_size: int = 16
    """Tile edge in pixels."""


@dataclass
class RenderOutput:
    """What :func:`render` returns. C cameras, H x W pixels, D channels, K contributors."""

    image: Tensor
    """[C, H, W, D] colours (RGB in [0, 1] from SH) or features, background blended in."""
    depth: Tensor
    """[C, H, W, 1] expected depth along the optical axis (metres), normalised by alpha; 0 where empty."""
    alpha: Tensor
    """[C, H, W, 1] accumulated opacity."""
    topk_ids: Tensor | None = None
    """[C, H, W, K] int64 index of each pixel's K largest contributors (-1 where fewer), or None."""
    topk_weights: Tensor | None = None
    """[C, H, W, K] blend weights of those contributors, largest first, or None."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Intermediate results in gsplat's layout (``means2d`` with its gradient retained, ``radii``,
    ``width``, ``height``, ``n_cameras``, ...), as gsplat's densification strategies read them."""
    backend: str = ""
    """The backend that drew this: gsplat, cpu or torch."""


_LOGGED: set[str] = set()


def _log_once(key: str, message: str) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        log.info(message)


def _expect(name: str, t: Any, shape: tuple[int | None, ...], expected: str, device: torch.device | None) -> None:
    """Raise InputError unless ``t`` is a float tensor of the given shape (None = any size) and device."""
    if not isinstance(t, Tensor):
        raise InputError(f"render: {name} must be a torch.Tensor of shape {expected}, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        raise InputError(f"render: {name} must have shape {expected}, got {list(t.shape)}")
    if not t.is_floating_point():
        raise InputError(f"render: {name} must be a floating-point tensor of shape {expected}, got {t.dtype}")
    if device is not None and t.device != device:
        raise InputError(f"render: {name} is on {t.device} but means is on {device}; put all inputs on one device")


def _validate(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,
    topk: int,
) -> None:
    _expect("means", means, (None, 3), "[N, 3]", None)
    n, dev = means.shape[0], means.device
    _expect("quats", quats, (n, 4), f"[N, 4] with N={n}", dev)
    _expect("scales", scales, (n, 3), f"[N, 3] with N={n}", dev)
    _expect("opacities", opacities, (n,), f"[N] with N={n}", dev)
    if sh_degree is None:
        _expect("colors", colors, (n, None), f"[N, D] features with N={n} (or pass sh_degree for SH)", dev)
    else:
        if not 0 <= sh_degree <= 3:
            raise InputError(f"render: sh_degree must be 0, 1, 2 or 3, got {sh_degree}")
        k_min = (sh_degree + 1) ** 2
        _expect("colors", colors, (n, None, 3), f"[N, K, 3] SH coefficients with N={n}, K>={k_min}", dev)
        if colors.shape[1] < k_min:
            raise InputError(
                f"render: colors must have shape [N, K, 3] with K>={k_min} for sh_degree={sh_degree}, "
                f"got {list(colors.shape)}"
            )
    _expect("viewmats", viewmats, (None, 4, 4), "[C, 4, 4] world-to-camera", dev)
    c = viewmats.shape[0]
    _expect("Ks", Ks, (c, 3, 3), f"[C, 3, 3] with C={c}", dev)
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"render: {name} must be a positive int, got {v!r}")
    if backgrounds is not None:
        d = colors.shape[-1]
        _expect("backgrounds", backgrounds, (c, d), f"[C, D] with C={c}, D={d}", dev)
    if not isinstance(topk, int) or not 0 <= topk <= 32:
        raise InputError(f"render: topk must be an int in [0, 32], got {topk!r}")


def render(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    topk: int = 0,
    config: RenderConfig = RenderConfig(),
) -> RenderOutput:
    """Rasterise 3D Gaussians into C pinhole cameras.

    Args:
        means: [N, 3] centres in world coordinates (metres).
        quats: [N, 4] rotations as quaternions (w, x, y, z), any norm.
        scales: [N, 3] standard deviations along the local axes (metres, not log).
        opacities: [N] in [0, 1] (after the sigmoid).
        colors: [N, K, 3] SH coefficients when ``sh_degree`` is given, else [N, D] features.
        viewmats: [C, 4, 4] world-to-camera transforms (OpenCV: +x right, +y down, +z forward).
        Ks: [C, 3, 3] pinhole intrinsics (pixels).
        width, height: image size (pixels).
        sh_degree: degree of SH to evaluate (0-3), or None for plain features.
        backgrounds: [C, D] colour blended behind the Gaussians, or None (black).
        topk: number of per-pixel contributors to return (0 = none, at most 32).
        config: rasterisation options.

    Returns:
        A :class:`RenderOutput`. Raises :class:`semdyn.errors.InputError` (a ValueError) naming the
        argument and its expected shape on bad input.
    """
    _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, topk)
    backend = config.backend
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "cpu"
    if backend == "gsplat":
        if not means.is_cuda:
            raise InputError("render: backend 'gsplat' needs CUDA tensors; use backend 'cpu' for CPU tensors")
        return _render_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, topk, config
        )
    return _render_cpu(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        sh_degree,
        backgrounds,
        topk,
        config,
        backend,
    )


def _colors_per_camera(means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: int | None) -> Tensor:
    """[C, N, D] colours: SH evaluated towards each camera centre (+0.5, clamped at 0) or features."""
    c = viewmats.shape[0]
    if sh_degree is None:
        return colors[None].expand(c, -1, -1)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None] - campos[:, None]  # [C, N, 3]
    rgb = _torch_impl._eval_sh(sh_degree, dirs, colors[None].expand(c, -1, -1, -1))
    return torch.clamp_min(rgb + 0.5, 0.0)


def _render_cpu(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,
    topk: int,
    config: RenderConfig,
    backend: str,
) -> RenderOutput:
    ops_backend = "torch" if backend == "torch" else "auto"
    covars = _torch_impl._covariances(quats, scales)
    radii, means2d, depths, conics, comp = _torch_impl._project(
        means,
        covars,
        viewmats,
        Ks,
        width,
        height,
        config.eps2d,
        config.near_plane,
        config.far_plane,
        antialiased=config.rasterize_mode == "antialiased",
    )
    opac = opacities[None] * comp  # [C, N]
    feats = torch.cat([_colors_per_camera(means, colors, viewmats, sh_degree), depths[..., None]], dim=-1)
    bg = None
    if backgrounds is not None:
        bg = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)
    isect = None
    if ops_backend != "torch":
        isect = isect_tiles(means2d, radii, depths, width, height, config.tile_size)

    used = "cpu" if ops_backend != "torch" and get_ext() is not None else "torch"
    _log_once(used, f"semdyn: rendering on the CPU with the {'C++' if used == 'cpu' else 'pure-PyTorch'} rasteriser")
    img, alpha = rasterize_to_pixels(
        means2d,
        conics,
        feats,
        opac,
        radii,
        depths,
        width,
        height,
        config.tile_size,
        bg,
        isect=isect if used == "cpu" else None,
        backend=ops_backend,
    )
    out = RenderOutput(
        image=img[..., :-1],
        depth=img[..., -1:] / alpha.clamp_min(1e-10),
        alpha=alpha,
        backend=used,
        meta=_meta(radii, means2d, depths, conics, opac, width, height, config.tile_size, isect),
    )
    if topk:
        out.topk_ids, out.topk_weights = topk_contributors(
            means2d.detach(),
            conics.detach(),
            opac.detach(),
            radii,
            depths.detach(),
            width,
            height,
            topk,
            config.tile_size,
            isect=isect if used == "cpu" else None,
            backend=ops_backend,
        )
    return out


def _meta(
    radii: Tensor,
    means2d: Tensor,
    depths: Tensor,
    conics: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    tile_size: int,
    isect: tuple[Tensor, Tensor] | None,
) -> dict[str, Any]:
    """Intermediates in the layout of gsplat.rasterization's meta (non-packed)."""
    if means2d.requires_grad:
        means2d.retain_grad()
    tile_w, tile_h = tile_grid(width, height, tile_size)
    return {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": opacities,
        "tile_width": tile_w,
        "tile_height": tile_h,
        "isect_offsets": isect[0] if isect else None,
        "flatten_ids": isect[1] if isect else None,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": radii.shape[0],
    }


def _render_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,
    topk: int,
    config: RenderConfig,
) -> RenderOutput:
    from gsplat import rasterization

    _log_once("gsplat", "semdyn: rendering with gsplat (CUDA)")
    img, alpha, meta = rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        near_plane=config.near_plane,
        far_plane=config.far_plane,
        eps2d=config.eps2d,
        sh_degree=sh_degree,
        packed=False,
        tile_size=config.tile_size,
        backgrounds=backgrounds,
        render_mode="RGB+ED",
        rasterize_mode=config.rasterize_mode,
    )
    out = RenderOutput(image=img[..., :-1], depth=img[..., -1:], alpha=alpha, meta=meta, backend="gsplat")
    if topk:
        out.topk_ids, out.topk_weights = topk_contributors(
            meta["means2d"].detach(),
            meta["conics"].detach(),
            meta["opacities"].detach(),
            meta["radii"],
            meta["depths"].detach(),
            width,
            height,
            topk,
            config.tile_size,
            isect=(meta["isect_offsets"], meta["flatten_ids"]),
        )
    return out
