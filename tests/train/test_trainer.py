"""The core trainer: a short run learns, resuming continues exactly, NaN stops cleanly, the CLI reports errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import semdyn.shapes
from semdyn.data.scene_data import load_scene
from semdyn.scene.strategy import DensifyConfig
from semdyn.train.presets import cpu_base_preset
from semdyn.train.trainer import TrainConfig, Trainer, TrainingDivergedError


def _config(scene: Path, out: Path, steps: int, **kw) -> TrainConfig:
    base = cpu_base_preset()
    model = dataclasses.replace(
        base.model,
        densify=DensifyConfig(refine_start_iter=2, refine_every=3, refine_stop_iter=1000, reset_every=100_000),
    )
    kw = {"steps_per_save": 3, **kw}
    return dataclasses.replace(base, data=scene, output_dir=out, max_steps=steps, log_every=1000, model=model, **kw)


def test_short_run_reduces_loss_and_densifies(tiny_scene: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(tiny_scene, tmp_path, 40))
    n0 = trainer.model.num_gaussians
    trainer.train()
    first = sum(h["rgb"] for h in trainer.history[:5]) / 5
    last = sum(h["rgb"] for h in trainer.history[-5:]) / 5
    assert last < 0.9 * first
    assert trainer.model.num_gaussians != n0  # gsplat's strategy split, duplicated or pruned
    assert trainer.last_checkpoint is not None and trainer.last_checkpoint.name == "step-0000040.pt"


def test_resume_continues_from_the_same_step_and_loss(
    tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_scene(tiny_scene, 2)
    full = Trainer(_config(tiny_scene, tmp_path / "full", 8, steps_per_save=5), data)
    full.train()
    part = Trainer(_config(tiny_scene, tmp_path / "part", 8, steps_per_save=5), data)
    real_step = part.train_step

    def interrupted() -> dict:
        if part.step == 7:
            raise KeyboardInterrupt  # as if Ctrl-C arrived during step 8, after the step-5 checkpoint
        return real_step()

    monkeypatch.setattr(part, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        part.train()
    run_dir = tmp_path / "part" / "semdyn-cpu-base"
    resumed = Trainer(_config(tiny_scene, tmp_path / "part", 8, steps_per_save=5, load_dir=run_dir), data)
    resumed.load(run_dir)
    assert resumed.step == 5
    resumed.train()
    assert [h["step"] for h in resumed.history] == [6, 7, 8]
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history[5:]], rel=1e-6)
    assert resumed.model.num_gaussians == full.model.num_gaussians


def test_nan_stops_with_step_and_term_and_keeps_last_checkpoint(
    tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(_config(tiny_scene, tmp_path, 10, keep_checkpoints=5))
    real = trainer.model.loss_dict

    def poisoned(outputs, gt, depth=None, step=None):
        terms = real(outputs, gt, depth, step=step)
        if trainer.step == 4:
            terms["rgb"] = terms["rgb"] * float("nan")
        return terms

    monkeypatch.setattr(trainer.model, "loss_dict", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"step 4: loss term 'rgb' is nan; the last good checkpoint is"):
        trainer.train()
    ckpt = torch.load(tmp_path / "semdyn-cpu-base" / "checkpoints" / "step-0000003.pt", weights_only=False)
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_cli_end_to_end_and_errors(tiny_scene: Path, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "semdyn.train.cli",
        "cpu",
        "--data",
        str(tiny_scene),
        "--max-steps",
        "4",
        "--output-dir",
        str(tmp_path),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    run = tmp_path / "semdyn-cpu"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["psnr"] > 5 and metrics["dynamic_psnr"] is not None
    assert (run / "renders" / "video.mp4").stat().st_size > 1000
    assert len(list((run / "renders" / "test").glob("*.png"))) == metrics["num_test_images"] > 0

    bad = subprocess.run(
        [sys.executable, "-m", "semdyn.train.cli", "cpu", "--data", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "nowhere" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr


def test_the_hot_path_checks_its_shapes_once(tiny_scene: Path, tmp_path: Path, monkeypatch) -> None:
    """check_shape runs its checks in the first step only (and again after a lift), not in every step."""
    calls = []
    parse = semdyn.shapes._parse
    monkeypatch.setattr(semdyn.shapes, "_parse", lambda pattern: calls.append(pattern) or parse(pattern))
    Trainer(_config(tiny_scene, tmp_path / "one", 1)).train()
    one = len(calls)
    calls.clear()
    Trainer(_config(tiny_scene, tmp_path / "five", 5)).train()
    assert one > 0 and len(calls) == one, (one, len(calls))
    assert semdyn.shapes.shape_checks_enabled()  # on again once training returns
