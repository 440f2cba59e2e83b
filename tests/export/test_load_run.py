"""A run loads from its checkpoint alone: its own normalisation, a moved sequence folder, a changed one named."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semdyn.export import load_run


def _metres(run) -> np.ndarray:
    means = run.model.gaussians_at(0.5)["means"].detach().double().numpy()
    return run.data.normalization.points_to_metres(means)


def test_a_moved_and_trimmed_sequence_keeps_the_trained_world(
    tiny_checkpoint: Path, tiny_scene: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    here = load_run(tiny_checkpoint, "cpu")
    moved = tmp_path / "moved"
    shutil.copytree(tiny_scene, moved)
    meta = json.loads((moved / "transforms.json").read_text())
    last = meta["frames"].pop()  # one frame fewer: a recomputed normalisation would move the world
    meta["frames"] = [f for f in meta["frames"] if f["file_path"] != last["file_path"]]
    (moved / "transforms.json").write_text(json.dumps(meta))
    split_path = moved / "split.json"
    if split_path.exists():
        split = json.loads(split_path.read_text())
        split = {k: [f for f in v if f != last["file_path"]] if isinstance(v, list) else v for k, v in split.items()}
        split_path.write_text(json.dumps(split))
    with caplog.at_level(logging.WARNING, logger="semdyn"):
        there = load_run(tiny_checkpoint, "cpu", data_dir=moved)
    assert "has changed since this run was trained" in caplog.text
    assert np.allclose(there.data.normalization.transform, here.data.normalization.transform)
    assert there.data.normalization.scale == here.data.normalization.scale
    np.testing.assert_allclose(_metres(there), _metres(here), atol=1e-5)
    torch.testing.assert_close(there.data.viewmats[:-2], here.data.viewmats[: len(there.data.viewmats) - 2])
