"""LiDAR odometry against the synthetic street's true ego poses: absolute trajectory error per backend.

Each seed's street is cast as a roof LiDAR would record it (one sweep per frame in the sensor frame, the full beam x
azimuth grid), registered by `semdyn.data.sources.odometry.lidar_odometry`, and compared with the true sensor poses
after a rigid alignment (metres, and as a percentage of the path length). ``returns`` says which points were
registered: ``all`` (what a user has), or ``static`` (the moving objects' returns removed with the true instance ids:
how much the moving traffic costs).

python scripts/benchmark_odometry.py --seeds 0 1 --frames 40
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from semdyn.data.sources.alignment import trajectory_error
from semdyn.data.sources.odometry import OdometryOptions, lidar_odometry, resolve_backend
from semdyn.synth import SynthConfig
from semdyn.synth.sweeps import synthetic_sweeps


@dataclass
class Args:
    """Odometry benchmark on synthetic streets."""

    seeds: tuple[int, ...] = (0, 1)
    """Street seeds."""
    frames: int = 40
    """Frames (sweeps) per street, 10 Hz."""
    backends: tuple[str, ...] = ("kiss-icp", "open3d")
    """Odometry backends to compare (those not installed are skipped)."""
    beams: int = 32
    """LiDAR beams."""
    azimuth_steps: int = 720
    """LiDAR azimuth steps per revolution (every ray is kept)."""


def main(args: Args) -> None:
    table = Table(title="LiDAR odometry vs the synthetic street's true poses (rigid alignment)")
    for column in ("seed", "backend", "returns", "sweeps", "path m", "ATE m", "ATE % path", "max m", "s"):
        table.add_column(column, justify="right")
    for seed in args.seeds:
        config = SynthConfig(
            seed=seed,
            num_frames=args.frames,
            width=32,
            height=32,
            lidar_beams=args.beams,
            lidar_azimuth_steps=args.azimuth_steps,
            lidar_points_per_frame=args.beams * args.azimuth_steps,
        )
        sweeps = synthetic_sweeps(config)
        truth = np.linalg.inv(sweeps.world_from_sensor[0]) @ sweeps.world_from_sensor
        moving = [o.instance_id for o in sweeps.objects if o.dynamic]
        static = [p[~np.isin(i, moving)] for p, i in zip(sweeps.points, sweeps.instances, strict=True)]
        for backend in args.backends:
            try:
                resolve_backend(backend)  # type: ignore[arg-type]
            except Exception as err:  # noqa: BLE001 - reported in the table
                table.add_row(str(seed), backend, "-", "-", "-", "-", "-", "-", str(err))
                continue
            for name, points in (("all", sweeps.points), ("static", static)):
                start = time.perf_counter()
                estimate = lidar_odometry([lambda p=p: p for p in points], OdometryOptions(backend=backend))
                seconds = time.perf_counter() - start
                error = trajectory_error(estimate, truth)
                table.add_row(
                    str(seed),
                    backend,
                    name,
                    str(len(points)),
                    f"{error.path_length:.1f}",
                    f"{error.rmse:.3f}",
                    f"{error.percent_of_path:.2f}",
                    f"{error.max:.3f}",
                    f"{seconds:.1f}",
                )
    Console(width=150).print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
