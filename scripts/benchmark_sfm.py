"""Structure from motion (scripts/convert.py images) against KITTI odometry ground truth: ATE after a similarity
alignment, as a percentage of the path length.

python scripts/benchmark_sfm.py --frames ../shared/data/kitti-odometry-06-frames-000-050/dataset/sequences/06/image_0 \
    --poses ../shared/data/kitti-odometry-06-frames-000-050/dataset/poses/06.txt --focal 707.0912
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from semdyn.data.sources.alignment import trajectory_error
from semdyn.data.sources.images import ImagesOptions, load
from semdyn.data.sources.kitti_odometry import read_odometry_poses
from semdyn.errors import SemdynError


@dataclass
class Args:
    """SfM benchmark on a folder of frames with known poses (KITTI odometry layout)."""

    frames: Path
    """Folder of frames (e.g. sequences/06/image_0)."""
    poses: Path
    """The KITTI poses file of those frames (poses/06.txt)."""
    focal: float | None = None
    """Focal length of the frames in pixels (P0[0, 0]); COLMAP's guess when omitted."""
    sfm_sizes: tuple[int, ...] = (1280,)
    """Longer side of the SfM copies to compare."""
    threads: int = 2
    """CPU threads."""


def main(args: Args) -> None:
    truth = read_odometry_poses(args.poses)
    table = Table(title=f"Structure from motion vs {args.poses.name} (Sim(3) alignment)")
    for column in ("sfm size", "frames", "registered", "path m", "ATE m", "ATE % path", "max m", "wall s"):
        table.add_column(column, justify="right")
    for size in args.sfm_sizes:
        options = ImagesOptions(data=args.frames, focal=args.focal, sfm_size=size, threads=args.threads)
        start = time.perf_counter()
        count = len(list(args.frames.glob("*.png")))
        try:
            scene = load(options)
        except SemdynError as err:  # too few registered: a row of the table, not the end of it
            table.add_row(str(size), str(count), "failed", "-", "-", "-", "-", f"{time.perf_counter() - start:.0f}")
            Console(stderr=True).print(f"sfm size {size}: {err}")
            continue
        seconds = time.perf_counter() - start
        frames = sorted(scene.frames, key=lambda f: f.time)
        index = [int(Path(f.image_source).stem) for f in frames]
        error = trajectory_error(np.array([f.camera_to_world for f in frames]), truth[index], with_scale=True)
        table.add_row(
            str(size),
            str(count),
            str(len(frames)),
            f"{error.path_length:.1f}",
            f"{error.rmse:.3f}",
            f"{error.percent_of_path:.3f}",
            f"{error.max:.3f}",
            f"{seconds:.0f}",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
