"""A tiny KITTI raw drive (synced + rectified) written as the raw download unpacks.

Truth comes from the KITTI devkit's documented formulas, not from the converter: a Velodyne point projects
into rectified camera i as ``P_rect_0i @ R_rect_00 @ [R|T]_velo_to_cam @ X`` (readme of the raw devkit); the
oxts pose is the devkit's Mercator projection with Rz(yaw) Ry(pitch) Rx(roll); tracklets hold the bottom
centre of the box in the Velodyne frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from tests.data.sources.checks import HEIGHT, WIDTH, Dot, blank_image, inside

DATE = "2011_09_26"
DRIVE = f"{DATE}_drive_0001_sync"
NUM_FRAMES = 3
FOCAL = 40.0
FRAME_STEP = 0.1036
VELO_DELAY = 0.02
"""The Velodyne timestamps lag the camera's by this much, seconds."""
CAR_SIZE = (4.2, 1.7, 1.5)
"""Tracklet l, w, h, metres."""
BASELINE = {"02": [0.06, -0.0003, 0.0027], "03": [-0.47, 0.0024, 0.0035]}
"""t of P_rect_0i = K [I | t] for the two colour cameras, metres."""

R_RECT = Rotation.from_rotvec([0.004, -0.007, 0.0099]).as_matrix()
VELO_TO_CAM = np.eye(4)
VELO_TO_CAM[:3, :3] = Rotation.from_rotvec([0.01, 0.005, -0.008]).as_matrix() @ np.array(
    [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]
)
VELO_TO_CAM[:3, 3] = [-0.004, -0.076, -0.27]
IMU_TO_VELO = np.eye(4)
IMU_TO_VELO[:3, :3] = Rotation.from_rotvec([0.001, -0.002, 0.003]).as_matrix()
IMU_TO_VELO[:3, 3] = [-0.81, 0.32, -0.80]
K = np.array([[FOCAL, 0.0, WIDTH / 2], [0.0, FOCAL, HEIGHT / 2], [0.0, 0.0, 1.0]])


def p_rect(camera: str) -> np.ndarray:
    return np.concatenate([K, (K @ np.array(BASELINE[camera]))[:, None]], axis=1)


def oxts_packet(i: int) -> list[float]:
    """lat lon alt roll pitch yaw of frame i (then 24 more values the converter ignores)."""
    return [49.011 + 8e-6 * i, 8.43 + 1.2e-5 * i, 112.0 + 0.05 * i, 0.01, -0.02, 0.3 + 0.02 * i]


def world_from_imu(i: int) -> np.ndarray:
    """The devkit's oxts pose (Mercator with the scale of frame 0), translated so that frame 0 is at the origin."""

    def mercator(lat: float, lon: float, alt: float) -> np.ndarray:
        scale = math.cos(oxts_packet(0)[0] * math.pi / 180.0)
        return np.array(
            [
                scale * 6378137.0 * lon * math.pi / 180.0,
                scale * 6378137.0 * math.log(math.tan((90.0 + lat) * math.pi / 360.0)),
                alt,
            ]
        )

    lat, lon, alt, roll, pitch, yaw = oxts_packet(i)
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_matrix()
    out[:3, 3] = mercator(lat, lon, alt) - mercator(*oxts_packet(0)[:3])
    return out


def world_from_velo(i: int) -> np.ndarray:
    return world_from_imu(i) @ np.linalg.inv(IMU_TO_VELO)


def project(camera: str, xyz_velo: np.ndarray) -> tuple[float, float, float]:
    """The devkit's projection of a Velodyne point into rectified camera ``camera``: (u, v, depth)."""
    rect = np.eye(4)
    rect[:3, :3] = R_RECT
    x = p_rect(camera) @ rect @ VELO_TO_CAM @ np.append(xyz_velo, 1.0)
    return x[0] / x[2], x[1] / x[2], x[2]


def car_in_velo(i: int) -> tuple[np.ndarray, float]:
    """Tracklet pose of frame i: bottom centre (tx, ty, tz) and yaw rz in the Velodyne frame."""
    return np.array([14.0 - 0.5 * i, 1.0, -1.7]), 0.1


@dataclass
class KittiTruth:
    drive: Path
    dots: list[Dot] = field(default_factory=list)


def _matrix_line(key: str, values: np.ndarray) -> str:
    return f"{key}: " + " ".join(f"{v:.12e}" for v in np.asarray(values).reshape(-1))


