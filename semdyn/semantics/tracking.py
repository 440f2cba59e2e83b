"""Separating objects that match one prompt by tracking their masks across frames (object id is not class).

An object-ID map says *what* a pixel is (a dictionary entry, 0 = none), not *which* object. Per camera, each map is
split into connected 2D segments per entry (8-neighbourhood), and segments of the same entry in consecutive frames
are linked one-to-one by mask IoU (Hungarian assignment, pairs below ``min_iou`` stay apart). A chain of linked
segments is a track; track ids are unique over all cameras. Entries that need no tracking (static stuff: road,
building, sky...) keep one track per entry over every frame and camera.

After the top-k vote over track ids (:func:`semdyn.semantics.lifting.lift_sparse_votes`), tracks of one entry that
are the same object (seen by another camera, or before and after a break in the chain) are merged by the Gaussians
they share (:func:`merge_tracks`), and each Gaussian joins the merged track with most of its votes
(:func:`assign_objects`). Two tracks that are separate segments of one view are two objects and never merge
(:func:`track_conflicts`).

Class-level maps make tracks impure: two cars that overlap in an image are one segment there, so a track can hold
several objects for a while. :class:`semdyn.semantics.training.SemanticLifter` therefore keeps 3D connectivity
(:mod:`semdyn.semantics.instances`) as the grouping and uses the tracks only to split a connected component between
objects known to be distinct (:func:`split_by_conflicts`): two cars that touch in 3D (one following another) but were
seen side by side in some view become two groups.

Letters: F frames, H x W pixels, S segments of a frame, T tracks, N Gaussians, P (Gaussian, track) vote pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from semdyn.errors import InputError
from semdyn.semantics.lifting import SparseVotes

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class TrackTable:
    """Track-ID maps of a set of views and what each track is."""

    maps: Tensor
    """[F, H, W] int64 track id per pixel (0 = no object), in the order of the input maps."""
    entry: Tensor
    """[T + 1] int64 entry id (object-ID) of each track id; ``entry[0] = 0`` (no object)."""
    tracked: Tensor
    """[T + 1] bool: the track is a chain of linked segments (False: the one track of an untracked entry, and 0)."""

    @property
    def num_tracks(self) -> int:
        return int(self.entry.numel()) - 1


def segment_map(id_map: Tensor, skip: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
    """Connected 2D segments (8-neighbourhood) of each id of one map.

    Args:
        id_map: [H, W] int entry id per pixel (0 = none).
        skip: ids that are not segmented (they get segment 0 like the 0 pixels).

    Returns:
        ``(segments [H, W] int64 in 0..S (0 = none), segment_ids [S] int64 the entry id of each segment)``,
        segments numbered by entry id, then in scan order.
    """
    if id_map.dim() != 2:
        raise InputError(f"segment_map: id_map must be [H, W], got {list(id_map.shape)}")
    arr = id_map.cpu().numpy()
    out = np.zeros(arr.shape, dtype=np.int64)
    ids: list[int] = []
    for value in np.unique(arr).tolist():
        if value == 0 or value in skip:
            continue
        lab, n = ndimage.label(arr == value, structure=_EIGHT)
        out[lab > 0] = lab[lab > 0] + len(ids)
        ids.extend([int(value)] * n)
    return torch.from_numpy(out), torch.tensor(ids, dtype=torch.int64)


def segment_iou(seg_a: Tensor, n_a: int, seg_b: Tensor, n_b: int) -> Tensor:
    """[n_a, n_b] float64 IoU of every segment of one frame with every segment of the next.

    Args:
        seg_a: [H, W] int64 segments 0..n_a of the first frame (0 = none).
        seg_b: [H, W] int64 segments 0..n_b of the second frame.
    """
    if seg_a.shape != seg_b.shape:
        raise InputError(f"segment_iou: segment maps differ in shape, {list(seg_a.shape)} vs {list(seg_b.shape)}")
    joint = torch.bincount((seg_a * (n_b + 1) + seg_b).reshape(-1), minlength=(n_a + 1) * (n_b + 1))
    joint = joint.reshape(n_a + 1, n_b + 1).double()
    area_a, area_b = joint.sum(1)[1:], joint.sum(0)[1:]
    inter = joint[1:, 1:]
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1.0)


def link_segments(iou: Tensor, ids_a: Tensor, ids_b: Tensor, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one links between the segments of two frames: Hungarian assignment maximising the IoU of
    same-entry pairs; pairs of different entries or with IoU below ``min_iou`` are never linked.

    Args:
        iou: [S_a, S_b] IoU (:func:`segment_iou`).
        ids_a: [S_a] entry id of each segment of the first frame; ids_b: [S_b] of the second.
        min_iou: in (0, 1].

    Returns:
        ``(i, j)`` index pairs, sorted by i.
    """
    if iou.shape != (len(ids_a), len(ids_b)):
        raise InputError(f"link_segments: iou is {list(iou.shape)} but there are {len(ids_a)} x {len(ids_b)} segments")
    if not 0.0 < min_iou <= 1.0:
        raise InputError(f"link_segments: min_iou must be in (0, 1], got {min_iou}")
    if iou.numel() == 0:
        return []
    score = torch.where(ids_a[:, None] == ids_b[None, :], iou, torch.zeros_like(iou)).numpy()
    rows, cols = linear_sum_assignment(score, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if score[i, j] >= min_iou]


