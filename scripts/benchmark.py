"""Every method on the synthetic scenes, one table (``shared/BENCHMARK.md``), as JSON and Markdown.

    python scripts/benchmark.py                       # CPU profile: seeds 0 1 2, 3000 steps, ~40 min a seed, 2 cores
    python scripts/benchmark.py --profile gpu         # full resolution, full schedule
    python scripts/benchmark.py --masks cache --cache-dir <extract_semantics run>   # semdyn on SAM masks

The static baseline is our model with the deformation and temporal visibility switched off (labelled so):
splatfacto needs CUDA, and the table must also be made on a CPU.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console
from rich.logging import RichHandler

from semdyn.errors import InputError
from semdyn.eval.machine import describe_machine
from semdyn.tools.benchmark import METHODS, PROFILES, markdown_table, method_config, run_isolated, write_results


@dataclass
class BenchmarkConfig:
    """What to run."""

    profile: Literal["cpu", "gpu"] = "cpu"
    """cpu: half resolution, 3000 steps; gpu: full resolution, 30k steps."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Synthetic scene seeds (one scene per seed; the run's seed too)."""
    methods: tuple[str, ...] = METHODS
    """Which methods (static, semdyn-base, semdyn)."""
    steps: int | None = None
    """Override the profile's training steps."""
    masks: Literal["gt", "cache"] = "gt"
    """semdyn's masks: the scene's ground-truth instance masks, or the ID maps of scripts/extract_semantics.py
    (SAM + CLIP) in --cache-dir. SAM needs a local checkpoint, so gt is the default where none is configured."""
    cache_dir: Path | None = None
    """masks=cache: the extract_semantics run folder (one scene: use a single seed)."""
    output: Path = Path("outputs/benchmark")
    """Where runs, benchmark.json and benchmark.md go."""


def main(cfg: BenchmarkConfig) -> Path:
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise InputError(f"--methods: unknown {unknown}; the methods are {list(METHODS)}")
    if cfg.masks == "cache" and (cfg.cache_dir is None or len(cfg.seeds) != 1):
        raise InputError("--masks cache needs --cache-dir and exactly one --seeds (the ID maps belong to one scene)")
    profile = PROFILES[cfg.profile]
    if cfg.steps is not None:
        profile = type(profile)(**{**profile.__dict__, "steps": cfg.steps})
    log = logging.getLogger("semdyn")
    rows = []
    t0 = time.perf_counter()
    for seed in cfg.seeds:
        for method in cfg.methods:
            config = method_config(method, seed, profile, cfg.output / "runs", cfg.masks, cfg.cache_dir)
            log.info("benchmark: %s on seed %d (%d steps)", method, seed, profile.steps)
            rows.append(run_isolated(config, method))
            log.info("benchmark: %s", json.dumps({k: rows[-1].get(k) for k in ("psnr", "dynamic_psnr", "error")}))
    header = {
        "profile": profile.name,
        "machine": describe_machine(),
        "steps": profile.steps,
        "downscale": profile.downscale,
        "semdyn masks": "ground-truth instance masks" if cfg.masks == "gt" else f"SAM + CLIP ID maps ({cfg.cache_dir})",
        "static baseline": "semdyn with deformation and temporal visibility off (not splatfacto)",
        "wall minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    json_path, md_path = write_results(cfg.output, rows, header)
    Console().print(markdown_table(rows))
    log.info("benchmark: wrote %s and %s", json_path, md_path)
    return md_path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    try:
        main(tyro.cli(BenchmarkConfig))
    except InputError as err:
        Console().print(f"[bold red]error:[/bold red] {err}")
        raise SystemExit(2) from None
