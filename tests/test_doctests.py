"""The runnable examples in semdyn's docstrings run and print what they say (every module whose source holds one)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "semdyn"


def _modules_with_examples() -> list[str]:
    """Dotted names of the semdyn modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        if ">>> " in path.read_text():
            rel = path.relative_to(ROOT.parent).with_suffix("")
            names.append(".".join(p for p in rel.parts if p != "__init__"))
    return names


def test_some_modules_carry_examples() -> None:
    assert len(_modules_with_examples()) >= 3


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no example doctest could find"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (pytest -s shows them)"
