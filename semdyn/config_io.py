"""Typed configs to JSON and back: what a run writes (:func:`config_to_json`) and what rendering, export and resume
rebuild from it (:func:`dataclass_from_dict`), so that a checkpoint alone is enough to rebuild the model it came from.

Every dataclass is written with a type tag (``"_type"``: its class name), so a union of configs
(``HexPlaneConfig | MLPDeformConfig | None``) is read back as the member that was saved; files written before the
tags existed are read by the old rule (the member whose fields hold every key). Paths become strings and non-finite
floats the strings ``"inf"`` / ``"nan"`` (JSON has neither).

>>> from semdyn.deform import MLPDeformConfig
>>> from semdyn.scene.dynamic import DynamicSceneConfig
>>> saved = config_to_json(DynamicSceneConfig(deformation=MLPDeformConfig()))
>>> saved["_type"], saved["deformation"]["_type"]
('DynamicSceneConfig', 'MLPDeformConfig')
>>> type(dataclass_from_dict(DynamicSceneConfig, saved).deformation).__name__
'MLPDeformConfig'
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from semdyn.errors import InputError

T = TypeVar("T")

TYPE_KEY = "_type"
"""The key of a saved dataclass's class name."""


def config_to_json(obj: Any) -> Any:
    """``obj`` (a config dataclass, or what its fields hold) as JSON-ready values, every dataclass tagged with its
    class name under :data:`TYPE_KEY`; lists and tuples become lists, paths strings, non-finite floats strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {TYPE_KEY: type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = config_to_json(getattr(obj, f.name))
        return out
    if isinstance(obj, dict):
        return {k: config_to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [config_to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def dataclass_from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Rebuild dataclass ``cls`` from ``data`` (a dict as :func:`config_to_json` wrote it, or an untagged one as
    ``dataclasses.asdict`` gave it before the tags).

    A union of dataclasses takes the member the tag names (untagged: the member whose fields hold every key of the
    dict). Keys the dataclass does not have, and a tag naming another type, are an :class:`InputError` naming them
    and ``where``.
    """
    return _convert(cls, data, where)


def _tag(value: dict[str, Any], where: str) -> tuple[str | None, dict[str, Any]]:
    """(the tag or None, the dict without it)."""
    if TYPE_KEY not in value:
        return None, value
    tag = value[TYPE_KEY]
    if not isinstance(tag, str):
        raise InputError(f"{where}: {TYPE_KEY} must be a class name, got {tag!r}")
    return tag, {k: v for k, v in value.items() if k != TYPE_KEY}


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        classes = [m for m in members if dataclasses.is_dataclass(m)]
        if isinstance(value, dict) and classes:
            tag, fields = _tag(value, where)
            if tag is not None:
                named = [c for c in classes if c.__name__ == tag]
                if not named:
                    known = [c.__name__ for c in classes]
                    raise InputError(f"{where}: {TYPE_KEY} {tag!r} is none of the config types {known}")
                return _convert(named[0], value, where)
            names = {c: {f.name for f in dataclasses.fields(c)} for c in classes}
            fitting = [c for c in classes if set(fields) <= names[c]]
            if not fitting:
                raise InputError(f"{where}: no config type of {members} has the keys {sorted(fields)}")
            return _convert(fitting[0], value, where)
        for m in members:
            if m is not type(None):
                return _convert(m, value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}")
        tag, value = _tag(value, where)
        if tag is not None and tag != tp.__name__:
            raise InputError(f"{where}: saved as {tag}, expected {tp.__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = set(value) - set(fields)
        if unknown:
            raise InputError(f"{where}: unknown keys {sorted(unknown)} for {tp.__name__}")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        return tp(**kwargs)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is list and isinstance(value, list):
        return [_convert(typing.get_args(tp)[0], v, where) for v in value]
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is float and isinstance(value, (str, int)):  # non-finite floats are saved as strings ("inf")
        return float(value)
    return value
