"""Waymo Open Dataset v2 (parquet components) -> semdyn sequence, read with pyarrow (no TensorFlow).

Layout read (one parquet file per component and segment, as the v2 release ships them)::

    <data>/camera_image/<segment>.parquet         JPEG images, vehicle pose at exposure, rolling-shutter times
    <data>/camera_calibration/<segment>.parquet   intrinsics f_u f_v c_u c_v k1 k2 p1 p2 k3, camera-to-vehicle
    <data>/vehicle_pose/<segment>.parquet         world_from_vehicle per frame
    <data>/lidar/<segment>.parquet                range images (return 1)           needed unless --no-lidar
    <data>/lidar_calibration/<segment>.parquet    LiDAR-to-vehicle, beam inclinations needed unless --no-lidar
    <data>/lidar_pose/<segment>.parquet           per-pixel vehicle pose of TOP       optional
    <data>/lidar_box/<segment>.parquet            3D boxes with tracking ids          needed unless --no-objects

Conventions converted: a Waymo camera frame has x forward, y left, z up and projects as
``u = -f_u y/x + c_u``, ``v = -f_v z/x + c_v`` (then Brown-Conrady distortion); it is turned into OpenCV's
x right, y down, z forward. Range images are turned into points as Waymo's ``range_image_utils`` does
(column j has azimuth ``((W - j - 0.5) / W * 2 - 1) pi`` in the vehicle frame; row 0 is the highest beam).
Boxes: centre and heading in the vehicle frame, size = (length, width, height).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semdyn.data.sources import require
from semdyn.data.sources.common import (
    BoxTrack,
    CameraFrame,
    CameraModel,
    ConvertOptions,
    LidarSweep,
    SourceScene,
    rigid,
    select_cameras,
    select_range,
    transform_points,
)
from semdyn.errors import DataFormatError, InputError

CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
"""Waymo's CameraName enum."""
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
"""Waymo's LaserName enum."""
BOX_TYPES = {0: "unknown", 1: "vehicle", 2: "pedestrian", 3: "sign", 4: "cyclist"}
"""Waymo's label types."""

WAYMO_CAMERA_TO_OPENCV = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""Rotation taking Waymo camera coordinates (x forward, y left, z up) to OpenCV's (x right, y down, z forward)."""

KEY_TIME = "key.frame_timestamp_micros"
KEY_CAMERA = "key.camera_name"
KEY_LASER = "key.laser_name"
KEY_OBJECT = "key.laser_object_id"
_IMG = "[CameraImageComponent]"
_CAL = "[CameraCalibrationComponent]"
_LID = "[LiDARComponent]"
_LCAL = "[LiDARCalibrationComponent]"
_LPOSE = "[LiDARPoseComponent]"
_BOX = "[LiDARBoxComponent]"
_POSE = "[VehiclePoseComponent]"

