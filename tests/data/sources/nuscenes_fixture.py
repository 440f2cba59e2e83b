"""A tiny nuScenes v1.0 dataroot (JSON tables, images, LIDAR_TOP .pcd.bin) that nuscenes-devkit opens.

Truth is computed here from nuScenes' documented conventions: poses are ``ego_pose @ calibrated_sensor`` with
quaternions (w, x, y, z); cameras are OpenCV (x right, y down, z forward) and project with
``camera_intrinsic``; LiDAR files hold float32 (x, y, z, intensity, ring) in the sensor frame; boxes have
``size`` = (width, length, height) and a global centre and rotation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from tests.data.sources.checks import HEIGHT, WIDTH, Dot, blank_image, inside

VERSION = "v1.0-mini"
SCENE = "scene-0001"
CAMERAS = {
    "CAM_FRONT": 0.0,
    "CAM_FRONT_LEFT": 0.95,
    "CAM_FRONT_RIGHT": -0.95,
    "CAM_BACK_LEFT": 1.9,
    "CAM_BACK_RIGHT": -1.9,
    "CAM_BACK": math.pi,
}
"""Channel -> yaw of the camera on the ego vehicle, radians."""
FOCAL = 40.0
START = 1_532_402_927_647_951
"""First sample's timestamp, micros."""
SAMPLE_STEP = 500_000
SWEEP_STEP = 250_000
NUM_SAMPLES = 3
CAMERA_TO_EGO_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Columns: the OpenCV camera axes (right, down, forward) in the ego frame (x forward, y left, z up)."""


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def homogeneous(rotation: np.ndarray, translation: list[float] | np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def quaternion_wxyz(rotation: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return [float(w), float(x), float(y), float(z)]


def ego_pose(micros: int) -> np.ndarray:
    t = (micros - START) * 1e-6
    return homogeneous(rot_z(1.0 + 0.1 * t), [400.0 + 8.0 * t, 1100.0 + 1.0 * t, 0.0])


CAMERA_TO_EGO = {name: homogeneous(rot_z(yaw) @ CAMERA_TO_EGO_AXES, [1.0, 0.0, 1.5]) for name, yaw in CAMERAS.items()}
LIDAR_TO_EGO = homogeneous(rot_z(-math.pi / 2), [0.9, 0.0, 1.8])


def camera_stamp(channel: int, step: int) -> int:
    """Capture time of camera ``channel`` at sweep ``step`` (every 250 ms; even steps are keyframes), micros."""
    return START + step * SWEEP_STEP + 5_000 * channel


def car_pose(micros: int) -> np.ndarray:
    """The moving car: 6 m/s along the world x, heading 0.3 rad."""
    t = (micros - START) * 1e-6
    return homogeneous(rot_z(0.3), [412.0 + 6.0 * t, 1108.0, 0.8])


@dataclass
class NuScenesTruth:
    root: Path
    keyframe_dots: list[Dot] = field(default_factory=list)
    """Dots as converted from keyframes (frames at their sample's time)."""
    sweep_dots: list[Dot] = field(default_factory=list)
    """Dots as converted with --sweeps (frames at their own capture time)."""
    camera_to_world: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    """(channel, micros) -> OpenCV camera-to-world."""


def write_dataroot(root: Path, *, skip_table: str | None = None) -> NuScenesTruth:
    """Write the dataroot (3 samples, 6 cameras at 4 Hz, LIDAR_TOP at 4 Hz, a moving car, a partial pedestrian)."""
    truth = NuScenesTruth(root)
    rng = np.random.default_rng(5)
    tables: dict[str, list[dict]] = {name: [] for name in ("attribute", "visibility")}
    tables["category"] = [
        {"token": "cat-car", "name": "vehicle.car", "description": ""},
        {"token": "cat-ped", "name": "human.pedestrian.adult", "description": ""},
    ]
    tables["log"] = [
        {"token": "log-0", "logfile": "", "vehicle": "n015", "date_captured": "2018-07-24", "location": "x"}
    ]
    tables["map"] = [
        {"token": "map-0", "log_tokens": ["log-0"], "category": "semantic_prior", "filename": "maps/m.png"}
    ]
    (root / "maps").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(root / "maps" / "m.png")
    channels = [*CAMERAS, "LIDAR_TOP"]
    tables["sensor"] = [
        {"token": f"sensor-{c}", "channel": c, "modality": "lidar" if c == "LIDAR_TOP" else "camera"} for c in channels
    ]
    tables["calibrated_sensor"] = []
    for c in channels:
        pose = LIDAR_TO_EGO if c == "LIDAR_TOP" else CAMERA_TO_EGO[c]
        intrinsic = [] if c == "LIDAR_TOP" else [[FOCAL, 0.0, WIDTH / 2], [0.0, FOCAL, HEIGHT / 2], [0.0, 0.0, 1.0]]
        tables["calibrated_sensor"].append(
            {
                "token": f"cs-{c}",
                "sensor_token": f"sensor-{c}",
                "translation": pose[:3, 3].tolist(),
                "rotation": quaternion_wxyz(pose[:3, :3]),
                "camera_intrinsic": intrinsic,
            }
        )
    samples = [f"sample-{i}" for i in range(NUM_SAMPLES)]
    tables["sample"] = [
        {
            "token": samples[i],
            "timestamp": START + i * SAMPLE_STEP,
            "prev": samples[i - 1] if i > 0 else "",
            "next": samples[i + 1] if i + 1 < NUM_SAMPLES else "",
            "scene_token": "scene-0",
        }
        for i in range(NUM_SAMPLES)
    ]
    tables["scene"] = [
        {
            "token": "scene-0",
            "log_token": "log-0",
            "nbr_samples": NUM_SAMPLES,
            "first_sample_token": samples[0],
            "last_sample_token": samples[-1],
            "name": SCENE,
            "description": "",
        }
    ]
    steps = 2 * (NUM_SAMPLES - 1) + 1  # keyframes on even steps
    tables["ego_pose"], tables["sample_data"] = [], []
    # LiDAR: at each step, points placed in random camera pixels (dots), and a few out of view.
    dots_in_image: dict[tuple[str, int], list] = {}
    colour_index = 0
    for step in range(steps):
        lidar_time = START + step * SWEEP_STEP
        world_from_lidar = ego_pose(lidar_time) @ LIDAR_TO_EGO
        points = [rng.uniform(-30, 30, size=(5, 3)) * [1, 1, 0.1]]
        for _ in range(3):
            channel = list(CAMERAS)[int(rng.integers(len(CAMERAS)))]
            number = list(CAMERAS).index(channel)
            world_from_cam = ego_pose(camera_stamp(number, step)) @ CAMERA_TO_EGO[channel]
            u, v, depth = rng.uniform(4, WIDTH - 4), rng.uniform(4, HEIGHT - 4), rng.uniform(5, 30)
            cam = np.array([(u - WIDTH / 2) / FOCAL * depth, (v - HEIGHT / 2) / FOCAL * depth, depth, 1.0])
            world = (world_from_cam @ cam)[:3]
            colour = (255, 12 * colour_index, 200 - 12 * colour_index)
            colour_index += 1
            for other, number2 in zip(CAMERAS, range(len(CAMERAS)), strict=True):
                pose = ego_pose(camera_stamp(number2, step)) @ CAMERA_TO_EGO[other]
                x, y, z = (np.linalg.inv(pose) @ np.append(world, 1.0))[:3]
                pu, pv = FOCAL * x / z + WIDTH / 2, FOCAL * y / z + HEIGHT / 2
                if z > 0.5 and inside(pu, pv):
                    dots_in_image.setdefault((other, step), []).append((colour, (pu, pv)))
                    lidar_s = step * SWEEP_STEP * 1e-6
                    own_s = (camera_stamp(number2, step) - START) * 1e-6
                    truth.sweep_dots.append(Dot(colour, other, own_s, (pu, pv), point_time=lidar_s))
                    if step % 2 == 0:
                        truth.keyframe_dots.append(Dot(colour, other, lidar_s, (pu, pv), point_time=lidar_s))
            points.append((np.linalg.inv(world_from_lidar) @ np.append(world, 1.0))[None, :3])
        xyz = np.concatenate(points)
        cloud = np.concatenate([xyz, np.zeros((len(xyz), 2))], axis=1).astype(np.float32)
        folder = "samples" if step % 2 == 0 else "sweeps"
        filename = f"{folder}/LIDAR_TOP/lidar-{step}.pcd.bin"
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        cloud.tofile(root / filename)
        _add_sample_data(tables, "LIDAR_TOP", step, steps, lidar_time, filename, 0, 0)
    for number, channel in enumerate(CAMERAS):
        for step in range(steps):
            stamp = camera_stamp(number, step)
            folder = "samples" if step % 2 == 0 else "sweeps"
            filename = f"{folder}/{channel}/{channel}-{step}.png"
            (root / filename).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(blank_image(dots_in_image.get((channel, step), []))).save(root / filename)
            _add_sample_data(tables, channel, step, steps, stamp, filename, WIDTH, HEIGHT)
            truth.camera_to_world[(channel, stamp)] = ego_pose(stamp) @ CAMERA_TO_EGO[channel]
    # Annotations: a car in every sample, a pedestrian standing still in the last two.
    tables["sample_annotation"], tables["instance"] = [], []
    for instance, category, first, size in (
        ("inst-car", "cat-car", 0, [1.9, 4.5, 1.6]),
        ("inst-ped", "cat-ped", 1, [0.6, 0.7, 1.8]),
    ):
        tokens = [f"{instance}-{i}" for i in range(first, NUM_SAMPLES)]
        for j, i in enumerate(range(first, NUM_SAMPLES)):
            stamp = START + i * SAMPLE_STEP
            pose = car_pose(stamp) if instance == "inst-car" else homogeneous(rot_z(2.0), [405.0, 1103.0, 0.9])
            tables["sample_annotation"].append(
                {
                    "token": tokens[j],
                    "sample_token": samples[i],
                    "instance_token": instance,
                    "visibility_token": "",
                    "attribute_tokens": [],
                    "translation": pose[:3, 3].tolist(),
                    "size": size,
                    "rotation": quaternion_wxyz(pose[:3, :3]),
                    "prev": tokens[j - 1] if j > 0 else "",
                    "next": tokens[j + 1] if j + 1 < len(tokens) else "",
                    "num_lidar_pts": 10,
                    "num_radar_pts": 0,
                }
            )
        tables["instance"].append(
            {
                "token": instance,
                "category_token": category,
                "nbr_annotations": len(tokens),
                "first_annotation_token": tokens[0],
                "last_annotation_token": tokens[-1],
            }
        )
    (root / VERSION).mkdir(parents=True)
    for name, rows in tables.items():
        if name != skip_table:
            (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    return truth


def _add_sample_data(
    tables: dict[str, list[dict]],
    channel: str,
    step: int,
    steps: int,
    stamp: int,
    filename: str,
    width: int,
    height: int,
) -> None:
    token = f"sd-{channel}-{step}"
    tables["ego_pose"].append(
        {"token": f"ego-{token}", "timestamp": stamp, "rotation": quaternion_wxyz(ego_pose(stamp)[:3, :3])}
        | {"translation": ego_pose(stamp)[:3, 3].tolist()}
    )
    tables["sample_data"].append(
        {
            "token": token,
            "sample_token": f"sample-{(step + 1) // 2}",
            "ego_pose_token": f"ego-{token}",
            "calibrated_sensor_token": f"cs-{channel}",
            "timestamp": stamp,
            "fileformat": "pcd" if channel == "LIDAR_TOP" else "png",
            "is_key_frame": step % 2 == 0,
            "height": height,
            "width": width,
            "filename": filename,
            "prev": f"sd-{channel}-{step - 1}" if step > 0 else "",
            "next": f"sd-{channel}-{step + 1}" if step + 1 < steps else "",
        }
    )
