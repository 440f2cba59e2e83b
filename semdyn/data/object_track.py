"""Ground-truth object tracks: the ``objects`` list of ``transforms.json`` (``shared/DATA_FORMAT.md``).

One type and one parser serve the sequence reader (:func:`semdyn.data.read_sequence`), the evaluation's motion
metrics and the tools: an :class:`ObjectTrack` holds float64 tensors on the CPU, in metres and seconds, its poses
sorted by time, and interpolates between them (:meth:`ObjectTrack.pose_at`). Tracks are for evaluation only; no
training path reads them.

>>> track = parse_track({"id": 3, "class": "car", "size": [4, 2, 1.5],
...                      "poses": [{"time": 1.0, "object_to_world": [[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0],
...                                                                   [0, 0, 0, 1]]},
...                                {"time": 0.0, "object_to_world": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
...                                                                   [0, 0, 0, 1]]}]}, "objects[0]")
>>> track.times.tolist(), float(track.pose_at(0.5)[0, 0, 3])
([0.0, 1.0], 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from semdyn.conventions import quat_to_rotmat, rotmat_to_quat
from semdyn.errors import DataFormatError, InputError

TIME_TOLERANCE_S = 1e-6
"""Times within this many seconds of a track's first/last pose count as inside the track."""

MAX_ABS_COORDINATE = 1e9
"""Pose entries beyond this are not metres (a unit mix-up); the sequence reader holds its poses to it too."""


@dataclass(frozen=True, eq=False)  # tensors inside: compare tracks by identity
class ObjectTrack:
    """One ground-truth object track (evaluation only; never for training). Tensors are float64 on the CPU."""

    id: int
    """Instance id, as in the instance masks."""
    label: str
    """The object's class (``class`` in the file, e.g. ``car``)."""
    dynamic: bool
    """Whether the object moves (``dynamic`` in the file, default true)."""
    size: Tensor = field(repr=False)
    """[3] metres: box length (along x), width (along y), height (along z)."""
    times: Tensor = field(repr=False)
    """[P] seconds, strictly increasing."""
    object_to_world: Tensor = field(repr=False)
    """[P, 4, 4] box-centre frame to world at each time, metres."""

    def __post_init__(self) -> None:
        if tuple(self.size.shape) != (3,) or bool((self.size <= 0).any()):
            raise InputError(f"ObjectTrack {self.id}: size must be [3] positive metres (l, w, h)")
        if self.times.ndim != 1 or self.times.numel() == 0:
            raise InputError(f"ObjectTrack {self.id}: times must have shape [P] with P >= 1")
        if tuple(self.object_to_world.shape) != (self.times.numel(), 4, 4):
            raise InputError(f"ObjectTrack {self.id}: object_to_world must have shape [P, 4, 4], P = len(times)")
        if self.times.numel() > 1 and bool((self.times[1:] <= self.times[:-1]).any()):
            raise InputError(f"ObjectTrack {self.id}: times must be strictly increasing")

    def pose_at(self, times: Tensor | np.ndarray | Sequence[float] | float) -> Tensor:
        """Object-to-world transforms at the given times, ``[K, 4, 4]`` float64.

        A time equal to a pose's time (within ``TIME_TOLERANCE_S``) selects that pose; between two poses the
        translation is interpolated linearly and the rotation by slerp. Times outside the track raise ``InputError``.

        Args:
            times: ``[K]`` (or a scalar) seconds.
        """
        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1).cpu()
        lo, hi = float(self.times[0]), float(self.times[-1])
        if bool((t < lo - TIME_TOLERANCE_S).any()) or bool((t > hi + TIME_TOLERANCE_S).any()):
            raise InputError(f"times must lie within track {self.id}'s poses [{lo}, {hi}] s, got {t.tolist()}")
        if self.times.numel() == 1:
            return self.object_to_world.expand(t.numel(), 4, 4).clone()
        t = t.clamp(lo, hi)
        i1 = torch.searchsorted(self.times, t, right=False).clamp(1, self.times.numel() - 1)
        i0 = i1 - 1
        t0, t1 = self.times[i0], self.times[i1]
        s = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
        m0, m1 = self.object_to_world[i0], self.object_to_world[i1]
        q = _slerp(rotmat_to_quat(m0[:, :3, :3]), rotmat_to_quat(m1[:, :3, :3]), s)
        out = torch.zeros(t.numel(), 4, 4, dtype=torch.float64)
        out[:, :3, :3] = quat_to_rotmat(q)
        out[:, :3, 3] = (1 - s)[:, None] * m0[:, :3, 3] + s[:, None] * m1[:, :3, 3]
        out[:, 3, 3] = 1.0
        # exact pose times keep their matrix untouched (no round trip through quaternions)
        exact0 = (t - t0).abs() <= TIME_TOLERANCE_S
        exact1 = (t - t1).abs() <= TIME_TOLERANCE_S
        out[exact0] = m0[exact0]
        out[exact1 & ~exact0] = m1[exact1 & ~exact0]
        return out


