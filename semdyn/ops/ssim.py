"""Structural similarity of image batches: the one computation behind the SSIM metric
(:func:`semdyn.eval.image.ssim`, which checks its inputs) and the D-SSIM training loss
(:func:`semdyn.losses.dssim_loss`, which does not need to: the renderer made its input).

As pytorch_msssim ``SSIM(data_range=1.0, size_average=True, channel=3)`` computes it (what nerfstudio reports):
Gaussian window of 11 pixels, sigma 1.5, K = (0.01, 0.03), 'valid' filtering (no padding), averaged over the SSIM
map and the channels of each image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW_SIZE = 11
SSIM_WINDOW_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


def _gaussian_window(size: int, sigma: float) -> Tensor:
    """1-D Gaussian window ``[size]`` summing to 1, in float32 as pytorch_msssim builds it."""
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_filter(x: Tensor, win: Tensor) -> Tensor:
    """Separable 'valid' Gaussian blur of ``x [B, C, H, W]`` with ``win [K]``.

    Like pytorch_msssim, a spatial dimension shorter than the window is left unblurred.
    """
    channels = x.shape[1]
    k = win.shape[0]
    out = x
    if x.shape[2] >= k:
        out = F.conv2d(out, win.view(1, 1, k, 1).repeat(channels, 1, 1, 1), groups=channels)
    if x.shape[3] >= k:
        out = F.conv2d(out, win.view(1, 1, 1, k).repeat(channels, 1, 1, 1), groups=channels)
    return out


def ssim_images(pred: Tensor, gt: Tensor) -> Tensor:
    """[B] SSIM (unitless, at most 1) of each image pair: ``pred`` and ``gt`` [B, H, W, C] floats in [0, 1] of one
    dtype and device (``gt`` is cast to ``pred``'s dtype)."""
    x, y = pred.permute(0, 3, 1, 2), gt.to(pred.dtype).permute(0, 3, 1, 2)
    win = _gaussian_window(SSIM_WINDOW_SIZE, SSIM_WINDOW_SIGMA).to(device=x.device, dtype=x.dtype)
    c1 = (SSIM_K[0] * 1.0) ** 2
    c2 = (SSIM_K[1] * 1.0) ** 2
    mu1 = _gaussian_filter(x, win)
    mu2 = _gaussian_filter(y, win)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = _gaussian_filter(x * x, win) - mu1_sq
    sigma2_sq = _gaussian_filter(y * y, win) - mu2_sq
    sigma12 = _gaussian_filter(x * y, win) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1).mean(-1)  # [B]: mean over the map, then over channels


__all__ = ["SSIM_K", "SSIM_WINDOW_SIGMA", "SSIM_WINDOW_SIZE", "ssim_images"]
