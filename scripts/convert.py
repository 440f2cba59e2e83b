"""Convert a public driving dataset to a semdyn sequence folder (shared/DATA_FORMAT.md).

python scripts/convert.py waymo --data waymo/training --segment <context_name> --output data/waymo-seg
python scripts/convert.py nuscenes --data data/nuscenes --version v1.0-mini --scene scene-0061 --output data/nusc-0061
python scripts/convert.py kitti --data kitti/2011_09_26/2011_09_26_drive_0001_sync --output data/kitti-0001
python scripts/convert.py kitti --data kitti_tracking/training --sequence 0001 --output data/kitti-track-0001
python scripts/convert.py kitti --data <drive without oxts/> --output data/kitti-lidar-poses   # LiDAR odometry
python scripts/convert.py kitti --data kitti_odometry/dataset --sequence 06 --output data/kitti-odo-06
python scripts/convert.py images --data dashcam.mp4 --output data/dashcam          # structure from motion
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Union

import tyro
from rich.console import Console

from semdyn.data.sources import ConvertOptions, write_sequence
from semdyn.data.sources.registry import SOURCES, source_of
from semdyn.errors import SemdynError

Options = Union[tuple(Annotated[s.options, tyro.conf.subcommand(name)] for name, s in SOURCES.items())]  # noqa: UP007
"""One subcommand per converter of :data:`semdyn.data.sources.registry.SOURCES`."""


def main(options: ConvertOptions) -> Path:
    """Read the dataset, write the sequence, print where it went."""
    source = source_of(options)
    start = time.perf_counter()
    scene = source.load(options)
    path = write_sequence(scene, options)
    points = "sets of SfM points (by first frame seen)" if scene.dataset == "images" else "LiDAR sweeps"
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    Console().print(
        f"wrote {path}: {len(scene.frames)} images, {len(scene.sweeps)} {points}, {len(scene.tracks)} tracks "
        f"in {time.perf_counter() - start:.1f} s ({size / 2**20:.1f} MiB)"
    )
    return path


def entrypoint() -> None:
    """Console entry point: errors the user can fix end in one line, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        main(tyro.cli(Options))
    except SemdynError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()