def write_drive(root: Path, *, skip: tuple[str, ...] = ()) -> KittiTruth:
    """Write ``<root>/<date>/`` (calibration) and the drive inside it. `skip`: relative paths to leave out."""
    day = root / DATE
    drive = day / DRIVE
    truth = KittiTruth(drive)
    calib = {
        "calib_cam_to_cam.txt": [
            "calib_time: 09-Jan-2012 13:57:47",
            "corner_dist: 9.950000e-02",
            _matrix_line("R_rect_00", R_RECT),
            *[
                line
                for c in ("02", "03")
                for line in (f"S_rect_{c}: {WIDTH} {HEIGHT}", _matrix_line(f"P_rect_{c}", p_rect(c)))
            ],
        ],
        "calib_velo_to_cam.txt": [
            "calib_time: 15-Mar-2012 11:37:16",
            _matrix_line("R", VELO_TO_CAM[:3, :3]),
            _matrix_line("T", VELO_TO_CAM[:3, 3]),
        ],
        "calib_imu_to_velo.txt": [
            "calib_time: 25-May-2012 16:47:16",
            _matrix_line("R", IMU_TO_VELO[:3, :3]),
            _matrix_line("T", IMU_TO_VELO[:3, 3]),
        ],
    }
    day.mkdir(parents=True)
    for name, lines in calib.items():
        if name not in skip:
            (day / name).write_text("\n".join(lines) + "\n")
    stamps = [f"2011-09-26 13:02:{25 + i * FRAME_STEP:012.9f}" for i in range(NUM_FRAMES)]
    velo_stamps = [f"2011-09-26 13:02:{25 + i * FRAME_STEP + VELO_DELAY:012.9f}" for i in range(NUM_FRAMES)]
    scans, dots = _scans(truth, step=FRAME_STEP, velo_delay=VELO_DELAY)
    for i, cloud in enumerate(scans):
        _write(drive / "velodyne_points" / "data" / f"{i:010d}.bin", cloud.tobytes(), skip, drive)
        _write(drive / "oxts" / "data" / f"{i:010d}.txt", _oxts_line(i), skip, drive)
    for camera in ("02", "03"):
        for i in range(NUM_FRAMES):
            path = drive / f"image_{camera}" / "data" / f"{i:010d}.png"
            if f"image_{camera}" not in skip:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(blank_image(dots.get((camera, i), []))).save(path)
        _write(drive / f"image_{camera}" / "timestamps.txt", "\n".join(stamps) + "\n", skip, drive)
    _write(drive / "oxts" / "timestamps.txt", "\n".join(stamps) + "\n", skip, drive)
    _write(drive / "velodyne_points" / "timestamps.txt", "\n".join(velo_stamps) + "\n", skip, drive)
    _write(drive / "tracklet_labels.xml", _tracklets(), skip, drive)
    return truth


def _scans(truth: KittiTruth, step: float, velo_delay: float) -> tuple[list[np.ndarray], dict[tuple[str, int], list]]:
    """Velodyne scans (float32 [N, 4]) with points placed where cameras 02/03 see them; the dots per image."""
    rng = np.random.default_rng(11)
    dots: dict[tuple[str, int], list] = {}
    scans = []
    colour_index = 0
    for i in range(NUM_FRAMES):
        points = [rng.uniform([-20, -20, -1.5], [20, 20, 1.0], size=(20, 3))]
        for _ in range(200):
            xyz = rng.uniform([4.0, -8.0, -1.5], [30.0, 8.0, 1.5])
            seen = []
            for camera in ("02", "03"):
                u, v, depth = project(camera, xyz)
                if depth > 0.5 and inside(u, v):
                    seen.append((camera, u, v))
            if not seen or colour_index >= 8 * (i + 1):
                continue
            colour = (10 + 10 * colour_index, 255, 0)
            colour_index += 1
            points.append(xyz[None])
            for camera, u, v in seen:
                dots.setdefault((camera, i), []).append((colour, (u, v)))
                truth.dots.append(Dot(colour, f"image_{camera}", i * step, (u, v), i * step + velo_delay))
        xyz = np.concatenate(points)
        scans.append(np.concatenate([xyz, np.zeros((len(xyz), 1))], axis=1).astype(np.float32))
    return scans, dots


def _oxts_line(i: int) -> str:
    return " ".join(f"{v:.12f}" for v in oxts_packet(i) + [0.0] * 24)


