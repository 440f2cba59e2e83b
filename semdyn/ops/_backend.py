"""Lazy loader of semdyn's compiled extension (:mod:`cuda_ext`).

Nothing is compiled at import. The first call to :func:`get_ext` JIT-builds the extension with
``torch.utils.cpp_extension`` (C++/OpenMP sources; CUDA sources too when a toolkit and a CUDA device
are present), or loads it from torch's cache. ``SEMDYN_BUILD_NO_EXT=1`` skips the build and every op
falls back to its pure-PyTorch reference in :mod:`semdyn.ops._torch_impl`, with one log line.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

import torch

from semdyn.errors import InputError

log = logging.getLogger("semdyn")

_EXT: ModuleType | None = None
_TRIED = False
_REASON = ""


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``--device`` option: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``; asking for CUDA where there is none is an :class:`InputError` that says to use the CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
    return torch.device(name)


def ext_disabled() -> bool:
    """Whether the user asked not to build the extension (``SEMDYN_BUILD_NO_EXT=1``)."""
    return os.environ.get("SEMDYN_BUILD_NO_EXT", "0") not in ("", "0", "false", "False")


def get_ext() -> ModuleType | None:
    """The compiled extension, building it on first use; ``None`` when unavailable (reason logged once)."""
    global _EXT, _TRIED, _REASON
    if _TRIED:
        return _EXT
    _TRIED = True
    if ext_disabled():
        _REASON = "SEMDYN_BUILD_NO_EXT is set"
    else:
        try:
            from cuda_ext import build

            with_cuda = torch.cuda.is_available() and build.nvcc_available()
            log.info(
                "semdyn: loading the %s extension (built on first use, cached afterwards)",
                "CUDA+CPU" if with_cuda else "CPU",
            )
            _EXT = build.load(with_cuda=with_cuda)
        except Exception as err:  # a missing compiler or toolkit must not stop rendering
            first = (str(err).splitlines() or [""])[0][:200]
            _REASON = f"the extension failed to build ({type(err).__name__}: {first})"
    if _EXT is None:
        log.warning("semdyn: using the pure-PyTorch rasteriser (slow) because %s", _REASON)
    return _EXT


def ext_unavailable_reason() -> str:
    """Why :func:`get_ext` returned ``None`` (empty when it did not)."""
    return _REASON
