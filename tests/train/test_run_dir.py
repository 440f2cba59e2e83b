"""A run folder holds one run: a second run into it is refused (or overwrites on request), two writers at once are
refused by a lock held across processes, and stale temporary files of killed saves are removed."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semdyn.data.scene_data import load_scene
from semdyn.errors import InputError
from semdyn.train import cli
from semdyn.train.run_dir import LOCK_NAME, RunDirInUseError, claim_run_dir
from semdyn.train.trainer import Trainer
from tests.train.test_trainer import _config


@pytest.fixture(scope="module")
def data(tiny_scene: Path):
    return load_scene(tiny_scene, 2)


def test_a_second_run_into_a_run_folder_is_refused_unless_resumed_or_overwritten(
    tiny_scene: Path, tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the second run's step-4 checkpoint was deleted right after it was written (the old run's step-9 and
    step-6 outranked it) and metrics.json named the deleted file."""
    cfg = _config(tiny_scene, tmp_path, 9)
    Trainer(cfg, data).train()
    run_dir = cfg.run_dir
    with pytest.raises(InputError, match=r"already holds a run \(checkpoints/step-0000009.pt\); resume it with"):
        Trainer(dataclasses.replace(cfg, max_steps=4), data).train()
    monkeypatch.setattr(cli, "Trainer", lambda config: Trainer(config, data))
    metrics = cli.run(dataclasses.replace(cfg, max_steps=4, overwrite=True))
    assert metrics["checkpoint"].endswith("step-0000004.pt") and Path(metrics["checkpoint"]).is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*")) == ["step-0000003.pt", "step-0000004.pt"]
    assert not (run_dir / LOCK_NAME).exists()  # nothing of the run's bookkeeping outlives it
    resumed = dataclasses.replace(cfg, max_steps=6, load_dir=run_dir)  # resuming the folder's own run is fine
    trainer = Trainer(resumed, data)
    trainer.load(run_dir)
    trainer.train()
    assert trainer.last_checkpoint is not None and trainer.last_checkpoint.name == "step-0000006.pt"


def test_resuming_an_older_checkpoint_into_its_folder_is_refused(tiny_scene: Path, tmp_path: Path, data) -> None:
    cfg = _config(tiny_scene, tmp_path, 6, keep_checkpoints=3)
    Trainer(cfg, data).train()
    old = cfg.run_dir / "checkpoints" / "step-0000003.pt"
    trainer = Trainer(dataclasses.replace(cfg, load_dir=old, max_steps=9), data)
    trainer.load(old)
    with pytest.raises(InputError, match="is older than step-0000006.pt of the same run"):
        trainer.train()


_HOLDER = """
import sys, time
from pathlib import Path
from semdyn.train.run_dir import claim_run_dir
with claim_run_dir(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # hold the folder until the test closes our stdin
"""


def test_two_processes_cannot_write_one_run_folder(tiny_scene: Path, tmp_path: Path) -> None:
    """Before: no lock; two runs into one folder replaced each other's checkpoints and metrics."""
    run_dir = tmp_path / "semdyn-cpu"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        cmd = [sys.executable, "-m", "semdyn.train.cli", "cpu", "--data", str(tiny_scene), "--max-steps", "2"]
        res = subprocess.run(
            [*cmd, "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=300, env=env
        )
        assert res.returncode == 2, res.stdout + res.stderr
        assert "is being written by another run (process" in res.stdout
        assert "Traceback" not in res.stdout + res.stderr
        with pytest.raises(RunDirInUseError):  # and within this process too
            with claim_run_dir(run_dir):
                pass
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    with claim_run_dir(run_dir):  # free again once the holder has gone
        pass
    assert not (run_dir / LOCK_NAME).exists()


def test_a_killed_holder_leaves_the_folder_free(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=60)
    deadline = time.monotonic() + 10
    while True:  # the kernel drops a dead process's flock
        try:
            with claim_run_dir(run_dir):
                break
        except RunDirInUseError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_stale_temporaries_are_removed_and_the_log_counts_the_steps_trained(
    tiny_scene: Path, tmp_path: Path, data, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a killed save's .step-*.pt.tmp<pid> stayed forever, and a resumed run logged max_steps as trained."""
    cfg = _config(tiny_scene, tmp_path, 3)
    Trainer(cfg, data).train()
    stale = [cfg.run_dir / "checkpoints" / ".step-0000006.pt.tmp12345", cfg.run_dir / "renders" / ".video.tmp.mp4"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    resumed = Trainer(dataclasses.replace(cfg, max_steps=5, load_dir=cfg.run_dir), data)
    resumed.load(cfg.run_dir)
    with caplog.at_level(logging.INFO, logger="semdyn"):
        resumed.train()
    assert not any(p.exists() for p in stale)
    assert "trained 2 steps" in caplog.text and "trained 5 steps" not in caplog.text
    assert json.loads((cfg.run_dir / "config.json").read_text())["max_steps"] == 5
