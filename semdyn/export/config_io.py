"""Typed configs back from the JSON a run wrote (``dataclasses.asdict`` + :func:`semdyn.train.trainer._jsonable`).

The trainer saves its :class:`TrainConfig` as plain JSON in every checkpoint; rendering and export rebuild the
exact dataclasses from it, so that a checkpoint alone is enough to rebuild the model it came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from semdyn.errors import InputError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Rebuild dataclass ``cls`` from ``data`` (a dict as ``dataclasses.asdict`` gave it).

    Unions of dataclasses (``HexPlaneConfig | MLPDeformConfig | None``) pick the member whose fields hold every
    key of the dict. Keys the dataclass does not have are an :class:`InputError` naming them and ``where``.
    """
    return _convert(cls, data, where)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        classes = [m for m in members if dataclasses.is_dataclass(m)]
        if isinstance(value, dict) and classes:
            names = {c: {f.name for f in dataclasses.fields(c)} for c in classes}
            fitting = [c for c in classes if set(value) <= names[c]]
            if not fitting:
                raise InputError(f"{where}: no config type of {members} has the keys {sorted(value)}")
            return _convert(fitting[0], value, where)
        for m in members:
            if m is not type(None):
                return _convert(m, value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}")
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
