"""The motion metrics of the ground truth itself: what the benchmark's trajectory and rigidity errors
(``shared/BENCHMARK.md``, :mod:`semdyn.eval.motion`) give a perfect reconstruction.

The perfect reconstruction's Gaussians are the sequence's LiDAR returns, each moved exactly with the object its ray
hit (its ``instance``; still where that object is static: the road, buildings, parked cars), scored where it was
captured, as :func:`semdyn.eval.scene_motion.motion_metrics` scores a model's Gaussians where they are most visible.
Anything above zero is the protocol's, not a model's: a moving box reaches down to the road it stands on, so road
returns under and beside a car at its bottom face are scored as the car's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.errors import InputError
from semdyn.eval.motion import (
    assign_to_objects,
    carried_by,
    height_above_bottom,
    rigidity_error,
    trajectory_error,
)


@dataclass(frozen=True)
class MotionFloor:
    """The benchmark's motion errors of the ground truth."""

    trajectory_error: float
    """Metres (NaN when no return lies in a moving box)."""
    rigidity_error: float
    """Metres."""
    in_boxes: int
    """Returns inside a moving object's box where they were captured."""
    foreign: int
    """Of those, returns of another object (the road under a car)."""
    foreign_height_max: float
    """Metres: the highest of those above the bottom of the box they are scored in (NaN without any)."""


def _nearest(times: Tensor, frame_times: Tensor) -> Tensor:
    return torch.bucketize(times, 0.5 * (frame_times[1:] + frame_times[:-1]))


@torch.no_grad()
def motion_floor(
    points: Tensor, times: Tensor, instances: Tensor, tracks: list[ObjectTrack], frame_times: Tensor
) -> MotionFloor:
    """The errors of the perfect reconstruction described in the module docstring.

    Args:
        points: [P, 3] returns, metres (world).
        times: [P] their capture times, seconds (each is scored at the nearest of ``frame_times``).
        instances: [P] int, the object each hit (an id of ``tracks``, or any other value for none).
        tracks: the ground-truth tracks (metres, seconds).
        frame_times: [T] the sequence's frame times, seconds, increasing.
    """
    points, times, frame_times = points.double(), times.double(), frame_times.double()
    if points.ndim != 2 or points.shape[1] != 3 or times.shape != points.shape[:1] or instances.shape != times.shape:
        raise InputError("motion_floor: points must be [P, 3] with times [P] and instances [P]")
    if frame_times.ndim != 1 or frame_times.numel() < 2:
        raise InputError("motion_floor: frame_times must be [T] with T >= 2")
    ref = _nearest(times, frame_times)
    moved = points[None].repeat(frame_times.numel(), 1, 1)  # [T, P, 3]
    for track in tracks:
        sel = instances == track.id
        if not track.dynamic or not bool(sel.any()):
            continue
        for j in torch.unique(ref[sel]).tolist():
            s = sel & (ref == j)
            moved[:, s] = carried_by(track, points[s], frame_times, float(frame_times[j]))
    boxes = torch.full_like(instances, -1)
    total, count, heights = 0.0, 0, []
    for j in torch.unique(ref).tolist():
        s = ref == j
        boxes[s] = assign_to_objects(points[s], tracks, float(frame_times[j]))
        err = trajectory_error(points[s], moved[:, s], frame_times, tracks, canonical_time=float(frame_times[j]))
        if err.count:
            total, count = total + err.value * err.count, count + err.count
        for track in tracks:
            other = s & (boxes == track.id) & (instances != track.id)
            if bool(other.any()):
                heights.append(height_above_bottom(track, points[other], float(frame_times[j])))
    foreign = (boxes >= 0) & (boxes != instances)
    return MotionFloor(
        trajectory_error=total / count if count else float("nan"),
        rigidity_error=rigidity_error(moved, boxes).value,
        in_boxes=int((boxes >= 0).sum()),
        foreign=int(foreign.sum()),
        foreign_height_max=float(torch.cat(heights).max()) if heights else float("nan"),
    )


__all__ = ["MotionFloor", "motion_floor"]