COLUMNS: dict[str, list[str]] = {
    "camera_image": [KEY_TIME, KEY_CAMERA, f"{_IMG}.image", f"{_IMG}.pose.transform"],
    "camera_calibration": [KEY_CAMERA, f"{_CAL}.extrinsic.transform", f"{_CAL}.width", f"{_CAL}.height"]
    + [f"{_CAL}.intrinsic.{k}" for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")],
    "vehicle_pose": [KEY_TIME, f"{_POSE}.world_from_vehicle.transform"],
    "lidar": [KEY_TIME, KEY_LASER, f"{_LID}.range_image_return1.values", f"{_LID}.range_image_return1.shape"],
    "lidar_calibration": [KEY_LASER, f"{_LCAL}.extrinsic.transform", f"{_LCAL}.beam_inclination.min"]
    + [f"{_LCAL}.beam_inclination.max", f"{_LCAL}.beam_inclination.values"],
    "lidar_pose": [KEY_TIME, KEY_LASER, f"{_LPOSE}.range_image_return1.values", f"{_LPOSE}.range_image_return1.shape"],
    "lidar_box": [KEY_TIME, KEY_OBJECT, f"{_BOX}.type", f"{_BOX}.box.heading"]
    + [f"{_BOX}.box.{part}.{axis}" for part in ("center", "size") for axis in "xyz"],
}
"""Columns read from each component (the Waymo v2.0 schema); a file lacking one is an unsupported version."""

ROLLING_SHUTTER = {
    f"{_IMG}.rolling_shutter_params.shutter": "shutter",
    f"{_IMG}.rolling_shutter_params.camera_trigger_time": "camera_trigger_time",
    f"{_IMG}.rolling_shutter_params.camera_readout_done_time": "camera_readout_done_time",
    f"{_IMG}.pose_timestamp": "pose_timestamp",
}
"""Optional rolling-shutter columns of camera_image kept per frame (seconds, Waymo's clock)."""


@dataclass
class WaymoOptions(ConvertOptions):
    """Convert one segment of Waymo Open Dataset v2 (parquet). Cameras: FRONT FRONT_LEFT FRONT_RIGHT SIDE_LEFT
    SIDE_RIGHT."""

    data: Path = Path("waymo/training")
    """Folder holding the component folders (camera_image/, camera_calibration/, vehicle_pose/, lidar/, ...)."""
    segment: str | None = None
    """Segment (context) name, the parquet file stem; may be omitted when the folder holds one segment."""
    lidar_names: tuple[str, ...] = ("TOP", "FRONT", "SIDE_LEFT", "SIDE_RIGHT", "REAR")
    """LiDARs to aggregate."""


def load(options: WaymoOptions) -> SourceScene:
    """Read the selected frames of a Waymo v2 segment into a `SourceScene`.

    Raises:
        DataFormatError: a wrong folder, a missing component or column (naming it), a v1 TFRecord folder.
        InputError: an unknown camera or LiDAR name, an empty frame range.
    """
    options.validate()
    pq = require("pyarrow.parquet", "Waymo Open Dataset v2", "convert", "pyarrow")
    root = Path(options.data)
    segment = _find_segment(root, options.segment)
    files = _component_files(root, segment, options)
    for component, path in files.items():
        _check_columns(pq, component, path)

    calib = _camera_calibration(pq, files["camera_calibration"])
    cameras = select_cameras([n for n in CAMERA_NAMES.values() if n in calib], options.cameras, "Waymo")
    vehicle = _vehicle_poses(pq, files["vehicle_pose"])
    extras = [c for c in ROLLING_SHUTTER if c in pq.read_schema(files["camera_image"]).names]
    columns = [KEY_TIME, KEY_CAMERA, f"{_IMG}.pose.transform", *extras]
    rows = pq.read_table(files["camera_image"], columns=columns).to_pylist()  # no image bytes: read lazily
    stamps = sorted({row[KEY_TIME] for row in rows})
    selected = [stamps[i] for i in select_range(len(stamps), options.frames, "camera_image timestamps")]
    missing = [s for s in selected if s not in vehicle]
    if missing:
        raise DataFormatError(files["vehicle_pose"], f"has no world_from_vehicle for timestamp {missing[0]} (micros)")
    base = selected[0]  # times are taken relative to it in integer micros: float64 seconds since 1970 lose 0.1 us
    chosen = set(selected)
    rows = [r for r in rows if r[KEY_TIME] in chosen and CAMERA_NAMES.get(r[KEY_CAMERA]) in cameras]
    images = _RowGroups(pq, files["camera_image"], (KEY_TIME, KEY_CAMERA))
    frames = [_camera_frame(row, calib, vehicle, base, images, extras) for row in rows]
    sweeps = _sweeps(pq, files, selected, base, vehicle, options) if options.lidar else []
    tracks = _tracks(pq, files["lidar_box"], selected, base, vehicle) if options.objects else []
    info = {"segment": segment, "data": str(root.resolve()), "time_origin_micros": base, "last_micros": selected[-1]}
    return SourceScene(dataset="waymo", frames=frames, sweeps=sweeps, tracks=tracks, info=info)


def _camera_frame(
    row: dict[str, Any],
    calib: dict[str, dict[str, Any]],
    vehicle: dict[int, np.ndarray],
    base: int,
    images: _RowGroups,
    extras: list[str],
) -> CameraFrame:
    """One camera_image row (without its image bytes) as a `CameraFrame`; the image is read when written."""
    stamp, camera_id = row[KEY_TIME], row[KEY_CAMERA]
    name = CAMERA_NAMES[camera_id]
    pose = row[f"{_IMG}.pose.transform"]  # the vehicle pose at this camera's exposure, when given
    world_from_vehicle = _matrix(pose) if pose is not None else vehicle[stamp]
    cal = calib[name]
    extra = {}
    if extras:
        shutter = {"direction": cal["rolling_shutter_direction"]}
        extra["rolling_shutter"] = shutter | {ROLLING_SHUTTER[c]: row[c] for c in extras}
    return CameraFrame(
        camera=name,
        time=(stamp - base) * 1e-6,
        camera_to_world=world_from_vehicle @ cal["camera_to_vehicle"] @ _opencv_to_waymo(),
        intrinsics=cal["model"],
        load_image=_image_loader(images, stamp, camera_id),
        extra=extra,
        image_source=images.path,
    )


# ----------------------------------------------------------------------------------------------
# Folder checks


def _find_segment(root: Path, segment: str | None) -> str:
    """The segment to convert: the given one, else the only one in camera_image/."""
    if not root.is_dir():
        raise DataFormatError(root, "the Waymo folder (--data) does not exist")
    if any(root.glob("*.tfrecord")) or any(root.glob("*/*.tfrecord")):
        raise DataFormatError(
            root,
            "holds TFRecord files of Waymo Open Dataset v1.x, which is not supported; "
            "download the v2 release (parquet components)",
        )
    folder = root / "camera_image"
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataFormatError(
            root,
            "is not a Waymo Open Dataset v2 folder: the component folder camera_image/ is missing"
            + (f" (found {', '.join(found[:6])})" if found else " (the folder is empty)"),
        )
    names = sorted(p.stem for p in folder.glob("*.parquet"))
    if segment is not None:
        if segment not in names:
            raise DataFormatError(folder / f"{segment}.parquet", "the segment named by --segment does not exist")
        return segment
    if not names:
        raise DataFormatError(folder, "holds no .parquet segment files")
    if len(names) > 1:
        raise InputError(f"{folder} holds {len(names)} segments; choose one with --segment (e.g. {names[0]})")
    return names[0]


def _component_files(root: Path, segment: str, options: WaymoOptions) -> dict[str, Path]:
    """The parquet file of each component needed; a missing one is an error naming it and the option to skip it."""
    needed = {"camera_image": "", "camera_calibration": "", "vehicle_pose": ""}
    if options.lidar:
        needed |= {"lidar": " (or pass --no-lidar)", "lidar_calibration": " (or pass --no-lidar)"}
    if options.objects:
        needed["lidar_box"] = " (or pass --no-objects)"
    files = {}
    for component, hint in needed.items():
        path = root / component / f"{segment}.parquet"
        if not path.is_file():
            raise DataFormatError(path, f"the Waymo v2 component '{component}' of segment {segment} is missing{hint}")
        files[component] = path
    pose = root / "lidar_pose" / f"{segment}.parquet"
    if options.lidar and pose.is_file():
        files["lidar_pose"] = pose
    return files


def _check_columns(pq: Any, component: str, path: Path) -> None:
    """Every column read must be in the file; otherwise it is not the v2.0 schema."""
    try:
        names = set(pq.read_schema(path).names)
    except Exception as error:  # pyarrow raises ArrowInvalid / OSError for non-parquet files
        raise DataFormatError(path, f"is not a readable parquet file ({type(error).__name__})") from error
    for column in COLUMNS[component]:
        if column not in names:
            raise DataFormatError(
                path, f"has no column '{column}': not a Waymo Open Dataset v2.0 {component} file (unsupported version)"
            )


# ----------------------------------------------------------------------------------------------
# Components


def _matrix(values: Any) -> np.ndarray:
    """A row-major 16-vector (Waymo's Transform.transform) as float64 [4, 4]."""
    return np.asarray(values, dtype=np.float64).reshape(4, 4)


def _opencv_to_waymo() -> np.ndarray:
    """4x4 taking OpenCV camera coordinates to Waymo camera coordinates."""
    return rigid(WAYMO_CAMERA_TO_OPENCV.T, np.zeros(3))


def _camera_calibration(pq: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Per camera name: ``model`` (CameraModel), ``camera_to_vehicle`` [4, 4], ``rolling_shutter_direction``."""
    columns = COLUMNS["camera_calibration"]
    direction = f"{_CAL}.rolling_shutter_direction"
    if direction in pq.read_schema(path).names:
        columns = [*columns, direction]
    rows = pq.read_table(path, columns=columns).to_pylist()
    out = {}
    for row in rows:
        name = CAMERA_NAMES.get(row[KEY_CAMERA])
        if name is None:
            raise DataFormatError(path, f"has an unknown key.camera_name {row[KEY_CAMERA]}")
        intr = {
            k: float(row[f"{_CAL}.intrinsic.{k}"]) for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")
        }
        model = CameraModel(
            fx=intr["f_u"],
            fy=intr["f_v"],
            cx=intr["c_u"],
            cy=intr["c_v"],
            width=int(row[f"{_CAL}.width"]),
            height=int(row[f"{_CAL}.height"]),
            k1=intr["k1"],
            k2=intr["k2"],
            k3=intr["k3"],
            p1=intr["p1"],
            p2=intr["p2"],
        )
        out[name] = {
            "model": model,
            "camera_to_vehicle": _matrix(row[f"{_CAL}.extrinsic.transform"]),
            "rolling_shutter_direction": row.get(direction),
        }
    return out


def _vehicle_poses(pq: Any, path: Path) -> dict[int, np.ndarray]:
    """Timestamp (micros) -> world_from_vehicle [4, 4]."""
    table = pq.read_table(path, columns=COLUMNS["vehicle_pose"]).to_pydict()
    return {t: _matrix(m) for t, m in zip(table[KEY_TIME], table[f"{_POSE}.world_from_vehicle.transform"], strict=True)}


class _RowGroups:
    """Rows of one parquet file by key, reading one row group at a time (the release keeps frames in time order).

    Opening reads only the key columns of every row group; `cell` then reads the row group holding a key.
    """

    def __init__(self, pq: Any, path: Path, key_columns: tuple[str, ...]) -> None:
        self.path = path
        self.file = pq.ParquetFile(path)
        self.where: dict[tuple[Any, ...], tuple[int, int]] = {}
        for group in range(self.file.num_row_groups):
            keys = self.file.read_row_group(group, columns=list(key_columns)).to_pydict()
            for row, key in enumerate(zip(*(keys[c] for c in key_columns), strict=True)):
                self.where[key] = (group, row)
        self.loaded: dict[str, tuple[int, Any]] = {}  # column -> (row group, its table), one group per column

    def cell(self, key: tuple[Any, ...], column: str) -> Any:
        """The pyarrow scalar of `column` in the row of `key`, or None when the file has no such row."""
        if key not in self.where:
            return None
        group, row = self.where[key]
        if column not in self.loaded or self.loaded[column][0] != group:
            self.loaded[column] = (group, self.file.read_row_group(group, columns=[column]))
        return self.loaded[column][1].column(column)[row]


def _image_loader(images: _RowGroups, stamp: int, camera_id: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        cell = images.cell((stamp, camera_id), f"{_IMG}.image")
        where = f"the image of camera {CAMERA_NAMES[camera_id]} at {stamp} micros"
        if cell is None:
            raise DataFormatError(images.path, f"{where} is missing")
        try:
            with Image.open(io.BytesIO(cell.as_py())) as image:
                return np.asarray(image.convert("RGB"))
        except Exception as error:
            raise DataFormatError(images.path, f"{where} is not readable ({type(error).__name__})") from error

    return load


def _list_cell(cell: Any, shape_cell: Any) -> np.ndarray:
    """A flattened list cell and its shape cell as a float32 array of that shape."""
    return np.asarray(cell.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(shape_cell.as_py())


def _rotation_rpy(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Waymo's ``get_rotation_matrix``: Rz(yaw) Ry(pitch) Rx(roll). Inputs [...]; returns [..., 3, 3]."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )


def range_image_to_points(
    ranges: np.ndarray, extrinsic: np.ndarray, inclinations: np.ndarray, pixel_pose: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Waymo range image -> points, as ``range_image_utils.extract_point_cloud_from_range_image``.

    Args:
        ranges: [H, W] metres (<= 0: no return).
        extrinsic: [4, 4] LiDAR-to-vehicle.
        inclinations: [H] beam inclinations in radians, ascending as calibrated (row 0 uses the last).
        pixel_pose: optional [H, W, 6] (roll, pitch, yaw, x, y, z) world_from_vehicle per pixel (TOP LiDAR).

    Returns:
        points [N, 3] in the vehicle frame (or the world when `pixel_pose` is given), and the [N, 2]
        (row, column) of each return.
    """
    height, width = ranges.shape
    az_correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (np.arange(width, 0, -1, dtype=np.float64) - 0.5) / width
    azimuth = (ratios * 2.0 - 1.0) * np.pi - az_correction
    inclination = np.asarray(inclinations, dtype=np.float64)[::-1]
    rows, cols = np.nonzero(ranges > 0)
    r = ranges[rows, cols].astype(np.float64)
    cos_incl = np.cos(inclination[rows])
    sensor = np.stack(
        [np.cos(azimuth[cols]) * cos_incl * r, np.sin(azimuth[cols]) * cos_incl * r, np.sin(inclination[rows]) * r], -1
    )
    points = transform_points(extrinsic, sensor)
    if pixel_pose is not None:
        pose = pixel_pose[rows, cols].astype(np.float64)
        rotation = _rotation_rpy(pose[:, 0], pose[:, 1], pose[:, 2])
        points = np.einsum("nij,nj->ni", rotation, points) + pose[:, 3:6]
    return points, np.stack([rows, cols], -1)


def _top_points(
    ranges: np.ndarray,
    extrinsic: np.ndarray,
    inclinations: np.ndarray,
    pixel_pose: np.ndarray | None,
    world_from_vehicle: np.ndarray,
) -> np.ndarray:
    """World points of a range image: per-pixel poses where given and non-zero, the frame's pose elsewhere."""
    if pixel_pose is None:
        points, _ = range_image_to_points(ranges, extrinsic, inclinations)
        return transform_points(world_from_vehicle, points)
    points, pixels = range_image_to_points(ranges, extrinsic, inclinations, pixel_pose)
    unset = ~pixel_pose[pixels[:, 0], pixels[:, 1]].any(axis=-1)
    if unset.any():
        vehicle, _ = range_image_to_points(ranges, extrinsic, inclinations)
        points[unset] = transform_points(world_from_vehicle, vehicle[unset])
    return points


def _inclinations(row: dict[str, Any], height: int) -> np.ndarray:
    """Calibrated beam inclinations [H], or uniform between min and max (Waymo's ``compute_inclination``)."""
    values = row[f"{_LCAL}.beam_inclination.values"]
    if values:
        return np.asarray(values, dtype=np.float64)
    low, high = float(row[f"{_LCAL}.beam_inclination.min"]), float(row[f"{_LCAL}.beam_inclination.max"])
    return (0.5 + np.arange(height)) / height * (high - low) + low


def _sweeps(
    pq: Any, files: dict[str, Path], stamps: list[int], base: int, vehicle: dict[int, np.ndarray], options: WaymoOptions
) -> list[LidarSweep]:
    """One lazy sweep per (timestamp, LiDAR): first returns in the world frame."""
    lasers = {v: k for k, v in LASER_NAMES.items()}
    for name in options.lidar_names:
        if name not in lasers:
            raise InputError(f"--lidar-names: Waymo has no LiDAR {name!r}; choose from {', '.join(lasers)}")
    calib = {
        row[KEY_LASER]: row
        for row in pq.read_table(files["lidar_calibration"], columns=COLUMNS["lidar_calibration"]).to_pylist()
    }
    cache = _LidarCache(pq, files)
    sweeps = []
    for stamp in stamps:
        for name in options.lidar_names:
            laser = lasers[name]
            if laser not in calib:
                continue
            extrinsic = _matrix(calib[laser][f"{_LCAL}.extrinsic.transform"])
            origin = (vehicle[stamp] @ extrinsic)[:3, 3]
            sweeps.append(
                LidarSweep(
                    (stamp - base) * 1e-6, origin, cache.loader(stamp, laser, extrinsic, calib[laser], vehicle[stamp])
                )
            )
    return sweeps


class _LidarCache:
    """Range images (and TOP pixel poses) by (timestamp, laser), read a row group at a time."""

    def __init__(self, pq: Any, files: dict[str, Path]) -> None:
        self.files = files
        self.ranges = _RowGroups(pq, files["lidar"], (KEY_TIME, KEY_LASER))
        self.poses = _RowGroups(pq, files["lidar_pose"], (KEY_TIME, KEY_LASER)) if "lidar_pose" in files else None

    def _image(self, rows: _RowGroups, component: str, key: tuple[int, int]) -> np.ndarray | None:
        values = rows.cell(key, f"{component}.range_image_return1.values")
        if values is None or not values.is_valid:
            return None
        return _list_cell(values, rows.cell(key, f"{component}.range_image_return1.shape"))

    def loader(
        self, stamp: int, laser: int, extrinsic: np.ndarray, calib: dict[str, Any], world_from_vehicle: np.ndarray
    ) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            image = self._image(self.ranges, _LID, (stamp, laser))
            if image is None:
                return np.zeros((0, 3))
            inclinations = _inclinations(calib, image.shape[0])
            if len(inclinations) != image.shape[0]:
                raise DataFormatError(
                    self.files["lidar_calibration"],
                    f"LiDAR {LASER_NAMES.get(laser, laser)} has {len(inclinations)} beam inclinations "
                    f"but its range image has {image.shape[0]} rows",
                )
            pose = self._image(self.poses, _LPOSE, (stamp, laser)) if self.poses is not None else None
            return _top_points(image[..., 0], extrinsic, inclinations, pose, world_from_vehicle)

        return load


def _tracks(pq: Any, path: Path, stamps: list[int], base: int, vehicle: dict[int, np.ndarray]) -> list[BoxTrack]:
    """3D box tracks from lidar_box: one per laser_object_id, poses in the world."""
    table = pq.read_table(path, columns=COLUMNS["lidar_box"], filters=[(KEY_TIME, "in", stamps)]).to_pydict()
    by_object: dict[str, list[int]] = {}
    for k, key in enumerate(table[KEY_OBJECT]):
        by_object.setdefault(key, []).append(k)
    tracks = []
    for key, rows in by_object.items():
        rows = sorted(rows, key=lambda k: table[KEY_TIME][k])
        times, poses = [], []
        for k in rows:
            stamp = table[KEY_TIME][k]
            heading = float(table[f"{_BOX}.box.heading"][k])
            centre = [float(table[f"{_BOX}.box.center.{a}"][k]) for a in "xyz"]
            rotation = np.array(
                [[np.cos(heading), -np.sin(heading), 0.0], [np.sin(heading), np.cos(heading), 0.0], [0, 0, 1]]
            )
            times.append((stamp - base) * 1e-6)
            poses.append(vehicle[stamp] @ rigid(rotation, np.array(centre)))
        size = np.array([float(table[f"{_BOX}.box.size.{a}"][rows[0]]) for a in "xyz"])
        label = BOX_TYPES.get(int(table[f"{_BOX}.type"][rows[0]]), "unknown")
        tracks.append(
            BoxTrack(key=str(key), label=label, size=size, times=np.array(times), object_to_world=np.stack(poses))
        )
    return tracks
