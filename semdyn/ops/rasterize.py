"""Public wrappers of the CPU rasterisation ops: tile binning, compositing (with autograd) and top-k.

Each wrapper calls the compiled extension when it is available and the pure-PyTorch reference of
:mod:`semdyn.ops._torch_impl` otherwise (or when ``backend="torch"`` is asked for). Inputs are
per-camera projected Gaussians: means2d [C, N, 2] (pixels), conics [C, N, 3], opacities [C, N],
colors [C, N, D], radii [C, N] int32, depths [C, N] (metres).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from semdyn.ops import _torch_impl
from semdyn.ops._backend import ext_unavailable_reason, get_ext

Backend = Literal["auto", "ext", "torch"]


def _use_ext(backend: Backend) -> Any:
    if backend == "torch":
        return None
    ext = get_ext()
    if ext is None and backend == "ext":
        raise RuntimeError(f"semdyn's extension was asked for but is unavailable: {ext_unavailable_reason()}")
    return ext


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles across and down an image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)


@torch.no_grad()
def isect_tiles(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    tile_size: int = 16,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Bin Gaussians into tiles, each tile's list sorted front to back (gsplat's layout).

    Returns:
        tile_offsets [C, tile_h, tile_w] int32 and flatten_ids [M] int32 (values ``c * N + n``).
    """
    tile_w, tile_h = tile_grid(width, height, tile_size)
    ext = _use_ext(backend) if means2d.device.type == "cpu" else None
    if ext is None:
        return _torch_impl._isect_tiles(means2d, radii, depths, tile_size, tile_w, tile_h)
    return ext.isect_tiles_cpu(
        means2d.detach().float().contiguous(),
        radii.int().contiguous(),
        depths.detach().float().contiguous(),
        tile_size,
        tile_w,
        tile_h,
    )


class _RasterizeCPU(torch.autograd.Function):
    """Compositing through the C++ extension, with its hand-written backward."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, backgrounds, width, height, tile_size, offsets, flat_ids):
        ext = _use_ext("ext")  # rasterize_to_pixels found it loaded
        bg = backgrounds if backgrounds is not None else torch.empty(0)
        render, alpha, last = ext.rasterize_fwd_cpu(
            means2d, conics, colors, opacities, bg, width, height, tile_size, offsets, flat_ids
        )
        ctx.save_for_backward(means2d, conics, colors, opacities, bg, offsets, flat_ids, alpha, last)
        ctx.dims = (width, height, tile_size)
        ctx.has_bg = backgrounds is not None
        return render, alpha

    @staticmethod
    def backward(ctx, *grad_outputs):  # torch's signature; forward has two outputs
        v_render, v_alpha = grad_outputs
        means2d, conics, colors, opacities, bg, offsets, flat_ids, alpha, last = ctx.saved_tensors
        width, height, tile_size = ctx.dims
        v_means2d, v_conics, v_colors, v_opac, v_bg = _use_ext("ext").rasterize_bwd_cpu(
            means2d,
            conics,
            colors,
            opacities,
            bg,
            width,
            height,
            tile_size,
            offsets,
            flat_ids,
            alpha,
            last,
            v_render.contiguous(),
            v_alpha.contiguous(),
        )
        return v_means2d, v_conics, v_colors, v_opac, (v_bg if ctx.has_bg else None), None, None, None, None, None


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    isect: tuple[Tensor, Tensor] | None = None,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Alpha-composite projected Gaussians front to back (differentiable).

    Args:
        isect: (tile_offsets, flatten_ids) from :func:`isect_tiles`, computed here when None.

    Returns:
        render [C, H, W, D] (background blended in where given), alpha [C, H, W, 1].
    """
    ext = _use_ext(backend)
    if ext is None:
        return _torch_impl._rasterize_to_pixels(
            means2d, conics, colors, opacities, radii, depths, width, height, tile_size, backgrounds
        )
    if isect is None:
        isect = isect_tiles(means2d, radii, depths, width, height, tile_size, backend="ext")
    bg = backgrounds.float().contiguous() if backgrounds is not None else None
    return _RasterizeCPU.apply(
        means2d.float().contiguous(),
        conics.float().contiguous(),
        colors.float().contiguous(),
        opacities.float().contiguous(),
        bg,
        width,
        height,
        tile_size,
        *isect,
    )


@torch.no_grad()
def topk_contributors(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    k: int,
    tile_size: int = 16,
    isect: tuple[Tensor, Tensor] | None = None,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Each pixel's k Gaussians of largest blend weight ``w = alpha * T`` (forward only).

    Runs the extension's CPU or CUDA kernel (CUDA when the inputs are on a GPU and the extension was
    built with CUDA), else the reference.

    Returns:
        ids [C, H, W, k] int64 (index into the N Gaussians; -1 where fewer than k contribute) and
        weights [C, H, W, k] float32, sorted largest first.
    """
    ext = _use_ext(backend)
    if ext is not None and means2d.is_cuda and not ext.built_with_cuda():
        ext = None
    if ext is None:
        return _torch_impl._topk_contributors(means2d, conics, opacities, radii, depths, width, height, k, tile_size)
    if isect is None:
        isect = isect_tiles(means2d, radii, depths, width, height, tile_size, backend=backend)
    offsets, flat_ids = isect
    return ext.topk_contributors(
        means2d.float().contiguous(),
        conics.float().contiguous(),
        opacities.float().contiguous(),
        width,
        height,
        tile_size,
        offsets.int().contiguous(),
        flat_ids.int().contiguous(),
        k,
    )
