"""KITTI raw (synced + rectified drives) and KITTI tracking sequences -> semdyn sequence.

Raw layout read (as the raw data download unpacks)::

    <date>/calib_cam_to_cam.txt   P_rect_0x, R_rect_00, S_rect_0x
    <date>/calib_velo_to_cam.txt  R, T: Velodyne -> camera 0 (unrectified)
    <date>/calib_imu_to_velo.txt  R, T: IMU/GPS (oxts) -> Velodyne
    <date>/<date>_drive_<nnnn>_sync/
        image_02/data/<i>.png, image_02/timestamps.txt      (image_03 likewise; 00/01 are grey)
        oxts/data/<i>.txt                                   lat lon alt roll pitch yaw ... (30 values)
        velodyne_points/data/<i>.bin, timestamps.txt         float32 x y z reflectance   unless --no-lidar

A drive without oxts/ gets its ego poses from the Velodyne scans by LiDAR odometry (kiss-icp, or open3d ICP;
the world is then the first scan's Velodyne frame), and a drive without timestamps.txt gets frame times at
--frame-rate (KITTI's nominal 10 Hz). calib_imu_to_velo.txt is needed only with oxts poses.
        tracklet_labels.xml                                  3D tracklets                 unless --no-objects

Tracking layout (``--data .../training --sequence 0001``)::

    calib/<seq>.txt       P2, P3, R_rect, Tr_velo_cam, Tr_imu_velo
    oxts/<seq>.txt        one oxts record per frame
    image_02/<seq>/<i>.png, image_03/<seq>/<i>.png     (10 Hz; there are no timestamps)
    velodyne/<seq>/<i>.bin                             unless --no-lidar
    label_02/<seq>.txt    frame track_id type trunc occl alpha x1 y1 x2 y2 h w l x y z ry   unless --no-objects

Conventions converted: oxts poses use the devkit's Mercator projection with the scale of the first frame,
rotation Rz(yaw) Ry(pitch) Rx(roll), world x east, y north, z up. Rectified camera i has
``x_img = P_i R_rect T_cam0_velo X_velo``, so its OpenCV pose is the inverse of
``[I | K^-1 P_i[:, 3]] R_rect T_cam0_velo T_velo_imu`` composed with the oxts pose.
Raw tracklets are in the Velodyne frame, (tx, ty, tz) the bottom centre of the box, rz the yaw; tracking labels
are in rectified camera-0 coordinates (y down), (x, y, z) the bottom centre, ry the yaw about the camera's y.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from semdyn.data.images import image_size
from semdyn.data.sources import kitti_odometry
from semdyn.data.sources.common import (
    BoxTrack,
    CameraFrame,
    CameraModel,
    SourceScene,
    rigid,
    select_cameras,
    select_range,
)
from semdyn.data.sources.kitti_files import KittiOptions, image_loader, scan_loader, velodyne_sweeps
from semdyn.data.sources.lidar_objects import moving_objects
from semdyn.data.sources.odometry import lidar_odometry, resolve_backend
from semdyn.errors import DataFormatError, InputError, read_text

log = logging.getLogger("semdyn")

CAMERAS = ("image_02", "image_03", "image_00", "image_01")
"""Camera folders of a drive: 02/03 colour, 00/01 grey (converted to RGB)."""
EARTH_RADIUS = 6378137.0
"""Radius of the KITTI devkit's Mercator projection, metres."""
TRACKING_FRAME_SECONDS = 0.1
"""KITTI tracking has no timestamps; its frames are 10 Hz."""


@dataclass(frozen=True)
class Rig:
    """The calibration chain of a KITTI recording (4x4 rigid transforms, metres)."""

    velo_from_imu: np.ndarray
    """IMU/GPS (oxts) -> Velodyne."""
    cam0_from_velo: np.ndarray
    """Velodyne -> unrectified camera 0."""
    rect: np.ndarray
    """Camera 0 -> rectified camera 0 (R_rect, no translation)."""
    projections: dict[str, np.ndarray]
    """Camera number ("02") -> rectified projection P [3, 4]."""

    def camera(self, number: str, width: int, height: int) -> tuple[CameraModel, np.ndarray]:
        """Intrinsics of rectified camera `number` and its OpenCV camera-from-IMU [4, 4]."""
        projection = self.projections[number]
        k = projection[:, :3]
        cam_from_rect0 = rigid(np.eye(3), np.linalg.solve(k, projection[:, 3]))
        model = CameraModel(k[0, 0], k[1, 1], k[0, 2], k[1, 2], width, height)
        return model, cam_from_rect0 @ self.rect @ self.cam0_from_velo @ self.velo_from_imu


