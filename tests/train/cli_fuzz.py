"""Command lines of ``semdyn-train`` drawn by hypothesis, and the one property they must all have: the run ends in
exit 0, or in exit 2 with one error line (no traceback). Shared by ``test_options.py`` (a few examples in the
suite) and ``scripts/fuzz_cli.py`` (thousands, offline)."""

from __future__ import annotations

import io
import math
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import strategies as st

from semdyn.train import cli

SMALL_INTS = st.integers(-3, 4) | st.sampled_from([-(2**63), 2**31, 2**63])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1e-3, 1e-3, 1.6e-4])


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else repr(x)


@st.composite
def option_lists(
    draw: st.DrawFn, max_steps: st.SearchStrategy[int] = st.integers(-6, 3), rare: bool = False
) -> list[str]:
    """Options of the core trainer's command line (without --data/--output-dir), each present or not (``rare``:
    each in one draw of ten, so that most runs get through validation and train)."""
    args: list[str] = [draw(st.sampled_from(["cpu", "cpu-static"]))]
    args += ["--max-steps", str(draw(max_steps))]
    choices = {
        "--steps-per-save": SMALL_INTS,
        "--keep-checkpoints": SMALL_INTS,
        "--log-every": SMALL_INTS,
        "--downscale": st.sampled_from([-1, 0, 1, 2, 3, 7, 16, 79, 1000]),
        "--seed": st.integers(-5, 5) | st.sampled_from([2**31 - 1, 2**31, 2**62]),
        "--device": st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "gpu", "cpu:0"]),
        "--experiment-name": st.sampled_from(["run", "a b", "..", ".", "x/y", " lead", "ü-ß"]),
        "--model.lrs.means": FLOATS,
        "--model.lrs.means-final": FLOATS,
        "--model.lrs.opacities": FLOATS,
        "--model.deform-lr": FLOATS,
        "--model.losses.ssim-lambda": FLOATS,
        "--model.init.sh-degree": st.integers(-1, 5),
    }
    for name, strategy in choices.items():
        if draw(st.integers(0, 9)) == 0 if rare else draw(st.booleans()):
            value = draw(strategy)
            args += [name, _num(value) if isinstance(value, float) else str(value)]
    if draw(st.booleans()):
        args.append("--overwrite")
    return args


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``semdyn-train`` in this process; returns its exit code and what it printed (stdout + stderr)."""
    out = io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(out):
        try:
            cli.entrypoint(args)
        except SystemExit as exit_:
            code = int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
        except BaseException as err:  # anything escaping entrypoint is the failure we look for
            import traceback

            traceback.print_exception(err, file=out)
            code = -1
    return code, out.getvalue()


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
        code, printed = run_cli(args)
        assert "Traceback" not in printed, (options, printed[-3000:])
        assert code in (0, 2), (options, code, printed[-3000:])
        if code == 2 and "usage:" not in printed.lower():  # tyro's own usage errors are several lines by design
            errors = [line for line in printed.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, (options, printed[-3000:])
