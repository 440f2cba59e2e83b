"""A torchrun worker for tests/train/test_distributed.py: train a tiny config, dump this rank's parameters.

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_worker.py SCENE OUT STEPS [LOAD]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from semdyn.scene.strategy import DensifyConfig
from semdyn.train import distributed
from semdyn.train.presets import PRESETS
from semdyn.train.trainer import TrainConfig, Trainer


def ddp_config(scene: Path, out: Path, steps: int, batch_size: int) -> TrainConfig:
    """A small semdyn-base run whose densification acts at step 15 (a low growth threshold: it clones and splits)."""
    base = PRESETS["cpu-base"][1]
    model = dataclasses.replace(
        base.model,
        init=dataclasses.replace(base.model.init, max_points=1500),
        densify=DensifyConfig(refine_start_iter=10, refine_every=15, refine_stop_iter=1000, reset_every=10**6,
                              grow_grad2d=1e-6),
    )  # fmt: skip
    return dataclasses.replace(
        base, data=scene, output_dir=out, experiment_name="run", max_steps=steps, batch_size=batch_size,
        downscale=2, steps_per_save=10, keep_checkpoints=5, device="cpu", model=model, log_every=10**6,
    )  # fmt: skip


def main() -> None:
    scene, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    load = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    config = dataclasses.replace(ddp_config(scene, out, steps, 1), load_dir=load)
    trainer = Trainer(config)
    if load is not None:
        trainer.load(load)
    trainer.train()
    state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    torch.save({"state": state, "gaussians": trainer.model.num_gaussians}, out / f"rank{trainer.dist.rank}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main()
