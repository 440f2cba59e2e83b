"""Check a synthetic sequence's ground truth: projected 3D boxes vs instance masks, depth maps vs LiDAR.

python scripts/check_synthetic_gt.py --scene outputs/synthetic/seed0 --out outputs/synth_check
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from semdyn.errors import SemdynError
from semdyn.synth import GTCheckResult, check_scene


@dataclass
class Args:
    """Ground-truth self-consistency check of a sequence folder."""

    scene: Path
    """Sequence folder (with transforms.json, masks, depth and points.ply)."""
    out: Path = Path("outputs/synth_check")
    """Folder for the overlay PNGs."""
    num_overlays: int = 3
    """Number of images with instance masks blended over them."""
    min_iou: float = 0.8
    """Exit with status 1 when the mean box-vs-mask IoU is below this."""
    min_depth_fraction: float = 0.9
    """Exit with status 1 when the fraction of LiDAR points within 5 cm of the depth maps is below this."""


def main(args: Args) -> GTCheckResult:
    """Run the check, print a table and the overlay paths."""
    result = check_scene(args.scene, args.out, args.num_overlays)
    table = Table(title=f"ground-truth check of {args.scene}")
    table.add_column("check")
    table.add_column("value", justify="right")
    for name, value in result.as_rows():
        table.add_row(name, value)
    console = Console()
    console.print(table)
    for path in result.overlay_paths:
        console.print(f"overlay: {path}")
    return result


def entrypoint() -> None:
    """Console entry point; exit status 1 when a threshold fails, 2 on bad input."""
    args = tyro.cli(Args)
    try:
        result = main(args)
    except SemdynError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        sys.exit(2)
    ok = result.mean_iou >= args.min_iou and result.depth_frac_within_5cm >= args.min_depth_fraction
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    entrypoint()
