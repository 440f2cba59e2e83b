"""A driving sequence as tensors for the core trainer (no nerfstudio).

Reads the sequence with :func:`semdyn.data.read_sequence`, normalises the world exactly as the
``semdyn-data`` dataparser does (same :func:`compute_normalization` defaults), downscales images by an
integer factor, converts poses to OpenCV world-to-camera matrices, and projects the LiDAR points of
each frame's time into it as a sparse depth map for the optional depth loss. Instance masks are
loaded for evaluation only (dynamic-region PSNR); nothing here feeds ground truth into training.

Memory per frame is kept small, for sequences of a thousand frames (a Waymo segment: 5 cameras x 200 frames at
1920x1280): images are held as uint8 (3 bytes a pixel; :meth:`SceneData.image` converts one frame to float when it
is used), instance masks as uint16 (2 bytes a pixel) and the sparse depth as each frame's list of LiDAR pixels
(:class:`SparseDepth`, 8 bytes a point), never as dense ``[F, H, W]`` float maps. Whoever reads them iterates the
frames (training step, lifting, evaluation) and holds one at a time. With ``cache_mb`` the images and masks are not
held at all but read from disk through a :class:`~semdyn.data.frame_cache.FrameCache` of that many MiB (the
trainer prefetches the next step's images), so host memory no longer grows with the number of frames.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import Tensor

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.data import Sequence, compute_normalization, read_points, read_sequence
from semdyn.data.frame_cache import FrameCache
from semdyn.data.images import decode_image
from semdyn.data.sequence import Frame, SceneNormalization
from semdyn.errors import DataFormatError, InputError

MIN_SIDE = 8
"""Fewest pixels a side of a downscaled image (SSIM and the video need a few)."""


MAX_MASK_ID = 65535
"""Largest instance id a mask may hold (they are kept as uint16)."""


@dataclass
class SparseDepth:
    """The LiDAR depth of F frames of H x W pixels as per-frame point lists (compressed rows): frame f's points are
    ``pixels[offsets[f]:offsets[f + 1]]`` (flat pixel index ``v * W + u``) with depths ``depths[...]``, the nearest
    point of each pixel only. P points in all; memory is ``8 P`` bytes, not ``4 F H W``."""

    offsets: Tensor
    """[F + 1] int64 start of each frame's points."""
    pixels: Tensor
    """[P] int32 flat pixel index."""
    depths: Tensor
    """[P] float32 depth along the optical axis (normalised units), > 0."""
    height: int
    """H."""
    width: int
    """W."""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def points_of(self, index: int) -> tuple[Tensor, Tensor]:
        """``(pixels [p] int64, depths [p])`` of frame ``index``."""
        a, b = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.pixels[a:b].to(torch.int64), self.depths[a:b]

    def frame(self, index: int) -> Tensor:
        """[H, W] dense depth of frame ``index`` (0 = no point), for the depth loss."""
        pix, z = self.points_of(index)
        out = torch.zeros(self.height * self.width)
        out[pix] = z
        return out.view(self.height, self.width)

    def frames(self, indices: list[int]) -> Tensor:
        """[C, H, W] dense depth of the frames ``indices``."""
        return torch.stack([self.frame(i) for i in indices])


