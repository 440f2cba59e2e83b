"""scripts/benchmark_real.py refuses what it cannot use in one sentence, before training anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_real.py"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_folder_without_transforms_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "seq").mkdir()
    result = _run("--sequences", str(tmp_path / "seq"), "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "seq" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_downscale_is_refused(tmp_path: Path) -> None:
    result = _run("--sequences", str(tmp_path), "--downscale", "0", cwd=tmp_path)
    assert result.returncode != 0 and "--downscale" in result.stderr and "Traceback" not in result.stderr
