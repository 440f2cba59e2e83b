"""Object dictionaries: every shipped YAML parses; a bad entry is one sentence naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from semdyn.errors import DataFormatError
from semdyn.semantics.dictionary import DEFAULT_DICTIONARY, load_dictionary

DICT_DIR = Path(__file__).resolve().parents[2] / "configs" / "dictionaries"


@pytest.mark.parametrize("path", sorted(DICT_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_dictionary_parses(path: Path) -> None:
    d = load_dictionary(path)
    assert len(d.entries) >= 1
    assert len(set(d.prompts)) == len(d.prompts)


def test_default_vocabulary_has_static_and_nonrigid_entries() -> None:
    d = load_dictionary(DEFAULT_DICTIONARY)
    by_class = {e.class_name: e for e in d.entries}
    assert by_class["road"].static and not by_class["car"].static
    assert by_class["car"].rigid and not by_class["pedestrian"].rigid
    assert len(d.fingerprint()) == 16


def test_bad_entry_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("entries:\n  - {prompt: car, class: car, static: maybe}\n")
    with pytest.raises(DataFormatError, match=r"entries\[0\]\.static"):
        load_dictionary(path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_dictionary(tmp_path / "missing.yaml")
