"""The synthetic street generator's configuration: one typed dataclass, validated in one place."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from semdyn.errors import InputError

GENERATOR_VERSION = "1.0.0"
"""Bumped whenever the generator's output changes for a fixed config (it is part of the cache key)."""

CAMERA_NAMES: tuple[str, ...] = ("front", "front_left", "front_right", "side_left", "side_right")
"""Rig cameras in the order they are switched on by ``num_cameras``."""

SEMANTIC_CLASSES: tuple[str, ...] = (
    "sky",
    "road",
    "lane_marking",
    "sidewalk",
    "building",
    "pole",
    "vegetation",
    "car",
    "pedestrian",
)
"""Class names of the 8-bit semantic images; the pixel value is the index in this tuple (0 = sky)."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic street sequence (same config -> identical files)."""

    seed: int = 0
    """Random seed of the street layout, textures, colours and LiDAR subsampling."""
    num_cameras: int = 3
    """Number of rig cameras, 1 to 5, taken in order from front, front_left, front_right, side_left, side_right."""
    num_frames: int = 40
    """Number of timestamps (all cameras fire together at each)."""
    width: int = 320
    """Image width in pixels."""
    height: int = 192
    """Image height in pixels."""
    fps: float = 10.0
    """Frame rate of the rig in Hz."""
    horizontal_fov_deg: float = 70.0
    """Horizontal field of view of every camera in degrees (square pixels, principal point at the centre)."""
    ego_speed: float = 7.0
    """Mean speed of the ego vehicle in metres per second."""
    pedestrian: bool = True
    """Add a pedestrian walking along the right sidewalk (a dynamic object of class pedestrian)."""
    num_parked_cars: int = 6
    """Number of parked (static) cars along both kerbs."""
    lidar_beams: int = 32
    """Number of vertical beams of the roof-mounted spinning LiDAR."""
    lidar_azimuth_steps: int = 720
    """Azimuth steps per revolution of the LiDAR (rays per beam before subsampling)."""
    lidar_points_per_frame: int = 4000
    """Rays kept per frame after random subsampling of the beam x azimuth grid (bounds the PLY size)."""
    max_distance: float = 120.0
    """Far limit of camera and LiDAR rays in metres; nothing farther is drawn (sky instead)."""
    device: str = "cpu"
    """Torch device of the ray caster ("cpu" or "cuda"); does not change the output beyond float rounding."""
    chunk_rays: int = 16384
    """Rays per ray-casting batch (memory vs speed)."""
    cpu_threads: int = 1
    """Torch CPU threads while rendering (1 is fastest on a busy shared machine; 0 keeps torch's setting)."""

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first option that is out of range."""
        checks: list[tuple[str, bool, str]] = [
            ("num_cameras", 1 <= self.num_cameras <= len(CAMERA_NAMES), f"between 1 and {len(CAMERA_NAMES)}"),
            ("num_frames", self.num_frames >= 1, "at least 1"),
            ("width", 16 <= self.width <= 8192, "between 16 and 8192"),
            ("height", 16 <= self.height <= 8192, "between 16 and 8192"),
            ("fps", self.fps > 0, "positive"),
            ("horizontal_fov_deg", 10.0 <= self.horizontal_fov_deg <= 150.0, "between 10 and 150"),
            ("ego_speed", 0.0 <= self.ego_speed <= 30.0, "between 0 and 30 m/s"),
            ("num_parked_cars", 0 <= self.num_parked_cars <= 100, "between 0 and 100"),
            ("lidar_beams", self.lidar_beams >= 1, "at least 1"),
            ("lidar_azimuth_steps", self.lidar_azimuth_steps >= 8, "at least 8"),
            ("lidar_points_per_frame", self.lidar_points_per_frame >= 0, "non-negative"),
            ("max_distance", self.max_distance > 5.0, "more than 5 m"),
            ("chunk_rays", self.chunk_rays >= 256, "at least 256"),
            ("cpu_threads", self.cpu_threads >= 0, "non-negative"),
            ("seed", self.seed >= 0, "non-negative"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"SynthConfig.{name} must be {expected}, got {getattr(self, name)!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InputError(f"SynthConfig.device must be 'cpu' or 'cuda[:i]', got {self.device!r}")

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Names of the cameras in use."""
        return CAMERA_NAMES[: self.num_cameras]

    @property
    def duration(self) -> float:
        """Time of the last frame in seconds."""
        return (self.num_frames - 1) / self.fps

    def output_params(self) -> dict[str, object]:
        """The options that change the output (device, chunking and threads do not), as a JSON-able dict."""
        params = dataclasses.asdict(self)
        params.pop("device")
        params.pop("chunk_rays")
        params.pop("cpu_threads")
        return params

    def cache_key(self) -> str:
        """Hash of the output-changing options and the generator version (16 hex digits)."""
        text = json.dumps({"version": GENERATOR_VERSION, **self.output_params()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