@dataclass
class SceneData:
    """Every frame of a sequence, F frames of H x W pixels, in normalised world units."""

    sequence: Sequence
    """The parsed sequence (metres; file paths, object tracks)."""
    normalization: SceneNormalization
    """Metres -> normalised units (as the dataparser records it)."""
    images: Tensor | FrameCache | None
    """[F, H, W, 3] uint8 (:meth:`image` gives one frame as float in [0, 1]), or a :class:`FrameCache` of them
    (``load_scene(..., cache_mb=...)``); None when loaded without images (``load_images=False``: lifting needs only
    cameras and masks)."""
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
    sparse_depth: SparseDepth | None
    """The LiDAR depth along the optical axis (normalised units) as per-frame point lists; or None."""
    instance_masks: Tensor | FrameCache | None
    """[F, H, W] uint16 instance ids, or a :class:`FrameCache` of them (evaluation and lifting only); or None.
    torch implements few operations on uint16: read frames through :meth:`mask` (int32)."""
    dynamic_ids: list[int]
    """Instance ids of moving objects (from ``objects``; evaluation only)."""
    aabb: Tensor
    """[2, 3] bounds of the points (or cameras) in normalised units."""
    image_size: tuple[int, int] = (0, 0)
    """(H, W) of the (downscaled) images."""

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def image(self, index: int) -> Tensor:
        """[H, W, 3] float32 in [0, 1]: frame ``index`` (converted from the uint8 copy on each call)."""
        if self.images is None:
            raise InputError(f"{self.sequence.transforms_path}: the scene was loaded without images")
        return self.images[index].float().div_(255.0)

    def prefetch(self, indices: list[int]) -> None:
        """Start reading the images of ``indices`` ahead of use (a :class:`FrameCache`; nothing when in memory)."""
        if isinstance(self.images, FrameCache):
            self.images.prefetch(indices)

    def batch_images(self, indices: list[int]) -> Tensor:
        """[C, H, W, 3] float32 in [0, 1] of the frames ``indices``."""
        return torch.stack([self.image(i) for i in indices])

    def mask(self, index: int) -> Tensor:
        """[H, W] int32 instance ids of frame ``index``."""
        if self.instance_masks is None:
            raise InputError(f"{self.sequence.transforms_path}: the sequence has no instance masks")
        return self.instance_masks[index].to(torch.int32)

    def depth(self, indices: list[int]) -> Tensor | None:
        """[C, H, W] dense sparse-depth maps of the frames ``indices`` (0 = no point), or None without LiDAR."""
        return None if self.sparse_depth is None else self.sparse_depth.frames(indices)

    @property
    def scene_scale(self) -> float:
        """Largest half-extent of the camera positions (normalised units; about 1 after auto-scaling)."""
        centres = torch.linalg.inv(self.viewmats)[:, :3, 3]
        return float((centres - centres.mean(0)).abs().max().clamp_min(1e-3))


def _load_image(path: Path, factor: int) -> np.ndarray:
    """[H, W, 3] uint8; a ``factor`` > 1 box-filters (in float) and rounds back to the nearest 1/255."""
    arr = np.asarray(decode_image(path).convert("RGB"), dtype=np.uint8)
    if factor > 1:
        t = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)[None]
        arr = F.avg_pool2d(t, factor).squeeze(0).permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return arr


