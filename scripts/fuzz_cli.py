"""Fuzz the trainers' command lines offline: thousands of option values, each run must end in exit 0 or in exit 2
with one error line (no traceback). The strategies and the property live in ``tests/train/cli_fuzz.py``
(``semdyn-train``) and ``tests/nerfstudio/ns_cli_fuzz.py`` (``ns-train semdyn-cpu``), their shared parts in
``tests/cli_fuzz_common.py``; the suite runs a few of the same examples.

python scripts/fuzz_cli.py                          # semdyn-train: 2000 parse-and-validate examples, 50 whole runs
python scripts/fuzz_cli.py --parse 10000 --runs 300 # more
python scripts/fuzz_cli.py --parse 0 --runs 0 --ns-parse 2000 --ns-runs 20   # ns-train (needs nerfstudio)
python scripts/fuzz_cli.py --data <sequence>        # another sequence (default: a tiny synthetic street)

Whole runs train 1-3 steps on the tiny street (2 cameras, 6 frames, 128x80); semdyn-train's also evaluate and
write the video.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tyro
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package, from a checkout

from semdyn.synth import ensure_scene  # noqa: E402
from tests.conftest import TINY  # noqa: E402
from tests.train.cli_fuzz import check_command_line, option_lists  # noqa: E402


@dataclass
class FuzzConfig:
    parse: int = 2000
    """Examples checked by parse + validation only (fast)."""
    runs: int = 50
    """Examples run whole (train, evaluate, video)."""
    data: Path | None = None
    """Sequence folder; default the tiny synthetic street (generated into a temporary cache)."""
    ns_parse: int = 0
    """ns-train examples checked by parse + validation only."""
    ns_runs: int = 0
    """ns-train examples run whole (nerfstudio's trainer, in this process)."""
    seed: int = 0
    """Hypothesis seed (the same seed draws the same command lines)."""


Check = Callable[[list[str], Path, bool], None]


def _fuzzer(count: int, strategy: st.SearchStrategy[list[str]], check: Check, data: Path, parse_only: bool,
            seed_: int) -> Callable[[], None]:  # fmt: skip
    @seed(seed_)
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(options=strategy)
    def fuzz(options: list[str]) -> None:
        check(options, data, parse_only)

    return fuzz


def _plan(config: FuzzConfig) -> list[tuple[str, int, st.SearchStrategy[list[str]], Check, bool]]:
    """(name, count, strategy, check, parse_only) of every fuzz asked for."""
    plan: list[tuple[str, int, st.SearchStrategy[list[str]], Check, bool]] = [
        ("semdyn-train parse + validate", config.parse, option_lists(), check_command_line, True),
        ("semdyn-train whole runs", config.runs, option_lists(st.integers(1, 3), rare=True), check_command_line, False),
    ]
    if config.ns_parse > 0 or config.ns_runs > 0:
        from tests.nerfstudio.ns_cli_fuzz import check_ns_command_line, ns_option_lists

        plan += [
            ("ns-train parse + validate", config.ns_parse, ns_option_lists(), check_ns_command_line, True),
            ("ns-train whole runs", config.ns_runs, ns_option_lists(st.integers(1, 3), rare=True),
             check_ns_command_line, False),
        ]  # fmt: skip
    return [step for step in plan if step[1] > 0]


def main(config: FuzzConfig) -> None:
    with tempfile.TemporaryDirectory() as cache:
        data = config.data or ensure_scene(TINY, Path(cache))
        for name, count, strategy, check, parse_only in _plan(config):
            t0 = time.perf_counter()
            print(f"{name}: {count} examples", flush=True)
            _fuzzer(count, strategy, check, data, parse_only, config.seed)()
            print(f"{name}: {count} examples ok in {time.perf_counter() - t0:.0f} s", flush=True)
    print("ok: every command line ended in exit 0 or one error line")


if __name__ == "__main__":
    main(tyro.cli(FuzzConfig))
