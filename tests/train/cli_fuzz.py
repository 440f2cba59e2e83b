"""Command lines of ``semdyn-train`` drawn by hypothesis, and the one property they must all have: the run ends in
exit 0, or in exit 2 with one error line (no traceback). Shared by ``test_options.py`` (a few examples in the
suite) and ``scripts/fuzz_cli.py`` (thousands, offline); the parts both trainers' fuzzers share are in
``tests/cli_fuzz_common.py``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import strategies as st

from semdyn.train import cli
from tests.cli_fuzz_common import FLOATS, NAMES, SEEDS, SMALL_INTS, check_outcome, draw_options, run_captured

CHOICES = {
    "--steps-per-save": SMALL_INTS,
    "--keep-checkpoints": SMALL_INTS,
    "--log-every": SMALL_INTS,
    "--downscale": st.sampled_from([-1, 0, 1, 2, 3, 7, 16, 79, 1000]),
    "--seed": SEEDS,
    "--device": st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "gpu", "cpu:0"]),
    "--experiment-name": NAMES,
    "--model.lrs.means": FLOATS,
    "--model.lrs.means-final": FLOATS,
    "--model.lrs.opacities": FLOATS,
    "--model.deform-lr": FLOATS,
    "--model.losses.ssim-lambda": FLOATS,
    "--model.init.sh-degree": st.integers(-1, 5),
}
"""The options drawn, each with the values it is drawn from."""


@st.composite
def option_lists(
    draw: st.DrawFn, max_steps: st.SearchStrategy[int] = st.integers(-6, 3), rare: bool = False
) -> list[str]:
    """Options of the core trainer's command line (without --data/--output-dir), each present or not (``rare``:
    each in one draw of ten, so that most runs get through validation and train)."""
    args: list[str] = [draw(st.sampled_from(["cpu", "cpu-static"])), "--max-steps", str(draw(max_steps))]
    args += draw_options(draw, CHOICES, rare)
    if draw(st.booleans()):
        args.append("--overwrite")
    return args


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``semdyn-train`` in this process; returns its exit code and what it printed (stdout + stderr)."""
    return run_captured(lambda: cli.entrypoint(args))


def check_command_line(options: list[str], data: Path, parse_only: bool = False) -> None:
    """The property: exit 0, or exit 2 and one ``error:`` line. ``parse_only`` stops after parse + validation."""
    with tempfile.TemporaryDirectory() as out:
        args = [*options, "--data", str(data), "--output-dir", out]
        if parse_only:
            from semdyn.errors import SemdynError
            from semdyn.train.options import validate_train_config

            try:
                config = cli.parse(args)
            except SystemExit as exit_:
                assert exit_.code == 2, (options, exit_.code)
                return
            try:
                validate_train_config(config)
            except SemdynError as err:
                assert "\n" not in str(err), (options, str(err))
            return
        check_outcome(options, *run_cli(args))
