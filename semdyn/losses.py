"""Training losses as pure functions of tensors. Weights are applied in one place (the model's loss dict)."""

from __future__ import annotations

import torch
from torch import Tensor

from semdyn.ops.ssim import ssim_images


def l1_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean absolute error. pred, gt: [..., H, W, 3] in [0, 1]."""
    return (pred - gt).abs().mean()


def dssim_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """1 - SSIM (the 11-pixel Gaussian-window SSIM that nerfstudio reports). pred, gt: [B, H, W, 3]."""
    return 1.0 - ssim_images(pred, gt).mean()


def depth_loss(pred_depth: Tensor, sparse_depth: Tensor, alpha: Tensor | None = None) -> Tensor:
    """Mean absolute error against sparse LiDAR depth where it exists.

    Args:
        pred_depth: [..., H, W, 1] expected depth (scene units).
        sparse_depth: [..., H, W] LiDAR depth (scene units), 0 where no point fell.
        alpha: [..., H, W, 1] accumulated opacity; when given, the depth compared is the alpha-weighted
            one, so that empty pixels are pulled towards the LiDAR surface too.
    """
    d = pred_depth[..., 0] if alpha is None else pred_depth[..., 0] * alpha[..., 0]
    valid = sparse_depth > 0
    if not valid.any():
        return pred_depth.sum() * 0.0
    return (d[valid] - sparse_depth[valid]).abs().mean()


def opacity_loss(opacities: Tensor) -> Tensor:
    """Mean opacity, pushing unneeded Gaussians to transparency (then pruned). opacities: [N] in [0, 1]."""
    return opacities.mean()


def scale_ratio_loss(scales: Tensor, max_ratio: float = 10.0) -> Tensor:
    """Penalty on needle-like Gaussians: mean of max(ratio of largest to smallest scale, max_ratio) - max_ratio.

    scales: [N, 3] (not log).
    """
    ratio = scales.amax(dim=-1) / scales.amin(dim=-1).clamp_min(1e-12)
    return (torch.clamp_min(ratio, max_ratio) - max_ratio).mean()
