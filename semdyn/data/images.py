"""Cheap header reads and lazy loaders for the per-frame files of a sequence.

Header reads (`image_size`, `npy_shape`) open a file without decoding its pixels, so a sequence of
thousands of frames can be validated before training. Loaders (`load_instance_mask`,
`load_semantic`, `load_depth`) decode one file when it is needed. Every failure is a
`DataFormatError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from semdyn.errors import DataFormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
"""Suffixes tried when a `file_path` has none (D-NeRF writes ``./train/r_000``)."""


def is_file(path: Path) -> bool:
    """Whether `path` is an existing regular file (False for names the OS rejects, e.g. with a NUL byte)."""
    return os.path.isfile(path)


def resolve_image_path(path: Path) -> Path | None:
    """The image file `path` names, trying common suffixes when it has none; None when absent."""
    if is_file(path):
        return path
    if path.suffix == "":
        for suffix in IMAGE_SUFFIXES:
            candidate = path.with_name(path.name + suffix)
            if is_file(candidate):
                return candidate
    return None


def image_size(path: Path) -> tuple[int, int]:
    """Width and height of an image, read from its header only.

    Raises:
        DataFormatError: the file is missing or is not an image PIL can identify.
    """
    if not is_file(path):
        raise DataFormatError(path, "the file does not exist")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:  # PIL raises many types for broken headers
        raise DataFormatError(path, f"is not a readable image ({type(error).__name__})") from error
    return int(width), int(height)


def decode_image(path: Path) -> Image.Image:
    """Decode an image file completely (a truncated or corrupt file fails here, not later in a tensor op).

    Raises:
        DataFormatError: the file is missing, not an image, or cut short (names the file).
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError as error:
        raise DataFormatError(path, "the file does not exist") from error
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, zlib.error ...
        raise DataFormatError(path, f"is not a readable image ({type(error).__name__}: {error})") from error


def check_image_complete(path: Path) -> None:
    """Check, without decoding pixels, that an image file is whole: a PNG's chunks and CRCs up to IEND, a JPEG's
    end-of-image marker. Costs one read of the file (the sequence check of thousands of frames stays fast).

    Raises:
        DataFormatError: the file is cut short or corrupt (names the file).
    """
    try:
        with Image.open(path) as image:
            kind = image.format
            if kind == "PNG":
                image.verify()
    except Exception as error:
        raise DataFormatError(path, f"is not a readable image ({type(error).__name__}: {error})") from error
    if kind == "JPEG":
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64))
            tail = file.read()
        if b"\xff\xd9" not in tail:
            raise DataFormatError(path, "is not a readable image (the JPEG is cut short: no end-of-image marker)")


def npy_shape(path: Path) -> tuple[int, ...]:
    """Shape of a ``.npy`` array, read from its header only.

    Raises:
        DataFormatError: the file is missing, not a ``.npy`` file, or holds a non-numeric dtype.
    """
    if not is_file(path):
        raise DataFormatError(path, "the file does not exist")
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    except Exception as error:  # numpy raises ValueError/OSError/SyntaxError for broken headers
        raise DataFormatError(path, f"is not a readable .npy array ({type(error).__name__})") from error
    if dtype.kind not in "fiu":
        raise DataFormatError(path, f"must hold numbers, found dtype {dtype}")
    return tuple(int(s) for s in shape)


def load_instance_mask(path: Path) -> np.ndarray:
    """Load a 16-bit instance-id mask (0 = none/sky).

    Returns:
        ids: int32 array  # [H, W]
    """
    array = _load_single_channel(path)
    return array.astype(np.int32)


def load_semantic(path: Path) -> np.ndarray:
    """Load an 8-bit semantic class-id image (indices into ``semantic_classes``).

    Returns:
        classes: int64 array  # [H, W]
    """
    array = _load_single_channel(path)
    return array.astype(np.int64)


def load_depth(path: Path) -> np.ndarray:
    """Load a depth map in metres along the optical axis (0 = unknown).

    Returns:
        depth: float32 array  # [H, W]
    """
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataFormatError(path, f"is not a readable .npy depth map ({type(error).__name__})") from error
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise DataFormatError(path, f"must be a numeric [H, W] depth map, found {array.dtype} {array.shape}")
    return array.astype(np.float32)


def _load_single_channel(path: Path) -> np.ndarray:
    """Decode a single-channel PNG keeping its bit depth. Returns an array [H, W]."""
    try:
        with Image.open(path) as image:
            array = np.array(image)
    except Exception as error:
        raise DataFormatError(path, f"is not a readable image ({type(error).__name__})") from error
    if array.ndim == 3:
        raise DataFormatError(path, f"must be a single-channel image, found {array.shape[-1]} channels")
    return array
