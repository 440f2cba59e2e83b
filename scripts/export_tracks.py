"""Export each rigid object node's 6-DoF track of a trained run as JSON (time in seconds, object-to-world in metres),
and score it against the sequence's ground-truth tracks when it has them.

python scripts/export_tracks.py --checkpoint outputs/semdyn-cpu                 # -> outputs/semdyn-cpu/tracks.json
python scripts/export_tracks.py --checkpoint outputs/semdyn-cpu --output t.json
The plot (tracks.png beside the JSON) shows each object's path from above, its heading every few frames, and the
ground-truth track it was matched to (dashed), in metres.
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
from semdyn.outputs import make_output_folder


@dataclass
class ExportTracksConfig:
    """Which run, where."""

    checkpoint: Path
    """A semdyn-train checkpoint (step-*.pt) or run folder (its newest checkpoint)."""
    output: Path | None = None
    """The JSON file; default <run folder>/tracks.json."""
    plot: bool = True
    """Also write <output stem>.png: the tracks from above beside the ground truth."""
    device: str = "auto"
    """auto, cpu or cuda."""
    data: Path | None = None
    """The run's sequence folder, where it has moved since training (default: the path in the run's config)."""


def main(config: ExportTracksConfig) -> Path:
    run = load_run(config.checkpoint, config.device, data_dir=config.data)
    out = config.output or run.checkpoint.parent.parent / "tracks.json"
    make_output_folder(out.parent, "--output")
    truth = list(run.data.sequence.objects) if run.data.sequence.objects else []
    table = run.groups_table
    tracks = node_tracks(run.model, run.data, table.class_names if table is not None else None, truth)
    errors = track_errors(tracks, truth) if truth else {}
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
    if config.plot:
        Console().print(f"plot: {plot_tracks(out.with_suffix('.png'), tracks, truth)}")
    return out


def plot_tracks(path: Path, tracks: list, truth: list) -> Path:
    """Top view (world x, y in metres) of every node track (solid, heading arrows) and the ground-truth tracks of
    the moving objects (dashed), one colour per matched object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    colours = plt.get_cmap("tab10")
    for k, obj in enumerate(o for o in truth if o.dynamic):
        xy = obj.object_to_world[:, :2, 3].numpy()
        ax.plot(xy[:, 0], xy[:, 1], "--", color=colours(k % 10), lw=1, label=f"truth {obj.id} ({obj.label})")
    ids = [o.id for o in truth if o.dynamic]
    for t in tracks:
        k = ids.index(t.matched_id) if t.matched_id in ids else 9
        m = t.object_to_world.numpy()
        ax.plot(m[:, 0, 3], m[:, 1, 3], "-", color=colours(k % 10), lw=2, label=f"node {t.node} ({t.class_name})")
        step = max(len(m) // 8, 1)
        ax.quiver(m[::step, 0, 3], m[::step, 1, 3], m[::step, 0, 0], m[::step, 1, 0], color=colours(k % 10),
                  angles="xy", scale=25, width=0.004)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("object tracks from above: nodes (solid, arrows = heading) and ground truth (dashed)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    try:
        main(tyro.cli(ExportTracksConfig))
    except SemdynError as err:
        Console().print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
