"""Motion metrics of a trained dynamic scene against the sequence's ground-truth tracks (``shared/BENCHMARK.md``).

The functions of :mod:`semdyn.eval.motion` take canonical and deformed centres; this module gets them from a model.
A Gaussian's reference position is where it is most visible: its deformed centre at the frame time nearest its
temporal-visibility anchor (the canonical space of a model with temporal visibility is not the world at any one
time). Gaussians are bucketed by that reference time, each bucket is scored with the reference time as the
canonical time, and the buckets are pooled by sample count. All distances are metres.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.eval.motion import (
    assign_to_objects,
    rigidity_error,
    static_drift,
    static_structure_mask,
    trajectory_error,
)

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.scene.dynamic import DynamicScene


def _frame_times(data: SceneData) -> Tensor:
    """[T] distinct normalised frame times of the sequence, increasing."""
    return torch.unique(data.times.float())


@torch.no_grad()
def deformed_centres(model: DynamicScene, times: Tensor) -> Tensor:
    """[T, N, 3] deformed Gaussian centres (normalised units) at normalised ``times`` [T]."""
    return torch.stack([model.gaussians_at(float(t))["means"].detach().float().cpu() for t in times])


def _metres(data: SceneData, xyz: Tensor) -> Tensor:
    """[..., 3] normalised units -> metres (float64)."""
    flat = data.normalization.points_to_metres(xyz.reshape(-1, 3).double().numpy())
    return torch.from_numpy(np.asarray(flat)).reshape(xyz.shape)


@torch.no_grad()
def motion_metrics(
    model: DynamicScene, data: SceneData, tracks: list[ObjectTrack], static_margin: float = 0.5
) -> dict[str, float]:
    """Trajectory error, static drift and rigidity error of ``model`` over every frame time of ``data``.

    Args:
        model: a :class:`semdyn.scene.dynamic.DynamicScene` (a static one scores 0 drift and 0 rigidity error).
        data: its :class:`semdyn.data.scene_data.SceneData`.
        tracks: the sequence's ground-truth tracks (metres, seconds).
        static_margin: metres added around moving boxes when picking static structure (keeps shadows and
            Gaussians brushing a car out of the static set).

    Returns:
        ``trajectory_error``, ``static_drift``, ``rigidity_error`` (metres; NaN when nothing to score) and the
        counts behind them.
    """
    times = _frame_times(data)
    seconds = torch.from_numpy(np.asarray(data.sequence.time_axis.to_seconds(times.double().numpy()), dtype=np.float64))
    deformed = _metres(data, deformed_centres(model, times))  # [T, N, 3]
    canonical = _metres(data, model.params["means"].detach().float().cpu())  # [N, 3]
    ref = model.anchor_frame(times).cpu()
    traj_sum, traj_n, traj_g = 0.0, 0, 0
    moving = torch.full((canonical.shape[0],), -1, dtype=torch.int64)
    static = torch.zeros(canonical.shape[0], dtype=torch.bool)
    for j in torch.unique(ref).tolist():
        sel = ref == j
        at_ref = deformed[j, sel]
        moving[sel] = assign_to_objects(at_ref, tracks, float(seconds[j]), dynamic_only=True)
        static[sel] = static_structure_mask(at_ref, tracks, float(seconds[j]), margin=static_margin)
        err = trajectory_error(at_ref, deformed[:, sel], seconds, tracks, canonical_time=float(seconds[j]))
        if err.count:
            traj_sum += err.value * err.count * len(times)
            traj_n += err.count * len(times)
            traj_g += err.count
    rigid = rigidity_error(deformed, moving, reference_index=0)
    return {
        "trajectory_error": traj_sum / traj_n if traj_n else math.nan,
        "trajectory_gaussians": traj_g,
        "static_drift": static_drift(canonical, deformed, static),
        "static_gaussians": int(static.sum()),
        "rigidity_error": rigid.value,
        "rigidity_pairs": rigid.count,
    }
