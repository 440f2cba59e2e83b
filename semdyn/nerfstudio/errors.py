"""semdyn's errors under ``ns-train``: one line and exit code 2, as ``semdyn-train`` ends them.

nerfstudio's command lines are nerfstudio's (``ns-train`` calls ``tyro.cli`` and the trainer with no place for a
plugin to catch anything), but ns-train imports :mod:`semdyn.method_config` to list the methods, and that installs
:func:`install_error_hook`: a ``sys.excepthook`` that prints one of our own errors (:class:`semdyn.errors.SemdynError`,
raised for what the user can fix) as ``error: <sentence>`` and exits 2. Every other exception keeps nerfstudio's
traceback, and an interactive session (``python -i``, the REPL) keeps Python's hook.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType

from semdyn.errors import SemdynError, error_line

EXIT_CODE = 2
"""The exit status of a run refused by one of our errors (as ``semdyn-train``)."""


def _interactive() -> bool:
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def semdyn_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """Print one of our errors as one line and exit 2; hand anything else to the hook that was there before."""
    if not isinstance(value, SemdynError) or _interactive():
        _previous(kind, value, tb)
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.write(error_line(value) + "\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)  # past the excepthook Python would exit 1; nothing is left to clean up (the stack unwound)


_previous = sys.excepthook


def install_error_hook() -> None:
    """Make :func:`semdyn_excepthook` the process's excepthook (once; the hook before it handles everything else)."""
    global _previous
    if sys.excepthook is not semdyn_excepthook:
        _previous = sys.excepthook
        sys.excepthook = semdyn_excepthook


__all__ = ["EXIT_CODE", "install_error_hook", "semdyn_excepthook"]
