"""Resuming checks that the checkpoint fits the run: its model options and its sequence, and names a good older
checkpoint when the newest cannot be read."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from semdyn.data.scene_data import load_scene
from semdyn.deform import MLPDeformConfig
from semdyn.errors import InputError
from semdyn.train.presets import static
from semdyn.train.trainer import Trainer
from tests.train.test_trainer import _config


@pytest.fixture(scope="module")
def data(tiny_scene: Path):
    return load_scene(tiny_scene, 2)


@pytest.fixture(scope="module")
def trained(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory, data) -> Path:
    """A 6-step cpu run (checkpoints at steps 3 and 6); returns its run folder."""
    cfg = _config(tiny_scene, tmp_path_factory.mktemp("trained"), 6)
    Trainer(cfg, data).train()
    return cfg.run_dir


def test_a_static_checkpoint_into_a_deforming_run_is_refused(tiny_scene: Path, tmp_path: Path, data) -> None:
    """Before: a raw ``load_state_dict`` traceback (missing deformation keys)."""
    cfg = _config(tiny_scene, tmp_path, 3)
    static_run = Trainer(static(cfg), data)
    static_run.train()
    with pytest.raises(InputError, match=r"was trained with --model.deformation None, this run has on"):
        Trainer(dataclasses.replace(cfg, max_steps=6), data).load(static_run.last_checkpoint)


def test_another_deformation_model_is_named_by_its_option(tmp_path: Path, data, trained: Path) -> None:
    """Named by its option and the two models (the saved type tags), not by a field the two happen to share."""
    cfg = _config(data.sequence.transforms_path.parent, tmp_path, 9)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, deformation=MLPDeformConfig()))
    with pytest.raises(InputError, match=r"--model.deformation HexPlaneConfig, this run has MLPDeformConfig"):
        Trainer(cfg, data).load(trained)


def test_another_sh_degree_is_refused_before_training(tiny_scene: Path, tmp_path: Path, data, trained: Path) -> None:
    """Before: resumed, trained to the end, then crashed at evaluation."""
    cfg = _config(tiny_scene, tmp_path, 9)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=dataclasses.replace(cfg.model.init,
                                                                                             sh_degree=3)))  # fmt: skip
    with pytest.raises(InputError, match=r"--model.init.sh-degree 1, this run has 3"):
        Trainer(cfg, data).load(trained)


def test_a_checkpoint_of_another_sequence_is_refused(tiny_scene: Path, tmp_path: Path, trained: Path) -> None:
    """Before: resumed silently."""
    other = tmp_path / "other"
    shutil.copytree(tiny_scene, other)
    meta = json.loads((other / "transforms.json").read_text())
    meta["frames"][0]["transform_matrix"][0][3] += 1.0  # one camera a metre to the side: another sequence
    (other / "transforms.json").write_text(json.dumps(meta))
    trainer = Trainer(_config(other, tmp_path, 9), load_scene(other, 2))
    with pytest.raises(InputError, match=r"was trained on another sequence .* resume with the same --data"):
        trainer.load(trained)


def test_a_cut_newest_checkpoint_names_the_older_good_one(
    tiny_scene: Path, tmp_path: Path, data, trained: Path
) -> None:
    """Before: the cut file was named, the good step-3 checkpoint was not."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    newest = run_dir / "checkpoints" / "step-0000006.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    older = run_dir / "checkpoints" / "step-0000003.pt"
    with pytest.raises(InputError, match="step-0000006.pt: not a readable semdyn checkpoint") as err:
        Trainer(_config(tiny_scene, tmp_path, 9), data).load(run_dir)
    assert f"the older checkpoint {older} reads: resume from it with --load-dir {older}" in str(err.value)
    assert "\n" not in str(err.value)
