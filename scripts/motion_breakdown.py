"""Which Gaussians make a trained run's trajectory and rigidity errors: per moving ground-truth object, the Gaussians
the benchmark scores as that object's, split by the scene-graph node that holds them (the object's own node, the
background, the deformable node), with their share of the error and how many lie on the road under the box.

python scripts/motion_breakdown.py --checkpoint outputs/semdyn-cpu                 # a table
python scripts/motion_breakdown.py --checkpoint outputs/semdyn-cpu --json b.json   # and the rows as JSON
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from semdyn.errors import InputError, SemdynError
from semdyn.eval.motion_breakdown import motion_breakdown
from semdyn.export import load_run


@dataclass
class MotionBreakdownConfig:
    """Which run."""

    checkpoint: Path
    """A semdyn-train checkpoint (step-*.pt) or run folder (its newest checkpoint)."""
    road_band: float = 0.1
    """Metres above a box's bottom within which a Gaussian counts as on the road."""
    json: Path | None = None
    """Also write the rows here."""
    device: str = "auto"
    """auto, cpu or cuda."""
    data: Path | None = None
    """The run's sequence folder, where it has moved since training (default: the path in the run's config)."""


def main(config: MotionBreakdownConfig) -> None:
    if not config.road_band >= 0:
        raise InputError(f"--road-band must be a non-negative number of metres, got {config.road_band}")
    run = load_run(config.checkpoint, config.device, data_dir=config.data)
    if not run.data.sequence.objects:
        raise InputError(f"{run.checkpoint}: its sequence has no ground-truth objects to break the errors down by")
    found = motion_breakdown(run.model, run.data, list(run.data.sequence.objects), config.road_band)
    view = Table(title=f"motion errors by holder: {run.checkpoint}")
    for col in ("object", "holder", "Gaussians", "traj. err. m", "share", f"on road (<{config.road_band} m)"):
        view.add_column(col)
    rigid = Table(title="rigidity error (m) of each moving object's box")
    for col in ("object", "all its Gaussians", "object nodes' only"):
        rigid.add_column(col)
    for obj in found:
        for r in obj.rows:
            view.add_row(str(r.object_id), r.holder, str(r.gaussians), f"{r.trajectory_error:.3f}",
                         f"{100 * r.error_share:.0f} %", str(r.on_road), end_section=r is obj.rows[-1])  # fmt: skip
        rigid.add_row(str(obj.object_id), f"{obj.rigidity_all:.3f}", f"{obj.rigidity_objects:.3f}")
    Console().print(view)
    Console().print(rigid)
    if config.json is not None:
        body = [{**dataclasses.asdict(o)} for o in found]
        config.json.write_text(json.dumps({"checkpoint": str(run.checkpoint), "objects": body}, indent=1))
        Console().print(f"rows: {config.json}")


if __name__ == "__main__":
    try:
        main(tyro.cli(MotionBreakdownConfig))
    except SemdynError as err:
        Console().print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
