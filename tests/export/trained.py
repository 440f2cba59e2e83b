"""A tiny trained core-trainer run shared by the export, paths and viewer tests (trained once per session)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from semdyn.scene.strategy import set_labels
from semdyn.train.presets import cpu_base_preset
from semdyn.train.trainer import Trainer

STEPS = 12
NUM_GROUPS = 5


def train_tiny(scene: Path, out: Path) -> Path:
    """Train STEPS steps on ``scene`` at half resolution, label the Gaussians with NUM_GROUPS groups by their x
    position (a stand-in for the semantic labels, so that group ids are exported and shown), save; the checkpoint."""
    ckpt = out / "tiny" / "checkpoints" / f"step-{STEPS:07d}.pt"
    if ckpt.exists():
        return ckpt
    base = cpu_base_preset()
    config = dataclasses.replace(base, data=scene, output_dir=out, experiment_name="tiny", max_steps=STEPS,
                                 steps_per_save=STEPS, log_every=1000)  # fmt: skip
    trainer = Trainer(config)
    trainer.train()
    x = trainer.model.params["means"].detach()[:, 0].contiguous()
    bins = torch.quantile(x, torch.linspace(0, 1, NUM_GROUPS + 1)[1:-1])
    ids = torch.bucketize(x, bins)
    ids[::7] = -1  # some unlabelled Gaussians
    set_labels(trainer.strategy_state, ids)
    return trainer.save()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tiny_scene, tmp_path_factory.getbasetemp() / "semdyn_tiny_run")
