"""A tiny Waymo Open Dataset v2 segment written as the release ships it (one parquet per component).

Truth is computed here from Waymo's own documented models, not from the converter: a Waymo camera frame is
x forward, y left, z up and projects as ``u = -f_u y / x + c_u``, ``v = -f_v z / x + c_v``; a range-image return
at (row i, column j) of a W-column image lies at vehicle azimuth ``((W - j - 0.5) / W * 2 - 1) pi`` and at the
inclination ``beam_inclination.values[H - 1 - i]``; TOP returns carry a per-pixel vehicle pose (lidar_pose).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.data.sources.checks import HEIGHT, WIDTH, Dot, blank_image, inside

SEGMENT = "1234567890_000_000_010_000"
CAMERAS = {
    1: ("FRONT", 0.0),
    2: ("FRONT_LEFT", 0.8),
    3: ("FRONT_RIGHT", -0.8),
    4: ("SIDE_LEFT", 1.6),
    5: ("SIDE_RIGHT", -1.6),
}
"""Camera id -> (name, yaw of the camera in the vehicle frame, radians)."""
FOCAL = 40.0
NUM_FRAMES = 3
START_MICROS = 1_550_000_000_000_000
RANGE_ROWS, RANGE_COLS = 8, 96
INCLINATIONS = np.array([-0.35, -0.28, -0.2, -0.15, -0.1, -0.05, 0.0, 0.08])
"""TOP beam inclinations as calibrated (ascending), radians."""
LIDAR_TO_VEHICLE_YAW = 0.2


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rz(yaw) Ry(pitch) Rx(roll) (Waymo's convention for lidar_pose)."""
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    return rot_z(yaw) @ ry @ rx


