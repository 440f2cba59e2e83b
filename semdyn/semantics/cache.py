"""The on-disk cache of scripts/extract_semantics.py as readers need it: frame keys, atomic writes, ID-map PNGs.

Kept apart from :mod:`semdyn.semantics.extract` (SAM and CLIP) so that training and the viewer read a cache without
importing the models that wrote it. A run folder holds ``meta.json`` (its ``run_key``) and ``frames/<key>.png``, the
16-bit object-ID map of each image, its key from the run's options and the image's bytes (:func:`frame_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from semdyn.errors import DataFormatError


def content_hash(text: bytes) -> str:
    """64 hex digits (SHA-256) of ``text``."""
    return hashlib.sha256(text).hexdigest()


def frame_key(run: str, image_path: Path) -> str:
    """24 hex digits identifying (options, image bytes)."""
    return content_hash(run.encode() + content_hash(Path(image_path).read_bytes()).encode())[:24]


def tmp_prefix() -> str:
    """Temporary-file prefix unique to this thread across the processes and hosts of a shared file system."""
    return f".tmp{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}-"


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the file to ``path`` (the suffix is kept for numpy/PIL)."""
    tmp = path.with_name(f"{tmp_prefix()}{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_id_map(path: Path, id_map: np.ndarray) -> None:
    """Atomically write an object-ID map [H, W] (values 0..65535) as a 16-bit PNG."""
    arr = np.ascontiguousarray(id_map.astype(np.uint16))
    atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def read_id_map(path: Path) -> Tensor:
    """[H, W] int64 object-ID map from a 16-bit PNG."""
    try:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im).astype(np.int64))
    except (OSError, ValueError) as err:
        raise DataFormatError(path, f"not a readable 16-bit ID map ({type(err).__name__})") from err


def read_cached_id_map(run_dir: Path, image_path: Path) -> Tensor:
    """The cached [H, W] object-ID map of one image from a run folder (``meta.json`` inside)."""
    meta_path = Path(run_dir) / "meta.json"
    if not meta_path.is_file():
        raise DataFormatError(run_dir, "not an extract_semantics run folder (no meta.json)")
    run = json.loads(meta_path.read_text())["run_key"]
    png = Path(run_dir) / "frames" / f"{frame_key(run, image_path)}.png"
    if not png.is_file():
        raise DataFormatError(png, f"no cached ID map for {image_path}; run scripts/extract_semantics.py on it")
    return read_id_map(png)


__all__ = [
    "atomic_write",
    "content_hash",
    "frame_key",
    "read_cached_id_map",
    "read_id_map",
    "tmp_prefix",
    "write_id_map",
]
