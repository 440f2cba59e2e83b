"""The benchmark's motion errors of the ground truth itself (``semdyn.eval.motion_floor``): the LiDAR returns of a
synthetic street, each moved exactly with the object it hit, scored as the benchmark scores a model. What it prints
above zero no model can go below: a moving box's bottom lies on the road, and the road there is scored as the car.

python scripts/motion_floor.py                        # the benchmark's streets (seeds 0 1 2)
python scripts/motion_floor.py --data <sequence>      # a sequence whose points.ply has an `instance` property
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plyfile
import torch
import tyro
from rich.console import Console
from rich.table import Table

from semdyn.data.sequence import read_sequence
from semdyn.errors import DataFormatError, SemdynError
from semdyn.eval.motion_floor import motion_floor
from semdyn.synth import SynthConfig
from semdyn.synth.cache import ensure_scene


@dataclass
class MotionFloorConfig:
    """Which sequences."""

    data: list[Path] = field(default_factory=list)
    """Sequence folders (default: the benchmark's synthetic streets of ``--seeds``, generated on first use)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Street seeds when no ``--data`` is given."""


def _returns(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(points [P, 3] metres, times [P] seconds, instances [P]) of the sequence's points.ply."""
    path = folder / "points.ply"
    if not path.is_file():
        raise DataFormatError(path, "missing: the floor needs the sequence's LiDAR returns")
    try:
        vertex = plyfile.PlyData.read(str(path))["vertex"]
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file, in one line
        raise DataFormatError(path, f"not a readable PLY ({err})") from err
    names = {p.name for p in vertex.properties}
    if not {"x", "y", "z", "time", "instance"} <= names:
        raise DataFormatError(path, "needs x, y, z, time and instance per point (the synthetic streets have them)")
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    return (torch.from_numpy(xyz), torch.from_numpy(np.asarray(vertex["time"], dtype=np.float64)),
            torch.from_numpy(np.asarray(vertex["instance"]).astype(np.int64)))  # fmt: skip


def main(config: MotionFloorConfig) -> None:
    folders = config.data or [ensure_scene(SynthConfig(seed=s), show_progress=True) for s in config.seeds]
    view = Table(title="motion errors of the ground truth (a perfect reconstruction at the LiDAR returns)")
    for col in ("sequence", "traj. err. m", "rigidity err. m", "returns in moving boxes", "of other objects",
                "their highest above the box bottom m"):  # fmt: skip
        view.add_column(col)
    for folder in folders:
        seq = read_sequence(folder)
        tracks = list(seq.objects)
        frame_times = torch.unique(torch.tensor([f.time for f in seq.frames], dtype=torch.float64))
        floor = motion_floor(*_returns(Path(folder)), tracks, frame_times)
        view.add_row(str(folder), f"{floor.trajectory_error:.3f}", f"{floor.rigidity_error:.3f}",
                     str(floor.in_boxes), str(floor.foreign), f"{floor.foreign_height_max:.3f}")  # fmt: skip
    Console(width=200).print(view)


if __name__ == "__main__":
    try:
        main(tyro.cli(MotionFloorConfig))
    except SemdynError as err:
        Console().print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