def write_tracking(root: Path, sequence: str = "0003") -> KittiTruth:
    """A KITTI tracking split folder ``root`` (calib/, oxts/, image_02/, image_03/, velodyne/, label_02/)."""
    truth = KittiTruth(root)
    rect = np.eye(4)
    rect[:3, :3] = R_RECT
    zero = np.concatenate([K, np.zeros((3, 1))], axis=1)
    lines = [_matrix_line(f"P{n}", p) for n, p in enumerate([zero, zero, p_rect("02"), p_rect("03")])]
    lines += [
        "R_rect " + " ".join(f"{v:.12e}" for v in R_RECT.reshape(-1)),
        "Tr_velo_cam " + " ".join(f"{v:.12e}" for v in VELO_TO_CAM[:3].reshape(-1)),
        "Tr_imu_velo " + " ".join(f"{v:.12e}" for v in IMU_TO_VELO[:3].reshape(-1)),
    ]
    (root / "calib").mkdir(parents=True)
    (root / "calib" / f"{sequence}.txt").write_text("\n".join(lines) + "\n")
    (root / "oxts").mkdir()
    (root / "oxts" / f"{sequence}.txt").write_text("\n".join(_oxts_line(i) for i in range(NUM_FRAMES)) + "\n")
    scans, dots = _scans(truth, step=0.1, velo_delay=0.0)
    labels = []
    for i, cloud in enumerate(scans):
        (root / "velodyne" / sequence).mkdir(parents=True, exist_ok=True)
        cloud.tofile(root / "velodyne" / sequence / f"{i:06d}.bin")
        for camera in ("02", "03"):
            (root / f"image_{camera}" / sequence).mkdir(parents=True, exist_ok=True)
            image = blank_image(dots.get((camera, i), []))
            Image.fromarray(image).save(root / f"image_{camera}" / sequence / f"{i:06d}.png")
        bottom, yaw = car_in_velo(i)
        location = (rect @ VELO_TO_CAM @ np.append(bottom, 1.0))[:3]
        forward = R_RECT @ VELO_TO_CAM[:3, :3] @ np.array([np.cos(yaw), np.sin(yaw), 0.0])
        ry = math.atan2(-forward[2], forward[0])
        h, w, l = CAR_SIZE[2], CAR_SIZE[1], CAR_SIZE[0]
        box = f"{h} {w} {l} {location[0]:.6f} {location[1]:.6f} {location[2]:.6f} {ry:.6f}"
        labels.append(f"{i} 7 Car 0 0 -1.5 10 10 30 30 {box}")
        labels.append(f"{i} -1 DontCare -1 -1 -10 1 1 5 5 -1000 -1000 -1000 -10 -10 -10 -1")
    (root / "label_02").mkdir()
    (root / "label_02" / f"{sequence}.txt").write_text("\n".join(labels) + "\n")
    return truth


def _write(path: Path, content: str | bytes, skip: tuple[str, ...], drive: Path) -> None:
    relative = path.relative_to(drive).as_posix()
    if any(relative == s or relative.startswith(s + "/") for s in skip):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _tracklets() -> str:
    """tracklet_labels.xml (boost serialization) with one car over every frame."""
    l, w, h = CAR_SIZE
    poses = []
    for i in range(NUM_FRAMES):
        (tx, ty, tz), rz = car_in_velo(i)
        poses.append(
            f"""<item><tx>{tx}</tx><ty>{ty}</ty><tz>{tz}</tz><rx>0</rx><ry>0</ry><rz>{rz}</rz><state>1</state>
<occlusion>0</occlusion><occlusion_kf>0</occlusion_kf><truncation>0</truncation><amt_occlusion>-1</amt_occlusion>
<amt_occlusion_kf>-1</amt_occlusion_kf><amt_border_l>-1</amt_border_l><amt_border_r>-1</amt_border_r>
<amt_border_kf>-1</amt_border_kf></item>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<!DOCTYPE boost_serialization>
<boost_serialization signature="serialization::archive" version="9">
<tracklets class_id="0" tracking_level="0" version="0">
<count>1</count>
<item_version>1</item_version>
<item class_id="1" tracking_level="0" version="1">
<objectType>Car</objectType><h>{h}</h><w>{w}</w><l>{l}</l><first_frame>0</first_frame>
<poses class_id="2" tracking_level="0" version="0"><count>{NUM_FRAMES}</count><item_version>2</item_version>
{"".join(poses)}
</poses>
<finished>1</finished>
</item>
</tracklets>
</boost_serialization>
"""
