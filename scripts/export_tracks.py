"""Export each rigid object node's 6-DoF track of a trained run as JSON (time in seconds, object-to-world in metres),
and score it against the sequence's ground-truth tracks when it has them.

python scripts/export_tracks.py --checkpoint outputs/semdyn-cpu                 # -> outputs/semdyn-cpu/tracks.json
python scripts/export_tracks.py --checkpoint outputs/semdyn-cpu --output t.json
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from semdyn.errors import SemdynError
from semdyn.eval.tracks import node_tracks, track_errors, write_tracks
from semdyn.export import load_run
from semdyn.semantics.evaluate import eval_tracks


@dataclass
class ExportTracksConfig:
    """Which run, where."""

    checkpoint: Path
    """A semdyn-train checkpoint (step-*.pt) or run folder (its newest checkpoint)."""
    output: Path | None = None
    """The JSON file; default <run folder>/tracks.json."""
    device: str = "auto"
    """auto, cpu or cuda."""


def main(config: ExportTracksConfig) -> Path:
    run = load_run(config.checkpoint, config.device)
    truth = eval_tracks(run.data) if run.data.sequence.objects else []
    table = run.groups_table
    tracks = node_tracks(run.model, run.data, table.class_names if table is not None else None, truth)
    errors = track_errors(tracks, truth) if truth else {}
    out = config.output or run.checkpoint.parent.parent / "tracks.json"
    meta = {"checkpoint": str(run.checkpoint), "step": run.step, "errors_against_ground_truth": errors}
    write_tracks(out, tracks, meta)
    view = Table(title=f"{len(tracks)} object tracks -> {out}")
    for col in ("node", "class", "Gaussians", "poses", "matched object", "transl. err. m", "heading err. deg (max)"):
        view.add_column(col)
    by_node = {e["node"]: (k, e) for k, e in errors.items()}
    for t in tracks:
        k, e = by_node.get(t.node, (t.matched_id, {}))
        te, hm, hx = (e.get(key, math.nan) for key in ("translation_error", "heading_error_mean", "heading_error_max"))
        view.add_row(str(t.node), t.class_name, f"{t.num_gaussians:,}", str(len(t.times)), str(k),
                     f"{te:.3f}", f"{hm:.2f} ({hx:.2f})")  # fmt: skip
    Console().print(view)
    return out


if __name__ == "__main__":
    try:
        main(tyro.cli(ExportTracksConfig))
    except SemdynError as err:
        Console().print(f"[bold red]error:[/bold red] {err}")
        sys.exit(2)
