"""Pure-PyTorch references of semdyn's rendering ops.

Each function here is the readable definition of an op that :mod:`cuda_ext` implements fast (C++ on
the CPU, CUDA on a GPU); tests compare the two, forward and backward. They are also the fallback
when the extension cannot be built (``SEMDYN_BUILD_NO_EXT=1``). The projection and spherical
harmonics are differentiable and used by every CPU render; the compositor here is dense
(every pixel against every Gaussian, masked by tiles) and meant for small scenes.

Conventions (as in gsplat): pixel centres at ``(x + 0.5, y + 0.5)``; conics ``(a, b, c)`` are the upper
triangle of the inverse 2D covariance; ``sigma = 0.5 * (a dx^2 + c dy^2) + b dx dy``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from semdyn.conventions import SH_C0, quat_to_rotmat

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4

_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """Batched product of small matrices by broadcasting; much faster than bmm for 2x3 and 3x3 on the CPU."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariances ``R S S^T R^T``. quats [N, 4], scales [N, 3] (metres) -> [N, 3, 3]."""
    m = quat_to_rotmat(quats) * scales[:, None, :]
    return _mm(m, m.transpose(-1, -2))


def _project(
    means: Tensor,
    covars: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """EWA projection of 3D Gaussians into pinhole cameras.

    Args:
        means: [N, 3] world positions (metres). covars: [N, 3, 3]. viewmats: [C, 4, 4] world-to-camera
        (OpenCV: +z forward, +y down). Ks: [C, 3, 3] intrinsics (pixels).
        eps2d: added to the 2D covariance diagonal (pixels^2), as in gsplat.
        antialiased: also return the opacity compensation of Mip-Splatting (else ones).

    Returns:
        radii [C, N] int32 (0 = culled), means2d [C, N, 2] pixels, depths [C, N] camera z (metres),
        conics [C, N, 3], compensations [C, N].
    """
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    means_c = (R[:, None] * means[None, :, None, :]).sum(-1) + t[:, None, :]
    x, y, z_raw = means_c.unbind(-1)
    # Culled Gaussians (behind the camera or beyond the far plane) get a harmless depth, so that 1/z and 1/z^2
    # cannot overflow into inf and turn their zero gradients into NaN.
    in_depth = (z_raw >= near_plane) & (z_raw <= far_plane)
    z = torch.where(in_depth, z_raw, torch.ones_like(z_raw))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Clamp the Jacobian's view direction to 1.3x the field of view, as 3DGS does, for stability.
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    xc = z * torch.clamp(x / z, min=-(cx / fx + 0.3 * tan_x), max=(width - cx) / fx + 0.3 * tan_x)
    yc = z * torch.clamp(y / z, min=-(cy / fy + 0.3 * tan_y), max=(height - cy) / fy + 0.3 * tan_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * xc / z**2, zero, fy / z, -fy * yc / z**2], dim=-1).unflatten(-1, (2, 3))
    JR = _mm(J, R[:, None])  # [C, N, 2, 3]: world -> image Jacobian
    cov2d = _mm(_mm(JR, covars[None]), JR.transpose(-1, -2))
    det_raw = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det = (a * c - b * b).clamp(min=1e-10)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    if antialiased:
        compensations = torch.sqrt(torch.clamp(det_raw / det, min=0.0))
    else:
        compensations = torch.ones_like(det)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    with torch.no_grad():
        half_trace = 0.5 * (a + c)
        radius = torch.ceil(3.0 * torch.sqrt(half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))))
        valid = in_depth & (det > 0) & (radius > 0)
        u, v = means2d[..., 0], means2d[..., 1]
        valid &= (u + radius > 0) & (u - radius < width) & (v + radius > 0) & (v - radius < height)
        radii = torch.where(valid, radius, torch.zeros_like(radius)).int()
    return radii, means2d, z_raw, conics, compensations


