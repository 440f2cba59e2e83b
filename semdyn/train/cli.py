"""``semdyn-train``: train with the core trainer (no nerfstudio), then evaluate and render a video.

semdyn-train cpu                         # the embedded default scene on a CPU
semdyn-train cpu-static                  # the same, deformation off
semdyn-train full --data <sequence>      # full resolution (GPU)
semdyn-train cpu --load-dir outputs/semdyn-cpu   # resume
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import torch
import tyro
from rich.console import Console
from rich.logging import RichHandler

from semdyn.errors import SemdynError
from semdyn.train import distributed
from semdyn.train.evaluate import evaluate, render_video
from semdyn.train.options import validate_train_config
from semdyn.train.presets import PRESETS
from semdyn.train.run_dir import claim_run_dir
from semdyn.train.trainer import TrainConfig, Trainer


def run(config: TrainConfig) -> dict:
    """Train (or resume), evaluate the held-out views and render the video; returns the metrics. The run folder
    is held (locked, checked against mixing with another run) from the start to metrics.json."""
    validate_train_config(config)
    if distributed.launched_by_torchrun() and os.environ.get("RANK", "0") != "0":
        try:  # the other ranks train alongside rank 0, which holds the run folder, evaluates and renders
            trainer = Trainer(config)
            if config.load_dir is not None:
                trainer.load(config.load_dir)
            trainer.train()
            return {}
        finally:
            distributed.shutdown()
    try:
        with claim_run_dir(config.run_dir, config.load_dir, config.overwrite):
            return _run(config)
    finally:
        distributed.shutdown()


def _run(config: TrainConfig) -> dict:
    t0 = time.perf_counter()
    trainer = Trainer(config)
    if config.load_dir is not None:
        trainer.load(config.load_dir)
    start = trainer.step
    trainer.train()
    t1 = time.perf_counter()
    distributed.shutdown()  # rank 0 alone evaluates
    out = config.run_dir / "renders"
    metrics = evaluate(trainer.model, trainer.data, trainer.device, out)
    video = render_video(
        trainer.model, trainer.data, trainer.device, out / "video.mp4", fps=max(1, round(config.synth.fps))
    )
    metrics.update(
        train_seconds=round(t1 - t0, 1),
        total_seconds=round(time.perf_counter() - t0, 1),
        steps=trainer.step,
        iterations_per_second=round((trainer.step - start) / max(t1 - t0, 1e-9), 2),
        checkpoint=str(trainer.last_checkpoint),
        video=str(video),
        device=str(trainer.device),
        processes=trainer.dist.world_size,
        batch_size=trainer.global_batch,
    )
    (config.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def parse(args: list[str] | None = None) -> TrainConfig:
    """The config of a command line (``sys.argv[1:]`` when None); tyro exits 2 on a malformed one."""
    return tyro.extras.overridable_config_cli(PRESETS, args=args)


def entrypoint(args: list[str] | None = None) -> None:
    """Console entry point: exit 0 with the metrics, or one error line and exit 2 (130 when interrupted)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    console = Console()
    config = parse(args)
    try:
        metrics = run(config)
    except SemdynError as err:
        console.print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: resume with --load-dir " + str(config.run_dir))
        sys.exit(130)
    if metrics:  # the other ranks of a torchrun job have none
        console.print_json(json.dumps(metrics))


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    entrypoint()
