"""Grouping quality of lifted labels against independent 3D ground truth (``shared/BENCHMARK.md``, Grouping).

The ground-truth instance of a Gaussian is the object box it lies in (``semdyn.eval.motion.assign_to_objects`` over
every track of ``objects``, static structure included), placed at the time the Gaussian is most visible: its deformed
centre at the frame time nearest its temporal-visibility anchor, in metres. This uses the tracks only, never the
masks or the top-k pass that made the labels, so the measurement is not circular. Gaussians in no box (sky, floaters)
and unlabelled Gaussians are left out of ARI and purity (``ignore_label=-1``); the labelled share is reported beside.
An object box stands on the road, so road Gaussians under and around a car fall inside the car's box: Gaussians within
``ground_clearance`` of the bottom face of a box that is not ground (road, sidewalk, lane marking) are ambiguous and
left out too.

    python -m semdyn.tools.grouping --load-dir outputs/semdyn-cpu     # a trained cpu-preset run, GT masks
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import tyro
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.eval.grouping import adjusted_rand_index, purity
from semdyn.eval.motion import assign_to_objects
from semdyn.export.checkpoint import read_checkpoint, run_config
from semdyn.semantics.training import SemanticsConfig, positions_at_anchor
from semdyn.train.presets import PRESETS
from semdyn.train.trainer import Trainer

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.scene.dynamic import DynamicScene

log = logging.getLogger("semdyn")


@torch.no_grad()
def gt_instances(
    model: DynamicScene, data: SceneData, margin: float = 0.2, dynamic_only: bool = False, ground_clearance: float = 0.1
) -> Tensor:
    """[N] int64 ground-truth object id of each Gaussian by box membership (-1 in no box); see the module docstring.

    Args:
        model: a :class:`semdyn.scene.dynamic.DynamicScene`.
        data: its :class:`semdyn.data.scene_data.SceneData` (normalisation, times, tracks).
        margin: metres added around every box (Gaussians sit on surfaces, the road box is 0.1 m thick).
        dynamic_only: only moving objects' boxes.
        ground_clearance: metres above the bottom face of a non-ground box within which a Gaussian is ambiguous (-1).
    """
    pos = positions_at_anchor(model, data.times).cpu()
    times = torch.unique(data.times)
    nearest = model.anchor_frame(times).cpu()
    metres = torch.from_numpy(data.normalization.points_to_metres(pos.double().numpy()))
    tracks = list(data.sequence.objects)
    out = torch.full((len(pos),), -1, dtype=torch.int64)
    for j in torch.unique(nearest).tolist():
        sel = nearest == j
        t_s = float(data.sequence.time_axis.to_seconds(np.array(float(times[j]))))
        ids = assign_to_objects(metres[sel], tracks, t_s, dynamic_only=dynamic_only, margin=margin)
        if ground_clearance > 0:
            ids = _drop_ground_contact(metres[sel], ids, tracks, t_s, ground_clearance)
        out[sel] = ids
    return out


GROUND_CLASSES = frozenset({"road", "sidewalk", "lane_marking"})


def _drop_ground_contact(
    points: Tensor, ids: Tensor, tracks: list[ObjectTrack], t_s: float, clearance: float
) -> Tensor:
    """``ids`` with -1 for points [N, 3] (metres) within ``clearance`` of the bottom of their non-ground box."""
    ids = ids.clone()
    for track in tracks:
        sel = ids == track.id
        if track.label in GROUND_CLASSES or not bool(sel.any()):
            continue
        w2o = torch.linalg.inv(track.pose_at(t_s)[0])
        z = points[sel] @ w2o[2, :3] + w2o[2, 3]
        low = z < -float(track.size[2]) / 2 + clearance
        ids[torch.nonzero(sel).squeeze(1)[low]] = -1
    return ids


def grouping_scores(pred: Tensor, gt: Tensor) -> dict[str, float]:
    """ARI, purity, and shares of Gaussians: labelled among those with a GT box, and scored."""
    has_gt = gt >= 0
    both = has_gt & (pred >= 0)
    return {
        "ari": adjusted_rand_index(pred.cpu(), gt.cpu()),
        "purity": purity(pred.cpu(), gt.cpu()),
        "labelled_share_of_gt": float(both.sum()) / max(int(has_gt.sum()), 1),
        "scored": int(both.sum()),
        "gaussians": int(len(pred)),
    }


@dataclass
class EvalGroupingConfig:
    """Lift labels onto a trained run and score the groups against the ground-truth boxes."""

    load_dir: Path
    """A run folder (its newest checkpoint) or a checkpoint file of the core trainer."""
    preset: str | None = None
    """A semdyn-train preset to rebuild the run from; None: the config saved in the checkpoint."""
    semantics: SemanticsConfig = field(default_factory=SemanticsConfig)
    """How labels are lifted (masks gt by default)."""
    box_margin: float = 0.2
    """Metres added around every ground-truth box."""
    ground_clearance: float = 0.1
    """Metres above the bottom of a non-ground box within which a Gaussian's truth is ambiguous (left out)."""
    output: Path | None = None
    """Also write the scores as JSON here."""


def main(cfg: EvalGroupingConfig) -> dict[str, Any]:
    import dataclasses

    if cfg.preset is None:
        base = run_config(*read_checkpoint(cfg.load_dir, torch.device("cpu")))
    else:
        base = PRESETS[cfg.preset][1]
    train_cfg = dataclasses.replace(base, semantics=cfg.semantics, device="cpu")
    trainer = Trainer(train_cfg)
    trainer.load(cfg.load_dir)
    assert trainer.semantics is not None
    t0 = time.perf_counter()
    trainer.semantics.lift(trainer.model, trainer.strategy_state, trainer.device, show_progress=True)
    lift_s = time.perf_counter() - t0
    labels = trainer.group_labels()
    assert labels is not None
    pred = labels.ids.cpu()  # group index; ARI and purity only compare partitions
    gt_all = gt_instances(trainer.model, trainer.data, cfg.box_margin, ground_clearance=cfg.ground_clearance)
    gt_dyn = gt_instances(trainer.model, trainer.data, cfg.box_margin, True, cfg.ground_clearance)
    result = {
        "checkpoint": str(trainer.last_checkpoint),
        "masks": cfg.semantics.masks,
        "instances": cfg.semantics.instances,
        "topk": cfg.semantics.topk,
        "min_conf": cfg.semantics.min_conf,
        "lift_seconds": round(lift_s, 2),
        "views": len(trainer.data.train_idx),
        "groups": trainer.semantics.groups.num_groups if trainer.semantics.groups is not None else 0,
        "all_objects": grouping_scores(pred, gt_all),
        "moving_objects": grouping_scores(torch.where(gt_dyn >= 0, pred, -1), gt_dyn),
        "gt": "box membership of each Gaussian's centre at its visibility-anchor time (objects tracks), "
        f"margin {cfg.box_margin} m, ground clearance {cfg.ground_clearance} m",
    }
    if cfg.output is not None:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(main(tyro.cli(EvalGroupingConfig)), indent=2))
