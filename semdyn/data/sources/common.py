"""The one writer every dataset converter shares: source-agnostic frames in, a sequence folder out.

A converter (`waymo`, `nuscenes`, `kitti`) reads its dataset into a `SourceScene`: camera frames with
OpenCV camera-to-world poses and lazy image loaders, LiDAR sweeps in world coordinates with their capture
time, and 3D box tracks. `write_sequence` turns that into the format of ``shared/DATA_FORMAT.md``:

- ``images/<camera>/<index>.png``, downscaled and (by default) undistorted, intrinsics scaled to match;
- ``masks/<camera>/<index>.png``: 16-bit instance ids of the boxes projected into each image (nearest wins);
- ``points.ply``: every LiDAR point in world metres with its capture ``time`` and a colour sampled from the
  images of the nearest timestamp (grey 128 when no camera sees it);
- ``transforms.json``: per-frame OpenGL poses, ``time`` in seconds since the first frame, ``camera`` names,
  per-frame intrinsics, and the box tracks as ``objects`` (instance ids 1..K, poses at every frame time the
  track covers, interpolated linearly and by slerp between annotations).

The world is the dataset's own world (z up, metres) shifted by ``source.world_offset`` (the first camera's
position), so that float32 PLY coordinates keep millimetres; the offset is recorded in transforms.json.
The folder is written into a temp folder beside ``output`` and renamed when complete.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from plyfile import PlyData, PlyElement
from rich.progress import track
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation, Slerp

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.errors import DataFormatError, InputError
from semdyn.synth.writer import build_atomically  # the atomic folder swap the synthetic writer uses

NEAR_PLANE = 0.05
"""Boxes are clipped at this depth in front of a camera before projection, metres."""

GREY = 128
"""Colour of LiDAR points no camera sees."""


# ----------------------------------------------------------------------------------------------
# Options shared by every converter


@dataclass
class ConvertOptions:
    """Options every converter takes (``scripts/convert.py <dataset> --help`` lists them)."""

    output: Path = Path("outputs/converted")
    """Sequence folder to write (written into a temp folder beside it, then renamed)."""
    frames: tuple[int, int] | None = None
    """Frame range ``START STOP`` (Python slice: STOP excluded) in the source's timestamps; all when omitted."""
    cameras: tuple[str, ...] | None = None
    """Camera subset, by the dataset's own names (see the converter's help); all when omitted."""
    downscale: float = 1.0
    """Divide image width and height by this factor (intrinsics scaled to match)."""
    undistort: bool = True
    """Resample distorted images to the pinhole model (the core trainer needs k1..p2 = 0)."""
    lidar: bool = True
    """Aggregate the LiDAR sweeps into ``points.ply`` (world metres, per-point time)."""
    lidar_stride: int = 1
    """Keep every n-th LiDAR point of each sweep (1 keeps all)."""
    lidar_min_range: float = 2.0
    """Drop LiDAR returns closer than this to the sensor, metres (the ego vehicle's own body)."""
    objects: bool = True
    """Write the ground-truth boxes as ``objects`` tracks (evaluation only)."""
    masks: bool = True
    """Write ``masks/``: instance ids of the boxes projected into each image (needs ``objects``)."""
    dynamic_threshold: float = 1.0
    """A track is ``dynamic`` when its box centre travels more than this within the range, metres."""
    overwrite: bool = False
    """Replace ``output`` when it exists."""

    def validate(self) -> None:
        """Check the values. Raises `InputError` naming the option."""
        if self.frames is not None:
            start, stop = self.frames
            if start < 0 or stop <= start:
                raise InputError(f"--frames must be START STOP with 0 <= START < STOP, got {start} {stop}")
        if not (math.isfinite(self.downscale) and self.downscale >= 1.0):
            raise InputError(f"--downscale must be a number >= 1, got {self.downscale}")
        if self.lidar_stride < 1:
            raise InputError(f"--lidar-stride must be a positive integer, got {self.lidar_stride}")
        if self.lidar_min_range < 0:
            raise InputError(f"--lidar-min-range must be >= 0 metres, got {self.lidar_min_range}")
        if self.cameras is not None and not self.cameras:
            raise InputError("--cameras needs at least one camera name")


