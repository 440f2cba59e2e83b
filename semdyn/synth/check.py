"""Self-consistency check of a sequence's ground truth (boxes vs masks, depth maps vs LiDAR).

It reads only the written files (transforms.json, masks, depth, points.ply), so it checks the conventions of
the format as a consumer sees them, not the generator's internals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from plyfile import PlyData

from semdyn.errors import DataFormatError
from semdyn.synth.camera import Intrinsics, project

_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


@dataclass
class GTCheckResult:
    """Numbers of :func:`check_scene`."""

    mean_iou: float
    """Mean IoU of projected 3D box rectangles vs instance-mask rectangles (moving objects, untruncated)."""
    num_boxes: int
    """Object-image pairs that entered mean_iou."""
    num_truncated: int
    """Pairs skipped because the projected box leaves the image or lies partly behind the camera."""
    num_small: int
    """Pairs skipped because the mask has fewer than ``min_pixels`` pixels (far away or hidden)."""
    num_occluded: int
    """Pairs skipped because a nearer object covers part of the projected box rectangle."""
    depth_median_abs_error: float
    """Median |LiDAR z-depth - depth map| in metres over visible LiDAR points."""
    depth_frac_within_5cm: float
    """Fraction of those points whose error is below 5 cm."""
    num_depth_points: int
    """LiDAR points compared (projected inside an image, on a pixel of the same instance)."""
    overlay_paths: list[Path] = field(default_factory=list)
    """PNG files with instance masks blended over the images."""

    def as_rows(self) -> list[tuple[str, str]]:
        """(name, value) rows for a table."""
        return [
            ("mean IoU box vs mask (moving objects)", f"{self.mean_iou:.3f}"),
            (
                "boxes compared / truncated / small / occluded",
                f"{self.num_boxes} / {self.num_truncated} / {self.num_small} / {self.num_occluded}",
            ),
            ("depth vs LiDAR median abs error (m)", f"{self.depth_median_abs_error:.2e}"),
            ("depth vs LiDAR fraction within 5 cm", f"{self.depth_frac_within_5cm:.3f}"),
            ("LiDAR points compared", str(self.num_depth_points)),
        ]


def box_corners(size: np.ndarray, object_to_world: np.ndarray) -> np.ndarray:
    """World corners of an object box.  size: [3] (l, w, h), object_to_world: [4, 4] -> [8, 3]."""
    local = _CORNER_SIGNS * (np.asarray(size, dtype=np.float64) / 2.0)
    return local @ object_to_world[:3, :3].T + object_to_world[:3, 3]


def _intrinsics(frame: dict) -> Intrinsics:
    return Intrinsics(frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"], int(frame["w"]), int(frame["h"]))


def _load(scene: Path) -> dict:
    path = scene / "transforms.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataFormatError(path, f"cannot read transforms.json ({err})") from err


def _pose_at(obj: dict, time: float) -> np.ndarray:
    times = np.array([p["time"] for p in obj["poses"]])
    k = int(np.argmin(np.abs(times - time)))
    return np.asarray(obj["poses"][k]["object_to_world"], dtype=np.float64)


def _rect_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_mask_ious(scene: Path, transforms: dict, min_pixels: int = 30) -> tuple[list[float], int, int, int]:
    """IoU of the projected box rectangle and the mask rectangle for every moving object in every image.

    A pair is *truncated* (skipped) when a box corner is less than 0.1 m in front of the camera or the projected
    rectangle leaves the image; pairs whose mask has fewer than ``min_pixels`` pixels are skipped as too small;
    pairs whose rectangle is partly covered by a nearer object (depth maps) are skipped as occluded.
    Mask rectangles use pixel edges ([u, u + 1)), like the continuous projected coordinates.

    Returns:
        IoUs of the compared pairs, numbers truncated, too small and occluded.
    """
    moving = [o for o in transforms.get("objects", []) if o["dynamic"]]
    ious, truncated, small, occluded = [], 0, 0, 0
    for frame in transforms["frames"]:
        intr = _intrinsics(frame)
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        mask = iio.imread(scene / frame["mask_path"])
        depth = np.load(scene / frame["depth_file_path"])
        for obj in moving:
            uv, z = project(box_corners(obj["size"], _pose_at(obj, frame["time"])), c2w, intr)
            ys, xs = np.nonzero(mask == obj["id"])
            if (
                (z < 0.1).any()
                or uv[:, 0].min() < 0
                or uv[:, 1].min() < 0
                or uv[:, 0].max() > intr.width
                or uv[:, 1].max() > intr.height
            ):
                truncated += int(len(xs) > 0)
                continue
            if len(xs) < min_pixels:
                small += 1
                continue
            box = (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())
            if _occluded(mask, depth, obj["id"], box, float(z.min())):
                occluded += 1
                continue
            ious.append(_rect_iou(box, (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0)))
    return ious, truncated, small, occluded


def _occluded(
    mask: np.ndarray,
    depth: np.ndarray,
    instance: int,
    box: tuple[float, float, float, float],
    nearest: float,
    max_fraction: float = 0.02,
) -> bool:
    """True when more than ``max_fraction`` of the box rectangle shows another object nearer than the box's
    nearest corner (its mask rectangle is then cut by the occluder). Ground and sky never occlude here: ground
    pixels inside the rectangle lie beyond its nearest bottom corner."""
    r0, r1 = int(np.floor(box[1])), int(np.ceil(box[3]))
    c0, c1 = int(np.floor(box[0])), int(np.ceil(box[2]))
    m, d = mask[r0:r1, c0:c1], depth[r0:r1, c0:c1]
    if m.size == 0:
        return False
    other = (m != instance) & (m != 0) & (d > 0) & (d < nearest - 0.05)
    return bool(other.mean() > max_fraction)


def _inverse_depth_bilinear(depth: np.ndarray, inst: np.ndarray, uv: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Depth at continuous pixel positions: bilinear in inverse depth over the 4 surrounding pixel centres when
    all 4 show the point's instance (exact on planes), else the depth of the pixel the point falls in.
    depth, inst: [H, W], uv: [N, 2], ids: [N] -> [N]."""
    h, w = depth.shape
    nearest = depth[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)]
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx, fy = np.clip(x - x0, 0, 1), np.clip(y - y0, 0, 1)
    corners = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
    weights = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]
    same = np.all([inst[r, c] == ids for r, c in corners], axis=0)
    valid = np.all([depth[r, c] > 0 for r, c in corners], axis=0)
    inv = sum(wt / np.where(depth[r, c] > 0, depth[r, c], 1.0) for wt, (r, c) in zip(weights, corners, strict=True))
    return np.where(same & valid, 1.0 / inv, nearest)


