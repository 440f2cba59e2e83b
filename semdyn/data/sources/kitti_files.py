"""What the KITTI raw, tracking and odometry loaders share: their options and the file readers (images, Velodyne
scans, lazy sweeps in the world), so that :mod:`semdyn.data.sources.kitti` can hand an odometry layout to
:mod:`semdyn.data.sources.kitti_odometry` without the two importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from semdyn.data.sources.common import ConvertOptions, LidarSweep, transform_points
from semdyn.data.sources.lidar_objects import LidarObjectsOptions
from semdyn.data.sources.odometry import OdometryOptions
from semdyn.errors import DataFormatError, InputError

VELODYNE_POINT_BYTES = 16
"""A Velodyne .bin holds float32 x, y, z, reflectance per point."""


@dataclass
class KittiOptions(ConvertOptions):
    """Convert one KITTI raw drive (the _sync folder), tracking sequence (--data training --sequence 0001) or odometry
    sequence (--data dataset --sequence 06). Cameras: raw image_02 image_03 (colour), image_00 image_01 (grey);
    default image_02 and image_03. Odometry: image_0 image_1 (grey, as RGB), image_2 image_3; default all present."""

    data: Path = Path("kitti/2011_09_26/2011_09_26_drive_0001_sync")
    """Raw: the drive folder (``<date>_drive_<nnnn>_sync``); tracking: the split folder (``training``)."""
    calib: Path | None = None
    """Raw: folder of calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt; default the drive's parent."""
    sequence: str | None = None
    """Tracking or odometry: the sequence under --data (e.g. 0001, 06); may be omitted when there is one."""
    frame_rate: float = 10.0
    """Frame rate in Hz that gives the frame times when there is no timestamps.txt / times.txt (KITTI: 10)."""
    poses: Literal["auto", "oxts", "lidar"] = "auto"
    """Ego poses from ``oxts`` (raw: GPS/IMU), from the Velodyne scans by ``lidar`` odometry, or ``auto`` (oxts,
    or an odometry sequence's poses/<nn>.txt, when there; else LiDAR odometry)."""
    odometry: OdometryOptions = field(default_factory=OdometryOptions)
    """LiDAR odometry settings (used when the poses come from the LiDAR)."""
    objects_from: Literal["auto", "labels", "lidar"] = "auto"
    """Object tracks from the dataset's ``labels`` (raw tracklet_labels.xml, tracking label_02), from moving objects
    found in the ``lidar`` sweeps (no annotations, no model weights), or ``auto`` (labels when present, else LiDAR)."""
    lidar_objects: LidarObjectsOptions = field(default_factory=LidarObjectsOptions)
    """Thresholds of the LiDAR moving-object finder (used when objects come from the LiDAR)."""

    def validate(self) -> None:
        """Check the values. Raises `InputError` naming the option."""
        super().validate()
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise InputError(f"--frame-rate must be a positive number of Hz, got {self.frame_rate}")
        if self.poses not in ("auto", "oxts", "lidar"):
            raise InputError(f"--poses must be auto, oxts or lidar, got {self.poses!r}")
        if self.objects_from not in ("auto", "labels", "lidar"):
            raise InputError(f"--objects-from must be auto, labels or lidar, got {self.objects_from!r}")
        self.odometry.validate()
        self.lidar_objects.validate()


def image_loader(path: Path, what: str = "the KITTI image") -> Callable[[], np.ndarray]:
    """Loads ``path`` as uint8 RGB [H, W, 3] when called (grey images become RGB); a missing or unreadable file is
    one :class:`DataFormatError` naming it (``what`` says what it is)."""

    def load() -> np.ndarray:
        if not path.is_file():
            raise DataFormatError(path, f"{what} is missing")
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError) as err:  # PIL: not an image, truncated
            raise DataFormatError(path, f"is not a readable image ({type(err).__name__}: {err})") from err

    return load


def velodyne_sweeps(
    folder: Path, name: str, indices: list[int], times: list[float], world_from_velo: np.ndarray
) -> list[LidarSweep]:
    """Lazy Velodyne sweeps ``folder / name.format(i)`` (times indexed by frame, poses by selection order)."""
    if not folder.is_dir():
        raise DataFormatError(folder, "the Velodyne scans are missing (or pass --no-lidar)")
    sweeps = []
    for j, i in enumerate(indices):
        path = folder / name.format(i)
        pose = world_from_velo[j]

        def load(path: Path = path, pose: np.ndarray = pose) -> np.ndarray:
            return transform_points(pose, read_velodyne(path)[:, :3])

        sweeps.append(LidarSweep(times[i], pose[:3, 3], load))
    return sweeps


def read_velodyne(path: Path) -> np.ndarray:
    """A Velodyne .bin scan: float32 [P, 4] (x, y, z metres in the sensor frame, reflectance)."""
    if not path.is_file():
        raise DataFormatError(path, "the Velodyne scan is missing (or pass --no-lidar, or a --frames range without it)")
    size = path.stat().st_size
    if size % VELODYNE_POINT_BYTES:
        raise DataFormatError(
            path,
            f"is {size} bytes, not a multiple of {VELODYNE_POINT_BYTES}, so not a Velodyne scan (float32 x, y, z, "
            "reflectance per point): it is truncated or another file; download it again or leave its frame out "
            "with --frames",
        )
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def scan_loader(path: Path) -> Callable[[], np.ndarray]:
    """Loads a scan's points in the sensor frame for the odometry, float64 [P, 3]; refuses an empty one."""

    def load() -> np.ndarray:
        points = read_velodyne(path)
        if len(points) == 0:
            raise DataFormatError(path, "holds no points, so the LiDAR odometry cannot place its frame")
        return points[:, :3].astype(np.float64)

    return load


__all__ = ["VELODYNE_POINT_BYTES", "KittiOptions", "image_loader", "read_velodyne", "scan_loader", "velodyne_sweeps"]
