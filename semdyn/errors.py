"""The error types semdyn raises for problems the user can fix.

Every public entry point turns bad input into one of these, with one sentence that names the
file, field or argument at fault, so that nothing ends in a long traceback from deep inside.
"""

from __future__ import annotations

from pathlib import Path


class SemdynError(Exception):
    """Base class of every error semdyn raises on purpose."""


class InputError(SemdynError, ValueError):
    """An argument passed to a public function has the wrong shape, dtype, device or value."""


class DataFormatError(SemdynError, ValueError):
    """A sequence folder does not follow the format of ``shared/DATA_FORMAT.md``.

    Args:
        path: the file at fault (or the sequence folder).
        message: one sentence saying what is wrong, naming the field when there is one.
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class MissingCheckpointError(SemdynError, FileNotFoundError):
    """A model checkpoint (SAM, CLIP, LPIPS, ...) named by a config option is not on disk."""

    def __init__(self, option: str, path: str | Path, hint: str = "") -> None:
        self.option = option
        self.path = Path(path)
        text = f"the checkpoint for {option} was not found at {self.path}"
        super().__init__(text + (f"; {hint}" if hint else ""))


def error_line(err: BaseException) -> str:
    """The one line an entry point prints for one of our errors (``error: <sentence>``), newlines folded."""
    return "error: " + " ".join(str(err).split("\n"))


def unreadable_checkpoint(option: str, path: str | Path, err: BaseException) -> InputError:
    """The one sentence for a checkpoint file that exists but is not the model's (random bytes, a truncated download,
    another model's weights): names the option and the file, not the loader's advice."""
    return InputError(
        f"{option} {path}: not a readable checkpoint of this model ({type(err).__name__}); download it again"
    )


def read_text(path: str | Path) -> str:
    """The text of ``path``; one :class:`DataFormatError` naming the file when it is missing or not text."""
    try:
        return Path(path).read_text()
    except UnicodeDecodeError as err:
        raise DataFormatError(path, "is not a text file (binary or another encoding than UTF-8)") from err
    except OSError as err:
        raise DataFormatError(path, f"cannot be read ({err.strerror or type(err).__name__})") from err