def load(options: KittiOptions) -> SourceScene:
    """Read the selected frames of a KITTI raw drive or tracking sequence into a `SourceScene`.

    Raises:
        DataFormatError: a wrong folder, a missing calibration, oxts, image, Velodyne, tracklet or label file
            (naming it), an unsynced (_extract) drive.
        InputError: an unknown camera or sequence, an empty frame range.
    """
    options.validate()
    data = Path(options.data)
    if kitti_odometry.is_odometry_layout(data):
        return kitti_odometry.load(options)
    if (data / "label_02").is_dir() or (data / "calib").is_dir() or (data / "training").is_dir():
        return _load_tracking(options)
    return _load_raw(options)


def _cameras(available: list[str], options: KittiOptions, where: str) -> list[str]:
    """The requested cameras (default: the colour ones present)."""
    requested = options.cameras if options.cameras is not None else tuple(c for c in available if c in CAMERAS[:2])
    return select_cameras(available, requested or available, where)


def _frames(
    rig: Rig,
    cameras: list[str],
    indices: list[int],
    times: list[float],
    world_from_imu: np.ndarray,
    image_path: Callable[[str, int], Path],
    size: Callable[[str], tuple[int, int]],
) -> list[CameraFrame]:
    """Camera frames of the selected indices (world_from_imu [len(indices), 4, 4])."""
    frames = []
    for camera in cameras:
        model, cam_from_imu = rig.camera(camera[-2:], *size(camera))
        imu_from_cam = np.linalg.inv(cam_from_imu)
        for j, i in enumerate(indices):
            path = image_path(camera, i)
            frames.append(
                CameraFrame(
                    camera, times[i], world_from_imu[j] @ imu_from_cam, model, image_loader(path), image_source=path
                )
            )
    return frames


