"""The synthetic street's LiDAR as a sensor would record it: one sweep per frame in the sensor's own frame, with the
true sensor poses and object tracks beside it (for checking odometry and LiDAR object detection against truth).

Nothing is written to disk; the sweeps are cast by the same ray caster as `generate_scene`'s ``points.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import track

from semdyn.synth.config import SynthConfig
from semdyn.synth.raycast import PrimitiveTable
from semdyn.synth.scene import SceneObject, build_street
from semdyn.synth.writer import _lidar_frame, _road_instance, frame_times, torch_threads


@dataclass
class SyntheticSweeps:
    """LiDAR sweeps of a synthetic street with their ground truth."""

    times: np.ndarray
    """[T] seconds."""
    world_from_sensor: np.ndarray
    """[T, 4, 4] true LiDAR poses (sensor x forward, y left, z up), metres."""
    points: list[np.ndarray]
    """Per sweep, float64 [P_t, 3] returns in the sensor frame, metres."""
    instances: list[np.ndarray]
    """Per sweep, int [P_t] instance id of the surface each return hit (the ids of ``objects``)."""
    objects: list[SceneObject]
    """The street's objects (``dynamic`` flag, ``size`` l w h, ``poses(times)`` box centre to world)."""


def synthetic_sweeps(config: SynthConfig, show_progress: bool = True) -> SyntheticSweeps:
    """Cast one LiDAR sweep per frame of ``config``'s street (``lidar_points_per_frame`` rays each)."""
    config.validate()
    device = torch.device(config.device)
    street = build_street(config)
    times = frame_times(config)
    ego = street.ego.poses(times)
    sensor = ego @ street.lidar_to_ego
    road = _road_instance(street)
    points, instances = [], []
    with torch_threads(config.cpu_threads):
        table = PrimitiveTable(street, times, device)
        frames = track(range(len(times)), "casting LiDAR sweeps") if show_progress else range(len(times))
        for i in frames:
            chunk = _lidar_frame(config, street, table, ego[i], i, float(times[i]), road, device)
            world = chunk["xyz"].astype(np.float64)
            inverse = np.linalg.inv(sensor[i])
            points.append(world @ inverse[:3, :3].T + inverse[:3, 3])
            instances.append(chunk["instance"].astype(np.int64))
    return SyntheticSweeps(times, sensor, points, instances, street.objects)
