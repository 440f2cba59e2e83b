"""Object dictionaries: the text prompts SAM masks are matched against, parsed from YAML into typed entries.

A dictionary file (``configs/dictionaries/*.yaml``)::

    name: driving
    entries:
      - {prompt: "a photo of a car", class: car, static: false, rigid: true}

Entry ``i`` gets the object-ID ``i + 1`` in the per-frame ID maps (0 = no match).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from semdyn.errors import DataFormatError, read_text

DEFAULT_DICTIONARY = Path(__file__).resolve().parents[2] / "configs" / "dictionaries" / "driving.yaml"
"""The default driving vocabulary shipped with semdyn."""


@dataclass(frozen=True)
class DictionaryEntry:
    """One prompt of an object dictionary."""

    prompt: str
    """Text given to CLIP's text encoder, e.g. "a photo of a car"."""
    class_name: str
    """Semantic class the prompt stands for (``class`` in the file)."""
    static: bool
    """True for things that never move (road, buildings): their Gaussians need no deformation."""
    rigid: bool = True
    """True for things that move as one rigid body (vehicles); False for pedestrians, cyclists."""


@dataclass(frozen=True)
class ObjectDictionary:
    """A named list of entries; entry ``i`` is object-ID ``i + 1``."""

    name: str
    """Name of the vocabulary."""
    entries: tuple[DictionaryEntry, ...]
    """The prompts, in ID order."""

    @property
    def prompts(self) -> list[str]:
        return [e.prompt for e in self.entries]

    def fingerprint(self) -> str:
        """Hash of the entries (part of the semantics cache key), 16 hex digits."""
        text = json.dumps([asdict(e) for e in self.entries], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_dictionary(path: Path | str = DEFAULT_DICTIONARY) -> ObjectDictionary:
    """Parse a dictionary YAML file.

    Raises:
        DataFormatError: the file is missing, not YAML, or an entry lacks ``prompt``/``class``/``static`` or has
            a value of the wrong type (the message names the entry and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "the object dictionary file does not exist")
    try:
        raw = yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        raise DataFormatError(path, f"not valid YAML ({err.__class__.__name__})") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list) or not raw["entries"]:
        raise DataFormatError(path, "expected a mapping with a non-empty 'entries' list")
    entries = []
    for i, item in enumerate(raw["entries"]):
        where = f"entries[{i}]"
        if not isinstance(item, dict):
            raise DataFormatError(path, f"{where} must be a mapping with prompt, class and static")
        for key, kind in (("prompt", str), ("class", str), ("static", bool)):
            if not isinstance(item.get(key), kind):
                raise DataFormatError(path, f"{where}.{key} must be a {kind.__name__}, got {item.get(key)!r}")
        rigid = item.get("rigid", True)
        if not isinstance(rigid, bool):
            raise DataFormatError(path, f"{where}.rigid must be a bool, got {rigid!r}")
        unknown = set(item) - {"prompt", "class", "static", "rigid"}
        if unknown:
            raise DataFormatError(path, f"{where} has unknown fields {sorted(unknown)}")
        entries.append(DictionaryEntry(item["prompt"], item["class"], item["static"], rigid))
    if len(entries) > 65534:
        raise DataFormatError(path, "at most 65534 entries fit a 16-bit ID map")
    return ObjectDictionary(name=str(raw.get("name", path.stem)), entries=tuple(entries))
