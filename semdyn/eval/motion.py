"""Motion metrics against ground-truth object tracks (``objects`` in ``shared/DATA_FORMAT.md``).

Conventions:

- World units are metres, times are seconds (the tracks' ``time``, not nerfstudio's normalised [0, 1] time).
- An object's frame has its origin at the box centre, x forward along ``l``, y left along ``w``, z up along ``h``;
  ``object_to_world`` maps object coordinates to world coordinates.
- The Gaussians' canonical space is the world at ``canonical_time`` (by default the first evaluated time): a
  Gaussian's canonical centre is where it sits at that time.
- Only tracks with ``dynamic`` true count as moving objects. A point lies in a box when its object-frame coordinates
  satisfy ``|x| <= l/2``, ``|y| <= w/2``, ``|z| <= h/2`` (boundary included, optionally grown by a margin).

Metrics:

- ``trajectory_error``: Gaussians whose canonical centre is in a moving object's box at ``canonical_time`` should
  follow that object rigidly, ``P(t) = T_obj(t) @ inv(T_obj(t_c)) @ x``; mean Euclidean distance between the deformed
  centre and ``P(t)`` over those Gaussians and all evaluated times.
- ``static_drift``: mean over times and static Gaussians of ``|deformed(t) - canonical|`` (reference: the canonical
  centre, where a static Gaussian should stay at every time); ``reference="first"`` measures from the deformed centre
  at the first time instead.
- ``rigidity_error``: mean over sampled pairs of Gaussians of one object and over times other than the reference
  time of ``| |x_i(t) - x_j(t)| - |x_i(t0) - x_j(t0)| |``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from semdyn.data.object_track import ObjectTrack
from semdyn.errors import InputError
from semdyn.shapes import check_shape

ArrayLike = Tensor | np.ndarray


# ----------------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------------


def _as_tensor(x: Any, name: str, shape: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple, float, int)):
        x = torch.as_tensor(x)
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch tensor or numpy array of shape {shape}")
    return x


def _float_tensor(x: Any, name: str, pattern: str, dims: dict[str, int] | None = None) -> Tensor:
    """``x`` (tensor, array or list of real numbers of shape ``pattern``, letters bound in ``dims``) as float64."""
    t = _as_tensor(x, name, pattern)
    if not (torch.is_floating_point(t) or t.dtype in (torch.int32, torch.int64)):
        raise InputError(f"{name} must hold real numbers, shape {pattern}, got dtype {t.dtype}")
    return check_shape(t, pattern, name, dims=dims).to(torch.float64)


def _check_means(canonical_means: Any, deformed_means: Any) -> tuple[Tensor, Tensor]:
    dims: dict[str, int] = {}
    canonical = _float_tensor(canonical_means, "canonical_means", "[N, 3]", dims)
    deformed = _float_tensor(deformed_means, "deformed_means", "[T, N, 3]", dims)
    return canonical, deformed.to(canonical.device)


# ----------------------------------------------------------------------------------------------------------------------
# Box membership
# ----------------------------------------------------------------------------------------------------------------------


def _to_object_frame(points: Tensor, object_to_world: Tensor) -> Tensor:
    """``points [N, 3]`` world -> object frame with the inverse of ``object_to_world [4, 4]``."""
    world_to_object = torch.linalg.inv(object_to_world)
    return points @ world_to_object[:3, :3].T + world_to_object[:3, 3]


def _box_depth(points: Tensor, object_to_world: Tensor, size: Tensor, margin: float) -> Tensor:
    """``max_k |p_k| / (size_k / 2 + margin)`` in the object frame, ``[N]``: <= 1 inside the (grown) box."""
    local = _to_object_frame(points, object_to_world)
    half = size.to(points) / 2 + margin
    return (local.abs() / half).amax(-1)


def points_in_box(points: ArrayLike, object_to_world: ArrayLike, size: ArrayLike, margin: float = 0.0) -> Tensor:
    """Which points lie in an oriented box (boundary included).

    Args:
        points: ``[N, 3]`` world positions, metres.
        object_to_world: ``[4, 4]`` the box's object-to-world transform (origin at the box centre).
        size: ``[3]`` metres, box length/width/height along the object's x/y/z.
        margin: metres added on every side of the box (may be negative, not below half the smallest side).

    Returns:
        ``[N]`` bool.
    """
    pts = _float_tensor(points, "points", "[N, 3]")
    mat = _float_tensor(object_to_world, "object_to_world", "[4, 4]").to(pts.device)
    if mat.shape[0] != 4:
        raise InputError(f"object_to_world must have shape [4, 4], got {list(mat.shape)}")
    sz = _float_tensor(size, "size", "[3]").to(pts.device)
    if bool((sz / 2 + margin <= 0).any()):
        raise InputError("size must be [3] positive metres, and margin not below -size/2")
    return _box_depth(pts, mat, sz, margin) <= 1.0


def carried_by(track: ObjectTrack, points: Tensor, times: Tensor, at: float) -> Tensor:
    """[T, M, 3] where ``track``'s rigid motion carries ``points`` [M, 3] (metres, world at ``at`` seconds) at
    ``times`` [T] seconds: ``T_obj(t) @ inv(T_obj(at)) @ x``."""
    poses = track.pose_at(times).to(points.device)  # [T, 4, 4]
    rel = poses @ torch.linalg.inv(track.pose_at(at)[0].to(points.device))  # [T, 4, 4]
    return torch.einsum("tij,mj->tmi", rel[:, :3, :3], points) + rel[:, None, :3, 3]


def height_above_bottom(track: ObjectTrack, points: Tensor, at: float) -> Tensor:
    """[M] metres of ``points`` [M, 3] (world) above the bottom face of ``track``'s box at ``at`` seconds."""
    local = _to_object_frame(points, track.pose_at(at)[0].to(points))
    return local[:, 2] + 0.5 * float(track.size[2])


