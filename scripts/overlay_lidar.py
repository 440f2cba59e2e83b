"""Draw a converted sequence's LiDAR points onto one of its images, to check poses and calibration by eye.

The points of the sweeps within ``--neighbours`` frames of the chosen one (by their ``time`` in points.ply) are
projected with the sequence's camera poses and coloured by depth; with right poses they sit on the edges they
belong to (poles, kerbs, car outlines), with wrong ones the neighbouring sweeps smear apart. Object masks, when the
sequence has them, are tinted underneath.

python scripts/overlay_lidar.py --sequence data/kitti-0052 --frame 20 --output outputs/overlay_0052.png
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from PIL import Image
from rich.console import Console

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.data import read_sequence
from semdyn.data.images import load_instance_mask
from semdyn.data.sequence import read_points
from semdyn.data.sources.common import NEAR_PLANE, CameraModel, project
from semdyn.errors import InputError, SemdynError


@dataclass
class Args:
    """Overlay LiDAR points (and instance masks) on one image of a sequence."""

    sequence: Path
    """Sequence folder (transforms.json and points.ply with per-point time)."""
    output: Path
    """PNG to write."""
    frame: int = 0
    """Timestamp index (0-based) of the image."""
    camera: str | None = None
    """Camera name; default the sequence's first."""
    neighbours: int = 2
    """Also draw the sweeps of this many timestamps before and after (accumulated with the estimated poses)."""
    max_depth: float = 40.0
    """Colour scale's far end, metres (points farther are drawn at the far colour)."""
    masks: bool = True
    """Tint the image's instance masks (when the sequence has them)."""
    stride: int = 3
    """Draw every n-th point (a dense cloud hides the image under it)."""


def overlay(args: Args) -> Path:
    """Write the overlay; returns its path."""
    seq = read_sequence(args.sequence)
    camera = args.camera or seq.cameras[0]
    if camera not in seq.cameras:
        raise InputError(f"--camera: {args.sequence} has no camera {camera!r}; choose from {', '.join(seq.cameras)}")
    frames = sorted((f for f in seq.frames if f.camera == camera), key=lambda f: f.time)
    if not 0 <= args.frame < len(frames):
        raise InputError(f"--frame must be between 0 and {len(frames) - 1} for camera {camera}, got {args.frame}")
    if seq.ply_path is None:
        raise InputError(f"{args.sequence} has no points.ply to overlay")
    frame = frames[args.frame]
    cloud = read_points(seq.ply_path)
    if cloud.time is None:
        raise InputError(f"{seq.ply_path} has no per-point time, so its sweeps cannot be told apart")
    times = np.array([f.time for f in frames])
    lo, hi = times[max(0, args.frame - args.neighbours)], times[min(len(times) - 1, args.frame + args.neighbours)]
    if args.stride < 1:
        raise InputError(f"--stride must be a positive integer, got {args.stride}")
    near = np.flatnonzero((cloud.time >= lo - 1e-4) & (cloud.time <= hi + 1e-4))[:: args.stride]
    image = np.asarray(Image.open(frame.image_path).convert("RGB")).astype(np.float32)
    if args.masks and frame.mask_path is not None:
        image = _tint(image, load_instance_mask(frame.mask_path))
    k = frame.intrinsics
    model = CameraModel(k.fx, k.fy, k.cx, k.cy, k.width, k.height)
    uv, depth = project(frame.camera_to_world @ OPENGL_TO_OPENCV, model, cloud.xyz[near])
    on_image = (uv[:, 0] >= 0) & (uv[:, 0] < k.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] < k.height - 1)
    inside = (depth > NEAR_PLANE) & on_image
    uv, depth = uv[inside], depth[inside]
    order = np.argsort(-depth)  # far first, near on top
    colours = _turbo(np.clip(depth[order] / args.max_depth, 0.0, 1.0))
    col, row = uv[order, 0].astype(int), uv[order, 1].astype(int)
    image[row, col] = colours
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(args.output)
    return args.output


def _tint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend a colour per instance id over the image (half opacity)."""
    ids = np.unique(mask[mask > 0])
    rng = np.random.default_rng(0)
    palette = {int(i): rng.uniform(60, 255, 3) for i in ids}
    out = image.copy()
    for i, colour in palette.items():
        hit = mask == i
        out[hit] = 0.5 * out[hit] + 0.5 * colour
    return out


def _turbo(x: np.ndarray) -> np.ndarray:
    """A near-to-far colour ramp (red, yellow, green, blue) for x in [0, 1]. Returns float [N, 3] in 0..255."""
    stops = np.array([[255, 40, 40], [255, 220, 0], [40, 220, 60], [40, 120, 255]], dtype=np.float32)
    pos = x * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    frac = (pos - lo)[:, None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


def entrypoint() -> None:
    """Console entry point: errors the user can fix end in one line."""
    try:
        path = overlay(tyro.cli(Args))
    except SemdynError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        sys.exit(2)
    Console().print(f"wrote {path}")


if __name__ == "__main__":
    entrypoint()