def _load_raw(options: KittiOptions) -> SourceScene:
    drive = Path(options.data)
    _check_drive(drive)
    calib_dir = Path(options.calib) if options.calib is not None else drive.parent
    cameras = _cameras([c for c in CAMERAS if (drive / c / "data").is_dir()], options, "this KITTI drive")
    from_lidar = _poses_from_lidar(drive, options)
    cam_to_cam = read_calib(calib_dir / "calib_cam_to_cam.txt")
    velo_to_cam = read_calib(calib_dir / "calib_velo_to_cam.txt")
    imu_path = calib_dir / "calib_imu_to_velo.txt"
    if from_lidar and not imu_path.is_file():
        velo_from_imu = np.eye(4)  # only oxts poses need the IMU; LiDAR poses go straight to the cameras
    else:
        imu_to_velo = read_calib(imu_path)
        velo_from_imu = rigid(imu_to_velo.get("R", (3, 3)), imu_to_velo.get("T", (3,)))
    rig = Rig(
        velo_from_imu=velo_from_imu,
        cam0_from_velo=rigid(velo_to_cam.get("R", (3, 3)), velo_to_cam.get("T", (3,))),
        rect=rigid(cam_to_cam.get("R_rect_00", (3, 3)), np.zeros(3)),
        projections={c[-2:]: cam_to_cam.get(f"P_rect_{c[-2:]}", (3, 4)) for c in cameras},
    )

    def size(camera: str) -> tuple[int, int]:
        width, height = cam_to_cam.get(f"S_rect_{camera[-2:]}", (2,))
        return int(round(width)), int(round(height))

    images = sorted((drive / cameras[0] / "data").glob("*.png"))
    if not images:
        raise DataFormatError(drive / cameras[0] / "data", "holds no .png images")
    velodyne = drive / "velodyne_points" / "data"
    scans = sorted(velodyne.glob("*.bin")) if velodyne.is_dir() else []
    stamps_path = drive / cameras[0] / "timestamps.txt"
    if stamps_path.is_file():
        stamps = read_timestamps(stamps_path)
        base_note = f"{cameras[0]}/timestamps.txt line"
    else:
        log.info(
            "%s has no timestamps.txt: frame times at the nominal %g Hz (--frame-rate)", drive.name, options.frame_rate
        )
        stamps = [(0, i / options.frame_rate) for i in range(len(images))]
        base_note = f"frame (no timestamps.txt: {options.frame_rate:g} Hz) number"
    if from_lidar:
        count = min(len(stamps), len(scans))
    else:
        oxts = sorted((drive / "oxts" / "data").glob("*.txt"))
        if not oxts:
            raise DataFormatError(drive / "oxts" / "data", "holds no oxts .txt files")
        count = min(len(oxts), len(stamps))
    indices = list(select_range(count, options.frames, "frames of this drive"))
    base = stamps[indices[0]]
    times = relative_seconds(stamps, base)
    if from_lidar:
        backend = resolve_backend(options.odometry.backend)
        why = "--poses lidar" if options.poses == "lidar" else "the drive has no oxts/ poses"
        log.info("%s: ego poses from LiDAR odometry (%s) on %d Velodyne scans", why, backend, len(indices))
        world_from_velo = lidar_odometry([scan_loader(velodyne / f"{i:010d}.bin") for i in indices], options.odometry)
        world_from_imu = world_from_velo @ rig.velo_from_imu
    else:
        world_from_imu = oxts_poses([_oxts_record(oxts[i], read_text(oxts[i])) for i in indices])
        world_from_velo = world_from_imu @ np.linalg.inv(rig.velo_from_imu)
    frames = _frames(
        rig, cameras, indices, times, world_from_imu, lambda c, i: drive / c / "data" / f"{i:010d}.png", size
    )
    sweeps = []
    labels = drive / "tracklet_labels.xml"
    lidar_objects = options.objects and _objects_from_lidar(labels, drive / "velodyne_points" / "data", options)
    if options.lidar or lidar_objects:
        folder = drive / "velodyne_points"
        stamps_file = folder / "timestamps.txt"
        sweep_times = relative_seconds(read_timestamps(stamps_file), base) if stamps_file.is_file() else times
        sweep_times = [sweep_times[i] if i < len(sweep_times) else times[i] for i in range(count)]
        sweeps = velodyne_sweeps(folder / "data", "{:010d}.bin", indices, sweep_times, world_from_velo)
    if lidar_objects:
        tracks = moving_objects(sweeps, options.lidar_objects)
    else:
        tracks = _tracklets(labels, indices, times, world_from_velo) if options.objects else []
    sweeps = sweeps if options.lidar else []
    info = {"drive": drive.name, "data": str(drive.resolve()), "frame_indices": [indices[0], indices[-1]]}
    info["time_origin"] = f"{base_note} {indices[0] + 1}"
    info["poses"] = f"LiDAR odometry ({backend}), world = first Velodyne frame" if from_lidar else "oxts"
    return SourceScene(dataset="kitti", frames=frames, sweeps=sweeps, tracks=tracks, info=info)


def _objects_from_lidar(labels: Path, velodyne: Path, options: KittiOptions) -> bool:
    """Whether the object tracks come from the LiDAR (``--objects-from``, and whether labels and scans are there)."""
    auto = options.objects_from == "auto" and not labels.is_file() and velodyne.is_dir()
    if options.objects_from == "lidar" or auto:
        if options.objects_from == "auto":
            log.info("no %s: moving objects found in the LiDAR sweeps (--objects-from)", labels.name)
        return True
    return False