def depth_vs_lidar(scene: Path, transforms: dict) -> np.ndarray:
    """Absolute differences (metres) between LiDAR z-depth and the depth maps.

    LiDAR points of each frame time are projected into that time's cameras; a point counts when it lands inside
    the image, in front of the camera, on a pixel of its own instance (so points hidden from the camera by
    something else, which the roof LiDAR sees, are left out).

    Returns:
        [M] absolute errors.
    """
    ply = transforms.get("ply_file_path")
    if not ply:
        return np.zeros(0)
    vertex = PlyData.read(str(scene / ply))["vertex"]
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=-1).astype(np.float64)
    times = np.asarray(vertex["time"], dtype=np.float64)
    ids = np.asarray(vertex["instance"], dtype=np.int64)
    errors = []
    for frame in transforms["frames"]:
        sel = np.abs(times - frame["time"]) < 1e-4
        if not sel.any():
            continue
        intr = _intrinsics(frame)
        uv, z = project(xyz[sel], np.asarray(frame["transform_matrix"], dtype=np.float64), intr)
        inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] < intr.width) & (uv[:, 1] < intr.height)
        uv, z, pid = uv[inside], z[inside], ids[sel][inside]
        inst = iio.imread(scene / frame["mask_path"]).astype(np.int64)
        depth = np.load(scene / frame["depth_file_path"]).astype(np.float64)
        own = inst[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)] == pid
        if own.any():
            errors.append(np.abs(_inverse_depth_bilinear(depth, inst, uv[own], pid[own]) - z[own]))
    return np.concatenate(errors) if errors else np.zeros(0)