def _load_mask(path: Path, factor: int) -> np.ndarray:
    """[H, W] uint16: the ids at the centre of each ``factor`` x ``factor`` block that :func:`_load_image` averages
    (the same ``floor(size / factor)`` blocks: a factor that does not divide the size drops the last row and
    column)."""
    arr = np.asarray(decode_image(path))
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > MAX_MASK_ID):
        raise DataFormatError(path, f"instance ids must be in 0..{MAX_MASK_ID}")
    arr = arr.astype(np.uint16)
    if factor == 1:
        return arr
    h, w = (arr.shape[0] // factor) * factor, (arr.shape[1] // factor) * factor
    return arr[factor // 2 : h : factor, factor // 2 : w : factor]


def _frames(
    frames: SequenceABC[Frame], load: Any, shape_of: str, description: str, cache_bytes: int | None
) -> Tensor | FrameCache:
    """The frames as one ``[F, ...]`` tensor (:func:`_stack_frames`), or a :class:`FrameCache` of ``cache_bytes``
    that reads them when used (each checked against the first frame's shape then)."""
    if cache_bytes is None:
        return torch.from_numpy(_stack_frames(frames, load, shape_of, description))
    first = load(frames[0])

    def read(i: int) -> np.ndarray:
        arr = load(frames[i])
        if arr.shape != first.shape:
            raise DataFormatError(
                getattr(frames[i], shape_of), f"size {arr.shape[:2]} != the first frame's {first.shape[:2]}"
            )
        return arr

    return FrameCache(read, len(frames), first, cache_bytes)


def _stack_frames(frames: SequenceABC[Frame], load: Any, shape_of: str, description: str) -> np.ndarray:
    """One preallocated ``[F, ...]`` array filled frame by frame (``np.stack`` of a list would hold two copies);
    every frame must have the first one's shape (``shape_of`` names what is compared in the error)."""
    first = load(frames[0])
    out = np.empty((len(frames), *first.shape), dtype=first.dtype)
    out[0] = first
    for i, frame in enumerate(track(frames[1:], description), start=1):
        arr = load(frame)
        if arr.shape != first.shape:
            raise DataFormatError(
                getattr(frame, shape_of), f"size {arr.shape[:2]} != the first frame's {first.shape[:2]}"
            )
        out[i] = arr
    return out


def _sparse_depth(
    points: Tensor, point_times: Tensor, times: Tensor, viewmats: Tensor, Ks: Tensor, h: int, w: int, window: float
) -> SparseDepth:
    """Project the points captured within ``window`` (normalised time) of each frame's time; the nearest point of
    each pixel is kept."""
    offsets, pixels, depths = [0], [], []
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
        nearest = torch.full((h * w,), float("inf")).scatter_reduce(0, v * w + u, z, "amin")
        pix = torch.isfinite(nearest).nonzero().squeeze(1)
        pixels.append(pix.to(torch.int32))
        depths.append(nearest[pix])
        offsets.append(offsets[-1] + len(pix))
    return SparseDepth(
        offsets=torch.tensor(offsets, dtype=torch.int64),
        pixels=torch.cat(pixels) if pixels else torch.zeros(0, dtype=torch.int32),
        depths=torch.cat(depths) if depths else torch.zeros(0),
        height=h,
        width=w,
    )


def load_scene(
    path: Path | str,
    downscale: int = 1,
    depth_window: float | None = None,
    normalization: SceneNormalization | None = None,
    load_images: bool = True,
    cache_mb: float | None = None,
) -> SceneData:
    """Load a sequence folder for training and evaluation.

    Args:
        path: the sequence folder (``transforms.json`` inside).
        downscale: integer factor; images are box-filtered, masks subsampled, intrinsics scaled.
        depth_window: LiDAR points within this much normalised time of a frame count for its sparse
            depth; default half the time between consecutive timestamps.
        normalization: metres -> scene units; default :func:`compute_normalization`'s (the dataparser's
            defaults). The nerfstudio model passes the dataparser's own, whatever its options.
        load_images: False leaves ``images`` None (lifting needs the cameras and masks only; the nerfstudio model's
            lifter reads the sequence this way, its datamanager holds the images).
        cache_mb: None holds every image and mask in memory (uint8 / uint16); a number reads them from disk when
            used, keeping the most recent in this many MiB (3/5 for images, 2/5 for masks: their bytes a pixel).

    Raises:
        DataFormatError: the folder violates the format (names the file and field).
        InputError: a bad option.
    """
    if not isinstance(downscale, int) or downscale < 1:
        raise InputError(f"downscale must be a positive integer, got {downscale!r}")
    if cache_mb is not None and not (isinstance(cache_mb, (int, float)) and 0 < cache_mb < float("inf")):
        raise InputError(f"--cache-mb must be a positive number of MiB, got {cache_mb!r}")
    image_bytes = None if cache_mb is None else int(cache_mb * 2**20 * 3 / 5)
    mask_bytes = None if cache_mb is None else int(cache_mb * 2**20 * 2 / 5)
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
    h, w = intr.height // downscale, intr.width // downscale
    images = None
    if load_images:
        load = lambda f: _load_image(f.image_path, downscale)  # noqa: E731
        images = _frames(seq.frames, load, "image_path", "loading images", image_bytes)
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
        load = lambda f: _load_mask(f.mask_path, downscale)  # noqa: E731
        masks = _frames(seq.frames, load, "mask_path", "loading masks", mask_bytes)
        if tuple(masks.shape[1:]) != (h, w):
            first_mask = seq.frames[0].mask_path
            assert first_mask is not None  # seq.has("mask")
            raise DataFormatError(first_mask, f"mask size {tuple(masks.shape[1:])} != image {(h, w)}")
    if points is not None and len(points) > 0:
        lo, hi = torch.quantile(points[:: max(1, len(points) // 100_000)], torch.tensor([0.001, 0.999]), dim=0)
    else:
        centres = torch.linalg.inv(viewmats)[:, :3, 3]
        lo, hi = centres.min(0).values - 1.0, centres.max(0).values + 1.0
    return SceneData(
        sequence=seq,
        normalization=norm,
        images=images,
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
        image_size=(int(h), int(w)),
    )