def _poses_from_lidar(drive: Path, options: KittiOptions) -> bool:
    """Whether the drive's poses come from LiDAR odometry (``--poses``, and what the drive holds)."""
    has_oxts = (drive / "oxts" / "data").is_dir()
    has_lidar = (drive / "velodyne_points" / "data").is_dir()
    if options.poses == "oxts" and not has_oxts:
        raise DataFormatError(
            drive / "oxts" / "data",
            "the oxts poses of the drive are missing (--poses lidar estimates them from the LiDAR)",
        )
    if options.poses == "lidar" and not has_lidar:
        raise DataFormatError(
            drive / "velodyne_points" / "data", "--poses lidar needs the drive's Velodyne scans, which are missing"
        )
    if not has_oxts and not has_lidar:
        raise DataFormatError(
            drive,
            "has neither oxts/data (GPS/IMU poses) nor velodyne_points/data (LiDAR scans to estimate the poses from); "
            "download the drive's oxts or velodyne_points folder into it",
        )
    return options.poses == "lidar" or (options.poses == "auto" and not has_oxts)


def _load_tracking(options: KittiOptions) -> SourceScene:
    root = Path(options.data)
    if (root / "training").is_dir() and not (root / "calib").is_dir():
        raise DataFormatError(root, "is the KITTI tracking root; pass its training/ (or testing/) folder as --data")
    sequences = sorted(p.stem for p in (root / "calib").glob("*.txt"))
    if options.sequence is None:
        if len(sequences) != 1:
            raise InputError(f"{root / 'calib'} holds {len(sequences)} sequences; choose one with --sequence")
        sequence = sequences[0]
    elif options.sequence in sequences:
        sequence = options.sequence
    else:
        raise DataFormatError(root / "calib" / f"{options.sequence}.txt", "the calibration of --sequence is missing")
    calib = read_calib(root / "calib" / f"{sequence}.txt")
    available = [c for c in CAMERAS[:2] if (root / c / sequence).is_dir()]
    if not available:
        raise DataFormatError(root / "image_02" / sequence, "the images of the tracking sequence are missing")
    cameras = _cameras(available, options, f"tracking sequence {sequence}")
    rig = Rig(
        velo_from_imu=rigid_3x4(calib.get("Tr_imu_velo", (3, 4))),
        cam0_from_velo=rigid_3x4(calib.get("Tr_velo_cam", (3, 4))),
        rect=rigid(calib.get("R_rect", (3, 3)), np.zeros(3)),
        projections={c[-2:]: calib.get(f"P{int(c[-2:])}", (3, 4)) for c in cameras},
    )
    images = {c: sorted((root / c / sequence).glob("*.png")) for c in cameras}
    for camera, paths in images.items():
        if not paths:
            raise DataFormatError(root / camera / sequence, "holds no .png images")
    oxts_path = root / "oxts" / f"{sequence}.txt"
    if not oxts_path.is_file():
        raise DataFormatError(oxts_path, "the oxts poses of the sequence are missing")
    records = [_oxts_record(oxts_path, line) for line in read_text(oxts_path).splitlines() if line.strip()]
    count = min(len(records), *(len(v) for v in images.values()))
    indices = list(select_range(count, options.frames, f"frames of tracking sequence {sequence}"))
    times = [i * TRACKING_FRAME_SECONDS for i in range(count)]
    times = [t - times[indices[0]] for t in times]
    world_from_imu = oxts_poses([records[i] for i in indices])
    world_from_velo = world_from_imu @ np.linalg.inv(rig.velo_from_imu)
    frames = _frames(
        rig, cameras, indices, times, world_from_imu, lambda c, i: images[c][i], lambda c: image_size(images[c][0])
    )
    velodyne = root / "velodyne" / sequence
    labels = root / "label_02" / f"{sequence}.txt"
    lidar_objects = options.objects and _objects_from_lidar(labels, velodyne, options)
    sweeps = (
        velodyne_sweeps(velodyne, "{:06d}.bin", indices, times, world_from_velo)
        if options.lidar or lidar_objects
        else []
    )
    world_from_rect = world_from_velo @ np.linalg.inv(rig.rect @ rig.cam0_from_velo)
    if lidar_objects:
        tracks = moving_objects(sweeps, options.lidar_objects)
    else:
        tracks = _tracking_labels(labels, indices, times, world_from_rect) if options.objects else []
    sweeps = sweeps if options.lidar else []
    info = {"sequence": sequence, "data": str(root.resolve()), "frame_indices": [indices[0], indices[-1]]}
    info["time_origin"] = f"frame {indices[0]} (10 Hz, no timestamps in KITTI tracking)"
    return SourceScene(dataset="kitti", frames=frames, sweeps=sweeps, tracks=tracks, info=info)


