"""Read and validate a driving sequence (``shared/DATA_FORMAT.md``) into typed dataclasses.

This module is the pure reader: numpy, PIL and plyfile only, no nerfstudio. The nerfstudio adapter
(`semdyn.data.nerfstudio_dataparser`) turns a `Sequence` into `DataparserOutputs`.

Everything a user can get wrong in a sequence folder is caught by `read_sequence` and raised as one
`DataFormatError` naming the file and the field, before any training starts. Pixels of masks,
semantics and depth are not decoded here (only their headers are read, to check sizes).

Units: world coordinates in metres, times in seconds, unless a name says ``normalized``.
Camera poses follow nerfstudio/OpenGL: camera-to-world, the camera looks down -z with +y up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from semdyn.data.images import image_size, is_file, npy_shape, resolve_image_path
from semdyn.data.object_track import MAX_ABS_COORDINATE, ObjectTrack, json_kind, json_number, parse_track
from semdyn.errors import DataFormatError

CAMERA_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV_FISHEYE", "EQUIRECTANGULAR")
"""Camera models accepted in ``camera_model`` (the subset of nerfstudio's with at most k1-k4, p1, p2)."""

DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
"""Distortion coefficients in nerfstudio's ``distortion_params`` order."""

"""Largest accepted absolute value of a pose entry, in metres (beyond it float32 maths breaks)."""
ROTATION_TOLERANCE = 1e-3
"""Largest |R^T R - I| entry of a pose's rotation block (float32 round-trips and hand-edited files pass; scaled or
sheared rotations do not)."""

TimeSource = Literal["file", "none"]
SplitSource = Literal["split.json", "transforms.json", "interval", "all"]
OrientationMethod = Literal["none", "up"]
CenterMethod = Literal["poses", "none"]


# ----------------------------------------------------------------------------------------------
# Parsed sequence


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics and distortion of one image (pixels; OpenCV/nerfstudio conventions)."""

    fx: float
    """Focal length along x, pixels."""
    fy: float
    """Focal length along y, pixels."""
    cx: float
    """Principal point x, pixels (nerfstudio convention: the image centre is ``w / 2``)."""
    cy: float
    """Principal point y, pixels."""
    width: int
    """Image width, pixels."""
    height: int
    """Image height, pixels."""
    model: str = "OPENCV"
    """Camera model name, one of `CAMERA_MODELS`."""
    k1: float = 0.0
    """Radial distortion 1."""
    k2: float = 0.0
    """Radial distortion 2."""
    k3: float = 0.0
    """Radial distortion 3 (FULL_OPENCV / fisheye)."""
    k4: float = 0.0
    """Radial distortion 4 (fisheye)."""
    p1: float = 0.0
    """Tangential distortion 1."""
    p2: float = 0.0
    """Tangential distortion 2."""

    def distortion_params(self) -> np.ndarray:
        """Coefficients in nerfstudio order ``[k1, k2, k3, k4, p1, p2]``. Returns float32 [6]."""
        return np.array([self.k1, self.k2, self.k3, self.k4, self.p1, self.p2], dtype=np.float32)

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K. Returns float64 [3, 3]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class Frame:
    """One image of the sequence with its pose, time and optional per-pixel side files."""

    file_path: str
    """The ``file_path`` as written in transforms.json, normalised to POSIX without a leading ``./``."""
    image_path: Path
    """The image on disk."""
    camera_to_world: np.ndarray = field(repr=False)
    """float64 [4, 4], metres, OpenGL convention."""
    time: float
    """Seconds as written in the file (0 for a static scene)."""
    camera: str
    """Name of the camera (sensor) that took the image."""
    intrinsics: Intrinsics
    """Intrinsics and distortion of this image."""
    mask_path: Path | None = None
    """16-bit instance-id PNG (0 = none/sky), or None."""
    semantic_path: Path | None = None
    """8-bit semantic class-id PNG, or None."""
    depth_path: Path | None = None
    """float32 ``.npy`` depth in metres (0 = unknown), or None."""


@dataclass(frozen=True)
class TimeAxis:
    """How seconds map to the normalised time in [0, 1] that nerfstudio's ``Cameras.times`` holds."""

    start: float
    """Seconds of the first frame."""
    end: float
    """Seconds of the last frame."""
    source: TimeSource
    """``file``: frames carry ``time``; ``none``: a static scene, every time is 0."""

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame (0 for one timestamp)."""
        return self.end - self.start

    def normalize(self, seconds: np.ndarray, clip: bool = False) -> np.ndarray:
        """Seconds to [0, 1] over the sequence (0 everywhere when the duration is 0). Shape kept."""
        seconds = np.asarray(seconds, dtype=np.float64)
        if self.duration <= 0.0:
            return np.zeros_like(seconds)
        out = (seconds - self.start) / self.duration
        return np.clip(out, 0.0, 1.0) if clip else out

    def to_seconds(self, normalized: np.ndarray) -> np.ndarray:
        """Inverse of `normalize`. Shape kept."""
        return self.start + np.asarray(normalized, dtype=np.float64) * self.duration


@dataclass(frozen=True)
class Split:
    """Which frames (indices into `Sequence.frames`) train and which are held out."""

    train: tuple[int, ...]
    """Training frame indices, ascending."""
    test: tuple[int, ...]
    """Held-out frame indices, ascending (nerfstudio's ``val`` and ``test``)."""
    source: SplitSource
    """Where the split came from: ``split.json``, ``*_filenames`` in transforms.json, every n-th
    timestamp (``interval``), or ``all`` frames in both (too few timestamps to hold any out)."""


@dataclass(frozen=True, eq=False)
class Sequence:
    """A parsed and validated sequence folder. Frames are sorted by (time, camera order, file path)."""

    root: Path
    """The sequence folder."""
    transforms_path: Path
    """The transforms.json read."""
    frames: tuple[Frame, ...] = field(repr=False)
    """All frames, F of them."""
    cameras: tuple[str, ...]
    """Camera names in order of first appearance in the file, C of them."""
    time_axis: TimeAxis
    """Seconds <-> normalised time."""
    split: Split = field(repr=False)
    """Train / held-out frames."""
    ply_path: Path | None = None
    """Initial point cloud, or None."""
    semantic_classes: tuple[str, ...] = ()
    """Class names indexed by the semantic images."""
    objects: tuple[ObjectTrack, ...] = field(default=(), repr=False)
    """Ground-truth object tracks in metres (evaluation only)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level keys of transforms.json this reader does not interpret (kept for converters)."""

    @property
    def times_seconds(self) -> np.ndarray:
        """float64 [F], seconds."""
        return np.array([f.time for f in self.frames], dtype=np.float64)

    @property
    def times_normalized(self) -> np.ndarray:
        """float64 [F], in [0, 1]."""
        return self.time_axis.normalize(self.times_seconds)

    @property
    def camera_indices(self) -> np.ndarray:
        """int64 [F]: index of each frame's camera in `cameras`."""
        lookup = {name: i for i, name in enumerate(self.cameras)}
        return np.array([lookup[f.camera] for f in self.frames], dtype=np.int64)

    @property
    def timestamp_indices(self) -> np.ndarray:
        """int64 [F]: index of each frame's time among the distinct times, ascending."""
        _, inverse = np.unique(self.times_seconds, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1)

    @property
    def camera_to_worlds(self) -> np.ndarray:
        """float64 [F, 4, 4], metres."""
        return np.stack([f.camera_to_world for f in self.frames])

    def has(self, kind: Literal["mask", "semantic", "depth"]) -> bool:
        """Whether every frame has the side file `kind` (the reader guarantees all or none)."""
        return all(getattr(f, f"{kind}_path") is not None for f in self.frames)


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Initial points read from the PLY, in metres."""

    xyz: np.ndarray
    """float64 [N, 3], metres."""
    rgb: np.ndarray
    """uint8 [N, 3] (grey 128 when the PLY has no colours)."""
    time: np.ndarray | None = None
    """float64 [N], seconds, or None when the PLY has no ``time`` property."""


@dataclass(frozen=True, eq=False)
class SceneNormalization:
    """The similarity from metres to the dataparser's normalised world: ``x' = scale * (R x + t)``.

    Stored as nerfstudio stores it: ``transform`` = [R | t] (applied first) and ``scale`` (after),
    i.e. ``DataparserOutputs.dataparser_transform`` and ``dataparser_scale``.
    """

    transform: np.ndarray
    """float64 [3, 4]: rotation and translation, metres -> oriented, centred metres."""
    scale: float
    """Multiplier applied after `transform`: oriented metres -> normalised units."""

    def matrix(self) -> np.ndarray:
        """The full similarity as a homogeneous matrix (scale included). Returns float64 [4, 4]."""
        out = np.eye(4)
        out[:3, :] = self.scale * self.transform
        return out

    def points_to_normalized(self, xyz: np.ndarray) -> np.ndarray:
        """Metres to normalised units. xyz: [..., 3]. Returns float64 [..., 3]."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return self.scale * (xyz @ self.transform[:, :3].T + self.transform[:, 3])

    def points_to_metres(self, xyz: np.ndarray) -> np.ndarray:
        """Normalised units back to metres. xyz: [..., 3]. Returns float64 [..., 3]."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return (xyz / self.scale - self.transform[:, 3]) @ self.transform[:, :3]

    def poses_to_normalized(self, poses: np.ndarray) -> np.ndarray:
        """Rigid poses (camera- or object-to-world) from metres to normalised units.

        The rotation is rotated, the translation rotated, shifted and scaled (rotations stay orthonormal).
        poses: [..., 4, 4] or [..., 3, 4]. Returns float64 [..., 4, 4].
        """
        poses = _homogeneous(poses)
        rigid = np.eye(4)
        rigid[:3, :] = self.transform
        out = rigid @ poses
        out[..., :3, 3] *= self.scale
        return out

    def poses_to_metres(self, poses: np.ndarray) -> np.ndarray:
        """Inverse of `poses_to_normalized`. poses: [..., 4, 4] or [..., 3, 4]. Returns float64 [..., 4, 4]."""
        poses = _homogeneous(poses).copy()
        poses[..., :3, 3] /= self.scale
        rigid = np.eye(4)
        rigid[:3, :] = self.transform
        return np.linalg.inv(rigid) @ poses

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, the layout of nerfstudio's ``dataparser_transforms.json``."""
        return {"transform": self.transform.tolist(), "scale": float(self.scale)}


# ----------------------------------------------------------------------------------------------
# Public functions


def read_sequence(data: Path | str, *, eval_interval: int = 8, check_files: bool = True) -> Sequence:
    """Parse and validate a sequence folder (or an explicit transforms .json file).

    Args:
        data: the sequence folder holding ``transforms.json``, or the path of a transforms .json.
        eval_interval: without ``split.json``, every `eval_interval`-th distinct timestamp (all its
            cameras) is held out, counting from the first (nerfstudio's ``interval`` rule); a static
            scene counts frames instead of timestamps.
        check_files: open the header of every image, mask, semantic image and depth map to check that
            it exists and that its size matches (cheap; pixels are not decoded).

    Returns:
        The parsed `Sequence`.

    Raises:
        DataFormatError: anything in the folder that does not follow ``shared/DATA_FORMAT.md``.
    """
    data = Path(data)
    if isinstance(eval_interval, bool) or not isinstance(eval_interval, int) or eval_interval < 1:
        raise DataFormatError(data, f"eval_interval must be a positive integer, got {eval_interval!r}")
    if data.suffix == ".json" and not data.is_dir():
        transforms_path, root = data, data.parent
    else:
        transforms_path, root = data / "transforms.json", data
    if not root.is_dir():
        raise DataFormatError(root, "the sequence folder does not exist")
    if not is_file(transforms_path) and is_file(root / "transforms_train.json"):
        transforms_path, meta = _merge_split_files(root)  # D-NeRF / Blender layout
    elif not is_file(transforms_path):
        raise DataFormatError(transforms_path, "the transforms file does not exist")
    else:
        meta = _load_object(transforms_path)
    reader = _Reader(transforms_path, root)
    frames = reader.frames(meta)
    if check_files:
        for i, frame in enumerate(frames):
            reader.check_sizes(frame, i)
    cameras = tuple(dict.fromkeys(f.camera for f in frames))
    order = {name: i for i, name in enumerate(cameras)}
    frames.sort(key=lambda f: (f.time, order[f.camera], f.file_path))
    has_time = any("time" in raw for raw in meta["frames"])
    times = [f.time for f in frames]
    time_axis = TimeAxis(start=min(times), end=max(times), source="file" if has_time else "none")
    if not math.isfinite(time_axis.duration):
        raise DataFormatError(transforms_path, "the frame times span more seconds than a float can hold")
    split = _read_split(transforms_path, root, meta, frames, eval_interval, has_time)
    known = {"frames", "camera_model", "ply_file_path", "semantic_classes", "objects", *_INTRINSIC_KEYS}
    return Sequence(
        root=root,
        transforms_path=transforms_path,
        frames=tuple(frames),
        cameras=cameras,
        time_axis=time_axis,
        split=split,
        ply_path=reader.ply_path(meta),
        semantic_classes=reader.semantic_classes(meta),
        objects=reader.objects(meta),
        extra={k: v for k, v in meta.items() if k not in known},
    )


def _load_object(path: Path) -> dict[str, Any]:
    """A JSON file whose top level is an object."""
    meta = load_json(path)
    if not isinstance(meta, dict):
        raise DataFormatError(path, f"the top level must be a JSON object, got {json_kind(meta)}")
    return meta


def _merge_split_files(root: Path) -> tuple[Path, dict[str, Any]]:
    """Merge D-NeRF's ``transforms_{train,val,test}.json`` into one transforms dict.

    The shared keys come from the train file; the split is recorded as nerfstudio's ``train_filenames``
    and ``test_filenames`` (the test file, else the val file). Returns the train file's path and the dict.
    """
    merged: dict[str, Any] = {}
    names: dict[str, list[Any]] = {}
    for part in ("train", "val", "test"):
        path = root / f"transforms_{part}.json"
        if not is_file(path):
            continue
        meta = _load_object(path)
        frames = meta.get("frames")
        if not isinstance(frames, list):
            raise DataFormatError(path, f"'frames' must be a list, got {json_kind(frames)}")
        if part == "train":
            merged = {k: v for k, v in meta.items() if k != "frames"}
            merged["frames"] = []
        merged["frames"].extend(frames)
        names[part] = [f.get("file_path") if isinstance(f, dict) else None for f in frames]
    merged["train_filenames"] = names["train"]
    merged["test_filenames"] = names.get("test", names.get("val", []))
    return root / "transforms_train.json", merged


def compute_normalization(
    camera_to_worlds: np.ndarray,
    orientation_method: OrientationMethod = "none",
    center_method: CenterMethod = "poses",
    auto_scale_poses: bool = True,
    scale_factor: float = 1.0,
) -> SceneNormalization:
    """The recentre + rescale policy, nerfstudio-style, computed on all frames (not one split).

    Args:
        camera_to_worlds: [F, 4, 4] or [F, 3, 4], metres.
        orientation_method: ``none`` keeps the world axes (converters write z-up metres); ``up`` rotates
            the mean camera up-vector (+y) to +z, as nerfstudio's ``up``.
        center_method: ``poses`` moves the mean camera position to the origin; ``none`` does not.
        auto_scale_poses: scale so that the largest absolute camera coordinate is 1.
        scale_factor: extra multiplier on top.

    Returns:
        The `SceneNormalization` (rotation + translation, then scale).
    """
    poses = _homogeneous(camera_to_worlds)
    positions = poses[:, :3, 3]
    rotation = np.eye(3)
    if orientation_method == "up":
        up = poses[:, :3, 1].mean(axis=0)
        rotation = _rotation_between(up, np.array([0.0, 0.0, 1.0]))
    elif orientation_method != "none":
        raise ValueError(f"unknown orientation_method {orientation_method!r}")
    if center_method == "poses":
        center = positions.mean(axis=0)
    elif center_method == "none":
        center = np.zeros(3)
    else:
        raise ValueError(f"unknown center_method {center_method!r}")
    transform = np.concatenate([rotation, -(rotation @ center)[:, None]], axis=1)
    scale = 1.0
    if auto_scale_poses:
        extent = float(np.max(np.abs(positions @ rotation.T + transform[:, 3])))
        scale = 1.0 / extent if extent > 1e-9 else 1.0
    return SceneNormalization(transform=transform, scale=scale * float(scale_factor))


def read_points(path: Path) -> PointCloud:
    """Read the initial point cloud (``x y z``, optional ``red green blue`` and ``time``) of a PLY.

    Args:
        path: the PLY file.

    Returns:
        The `PointCloud`, metres and seconds.

    Raises:
        DataFormatError: missing or unreadable file, or no ``vertex`` element with x, y, z.
    """
    from plyfile import PlyData  # plyfile is light but only needed here

    if not is_file(path):
        raise DataFormatError(path, "the PLY file (ply_file_path) does not exist")
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
    except Exception as error:  # plyfile raises PlyParseError, KeyError, ValueError, ...
        raise DataFormatError(
            path, f"is not a readable PLY with a 'vertex' element ({type(error).__name__})"
        ) from error
    names = set(vertex.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise DataFormatError(path, "the 'vertex' element needs properties x, y and z")
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=-1).astype(np.float64)
    if not np.all(np.isfinite(xyz)):
        raise DataFormatError(path, "vertex x, y, z must be finite numbers")
    rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    for keys in (("red", "green", "blue"), ("r", "g", "b")):
        if set(keys) <= names:
            colours = np.stack([vertex[k] for k in keys], axis=-1)
            if colours.dtype.kind == "f":
                colours = np.clip(colours, 0.0, 1.0) * 255.0 if colours.max(initial=0.0) <= 1.0 else colours
            rgb = np.clip(np.round(colours.astype(np.float64)), 0, 255).astype(np.uint8)
            break
    time = None
    if "time" in names:
        time = np.asarray(vertex["time"], dtype=np.float64)
        if not np.all(np.isfinite(time)):
            raise DataFormatError(path, "vertex time must be finite numbers")
    return PointCloud(xyz=xyz, rgb=rgb, time=time)


def load_json(path: Path) -> Any:
    """Load a JSON file, turning every read or syntax problem into a `DataFormatError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(path, f"cannot be read as UTF-8 text ({type(error).__name__})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, f"is not valid JSON ({error.msg} at line {error.lineno})") from error
    except (RecursionError, ValueError) as error:
        raise DataFormatError(path, f"is not valid JSON ({type(error).__name__})") from error


# ----------------------------------------------------------------------------------------------
# Field-level validation

_INTRINSIC_KEYS = (
    "fl_x",
    "fl_y",
    "cx",
    "cy",
    "w",
    "h",
    "camera_angle_x",
    "camera_angle_y",
    "distortion_params",
    *DISTORTION_KEYS,
)


def _number(path: Path, value: Any, name: str, positive: bool = False) -> float:
    """A finite JSON number (not a bool, not a string); a :class:`DataFormatError` naming ``path`` otherwise."""
    return json_number(value, name, lambda message: DataFormatError(path, message), positive)


def _size(path: Path, value: Any, name: str) -> int:
    """A positive integer pixel count (integral floats such as 1920.0 accepted)."""
    out = _number(path, value, name, positive=True)
    if out != int(out) or out > 1e6:
        raise DataFormatError(path, f"{name} must be a positive integer pixel count, got {json_kind(value)}")
    return int(out)


def _string(path: Path, value: Any, name: str) -> str:
    """A non-empty JSON string without NUL bytes."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise DataFormatError(path, f"{name} must be a non-empty string, got {json_kind(value)}")
    return value


def _matrix4(path: Path, value: Any, name: str) -> np.ndarray:
    """A 4x4 nested list of finite numbers of sane magnitude. Returns float64 [4, 4]."""
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(r, list) and len(r) == 4 for r in value):
        raise DataFormatError(path, f"{name} must be a 4x4 list of numbers, got {json_kind(value)}")
    rows = [[_number(path, x, f"{name}[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(value)]
    matrix = np.array(rows, dtype=np.float64)
    if np.max(np.abs(matrix)) > MAX_ABS_COORDINATE:
        raise DataFormatError(path, f"{name} has entries beyond {MAX_ABS_COORDINATE:g}, not metres")
    return matrix


def _check_rigid(path: Path, pose: np.ndarray, name: str) -> None:
    """A camera-to-world pose: rotation orthonormal within :data:`ROTATION_TOLERANCE`, det +1, last row 0 0 0 1."""
    rotation = pose[:3, :3]
    error = float(np.max(np.abs(rotation.T @ rotation - np.eye(3))))
    if not error <= ROTATION_TOLERANCE:
        raise DataFormatError(
            path, f"{name}: the rotation part is not orthonormal (|R^T R - I| = {error:.3g} > {ROTATION_TOLERANCE:g})"
        )
    if np.linalg.det(rotation) <= 0:
        raise DataFormatError(path, f"{name}: the rotation part has determinant {np.linalg.det(rotation):.3g}, not +1")
    if not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0], atol=ROTATION_TOLERANCE):
        raise DataFormatError(path, f"{name}: the last row must be 0 0 0 1, got {pose[3].tolist()}")


def _relative_posix(file_path: str) -> str:
    """Normalise a ``file_path`` for comparison: POSIX separators, no leading ``./``."""
    return str(PurePosixPath(file_path.replace("\\", "/")))


class _Reader:
    """Reads the fields of one transforms.json, raising errors that name that file."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root

    def frames(self, meta: dict[str, Any]) -> list[Frame]:
        """Parse ``frames`` with the shared top-level intrinsics (unsorted, in file order)."""
        raw_frames = meta.get("frames")
        if raw_frames is None:
            raise DataFormatError(self.path, "the 'frames' list is missing")
        if not isinstance(raw_frames, list):
            raise DataFormatError(self.path, f"'frames' must be a list, got {json_kind(raw_frames)}")
        if not raw_frames:
            raise DataFormatError(self.path, "'frames' is empty")
        for i, raw in enumerate(raw_frames):
            if not isinstance(raw, dict):
                raise DataFormatError(self.path, f"frames[{i}] must be an object, got {json_kind(raw)}")
        with_time = [i for i, raw in enumerate(raw_frames) if "time" in raw]
        if with_time and len(with_time) != len(raw_frames):
            missing = next(i for i, raw in enumerate(raw_frames) if "time" not in raw)
            raise DataFormatError(
                self.path, f"frames[{missing}] has no 'time' while {len(with_time)} other frames have one"
            )
        frames = [self.frame(meta, raw, i) for i, raw in enumerate(raw_frames)]
        seen: dict[str, int] = {}
        for i, frame in enumerate(frames):
            if frame.file_path in seen:
                raise DataFormatError(
                    self.path, f"frames[{i}].file_path {frame.file_path!r} repeats frames[{seen[frame.file_path]}]"
                )
            seen[frame.file_path] = i
        for kind in ("mask", "semantic", "depth"):
            has = [getattr(f, f"{kind}_path") is not None for f in frames]
            if any(has) and not all(has):
                key = {"mask": "mask_path", "semantic": "semantic_path", "depth": "depth_file_path"}[kind]
                raise DataFormatError(self.path, f"frames[{has.index(False)}] has no '{key}' while other frames do")
        return frames

    def frame(self, meta: dict[str, Any], raw: dict[str, Any], i: int) -> Frame:
        """Parse ``frames[i]``."""
        where = f"frames[{i}]"
        if "file_path" not in raw:
            raise DataFormatError(self.path, f"{where}.file_path is missing")
        file_path = _string(self.path, raw["file_path"], f"{where}.file_path")
        if "transform_matrix" not in raw:
            raise DataFormatError(self.path, f"{where}.transform_matrix is missing")
        pose = _matrix4(self.path, raw["transform_matrix"], f"{where}.transform_matrix")
        _check_rigid(self.path, pose, f"{where}.transform_matrix")
        time = _number(self.path, raw["time"], f"{where}.time") if "time" in raw else 0.0
        camera = _string(self.path, raw["camera"], f"{where}.camera") if "camera" in raw else "default"
        candidate = self.root / file_path
        image_path = resolve_image_path(candidate)
        if image_path is None:
            raise DataFormatError(candidate, f"the image of {where}.file_path in {self.path.name} does not exist")
        return Frame(
            file_path=_relative_posix(file_path),
            image_path=image_path,
            camera_to_world=pose,
            time=time,
            camera=camera,
            intrinsics=self.intrinsics(meta, raw, where, image_path),
            mask_path=self.side_file(raw, "mask_path", where),
            semantic_path=self.side_file(raw, "semantic_path", where),
            depth_path=self.side_file(raw, "depth_file_path", where),
        )

    def intrinsics(self, meta: dict[str, Any], raw: dict[str, Any], where: str, image_path: Path) -> Intrinsics:
        """Intrinsics of one frame: per-frame keys override the shared top-level ones."""

        def lookup(key: str) -> tuple[Any, str] | None:
            if key in raw:
                return raw[key], f"{where}.{key}"
            if key in meta:
                return meta[key], key
            return None

        model_entry = lookup("camera_model")
        model = "OPENCV"
        if model_entry is not None:
            model = _string(self.path, model_entry[0], model_entry[1])
            if model not in CAMERA_MODELS:
                raise DataFormatError(self.path, f"{model_entry[1]} {model!r} is not one of {', '.join(CAMERA_MODELS)}")
        w_entry, h_entry = lookup("w"), lookup("h")
        if w_entry is None or h_entry is None:
            width, height = image_size(image_path)  # D-NeRF and Blender files leave the size to the image
        if w_entry is not None:
            width = _size(self.path, *w_entry)
        if h_entry is not None:
            height = _size(self.path, *h_entry)
        fx_entry, fy_entry = lookup("fl_x"), lookup("fl_y")
        if fx_entry is not None:
            fx = _number(self.path, *fx_entry, positive=True)
        else:
            angle_entry = lookup("camera_angle_x")
            if angle_entry is None:
                raise DataFormatError(
                    self.path, f"{where} has no focal length: give fl_x (per frame or shared) or camera_angle_x"
                )
            fx = 0.5 * width / math.tan(0.5 * self.angle(*angle_entry))
        if fy_entry is not None:
            fy = _number(self.path, *fy_entry, positive=True)
        elif (angle_y := lookup("camera_angle_y")) is not None and fx_entry is None:
            fy = 0.5 * height / math.tan(0.5 * self.angle(*angle_y))
        else:
            fy = fx
        cx_entry, cy_entry = lookup("cx"), lookup("cy")
        cx = _number(self.path, *cx_entry) if cx_entry is not None else width / 2.0
        cy = _number(self.path, *cy_entry) if cy_entry is not None else height / 2.0
        return Intrinsics(
            fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, model=model, **self.distortion(lookup)
        )

    def angle(self, value: Any, name: str) -> float:
        """A field of view in radians, strictly between 1e-6 and pi."""
        angle = _number(self.path, value, name)
        if not 1e-6 < angle < math.pi:
            raise DataFormatError(self.path, f"{name} must be a field of view in radians in (0, pi), got {angle}")
        return angle

    def distortion(self, lookup: Any) -> dict[str, float]:
        """k1..k4, p1, p2 from named keys or a 6-vector ``distortion_params``."""
        entry = lookup("distortion_params")
        if entry is not None:
            value, name = entry
            if not isinstance(value, list) or len(value) != 6:
                raise DataFormatError(self.path, f"{name} must be a list of 6 numbers [k1 k2 k3 k4 p1 p2]")
            return {
                k: _number(self.path, v, f"{name}[{j}]")
                for j, (k, v) in enumerate(zip(DISTORTION_KEYS, value, strict=True))
            }
        out = {}
        for key in DISTORTION_KEYS:
            entry = lookup(key)
            out[key] = _number(self.path, *entry) if entry is not None else 0.0
        return out

    def side_file(self, raw: dict[str, Any], key: str, where: str) -> Path | None:
        """A mask/semantic/depth path of a frame; it must exist."""
        if key not in raw:
            return None
        path = self.root / _string(self.path, raw[key], f"{where}.{key}")
        if not is_file(path):
            raise DataFormatError(path, f"the file of {where}.{key} in {self.path.name} does not exist")
        return path

    def check_sizes(self, frame: Frame, i: int) -> None:
        """Image size equals the declared w/h; masks, semantics and depth equal the image size."""
        width, height = image_size(frame.image_path)
        k = frame.intrinsics
        if (width, height) != (k.width, k.height):
            raise DataFormatError(
                frame.image_path,
                f"the image is {width}x{height} but frames[{i}] of {self.path.name} declares w={k.width} h={k.height}",
            )
        for key, path in (("mask_path", frame.mask_path), ("semantic_path", frame.semantic_path)):
            if path is not None and image_size(path) != (width, height):
                w2, h2 = image_size(path)
                raise DataFormatError(path, f"the {key} image is {w2}x{h2} but its image is {width}x{height}")
        if frame.depth_path is not None:
            shape = npy_shape(frame.depth_path)
            if shape not in ((height, width), (height, width, 1)):
                raise DataFormatError(
                    frame.depth_path, f"the depth map has shape {shape} but its image is [H, W] = [{height}, {width}]"
                )

    def ply_path(self, meta: dict[str, Any]) -> Path | None:
        """``ply_file_path``, which must exist when given."""
        if "ply_file_path" not in meta:
            return None
        path = self.root / _string(self.path, meta["ply_file_path"], "ply_file_path")
        if not is_file(path):
            raise DataFormatError(path, f"the point cloud named by ply_file_path in {self.path.name} does not exist")
        return path

    def semantic_classes(self, meta: dict[str, Any]) -> tuple[str, ...]:
        """``semantic_classes``: a list of strings."""
        value = meta.get("semantic_classes", [])
        if not isinstance(value, list):
            raise DataFormatError(self.path, f"semantic_classes must be a list of strings, got {json_kind(value)}")
        return tuple(_string(self.path, v, f"semantic_classes[{j}]") for j, v in enumerate(value))

    def objects(self, meta: dict[str, Any]) -> tuple[ObjectTrack, ...]:
        """``objects``: ground-truth tracks."""
        value = meta.get("objects", [])
        if not isinstance(value, list):
            raise DataFormatError(self.path, f"objects must be a list, got {json_kind(value)}")
        return tuple(parse_track(raw, f"objects[{j}]", self.path) for j, raw in enumerate(value))


# ----------------------------------------------------------------------------------------------
# Split


def _read_split(
    transforms_path: Path,
    root: Path,
    meta: dict[str, Any],
    frames: SequenceABC[Frame],
    eval_interval: int,
    has_time: bool,
) -> Split:
    """split.json, else nerfstudio's ``train_filenames``/``test_filenames``, else every n-th timestamp."""
    index = {f.file_path: i for i, f in enumerate(frames)}
    split_path = root / "split.json"
    if is_file(split_path):
        raw = load_json(split_path)
        if not isinstance(raw, dict):
            raise DataFormatError(
                split_path, f"the top level must be an object with train and test, got {json_kind(raw)}"
            )
        train = _split_list(split_path, raw, "train", index, required=True)
        test = _split_list(split_path, raw, "test", index, required=True)
        return Split(train=train, test=test, source="split.json")
    if any(f"{name}_filenames" in meta for name in ("train", "val", "test")):
        train = _split_list(transforms_path, meta, "train_filenames", index, required=True)
        test_key = "test_filenames" if "test_filenames" in meta else "val_filenames"
        test = _split_list(transforms_path, meta, test_key, index, required=True)
        return Split(train=train, test=test, source="transforms.json")
    if has_time:
        _, groups = np.unique(np.array([f.time for f in frames]), return_inverse=True)
        groups = groups.reshape(-1)
    else:
        groups = np.arange(len(frames))
    is_test = groups % eval_interval == 0
    if is_test.all():
        everything = tuple(range(len(frames)))
        return Split(train=everything, test=everything, source="all")
    return Split(
        train=tuple(int(i) for i in np.flatnonzero(~is_test)),
        test=tuple(int(i) for i in np.flatnonzero(is_test)),
        source="interval",
    )


def _split_list(path: Path, raw: dict[str, Any], key: str, index: dict[str, int], required: bool) -> tuple[int, ...]:
    """Frame indices of a list of file paths; unknown paths are an error."""
    if key not in raw:
        raise DataFormatError(path, f"the '{key}' list is missing")
    value = raw[key]
    if not isinstance(value, list):
        raise DataFormatError(path, f"'{key}' must be a list of file paths, got {json_kind(value)}")
    out = set()
    for j, name in enumerate(value):
        file_path = _relative_posix(_string(path, name, f"{key}[{j}]"))
        if file_path not in index:
            raise DataFormatError(path, f"{key}[{j}] {file_path!r} is not the file_path of any frame")
        out.add(index[file_path])
    if required and key.startswith("train") and not out:
        raise DataFormatError(path, f"'{key}' is empty; training needs at least one frame")
    return tuple(sorted(out))


# ----------------------------------------------------------------------------------------------
# Small maths


def _homogeneous(poses: np.ndarray) -> np.ndarray:
    """[..., 3, 4] or [..., 4, 4] -> float64 [..., 4, 4]."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape[-2:] == (4, 4):
        return poses
    if poses.shape[-2:] != (3, 4):
        raise ValueError(f"poses must be [..., 3, 4] or [..., 4, 4], got {poses.shape}")
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (*poses.shape[:-2], 1, 4))
    return np.concatenate([poses, bottom], axis=-2)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation taking direction `a` to direction `b` (identity when `a` is ~0). Returns [3, 3]."""
    norm_a = np.linalg.norm(a)
    if not np.isfinite(norm_a) or norm_a < 1e-9:
        return np.eye(3)
    a = a / norm_a
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: half turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    skew = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + skew + skew @ skew / (1.0 + c)
