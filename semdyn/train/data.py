"""A driving sequence as tensors for the core trainer (no nerfstudio).

Reads the sequence with :func:`semdyn.data.read_sequence`, normalises the world exactly as the
``semdyn-data`` dataparser does (same :func:`compute_normalization` defaults), downscales images by an
integer factor, converts poses to OpenCV world-to-camera matrices, and projects the LiDAR points of
each frame's time into it as a sparse depth map for the optional depth loss. Instance masks are
loaded for evaluation only (dynamic-region PSNR); nothing here feeds ground truth into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import Tensor

from semdyn.data import Sequence, compute_normalization, read_points, read_sequence
from semdyn.data.images import decode_image
from semdyn.data.sequence import SceneNormalization
from semdyn.errors import DataFormatError, InputError

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
MIN_SIDE = 8
"""Fewest pixels a side of a downscaled image (SSIM and the video need a few)."""


@dataclass
class SceneData:
    """Every frame of a sequence, F frames of H x W pixels, in normalised world units."""

    sequence: Sequence
    """The parsed sequence (metres; file paths, object tracks)."""
    normalization: SceneNormalization
    """Metres -> normalised units (as the dataparser records it)."""
    images: Tensor
    """[F, H, W, 3] float in [0, 1]."""
    viewmats: Tensor
    """[F, 4, 4] world-to-camera, OpenCV convention, normalised units."""
    Ks: Tensor
    """[F, 3, 3] intrinsics at the downscaled resolution (pixels)."""
    times: Tensor
    """[F] normalised time in [0, 1]."""
    train_idx: Tensor
    """[F_train] int64 indices of training frames."""
    test_idx: Tensor
    """[F_test] int64 indices of held-out frames."""
    points: Tensor | None
    """[P, 3] initial points (normalised units), or None."""
    point_colors: Tensor | None
    """[P, 3] uint8 colours of the points, or None."""
    point_times: Tensor | None
    """[P] capture times of the points (normalised), or None."""
    sparse_depth: Tensor | None
    """[F, H, W] LiDAR depth along the optical axis (normalised units), 0 = none; or None."""
    instance_masks: Tensor | None
    """[F, H, W] int32 instance ids (evaluation only), or None."""
    dynamic_ids: list[int]
    """Instance ids of moving objects (from ``objects``; evaluation only)."""
    aabb: Tensor
    """[2, 3] bounds of the points (or cameras) in normalised units."""

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def scene_scale(self) -> float:
        """Largest half-extent of the camera positions (normalised units; about 1 after auto-scaling)."""
        centres = torch.linalg.inv(self.viewmats)[:, :3, 3]
        return float((centres - centres.mean(0)).abs().max().clamp_min(1e-3))


def _load_image(path: Path, factor: int) -> np.ndarray:
    arr = np.asarray(decode_image(path).convert("RGB"), dtype=np.float32) / 255.0
    if factor > 1:
        t = torch.from_numpy(arr).permute(2, 0, 1)[None]
        arr = F.avg_pool2d(t, factor).squeeze(0).permute(1, 2, 0).numpy()
    return arr


def _load_mask(path: Path, factor: int) -> np.ndarray:
    """The ids at the centre of each ``factor`` x ``factor`` block that :func:`_load_image` averages (the same
    ``floor(size / factor)`` blocks: a factor that does not divide the size drops the last row and column)."""
    arr = np.asarray(decode_image(path)).astype(np.int32)
    if factor == 1:
        return arr
    h, w = (arr.shape[0] // factor) * factor, (arr.shape[1] // factor) * factor
    return arr[factor // 2 : h : factor, factor // 2 : w : factor]


def _sparse_depth(
    points: Tensor, point_times: Tensor, times: Tensor, viewmats: Tensor, Ks: Tensor, h: int, w: int, window: float
) -> Tensor:
    """Project the points captured within ``window`` (normalised time) of each frame's time: [F, H, W]."""
    out = torch.zeros(len(times), h, w)
    for f in range(len(times)):
        sel = (point_times - times[f]).abs() <= window
        p = points[sel]
        pc = p @ viewmats[f, :3, :3].T + viewmats[f, :3, 3]
        z = pc[:, 2]
        front = z > 1e-4
        pc, z = pc[front], z[front]
        uv = pc[:, :2] / z[:, None] @ Ks[f, :2, :2].T + Ks[f, :2, 2]
        u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        u, v, z = u[inside], v[inside], z[inside]
        # Keep the nearest point per pixel: write far to near so that near points win.
        order = torch.argsort(z, descending=True)
        out[f, v[order], u[order]] = z[order]
    return out


