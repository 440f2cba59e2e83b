"""Frames read from disk on demand through a bounded cache, with a worker thread that decodes ahead.

For sequences whose images do not fit in host memory even as uint8 (a Waymo segment is 7.4 GB of them, and every
rank of a torchrun job holds its own copy): :class:`FrameCache` looks like an ``[F, ...]`` tensor to the code that
reads one frame at a time (``cache[i]``, ``len``, ``shape``), keeps the most recently used frames up to a byte
budget and decodes the frames named by :meth:`FrameCache.prefetch` (the next step's cameras) in the background.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor


class FrameCache:
    """``count`` frames of one shape and dtype; frame i is ``load(i)`` (a numpy array), kept while the most
    recently used frames fit in ``max_bytes`` (at least one is always kept)."""

    def __init__(self, load: Callable[[int], np.ndarray], count: int, first: np.ndarray, max_bytes: int) -> None:
        self._load = load
        self._count = count
        self.frame_shape = tuple(first.shape)
        self.dtype = first.dtype
        self.frame_bytes = int(first.nbytes)
        self.capacity = max(1, int(max_bytes) // max(self.frame_bytes, 1))
        """Frames kept at once."""
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict({0: first})
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.loads = 1
        """Frames decoded so far (a cache miss or a prefetch each)."""

    def __len__(self) -> int:
        return self._count

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._count, *self.frame_shape)

    def _keep(self, index: int, arr: np.ndarray) -> None:
        with self._lock:
            self._frames[index] = arr
            self._frames.move_to_end(index)
            while len(self._frames) > self.capacity:
                self._frames.popitem(last=False)

    def _decode(self, index: int) -> np.ndarray:
        arr = self._load(index)
        self.loads += 1
        return arr

    def __getitem__(self, index: int) -> Tensor:
        """Frame ``index`` as a tensor (shares the cached array: do not write into it)."""
        if not isinstance(index, int) or not -self._count <= index < self._count:
            raise IndexError(f"frame {index!r} out of range for {self._count} frames")
        index %= self._count
        with self._lock:
            arr = self._frames.get(index)
            if arr is not None:
                self._frames.move_to_end(index)
            pending = self._pending.pop(index, None) if arr is None else None
        if arr is None:
            arr = pending.result() if pending is not None else self._decode(index)
            self._keep(index, arr)
        return torch.from_numpy(arr)

    def prefetch(self, indices: Iterable[int]) -> None:
        """Start decoding ``indices`` that are neither cached nor under way (one worker thread)."""
        todo = []
        with self._lock:
            for i in indices:
                if i not in self._frames and i not in self._pending:
                    todo.append(i)
            if not todo:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="semdyn-frames")
            for i in todo[: self.capacity]:
                self._pending[i] = self._pool.submit(self._decode, i)

    def close(self) -> None:
        """Stop the worker (pending decodes finish)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


__all__ = ["FrameCache"]
