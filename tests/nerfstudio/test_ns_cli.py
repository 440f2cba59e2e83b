"""ns-train with semdyn's methods: the command line is validated when parsed, the model config's learning rates
reach the optimizers nerfstudio builds, our errors end in one line with exit 2, and a refused try leaves no run
folder behind. A fuzz of the command line (parse + validation) only ever ends in exit 0 or one error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("nerfstudio")
pytestmark = pytest.mark.nerfstudio

from nerfstudio.engine.optimizers import Optimizers  # noqa: E402

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig  # noqa: E402
from semdyn.errors import DataFormatError  # noqa: E402
from tests.cli_fuzz_common import run_captured  # noqa: E402
from tests.nerfstudio.ns_cli_fuzz import check_ns_command_line, ns_option_lists, parse_ns  # noqa: E402


def built_optimizers(config: Any, scene: Path) -> Optimizers:
    """The optimizers nerfstudio's trainer builds for ``config``'s model on ``scene``."""
    outputs = SemdynDataParserConfig(data=scene).setup().get_dataparser_outputs("train")
    model = config.pipeline.model.setup(scene_box=outputs.scene_box, num_train_data=len(outputs.image_filenames),
                                        metadata=outputs.metadata)  # fmt: skip
    return Optimizers(config.optimizers, model.get_param_groups())


def printed_flat(text: str) -> str:
    """tyro's error box as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_a_model_rate_given_on_the_command_line_is_the_rate_that_trains(tiny_scene: Path) -> None:
    """Before: --pipeline.model.scene.lrs.scales 100 was written to config.yml, and the optimiser ran at 0.005."""
    config = parse_ns(["semdyn-cpu", "--pipeline.model.scene.lrs.scales", "100", "--pipeline.model.scene.deform-lr",
                       "0.5", "--max-num-iterations", "50"])  # fmt: skip
    built = built_optimizers(config, tiny_scene)
    assert built.optimizers["scales"].param_groups[0]["lr"] == 100
    assert built.optimizers["deform_grid"].param_groups[0]["lr"] == 0.5
    assert built.optimizers["deform_mlp"].param_groups[0]["lr"] == pytest.approx(0.05)
    assert config.optimizers["means"]["scheduler"].max_steps == 50  # the means' decay ends where training does
    assert config.optimizers["quats"]["optimizer"].lr == config.pipeline.model.scene.lrs.quats  # the rest as before


def test_an_optimizer_rate_alone_is_kept_and_two_that_disagree_are_refused() -> None:
    config = parse_ns(["semdyn-cpu", "--optimizers.scales.optimizer.lr", "7"])
    assert config.optimizers["scales"]["optimizer"].lr == 7
    same = parse_ns(["semdyn-cpu", "--optimizers.scales.optimizer.lr", "7", "--pipeline.model.scene.lrs.scales", "7"])
    assert same.optimizers["scales"]["optimizer"].lr == 7
    code, printed = run_captured(lambda: parse_ns(["semdyn-cpu", "--optimizers.scales.optimizer.lr", "7",
                                                   "--pipeline.model.scene.lrs.scales", "100"]))  # fmt: skip
    assert code == 2
    assert "--optimizers.scales.optimizer.lr 7 disagrees with --pipeline.model.scene.lrs.scales, which sets the " \
        "same value to 100; give only one of the two" in printed_flat(printed)  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--pipeline.model.scene.lrs.scales", "nan", "--pipeline.model.scene.lrs.scales nan: give a finite number"),
        ("--optimizers.opacities.optimizer.lr", "-1", "--optimizers.opacities.optimizer.lr -1.0: give a rate in"),
        ("--max-num-iterations", "0", "--max-num-iterations 0: train at least one step"),
        ("--machine.seed", "-1", "--machine.seed -1: give a seed in"),
        ("--pipeline.datamanager.camera-res-scale-factor", "0", "camera-res-scale-factor 0.0: give a positive"),
    ],
)
def test_bad_options_are_refused_when_parsed(option: str, value: str, message: str) -> None:
    """Before: parsed, written to config.yml, and trained (NaN), crashed in numpy (seed) or trained nothing."""
    code, printed = run_captured(lambda: parse_ns(["semdyn-cpu", option, value]))
    assert code == 2 and message in printed_flat(printed), printed


def ns_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``ns-train <args>`` in a subprocess (as a user runs it; the hook only acts there)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nerfstudio.scripts.train", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)  # fmt: skip


def test_a_bad_sequence_is_one_line_and_leaves_no_run_folder(tmp_path: Path) -> None:
    """Before: the config printed (450 lines), a 15-frame traceback, exit 1, and a folder holding config.yml."""
    data = tmp_path / "seq"
    data.mkdir()
    (data / "transforms.json").write_text("{not json")
    out = tmp_path / "outputs"
    res = ns_train("semdyn-cpu", "--data", str(data), "--output-dir", str(out), "--vis", "tensorboard", cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {data / 'transforms.json'}: is not valid JSON (Expecting property name enclosed in "
                      "double quotes at line 1)"]  # fmt: skip
    assert len(res.stdout.splitlines()) < 5  # no config print
    assert not out.exists()


def test_a_try_that_fails_in_setup_removes_its_run_folder(tiny_scene: Path, tmp_path: Path) -> None:
    """An image cut short passes the check before nerfstudio writes config.yml (which reads no image); the setup
    that decodes it fails with one sentence and removes the run folder holding only config.yml."""
    from tests.nerfstudio.test_model import cpu_config

    data = tmp_path / "seq"
    shutil.copytree(tiny_scene, data)
    image = sorted(data.rglob("*.png"))[0]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    config = cpu_config(data, tmp_path / "outputs")
    config.set_timestamp()
    config.check_sequence()
    config.save_config()
    base = config.get_base_dir()
    assert (base / "config.yml").exists()
    trainer = config.setup(local_rank=0, world_size=1)
    with pytest.raises(DataFormatError, match=re.escape(image.name)):
        trainer.setup()
    assert not base.exists() and not (tmp_path / "outputs" / "seq").exists()
    assert (tmp_path / "outputs").exists()  # the output folder the user named stays


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(options=ns_option_lists())
def test_fuzz_ns_parse_and_validate(tiny_scene: Path, options: list[str]) -> None:
    check_ns_command_line(options, tiny_scene, parse_only=True)
