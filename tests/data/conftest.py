"""Fixtures of the data tests: tiny sequences written into temporary folders (no nerfstudio import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.data.sequence_writer import write_sequence


@pytest.fixture
def tiny_sequence(tmp_path: Path) -> Path:
    """2 cameras x 4 timestamps, masks, semantics, depth, PLY with time, one object track."""
    root = tmp_path / "seq"
    write_sequence(root)
    return root


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A tiny sequence written once per module, and its transforms dict, for fuzzing transforms.json."""
    root = tmp_path_factory.mktemp("fuzz")
    return root, write_sequence(root)
