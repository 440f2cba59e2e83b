"""An output folder that cannot be written ends every entry point in one sentence naming it, exit 2: semdyn-train,
the export scripts (export_ply.py, render.py, export_tracks.py) and ns-train. Two ways to make one: a path below a
regular file (mkdir: NotADirectoryError; works as root), and a folder chmod 0o555 (skipped as root, which ignores
permissions)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.export.trained import tiny_checkpoint  # noqa: F401  (the session's tiny trained run)

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("semdyn-train", "export_ply", "render", "export_tracks", "ns-train")


def command(entry: str, out: Path, checkpoint: Path, scene: Path) -> list[str]:
    """The command line of ``entry`` writing into ``out``."""
    py = sys.executable
    scripts = ROOT / "scripts"
    return {
        "semdyn-train": [py, "-m", "semdyn.train.cli", "cpu", "--data", str(scene), "--output-dir", str(out)],
        "export_ply": [py, str(scripts / "export_ply.py"), "--checkpoint", str(checkpoint), "--times", "0",
                       "--output-dir", str(out), "--device", "cpu"],
        "render": [py, str(scripts / "render.py"), "dataset", "--checkpoint", str(checkpoint), "--output-dir",
                   str(out), "--device", "cpu"],
        "export_tracks": [py, str(scripts / "export_tracks.py"), "--checkpoint", str(checkpoint), "--output",
                          str(out / "tracks.json"), "--device", "cpu"],
        "ns-train": [py, "-m", "nerfstudio.scripts.train", "semdyn-cpu", "--data", str(scene), "--output-dir",
                     str(out), "--vis", "tensorboard"],
    }[entry]  # fmt: skip


def unwritable(tmp_path: Path, how: str) -> Path:
    """An output folder that cannot be written: below a regular file, or read-only (not as root)."""
    if how == "below-a-file":
        (tmp_path / "a-file").write_text("not a folder")
        return tmp_path / "a-file" / "out"
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("how", ["below-a-file", "read-only"])
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_unwritable_output_folder_is_one_sentence(
    entry: str,
    how: str,
    tmp_path: Path,
    tiny_checkpoint: Path,  # noqa: F811
    tiny_scene: Path,
) -> None:
    if entry == "ns-train" and importlib.util.find_spec("nerfstudio") is None:
        pytest.skip("needs nerfstudio")
    out = unwritable(tmp_path, how)
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        res = subprocess.run(command(entry, out, tiny_checkpoint, tiny_scene), capture_output=True, text=True,
                             timeout=300, env=env)  # fmt: skip
    finally:
        if out.exists():
            out.chmod(0o755)
    printed = res.stdout + res.stderr
    errors = [line for line in printed.splitlines() if line.startswith("error:")]
    assert res.returncode == 2, printed[-3000:]
    assert "Traceback" not in printed, printed[-3000:]
    assert len(errors) == 1 and "cannot write the output folder" in errors[0] and str(out) in errors[0], errors
