"""Fuzz ``semdyn-train``'s command line offline: thousands of option values, each run must end in exit 0 or in
exit 2 with one error line (no traceback). The strategies and the property live in ``tests/train/cli_fuzz.py``;
the suite runs a few of the same examples (``tests/train/test_options.py``).

python scripts/fuzz_cli.py                          # 2000 parse-and-validate examples, 50 whole runs
python scripts/fuzz_cli.py --parse 10000 --runs 300 # more
python scripts/fuzz_cli.py --data <sequence>        # another sequence (default: a tiny synthetic street)

Whole runs train 1-3 steps on the tiny street (2 cameras, 6 frames, 128x80), evaluate and write the video.
"""

from __future__ import annotations

import sys
import tempfile
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
    seed: int = 0
    """Hypothesis seed (the same seed draws the same command lines)."""


def _fuzzer(count: int, strategy: st.SearchStrategy[list[str]], data: Path, parse_only: bool, seed_: int):
    @seed(seed_)
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(options=strategy)
    def fuzz(options: list[str]) -> None:
        check_command_line(options, data, parse_only=parse_only)

    return fuzz


def main(config: FuzzConfig) -> None:
    with tempfile.TemporaryDirectory() as cache:
        data = config.data or ensure_scene(TINY, Path(cache))
        for count, strategy, parse_only in (
            (config.parse, option_lists(), True),
            (config.runs, option_lists(st.integers(1, 3), rare=True), False),
        ):
            if count > 0:
                print(f"{'parse + validate' if parse_only else 'whole runs'}: {count} examples", flush=True)
                _fuzzer(count, strategy, data, parse_only, config.seed)()
    print("ok: every command line ended in exit 0 or one error line")


if __name__ == "__main__":
    main(tyro.cli(FuzzConfig))
