"""KITTI odometry (visual odometry benchmark) sequences -> semdyn sequence.

Layout read (``--data dataset --sequence 06``, or ``--data dataset/sequences/06``)::

    sequences/<nn>/image_0/<i>.png, image_1/    left and right grey cameras (converted to RGB)
    sequences/<nn>/image_2/<i>.png, image_3/    left and right colour cameras (the colour download)
    sequences/<nn>/calib.txt                    P0..P3 (rectified projections), Tr (Velodyne -> camera 0);
                                                keyed ("P0: ...") or, as some copies have it, the bare numbers
                                                in that order, 12 per matrix
    sequences/<nn>/times.txt                    optional: seconds per frame (else --frame-rate)
    sequences/<nn>/velodyne/<i>.bin             optional: float32 x y z reflectance
    poses/<nn>.txt                              camera 0's pose per frame, 3x4 row-major (sequences 00-10)

Camera i of a stereo rig is rectified camera 0 shifted by ``K^-1 P_i[:, 3]``; its pose is camera 0's composed with
that shift. The world is camera 0's first frame turned to z up (x forward, y left, z up, metres). Without a poses
file the poses come from the Velodyne scans by LiDAR odometry, through ``Tr``. Odometry sequences have no object
labels: with Velodyne scans, the moving objects are found in them (``--objects-from``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from semdyn.data.images import image_size
from semdyn.data.sources.common import CameraFrame, CameraModel, SourceScene, rigid, select_cameras, select_range
from semdyn.data.sources.kitti_files import KittiOptions, image_loader, scan_loader, velodyne_sweeps
from semdyn.data.sources.lidar_objects import moving_objects
from semdyn.data.sources.odometry import lidar_odometry, resolve_backend
from semdyn.errors import DataFormatError, InputError, read_text

log = logging.getLogger("semdyn")

CAMERAS = ("image_0", "image_1", "image_2", "image_3")
"""Camera folders: 0/1 the grey stereo pair, 2/3 the colour one."""
Z_UP_FROM_CAMERA = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
"""Turns camera axes (x right, y down, z forward) into driving axes (x forward, y left, z up)."""
CALIB_ORDER = ("P0", "P1", "P2", "P3", "Tr")
"""The matrices of an odometry calib.txt, in the order of the devkit's files."""


def is_odometry_layout(data: Path) -> bool:
    """Whether ``data`` is an odometry dataset root (sequences/, poses/) or one of its sequence folders."""
    return (
        (data / "sequences").is_dir()
        or ((data / "calib.txt").is_file() and (data / "image_0").is_dir())
        or ((data / "calib.txt").is_file() and (data / "image_2").is_dir())
    )


def load(options: KittiOptions) -> SourceScene:
    """Read the selected frames of a KITTI odometry sequence into a `SourceScene` (`kitti.load` dispatches here)."""
    folder, poses_path = _sequence_folder(Path(options.data), options.sequence)
    available = [c for c in CAMERAS if (folder / c).is_dir()]
    requested = options.cameras if options.cameras is not None else None
    cameras = select_cameras(available, requested, f"KITTI odometry sequence {folder.name}")
    images = {c: sorted((folder / c).glob("*.png")) for c in cameras}
    for camera, paths in images.items():
        if not paths:
            raise DataFormatError(folder / camera, "holds no .png images")
    calib = read_odometry_calib(folder / "calib.txt")
    for camera in cameras:
        if f"P{camera[-1]}" not in calib:
            raise DataFormatError(folder / "calib.txt", f"has no P{camera[-1]} for {camera}")
    times_path = folder / "times.txt"
    count = min(len(v) for v in images.values())
    if times_path.is_file():
        all_times = _read_times(times_path)
    else:
        log.info("%s has no times.txt: frame times at the nominal %g Hz (--frame-rate)", folder, options.frame_rate)
        all_times = [i / options.frame_rate for i in range(count)]
    count = min(count, len(all_times))
    velodyne = folder / "velodyne"
    use_lidar_poses = options.poses == "lidar" or (options.poses == "auto" and not poses_path.is_file())
    if use_lidar_poses:
        if not velodyne.is_dir() or "Tr" not in calib:
            raise DataFormatError(
                poses_path,
                "the ground-truth poses are missing and the sequence has no velodyne/ scans with a Tr calibration "
                "to estimate them from; add poses/<nn>.txt or the velodyne download (image-only: scripts/convert.py "
                "images)",
            )
        count = min(count, len(list(velodyne.glob("*.bin"))))
    else:
        if options.poses == "oxts":
            raise InputError("--poses oxts: a KITTI odometry sequence has no oxts; use auto, or lidar")
        cam0_poses = read_odometry_poses(poses_path)
        count = min(count, len(cam0_poses))
    indices = list(select_range(count, options.frames, f"frames of KITTI odometry sequence {folder.name}"))
    times = [all_times[i] - all_times[indices[0]] for i in range(count)]
    velo_to_cam0 = rigid(calib["Tr"][:, :3], calib["Tr"][:, 3]) if "Tr" in calib else None
    if use_lidar_poses:
        backend = resolve_backend(options.odometry.backend)
        log.info("%s: ego poses from LiDAR odometry (%s) on %d Velodyne scans", folder, backend, len(indices))
        velo = lidar_odometry([scan_loader(velodyne / f"{i:06d}.bin") for i in indices], options.odometry)
        assert velo_to_cam0 is not None  # checked above: LiDAR poses need the Tr calibration
        world_from_cam0 = velo @ np.linalg.inv(velo_to_cam0)
        world_from_cam0 = np.linalg.inv(world_from_cam0[0]) @ world_from_cam0
        pose_note = f"LiDAR odometry ({backend})"
    else:
        world_from_cam0 = np.linalg.inv(cam0_poses[indices[0]]) @ cam0_poses[indices]
        pose_note = str(poses_path.name)
    world_from_cam0 = Z_UP_FROM_CAMERA @ world_from_cam0
    frames = []
    for camera in cameras:
        projection = calib[f"P{camera[-1]}"]
        k = projection[:, :3]
        cam_from_cam0 = rigid(np.eye(3), np.linalg.solve(k, projection[:, 3]))
        cam0_from_cam = np.linalg.inv(cam_from_cam0)
        width, height = image_size(images[camera][0])
        model = CameraModel(k[0, 0], k[1, 1], k[0, 2], k[1, 2], width, height)
        for j, i in enumerate(indices):
            path = images[camera][i]
            pose = world_from_cam0[j] @ cam0_from_cam
            frames.append(CameraFrame(camera, times[i], pose, model, image_loader(path), image_source=path))
    sweeps, tracks = [], []
    lidar_objects = options.objects and options.objects_from != "labels" and velodyne.is_dir()
    if options.objects_from == "lidar" and not lidar_objects and options.objects:
        raise DataFormatError(velodyne, "--objects-from lidar needs the sequence's Velodyne scans, which are missing")
    if (options.lidar or lidar_objects) and velodyne.is_dir() and velo_to_cam0 is not None:
        sweeps = velodyne_sweeps(velodyne, "{:06d}.bin", indices, times, world_from_cam0 @ velo_to_cam0)
    if lidar_objects and sweeps:
        log.info("KITTI odometry has no object labels: moving objects found in the LiDAR sweeps")
        tracks = moving_objects(sweeps, options.lidar_objects)
    sweeps = sweeps if options.lidar else []
    info = {
        "sequence": folder.name,
        "data": str(folder.resolve()),
        "layout": "kitti odometry",
        "frame_indices": [indices[0], indices[-1]],
        "poses": pose_note,
        "time_origin": f"frame {indices[0]}" + ("" if times_path.is_file() else f" ({options.frame_rate:g} Hz)"),
        "world": "camera 0 of the first frame, turned to x forward, y left, z up",
    }
    return SourceScene(dataset="kitti", frames=frames, sweeps=sweeps, tracks=tracks, info=info)