def _check_tracks(tracks: Sequence[ObjectTrack]) -> list[ObjectTrack]:
    if not isinstance(tracks, Sequence) or not all(isinstance(t, ObjectTrack) for t in tracks):
        raise InputError("tracks must be a list of ObjectTrack (see tracks_from_objects)")
    return list(tracks)


def assign_to_objects(
    canonical_means: ArrayLike,
    tracks: Sequence[ObjectTrack],
    time: float,
    dynamic_only: bool = True,
    margin: float = 0.0,
) -> Tensor:
    """Ground-truth instance of each Gaussian, by box membership at ``time``.

    A Gaussian lying in several boxes goes to the one it is deepest inside (smallest
    ``max_k |p_k| / (size_k / 2 + margin)`` in that object's frame).

    Args:
        canonical_means: ``[N, 3]`` Gaussian centres, metres (world at ``time``).
        tracks: ground-truth tracks.
        time: seconds; the boxes are placed at their pose at this time.
        dynamic_only: only moving objects' boxes (the benchmark's grouping and motion metrics); False for all.
        margin: metres added on every side of every box.

    Returns:
        ``[N]`` int64 object ids, -1 where a Gaussian is in no box.
    """
    means = _float_tensor(canonical_means, "canonical_means", "[N, 3]")
    ids = torch.full((means.shape[0],), -1, dtype=torch.int64, device=means.device)
    best = torch.full((means.shape[0],), math.inf, dtype=torch.float64, device=means.device)
    for track in _check_tracks(tracks):
        if dynamic_only and not track.dynamic:
            continue
        depth = _box_depth(means, track.pose_at(time)[0].to(means.device), track.size, margin)
        take = (depth <= 1.0) & (depth < best)
        ids[take] = track.id
        best[take] = depth[take]
    return ids


def static_structure_mask(
    canonical_means: ArrayLike, tracks: Sequence[ObjectTrack], time: float, margin: float = 0.0
) -> Tensor:
    """Gaussians of static structure: those in no moving object's box at ``time``.

    Static classes (road, buildings, vegetation, parked cars with ``dynamic`` false) have no motion, so everything
    outside the moving objects' boxes should stay put. ``margin`` (metres) grows the moving boxes, to keep Gaussians
    just outside a moving object (shadows, loose floaters) out of the static set.

    Args:
        canonical_means: ``[N, 3]`` Gaussian centres, metres (world at ``time``).
        tracks: ground-truth tracks.
        time: seconds.
        margin: metres added on every side of every moving box.

    Returns:
        ``[N]`` bool, True for static structure.
    """
    return assign_to_objects(canonical_means, tracks, time, dynamic_only=True, margin=margin) < 0


