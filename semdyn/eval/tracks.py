"""Object tracks of a trained scene graph, as ``scripts/export_tracks.py`` writes them, and their error against the
ground-truth tracks (``shared/BENCHMARK.md``: track error per moving object).

A node track is one rigid object node's pose over the times it was seen: ``object_to_world`` [T, 4, 4] in metres
(the sequence's world, before semdyn's normalisation) at ``times`` [T] seconds; the object's axes are x forward
(its initial direction of travel), y left, z up, the origin where its trajectory runs (its members' centre). Each
node is matched to the ground-truth object that most of its members lie in (boxes at the members' reference
times). Its error against that object is measured after one fixed offset between the two object frames (a node's
origin and axes are not the box's): the mean relative rotation and the mean translation offset in the node's frame,
over the track. ``translation_error`` is the mean distance of the offset node pose's origin from the box centre
(metres); ``heading_error_mean``/``heading_error_max`` the angle of the remaining relative rotation (degrees).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.errors import DataFormatError
from semdyn.eval.motion import assign_to_objects
from semdyn.scene.nodes.base import OBJECT_ID0
from semdyn.scene.trajectory import so3_angle

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.scene.dynamic import DynamicScene

TRACKS_VERSION = 1


@dataclass
class NodeTrack:
    """One rigid object node's track (metres, seconds)."""

    node: int
    """Index of the object in the scene graph (its ``node_ids`` value is ``OBJECT_ID0 + node``)."""
    group: int
    """The lifted group it was made from."""
    class_name: str
    """Its group's class."""
    num_gaussians: int
    """How many Gaussians it holds."""
    times: Tensor
    """[T] seconds at which the pose is given (the frames of the interval the object was seen)."""
    object_to_world: Tensor
    """[T, 4, 4] float64 object-to-world, metres."""
    matched_id: int = -1
    """The ground-truth object id most of its members lie in (-1: none or no ground truth)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "group": self.group,
            "class": self.class_name,
            "num_gaussians": self.num_gaussians,
            "matched_id": self.matched_id,
            "poses": [
                {"time": float(t), "object_to_world": m.tolist()} for t, m in zip(self.times, self.object_to_world)
            ],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], source: Path) -> NodeTrack:
        try:
            poses = d["poses"]
            return cls(
                node=int(d["node"]),
                group=int(d["group"]),
                class_name=str(d["class"]),
                num_gaussians=int(d["num_gaussians"]),
                times=torch.tensor([float(p["time"]) for p in poses], dtype=torch.float64),
                object_to_world=torch.tensor([p["object_to_world"] for p in poses], dtype=torch.float64).view(-1, 4, 4),
                matched_id=int(d.get("matched_id", -1)),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise DataFormatError(source, f"not a semdyn track ({type(err).__name__}: {err})") from err


def _normalized_to_metres(data: SceneData, poses: Tensor) -> Tensor:
    """[..., 4, 4] poses in the normalised world -> metres (float64)."""
    out = data.normalization.poses_to_metres(poses.double().cpu().numpy())
    return torch.from_numpy(np.asarray(out, dtype=np.float64))


@torch.no_grad()
def node_tracks(
    model: DynamicScene, data: SceneData, class_names: list[str] | None = None, tracks: list[ObjectTrack] | None = None
):
    """:class:`NodeTrack` of every rigid object of ``model`` over the frame times of ``data`` within the interval
    it was seen, matched to ``tracks`` (ground truth, optional) by its members."""
    node = model.objects
    if node is None or node.num_objects == 0:
        return []
    frame_times = torch.unique(data.times.float())
    seconds = torch.from_numpy(np.asarray(data.sequence.time_axis.to_seconds(frame_times.double().numpy())))
    poses = _normalized_to_metres(data, node.object_to_world(frame_times.to(node.translation.device)))  # [O, T]
    ids = model.node_ids_now().cpu()
    ref_t, ref_means, _ = model.at_reference(frame_times)
    ref_metres = torch.from_numpy(
        np.asarray(data.normalization.points_to_metres(ref_means.double().cpu().numpy()), dtype=np.float64)
    )
    ref_sec = torch.from_numpy(np.asarray(data.sequence.time_axis.to_seconds(ref_t.double().cpu().numpy())))
    out = []
    for o in range(node.num_objects):
        lo, hi = (float(v) for v in node.interval[o])
        seen = (frame_times >= lo - 1e-6) & (frame_times <= hi + 1e-6)
        rows = (ids == OBJECT_ID0 + o).nonzero().squeeze(1)
        matched = -1
        if tracks and rows.numel():
            votes: dict[int, int] = {}
            for s in torch.unique(ref_sec[rows]).tolist():
                sel = rows[ref_sec[rows] == s]
                for k in assign_to_objects(ref_metres[sel], tracks, float(s), dynamic_only=False).tolist():
                    if k >= 0:
                        votes[k] = votes.get(k, 0) + 1
            matched = max(votes, key=votes.__getitem__) if votes else -1
        group = int(node.group[o])
        name = class_names[group] if class_names is not None and 0 <= group < len(class_names) else ""
        out.append(NodeTrack(o, group, name, int(rows.numel()), seconds[seen], poses[o][seen], matched))
    return out


def write_tracks(path: Path, tracks: list[NodeTrack], meta: dict[str, Any]) -> Path:
    """Write ``tracks`` as JSON (atomically): ``{"version", "meta", "objects": [...]}``."""
    body = {"version": TRACKS_VERSION, "meta": meta, "objects": [t.to_json() for t in tracks]}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, path)
    return path


def read_tracks(path: Path) -> list[NodeTrack]:
    """The tracks of a file written by :func:`write_tracks`."""
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(path, f"cannot be read as tracks JSON ({type(err).__name__})") from err
    if not isinstance(body, dict) or body.get("version") != TRACKS_VERSION or not isinstance(body.get("objects"), list):
        raise DataFormatError(path, f"not a semdyn tracks file of version {TRACKS_VERSION}")
    return [NodeTrack.from_json(d, Path(path)) for d in body["objects"]]


def _mean_rotation(rots: Tensor) -> Tensor:
    """[3, 3] the chordal mean of rotations [T, 3, 3] (projected back onto SO(3))."""
    u, _, vh = torch.linalg.svd(rots.mean(0))
    d = torch.sign(torch.det(u @ vh))
    return u @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=rots.dtype)) @ vh


def track_error(track: NodeTrack, truth: ObjectTrack) -> dict[str, float]:
    """Translation (metres) and heading (degrees) error of a node track against a ground-truth track, over the
    node's times inside the truth's (see the module docstring). NaN when they share no time."""
    lo, hi = float(truth.times[0]), float(truth.times[-1])
    inside = (track.times >= lo - 1e-6) & (track.times <= hi + 1e-6)
    nan = {"translation_error": math.nan, "heading_error_mean": math.nan, "heading_error_max": math.nan, "poses": 0}
    if not bool(inside.any()):
        return nan
    node = track.object_to_world[inside]
    gt = truth.pose_at(track.times[inside])
    rel = node[:, :3, :3].transpose(1, 2) @ gt[:, :3, :3]  # node frame -> box frame, per time
    offset_r = _mean_rotation(rel)
    offset_t = (node[:, :3, :3].transpose(1, 2) @ (gt[:, :3, 3] - node[:, :3, 3])[..., None]).squeeze(-1).mean(0)
    pred_r = node[:, :3, :3] @ offset_r
    pred_t = node[:, :3, 3] + (node[:, :3, :3] @ offset_t[:, None]).squeeze(-1)
    heading = torch.rad2deg(so3_angle(pred_r.transpose(1, 2) @ gt[:, :3, :3]))
    return {
        "translation_error": float((pred_t - gt[:, :3, 3]).norm(dim=-1).mean()),
        "heading_error_mean": float(heading.mean()),
        "heading_error_max": float(heading.max()),
        "poses": int(inside.sum()),
    }


def track_errors(tracks: list[NodeTrack], truth: list[ObjectTrack]) -> dict[int, dict[str, float]]:
    """Per moving ground-truth object (by id): the error of the node matched to it with the most Gaussians (every
    moving object gets a row; NaN and ``node`` -1 where no node matched it)."""
    by_id = {t.id: t for t in truth}
    best: dict[int, NodeTrack] = {}
    for t in tracks:
        if t.matched_id in by_id and (t.matched_id not in best or t.num_gaussians > best[t.matched_id].num_gaussians):
            best[t.matched_id] = t
    out: dict[int, dict[str, float]] = {}
    for obj in truth:
        if not obj.dynamic:
            continue
        node = best.get(obj.id)
        if node is None:
            out[obj.id] = {"node": -1, "translation_error": math.nan, "heading_error_mean": math.nan,
                           "heading_error_max": math.nan, "poses": 0}  # fmt: skip
            continue
        out[obj.id] = {"node": node.node, **track_error(node, obj)}
    return out


__all__ = ["NodeTrack", "node_tracks", "read_tracks", "track_error", "track_errors", "write_tracks"]