def instance_colours(ids: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random colour per instance id.  ids: [...] -> [..., 3] uint8."""
    h = (ids.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(0xFF) for s in (0, 8, 16)], axis=-1).astype(np.float64)
    return (64 + rgb * 191 / 255).astype(np.uint8)


def write_overlays(scene: Path, transforms: dict, out_dir: Path, count: int = 3, alpha: float = 0.5) -> list[Path]:
    """Blend instance masks (colour per instance, sky left clear) over ``count`` images spread over the sequence,
    with the projected rectangles of moving objects in white.  Returns the PNG paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = transforms["frames"]
    cameras = sorted({f["camera"] for f in frames}, key=[f["camera"] for f in frames].index)
    times = sorted({f["time"] for f in frames})
    picks = []
    for k in range(count):
        time = times[round(k * (len(times) - 1) / max(count - 1, 1))]
        cam = cameras[k % len(cameras)]
        picks.append(next(f for f in frames if f["time"] == time and f["camera"] == cam))
    moving = [o for o in transforms.get("objects", []) if o["dynamic"]]
    paths = []
    for frame in picks:
        rgb = iio.imread(scene / frame["file_path"])[..., :3].astype(np.float64)
        inst = iio.imread(scene / frame["mask_path"])
        colour = instance_colours(inst).astype(np.float64)
        blend = np.where((inst > 0)[..., None], (1 - alpha) * rgb + alpha * colour, rgb)
        intr = _intrinsics(frame)
        for obj in moving:
            corners = box_corners(obj["size"], _pose_at(obj, frame["time"]))
            uv, z = project(corners, np.asarray(frame["transform_matrix"]), intr)
            if (z > 0.1).all():
                _draw_rect(blend, uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())
        name = Path(frame["file_path"]).stem
        path = out_dir / f"overlay_{frame['camera']}_{name}.png"
        iio.imwrite(path, blend.clip(0, 255).astype(np.uint8))
        paths.append(path)
    return paths


def _draw_rect(image: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> None:
    h, w = image.shape[:2]
    c0, c1 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.ceil(x1) - 1, 0, w - 1))
    r0, r1 = int(np.clip(np.floor(y0), 0, h - 1)), int(np.clip(np.ceil(y1) - 1, 0, h - 1))
    if x1 < 0 or y1 < 0 or x0 > w or y0 > h:
        return
    image[r0, c0 : c1 + 1] = image[r1, c0 : c1 + 1] = 255.0
    image[r0 : r1 + 1, c0] = image[r0 : r1 + 1, c1] = 255.0


def check_scene(
    scene: str | Path, out_dir: str | Path | None = None, num_overlays: int = 3, min_pixels: int = 30
) -> GTCheckResult:
    """Run the box-vs-mask and depth-vs-LiDAR checks on a sequence; write overlays into ``out_dir`` if given."""
    scene = Path(scene)
    transforms = _load(scene)
    ious, truncated, small, occluded = box_mask_ious(scene, transforms, min_pixels)
    errors = depth_vs_lidar(scene, transforms)
    overlays = write_overlays(scene, transforms, Path(out_dir), num_overlays) if out_dir is not None else []
    return GTCheckResult(
        mean_iou=float(np.mean(ious)) if ious else float("nan"),
        num_boxes=len(ious),
        num_truncated=truncated,
        num_small=small,
        num_occluded=occluded,
        depth_median_abs_error=float(np.median(errors)) if len(errors) else float("nan"),
        depth_frac_within_5cm=float(np.mean(errors < 0.05)) if len(errors) else float("nan"),
        num_depth_points=len(errors),
        overlay_paths=overlays,
    )
