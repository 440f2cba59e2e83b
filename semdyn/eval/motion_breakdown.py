"""Which Gaussians make a trained scene's motion errors: per moving ground-truth object, the Gaussians the benchmark
scores as that object's (``shared/BENCHMARK.md``: inside its box where they are most visible, as
:func:`semdyn.eval.scene_motion.motion_metrics` places them), split by the scene-graph node that holds them.

A box's Gaussians are not all the object's own: its box reaches down to the road, so road Gaussians under a car's
path are scored as the car's (still, they are metres off its motion), and so are Gaussians of other nodes a box
overlaps (a smear of deformable Gaussians left along the car's path). The breakdown says how much of the
trajectory error each part carries, how many lie on the road (their centre within ``road_band`` of the box's
bottom), and the rigidity error of the object's Gaussians alone beside that of all in its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.eval.motion import assign_to_objects, carried_by, height_above_bottom, rigidity_error
from semdyn.eval.scene_motion import _frame_times, _metres, deformed_centres
from semdyn.scene.nodes.base import BACKGROUND_ID, DEFORMABLE_ID, OBJECT_ID0

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.scene.dynamic import DynamicScene


@dataclass(frozen=True)
class BreakdownRow:
    """One node's share of one moving object's box."""

    object_id: int
    """The ground-truth object."""
    holder: str
    """``background``, ``deformable``, ``object <o>`` (a rigid object node) or ``sky`` / other."""
    gaussians: int
    """How many of the box's Gaussians the holder has."""
    trajectory_error: float
    """Their mean distance from where the object's motion carries them, over every frame time (metres)."""
    error_share: float
    """Their part of the sum of the box's trajectory errors (0-1)."""
    on_road: int
    """How many lie within ``road_band`` of the box's bottom where they are scored."""


@dataclass(frozen=True)
class ObjectBreakdown:
    """One moving object: its rows, and its rigidity error with and without the Gaussians no object node holds."""

    object_id: int
    rows: list[BreakdownRow]
    rigidity_all: float
    """Metres, over all the box's Gaussians (as the benchmark scores it, for this object alone)."""
    rigidity_objects: float
    """Metres, over those a rigid object node holds (NaN with fewer than two)."""


def _holder(node_id: int) -> str:
    if node_id == BACKGROUND_ID:
        return "background"
    if node_id == DEFORMABLE_ID:
        return "deformable"
    if node_id >= OBJECT_ID0:
        return f"object {node_id - OBJECT_ID0}"
    return f"node {node_id}"


@torch.no_grad()
def motion_breakdown(
    model: DynamicScene, data: SceneData, tracks: list[ObjectTrack], road_band: float = 0.1
) -> list[ObjectBreakdown]:
    """Per moving object of ``tracks`` with Gaussians in its box, the split described in the module docstring.

    Args:
        model: a :class:`semdyn.scene.dynamic.DynamicScene`.
        data: its scene data (frame times, normalisation, the sequence's time axis).
        tracks: the ground-truth tracks (metres, seconds).
        road_band: metres above a box's bottom within which a Gaussian counts as on the road.

    Returns:
        One :class:`ObjectBreakdown` per moving object that holds Gaussians, rows sorted by error share.
    """
    times = _frame_times(data)
    seconds = torch.from_numpy(np.asarray(data.sequence.time_axis.to_seconds(times.double().numpy()), dtype=np.float64))
    deformed = _metres(data, deformed_centres(model, times)).double()  # [T, N, 3]
    n = deformed.shape[1]
    ref = model.anchor_frame(times).cpu()
    at_ref = deformed[ref, torch.arange(n)]  # [N, 3] where each is most visible
    gt = torch.full((n,), -1, dtype=torch.int64)
    for j in torch.unique(ref).tolist():
        sel = ref == j
        gt[sel] = assign_to_objects(at_ref[sel], tracks, float(seconds[j]), dynamic_only=True)
    nodes = model.node_ids_now().cpu()
    out: list[ObjectBreakdown] = []
    for track in tracks:
        inside = (gt == track.id).nonzero().squeeze(1)
        if not track.dynamic or inside.numel() == 0:
            continue
        err, height = _errors_and_heights(track, at_ref[inside], deformed[:, inside], seconds, ref[inside])
        total = float(err.sum())
        rows = []
        for node_id in torch.unique(nodes[inside]).tolist():
            mine = nodes[inside] == node_id
            rows.append(
                BreakdownRow(
                    track.id,
                    _holder(int(node_id)),
                    int(mine.sum()),
                    float(err[mine].mean()),
                    float(err[mine].sum()) / total if total > 0 else 0.0,
                    int((height[mine] < road_band).sum()),
                )
            )
        rows.sort(key=lambda r: -r.error_share)
        ids_all = torch.where(gt == track.id, gt, -1)
        ids_obj = torch.where((gt == track.id) & (nodes >= OBJECT_ID0), gt, -1)
        rigid_obj = rigidity_error(deformed, ids_obj).value if int((ids_obj >= 0).sum()) >= 2 else float("nan")
        out.append(ObjectBreakdown(track.id, rows, rigidity_error(deformed, ids_all).value, rigid_obj))
    return out


def _errors_and_heights(
    track: ObjectTrack, at_ref: Tensor, deformed: Tensor, seconds: Tensor, ref: Tensor
) -> tuple[Tensor, Tensor]:
    """[M] each Gaussian's mean trajectory error over the T times (metres), and [M] its height above the box's
    bottom at its reference time; ``at_ref`` [M, 3], ``deformed`` [T, M, 3], ``ref`` [M] indices into ``seconds``."""
    err = torch.zeros(at_ref.shape[0], dtype=at_ref.dtype)
    height = torch.zeros_like(err)
    for j in torch.unique(ref).tolist():
        sel = ref == j
        target = carried_by(track, at_ref[sel], seconds, float(seconds[j]))
        err[sel] = (deformed[:, sel] - target).norm(dim=-1).mean(0)
        height[sel] = height_above_bottom(track, at_ref[sel], float(seconds[j]))
    return err, height


__all__ = ["BreakdownRow", "ObjectBreakdown", "motion_breakdown"]
