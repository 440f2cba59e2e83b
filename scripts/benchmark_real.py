"""The three methods (semdyn, semdyn-base, static) on converted real sequences: held-out PSNR / SSIM and the
dynamic-region PSNR over the sequence's object masks, as a markdown table; test renders, the test video and, for
semdyn, a group-overlay video along the drive.

Each run is its own process (`semdyn-train <preset> --data <seq>`), written to
``<output-dir>/real-<sequence>-<preset>``; a run folder that already holds finished metrics is read, not retrained
(``--retrain`` starts it again). For the two shared KITTI sequences (converted as the README's "Real data" says):

python scripts/benchmark_real.py --sequences data/kitti-0052 data/kitti-odo-06 --downscale 4
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console

from semdyn.data import read_sequence
from semdyn.errors import SemdynError

Preset = Literal["cpu", "cpu-base", "cpu-static"]
NAMES: dict[str, str] = {"cpu": "semdyn", "cpu-base": "semdyn-base", "cpu-static": "static"}
HEADER = (
    "| sequence | images | moving objects | method | steps | PSNR | SSIM | dyn. PSNR | test images | Gaussians | "
    "train s |"
)


@dataclass
class Args:
    """Train and score the three methods on real sequences."""

    sequences: tuple[Path, ...]
    """Sequence folders (transforms.json inside), e.g. from scripts/convert.py kitti."""
    presets: tuple[Preset, ...] = ("cpu", "cpu-base", "cpu-static")
    """semdyn-train presets to run: cpu (semdyn), cpu-base (semdyn-base), cpu-static (static)."""
    downscale: int = 4
    """Image downscale: the CPU preset's pixel budget is the synthetic street's 3 x 160 x 96 a frame time; KITTI's
    1242 x 375 at 4 is 310 x 93 (29k pixels), at 2 four times that (about 30 minutes a run on 2 cores)."""
    max_steps: int | None = None
    """Training steps of every run (None: the preset's 3000)."""
    output_dir: Path = Path("outputs")
    """Where the run folders go."""
    retrain: bool = False
    """Train again where a run folder already holds metrics.json (its old run is removed)."""
    group_video: bool = True
    """Render semdyn's groups over its images along the drive, in time (scripts/render.py interpolate: a spline
    through the ego poses, 120 frames)."""


def _run(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` with its output in ``log``; a failure ends the benchmark with the log's last line."""
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        raise SystemExit(f"{' '.join(cmd[2:5])} failed ({log}): {lines[-1] if lines else 'no output'}")


def _fmt(value: object, digits: int = 2) -> str:
    return "n/a" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.{digits}f}"


def main(args: Args) -> None:
    console = Console(stderr=True)
    if args.downscale < 1:
        raise SystemExit(f"--downscale must be a positive integer, got {args.downscale}")
    rows = []
    for seq in args.sequences:
        try:
            sequence = read_sequence(seq)
        except SemdynError as err:
            raise SystemExit(str(err)) from None
        dynamic = sum(t.dynamic for t in sequence.objects)
        for preset in args.presets:
            name = f"real-{seq.name}-{preset}"
            run = args.output_dir / name
            metrics_path = run / "metrics.json"
            if args.retrain or not metrics_path.is_file():
                console.print(f"training {NAMES[preset]} on {seq} -> {run}")
                args.output_dir.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "semdyn.train.cli", preset, "--data", str(seq)]
                cmd += ["--experiment-name", name, "--output-dir", str(args.output_dir)]
                cmd += ["--downscale", str(args.downscale)] + (["--overwrite"] if run.exists() else [])
                if args.max_steps is not None:
                    cmd += ["--max-steps", str(args.max_steps), "--steps-per-save", str(args.max_steps)]
                _run(cmd, args.output_dir / f"{name}.log")
            metrics = json.loads(metrics_path.read_text())
            if preset == "cpu" and args.group_video and not (run / "renders" / "interpolate").is_dir():
                cmd = [sys.executable, str(Path(__file__).with_name("render.py")), "interpolate"]
                cmd += ["--checkpoint", str(run), "--outputs", "rgb", "groups"]
                _run(cmd, args.output_dir / f"{name}-render.log")
            rows.append((seq.name, len(sequence.frames), dynamic, NAMES[preset], metrics))
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seq_name, images, dynamic, method, m in rows:
        print(
            f"| {seq_name} | {images} | {dynamic} | {method} | {m.get('steps')} | {_fmt(m.get('psnr'))} | "
            f"{_fmt(m.get('ssim'), 3)} | "
            f"{_fmt(m.get('dynamic_psnr'))} | {m.get('num_test_images')} | {m.get('num_gaussians')} | "
            f"{_fmt(m.get('train_seconds'), 0)} |"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