def load_scene(
    path: Path | str,
    downscale: int = 1,
    depth_window: float | None = None,
    normalization: SceneNormalization | None = None,
) -> SceneData:
    """Load a sequence folder for training and evaluation.

    Args:
        path: the sequence folder (``transforms.json`` inside).
        downscale: integer factor; images are box-filtered, masks subsampled, intrinsics scaled.
        depth_window: LiDAR points within this much normalised time of a frame count for its sparse
            depth; default half the time between consecutive timestamps.
        normalization: metres -> scene units; default :func:`compute_normalization`'s (the dataparser's
            defaults). The nerfstudio model passes the dataparser's own, whatever its options.

    Raises:
        DataFormatError: the folder violates the format (names the file and field).
        InputError: a bad option.
    """
    if not isinstance(downscale, int) or downscale < 1:
        raise InputError(f"downscale must be a positive integer, got {downscale!r}")
    seq = read_sequence(path)
    intr = seq.frames[0].intrinsics
    if any(f.intrinsics.width != intr.width or f.intrinsics.height != intr.height for f in seq.frames):
        raise DataFormatError(seq.transforms_path, "the core trainer needs every image at one size (w, h)")
    if any(np.any(f.intrinsics.distortion_params() != 0) for f in seq.frames):
        raise DataFormatError(
            seq.transforms_path,
            "the core trainer needs undistorted images (k1..p2 = 0); "
            "train with ns-train, whose datamanager undistorts, or undistort when converting",
        )
    if min(intr.width, intr.height) // downscale < MIN_SIDE:
        raise InputError(
            f"--downscale {downscale} leaves {intr.width}x{intr.height} images at "
            f"{intr.width // downscale}x{intr.height // downscale} pixels; the core trainer needs at least "
            f"{MIN_SIDE} pixels a side"
        )
    norm = compute_normalization(seq.camera_to_worlds) if normalization is None else normalization
    c2w = norm.poses_to_normalized(seq.camera_to_worlds) @ OPENGL_TO_OPENCV
    viewmats = torch.from_numpy(np.linalg.inv(c2w)).float()
    Ks = torch.from_numpy(np.stack([f.intrinsics.matrix() for f in seq.frames])).float()
    Ks[:, :2] /= downscale
    images = np.stack([_load_image(f.image_path, downscale) for f in track(seq.frames, "loading images")])
    h, w = images.shape[1:3]
    times = torch.from_numpy(seq.times_normalized).float()

    points = colors = sparse = ptimes = None
    if seq.ply_path is not None:
        pc = read_points(seq.ply_path)
        points = torch.from_numpy(norm.points_to_normalized(pc.xyz)).float()
        colors = torch.from_numpy(pc.rgb)
        if pc.time is not None:
            ptimes = torch.from_numpy(seq.time_axis.normalize(pc.time)).float()
            distinct = torch.unique(times)
            gap = float((distinct[1:] - distinct[:-1]).min()) if len(distinct) > 1 else 1.0
            sparse = _sparse_depth(points, ptimes, times, viewmats, Ks, h, w, depth_window or 0.5 * gap)
    masks = None
    if seq.has("mask"):
        masks = torch.from_numpy(np.stack([_load_mask(f.mask_path, downscale) for f in seq.frames]))
        if masks.shape[1:] != (h, w):
            raise DataFormatError(seq.frames[0].mask_path, f"mask size {tuple(masks.shape[1:])} != image {(h, w)}")
    if points is not None and len(points) > 0:
        lo, hi = torch.quantile(points[:: max(1, len(points) // 100_000)], torch.tensor([0.001, 0.999]), dim=0)
    else:
        centres = torch.linalg.inv(viewmats)[:, :3, 3]
        lo, hi = centres.min(0).values - 1.0, centres.max(0).values + 1.0
    return SceneData(
        sequence=seq,
        normalization=norm,
        images=torch.from_numpy(images),
        viewmats=viewmats,
        Ks=Ks,
        times=times,
        train_idx=torch.tensor(seq.split.train, dtype=torch.long),
        test_idx=torch.tensor(seq.split.test, dtype=torch.long),
        points=points,
        point_colors=colors,
        point_times=ptimes,
        sparse_depth=sparse,
        instance_masks=masks,
        dynamic_ids=[o.id for o in seq.objects if o.dynamic],
        aabb=torch.stack([lo, hi]),
    )
