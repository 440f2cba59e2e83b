"""Peak host memory of a core-trainer run against the number of frames, extrapolated to one Waymo segment.

Each case runs in a fresh Python process (so one case's high-water mark is not another's): load the sequence, train
100 steps of the ``cpu`` preset (labels lifted from the instance masks at step 100: one pass over every training
view), evaluate the held-out views and render the video, as ``semdyn-train`` does. The child reports the peak
resident set size (``VmHWM`` of /proc/self/status) after each stage and the bytes its ``SceneData`` holds; the parent
prints a table and the memory growth per image (least squares over the cases), and extrapolates it to 5 cameras x
200 frames at 1920x1280.

Whichever ``semdyn`` is on ``PYTHONPATH`` is measured (the table names it), so the same script measures another
checkout, e.g. main's code before a change::

    python scripts/make_synthetic_scene.py --output /tmp/mem/street40 --scene.num-frames 40 \\
        --scene.num-cameras 5 --scene.width 160 --scene.height 96          # and 120, 200
    PYTHONPATH=. python scripts/benchmark_memory.py --sequences /tmp/mem/street{40,120,200}
    PYTHONPATH=/tmp/main-checkout python scripts/benchmark_memory.py --sequences /tmp/mem/street{40,120,200}
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

WAYMO_IMAGES = 5 * 200
WAYMO_PIXELS = 1920 * 1280
STAGES = ("import", "load", "train", "lift", "evaluate")


@dataclass
class Args:
    """Measure peak host memory per sequence (each in its own process)."""

    sequences: list[Path] = field(default_factory=list)
    """Sequence folders of one rig and resolution, different lengths (e.g. 40, 120, 200 frames)."""
    steps: int = 100
    """Training steps before the lift."""
    video: bool = True
    """Render the video after the evaluation (as semdyn-train does)."""
    cache_mb: float | None = None
    """Read images and masks from disk through a cache of this many MiB (``load_scene(cache_mb=...)``; not in
    checkouts before it existed); None: hold them in memory."""
    json_out: Path | None = None
    """Also write the measurements here (JSON)."""
    child: bool = False
    """Internal: run one case in this process and print its JSON line."""


def _vm_hwm_mib() -> float:
    """Peak resident set size of this process so far (MiB), from /proc/self/status (ru_maxrss where absent)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nbytes(value: object) -> int:
    """Bytes of the tensors held in ``value`` (a tensor, or a dataclass of them such as the sparse depth)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def run_case(path: Path, steps: int, video: bool, cache_mb: float | None = None) -> dict:
    """One case in this process: the peak RSS after each stage (MiB) and what the loaded data holds."""
    peaks = {"import": 0.0}
    import torch

    import semdyn
    from semdyn.data.scene_data import load_scene
    from semdyn.train.evaluate import evaluate, render_video
    from semdyn.train.presets import PRESETS
    from semdyn.train.trainer import Trainer

    torch.set_num_threads(1)
    peaks["import"] = _vm_hwm_mib()
    t0 = time.perf_counter()
    data = load_scene(path, 1) if cache_mb is None else load_scene(path, 1, cache_mb=cache_mb)
    peaks["load"] = _vm_hwm_mib()
    base = PRESETS["cpu"][1]
    sem = dataclasses.replace(base.semantics, lift_start=steps, lift_every=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(
            base, data=path, downscale=1, max_steps=steps, steps_per_save=10**9, output_dir=Path(tmp),
            experiment_name="mem", semantics=sem, device="cpu", log_every=10**9,
        )  # fmt: skip
        trainer = Trainer(config, data)
        for _ in range(steps):
            trainer.train_step()
        peaks["train"] = _vm_hwm_mib()
        opts = trainer.optimizers | trainer.extra_optimizers
        trainer.semantics.lift(trainer.model, trainer.strategy_state, trainer.device, optimizers=opts)
        trainer.sync_groups()
        peaks["lift"] = _vm_hwm_mib()
        metrics = evaluate(trainer.model, data, trainer.device, Path(tmp) / "renders")
        if video:
            render_video(trainer.model, data, trainer.device, Path(tmp) / "renders" / "video.mp4")
        peaks["evaluate"] = _vm_hwm_mib()
    held = {name: _nbytes(getattr(data, name)) for name in ("images", "sparse_depth", "instance_masks")}
    if cache_mb is not None:
        held["cache_budget"] = int(cache_mb * 2**20)  # what the frame caches may hold at most
    return {
        "sequence": str(path),
        "semdyn": str(Path(semdyn.__file__).resolve().parents[1]),
        "images": int(len(data.times)),
        "height": data.height,
        "width": data.width,
        "peak_mib": peaks,
        "data_bytes": held,
        "gaussians": trainer.model.num_gaussians,
        "psnr": metrics["psnr"],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x``: (a, b); one point gives (y, 0)."""
    if len(x) < 2:
        return float(y[0]), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def report(cases: list[dict]) -> str:
    """The table: peaks per stage, data held, growth per image and the Waymo extrapolation."""
    cache = cases[0]["data_bytes"].get("cache_budget")
    held = "in memory" if cache is None else f"read through a {cache / 2**20:g} MiB frame cache"
    lines = [f"semdyn measured: {cases[0]['semdyn']} (images and masks {held})", ""]
    head = f"{'images':>7} {'HxW':>8} " + " ".join(f"{s + ' MiB':>13}" for s in STAGES) + f" {'data MiB':>9} {'s':>6}"
    lines += [head, "-" * len(head)]
    for c in cases:
        data_mib = sum(c["data_bytes"].values()) / 2**20
        lines.append(
            f"{c['images']:>7} {c['height']:>3}x{c['width']:<4} "
            + " ".join(f"{c['peak_mib'][s]:>13.1f}" for s in STAGES)
            + f" {data_mib:>9.1f} {c['seconds']:>6.0f}"
        )
    x = np.array([c["images"] for c in cases], dtype=float)
    pixels = cases[0]["height"] * cases[0]["width"]
    peak = np.array([c["peak_mib"]["evaluate"] for c in cases])
    data = np.array([sum(c["data_bytes"].values()) / 2**20 for c in cases])
    a, b = _fit(x, peak)
    da, db = _fit(x, data)
    per_px_peak, per_px_data = b * 2**20 / pixels, db * 2**20 / pixels
    waymo_growth = per_px_peak * WAYMO_PIXELS * WAYMO_IMAGES / 2**30
    waymo_data = per_px_data * WAYMO_PIXELS * WAYMO_IMAGES / 2**30
    lines += [
        "",
        f"peak growth per image: {b * 1024:.1f} KiB ({per_px_peak:.2f} bytes a pixel); "
        f"data held: {db * 1024:.1f} KiB per image ({per_px_data:.2f} bytes a pixel)",
        f"extrapolated to one Waymo segment ({WAYMO_IMAGES} images of 1920x1280): growth {waymo_growth:.1f} GiB "
        f"over the {a / 1024:.2f} GiB fixed part (data held: {waymo_data:.1f} GiB)",
    ]
    return "\n".join(lines)


def main(args: Args) -> None:
    if args.child:
        print(json.dumps(run_case(args.sequences[0], args.steps, args.video, args.cache_mb)))
        return
    if not args.sequences:
        raise SystemExit("error: give at least one sequence folder")
    for p in args.sequences:
        if not (p / "transforms.json").is_file():
            raise SystemExit(f"error: {p} is not a sequence folder (no transforms.json)")
    cases = []
    for p in args.sequences:
        cmd = [sys.executable, __file__, "--child", "--steps", str(args.steps), "--sequences", str(p)]
        if not args.video:
            cmd.append("--no-video")
        if args.cache_mb is not None:
            cmd += ["--cache-mb", str(args.cache_mb)]
        print(f"measuring {p} ...", file=sys.stderr, flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if res.returncode != 0:
            raise SystemExit(f"error: the case {p} failed:\n{res.stderr[-3000:]}")
        cases.append(json.loads(res.stdout.strip().splitlines()[-1]))
    cases.sort(key=lambda c: c["images"])
    print(report(cases))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(cases, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