# ----------------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionError:
    """A motion metric with its per-object breakdown."""

    value: float
    """Metres: the mean over every (Gaussian or pair, time) sample. NaN when ``count`` is 0 (see ``reason``)."""
    count: int
    """How many Gaussians (trajectory error) or pairs (rigidity error) were used."""
    per_object: dict[int, float]
    """Object id -> mean error of that object's samples, metres."""
    per_object_count: dict[int, int]
    """Object id -> Gaussians (or pairs) of that object used."""
    reason: str = ""
    """Why ``value`` is NaN; empty when it is defined."""


def _times_tensor(times: Any, num: int) -> Tensor:
    t = _float_tensor(times, "times", "[T]")
    if t.shape[0] != num:
        raise InputError(f"times must have shape [T] with T = {num} (deformed_means' first dimension)")
    return t.cpu()


def trajectory_error(
    canonical_means: ArrayLike,
    deformed_means: ArrayLike,
    times: ArrayLike | Sequence[float],
    tracks: Sequence[ObjectTrack],
    canonical_time: float | None = None,
) -> MotionError:
    """Mean distance between deformed Gaussians of moving objects and where the objects' rigid motion puts them.

    Each Gaussian whose canonical centre ``x`` lies in a moving object's box at ``canonical_time`` (see
    ``assign_to_objects``) should be at ``P(t) = T_obj(t) @ inv(T_obj(t_c)) @ x``; the error is
    ``|deformed_means[t] - P(t)|``, averaged over those Gaussians and all ``T`` times (the canonical time included).

    Args:
        canonical_means: ``[N, 3]`` canonical centres, metres.
        deformed_means: ``[T, N, 3]`` deformed centres at ``times``, metres.
        times: ``[T]`` seconds (track time).
        tracks: ground-truth tracks; only ``dynamic`` ones are used.
        canonical_time: seconds at which the canonical space equals the world; default ``times[0]``.

    Returns:
        ``MotionError`` in metres; ``count`` is the number of Gaussians used. When no Gaussian lies in a moving box
        the value is NaN with a reason.
    """
    canonical, deformed = _check_means(canonical_means, deformed_means)
    t = _times_tensor(times, deformed.shape[0])
    t_c = float(t[0]) if canonical_time is None else float(canonical_time)
    ids = assign_to_objects(canonical, tracks, t_c, dynamic_only=True)
    per_object: dict[int, float] = {}
    per_count: dict[int, int] = {}
    total, n_samples = 0.0, 0
    for track in _check_tracks(tracks):
        sel = ids == track.id
        if not track.dynamic or not bool(sel.any()):
            continue
        target = carried_by(track, canonical[sel], t, t_c)  # [T, M, 3]
        err = (deformed[:, sel] - target).norm(dim=-1)  # [T, M]
        per_object[track.id] = float(err.mean())
        per_count[track.id] = int(sel.sum())
        total += float(err.sum())
        n_samples += err.numel()
    if n_samples == 0:
        return MotionError(math.nan, 0, {}, {}, reason="no Gaussian lies in a moving object's box at canonical_time")
    return MotionError(total / n_samples, sum(per_count.values()), per_object, per_count)


def static_drift(
    canonical_means: ArrayLike,
    deformed_means: ArrayLike,
    static_mask: ArrayLike,
    reference: Literal["canonical", "first"] = "canonical",
) -> float:
    """Mean displacement of static-structure Gaussians over time, metres (should be ~0).

    ``mean over t and static i of |deformed_means[t, i] - ref_i|`` where ``ref_i`` is the canonical centre
    (``reference="canonical"``, the benchmark's definition: a static Gaussian should sit at its canonical centre at
    every time) or its deformed centre at the first time (``reference="first"``, insensitive to a constant offset
    between canonical space and the first frame).

    Args:
        canonical_means: ``[N, 3]`` canonical centres, metres.
        deformed_means: ``[T, N, 3]`` deformed centres, metres.
        static_mask: ``[N]`` bool, True for static structure (see ``static_structure_mask``).
        reference: ``"canonical"`` or ``"first"``.

    Returns:
        Metres; NaN when ``static_mask`` selects no Gaussian.
    """
    canonical, deformed = _check_means(canonical_means, deformed_means)
    mask = _as_tensor(static_mask, "static_mask", "[N] bool")
    if mask.dtype != torch.bool or tuple(mask.shape) != (canonical.shape[0],):
        raise InputError(f"static_mask must be a bool tensor of shape [N] = [{canonical.shape[0]}]")
    if reference not in ("canonical", "first"):
        raise InputError(f"reference must be 'canonical' or 'first', got {reference!r}")
    mask = mask.to(canonical.device)
    if not bool(mask.any()):
        return math.nan
    ref = canonical[mask] if reference == "canonical" else deformed[0, mask]
    return float((deformed[:, mask] - ref[None]).norm(dim=-1).mean())


