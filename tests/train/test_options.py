"""TrainConfig options are checked when parsed (one function, used by the CLI and the Trainer), and a fuzz of
the command line only ever ends in exit 0 or one error line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semdyn.data.scene_data import load_scene
from semdyn.errors import InputError
from semdyn.train import cli
from semdyn.train.options import validate_train_config
from semdyn.train.trainer import Trainer
from tests.train.cli_fuzz import check_command_line, option_lists, run_cli


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--steps-per-save", "0", "--steps-per-save 0: save at least every step"),  # was ZeroDivisionError
        ("--max-steps", "-5", "--max-steps -5: train at least one step"),  # was exit 0, "trained -5 steps"
        ("--keep-checkpoints", "0", "--keep-checkpoints 0: keep at least one"),  # kept them all
        ("--model.lrs.means", "-0.1", "--model.lrs.means -0.1: a learning rate must be in"),
        ("--model.deform-lr", "nan", "--model.deform-lr nan: give a finite number"),
        ("--log-every", "0", "--log-every 0"),
        ("--seed", "-1", "--seed -1"),
        ("--device", "gpu", "--device 'gpu'"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(tiny_scene: Path, option: str, value: str, message: str) -> None:
    config = cli.parse(["cpu", "--data", str(tiny_scene), option, value])
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_train_config(config)
    with pytest.raises(InputError, match="^" + message.split(":")[0]):  # the Trainer checks the same, before loading
        Trainer(config)


def test_a_downscale_beyond_the_image_is_one_sentence(tiny_scene: Path) -> None:
    """Before: a traceback from avg_pool2d."""
    with pytest.raises(InputError, match=r"--downscale 1000 leaves 128x80 images at 0x0 pixels"):
        load_scene(tiny_scene, 1000)


def test_a_downscale_that_does_not_divide_the_image_keeps_the_masks(tiny_scene: Path) -> None:
    """Found by scripts/fuzz_cli.py: --downscale 3 of 128x80 images refused the sequence ("mask size (27, 43) !=
    image (26, 42)"): images are pooled in floor(size / 3) blocks, masks were sampled from every third pixel."""
    data = load_scene(tiny_scene, 3)
    assert data.images.shape[1:3] == (26, 42)
    assert data.instance_masks is not None and data.instance_masks.shape[1:] == (26, 42)
    full = load_scene(tiny_scene)
    assert full.instance_masks is not None
    assert torch.equal(data.instance_masks, full.instance_masks[:, 1:78:3, 1:126:3])  # the centre of each 3x3 block


def test_the_cli_prints_one_error_line_with_exit_2(tiny_scene: Path, tmp_path: Path) -> None:
    code, printed = run_cli(["cpu", "--data", str(tiny_scene), "--output-dir", str(tmp_path), "--steps-per-save", "0"])
    assert code == 2 and printed.strip().splitlines() == [
        "error: --steps-per-save 0: save at least every step (a positive number of steps)"
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(options=option_lists())
def test_fuzz_parse_and_validate(tiny_scene: Path, options: list[str]) -> None:
    check_command_line(options, tiny_scene, parse_only=True)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(options=option_lists(st.integers(1, 3), rare=True))
def test_fuzz_whole_runs(tiny_scene: Path, options: list[str]) -> None:
    """A few whole runs (train at most 3 steps, evaluate, video); scripts/fuzz_cli.py runs thousands."""
    check_command_line(options, tiny_scene)


@pytest.mark.parametrize(
    ("field", "value", "message"), [("batch_size", 0, "--batch-size 0"), ("cache_mb", -1.0, "--cache-mb -1.0")]
)
def test_a_bad_batch_or_cache_is_one_sentence(
    tiny_scene: Path, tmp_path: Path, field: str, value: object, message: str
) -> None:
    from semdyn.train.options import validate_train_config
    from semdyn.train.trainer import TrainConfig

    with pytest.raises(InputError, match=message):
        validate_train_config(TrainConfig(data=tiny_scene, output_dir=tmp_path, **{field: value}))
