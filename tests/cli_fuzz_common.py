"""What the command-line fuzzers of both trainers share: option values that break naive code, the drawing of one
command line from a table of options, running an entry point in this process, and the property every run must have
(exit 0, or exit 2 with one ``error:`` line and no traceback). ``tests/train/cli_fuzz.py`` fuzzes ``semdyn-train``,
``tests/nerfstudio/ns_cli_fuzz.py`` ``ns-train``; ``scripts/fuzz_cli.py`` runs both offline."""

from __future__ import annotations

import io
import math
import traceback
from collections.abc import Callable, Mapping
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import strategies as st

SMALL_INTS = st.integers(-3, 4) | st.sampled_from([-(2**63), 2**31, 2**63])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1e-3, 1e-3, 1.6e-4])
SEEDS = st.integers(-5, 5) | st.sampled_from([2**31 - 1, 2**31, 2**32, 2**62])
NAMES = st.sampled_from(["run", "a b", "..", ".", "x/y", " lead", "ü-ß"])


def as_arg(value: object) -> str:
    """A drawn value as the command line spells it (``nan``, floats by repr)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def draw_options(draw: st.DrawFn, choices: Mapping[str, st.SearchStrategy], rare: bool = False) -> list[str]:
    """``--name value`` for each option of ``choices``, present in one draw of two (``rare``: of ten, so that most
    command lines get through validation and run). Absent is the simplest draw: hypothesis starts from, and
    shrinks to, few options."""
    args: list[str] = []
    for name, strategy in choices.items():
        if draw(st.integers(0, 9)) == 9 if rare else draw(st.booleans()):
            args += [name, as_arg(draw(strategy))]
    return args


def run_captured(entry: Callable[[], None]) -> tuple[int, str]:
    """Run ``entry`` in this process; its exit code (0 when it returns, -1 when an exception escapes) and all it
    printed (stdout + stderr, and the traceback of an escaping exception)."""
    out = io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(out):
        try:
            entry()
        except SystemExit as exit_:
            code = int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
        except BaseException as err:  # anything escaping the entry point is the failure we look for
            traceback.print_exception(err, file=out)
            code = -1
    return code, out.getvalue()


def check_outcome(options: list[str], code: int, printed: str) -> None:
    """The property: exit 0, or exit 2 and one ``error:`` line; never a traceback. tyro's own usage errors (several
    lines in a box, by design) count as one error."""
    assert "Traceback" not in printed, (options, printed[-3000:])
    assert code in (0, 2), (options, code, printed[-3000:])
    if code == 2 and "usage:" not in printed.lower() and "For full helptext" not in printed:
        errors = [line for line in printed.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (options, printed[-3000:])