def _sequence_folder(data: Path, sequence: str | None) -> tuple[Path, Path]:
    """The sequence folder and its poses file from --data (root or sequence folder) and --sequence."""
    if (data / "sequences").is_dir():
        found = sorted(p.name for p in (data / "sequences").iterdir() if p.is_dir())
        if sequence is None:
            if len(found) != 1:
                raise InputError(f"{data / 'sequences'} holds {len(found)} sequences; choose one with --sequence")
            sequence = found[0]
        if sequence not in found:
            raise DataFormatError(data / "sequences" / sequence, "the --sequence folder does not exist")
        folder = data / "sequences" / sequence
    else:
        folder = data
        if sequence is not None and sequence != folder.name:
            raise InputError(f"--sequence {sequence} disagrees with --data {data} (sequence {folder.name})")
    return folder, folder.parent.parent / "poses" / f"{folder.name}.txt"


def read_odometry_calib(path: Path) -> dict[str, np.ndarray]:
    """P0..P3 ([3, 4]) and Tr ([3, 4], when present) of an odometry calib.txt, keyed or bare numbers."""
    text = read_text(path)
    keyed = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)", line)
        if match:
            keyed[match.group(1)] = match.group(2)
    try:
        if keyed:
            values = {k: np.array([float(v) for v in keyed[k].split()]) for k in CALIB_ORDER if k in keyed}
        else:
            numbers = np.array([float(v) for v in text.split()])
            if numbers.size == 0 or numbers.size % 12:
                raise DataFormatError(path, f"holds {numbers.size} numbers, not 12 per matrix (P0 P1 P2 P3 Tr)")
            values = dict(zip(CALIB_ORDER, numbers.reshape(-1, 12), strict=False))
    except ValueError as err:
        raise DataFormatError(path, f"is not a KITTI odometry calibration ({err})") from err
    out = {}
    for key, value in values.items():
        if value.size != 12:
            raise DataFormatError(path, f"'{key}' has {value.size} numbers, expected 12")
        out[key] = value.reshape(3, 4)
    return out


def read_odometry_poses(path: Path) -> np.ndarray:
    """Camera 0's poses of a poses/<nn>.txt: float64 [N, 4, 4] (12 numbers per line, 3x4 row-major)."""
    if not path.is_file():
        raise DataFormatError(path, "the poses file is missing")
    poses = []
    for n, line in enumerate(read_text(path).splitlines()):
        if not line.strip():
            continue
        try:
            numbers = np.array([float(v) for v in line.split()])
        except ValueError:
            numbers = np.zeros(0)
        if numbers.size != 12:
            raise DataFormatError(path, f"line {n + 1} is not a pose (12 numbers: a 3x4 matrix, row-major)")
        poses.append(np.vstack([numbers.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]]))
    if not poses:
        raise DataFormatError(path, "holds no poses")
    return np.stack(poses)


def _read_times(path: Path) -> list[float]:
    try:
        return [float(line) for line in read_text(path).split()]
    except ValueError as err:
        raise DataFormatError(path, "is not one time in seconds per line") from err
