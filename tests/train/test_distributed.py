"""Batches of cameras and data parallel training over torch.distributed (gloo, two processes launched by torchrun)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semdyn.errors import InputError
from semdyn.train.trainer import Trainer
from tests.train.ddp_worker import ddp_config

WORKER = Path(__file__).resolve().with_name("ddp_worker.py")
STEPS = 20


def _torchrun(scene: Path, out: Path, steps: int, load: Path | None = None) -> list[dict]:
    """Two gloo ranks of one camera each; their dumped states."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
           str(scene), str(out), str(steps)] + ([str(load)] if load is not None else [])  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _assert_close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=tol, atol=tol, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def single(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """One process, a batch of two cameras, 20 steps (densification at step 15)."""
    torch.set_num_threads(1)
    trainer = Trainer(ddp_config(tiny_scene, tmp_path_factory.mktemp("single"), STEPS, 2))
    start = trainer.model.num_gaussians
    trainer.train()
    trainer.start_gaussians = start  # type: ignore[attr-defined]
    return trainer


def test_a_batch_scales_the_learning_rates_by_its_square_root(tiny_scene: Path, tmp_path: Path) -> None:
    one = Trainer(ddp_config(tiny_scene, tmp_path / "a", 5, 1))
    four = Trainer(ddp_config(tiny_scene, tmp_path / "b", 5, 4))
    for name, opt in one.optimizers.items():
        assert four.optimizers[name].param_groups[0]["lr"] == pytest.approx(2 * opt.param_groups[0]["lr"])
    for name, opt in one.extra_optimizers.items():
        assert four.extra_optimizers[name].param_groups[0]["lr"] == pytest.approx(2 * opt.param_groups[0]["lr"])
    slots = four.step_frames(3)
    assert [s for s, _ in slots] == [12, 13, 14, 15]  # the camera stream continues across steps
    assert math.isclose(four.scheduler.get_last_lr()[0], 2 * one.scheduler.get_last_lr()[0])


def test_a_checkpoint_of_another_batch_is_refused(single: Trainer, tiny_scene: Path, tmp_path: Path) -> None:
    other = Trainer(ddp_config(tiny_scene, tmp_path, STEPS, 1))
    with pytest.raises(InputError, match="was trained with 2 cameras per step"):
        other.load(single.last_checkpoint)


def test_two_gloo_ranks_equal_one_process_with_a_batch_of_two(
    single: Trainer, tiny_scene: Path, tmp_path: Path
) -> None:
    """2 processes x 1 camera == 1 process x 2 cameras after 20 steps through a densification step (to 1e-5), the
    ranks identical to each other; then a 2-process run resumed from its step-10 checkpoint ends the same."""
    assert single.model.num_gaussians != single.start_gaussians  # the densification step acted
    ranks = _torchrun(tiny_scene, tmp_path / "ddp", STEPS)
    assert ranks[0]["gaussians"] == ranks[1]["gaussians"] == single.model.num_gaussians
    _assert_close(ranks[0]["state"], ranks[1]["state"], 0.0)  # every rank keeps the same scene
    reference = {k: v.detach().cpu() for k, v in single.model.state_dict().items()}
    _assert_close(ranks[0]["state"], reference, 1e-5)

    ckpt = tmp_path / "ddp" / "run" / "checkpoints" / "step-0000010.pt"
    assert ckpt.is_file() and (tmp_path / "ddp" / "run" / "checkpoints" / "step-0000020.pt").is_file()
    resumed = _torchrun(tiny_scene, tmp_path / "resumed", STEPS, load=ckpt)
    _assert_close(resumed[0]["state"], ranks[0]["state"], 1e-5)
