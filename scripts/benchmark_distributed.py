"""Training wall time of one process against several (torchrun, gloo on CPUs / NCCL on GPUs), same cameras per step.

Runs the ``cpu-base`` preset for ``--steps`` steps three ways and prints a table: one process with one camera a
step, one process with ``--processes`` cameras a step (``--batch-size``), and ``--processes`` torchrun ranks with one
camera each (the same cameras and, to float rounding, the same result as the batch). Only the training loop is
timed (``Trainer.train_seconds``), not loading or start-up.

python scripts/benchmark_distributed.py --steps 100                      # the synthetic default street
python scripts/benchmark_distributed.py --data <sequence> --device cuda --processes 4 --preset full-base
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class Args:
    """Time 1 process vs N processes."""

    data: Path | None = None
    """Sequence folder; None: the synthetic default street."""
    steps: int = 100
    """Training steps of each run."""
    processes: int = 2
    """torchrun --nproc-per-node."""
    preset: str = "cpu-base"
    """A semdyn-train preset."""
    device: str = "cpu"
    """cpu (gloo) or cuda (NCCL, one GPU a rank)."""
    threads: int = 1
    """Torch CPU threads per process."""
    repeats: int = 1
    """Run the three configurations this many times, interleaved, and keep each one's fastest (a shared machine's
    load drifts)."""
    worker: Path | None = None
    """Internal: run one training and write its timing here."""
    batch_size: int = 1
    """Internal (worker): cameras per step per process."""


def run_worker(args: Args) -> None:
    import torch

    from semdyn.train import distributed
    from semdyn.train.presets import PRESETS
    from semdyn.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    assert args.worker is not None
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(
            PRESETS[args.preset][1], data=args.data, max_steps=args.steps, batch_size=args.batch_size,
            device=args.device, output_dir=Path(tmp), experiment_name="bench", steps_per_save=10**9,
            log_every=10**9, semantics=None,
        )  # fmt: skip
        trainer = Trainer(config)
        trainer.train()
        if trainer.dist.is_main:
            out = {
                "processes": trainer.dist.world_size,
                "batch": trainer.global_batch,
                "seconds": trainer.train_seconds,
                "gaussians": trainer.model.num_gaussians,
            }
            args.worker.write_text(json.dumps(out))
    distributed.shutdown()


def main(args: Args) -> None:
    if args.worker is not None:
        run_worker(args)
        return
    common = ["--steps", str(args.steps), "--preset", args.preset, "--device", args.device]
    common += ["--threads", str(args.threads)] + (["--data", str(args.data)] if args.data is not None else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            ("1 process, 1 camera a step", [], 1),
            (f"1 process, batch {args.processes}", [], args.processes),
            (f"{args.processes} processes x 1 camera", ["-m", "torch.distributed.run", "--standalone",
                                                          "--nproc-per-node", str(args.processes)], 1),
        ]  # fmt: skip
        best: dict[str, dict] = {}
        for rep in range(args.repeats):
            for i, (name, launcher, batch) in enumerate(runs):
                out = Path(tmp) / f"{i}.json"
                cmd = [sys.executable, *launcher, __file__, *common, "--batch-size", str(batch), "--worker", str(out)]
                print(f"running: {name} ({rep + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
                res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if res.returncode != 0:
                    raise SystemExit(f"error: {name} failed:\n{res.stderr[-3000:]}")
                r = json.loads(out.read_text())
                if name not in best or r["seconds"] < best[name]["seconds"]:
                    best[name] = r
        rows = [(name, best[name]) for name, _, _ in runs]
    print(f"{'run':<28} {'cameras/step':>12} {'s (train)':>10} {'steps/s':>8} {'cameras/s':>10} {'Gaussians':>10}")
    for name, r in rows:
        rate = args.steps / r["seconds"]
        line = f"{name:<28} {r['batch']:>12} {r['seconds']:>10.1f} {rate:>8.2f} {rate * r['batch']:>10.2f}"
        print(line + f" {r['gaussians']:>10,}")


if __name__ == "__main__":
    main(tyro.cli(Args))