def _check_drive(drive: Path) -> None:
    if not drive.is_dir():
        raise DataFormatError(drive, "the KITTI drive folder (--data) does not exist")
    if drive.name.endswith("_extract"):
        raise DataFormatError(
            drive, "is an unsynced, unrectified KITTI raw drive (_extract), which is not supported; use the _sync drive"
        )
    if not any((drive / c / "data").is_dir() for c in CAMERAS):
        raise DataFormatError(drive, "is not a KITTI raw drive: no image_02/data (or image_00..03) folder")


# ----------------------------------------------------------------------------------------------
# File readers


@dataclass(frozen=True)
class Calib:
    """The numeric entries of one KITTI calibration file."""

    path: Path
    """The file read."""
    values: dict[str, np.ndarray]
    """Key -> numbers, float64 [K]."""

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The entry ``key`` reshaped to ``shape``; a `DataFormatError` naming the file when absent or wrong."""
        if key not in self.values:
            raise DataFormatError(self.path, f"has no '{key}' entry")
        value = self.values[key]
        if value.size != int(np.prod(shape)):
            raise DataFormatError(self.path, f"'{key}' has {value.size} numbers, expected {int(np.prod(shape))}")
        return value.reshape(shape)


def read_calib(path: Path) -> Calib:
    """A KITTI calibration file: ``key: numbers`` or ``key numbers`` per line (non-numeric lines skipped)."""
    if not path.is_file():
        raise DataFormatError(path, "the KITTI calibration file is missing (pass --calib for another folder)")
    values = {}
    for line in read_text(path).splitlines():
        key, _, value = (
            line.partition(":") if ":" in line else line.strip().partition(" ")
        )  # tracking: "R_rect 1 0 ..."
        try:
            values[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue
    return Calib(path, values)


def read_timestamps(path: Path) -> list[tuple[int, float]]:
    """``YYYY-MM-DD HH:MM:SS.fffffffff`` lines as (whole seconds since the epoch, fraction of a second)."""
    if not path.is_file():
        raise DataFormatError(path, "the timestamps file is missing")
    out = []
    for n, line in enumerate(read_text(path).splitlines()):
        if not line.strip():
            continue
        try:
            whole, _, fraction = line.strip().partition(".")
            seconds = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timestamp()
        except ValueError as error:
            raise DataFormatError(path, f"line {n + 1} is not a 'YYYY-MM-DD HH:MM:SS.fff' time") from error
        out.append((int(round(seconds)), float(f"0.{fraction}") if fraction else 0.0))
    return out


def relative_seconds(stamps: list[tuple[int, float]], base: tuple[int, float]) -> list[float]:
    """Seconds after `base` (whole and fractional parts subtracted apart, so that nanoseconds survive)."""
    return [(whole - base[0]) + (fraction - base[1]) for whole, fraction in stamps]


def _oxts_record(path: Path, text: str) -> list[float]:
    """lat lon alt roll pitch yaw of one oxts record (the first 6 of its 30 numbers)."""
    numbers = text.split()
    try:
        if len(numbers) < 6:
            raise ValueError
        return [float(v) for v in numbers[:6]]
    except ValueError:
        raise DataFormatError(
            path, "holds a line that is not an oxts record (lat lon alt roll pitch yaw ...)"
        ) from None


def oxts_poses(records: list[list[float]]) -> np.ndarray:
    """World-from-IMU poses [N, 4, 4] of oxts records (devkit Mercator, first record's scale, first at the origin)."""
    packets = np.array(records, dtype=np.float64)
    scale = math.cos(packets[0, 0] * math.pi / 180.0)
    poses = []
    for lat, lon, alt, roll, pitch, yaw in packets:
        x = scale * EARTH_RADIUS * lon * math.pi / 180.0
        y = scale * EARTH_RADIUS * math.log(math.tan((90.0 + lat) * math.pi / 360.0))
        poses.append(rigid(_rz(yaw) @ _ry(pitch) @ _rx(roll), np.array([x, y, alt])))
    out = np.stack(poses)
    out[:, :3, 3] -= out[0, :3, 3]
    return out


def rigid_3x4(matrix: np.ndarray) -> np.ndarray:
    """A [3, 4] rigid transform as [4, 4]."""
    return rigid(matrix[:, :3], matrix[:, 3])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _tracklets(path: Path, indices: list[int], times: list[float], world_from_velo: np.ndarray) -> list[BoxTrack]:
    """Tracklets (Velodyne frame, bottom-centred boxes) as world box tracks over the selected frames."""
    if not path.is_file():
        raise DataFormatError(path, "the tracklets file is missing (pass --objects-from lidar or --no-objects)")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DataFormatError(path, f"is not readable XML ({error})") from error
    container = root.find("tracklets")
    if container is None:
        raise DataFormatError(path, "has no <tracklets> element")
    position = {i: j for j, i in enumerate(indices)}
    tracks = []
    for n, item in enumerate(container.findall("item")):
        try:
            label = item.findtext("objectType", "unknown")
            h, w, l = (float(item.findtext(k, "nan")) for k in ("h", "w", "l"))
            first = int(item.findtext("first_frame", "0"))
            poses = item.find("poses")
            entries = poses.findall("item") if poses is not None else []
            stamps, matrices = [], []
            for k, pose in enumerate(entries):
                frame = first + k
                if frame not in position:
                    continue
                t = [float(pose.findtext(a, "nan")) for a in ("tx", "ty", "tz")]
                yaw = float(pose.findtext("rz", "nan"))
                box = rigid(_rz(yaw), np.array(t)) @ rigid(np.eye(3), np.array([0.0, 0.0, h / 2.0]))
                stamps.append(times[frame])
                matrices.append(world_from_velo[position[frame]] @ box)
        except (TypeError, ValueError) as error:
            raise DataFormatError(path, f"tracklet {n} is malformed ({error})") from error
        if stamps:
            tracks.append(BoxTrack(str(n), label, np.array([l, w, h]), np.array(stamps), np.stack(matrices)))
    return tracks


def _tracking_labels(path: Path, indices: list[int], times: list[float], world_from_rect: np.ndarray) -> list[BoxTrack]:
    """label_02 rows (rectified camera-0 frame, bottom-centred boxes, yaw ry about y) as world box tracks."""
    if not path.is_file():
        raise DataFormatError(path, "the tracking labels are missing (or pass --no-objects)")
    position = {i: j for j, i in enumerate(indices)}
    rows: dict[int, list[tuple[int, str, list[float]]]] = {}
    for n, line in enumerate(read_text(path).splitlines()):
        fields = line.split()
        if not fields:
            continue
        try:
            frame, track_id, label = int(fields[0]), int(fields[1]), fields[2]
            numbers = [float(v) for v in fields[10:17]]
        except (IndexError, ValueError) as error:
            raise DataFormatError(path, f"line {n + 1} is not a KITTI tracking label ({error})") from error
        if track_id < 0 or label == "DontCare" or frame not in position or len(numbers) != 7:
            continue
        rows.setdefault(track_id, []).append((frame, label, numbers))
    tracks = []
    for track_id, entries in sorted(rows.items()):
        entries.sort()
        h, w, l = entries[0][2][:3]
        poses = []
        for frame, _, (_, _, _, x, y, z, ry) in entries:
            forward = np.array([math.cos(ry), 0.0, -math.sin(ry)])  # object x (length) in camera coordinates
            up = np.array([0.0, -1.0, 0.0])
            axes = np.stack([forward, np.cross(up, forward), up], axis=1)  # columns: object x, y (left), z (up)
            box = rigid(axes, np.array([x, y - h / 2.0, z]))
            poses.append(world_from_rect[position[frame]] @ box)
        stamps = np.array([times[frame] for frame, _, _ in entries])
        tracks.append(BoxTrack(str(track_id), entries[0][1], np.array([l, w, h]), stamps, np.stack(poses)))
    return tracks