def select_range(count: int, frames: tuple[int, int] | None, what: str) -> range:
    """The indices ``frames`` selects among ``count`` source timestamps. Raises `InputError` when empty."""
    if frames is None:
        return range(count)
    start, stop = frames
    if start >= count:
        raise InputError(f"--frames {start} {stop} starts past the last of the {count} {what}")
    return range(start, min(stop, count))


def select_cameras(available: Sequence[str], requested: Sequence[str] | None, dataset: str) -> list[str]:
    """The requested cameras, checked against the dataset's. Raises `InputError` naming an unknown one."""
    if requested is None:
        return list(available)
    for name in requested:
        if name not in available:
            raise InputError(f"--cameras: {dataset} has no camera {name!r}; choose from {', '.join(available)}")
    return list(dict.fromkeys(requested))


# ----------------------------------------------------------------------------------------------
# What a converter hands to the writer


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics with OpenCV (Brown-Conrady) distortion, in the source image's pixels."""

    fx: float
    """Focal length x, pixels."""
    fy: float
    """Focal length y, pixels."""
    cx: float
    """Principal point x, pixels (copied from the dataset)."""
    cy: float
    """Principal point y, pixels."""
    width: int
    """Image width, pixels."""
    height: int
    """Image height, pixels."""
    k1: float = 0.0
    """Radial distortion 1."""
    k2: float = 0.0
    """Radial distortion 2."""
    k3: float = 0.0
    """Radial distortion 3."""
    p1: float = 0.0
    """Tangential distortion 1."""
    p2: float = 0.0
    """Tangential distortion 2."""

    @property
    def distorted(self) -> bool:
        """Whether any distortion coefficient is non-zero."""
        return any(v != 0.0 for v in (self.k1, self.k2, self.k3, self.p1, self.p2))

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height`` (distortion is unit-free)."""
        sx, sy = width / self.width, height / self.height
        return CameraModel(
            self.fx * sx,
            self.fy * sy,
            self.cx * sx,
            self.cy * sy,
            width,
            height,
            self.k1,
            self.k2,
            self.k3,
            self.p1,
            self.p2,
        )

    def pinhole(self) -> CameraModel:
        """The same camera without distortion."""
        return CameraModel(self.fx, self.fy, self.cx, self.cy, self.width, self.height)

    def matrix(self) -> np.ndarray:
        """K, float64 [3, 3]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def as_json(self) -> dict[str, float | int]:
        """The transforms.json intrinsics keys."""
        return {
            "fl_x": self.fx,
            "fl_y": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "w": self.width,
            "h": self.height,
            "k1": self.k1,
            "k2": self.k2,
            "k3": self.k3,
            "p1": self.p1,
            "p2": self.p2,
        }


@dataclass
class CameraFrame:
    """One image of the source."""

    camera: str
    """Camera name as written (the dataset's own, e.g. ``FRONT`` or ``CAM_FRONT``)."""
    time: float
    """Capture time, seconds (any origin; the writer subtracts the first frame's)."""
    camera_to_world: np.ndarray
    """float64 [4, 4], OpenCV convention (x right, y down, z forward), source world metres."""
    intrinsics: CameraModel
    """The camera at the source resolution."""
    load_image: Callable[[], np.ndarray]
    """Returns the image, uint8 [H, W, 3] at the source resolution."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Per-frame keys copied into transforms.json (e.g. rolling-shutter metadata)."""
    image_source: Path = Path(".")
    """The file the image comes from (an image, or the parquet file holding it), named in errors."""


@dataclass
class LidarSweep:
    """One LiDAR sweep, loaded lazily."""

    time: float
    """Capture time, seconds (same origin as the frames)."""
    origin: np.ndarray
    """float64 [3]: sensor position in the source world, metres (for ``lidar_min_range``)."""
    load_points: Callable[[], np.ndarray]
    """Returns the returns in the source world, float64 [N, 3], metres."""


