"""Export a trained run's Gaussians as one PLY per chosen time (standard 3DGS layout + group_id, class_id).

python scripts/export_ply.py --checkpoint outputs/semdyn-cpu --times 0,0.5,1
python scripts/export_ply.py --checkpoint outputs/semdyn-cpu --times all --units normalized
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.progress import track

from semdyn.errors import SemdynError
from semdyn.export import export_ply, load_run, parse_times
from semdyn.export.ply import MIN_VISIBLE_OPACITY, Units
from semdyn.outputs import make_output_folder


@dataclass
class ExportConfig:
    """Which run, which times, where."""

    checkpoint: Path
    """A semdyn-train checkpoint (step-*.pt) or run folder (its newest checkpoint)."""
    times: str = "0,0.5,1"
    """Comma-separated normalised times in [0, 1], or 'all' (every frame time of the sequence)."""
    output_dir: Path | None = None
    """Where the PLY files go; default <run folder>/export."""
    units: Units = "metres"
    """metres: the sequence's world (normalisation undone); normalized: the model's own units."""
    min_opacity: float = MIN_VISIBLE_OPACITY
    """Drop Gaussians whose opacity at the time is below this (default 1/255: those never change a pixel)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    data: Path | None = None
    """The run's sequence folder, where it has moved since training (default: the path in the run's config)."""


def main(config: ExportConfig) -> list[Path]:
    """Write ``t<time>.ply`` per time; returns the files."""
    run = load_run(config.checkpoint, config.device, data_dir=config.data)
    out_dir = make_output_folder(config.output_dir or run.checkpoint.parent.parent / "export", "--output-dir")
    norm = run.data.normalization if config.units == "metres" else None
    paths = []
    for t in track(parse_times(config.times, run.data.times.numpy()), description="exporting"):
        path = out_dir / f"t{t:.4f}.ply"
        count = export_ply(path, run.model, t, run.group_ids, run.class_ids, norm, config.min_opacity)
        Console().print(f"{path}  {count:,} Gaussians  {path.stat().st_size / 1e6:.2f} MB")
        paths.append(path)
    return paths


if __name__ == "__main__":
    try:
        main(tyro.cli(ExportConfig))
    except SemdynError as err:
        Console().print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
