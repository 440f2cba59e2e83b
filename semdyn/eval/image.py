"""Image metrics, computed exactly as nerfstudio 1.1.5 computes them in ``splatfacto``.

nerfstudio's ``SplatfactoModel.get_image_metrics_and_images`` evaluates one image at a time with

- PSNR: ``torchmetrics.image.PeakSignalNoiseRatio(data_range=1.0)``,
- SSIM: ``pytorch_msssim.SSIM(data_range=1.0, size_average=True, channel=3)``,
- LPIPS: ``torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity(normalize=True)`` (AlexNet backbone),

and ``get_average_eval_image_metrics`` averages those per-image numbers over the test images. PSNR and SSIM are
re-implemented here in plain PyTorch (the parity tests in ``tests/eval/test_image_metrics.py`` compare them with the
libraries); LPIPS uses torchmetrics' network, imported lazily, and only runs when the AlexNet backbone weights are on
disk: nothing here downloads anything.

Images are ``[H, W, 3]`` (one image) or ``[B, H, W, 3]`` (a batch), floats in [0, 1], as torch tensors or numpy arrays.
Per-image metrics return a tensor of shape ``[]`` for one image and ``[B]`` for a batch: one value per image, like
nerfstudio, never a value pooled over the batch. Average them over the test split with ``.mean()``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from semdyn.errors import InputError, MissingCheckpointError
from semdyn.ops.ssim import ssim_images

logger = logging.getLogger(__name__)

ArrayLike = Tensor | np.ndarray

LPIPS_WEIGHTS_ENV = "SEMDYN_LPIPS_WEIGHTS"
"""Environment variable naming a local AlexNet state dict (torchvision's ``alexnet-owt-7be5be79.pth``)."""

LPIPS_WEIGHTS_FILENAME = "alexnet-owt-7be5be79.pth"
"""The file torchvision (and so torchmetrics' LPIPS) would download into the torch hub cache."""


# ----------------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------------


def _as_float_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch tensor or numpy array of shape [H, W, 3] or [B, H, W, 3]")
    if not torch.is_floating_point(x):
        raise InputError(f"{name} must hold floats in [0, 1], got dtype {x.dtype}")
    return x


def _check_image_pair(pred: Any, gt: Any) -> tuple[Tensor, Tensor, bool]:
    """Validate two images, return them as ``[B, H, W, 3]`` tensors and whether the input was a single image."""
    pred_t = _as_float_tensor(pred, "pred")
    gt_t = _as_float_tensor(gt, "gt")
    for name, t in (("pred", pred_t), ("gt", gt_t)):
        if t.ndim not in (3, 4) or t.shape[-1] != 3:
            raise InputError(f"{name} must have shape [H, W, 3] or [B, H, W, 3], got {list(t.shape)}")
    if pred_t.shape != gt_t.shape:
        raise InputError(f"pred and gt must have the same shape, got {list(pred_t.shape)} and {list(gt_t.shape)}")
    if pred_t.device != gt_t.device:
        raise InputError(f"pred and gt must be on the same device, got {pred_t.device} and {gt_t.device}")
    if pred_t.dtype != gt_t.dtype:
        gt_t = gt_t.to(pred_t.dtype)
    single = pred_t.ndim == 3
    if single:
        pred_t, gt_t = pred_t[None], gt_t[None]
    return pred_t, gt_t, single


def _to_nchw(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------------------------------
# PSNR
# ----------------------------------------------------------------------------------------------------------------------


def psnr_from_mse(mse: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB from a mean squared error, with torchmetrics' formula ``2 ln(range) - ln(mse)`` scaled to dB.

    Args:
        mse: mean squared error, any shape (unitless, for images in [0, data_range]).
        data_range: the value range of the images.

    Returns:
        PSNR in dB, same shape as ``mse``; ``inf`` where ``mse`` is 0.
    """
    psnr_base_e = 2 * math.log(data_range) - torch.log(mse)
    return psnr_base_e * (10 / math.log(10.0))


def psnr(pred: ArrayLike, gt: ArrayLike) -> Tensor:
    """Peak signal-to-noise ratio per image, as torchmetrics ``PeakSignalNoiseRatio(data_range=1.0)`` on one image.

    The mean squared error runs over all pixels and the 3 channels of one image. Computed in the input dtype, as
    torchmetrics does.

    Args:
        pred: rendered image(s), ``[H, W, 3]`` or ``[B, H, W, 3]``, floats in [0, 1].
        gt: ground-truth image(s), same shape.

    Returns:
        PSNR in dB: shape ``[]`` for one image, ``[B]`` for a batch (one value per image; average with ``.mean()``
        as nerfstudio does over its test images). ``inf`` for identical images.

    >>> import torch
    >>> gt = torch.zeros(4, 4, 3)
    >>> round(float(psnr(gt + 0.1, gt)), 3)  # an error of 0.1 everywhere: 10 log10(1 / 0.01)
    20.0
    """
    pred_t, gt_t, single = _check_image_pair(pred, gt)
    diff = pred_t - gt_t
    sse = torch.sum(diff * diff, dim=(1, 2, 3))
    n_obs = pred_t[0].numel()
    out = psnr_from_mse(sse / n_obs)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------------------------------
# SSIM
# ----------------------------------------------------------------------------------------------------------------------


def ssim(pred: ArrayLike, gt: ArrayLike) -> Tensor:
    """Structural similarity per image, as pytorch_msssim ``SSIM(data_range=1.0, size_average=True, channel=3)``.

    Gaussian window of 11 pixels, sigma 1.5, K = (0.01, 0.03), 'valid' filtering (no padding), averaged over the
    SSIM map and the 3 channels of each image.

    Args:
        pred: rendered image(s), ``[H, W, 3]`` or ``[B, H, W, 3]``, floats in [0, 1].
        gt: ground-truth image(s), same shape.

    Returns:
        SSIM (unitless, at most 1): shape ``[]`` for one image, ``[B]`` for a batch.
    """
    pred_t, gt_t, single = _check_image_pair(pred, gt)
    out = ssim_images(pred_t, gt_t)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------------------------------
# LPIPS
# ----------------------------------------------------------------------------------------------------------------------

_LPIPS_UNAVAILABLE_LOGGED = False


def default_lpips_weights_path() -> Path:
    """Where torchvision would cache the AlexNet weights: ``<torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth``.

    The hub dir is ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_WEIGHTS_FILENAME


def resolve_lpips_weights_path(weights_path: str | Path | None = None) -> Path:
    """The AlexNet weights file LPIPS will look for: the argument, else ``$SEMDYN_LPIPS_WEIGHTS``, else the hub cache.

    Args:
        weights_path: an explicit path (a config option), or None.

    Returns:
        The expected path; it may not exist.
    """
    if weights_path is not None:
        return Path(weights_path).expanduser()
    env = os.environ.get(LPIPS_WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return default_lpips_weights_path()


def _log_unavailable_once(reason: str) -> None:
    global _LPIPS_UNAVAILABLE_LOGGED
    if not _LPIPS_UNAVAILABLE_LOGGED:
        _LPIPS_UNAVAILABLE_LOGGED = True
        logger.warning("LPIPS is unavailable and will be reported as such: %s", reason)


def _load_alexnet_features(path: Path) -> dict[str, Tensor]:
    """Read an AlexNet state dict (torchvision layout, ``features.<i>.weight``) and keep the ``features`` entries."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError("the file does not hold a state dict")
    feats = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("features.") and isinstance(value, Tensor):
            feats[key.removeprefix("features.")] = value
    if not feats:
        raise ValueError("the state dict has no 'features.*' entries (expected torchvision's AlexNet layout)")
    return feats


def _build_lpips_net(path: Path) -> torch.nn.Module:
    """torchmetrics' LPIPS network (AlexNet, its bundled linear heads) with the backbone loaded from ``path``.

    torchmetrics builds the backbone with ``torchvision.models.alexnet(weights=DEFAULT)``, which downloads. Here the
    backbone is built with ``pnet_rand=True`` (``weights=None``: no download) and then loaded from the local file.
    The linear heads (``lpips_models/alex.pth``) ship inside the torchmetrics package.
    """
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    net = _NoTrainLpips(net="alex", pretrained=True, pnet_rand=True)
    feats = _load_alexnet_features(path)
    backbone_state = {}
    for slice_name, block in net.net.named_children():
        for layer_name, layer in block.named_children():
            for param_name, param in layer.state_dict().items():
                key = f"{layer_name}.{param_name}"
                if key not in feats:
                    raise ValueError(f"missing 'features.{key}' (expected torchvision's AlexNet layout)")
                if feats[key].shape != param.shape:
                    raise ValueError(
                        f"'features.{key}' has shape {list(feats[key].shape)}, expected {list(param.shape)}"
                    )
                backbone_state[f"{slice_name}.{key}"] = feats[key]
    net.net.load_state_dict(backbone_state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class LPIPSMetric:
    """LPIPS (AlexNet) as torchmetrics ``LearnedPerceptualImagePatchSimilarity(normalize=True)``, local weights only.

    The backbone weights are looked for at ``weights_path``, else ``$SEMDYN_LPIPS_WEIGHTS``, else the torch hub cache
    (``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth``). Nothing is ever downloaded. When the file is absent
    (or unreadable, or torchmetrics/torchvision are missing) the metric is unavailable: ``available`` is False,
    ``reason`` says why and names the expected file, calls return None, and one warning line is logged once per process.

    Args:
        weights_path: explicit path to torchvision's AlexNet state dict, or None.
        device: where the network runs; images are moved there.
        strict: raise ``MissingCheckpointError`` instead of reporting unavailable when the file is absent.
    """

    def __init__(
        self, weights_path: str | Path | None = None, device: torch.device | str = "cpu", strict: bool = False
    ) -> None:
        self.weights_path = resolve_lpips_weights_path(weights_path)
        self.device = torch.device(device)
        self._net: torch.nn.Module | None = None
        self.reason = ""
        if not self.weights_path.is_file():
            if strict:
                raise MissingCheckpointError(
                    "LPIPS (AlexNet backbone)", self.weights_path, f"or set ${LPIPS_WEIGHTS_ENV}"
                )
            self.reason = f"AlexNet backbone weights not found at {self.weights_path} (set ${LPIPS_WEIGHTS_ENV})"
        else:
            try:
                self._net = _build_lpips_net(self.weights_path).to(self.device)
            except ImportError as err:
                self.reason = f"torchmetrics/torchvision are not installed ({err}); weights at {self.weights_path}"
            except Exception as err:  # any unreadable file means "unavailable", never a fake value
                self.reason = f"could not load AlexNet backbone weights from {self.weights_path}: {err}"
        if self._net is None:
            _log_unavailable_once(self.reason)

    @property
    def available(self) -> bool:
        """Whether LPIPS can be computed (the weights were found and loaded)."""
        return self._net is not None

    @torch.no_grad()
    def __call__(self, pred: ArrayLike, gt: ArrayLike) -> Tensor | None:
        """LPIPS per image (lower is more similar), or None when unavailable.

        Args:
            pred: rendered image(s), ``[H, W, 3]`` or ``[B, H, W, 3]``, floats in [0, 1].
            gt: ground-truth image(s), same shape.

        Returns:
            LPIPS distance (unitless): shape ``[]`` for one image, ``[B]`` for a batch; None when unavailable.
        """
        pred_t, gt_t, single = _check_image_pair(pred, gt)
        for name, t in (("pred", pred_t), ("gt", gt_t)):
            if bool((t < 0).any()) or bool((t > 1).any()):
                raise InputError(f"{name} must hold values in [0, 1] for LPIPS")
        if self._net is None:
            return None
        x = _to_nchw(pred_t).to(self.device, torch.float32)
        y = _to_nchw(gt_t).to(self.device, torch.float32)
        out = self._net(x, y, normalize=True).reshape(-1)  # [B]
        return out[0] if single else out


_LPIPS_CACHE: dict[tuple[str, str], LPIPSMetric] = {}


def get_lpips_metric(weights_path: str | Path | None = None, device: torch.device | str = "cpu") -> LPIPSMetric:
    """A process-wide cached ``LPIPSMetric`` for this weights file and device (built once)."""
    key = (str(resolve_lpips_weights_path(weights_path)), str(torch.device(device)))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPSMetric(weights_path, device=device)
    return _LPIPS_CACHE[key]


def lpips(
    pred: ArrayLike, gt: ArrayLike, weights_path: str | Path | None = None, device: torch.device | str = "cpu"
) -> Tensor | None:
    """LPIPS per image with a cached network; None when the backbone weights are not on disk (see ``LPIPSMetric``)."""
    return get_lpips_metric(weights_path, device)(pred, gt)


# ----------------------------------------------------------------------------------------------------------------------
# Dynamic-region PSNR
# ----------------------------------------------------------------------------------------------------------------------


def _as_ids(dynamic_ids: Sequence[int] | ArrayLike, device: torch.device) -> Tensor:
    ids = (
        torch.as_tensor(np.asarray(dynamic_ids, dtype=np.int64)) if not isinstance(dynamic_ids, Tensor) else dynamic_ids
    )
    if ids.ndim > 1 or torch.is_floating_point(ids) or ids.dtype == torch.bool:
        raise InputError(f"dynamic_ids must be a sequence of int instance ids, shape [K], got {list(ids.shape)}")
    return ids.reshape(-1).to(device=device, dtype=torch.int64)


def _as_mask(instance_mask: Any, shape: tuple[int, ...], device: torch.device) -> Tensor:
    if isinstance(instance_mask, np.ndarray):
        if instance_mask.dtype.kind not in "iu":
            raise InputError(f"instance_mask must hold integer instance ids, got dtype {instance_mask.dtype}")
        instance_mask = torch.from_numpy(instance_mask.astype(np.int64))
    if not isinstance(instance_mask, Tensor):
        raise InputError("instance_mask must be a torch tensor or numpy array of int ids, shape [H, W] or [B, H, W]")
    if torch.is_floating_point(instance_mask) or instance_mask.dtype == torch.bool:
        raise InputError(f"instance_mask must hold integer instance ids, got dtype {instance_mask.dtype}")
    if tuple(instance_mask.shape) != shape:
        raise InputError(f"instance_mask must have shape {list(shape)} (the images' [B, H, W] or [H, W])")
    return instance_mask.to(device=device, dtype=torch.int64)


def dynamic_squared_error(
    pred: ArrayLike, gt: ArrayLike, instance_mask: ArrayLike, dynamic_ids: Sequence[int] | ArrayLike
) -> tuple[Tensor, Tensor]:
    """Sum of squared errors over the pixels of moving objects, and how many values it sums, per image.

    Args:
        pred: rendered image(s), ``[H, W, 3]`` or ``[B, H, W, 3]``, floats in [0, 1].
        gt: ground-truth image(s), same shape.
        instance_mask: instance ids, ``[H, W]`` or ``[B, H, W]`` ints (0 = none), matching the images.
        dynamic_ids: the ids of objects with ``objects[].dynamic`` true, ``[K]`` ints.

    Returns:
        ``(sse, count)``: float64 sum of squared errors over masked pixels and the 3 channels, and the number of
        values summed (masked pixels x 3); shapes ``[]`` for one image, ``[B]`` for a batch.
    """
    pred_t, gt_t, single = _check_image_pair(pred, gt)
    mask_shape = tuple(pred_t.shape[:3]) if not single else tuple(pred_t.shape[1:3])
    mask = _as_mask(instance_mask, mask_shape, pred_t.device)
    if single:
        mask = mask[None]
    ids = _as_ids(dynamic_ids, pred_t.device)
    selected = torch.isin(mask, ids)  # [B, H, W]
    diff = (pred_t - gt_t).to(torch.float64)
    sse = (diff * diff).sum(-1).mul(selected).sum(dim=(1, 2))
    count = selected.sum(dim=(1, 2)).to(torch.int64) * pred_t.shape[-1]
    return (sse[0], count[0]) if single else (sse, count)


def dynamic_psnr(
    pred: ArrayLike, gt: ArrayLike, instance_mask: ArrayLike, dynamic_ids: Sequence[int] | ArrayLike
) -> Tensor:
    """PSNR over the pixels of moving objects only, per image.

    The MSE runs over the pixels whose instance id is in ``dynamic_ids`` and over the 3 channels; data range 1.

    Args:
        pred: rendered image(s), ``[H, W, 3]`` or ``[B, H, W, 3]``, floats in [0, 1].
        gt: ground-truth image(s), same shape.
        instance_mask: instance ids, ``[H, W]`` or ``[B, H, W]`` ints (0 = none).
        dynamic_ids: ids of the objects with ``objects[].dynamic`` true, ``[K]`` ints.

    Returns:
        PSNR in dB (float64): shape ``[]`` for one image, ``[B]`` for a batch. NaN for an image with no dynamic pixel
        (the metric is undefined there; ``aggregate_dynamic_psnr`` skips such images), ``inf`` when the dynamic pixels
        match exactly.
    """
    sse, count = dynamic_squared_error(pred, gt, instance_mask, dynamic_ids)
    mse = torch.where(count > 0, sse / count.clamp(min=1), torch.full_like(sse, float("nan")))
    return psnr_from_mse(mse)


@dataclass(frozen=True)
class DynamicPSNRSummary:
    """Dynamic-region PSNR over a set of test images.

    The benchmark reports ``pooled``.
    """

    pooled: float
    """dB: PSNR of the squared errors pooled over all dynamic pixels of all images (one MSE over the whole set), so
    every dynamic pixel weighs the same whatever image it is in. NaN when no image has a dynamic pixel."""
    mean_per_image: float
    """dB: mean of the per-image dynamic PSNRs over the images that have dynamic pixels (as nerfstudio averages its
    per-image PSNR). Images with a tiny dynamic region weigh as much as the others. NaN when none has one."""
    num_values: int
    """Number of squared errors pooled (dynamic pixels x 3 channels)."""
    num_images: int
    """Number of images seen."""
    num_images_with_dynamic: int
    """Number of images with at least one dynamic pixel."""


def aggregate_dynamic_psnr(
    images: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]], dynamic_ids: Sequence[int] | ArrayLike
) -> DynamicPSNRSummary:
    """Dynamic-region PSNR over a test split, pooled and as a mean of per-image values.

    Args:
        images: ``(pred [H, W, 3], gt [H, W, 3], instance_mask [H, W])`` per test image (batches ``[B, ...]`` also
            accepted); an iterator is consumed once, so images can be rendered on the fly.
        dynamic_ids: ids of the objects with ``objects[].dynamic`` true, ``[K]`` ints.

    Returns:
        A ``DynamicPSNRSummary``; its ``pooled`` field is the benchmark's dynamic PSNR.
    """
    total_sse = 0.0
    total_count = 0
    per_image: list[float] = []
    num_images = 0
    for pred, gt, mask in images:
        sse, count = dynamic_squared_error(pred, gt, mask, dynamic_ids)
        sse, count = sse.reshape(-1).cpu(), count.reshape(-1).cpu()
        num_images += int(sse.numel())
        total_sse += float(sse.sum())
        total_count += int(count.sum())
        has = count > 0
        if bool(has.any()):
            per_image.extend(psnr_from_mse(sse[has] / count[has]).tolist())
    nan = float("nan")
    pooled = float(psnr_from_mse(torch.tensor(total_sse / total_count, dtype=torch.float64))) if total_count else nan
    mean_per_image = float(np.mean(per_image)) if per_image else nan
    return DynamicPSNRSummary(
        pooled=pooled,
        mean_per_image=mean_per_image,
        num_values=total_count,
        num_images=num_images,
        num_images_with_dynamic=len(per_image),
    )