@dataclass
class BoxTrack:
    """A 3D box track of one object (box frame: centre origin, x along length, y left, z up)."""

    key: str
    """The dataset's object id."""
    label: str
    """Class name."""
    size: np.ndarray
    """float64 [3]: length, width, height, metres."""
    times: np.ndarray
    """float64 [P]: annotation times, seconds (same origin as the frames), strictly increasing."""
    object_to_world: np.ndarray
    """float64 [P, 4, 4]: box frame to source world."""


@dataclass
class SourceScene:
    """Everything a converter read, ready for `write_sequence`."""

    dataset: str
    """Dataset name (``waymo``, ``nuscenes``, ``kitti``)."""
    frames: list[CameraFrame]
    """Camera frames (any order)."""
    sweeps: list[LidarSweep] = field(default_factory=list)
    """LiDAR sweeps."""
    tracks: list[BoxTrack] = field(default_factory=list)
    """Box tracks."""
    info: dict[str, Any] = field(default_factory=dict)
    """Source description recorded under ``source`` in transforms.json (segment, scene, drive...)."""


# ----------------------------------------------------------------------------------------------
# Small geometry


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """A 4x4 from a rotation [3, 3] and a translation [3]. Returns float64 [4, 4]."""
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


def transform_points(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 to points. xyz: [N, 3]. Returns float64 [N, 3]."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz @ matrix[:3, :3].T + matrix[:3, 3]


def project(camera_to_world: np.ndarray, camera: CameraModel, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection (no distortion) of world points into an OpenCV camera.

    Args:
        camera_to_world: float64 [4, 4], OpenCV convention.
        camera: intrinsics (its distortion is ignored).
        xyz: [N, 3] world points, metres.

    Returns:
        uv [N, 2] pixel coordinates and depth [N] along the optical axis (metres; <= 0 behind).
    """
    cam = transform_points(np.linalg.inv(camera_to_world), xyz)
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
    uv = np.stack([camera.fx * cam[:, 0] / safe + camera.cx, camera.fy * cam[:, 1] / safe + camera.cy], axis=-1)
    return uv, depth


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid poses at ``query`` times within ``[times[0], times[-1]]`` (linear translation, slerp rotation).

    Args:
        times: [P] strictly increasing seconds.
        poses: [P, 4, 4].
        query: [Q] seconds.

    Returns:
        inside: bool [Q], which queries the track covers (1e-6 s tolerance); and poses [Q_inside, 4, 4].
    """
    query = np.asarray(query, dtype=np.float64)
    inside = (query >= times[0] - 1e-6) & (query <= times[-1] + 1e-6)
    q = np.clip(query[inside], times[0], times[-1])
    if len(times) == 1:
        return inside, np.repeat(poses[:1], len(q), axis=0)
    out = np.repeat(np.eye(4)[None], len(q), axis=0)
    out[:, :3, :3] = Slerp(times, Rotation.from_matrix(poses[:, :3, :3]))(q).as_matrix()
    for k in range(3):
        out[:, k, 3] = np.interp(q, times, poses[:, k, 3])
    return inside, out


def box_corners(size: np.ndarray) -> np.ndarray:
    """The 8 corners of a box centred at the origin. size: [3] (l, w, h). Returns [8, 3]."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return 0.5 * signs * np.asarray(size, dtype=np.float64)


_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
"""Pairs of corner indices (of `box_corners`) joined by an edge (12 of them)."""


def box_outline(
    object_to_world: np.ndarray, size: np.ndarray, camera_to_world: np.ndarray, camera: CameraModel
) -> tuple[np.ndarray, float] | None:
    """The image polygon covered by a box (convex hull of its near-clipped projection), and its nearest depth.

    Returns None when the box lies entirely behind the near plane. Polygon: [K, 2] pixels.
    """
    corners = transform_points(np.linalg.inv(camera_to_world) @ object_to_world, box_corners(size))
    z = corners[:, 2]
    if np.all(z < NEAR_PLANE):
        return None
    points = [corners[z >= NEAR_PLANE]]
    for a, b in _BOX_EDGES:  # where an edge crosses the near plane
        if (z[a] < NEAR_PLANE) != (z[b] < NEAR_PLANE):
            s = (NEAR_PLANE - z[a]) / (z[b] - z[a])
            points.append((corners[a] + s * (corners[b] - corners[a]))[None])
    clipped = np.concatenate(points)
    uv = clipped[:, :2] / clipped[:, 2:3] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    return convex_hull(uv), float(clipped[:, 2].min())


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain), counter-clockwise. points: [N, 2]. Returns [K, 2]."""
    pts = sorted({(float(x), float(y)) for x, y in points})
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64).reshape(-1, 2)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Images


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average resize of a uint8 [H, W, 3] image to [height, width, 3] (identity when equal)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BOX))