def homogeneous(rotation: np.ndarray, translation: list[float] | np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def vehicle_pose(k: int) -> np.ndarray:
    """world_from_vehicle of frame k: far from the origin, turning, climbing a little."""
    return homogeneous(rot_z(0.5 + 0.1 * k), [1000.0 + 5.0 * k, -2000.0 + 2.0 * k, 30.0 + 0.1 * k])


def pixel_pose(k: int) -> tuple[list[float], np.ndarray]:
    """TOP LiDAR per-pixel pose of frame k (roll, pitch, yaw, x, y, z) and its matrix: 0.3 m behind the frame's."""
    values = [0.01, -0.02, 0.5 + 0.1 * k, 1000.0 + 5.0 * k - 0.3, -2000.0 + 2.0 * k, 30.0 + 0.1 * k]
    return values, homogeneous(rpy(*values[:3]), values[3:])


def camera_to_vehicle(yaw: float) -> np.ndarray:
    return homogeneous(rot_z(yaw), [1.5, 0.0, 2.0])


LIDAR_TO_VEHICLE = homogeneous(rot_z(LIDAR_TO_VEHICLE_YAW), [1.4, 0.1, 2.2])


def waymo_project(point_world: np.ndarray, world_from_camera: np.ndarray) -> tuple[float, float, float]:
    """Waymo's pinhole model: (u, v, forward distance) of a world point."""
    x, y, z = (np.linalg.inv(world_from_camera) @ np.append(point_world, 1.0))[:3]
    return -FOCAL * y / x + WIDTH / 2, -FOCAL * z / x + HEIGHT / 2, x


def return_to_vehicle(row: int, col: int, rng: float) -> np.ndarray:
    """The vehicle-frame point of a TOP range-image return (Waymo's range_image_utils, written out)."""
    azimuth = ((RANGE_COLS - col - 0.5) / RANGE_COLS * 2.0 - 1.0) * math.pi - LIDAR_TO_VEHICLE_YAW
    inclination = INCLINATIONS[RANGE_ROWS - 1 - row]
    sensor = rng * np.array(
        [math.cos(azimuth) * math.cos(inclination), math.sin(azimuth) * math.cos(inclination), math.sin(inclination)]
    )
    return (LIDAR_TO_VEHICLE @ np.append(sensor, 1.0))[:3]


def _arrow_type(column: str) -> pa.DataType | None:
    """The Arrow type the v2.0 release gives a column (waymo_open_dataset/v2/perception/*_test.py schemas)."""
    if column in ("key.camera_name", "key.laser_name") or column.endswith((".type", "rolling_shutter_direction")):
        return pa.int8()
    if column.endswith(".transform"):
        return pa.list_(pa.float64(), 16)
    if column.endswith("range_image_return1.values"):
        return pa.list_(pa.float32())
    if column.endswith("range_image_return1.shape"):
        return pa.list_(pa.int32(), 3)
    if column.endswith((".width", ".height")):
        return pa.int32()
    if column == "key.frame_timestamp_micros":
        return pa.int64()
    return None


@dataclass
class WaymoTruth:
    """What the fixture put in, for the tests."""

    root: Path
    dots: list[Dot] = field(default_factory=list)
    camera_to_world: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    """(camera, frame) -> world_from_camera in Waymo's camera axes (x forward, y left, z up)."""
    box_world: list[np.ndarray] = field(default_factory=list)
    """World pose of the moving box at each frame."""


def write_segment(root: Path, *, skip: tuple[str, ...] = (), drop_column: tuple[str, str] | None = None) -> WaymoTruth:
    """Write the segment under `root` (components in `skip` left out; `drop_column` = (component, column) removed)."""
    truth = WaymoTruth(root)
    rng = np.random.default_rng(3)
    stamps = [START_MICROS + 100_000 * k for k in range(NUM_FRAMES)]
    tables: dict[str, dict[str, list]] = {}

    # Which returns to put in each frame's range image, and where they land in each camera.
    ranges = np.zeros((NUM_FRAMES, RANGE_ROWS, RANGE_COLS, 4), dtype=np.float32)
    dots_per_image: dict[tuple[int, int], list] = {}
    colour_index = 0
    taken: set[tuple[int, int, int, int]] = set()
    for k in range(NUM_FRAMES):
        _, world_from_pixel = pixel_pose(k)
        for _ in range(400):
            row, col, dist = int(rng.integers(RANGE_ROWS)), int(rng.integers(RANGE_COLS)), float(rng.uniform(6, 25))
            if ranges[k, row, col, 0] > 0:
                continue
            world = (world_from_pixel @ np.append(return_to_vehicle(row, col, dist), 1.0))[:3]
            seen = []
            for cam_id, (name, yaw) in CAMERAS.items():
                u, v, x = waymo_project(world, vehicle_pose(k) @ camera_to_vehicle(yaw))
                if x > 0.5 and inside(u, v):
                    seen.append((cam_id, name, u, v))
            if not seen:
                ranges[k, row, col, 0] = dist  # out of view: stays grey in the PLY
                continue
            pixels = {(k, cam_id, int(u), int(v)) for cam_id, _, u, v in seen}
            if colour_index >= 20 or pixels & taken:
                continue
            taken |= pixels
            colour = (255, 10 * colour_index, 255 - 10 * colour_index)
            colour_index += 1
            ranges[k, row, col, 0] = dist
            for cam_id, name, u, v in seen:
                dots_per_image.setdefault((k, cam_id), []).append((colour, (u, v)))
                truth.dots.append(Dot(colour, name, 0.1 * k, (u, v), point_time=0.1 * k))

    image_rows = {"key.segment_context_name": [], "key.frame_timestamp_micros": [], "key.camera_name": []}
    image_rows |= {"[CameraImageComponent].image": [], "[CameraImageComponent].pose.transform": []}
    image_rows |= {
        "[CameraImageComponent].pose_timestamp": [],
        "[CameraImageComponent].rolling_shutter_params.shutter": [],
    }
    for k, stamp in enumerate(stamps):
        for cam_id, (name, yaw) in CAMERAS.items():
            image = blank_image(dots_per_image.get((k, cam_id), []))
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")  # lossless, so that dot colours survive
            image_rows["key.segment_context_name"].append(SEGMENT)
            image_rows["key.frame_timestamp_micros"].append(stamp)
            image_rows["key.camera_name"].append(cam_id)
            image_rows["[CameraImageComponent].image"].append(buffer.getvalue())
            image_rows["[CameraImageComponent].pose.transform"].append(vehicle_pose(k).reshape(-1).tolist())
            image_rows["[CameraImageComponent].pose_timestamp"].append(stamp * 1e-6 + 0.01)
            image_rows["[CameraImageComponent].rolling_shutter_params.shutter"].append(0.005)
            truth.camera_to_world[(name, k)] = vehicle_pose(k) @ camera_to_vehicle(yaw)
    tables["camera_image"] = image_rows

    calib = {
        "key.segment_context_name": [],
        "key.camera_name": [],
        "[CameraCalibrationComponent].extrinsic.transform": [],
    }
    intrinsic = {"f_u": FOCAL, "f_v": FOCAL, "c_u": WIDTH / 2, "c_v": HEIGHT / 2, "k1": 0.0, "k2": 0.0}
    intrinsic |= {"p1": 0.0, "p2": 0.0, "k3": 0.0}
    for key in intrinsic:
        calib[f"[CameraCalibrationComponent].intrinsic.{key}"] = []
    calib |= {"[CameraCalibrationComponent].width": [], "[CameraCalibrationComponent].height": []}
    calib["[CameraCalibrationComponent].rolling_shutter_direction"] = []
    for cam_id, (_, yaw) in CAMERAS.items():
        calib["key.segment_context_name"].append(SEGMENT)
        calib["key.camera_name"].append(cam_id)
        calib["[CameraCalibrationComponent].extrinsic.transform"].append(camera_to_vehicle(yaw).reshape(-1).tolist())
        for key, value in intrinsic.items():
            calib[f"[CameraCalibrationComponent].intrinsic.{key}"].append(value)
        calib["[CameraCalibrationComponent].width"].append(WIDTH)
        calib["[CameraCalibrationComponent].height"].append(HEIGHT)
        calib["[CameraCalibrationComponent].rolling_shutter_direction"].append(2)
    tables["camera_calibration"] = calib

    tables["vehicle_pose"] = {
        "key.segment_context_name": [SEGMENT] * NUM_FRAMES,
        "key.frame_timestamp_micros": stamps,
        "[VehiclePoseComponent].world_from_vehicle.transform": [vehicle_pose(k).reshape(-1).tolist() for k in range(3)],
    }
    tables["lidar"] = {
        "key.segment_context_name": [SEGMENT] * NUM_FRAMES,
        "key.frame_timestamp_micros": stamps,
        "key.laser_name": [1] * NUM_FRAMES,
        "[LiDARComponent].range_image_return1.values": [ranges[k].reshape(-1).tolist() for k in range(NUM_FRAMES)],
        "[LiDARComponent].range_image_return1.shape": [[RANGE_ROWS, RANGE_COLS, 4]] * NUM_FRAMES,
    }
    poses = []
    for k in range(NUM_FRAMES):
        values, _ = pixel_pose(k)
        poses.append(np.tile(np.array(values, dtype=np.float32), (RANGE_ROWS, RANGE_COLS, 1)).reshape(-1).tolist())
    tables["lidar_pose"] = {
        "key.segment_context_name": [SEGMENT] * NUM_FRAMES,
        "key.frame_timestamp_micros": stamps,
        "key.laser_name": [1] * NUM_FRAMES,
        "[LiDARPoseComponent].range_image_return1.values": poses,
        "[LiDARPoseComponent].range_image_return1.shape": [[RANGE_ROWS, RANGE_COLS, 6]] * NUM_FRAMES,
    }
    tables["lidar_calibration"] = {
        "key.segment_context_name": [SEGMENT],
        "key.laser_name": [1],
        "[LiDARCalibrationComponent].extrinsic.transform": [LIDAR_TO_VEHICLE.reshape(-1).tolist()],
        "[LiDARCalibrationComponent].beam_inclination.min": [float(INCLINATIONS[0])],
        "[LiDARCalibrationComponent].beam_inclination.max": [float(INCLINATIONS[-1])],
        "[LiDARCalibrationComponent].beam_inclination.values": [INCLINATIONS.tolist()],
    }
    # Two boxes: a car driving 8 m/s ahead of the ego vehicle (vehicle frame), and a parked one.
    boxes = {key: [] for key in ("key.segment_context_name", "key.frame_timestamp_micros", "key.laser_object_id")}
    for part in ("center", "size"):
        for axis in "xyz":
            boxes[f"[LiDARBoxComponent].box.{part}.{axis}"] = []
    boxes |= {"[LiDARBoxComponent].box.heading": [], "[LiDARBoxComponent].type": []}
    for k, stamp in enumerate(stamps):
        moving = (homogeneous(rot_z(0.05), [12.0 + 0.3 * k, 0.5, 0.9]), "car-a")
        world_parked = vehicle_pose(0) @ homogeneous(rot_z(1.0), [20.0, -7.0, 0.8])  # right of the road
        parked = (np.linalg.inv(vehicle_pose(k)) @ world_parked, "car-b")
        truth.box_world.append(vehicle_pose(k) @ moving[0])
        for pose, key in (moving, parked):
            boxes["key.segment_context_name"].append(SEGMENT)
            boxes["key.frame_timestamp_micros"].append(stamp)
            boxes["key.laser_object_id"].append(key)
            for a, axis in enumerate("xyz"):
                boxes[f"[LiDARBoxComponent].box.center.{axis}"].append(float(pose[a, 3]))
            for axis, value in zip("xyz", (4.0, 1.8, 1.6), strict=True):
                boxes[f"[LiDARBoxComponent].box.size.{axis}"].append(value)
            boxes["[LiDARBoxComponent].box.heading"].append(math.atan2(pose[1, 0], pose[0, 0]))
            boxes["[LiDARBoxComponent].type"].append(1)
    tables["lidar_box"] = boxes

    for component, columns in tables.items():
        if component in skip:
            continue
        if drop_column is not None and drop_column[0] == component:
            columns = {k: v for k, v in columns.items() if k != drop_column[1]}
        (root / component).mkdir(parents=True, exist_ok=True)
        arrays = {name: pa.array(values, type=_arrow_type(name)) for name, values in columns.items()}
        # small row groups, so that reading one frame's rows is exercised across groups
        pq.write_table(pa.table(arrays), root / component / f"{SEGMENT}.parquet", row_group_size=4)
    return truth
