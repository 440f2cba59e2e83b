"""One shape guard for tensors handed to semdyn's public functions (kornia's ``KORNIA_CHECK_SHAPE`` idea).

``check_shape(x, "[T, N, 3]", "deformed_means")`` returns ``x`` when it is a tensor of that shape and raises an
:class:`~semdyn.errors.InputError` that names the argument, the expected shape (with the sizes already known) and
what came otherwise. Letters are sizes bound on first use through ``dims``, so one dict checks that several tensors
agree (``N`` of the means and ``N`` of the ids); digits are fixed sizes; a leading ``...`` takes any number of
leading axes. The check costs no host sync (it reads shapes only) and can be switched off for speed in a hot loop
whose inputs were checked once, with :func:`shape_checks` or ``SEMDYN_CHECK_SHAPES=0``.

>>> import torch
>>> dims = {}
>>> check_shape(torch.zeros(2, 5, 3), "[T, N, 3]", "deformed", dims=dims).shape, dims
(torch.Size([2, 5, 3]), {'T': 2, 'N': 5})
>>> check_shape(torch.zeros(4, 3), "[N, 3]", "canonical", dims=dims)
Traceback (most recent call last):
    ...
semdyn.errors.InputError: canonical must be a tensor of shape [N, 3] = [5, 3], got shape [4, 3] torch.float32
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import contextmanager
from functools import lru_cache
from typing import cast

import torch
from torch import Tensor

from semdyn.errors import InputError

_ENABLED = [os.environ.get("SEMDYN_CHECK_SHAPES", "1") != "0"]


def shape_checks_enabled() -> bool:
    """Whether :func:`check_shape` checks now (``SEMDYN_CHECK_SHAPES=0`` turns it off for the process)."""
    return _ENABLED[0]


@contextmanager
def shape_checks(enabled: bool) -> Generator[None]:
    """Within the block, :func:`check_shape` checks (True) or returns its input unchecked (False)."""
    before = _ENABLED[0]
    _ENABLED[0] = enabled
    try:
        yield
    finally:
        _ENABLED[0] = before


@lru_cache(maxsize=256)
def _parse(pattern: str) -> tuple[bool, tuple[str, ...]]:
    """``"[..., N, 3]"`` -> (True, ("N", "3")); a malformed pattern is a programming error (ValueError)."""
    body = pattern.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError(f"shape pattern {pattern!r} must look like '[T, N, 3]'")
    axes = tuple(a.strip() for a in body[1:-1].split(",") if a.strip())
    ellipsis = bool(axes) and axes[0] == "..."
    axes = axes[1:] if ellipsis else axes
    for a in axes:
        if not (a.isdigit() or a.isidentifier()):
            raise ValueError(f"shape pattern {pattern!r}: axis {a!r} must be a size or a letter")
    return ellipsis, axes


def _describe(x: object) -> str:
    return f"shape {list(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def check_shape(
    x: object,
    pattern: str,
    name: str,
    *,
    dims: dict[str, int] | None = None,
    floating: bool = False,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Return ``x`` if it is a tensor of shape ``pattern``, else raise an :class:`InputError` naming ``name``.

    Args:
        x: the argument.
        pattern: e.g. ``"[T, N, 3]"``, ``"[N]"``, ``"[..., 4]"``; letters bind through ``dims``.
        name: the argument's name, for the message.
        dims: sizes of letters already known (updated with those bound here); None: a fresh binding.
        floating: also require a floating-point dtype.
        dtype: also require exactly this dtype.

    Returns:
        ``x`` itself.
    """
    if not _ENABLED[0]:
        return cast(Tensor, x)  # unchecked by request: the caller vouches for it
    ellipsis, axes = _parse(pattern)
    known = {} if dims is None else dims
    kind = str(dtype).removeprefix("torch.") if dtype is not None else ("floating-point" if floating else "")
    what = f"{'an' if kind[:1] in 'aeiou' and kind else 'a'} {kind} tensor" if kind else "a tensor"

    def fail() -> InputError:
        sizes = ", ".join(a if a.isdigit() or a not in known else str(known[a]) for a in axes)
        expected = pattern if sizes == ", ".join(axes) else f"{pattern} = [{'..., ' if ellipsis else ''}{sizes}]"
        return InputError(f"{name} must be {what} of shape {expected}, got {_describe(x)}")

    if not isinstance(x, Tensor):
        raise fail()
    if (dtype is not None and x.dtype != dtype) or (floating and not x.is_floating_point()):
        raise fail()
    shape = tuple(x.shape)
    if len(shape) < len(axes) or (not ellipsis and len(shape) != len(axes)):
        raise fail()
    bound: dict[str, int] = {}
    for a, size in zip(axes, shape[len(shape) - len(axes) :]):
        if a.isdigit():
            if size != int(a):
                raise fail()
        elif a in known or a in bound:
            if size != (known[a] if a in known else bound[a]):
                raise fail()
        else:
            bound[a] = size
    known.update(bound)
    return x