def _slerp(q0: Tensor, q1: Tensor, s: Tensor) -> Tensor:
    """Spherical interpolation of unit quaternions ``[K, 4]`` at fractions ``s [K]`` (shortest arc)."""
    dot = (q0 * q1).sum(-1)
    q1 = torch.where(dot[:, None] < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-8
    w0 = torch.where(small, 1 - s, torch.sin((1 - s) * theta) / torch.where(small, 1.0, sin_theta))
    w1 = torch.where(small, s, torch.sin(s * theta) / torch.where(small, 1.0, sin_theta))
    q = w0[:, None] * q0 + w1[:, None] * q1
    return q / q.norm(dim=-1, keepdim=True)


def json_kind(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def json_number(value: Any, name: str, fail: Callable[[str], Exception], positive: bool = False) -> float:
    """A finite JSON number (not a bool, not a string); otherwise ``fail(sentence)`` naming ``name`` is raised."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"{name} must be a number, got {json_kind(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise fail(f"{name} is too large for a float") from None
    if not math.isfinite(out):
        raise fail(f"{name} must be finite, got {out}")
    if positive and out <= 0.0:
        raise fail(f"{name} must be positive, got {out}")
    return out


def parse_track(raw: Any, where: str, source: str | Path | None = None) -> ObjectTrack:
    """One entry of ``objects``: ``{"id", "class", "dynamic"?, "size": [l, w, h], "poses": [{time,
    object_to_world}, ...]}``, poses sorted by time.

    Raises one :class:`DataFormatError` naming ``source`` (the transforms file) where given, else an
    :class:`InputError`; the message names the field (``where`` is its location, e.g. ``objects[2]``).
    """

    def fail(message: str) -> Exception:
        return DataFormatError(source, message) if source is not None else InputError(message)

    if not isinstance(raw, Mapping):
        raise fail(f"{where} must be an object with id, class, size and poses, got {json_kind(raw)}")
    for key in ("id", "class", "size", "poses"):
        if key not in raw:
            raise fail(f"{where}.{key} is missing")
    object_id = raw["id"]
    if isinstance(object_id, bool) or not isinstance(object_id, int) or not 0 <= object_id < 2**16:
        raise fail(f"{where}.id must be an integer in [0, 65535], got {json_kind(object_id)}")
    label = raw["class"]
    if not isinstance(label, str) or not label or "\x00" in label:
        raise fail(f"{where}.class must be a non-empty string, got {json_kind(label)}")
    dynamic = raw.get("dynamic", True)
    if not isinstance(dynamic, bool):
        raise fail(f"{where}.dynamic must be true or false, got {json_kind(dynamic)}")
    size = raw["size"]
    if not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 3:
        raise fail(f"{where}.size must be a list [l, w, h] in metres, got {json_kind(size)}")
    lwh = [json_number(s, f"{where}.size[{j}]", fail, positive=True) for j, s in enumerate(size)]
    poses = raw["poses"]
    if not isinstance(poses, Sequence) or isinstance(poses, str) or not poses:
        raise fail(f"{where}.poses must be a non-empty list of {{time, object_to_world}}, got {json_kind(poses)}")
    times, matrices = [], []
    for k, pose in enumerate(poses):
        name = f"{where}.poses[{k}]"
        if not isinstance(pose, Mapping) or "time" not in pose or "object_to_world" not in pose:
            raise fail(f"{name} must be an object with time and object_to_world")
        times.append(json_number(pose["time"], f"{name}.time", fail))
        value = pose["object_to_world"]
        if (
            not isinstance(value, Sequence)
            or len(value) != 4
            or not all(isinstance(r, Sequence) and not isinstance(r, str) and len(r) == 4 for r in value)
        ):
            raise fail(f"{name}.object_to_world must be a 4x4 list of numbers, got {json_kind(value)}")
        matrix = [
            [json_number(x, f"{name}.object_to_world[{i}][{j}]", fail) for j, x in enumerate(r)]
            for i, r in enumerate(value)
        ]
        if max(abs(x) for row in matrix for x in row) > MAX_ABS_COORDINATE:
            raise fail(f"{name}.object_to_world has entries beyond {MAX_ABS_COORDINATE:g}, not metres")
        matrices.append(matrix)
    times_t = torch.tensor(times, dtype=torch.float64)
    order = torch.argsort(times_t)
    times_t = times_t[order]
    if times_t.numel() > 1 and bool((times_t[1:] <= times_t[:-1]).any()):
        raise fail(f"{where}.poses has two poses at the same time")
    return ObjectTrack(
        id=object_id,
        label=label,
        dynamic=dynamic,
        size=torch.tensor(lwh, dtype=torch.float64),
        times=times_t,
        object_to_world=torch.tensor(matrices, dtype=torch.float64)[order],
    )


def tracks_from_objects(objects: Any, source: str | Path | None = None) -> list[ObjectTrack]:
    """Parse the ``objects`` list of ``transforms.json`` into :class:`ObjectTrack` s (see :func:`parse_track`)."""
    if not isinstance(objects, Sequence) or isinstance(objects, (str, bytes)):
        message = f"objects must be a list of object tracks, got {json_kind(objects)}"
        raise DataFormatError(source, message) if source is not None else InputError(message)
    return [parse_track(obj, f"objects[{i}]", source) for i, obj in enumerate(objects)]


__all__ = ["TIME_TOLERANCE_S", "ObjectTrack", "json_kind", "json_number", "parse_track", "tracks_from_objects"]