def _eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate real spherical harmonics (3DGS ordering) up to ``degree``.

    Args:
        dirs: [..., 3] view directions (any length). coeffs: [..., K, 3] with K >= (degree + 1)^2.

    Returns:
        [..., 3] colours (without the +0.5 offset).
    """
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    basis = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        basis += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        basis += [
            _SH_C2[0] * x * y,
            _SH_C2[1] * y * z,
            _SH_C2[2] * (2 * zz - xx - yy),
            _SH_C2[3] * x * z,
            _SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        basis += [
            _SH_C3[0] * y * (3 * xx - yy),
            _SH_C3[1] * x * y * z,
            _SH_C3[2] * y * (4 * zz - xx - yy),
            _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _SH_C3[4] * x * (4 * zz - xx - yy),
            _SH_C3[5] * z * (xx - yy),
            _SH_C3[6] * x * (xx - 3 * yy),
        ]
    b = torch.stack(basis, dim=-1)  # [..., (degree+1)^2]
    return (b[..., None] * coeffs[..., : b.shape[-1], :]).sum(dim=-2)


@torch.no_grad()
def _tile_rects(means2d: Tensor, radii: Tensor, tile_size: int, tile_w: int, tile_h: int) -> Tensor:
    """Tile rectangle ``[x0, x1, y0, y1)`` each Gaussian touches. [C, N, 2], [C, N] -> [C, N, 4] int64."""
    t = means2d / tile_size
    r = radii.to(means2d.dtype) / tile_size
    x0 = torch.floor(t[..., 0] - r).clamp(0, tile_w)
    x1 = torch.ceil(t[..., 0] + r).clamp(0, tile_w)
    y0 = torch.floor(t[..., 1] - r).clamp(0, tile_h)
    y1 = torch.ceil(t[..., 1] + r).clamp(0, tile_h)
    rect = torch.stack([x0, x1, y0, y1], dim=-1).long()
    return torch.where((radii > 0)[..., None], rect, torch.zeros_like(rect))


@torch.no_grad()
def _isect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tile_w: int, tile_h: int
) -> tuple[Tensor, Tensor]:
    """Reference of ``isect_tiles``: per-tile lists of Gaussians sorted by depth.

    Returns:
        tile_offsets [C, tile_h, tile_w] int32 (start of each tile's run), flatten_ids [M] int32
        (values ``c * N + n``), ordered by (camera, tile, depth, n).
    """
    C, N = radii.shape
    rect = _tile_rects(means2d, radii, tile_size, tile_w, tile_h).reshape(C * N, 4)
    counts = ((rect[:, 1] - rect[:, 0]) * (rect[:, 3] - rect[:, 2])).clamp(min=0)
    flat = torch.repeat_interleave(torch.arange(C * N, device=radii.device), counts)
    # Enumerate each Gaussian's tiles: local index within its rectangle -> (tx, ty).
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(flat.numel(), device=radii.device) - first[flat]
    width_tiles = (rect[flat, 1] - rect[flat, 0]).clamp(min=1)
    tx = rect[flat, 0] + local % width_tiles
    ty = rect[flat, 2] + local // width_tiles
    tile = (flat // N) * tile_w * tile_h + ty * tile_w + tx
    depth = depths.reshape(-1)[flat].double()
    # Lexicographic sort by (tile, depth, id) with stable sorts from the last key to the first.
    order = torch.argsort(depth, stable=True)
    order = order[torch.argsort(tile[order], stable=True)]
    flatten_ids = flat[order].int()
    tile_counts = torch.bincount(tile, minlength=C * tile_w * tile_h)
    offsets = (torch.cumsum(tile_counts, 0) - tile_counts).int().reshape(C, tile_h, tile_w)
    return offsets, flatten_ids


def _composite_weights(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    tile_size: int,
    pix: Tensor,
    cam: int,
) -> tuple[Tensor, Tensor]:
    """Blend weights ``w = alpha * T`` of every Gaussian (front to back) at some pixels of one camera.

    Args:
        pix: [P] flat pixel indices ``y * width + x``.

    Returns:
        weights [P, N] (differentiable, zero where a Gaussian does not contribute) and order [N]
        (the Gaussians' depth order; column j of weights belongs to Gaussian ``order[j]``).
    """
    tile_w = math.ceil(width / tile_size)
    tile_h = math.ceil(height / tile_size)
    order = torch.argsort(depths[cam].detach(), stable=True)
    m2d, con, opa = means2d[cam, order], conics[cam, order], opacities[cam, order]
    rect = _tile_rects(means2d[cam : cam + 1], radii[cam : cam + 1], tile_size, tile_w, tile_h)[0, order]
    px = (pix % width).to(m2d.dtype) + 0.5
    py = (pix // width).to(m2d.dtype) + 0.5
    ptx, pty = (pix % width) // tile_size, (pix // width) // tile_size
    in_tile = (
        (ptx[:, None] >= rect[None, :, 0])
        & (ptx[:, None] < rect[None, :, 1])
        & (pty[:, None] >= rect[None, :, 2])
        & (pty[:, None] < rect[None, :, 3])
    )
    dx = m2d[None, :, 0] - px[:, None]
    dy = m2d[None, :, 1] - py[:, None]
    sigma = 0.5 * (con[None, :, 0] * dx**2 + con[None, :, 2] * dy**2) + con[None, :, 1] * dx * dy
    alpha = torch.clamp_max(opa[None, :] * torch.exp(-sigma), ALPHA_MAX)
    valid = in_tile & (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(valid, alpha, torch.zeros_like(alpha))
    inclusive = torch.cumprod(1.0 - alpha, dim=1)
    exclusive = torch.cat([torch.ones_like(inclusive[:, :1]), inclusive[:, :-1]], dim=1)
    # A pixel stops before the Gaussian that would take its transmittance to 1e-4 or below.
    keep = valid & (inclusive.detach() > TRANSMITTANCE_MIN)
    weights = torch.where(keep, alpha * exclusive, torch.zeros_like(alpha))
    return weights, order


def _pixel_chunk(n: int, budget: int = 4_000_000) -> int:
    """Pixels per chunk so that a chunk's [P, N] intermediates stay near ``budget`` elements."""
    return max(16, budget // max(n, 1))


def _weights_by_chunk(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    tile_size: int,
    cam: int,
    chunk: int,
):
    """Yield :func:`_composite_weights` of camera ``cam`` for consecutive chunks of ``chunk`` pixels, in order."""
    for start in range(0, width * height, chunk):
        pix = torch.arange(start, min(start + chunk, width * height), device=means2d.device)
        yield _composite_weights(means2d, conics, opacities, radii, depths, width, height, tile_size, pix, cam)


def _rasterize_to_pixels(
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
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference compositor (differentiable through autograd; dense, for small scenes).

    Args:
        means2d [C, N, 2], conics [C, N, 3], colors [C, N, D], opacities [C, N], radii [C, N],
        depths [C, N]; backgrounds [C, D] or None.

    Returns:
        render [C, H, W, D], alpha [C, H, W, 1].
    """
    C, N, D = colors.shape
    renders, alphas = [], []
    for cam in range(C):
        img, acc = [], []
        for w, order in _weights_by_chunk(means2d, conics, opacities, radii, depths, width, height, tile_size, cam,
                                          chunk or _pixel_chunk(N)):  # fmt: skip
            a = w.sum(dim=1, keepdim=True)
            rgb = w @ colors[cam, order]
            if backgrounds is not None:
                rgb = rgb + (1.0 - a) * backgrounds[cam][None, :]
            img.append(rgb)
            acc.append(a)
        renders.append(torch.cat(img).reshape(height, width, D))
        alphas.append(torch.cat(acc).reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)


@torch.no_grad()
def _topk_contributors(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    k: int,
    tile_size: int = 16,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference of ``topk_contributors``: each pixel's k Gaussians of largest blend weight.

    Returns:
        ids [C, H, W, k] int64 (Gaussian index, -1 where fewer than k contribute) and
        weights [C, H, W, k] float32, largest first.
    """
    C, N = opacities.shape
    all_ids, all_w = [], []
    for cam in range(C):
        ids_c, w_c = [], []
        for w, order in _weights_by_chunk(means2d, conics, opacities, radii, depths, width, height, tile_size, cam,
                                          chunk or _pixel_chunk(N)):  # fmt: skip
            if N < k:
                w = F.pad(w, (0, k - N))
                order = torch.cat([order, torch.full((k - N,), -1, dtype=order.dtype, device=order.device)])
            top_w, top_j = torch.topk(w, k, dim=1)
            top_ids = torch.where(top_w > 0, order[top_j], torch.full_like(top_j, -1))
            ids_c.append(top_ids)
            w_c.append(top_w)
        all_ids.append(torch.cat(ids_c).reshape(height, width, k))
        all_w.append(torch.cat(w_c).reshape(height, width, k))
    return torch.stack(all_ids).long(), torch.stack(all_w)
