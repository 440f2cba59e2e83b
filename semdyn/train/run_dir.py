"""A run folder owned by one writer: a lock, no silent mixing of two runs, no temporary files left behind.

``claim_run_dir`` is what a training run holds while it writes ``output_dir/experiment_name``:

- an exclusive ``fcntl.flock`` on ``<run>/.lock`` (a second writer is refused in one sentence; the lock goes with
  the process, so a killed run never leaves the folder locked, and the file is removed when the run ends);
- a run folder that already holds a run (checkpoints or metrics.json) is refused unless the run resumes from it
  (``--load-dir``) or ``--overwrite`` is given, which removes the old run's outputs (only those: checkpoints,
  renders, metrics.json, config.json; a semantics cache kept in the folder stays);
- stale temporary files of killed saves (``checkpoints/.step-*.pt.tmp*``, ``renders/.video.tmp*``) are removed:
  under the lock no other writer can own them.

Re-entrant within one process (the CLI claims the folder for train + evaluate + video, the trainer again for the
loop), so one run holds one lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Generator
from pathlib import Path

from semdyn.errors import InputError
from semdyn.outputs import make_output_folder

log = logging.getLogger("semdyn")

LOCK_NAME = ".lock"
RUN_OUTPUTS = ("checkpoints", "renders", "metrics.json", "config.json")
"""What a run writes into its folder, and what ``--overwrite`` removes."""
STALE_PATTERNS = ("checkpoints/.step-*.pt.tmp*", "renders/.video.tmp*")
STEP = re.compile(r"step-(\d+)\.pt")

_held: dict[Path, list[int]] = {}  # run folder -> [fd, depth] of the locks this process holds


class RunDirInUseError(InputError):
    """Another process is writing the run folder."""


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``step-XXXXXXX.pt`` file name, or None."""
    m = STEP.fullmatch(path.name)
    return int(m.group(1)) if m else None


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The ``checkpoints/step-*.pt`` of a run folder, oldest step first."""
    found = [(step, p) for p in (run_dir / "checkpoints").glob("step-*.pt") if (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found, key=lambda sp: sp[0])]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _lock(run_dir: Path) -> int:
    """Take the exclusive lock of ``run_dir`` (refuse if another process holds it); returns its descriptor."""
    path = run_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            owner = _read_owner(path)
            raise RunDirInUseError(
                f"{run_dir} is being written by another run{owner}; wait for it to finish or pick another "
                "--experiment-name"
            ) from None
        # The previous holder may have removed the file between our open and flock: lock the file that is there.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _read_owner(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def _unlock(run_dir: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_dir / LOCK_NAME).unlink()  # while still locked: a waiting writer re-opens and locks a fresh file
    os.close(fd)


def existing_run(run_dir: Path) -> Path | None:
    """What shows that ``run_dir`` holds a run (its newest checkpoint, or metrics.json), or None."""
    ckpts = run_checkpoints(run_dir)
    if ckpts:
        return ckpts[-1]
    metrics = run_dir / "metrics.json"
    return metrics if metrics.exists() else None


def _check_reuse(run_dir: Path, load_dir: Path | None, overwrite: bool) -> None:
    """Refuse to mix a new run into a folder holding another; with ``overwrite``, remove the old run's outputs."""
    found = existing_run(run_dir)
    if found is None:
        return
    resumes_here = load_dir is not None and _inside(load_dir, run_dir)
    if overwrite:
        if resumes_here:
            raise InputError(f"--overwrite would delete {load_dir}, which --load-dir resumes from; give one of the two")
        for name in RUN_OUTPUTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        log.info("--overwrite: removed the previous run's outputs from %s", run_dir)
        return
    if resumes_here and load_dir is not None and load_dir.is_file() and found.name != "metrics.json":
        if (checkpoint_step(load_dir) or -1) < (checkpoint_step(found) or -1):
            raise InputError(
                f"--load-dir {load_dir} is older than {found.name} of the same run, whose later checkpoints would "
                f"mix with this run's; resume from {run_dir}, or copy the checkpoint into a new run folder"
            )
    if not resumes_here:
        raise InputError(
            f"{run_dir} already holds a run ({found.relative_to(run_dir)}); resume it with --load-dir {run_dir}, "
            "start it again with --overwrite, or pick another --experiment-name"
        )


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files killed runs left (call under the lock); returns them."""
    removed = []
    for pattern in STALE_PATTERNS:
        for tmp in run_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run from %s", len(removed), run_dir)
    return removed


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, load_dir: Path | None = None, overwrite: bool = False) -> Generator[Path, None, None]:
    """Hold ``run_dir`` for one run (see the module docstring); nested claims in one process share the lock.

    Raises:
        RunDirInUseError: another process holds the folder.
        InputError: the folder holds another run (and neither resume nor overwrite was asked), or is not writable.
    """
    key = Path(os.path.abspath(run_dir))
    if key in _held:
        _held[key][1] += 1
        try:
            yield run_dir
        finally:
            _held[key][1] -= 1
        return
    make_output_folder(run_dir, "--output-dir")
    fd = _lock(run_dir)
    _held[key] = [fd, 1]
    try:
        _check_reuse(run_dir, load_dir, overwrite)
        remove_stale_temporaries(run_dir)
        yield run_dir
    finally:
        del _held[key]
        _unlock(run_dir, fd)


def latest_checkpoint(path: Path, option: str = "--load-dir") -> Path:
    """The checkpoint file itself, or the newest ``step-*.pt`` under ``path/checkpoints`` (``option`` names the
    argument in the error)."""
    if path.is_file():
        return path
    if not path.exists():
        raise InputError(f"{option} {path}: no such checkpoint file or run folder")
    ckpts = run_checkpoints(path)
    if not ckpts:
        raise InputError(f"{option} {path}: no checkpoint (checkpoints/step-*.pt) found there")
    return ckpts[-1]


__all__ = [
    "latest_checkpoint",
    "RunDirInUseError",
    "checkpoint_step",
    "claim_run_dir",
    "existing_run",
    "remove_stale_temporaries",
    "run_checkpoints",
]