def track_sequence(id_maps: Tensor, min_iou: float = 0.2, skip: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
    """Tracks of one camera: segments linked between consecutive frames (see the module docstring).

    Args:
        id_maps: [F, H, W] int entry ids of one camera's frames in time order (0 = none).
        min_iou: the smallest IoU that links two segments.
        skip: entry ids that are not tracked (their pixels get track 0).

    Returns:
        ``(track_maps [F, H, W] int64 track ids 1..T (0 = none), track_entry [T] int64 entry id of each)``.
    """
    if id_maps.dim() != 3:
        raise InputError(f"track_sequence: id_maps must be [F, H, W], got {list(id_maps.shape)}")
    out = torch.zeros(id_maps.shape, dtype=torch.int64)
    entries: list[int] = []
    prev: tuple[Tensor, Tensor, Tensor] | None = None  # segments, their ids, their track ids
    for f in range(id_maps.shape[0]):
        seg, ids = segment_map(id_maps[f], skip)
        tracks = torch.zeros(len(ids), dtype=torch.int64)
        if prev is not None:
            iou = segment_iou(prev[0], len(prev[1]), seg, len(ids))
            for i, j in link_segments(iou, prev[1], ids, min_iou):
                tracks[j] = prev[2][i]
        new = tracks == 0
        tracks[new] = torch.arange(len(entries) + 1, len(entries) + 1 + int(new.sum()))
        entries.extend(ids[new].tolist())
        out[f] = torch.cat([torch.zeros(1, dtype=torch.int64), tracks])[seg]
        prev = (seg, ids, tracks)
    return out, torch.tensor(entries, dtype=torch.int64)


def track_views(
    id_maps: Sequence[Tensor] | Tensor,
    cameras: Sequence[str],
    times: Sequence[float] | Tensor,
    min_iou: float = 0.2,
    untracked: Sequence[int] = (),
) -> TrackTable:
    """Track-ID maps of views from several cameras: each camera's views are tracked in time order
    (:func:`track_sequence`), their track ids made unique; each untracked entry is one track over all views.

    Args:
        id_maps: F maps [H, W] of entry ids (0 = none), one per view, all of one shape.
        cameras: [F] camera name of each view.
        times: [F] capture time of each view (any unit; only the order counts).
        min_iou: see :func:`track_sequence`.
        untracked: entry ids that keep one track each (e.g. the static stuff of the dictionary).
    """
    f = len(id_maps)
    if len(cameras) != f or len(times) != f:
        raise InputError(f"track_views: {f} ID maps but {len(cameras)} cameras and {len(times)} times")
    if f == 0:
        raise InputError("track_views: no ID maps to track")
    shapes = {tuple(m.shape) for m in id_maps}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InputError(f"track_views: every ID map must be [H, W] of one shape, got {sorted(shapes)}")
    maps = torch.stack([torch.as_tensor(m).to(torch.int64).cpu() for m in id_maps])
    if bool((maps < 0).any()):
        raise InputError("track_views: ID maps must be non-negative entry ids")
    t = torch.as_tensor(times, dtype=torch.float64)
    stuff = sorted({int(u) for u in untracked} & set(torch.unique(maps).tolist()) - {0})
    out = torch.zeros_like(maps)
    entry = [0, *stuff]
    for u, value in enumerate(stuff):
        out[maps == value] = u + 1
    for cam in sorted(set(cameras)):
        idx = torch.tensor([i for i in range(f) if cameras[i] == cam])
        idx = idx[torch.argsort(t[idx], stable=True)]
        tmaps, tentry = track_sequence(maps[idx], min_iou, skip=stuff)
        out[idx] = torch.where(tmaps > 0, tmaps + len(entry) - 1, out[idx])
        entry.extend(tentry.tolist())
    entry_t = torch.tensor(entry, dtype=torch.int64)
    tracked = torch.arange(len(entry)) > len(stuff)
    return TrackTable(maps=out, entry=entry_t, tracked=tracked)


def track_conflicts(table: TrackTable) -> Tensor:
    """[T + 1, T + 1] bool: tracked tracks that are separate segments of one view, so two objects (a cannot-link).

    Untracked entries' tracks and track 0 conflict with nothing.
    """
    n = table.num_tracks + 1
    present = torch.zeros(table.maps.shape[0], n, dtype=torch.bool)
    for f in range(table.maps.shape[0]):
        present[f, torch.unique(table.maps[f])] = True
    present &= table.tracked[None, :]
    p = present.float()
    out = (p.T @ p) > 0
    out.fill_diagonal_(False)
    return out


def track_shares(
    gaussian: Tensor, track: Tensor, weight: Tensor, track_entry: Tensor, labels: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Each labelled Gaussian's votes on the tracks of its own entry, as shares of their sum.

    Args:
        gaussian, track, weight: [P] vote pairs (Gaussian, track id, blend weight), sorted by Gaussian.
        track_entry: [T + 1] entry id of each track id.
        labels: [N] entry id each Gaussian was lifted to (-1 unlabelled).

    Returns:
        ``(gaussian [Q], track [Q], share [Q])``: the pairs kept (still sorted by Gaussian), shares summing to 1
        per Gaussian.
    """
    if not gaussian.shape == track.shape == weight.shape or gaussian.dim() != 1:
        raise InputError(
            f"track_shares: gaussian, track and weight must be [P], got {list(gaussian.shape)}, "
            f"{list(track.shape)}, {list(weight.shape)}"
        )
    keep = (labels[gaussian] >= 0) & (track_entry[track] == labels[gaussian]) & (weight > 0)
    g, t, w = gaussian[keep], track[keep], weight[keep].double()
    total = torch.zeros(len(labels), dtype=torch.float64, device=w.device).index_add_(0, g, w)
    return g, t, (w / total[g]).float()


def shared_mass(gaussian: Tensor, track: Tensor, share: Tensor, num_ids: int) -> tuple[Tensor, Tensor, Tensor]:
    """How much two tracks are the same Gaussians: ``sum_g min(share_ga, share_gb)`` for every pair of tracks
    that share a Gaussian.

    Args:
        gaussian, track, share: [Q] pairs sorted by Gaussian (:func:`track_shares`).
        num_ids: T + 1 (track ids are below it).

    Returns:
        ``(a [R], b [R], mass [R])`` with ``a < b``.
    """
    firsts, counts = torch.unique_consecutive(gaussian, return_counts=True)
    a_list, b_list, m_list = [], [], []
    for d in range(1, int(counts.max()) if len(counts) else 1):
        same = gaussian[:-d] == gaussian[d:]
        i = torch.nonzero(same).squeeze(1)
        ta, tb = track[i], track[i + d]
        a_list.append(torch.minimum(ta, tb))
        b_list.append(torch.maximum(ta, tb))
        m_list.append(torch.minimum(share[i], share[i + d]))
    if not a_list:
        empty = torch.zeros(0, dtype=torch.int64, device=track.device)
        return empty, empty, torch.zeros(0, device=share.device)
    keys = torch.cat(a_list) * num_ids + torch.cat(b_list)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    mass = torch.zeros(len(uniq), device=share.device).index_add_(0, inverse, torch.cat(m_list))
    return uniq // num_ids, uniq % num_ids, mass


def merge_tracks(a: Tensor, b: Tensor, mass: Tensor, conflicts: Tensor, min_mass: float = 0.0) -> tuple[Tensor, Tensor]:
    """Tracks that are one object: pairs joined by union-find in order of decreasing shared mass, unless that would
    put two conflicting tracks (:func:`track_conflicts`) into one object.

    Args:
        a, b: [R] track ids of each pair (one entry's tracks only share Gaussians of that entry).
        mass: [R] shared mass (:func:`shared_mass`).
        conflicts: [T + 1, T + 1] bool cannot-links.
        min_mass: pairs sharing less are not joined.

    Returns:
        ``(object [T + 1] int64 the representative track id of each track's object, object_conflicts
        [T + 1, T + 1] bool: conflicts between objects, indexed by representative)``. Memory: the dense conflict
        matrix, ``(T + 1)^2`` bools.
    """
    n = conflicts.shape[0]
    if conflicts.shape != (n, n) or not a.shape == b.shape == mass.shape:
        raise InputError(
            f"merge_tracks: conflicts must be square and a, b, mass one length, got {list(conflicts.shape)}, "
            f"{list(a.shape)}, {list(b.shape)}, {list(mass.shape)}"
        )
    parent = list(range(n))
    conf = conflicts.clone()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k in torch.argsort(-mass, stable=True).tolist():
        if float(mass[k]) <= min_mass:
            break
        ra, rb = find(int(a[k])), find(int(b[k]))
        if ra == rb or bool(conf[ra, rb]):
            continue
        parent[rb] = ra
        conf[ra] |= conf[rb]
        conf[:, ra] |= conf[:, rb]
    return torch.tensor([find(t) for t in range(n)], dtype=torch.int64), conf


def assign_objects(gaussian: Tensor, obj: Tensor, share: Tensor, num_gaussians: int) -> Tensor:
    """[N] int64 object of each Gaussian: the one its shares sum highest on (-1 for Gaussians without pairs).

    Args:
        gaussian, obj, share: [Q] pairs (Gaussian, object id of the pair's track, share).
    """
    if len(gaussian) == 0:
        return torch.full((num_gaussians,), -1, dtype=torch.int64, device=obj.device)
    m = int(obj.max()) + 1
    keys, summed = torch.unique(gaussian * m + obj, return_inverse=True)
    total = torch.zeros(len(keys), device=share.device).index_add_(0, summed, share)
    g = keys // m
    order = torch.argsort(total, descending=True, stable=True)
    order = order[torch.argsort(g[order], stable=True)]  # by Gaussian, highest total first
    first = torch.ones(len(order), dtype=torch.bool, device=g.device)
    first[1:] = g[order][1:] != g[order][:-1]
    out = torch.full((num_gaussians,), -1, dtype=torch.int64, device=g.device)
    out[g[order][first]] = (keys % m)[order][first]
    return out


def split_by_conflicts(component: Tensor, obj: Tensor, conflicts: Tensor, min_size: int = 1) -> tuple[Tensor, Tensor]:
    """Split 3D connected components where they hold objects known to be distinct.

    Within a component, objects are packed largest first into parts: an object joins the first part it conflicts
    with nothing in, else starts a new one. A component without conflicts stays whole.

    Args:
        component: [N] int64 connected component of each Gaussian (-1 none; stays -1).
        obj: [N] int64 object of each Gaussian (:func:`assign_objects`; -1 counts as an object of its own that
            conflicts with nothing).
        conflicts: [M, M] bool conflicts between object ids.
        min_size: parts with fewer Gaussians are dropped (-1).

    Returns:
        ``(part [N] int64 in 0..I-1 or -1, part_component [I] int64 the component each part came from)``.
    """
    if component.shape != obj.shape or component.dim() != 1:
        raise InputError(
            f"split_by_conflicts: component and obj must be [N], got {list(component.shape)}, {list(obj.shape)}"
        )
    device = component.device
    component, obj, conflicts = component.cpu(), obj.cpu(), conflicts.cpu()
    sel = torch.nonzero(component >= 0).squeeze(1)
    c, o = component[sel], obj[sel]
    m = int(o.max()) + 2 if len(o) else 1
    pairs, inverse, counts = torch.unique(c * m + (o + 1), return_inverse=True, return_counts=True)
    pc, po = pairs // m, pairs % m - 1
    part_of_pair = torch.zeros(len(pairs), dtype=torch.int64)
    part_component: list[int] = []
    starts = torch.ones(len(pairs), dtype=torch.bool)
    starts[1:] = pc[1:] != pc[:-1]
    bounds = [*torch.nonzero(starts).squeeze(1).tolist(), len(pairs)]
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        parts: list[list[int]] = []  # the objects of each part of this component
        for i in (s + torch.argsort(-counts[s:e], stable=True)).tolist():
            oi = int(po[i])
            free = [p for p, objs in enumerate(parts) if oi < 0 or not bool(conflicts[oi, objs].any())]
            p = free[0] if free else len(parts)
            if not free:
                parts.append([])
            if oi >= 0:
                parts[p].append(oi)
            part_of_pair[i] = len(part_component) + p
        part_component.extend([int(pc[s])] * len(parts))
    part = part_of_pair[inverse]
    sizes = torch.bincount(part, minlength=len(part_component))
    keep = sizes >= min_size
    remap = torch.full((len(part_component),), -1, dtype=torch.int64)
    remap[keep] = torch.arange(int(keep.sum()))
    out = torch.full_like(component, -1)
    out[sel] = remap[part]
    return out.to(device), torch.tensor(part_component, dtype=torch.int64)[keep].to(device)


def track_objects(votes: SparseVotes, table: TrackTable, labels: Tensor, conflicts: Tensor) -> tuple[Tensor, Tensor]:
    """Objects of the Gaussians from a vote over track ids: shares of each Gaussian's own entry's tracks, tracks
    merged by shared Gaussians (:func:`merge_tracks`), each Gaussian assigned to its object (:func:`assign_objects`).

    Args:
        votes: the vote over track ids (``votes.values`` are track ids) of N Gaussians.
        table: the tracks voted over.
        labels: [N] entry id each Gaussian was lifted to (-1 unlabelled; they get no object).
        conflicts: [T + 1, T + 1] bool (:func:`track_conflicts` of ``table``).

    Returns:
        ``(object [N] int64 representative track id, -1 without; object_conflicts [T + 1, T + 1] bool)``.
    """
    if labels.shape != (votes.num_gaussians,):
        raise InputError(f"track_objects: labels must be [N] = [{votes.num_gaussians}], got {list(labels.shape)}")
    dev = votes.weight.device
    track = votes.values[votes.label]
    g, t, share = track_shares(votes.gaussian, track, votes.weight, table.entry.to(dev), labels.to(dev))
    a, b, mass = shared_mass(g, t, share, table.num_tracks + 1)
    rep, obj_conflicts = merge_tracks(a.cpu(), b.cpu(), mass.cpu(), conflicts.cpu())
    return assign_objects(g, rep.to(dev)[t], share, votes.num_gaussians), obj_conflicts
