"""The benchmark of ``shared/BENCHMARK.md``: every method on the same synthetic scenes, one table.

Each (method, seed) run trains in a fresh spawned process, so that its peak memory is its own, and returns one row:
image metrics on the test split, motion metrics against the ground-truth tracks, grouping scores, cost. The driver
is ``scripts/benchmark.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from semdyn.eval.scene_motion import motion_metrics
from semdyn.eval.tracks import node_tracks, track_errors
from semdyn.synth import SynthConfig
from semdyn.tools.grouping import grouping_scores, gt_instances
from semdyn.train.evaluate import evaluate, render_frame
from semdyn.train.presets import cpu_base_preset, full_base_preset, semantic, static
from semdyn.train.trainer import TrainConfig, Trainer

if TYPE_CHECKING:
    from semdyn.train.trainer import Trainer

METHODS = ("static", "semdyn-base", "semdyn")
"""Method names in table order. ``static``: deformation and temporal visibility off (labelled as our model, not
splatfacto); ``semdyn-base``: the dynamic model, no semantics; ``semdyn``: the full method (lifting, rigid object
nodes, the background, the object-wise regularizers)."""


@dataclass(frozen=True)
class Profile:
    """What differs between the CPU and the GPU benchmark."""

    name: Literal["cpu", "gpu"]
    steps: int
    """Training steps of every run."""
    downscale: int
    """Image downscale of the synthetic scenes."""
    lift_start: int
    """First lifting step of ``semdyn``."""
    lift_every: int
    """Lifting period of ``semdyn``."""


PROFILES = {
    "cpu": Profile("cpu", steps=3000, downscale=2, lift_start=500, lift_every=1000),
    "gpu": Profile("gpu", steps=30_000, downscale=1, lift_start=1000, lift_every=3000),
}


def method_config(
    method: str, seed: int, profile: Profile, output_dir: Path, masks: str = "gt", cache_dir: Path | None = None
) -> TrainConfig:
    """The TrainConfig of one run: same scene, steps, resolution, initial points and seed for every method."""
    base = cpu_base_preset() if profile.name == "cpu" else full_base_preset()
    base = dataclasses.replace(
        base,
        synth=SynthConfig(seed=seed),
        max_steps=profile.steps,
        downscale=profile.downscale,
        seed=seed,
        output_dir=output_dir,
        experiment_name=f"{method}-seed{seed}",
        steps_per_save=profile.steps,
        log_every=max(profile.steps // 4, 1),
    )
    if method == "static":
        return dataclasses.replace(static(base), experiment_name=f"{method}-seed{seed}")
    if method == "semdyn-base":
        return base
    if method == "semdyn":
        run = semantic(base, profile.lift_start, profile.lift_every)
        assert run.semantics is not None  # semantic() always sets it
        sem = dataclasses.replace(run.semantics, masks="gt" if masks == "gt" else "cache", cache_dir=cache_dir)
        return dataclasses.replace(run, semantics=sem, experiment_name=base.experiment_name)
    raise ValueError(f"unknown method {method!r}; the methods are {list(METHODS)}")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


@torch.no_grad()
def _render_fps(trainer: Trainer) -> float:
    """Frames per second rendering the test views at the training resolution."""

    idx = trainer.data.test_idx.tolist()
    render_frame(trainer.model, trainer.data, idx[0], trainer.device)  # warm-up
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in idx:
        render_frame(trainer.model, trainer.data, i, trainer.device)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return len(idx) / max(time.perf_counter() - t0, 1e-9)


def run_one(config: TrainConfig, method: str) -> dict[str, Any]:
    """Train one run and measure it (in the calling process)."""

    torch.set_num_threads(int(os.environ.get("SEMDYN_BENCH_THREADS", torch.get_num_threads())))
    trainer = Trainer(config)
    trainer.train()
    row: dict[str, Any] = {"method": method, "seed": config.seed}
    row.update(evaluate(trainer.model, trainer.data, trainer.device, config.run_dir / "renders"))
    row.update(motion_metrics(trainer.model, trainer.data, list(trainer.data.sequence.objects)))
    row.update(track_summary(trainer))
    labels = trainer.group_labels()
    row["grouping_ari"] = math.nan
    row["grouping_purity"] = math.nan
    if labels is not None:
        scores = grouping_scores(labels.ids.cpu(), gt_instances(trainer.model, trainer.data))
        row["grouping_ari"], row["grouping_purity"] = scores["ari"], scores["purity"]
    row["iterations_per_second"] = config.max_steps / max(trainer.train_seconds, 1e-9)
    row["render_fps"] = _render_fps(trainer)
    row["peak_memory_mb"] = _peak_memory_mb(trainer.device)
    row["train_seconds"] = trainer.train_seconds
    return row


def track_summary(trainer: Trainer) -> dict[str, Any]:
    """The object nodes' track errors against the ground truth (:mod:`semdyn.eval.tracks`): the mean translation
    error and the largest heading error over the moving objects that a node matched, how many did, and the
    per-object rows (``track_errors``). NaN without objects."""

    truth = list(trainer.data.sequence.objects)
    table = trainer.semantics.groups if trainer.semantics is not None else None
    names = table.class_names if table is not None else None
    errors = track_errors(node_tracks(trainer.model, trainer.data, names, truth), truth)
    found = [e for e in errors.values() if e["node"] >= 0 and not math.isnan(e["translation_error"])]
    return {
        "track_error": sum(e["translation_error"] for e in found) / len(found) if found else math.nan,
        "heading_error_max": max(e["heading_error_max"] for e in found) if found else math.nan,
        "tracked_objects": f"{len(found)}/{len(errors)}",
        "track_errors": {str(k): v for k, v in errors.items()},
    }


def _child(config: TrainConfig, method: str, queue: Any) -> None:
    try:
        queue.put(("ok", run_one(config, method)))
    except BaseException as err:  # reported by the parent as a failed row
        queue.put(("error", f"{type(err).__name__}: {err}"))


def run_isolated(config: TrainConfig, method: str) -> dict[str, Any]:
    """:func:`run_one` in a fresh spawned process (its own peak memory); a failure becomes a row with ``error``."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(config, method, queue))
    proc.start()
    status, value = queue.get()
    proc.join()
    if status == "ok":
        return value
    return {"method": method, "seed": config.seed, "error": value}


