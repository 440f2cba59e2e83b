"""Moving objects found in the LiDAR (semdyn.data.sources.lidar_objects) against the synthetic street's true tracks.

Each seed's street is cast as a roof LiDAR records it, put in the world with the true poses (``--poses true``) or the
LiDAR odometry's (``--poses odometry``, open3d: the backend that does not stall on this street), and searched for
moving objects. A true moving object is *visible* in a sweep when at least ``--min-returns`` of its returns lie
within the detector's range; a detection matches it when their box centres are within ``--match-distance`` (bird's
eye view). Reported: recall over visible object-frames, objects found in at least half their visible sweeps,
centre error and 3D box IoU of the matches, and detected tracks that match no moving object (false tracks).

python scripts/benchmark_lidar_objects.py --seeds 0 1 --frames 40
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table
from shapely.geometry import Polygon

from semdyn.data.sources.common import LidarSweep, interpolate_poses
from semdyn.data.sources.lidar_objects import LidarObjectsOptions, moving_objects
from semdyn.data.sources.odometry import OdometryOptions, lidar_odometry
from semdyn.synth import SynthConfig
from semdyn.synth.sweeps import SyntheticSweeps, synthetic_sweeps


@dataclass
class Args:
    """LiDAR moving-object benchmark on synthetic streets."""

    seeds: tuple[int, ...] = (0, 1)
    """Street seeds."""
    frames: int = 40
    """Sweeps per street (10 Hz)."""
    poses: tuple[Literal["true", "odometry"], ...] = ("true", "odometry")
    """Which ego poses put the sweeps in the world."""
    min_returns: int = 15
    """A true object is visible in a sweep with at least this many returns in range."""
    match_distance: float = 2.5
    """Largest bird's-eye centre distance of a match, metres."""
    beams: int = 32
    """LiDAR beams over its 30 degrees (32: about 1 degree apart; 64: about 0.5, like KITTI's HDL-64E)."""
    detector: LidarObjectsOptions = field(default_factory=LidarObjectsOptions)
    """The detector's thresholds."""


def box_polygon(pose: np.ndarray, size: np.ndarray) -> Polygon:
    """Bird's-eye footprint of a box (pose [4, 4], size l w h)."""
    corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * size[:2] / 2
    return Polygon(corners @ pose[:2, :2].T + pose[:2, 3])


def box_iou(pose_a: np.ndarray, size_a: np.ndarray, pose_b: np.ndarray, size_b: np.ndarray) -> float:
    """3D IoU of two upright boxes: footprint intersection times vertical overlap over the union volume."""
    area = box_polygon(pose_a, size_a).intersection(box_polygon(pose_b, size_b)).area
    top = min(pose_a[2, 3] + size_a[2] / 2, pose_b[2, 3] + size_b[2] / 2)
    bottom = max(pose_a[2, 3] - size_a[2] / 2, pose_b[2, 3] - size_b[2] / 2)
    inter = area * max(0.0, top - bottom)
    return float(inter / (np.prod(size_a) + np.prod(size_b) - inter))


def world_sweeps(sweeps: SyntheticSweeps, poses: np.ndarray) -> list[LidarSweep]:
    """The sensor-frame sweeps put in the world by `poses` [T, 4, 4]."""
    return [
        LidarSweep(float(t), pose[:3, 3], lambda p=p, pose=pose: p @ pose[:3, :3].T + pose[:3, 3])
        for t, p, pose in zip(sweeps.times, sweeps.points, poses, strict=True)
    ]


def evaluate(sweeps: SyntheticSweeps, poses: np.ndarray, args: Args) -> dict[str, float]:
    """Run the detector on the sweeps placed by `poses` and score it against the true moving objects."""
    options = args.detector
    start = time.perf_counter()
    tracks = moving_objects(world_sweeps(sweeps, poses), options)
    seconds = time.perf_counter() - start
    to_truth = sweeps.world_from_sensor[0] @ np.linalg.inv(poses[0])  # estimated world -> true world
    moving = [o for o in sweeps.objects if o.dynamic]
    visible = 0
    matched: dict[int, int] = {o.instance_id: 0 for o in moving}
    seen: dict[int, int] = {o.instance_id: 0 for o in moving}
    errors, ious = [], []
    matched_tracks = set()
    for k, t in enumerate(sweeps.times):
        detections = []
        for n, box in enumerate(tracks):
            inside, pose = interpolate_poses(box.times, box.object_to_world, np.array([t]))
            if inside[0] and np.abs(box.times - t).min() < 1e-6:
                detections.append((n, to_truth @ pose[0], box.size))
        taken = set()
        for obj in moving:
            truth = obj.poses(np.array([t]))[0]
            returns = sweeps.instances[k] == obj.instance_id
            near = np.linalg.norm(sweeps.points[k][returns][:, :2], axis=1) < options.max_range
            if near.sum() < args.min_returns:
                continue
            visible += 1
            seen[obj.instance_id] += 1
            candidates = [
                (np.linalg.norm(pose[:2, 3] - truth[:2, 3]), n, pose, size)
                for n, pose, size in detections
                if n not in taken
            ]
            if not candidates:
                continue
            distance, n, pose, size = min(candidates, key=lambda c: c[0])
            if distance > args.match_distance:
                continue
            taken.add(n)
            matched_tracks.add(n)
            matched[obj.instance_id] += 1
            errors.append(np.linalg.norm(pose[:3, 3] - truth[:3, 3]))
            ious.append(box_iou(pose, size, truth, np.asarray(obj.size)))
    found = sum(1 for o in moving if seen[o.instance_id] and matched[o.instance_id] >= seen[o.instance_id] / 2)
    return {
        "moving": len([o for o in moving if seen[o.instance_id]]),
        "found": found,
        "recall": sum(matched.values()) / max(visible, 1),
        "centre": float(np.mean(errors)) if errors else float("nan"),
        "iou": float(np.mean(ious)) if ious else float("nan"),
        "tracks": len(tracks),
        "false": len(tracks) - len(matched_tracks),
        "seconds": seconds,
    }


def main(args: Args) -> None:
    d = args.detector
    table = Table(
        title=f"LiDAR moving objects vs the synthetic street's true tracks ({args.beams} beams, radius {d.radius}, "
        f"cluster cell {d.cluster_cell})"
    )
    columns = ("seed", "poses", "moving objects", "found", "recall (obj-frames)", "centre err m", "3D IoU")
    for column in (*columns, "tracks", "false tracks", "s"):
        table.add_column(column, justify="right")
    for seed in args.seeds:
        config = SynthConfig(
            seed=seed,
            num_frames=args.frames,
            width=32,
            height=32,
            lidar_points_per_frame=args.beams * 720,
            lidar_beams=args.beams,
        )
        sweeps = synthetic_sweeps(config)
        for which in args.poses:
            if which == "true":
                poses = sweeps.world_from_sensor
            else:
                relative = lidar_odometry([lambda p=p: p for p in sweeps.points], OdometryOptions(backend="open3d"))
                poses = sweeps.world_from_sensor[0] @ relative
            r = evaluate(sweeps, poses, args)
            table.add_row(
                str(seed),
                which,
                str(r["moving"]),
                str(r["found"]),
                f"{r['recall']:.2f}",
                f"{r['centre']:.2f}",
                f"{r['iou']:.2f}",
                str(r["tracks"]),
                str(r["false"]),
                f"{r['seconds']:.1f}",
            )
    Console(width=150).print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