def distort_normalized(x: np.ndarray, y: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's Brown-Conrady model on normalised coordinates (x = X/Z, y = Y/Z). Shapes kept."""
    r2 = x * x + y * y
    radial = 1.0 + r2 * (camera.k1 + r2 * (camera.k2 + r2 * camera.k3))
    xd = x * radial + 2.0 * camera.p1 * x * y + camera.p2 * (r2 + 2.0 * x * x)
    yd = y * radial + camera.p1 * (r2 + 2.0 * y * y) + 2.0 * camera.p2 * x * y
    return xd, yd


def undistort_image(image: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Resample a distorted image to the pinhole camera with the same K (bilinear; black outside).

    image: uint8 [H, W, 3] taken by `camera` (same resolution). Returns uint8 [H, W, 3].
    """
    if not camera.distorted:
        return image
    coords = _distorted_pixels(camera)
    out = np.stack([map_coordinates(image[..., c].astype(np.float32), coords, order=1, cval=0.0) for c in range(3)])
    return np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(1, 2, 0)


@functools.lru_cache(maxsize=8)
def _distorted_pixels(camera: CameraModel) -> np.ndarray:
    """For each pixel of the pinhole image, where it lies in the distorted one: float32 [2, H, W] (row, column)."""
    v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    xd, yd = distort_normalized((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, camera)
    return np.stack([yd * camera.fy + camera.cy, xd * camera.fx + camera.cx]).astype(np.float32)


def write_png(path: Path, array: np.ndarray) -> None:
    """Save a PNG (uint16 [H, W] as 16-bit greyscale), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ----------------------------------------------------------------------------------------------
# The writer


@dataclass
class _Track:
    """A box track resolved against the frame times."""

    id: int
    box: BoxTrack
    dynamic: bool
    times: np.ndarray  # [Q] frame times (seconds since start) the track covers
    poses: np.ndarray  # [Q, 4, 4] world (offset applied)


def write_sequence(scene: SourceScene, options: ConvertOptions) -> Path:
    """Write `scene` as a sequence folder at ``options.output``, atomically.

    Returns:
        The absolute path of the written folder.

    Raises:
        InputError: bad options, an existing output without ``overwrite``, or a scene without frames.
    """
    options.validate()
    if not scene.frames:
        raise InputError(f"the {scene.dataset} source has no camera frames in the selected range and cameras")
    output = Path(options.output).expanduser().resolve()
    if output.exists() and not options.overwrite:
        raise InputError(f"output folder {output} already exists; pass --overwrite to replace it")
    build_atomically(output, lambda tmp: _write_into(scene, options, tmp), replace=True)
    return output


def _write_into(scene: SourceScene, options: ConvertOptions, root: Path) -> None:
    frames = sorted(scene.frames, key=lambda f: (f.time, f.camera))
    cameras = list(dict.fromkeys(f.camera for f in frames))
    t0 = frames[0].time
    offset = frames[0].camera_to_world[:3, 3].copy()
    shift = rigid(np.eye(3), -offset)
    groups = [list(group) for _, group in itertools.groupby(frames, key=lambda f: f.time)]  # one per timestamp
    distinct = np.array([group[0].time - t0 for group in groups])
    tracks = _resolve_tracks(scene.tracks, distinct, t0, shift, options) if options.objects else []
    sweeps = scene.sweeps if options.lidar else []
    clouds = [_load_sweep(s, shift, t0, options) for s in track(sweeps, description="reading LiDAR")] if sweeps else []
    colour_from = _nearest_frames(frames, sweeps)
    out_frames: list[dict[str, Any]] = []
    for index, (time, group) in enumerate(
        track(list(zip(distinct, groups, strict=True)), f"converting {scene.dataset}")
    ):
        for frame in group:
            c2w = shift @ frame.camera_to_world
            image, camera = _prepare_image(frame, options)
            entry: dict[str, Any] = {"file_path": f"images/{frame.camera}/{index:05d}.png"}
            write_png(root / entry["file_path"], image)
            if options.masks and options.objects:
                entry["mask_path"] = f"masks/{frame.camera}/{index:05d}.png"
                write_png(root / entry["mask_path"], _instance_mask(tracks, time, c2w, camera))
            entry.update(
                transform_matrix=(c2w @ OPENGL_TO_OPENCV).tolist(),
                time=float(time),
                camera=frame.camera,
                **camera.as_json(),
                **frame.extra,
            )
            out_frames.append(entry)
            for k in colour_from.get(id(frame), []):
                _colour(clouds[k], image, c2w, camera)
    meta: dict[str, Any] = {
        "camera_model": "OPENCV",
        "frames": out_frames,
        "source": {
            **scene.info,
            "dataset": scene.dataset,
            "cameras": cameras,
            "world_offset": offset.tolist(),
            "time_offset_seconds": t0,
            "world": "the dataset's world frame (z up, metres) minus world_offset",
            "time": "seconds after the source's time origin (time_origin_*) minus time_offset_seconds",
        },
    }
    if clouds:
        _write_ply(root / "points.ply", clouds)
        meta["ply_file_path"] = "points.ply"
    if options.objects:
        meta["objects"] = [_track_json(t) for t in tracks]
    _write_json(root / "transforms.json", meta)


def _prepare_image(frame: CameraFrame, options: ConvertOptions) -> tuple[np.ndarray, CameraModel]:
    """Load, downscale and undistort one image; returns it and the camera that took it as written."""
    camera = frame.intrinsics
    image = frame.load_image()
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != (camera.height, camera.width):
        raise DataFormatError(
            frame.image_source,
            f"the {frame.camera} image at t={frame.time:.6f} s has shape {image.shape}, its calibration says "
            f"[{camera.height}, {camera.width}, 3]",
        )
    width = max(1, round(camera.width / options.downscale))
    height = max(1, round(camera.height / options.downscale))
    camera = camera.scaled(width, height)
    image = resize_image(image, width, height)
    if options.undistort and camera.distorted:
        image = undistort_image(image, camera)
        camera = camera.pinhole()
    return image, camera


def _resolve_tracks(
    boxes: list[BoxTrack], distinct: np.ndarray, t0: float, shift: np.ndarray, options: ConvertOptions
) -> list[_Track]:
    """Number the tracks 1..K (in the order given) and sample their poses at the frame times they cover."""
    out = []
    for box in boxes:
        inside, poses = interpolate_poses(box.times - t0, box.object_to_world, distinct)
        if not inside.any():
            continue
        poses = shift @ poses
        travel = np.linalg.norm(poses[:, :3, 3] - poses[:1, :3, 3], axis=-1).max()
        out.append(_Track(len(out) + 1, box, bool(travel > options.dynamic_threshold), distinct[inside], poses))
    if len(out) >= 2**16:
        raise InputError(f"{len(out)} object tracks do not fit 16-bit instance ids; convert a shorter --frames range")
    return out


def _track_json(t: _Track) -> dict[str, Any]:
    return {
        "id": t.id,
        "class": t.box.label,
        "dynamic": t.dynamic,
        "size": [float(s) for s in t.box.size],
        "source_id": t.box.key,
        "poses": [{"time": float(s), "object_to_world": p.tolist()} for s, p in zip(t.times, t.poses, strict=True)],
    }


def _instance_mask(tracks: list[_Track], time: float, c2w: np.ndarray, camera: CameraModel) -> np.ndarray:
    """uint16 [H, W]: the id of the nearest box covering each pixel, 0 elsewhere."""
    outlines = []
    for t in tracks:
        hit = np.flatnonzero(np.abs(t.times - time) < 1e-9)
        if len(hit) == 0:
            continue
        outline = box_outline(t.poses[hit[0]], t.box.size, c2w, camera)
        if outline is not None and len(outline[0]) >= 3:
            outlines.append((outline[1], t.id, outline[0]))
    canvas = Image.new("I", (camera.width, camera.height), 0)
    draw = ImageDraw.Draw(canvas)
    for _, object_id, polygon in sorted(outlines, key=lambda o: -o[0]):  # far first: near boxes overwrite
        # Pixel (i, j) covers [i, i+1) x [j, j+1); PIL fills pixels whose centres are inside at integer coordinates.
        draw.polygon([(float(x) - 0.5, float(y) - 0.5) for x, y in polygon], fill=object_id)
    return np.asarray(canvas, dtype=np.int32).astype(np.uint16)


def _nearest_frames(frames: list[CameraFrame], sweeps: list[LidarSweep]) -> dict[int, list[int]]:
    """For each camera, the frame nearest in time to each sweep colours it: ``id(frame) -> [sweep index]``."""
    out: dict[int, list[int]] = {}
    for camera in dict.fromkeys(f.camera for f in frames):
        own = [f for f in frames if f.camera == camera]
        times = np.array([f.time for f in own])
        for k, sweep in enumerate(sweeps):
            out.setdefault(id(own[int(np.argmin(np.abs(times - sweep.time)))]), []).append(k)
    return out


def _load_sweep(sweep: LidarSweep, shift: np.ndarray, t0: float, options: ConvertOptions) -> dict[str, np.ndarray]:
    """The points of a sweep in the shifted world with their time; grey and ``unseen`` until coloured."""
    xyz = np.asarray(sweep.load_points(), dtype=np.float64).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1) & (np.linalg.norm(xyz - sweep.origin, axis=1) >= options.lidar_min_range)
    xyz = transform_points(shift, xyz[keep][:: options.lidar_stride]).astype(np.float32)  # as the PLY keeps them
    return {
        "xyz": xyz,
        "rgb": np.full((len(xyz), 3), GREY, dtype=np.uint8),
        "time": np.full(len(xyz), sweep.time - t0, dtype=np.float32),
        "unseen": np.ones(len(xyz), dtype=bool),
    }


def _colour(cloud: dict[str, np.ndarray], image: np.ndarray, c2w: np.ndarray, camera: CameraModel) -> None:
    """Give the not yet coloured points of `cloud` that `camera` sees the colour of their pixel (in place)."""
    uv, depth = project(c2w, camera, cloud["xyz"])
    col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    seen = (
        cloud["unseen"] & (depth > NEAR_PLANE) & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    )
    cloud["rgb"][seen] = image[row[seen], col[seen]]
    cloud["unseen"] &= ~seen


def _write_ply(path: Path, chunks: list[dict[str, np.ndarray]]) -> None:
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("time", "f4")]
    xyz = np.concatenate([c["xyz"] for c in chunks])
    rgb = np.concatenate([c["rgb"] for c in chunks])
    data = np.empty(len(xyz), dtype=fields)
    for k, axis in enumerate("xyz"):
        data[axis] = xyz[:, k]
    for k, channel in enumerate(("red", "green", "blue")):
        data[channel] = rgb[:, k]
    data["time"] = np.concatenate([c["time"] for c in chunks])
    PlyData([PlyElement.describe(data, "vertex")], text=False).write(str(path))


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)
