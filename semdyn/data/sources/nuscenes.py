"""nuScenes v1.0 -> semdyn sequence, through nuscenes-devkit.

Read: the six cameras (keyframes at 2 Hz, or every sweep at 12 Hz with ``--sweeps``), LIDAR_TOP
(``samples/`` or ``sweeps/`` ``.pcd.bin``), ego poses, calibrated sensors, and the sample annotations as box
tracks (one per ``instance``).

Conventions converted: nuScenes cameras are already OpenCV (x right, y down, z forward) and their images
undistorted; poses are ``ego_pose @ calibrated_sensor`` (quaternions w, x, y, z); LiDAR points are in the
sensor frame (x, y, z, intensity, ring) as float32; a box's ``size`` is (width, length, height) with x
forward along the length, and is written as (length, width, height). Keyframe frames share their sample's
time (the six cameras of a sample fire within ~50 ms); ``--sweeps`` frames carry their own capture time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

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

CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_BACK")
"""nuScenes camera channels."""
TABLES = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
"""The JSON tables nuscenes-devkit loads."""
LIDAR = "LIDAR_TOP"


@dataclass
class NuScenesOptions(ConvertOptions):
    """Convert one nuScenes scene. Cameras: CAM_FRONT CAM_FRONT_LEFT CAM_FRONT_RIGHT CAM_BACK_LEFT CAM_BACK_RIGHT
    CAM_BACK. --frames counts keyframes (samples)."""

    data: Path = Path("data/nuscenes")
    """The nuScenes dataroot (holds samples/, sweeps/, maps/ and the version folder)."""
    version: str = "v1.0-mini"
    """Table version folder: v1.0-mini, v1.0-trainval or v1.0-test."""
    scene: str | None = None
    """Scene name (e.g. scene-0061); may be omitted when the version holds one scene."""
    sweeps: bool = False
    """Use every camera image (12 Hz) and LiDAR sweep (20 Hz) between the selected keyframes, not only keyframes."""


def load(options: NuScenesOptions) -> SourceScene:
    """Read the selected samples of a nuScenes scene into a `SourceScene`.

    Raises:
        DataFormatError: a wrong dataroot, a missing version folder or table (naming it), a missing file.
        InputError: an unknown scene or camera, an empty frame range.
    """
    options.validate()
    nusc = _open(options)
    scene = _find_scene(nusc, options)
    samples = []
    token = scene["first_sample_token"]
    while token:
        samples.append(nusc.get("sample", token))
        token = samples[-1]["next"]
    samples = [samples[i] for i in select_range(len(samples), options.frames, f"samples of {scene['name']}")]
    available = [c for c in CAMERAS if c in samples[0]["data"]]
    cameras = select_cameras(available, options.cameras, "nuScenes")
    first, last = samples[0]["timestamp"], samples[-1]["timestamp"]  # micros; times are taken relative to first
    root = Path(options.data)
    frames = []
    for camera in cameras:
        for sd, time in _sample_data(nusc, samples, camera, options.sweeps, first):
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            k = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
            model = CameraModel(k[0, 0], k[1, 1], k[0, 2], k[1, 2], int(sd["width"]), int(sd["height"]))
            path = root / sd["filename"]
            pose = _sensor_to_world(nusc, sd)
            frames.append(CameraFrame(camera, time, pose, model, _image_loader(path), image_source=path))
    sweeps = []
    if options.lidar:
        if LIDAR not in samples[0]["data"]:
            raise DataFormatError(Path(options.data) / options.version / "sample_data.json", f"has no {LIDAR} data")
        for sd, time in _sample_data(nusc, samples, LIDAR, options.sweeps, first):
            pose = _sensor_to_world(nusc, sd)
            sweeps.append(LidarSweep(time, pose[:3, 3], _points_loader(root / sd["filename"], pose)))
    tracks = _tracks(nusc, samples, first) if options.objects else []
    info = {"scene": scene["name"], "version": options.version, "data": str(root.resolve())}
    info |= {"time_origin_micros": first, "last_micros": last}
    return SourceScene(dataset="nuscenes", frames=frames, sweeps=sweeps, tracks=tracks, info=info)


def _open(options: NuScenesOptions) -> Any:
    """Check the dataroot, version folder and tables, then open them with nuscenes-devkit."""
    root = Path(options.data)
    if not root.is_dir():
        raise DataFormatError(root, "the nuScenes dataroot (--data) does not exist")
    tables = root / options.version
    if not tables.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v"))
        hint = f"found {', '.join(found)}" if found else "no version folder (v1.0-mini, v1.0-trainval, ...) at all"
        raise DataFormatError(tables, f"the nuScenes table folder of --version {options.version} is missing ({hint})")
    if not options.version.startswith("v1.0"):
        raise DataFormatError(tables, f"nuScenes version {options.version} is not supported (only v1.0-*)")
    for table in TABLES:
        if not (tables / f"{table}.json").is_file():
            raise DataFormatError(tables / f"{table}.json", f"the nuScenes table '{table}' is missing")
    module = require("nuscenes.nuscenes", "nuScenes", "convert", "nuscenes-devkit")
    try:
        return module.NuScenes(version=options.version, dataroot=str(root), verbose=False)
    except AssertionError as error:  # the devkit asserts on missing map files
        raise DataFormatError(tables, f"nuscenes-devkit cannot open it: {error}") from error
    except (KeyError, ValueError) as error:
        raise DataFormatError(tables, f"the tables are inconsistent ({type(error).__name__}: {error})") from error


def _find_scene(nusc: Any, options: NuScenesOptions) -> dict[str, Any]:
    names = [s["name"] for s in nusc.scene]
    if options.scene is None:
        if len(names) != 1:
            raise InputError(f"{options.version} holds {len(names)} scenes; choose one with --scene (e.g. {names[0]})")
        return nusc.scene[0]
    if options.scene not in names:
        raise InputError(f"--scene {options.scene} is not in {options.version} (e.g. {', '.join(names[:5])})")
    return nusc.scene[names.index(options.scene)]


def _sample_data(
    nusc: Any, samples: list[dict[str, Any]], channel: str, sweeps: bool, base: int
) -> list[tuple[dict[str, Any], float]]:
    """The sample_data records of a channel with their times (seconds after `base` micros): keyframes (at their
    sample's time), or every record between the first and last keyframe (at its own time)."""
    if not sweeps:
        return [(nusc.get("sample_data", s["data"][channel]), (s["timestamp"] - base) * 1e-6) for s in samples]
    out = []
    record = nusc.get("sample_data", samples[0]["data"][channel])
    end = nusc.get("sample_data", samples[-1]["data"][channel])["timestamp"]
    while record["timestamp"] <= end:
        out.append((record, (record["timestamp"] - base) * 1e-6))
        if not record["next"]:
            break
        record = nusc.get("sample_data", record["next"])
    return out


def _pose(translation: Any, rotation: Any) -> np.ndarray:
    """A nuScenes translation [3] and quaternion [w, x, y, z] as float64 [4, 4]."""
    w, x, y, z = (float(v) for v in rotation)
    return rigid(Rotation.from_quat([x, y, z, w]).as_matrix(), np.asarray(translation, dtype=np.float64))


def _sensor_to_world(nusc: Any, sd: dict[str, Any]) -> np.ndarray:
    ego = nusc.get("ego_pose", sd["ego_pose_token"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return _pose(ego["translation"], ego["rotation"]) @ _pose(cs["translation"], cs["rotation"])


def _image_loader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        if not path.is_file():
            raise DataFormatError(path, "the image named by sample_data.filename does not exist")
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


def _points_loader(path: Path, sensor_to_world: np.ndarray) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        if not path.is_file():
            raise DataFormatError(path, "the LiDAR file named by sample_data.filename does not exist")
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size % 5:
            raise DataFormatError(path, "is not a nuScenes .pcd.bin (float32 x, y, z, intensity, ring per point)")
        return transform_points(sensor_to_world, raw.reshape(-1, 5)[:, :3])

    return load


def _tracks(nusc: Any, samples: list[dict[str, Any]], base: int) -> list[BoxTrack]:
    """One track per instance, posed at the timestamps of the samples that annotate it."""
    by_instance: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for sample in samples:
        for token in sample["anns"]:
            ann = nusc.get("sample_annotation", token)
            by_instance.setdefault(ann["instance_token"], []).append(((sample["timestamp"] - base) * 1e-6, ann))
    tracks = []
    for key, entries in by_instance.items():
        entries.sort(key=lambda e: e[0])
        width, length, height = (float(v) for v in entries[0][1]["size"])
        tracks.append(
            BoxTrack(
                key=key,
                label=entries[0][1]["category_name"],
                size=np.array([length, width, height]),
                times=np.array([t for t, _ in entries]),
                object_to_world=np.stack([_pose(a["translation"], a["rotation"]) for _, a in entries]),
            )
        )
    return tracks