def _sample_pairs(n: int, max_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """All ``n (n - 1) / 2`` pairs when there are at most ``max_pairs``, else ``max_pairs`` random pairs (i != j)."""
    if n * (n - 1) // 2 <= max_pairs:
        ii, jj = torch.triu_indices(n, n, offset=1)
        return ii, jj
    i = torch.randint(0, n, (max_pairs,), generator=generator)
    j = (i + torch.randint(1, n, (max_pairs,), generator=generator)) % n
    return i, j


def rigidity_error(
    deformed_means: ArrayLike,
    object_ids: ArrayLike,
    max_pairs: int = 10_000,
    seed: int = 0,
    reference_index: int = 0,
) -> MotionError:
    """Mean absolute change of pairwise distances within each object, relative to the reference time.

    For each object id >= 0 with at least two Gaussians, pairs ``(i, j)`` are taken (all of them when there are at
    most ``max_pairs``, else ``max_pairs`` pairs drawn uniformly with a CPU generator seeded with ``seed``);
    the error is ``| |x_i(t) - x_j(t)| - |x_i(t_ref) - x_j(t_ref)| |`` averaged over the pairs of all objects and
    the ``T - 1`` times other than ``reference_index`` (every sampled pair weighs the same).

    Args:
        deformed_means: ``[T, N, 3]`` deformed centres, metres.
        object_ids: ``[N]`` int object ids, -1 for none (e.g. from ``assign_to_objects``).
        max_pairs: most pairs per object.
        seed: seed of the pair sampler.
        reference_index: index into ``T`` of the reference time.

    Returns:
        ``MotionError`` in metres; ``count`` is the number of pairs. NaN with a reason when ``T < 2`` or no object
        has two Gaussians.
    """
    deformed = _float_tensor(deformed_means, "deformed_means", "[T, N, 3]")
    ids = _as_tensor(object_ids, "object_ids", "[N] int")
    if torch.is_floating_point(ids) or ids.dtype == torch.bool or tuple(ids.shape) != (deformed.shape[1],):
        raise InputError(f"object_ids must be an int tensor of shape [N] = [{deformed.shape[1]}], -1 for none")
    if max_pairs < 1:
        raise InputError(f"max_pairs must be a positive int, got {max_pairs}")
    num_t = deformed.shape[0]
    if not -num_t <= reference_index < num_t:
        raise InputError(f"reference_index must index the T = {num_t} times, got {reference_index}")
    ids = ids.to(device=deformed.device, dtype=torch.int64)
    if num_t < 2:
        return MotionError(math.nan, 0, {}, {}, reason="rigidity needs at least two times")
    others = torch.tensor([k for k in range(num_t) if k != reference_index % num_t], device=deformed.device)
    generator = torch.Generator().manual_seed(seed)
    per_object: dict[int, float] = {}
    per_count: dict[int, int] = {}
    total, n_samples = 0.0, 0
    for obj in torch.unique(ids).tolist():
        if obj < 0:
            continue
        members = torch.nonzero(ids == obj).squeeze(1)
        if members.numel() < 2:
            continue
        i, j = _sample_pairs(members.numel(), max_pairs, generator)
        pts = deformed[:, members]  # [T, M, 3]
        dist = (pts[:, i.to(pts.device)] - pts[:, j.to(pts.device)]).norm(dim=-1)  # [T, P]
        change = (dist[others] - dist[reference_index][None]).abs()  # [T - 1, P]
        per_object[obj] = float(change.mean())
        per_count[obj] = int(i.numel())
        total += float(change.sum())
        n_samples += change.numel()
    if n_samples == 0:
        return MotionError(math.nan, 0, {}, {}, reason="no object has two or more Gaussians")
    return MotionError(total / n_samples, sum(per_count.values()), per_object, per_count)
