"""Command lines of ``ns-train`` with semdyn's methods drawn by hypothesis, and the property they must all have:
exit 0, or exit 2 with one error line (no traceback). The suite parses and validates a few
(``test_ns_cli.py``); ``scripts/fuzz_cli.py --ns-parse N --ns-runs M`` checks thousands, and whole runs. The parts
shared with the core trainer's fuzzer are in ``tests/cli_fuzz_common.py``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from semdyn.errors import SemdynError, error_line
from semdyn.nerfstudio.errors import EXIT_CODE
from tests.cli_fuzz_common import FLOATS, NAMES, SEEDS, SMALL_INTS, check_outcome, draw_options, run_captured

CHOICES = {
    "--steps-per-save": SMALL_INTS,
    "--steps-per-eval-image": SMALL_INTS,
    "--machine.seed": SEEDS,
    "--experiment-name": NAMES,
    "--pipeline.model.seed": SEEDS,
    "--pipeline.model.scene.lrs.scales": FLOATS,
    "--optimizers.scales.optimizer.lr": FLOATS,
    "--pipeline.model.scene.lrs.means": FLOATS,
    "--pipeline.model.scene.lrs.means-final": FLOATS,
    "--optimizers.means.scheduler.lr-final": FLOATS,
    "--optimizers.means.scheduler.max-steps": SMALL_INTS,
    "--pipeline.model.scene.deform-lr": FLOATS,
    "--optimizers.deform-grid.optimizer.lr": FLOATS,
    "--pipeline.model.scene.losses.ssim-lambda": FLOATS,
    "--pipeline.model.scene.init.sh-degree": st.integers(-1, 5),
    "--pipeline.datamanager.camera-res-scale-factor": FLOATS,
}
"""The options drawn (of ``ns-train semdyn-cpu``), each with the values it is drawn from."""


@cache
def _config_union() -> Any:
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion  # imports every method: once

    return AnnotatedBaseConfigUnion


def parse_ns(args: list[str]) -> Any:
    """What ``ns-train <args>`` parses (nerfstudio's union of registered methods, as its entry point); tyro exits 2
    on a malformed command line, and on a config our validation refuses."""
    import tyro

    return tyro.cli(_config_union(), args=args)


@st.composite
def ns_option_lists(
    draw: st.DrawFn, max_steps: st.SearchStrategy[int] = st.integers(-3, 3), rare: bool = False
) -> list[str]:
    """Options of ``ns-train semdyn-cpu`` (without --data/--output-dir/--vis), each present or not (``rare``: in one
    draw of ten)."""
    return ["semdyn-cpu", "--max-num-iterations", str(draw(max_steps)), *draw_options(draw, CHOICES, rare)]


@contextlib.contextmanager
def as_under_ns_train() -> Iterator[None]:
    """End one of our errors as the hook does under ``ns-train`` (one line, exit 2), but with ``SystemExit``."""
    try:
        yield
    except SemdynError as err:
        print(error_line(err))
        raise SystemExit(EXIT_CODE) from None


def run_ns(args: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run ``ns-train <args>`` in a subprocess, as a user does (nerfstudio keeps its writers in module globals, so
    runs in one process would share them; and our errors' hook acts only where Python exits); returns its exit code
    and what it printed (stdout + stderr)."""
    root = str(Path(__file__).resolve().parents[2])
    env = os.environ | {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "nerfstudio.scripts.train", *args], capture_output=True, text=True,
                         timeout=timeout, env=env)  # fmt: skip
    return res.returncode, res.stdout + res.stderr


def check_ns_command_line(options: list[str], data: Path, parse_only: bool = False) -> None:
    """The property (:func:`tests.cli_fuzz_common.check_outcome`); ``parse_only`` parses in this process and stops
    after validation (tyro builds the config, which validates itself) and the checks before nerfstudio writes
    anything; otherwise ``ns-train`` runs whole in a subprocess."""
    with tempfile.TemporaryDirectory() as out:
        args = [*options, "--data", str(data), "--output-dir", out, "--vis", "tensorboard"]
        if not parse_only:
            check_outcome(options, *run_ns(args))
            return

        def entry() -> None:
            config = parse_ns(args)
            with as_under_ns_train():
                config.check_sequence()

        check_outcome(options, *run_captured(entry))