COLUMNS = (
    ("psnr", "PSNR", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("lpips", "LPIPS", "{:.3f}"),
    ("dynamic_psnr", "dyn. PSNR", "{:.2f}"),
    ("trajectory_error", "traj. err. m", "{:.3f}"),
    ("static_drift", "static drift m", "{:.4f}"),
    ("rigidity_error", "rigidity err. m", "{:.4f}"),
    ("track_error", "track err. m", "{:.3f}"),
    ("heading_error_max", "heading err. max deg", "{:.2f}"),
    ("tracked_objects", "objects tracked", "{}"),
    ("grouping_ari", "group ARI", "{:.3f}"),
    ("iterations_per_second", "it/s", "{:.2f}"),
    ("render_fps", "render fps", "{:.1f}"),
    ("peak_memory_mb", "peak MB", "{:.0f}"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown table, a row per (method, seed); failed runs show their error."""
    head = "| method | seed | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['seed']} | failed: {r['error']} |")
            continue
        cells = " | ".join(_cell(r.get(key), fmt) for key, _, fmt in COLUMNS)
        lines.append(f"| {r['method']} | {r['seed']} | {cells} |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]], num: str = "semdyn", den: str = "semdyn-base") -> dict[int, dict[str, float]]:
    """Per seed: trajectory-error and static-drift ratios num/den, and the dynamic-PSNR difference (dB)."""
    by = {(r["method"], r["seed"]): r for r in rows if "error" not in r}
    out: dict[int, dict[str, float]] = {}
    for (method, seed), r in by.items():
        other = by.get((den, seed))
        if method != num or other is None:
            continue
        out[seed] = {
            "trajectory_error_ratio": _ratio(r.get("trajectory_error"), other.get("trajectory_error")),
            "static_drift_ratio": _ratio(r.get("static_drift"), other.get("static_drift")),
            "dynamic_psnr_gain_db": r["dynamic_psnr"] - other["dynamic_psnr"],
            "psnr_gain_db": r.get("psnr", math.nan) - other.get("psnr", math.nan),
            "time_per_step_ratio": _ratio(other.get("iterations_per_second"), r.get("iterations_per_second")),
        }
        static = by.get(("static", seed))
        if static is not None:
            out[seed]["dynamic_psnr_gain_over_static_db"] = r["dynamic_psnr"] - static["dynamic_psnr"]
    return out


def _ratio(a: Any, b: Any) -> float:
    if a is None or b is None or not b:
        return math.nan
    return float(a) / float(b)


def write_results(out_dir: Path, rows: list[dict[str, Any]], header: dict[str, Any]) -> tuple[Path, Path]:
    """``benchmark.json`` and ``benchmark.md`` in ``out_dir``, written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rat = ratios(rows)
    doc = {"header": header, "rows": rows, "ratios_semdyn_over_base": rat}
    md = [f"# semdyn benchmark ({header['profile']} profile)", ""]
    md += [f"- {k}: {v}" for k, v in header.items()]
    md += ["", markdown_table(rows), ""]
    for seed, r in sorted(rat.items()):
        md.append(
            f"- seed {seed}: semdyn / semdyn-base trajectory error x{r['trajectory_error_ratio']:.3f}, "
            f"static drift x{r['static_drift_ratio']:.3f}, dynamic PSNR {r['dynamic_psnr_gain_db']:+.2f} dB "
            f"(over static {r.get('dynamic_psnr_gain_over_static_db', math.nan):+.2f} dB), "
            f"PSNR {r['psnr_gain_db']:+.2f} dB, time per step x{r['time_per_step_ratio']:.3f}"
        )
    paths = (out_dir / "benchmark.json", out_dir / "benchmark.md")
    for path, text in zip(paths, (json.dumps(doc, indent=2, default=str), "\n".join(md) + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
