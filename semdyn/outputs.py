"""Output folders of every entry point: one sentence naming the folder (and the option to change) when it cannot
be written, instead of a ``PermissionError`` / ``NotADirectoryError`` traceback from the first write."""

from __future__ import annotations

import os
from pathlib import Path

from semdyn.errors import InputError


def _refuse(folder: Path, why: str, option: str) -> InputError:
    return InputError(f"cannot write the output folder {folder} ({why}); pick another {option}")


def check_output_folder(folder: Path, option: str) -> None:
    """Refuse ``folder`` (given by ``option``) when it could not be made or written, without making it: its nearest
    existing ancestor (itself, when it exists) must be a writable folder."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise _refuse(folder, f"{existing} is not a folder", option)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _refuse(folder, f"{existing} is not writable", option)


def make_output_folder(folder: Path, option: str) -> Path:
    """Make ``folder`` (and its parents) and check that it can be written; returns it.

    Raises:
        InputError: naming the folder and ``option`` (read-only, below a file, ...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _refuse(folder, err.strerror or type(err).__name__, option) from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _refuse(folder, "not writable", option)
    return folder


__all__ = ["check_output_folder", "make_output_folder"]
