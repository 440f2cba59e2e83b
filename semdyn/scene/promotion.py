"""After each lift: which Gaussians belong to which scene-graph node, and the rigid objects' first trajectories.

:func:`regroup` is the one place node membership changes (densification only copies it):

1. Every Gaussian is placed in the world where it is most visible (:meth:`DynamicScene.at_reference`: at the frame
   time nearest its visibility anchor); the members of the current objects are taken out of their object-local
   coordinates there (the objects are dissolved).
2. The robust path estimate (:func:`semdyn.deform.group_motion.estimate_paths`) over the new labels finds the moving
   rigid groups and their inlier members.
3. Each moving group becomes an object. It keeps the learned trajectory of the old object most of its members came
   from (``inherit_overlap``; one old object goes to at most one new one), else its trajectory starts from the path:
   translation fitted to the path, heading from the path's tangent (carried over where the path is slower than
   ``min_speed``), about the scene's up axis; where the sequence has timed LiDAR sweeps, that first trajectory is
   then placed on the object's own returns (:mod:`semdyn.scene.registration`: a box per frame), which gives it a
   box (``RigidObjectsNode.box``, kept with its trajectory). Members that lie outside the box when they are most
   visible go back to the deformable node (beside it) or the background (below it, on the road). Its members are
   written in its local coordinates.
4. Each object owns the space of its box (:func:`_claim_inside`): it takes the deformable Gaussians inside it when
   they are most visible (unlabelled or unsure returns of the car) and the background Gaussians it sweeps through
   above the road (a smear the car left behind); an object without a box takes only deformable Gaussians inside
   its members' extent.
5. Confident members of static groups and of rigid groups that do not move (parked cars) join the background; the
   rest (pedestrians, unlabelled, low-confidence, off-path) the deformable node.

Adam's moments of rows whose coordinates changed, and of the trajectories, are reset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from semdyn.conventions import quat_to_rotmat
from semdyn.deform.group_motion import GroupPaths, estimate_paths, path_at
from semdyn.deform.regularizers import GroupLabels, deform_mask_from_groups
from semdyn.scene.nodes.base import BACKGROUND_ID, DEFORMABLE_ID, OBJECT_ID0
from semdyn.scene.nodes.rigid import RigidObjectsNode
from semdyn.scene.registration import Sweeps, register_to_sweeps
from semdyn.scene.trajectory import bspline_eval, fill_nearest_valid, fit_bspline, unwrap_angles

if TYPE_CHECKING:
    from semdyn.scene.dynamic import DynamicScene


def initial_trajectories(
    paths: GroupPaths,
    groups: Tensor,
    members: list[Tensor],
    world_means: Tensor,
    ref_times: Tensor,
    weights: Tensor,
    up: Tensor,
    node: RigidObjectsNode,
    samples_per_knot: int = 8,
) -> tuple[Tensor, Tensor, Tensor]:
    """First trajectories of objects made from ``groups`` [O] (indices into the paths' groups) with inlier rows
    ``members`` (O index tensors into the N Gaussians).

    Returns ``(translation [O, K, 3], rotation [O, K, 3], frame [O, 3, 3])``: translation control points fitted to
    the members' centres ``world_means`` [N, 3] at their reference times ``ref_times`` [N] (weighted by ``weights``
    [N]; the robust path fills times without members), rotation vectors ``yaw(t) * up`` with the yaw of that
    curve's horizontal tangent measured from the object's mean direction of travel (unwrapped; carried over from
    the nearest sample where the curve is slower than ``min_speed``), and the object axes (forward = that direction,
    up) in local coordinates.
    """
    o, k = groups.shape[0], node.num_knots
    dev = paths.centre.device
    m = samples_per_knot * k
    t = torch.linspace(0.0, 1.0, m, device=dev, dtype=torch.float64)
    path = path_at(paths, groups.repeat_interleave(m), t.repeat(o)).double().view(o, m, 3)
    translation = torch.zeros(o, k, 3, dtype=torch.float64, device=dev)
    for j, rows in enumerate(members):  # the members themselves, with a light touch of the path for the gaps
        ts = torch.cat([ref_times[rows].double(), t])
        xs = torch.cat([world_means[rows].double(), path[j]])
        ws = torch.cat([weights[rows].double(), torch.full((m,), 1e-3, dtype=torch.float64, device=dev)])
        translation[j] = fit_bspline(ts, xs[None], ws[None], k, ridge=0.3)[0]
    curve = bspline_eval(translation, torch.arange(o, device=dev).repeat_interleave(m), t.repeat(o)).view(o, m, 3)
    up = up.double().to(dev)
    tangent = torch.gradient(curve, spacing=(t,), dim=1)[0]  # scene units per normalised time
    flat = tangent - (tangent @ up)[..., None] * up
    lo = paths.first[groups].clamp(0, 1).double()
    hi = paths.last[groups].clamp(0, 1).double()
    seen = (t[None] >= lo[:, None]) & (t[None] <= hi[:, None])  # [O, M]
    travel = (flat * seen[..., None]).sum(1)
    forward = travel / travel.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    left = torch.linalg.cross(up.expand_as(forward), forward, dim=-1)
    yaw = torch.atan2(flat @ left[:, :, None], flat @ forward[:, :, None]).squeeze(-1)  # [O, M]
    metres_per_second = flat.norm(dim=-1) / node.units_per_metre / max(node.duration_s or 1.0, 1e-9)
    valid = (metres_per_second >= node.config.min_speed) & seen
    yaw = unwrap_angles(fill_nearest_valid(yaw, valid))
    rotation = fit_bspline(t, yaw[..., None], torch.ones(o, m, dtype=torch.float64, device=dev), k) * up
    frame = torch.stack([forward, left, up.expand_as(forward)], dim=-1)
    return translation.float(), rotation.float(), frame.float()


def _reset_moments(optimizers: Mapping[str, torch.optim.Optimizer], name: str, rows: Tensor | None = None) -> None:
    """Forget Adam's state of parameter group ``name`` (all of it, or its ``rows``)."""
    opt = optimizers.get(name)
    if opt is None:
        return
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            if rows is None:
                del opt.state[p]
                continue
            for key in ("exp_avg", "exp_avg_sq"):
                if isinstance(state.get(key), Tensor) and state[key].shape[:1] == p.shape[:1]:
                    state[key][rows] = 0


@torch.no_grad()
def regroup(
    scene: DynamicScene,
    labels: GroupLabels | None,
    frame_times: Tensor,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    sweeps: Sweeps | None = None,
) -> Tensor:
    """Rebuild the scene's node membership and rigid objects from ``labels`` (see the module docstring).

    Args:
        scene: the scene (its parameters and objects are changed in place).
        labels: the lifted groups of its N Gaussians, or None (everything back to the default node).
        frame_times: [T] normalised frame times of the sequence (a Gaussian is placed at the one nearest its anchor).
        optimizers: the trainer's optimisers by group name (Adam moments of changed rows are reset).
        sweeps: the sequence's timed LiDAR points; new objects are placed on their returns
            (:mod:`semdyn.scene.registration`). None: the trajectories stay as the path estimate starts them.

    Returns:
        [N] int64 node ids (also set on the scene); the caller stores them in the strategy state.
    """
    optimizers = optimizers or {}
    p, n = scene.params, scene.num_gaussians
    old = scene.node_ids_now()
    ref_times, world_means, world_quats = scene.at_reference(frame_times)
    node = scene.objects
    dissolved = old >= OBJECT_ID0
    p["means"].data[dissolved] = world_means[dissolved]
    p["quats"].data[dissolved] = world_quats[dissolved]
    ids = torch.full((n,), scene.default_node_id, dtype=torch.int64, device=old.device)
    changed = dissolved.clone()
    moving_groups = torch.zeros(0, dtype=torch.int64, device=old.device)
    paths = None
    if labels is not None and labels.num_groups > 0 and len(labels.ids) == n and scene.deformable is not None:
        if scene.config.groups.skip_static_deformation:
            ids[~deform_mask_from_groups(labels, scene.config.groups.static_skip_min_conf)] = BACKGROUND_ID
        if node is not None and scene.deformable.field is not None:
            weight = torch.sigmoid(p["opacities"].detach())
            paths = estimate_paths(world_means, ref_times, weight, labels, node.config.paths, scene.units_per_metre)
            safe = labels.ids.clamp(min=0)
            rigid_still = (
                (labels.ids >= 0)
                & labels.is_rigid.to(safe.device)[safe]
                & ~paths.moving[safe]
                & (labels.conf >= scene.config.groups.static_skip_min_conf)
            )
            ids[rigid_still] = BACKGROUND_ID
            moving_groups = paths.moving.nonzero().squeeze(1)
    if node is not None:
        placement = (ref_times, world_means, world_quats, frame_times, sweeps)
        _rebuild_objects(scene, node, paths, moving_groups, labels, old, ids, *placement)
        changed |= ids >= OBJECT_ID0
        for name in node.param_groups():
            _reset_moments(optimizers, name)
    rows = changed.nonzero().squeeze(1)
    for name in ("means", "quats"):
        _reset_moments(optimizers, name, rows)
    scene.node_ids = ids
    return ids


def _rebuild_objects(
    scene: DynamicScene,
    node: RigidObjectsNode,
    paths: GroupPaths | None,
    moving_groups: Tensor,
    labels: GroupLabels | None,
    old: Tensor,
    ids: Tensor,
    ref_times: Tensor,
    world_means: Tensor,
    world_quats: Tensor,
    frame_times: Tensor,
    sweeps: Sweeps | None,
) -> None:
    """Objects for ``moving_groups`` (inheriting old trajectories where members overlap, registered to the
    ``sweeps`` where given), members into local coordinates, ``ids`` of the members set."""
    old_state = (node.translation.detach().clone(), node.rotation.detach().clone(), node.frame.clone())
    num_old = node.num_objects
    o = int(moving_groups.numel())
    if paths is None or labels is None or o == 0:
        node.resize(0)
        return
    members_of = [(paths.members & (labels.ids == g)).nonzero().squeeze(1) for g in moving_groups.tolist()]
    weights = torch.sigmoid(scene.params["opacities"].detach()) * labels.conf
    translation, rotation, frame = initial_trajectories(
        paths, moving_groups, members_of, world_means, ref_times, weights, scene.up, node
    )
    taken: set[int] = set()
    kept: dict[int, int] = {}  # objects that keep a learned trajectory: new index -> old
    for j, rows in enumerate(members_of):
        prev = old[rows] - OBJECT_ID0
        prev = prev[(prev >= 0) & (prev < num_old)]
        if prev.numel() == 0:
            continue
        counts = torch.bincount(prev, minlength=num_old)
        best = int(counts.argmax())
        if best not in taken and float(counts[best]) >= node.config.inherit_overlap * rows.numel():
            taken.add(best)
            kept[j] = best
            translation[j], rotation[j], frame[j] = old_state[0][best], old_state[1][best], old_state[2][best]
    interval = torch.stack([paths.first[moving_groups], paths.last[moving_groups]], dim=1).clamp(0, 1)
    old_box, old_refined = node.box.clone(), node.refined.clone()
    refined = torch.ones(o, dtype=torch.bool, device=translation.device)
    box = torch.full((o, 2, 3), math.nan, device=translation.device)  # [O, 2, 3] each object's box, its axes
    for j, before in kept.items():  # its box stays with its trajectory, and whether that is measured
        box[j], refined[j] = old_box[before], old_refined[before]
    new = [j for j in range(o) if j not in kept]  # a learned trajectory is not thrown away
    placed = None
    if sweeps is not None and node.config.registration.enabled and new:
        duration = node.duration_s or 1.0
        placed = register_to_sweeps(
            translation[new],
            rotation[new],
            frame[new],
            moving_groups[new],
            [(world_means[members_of[j]], ref_times[members_of[j]]) for j in new],
            interval[new],
            sweeps,
            frame_times,
            scene.up,
            scene.units_per_metre,
            node.config.min_speed * scene.units_per_metre * duration,
            node.config.registration,
            node.config.extent_quantile,
        )
        translation[new], rotation[new], frame[new] = placed.translation, placed.rotation, placed.frame
        times = torch.unique(frame_times.to(interval).float())
        for i, j in enumerate(new):  # the frames it was followed through on the sweeps are frames it was seen
            followed = times[placed.used[i].to(times.device) > 0]
            if followed.numel():
                interval[j, 0] = torch.minimum(interval[j, 0], followed.min())
                interval[j, 1] = torch.maximum(interval[j, 1], followed.max())
    node.resize(o)
    node.translation.data.copy_(translation)
    node.rotation.data.copy_(rotation)
    node.frame.copy_(frame)
    node.group.copy_(moving_groups)
    node.interval.copy_(interval)
    for j, rows in enumerate(members_of):
        ids[rows] = OBJECT_ID0 + j
    gate = node.config.registration.gate * node.units_per_metre
    for i, j in enumerate(new):
        if placed is None or not bool(torch.isfinite(placed.size[i]).all() & torch.isfinite(placed.heights[i]).all()):
            continue
        extent = _member_extent(node, j, members_of[j], world_means, ref_times, node.config.extent_quantile)
        box[j] = _placed_box(placed.size[i], placed.whole[i], placed.heights[i], extent, gate)
        refined[j] = node.config.refine_placed  # its track is measured on the returns
    node.box = box
    node.refined = refined
    _release_outside(node, ids, world_means, ref_times, gate)
    ref_times = _claim_inside(scene, node, ids, world_means, ref_times, frame_times, node.config.extent_quantile)
    p = scene.params
    for j in range(o):
        rows = (ids == OBJECT_ID0 + j).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        node.interval[j, 0] = torch.minimum(node.interval[j, 0], ref_times[rows].min())
        node.interval[j, 1] = torch.maximum(node.interval[j, 1], ref_times[rows].max())
        objects = torch.full_like(rows, j)
        local, local_q = node.to_local(world_means[rows], world_quats[rows], objects, ref_times[rows])
        p["means"].data[rows] = local
        p["quats"].data[rows] = local_q


def _in_axes(node: RigidObjectsNode, j: int, world_means: Tensor, times: Tensor) -> Tensor:
    """[M, 3] ``world_means`` [M, 3] at normalised ``times`` [M] in object ``j``'s axes (forward, left, up)."""
    objects = torch.full((world_means.shape[0],), j, dtype=torch.int64, device=world_means.device)
    zero = torch.zeros(world_means.shape[0], 4, device=world_means.device)
    local, _ = node.to_local(world_means, zero, objects, times)
    return local @ node.frame[j].to(local)


def _in_axes_at(node: RigidObjectsNode, j: int, world_means: Tensor, t: float) -> Tensor:
    """[M, 3] ``world_means`` [M, 3] in object ``j``'s axes at one normalised time ``t`` (its pose found once)."""
    objects = torch.tensor([j], device=world_means.device)
    quat, centre = node.poses(objects, torch.tensor([t], device=world_means.device, dtype=world_means.dtype))
    rot = quat_to_rotmat(quat)[0]
    return ((world_means - centre) @ rot) @ node.frame[j].to(world_means)


def _member_extent(
    node: RigidObjectsNode, j: int, rows: Tensor, world_means: Tensor, ref_times: Tensor, quantile: float
) -> Tensor:
    """[2, 3] the box that holds object ``j``'s members ``rows`` where they are most visible, in its axes: per axis
    from the ``quantile`` to the ``1 - quantile`` of their coordinates (NaN with fewer than 8 members)."""
    if rows.numel() < 8:
        return torch.full((2, 3), math.nan, device=world_means.device)
    axes = _in_axes(node, j, world_means[rows], ref_times[rows])
    q = torch.tensor([quantile, 1 - quantile], device=axes.device, dtype=axes.dtype)
    return torch.quantile(axes, q, dim=0)


def _placed_box(size: Tensor, whole: Tensor, heights: Tensor, extent: Tensor, gate: float) -> Tensor:
    """[2, 3] a placed object's box in its axes (scene units): length and width from its returns, ``size`` [2],
    about its centre; along an axis not seen ``whole`` [2] (``size`` only bounds it: a car only ever seen from
    behind) it also holds the members' ``extent`` [2, 3] as far as ``gate`` beyond (the members it keeps). Its
    bottom and top are ``heights`` [2] (just above the road, and its highest returns; the members' highest if
    higher)."""
    half = 0.5 * size.to(extent)
    low, high = heights.to(extent)
    box = torch.stack([torch.cat([-half, low[None]]), torch.cat([half, high[None]])])
    if bool(torch.isfinite(extent).all()):
        box[1, 2] = torch.maximum(box[1, 2], extent[1, 2])
        grow = ~whole.to(extent.device)
        reach = extent[:, :2].clamp(-half - gate, half + gate)
        box[0, :2] = torch.where(grow, torch.minimum(box[0, :2], reach[0]), box[0, :2])
        box[1, :2] = torch.where(grow, torch.maximum(box[1, :2], reach[1]), box[1, :2])
    return box


def _release_outside(node: RigidObjectsNode, ids: Tensor, world_means: Tensor, ref_times: Tensor, gate: float) -> None:
    """Members that lie, when they are most visible, farther than ``gate`` (scene units) outside their object's box
    (horizontally) go back to the deformable node: labelled with the car, but not on it when they were seen. Those
    below its bottom, on the road, join the background."""
    for j in range(node.num_objects):
        box = node.box[j]
        rows = (ids == OBJECT_ID0 + j).nonzero().squeeze(1)
        if rows.numel() == 0 or not bool(torch.isfinite(box).all()):
            continue
        axes = _in_axes(node, j, world_means[rows], ref_times[rows])
        flat = axes[:, :2]
        outside = ((flat < box[0, :2].to(axes) - gate) | (flat > box[1, :2].to(axes) + gate)).any(dim=-1)
        ids[rows[outside]] = DEFORMABLE_ID
        ids[rows[~outside & (axes[:, 2] < box[0, 2])]] = BACKGROUND_ID


def _claim_inside(
    scene: DynamicScene,
    node: RigidObjectsNode,
    ids: Tensor,
    world_means: Tensor,
    ref_times: Tensor,
    frame_times: Tensor,
    quantile: float,
) -> Tensor:
    """Give each object the Gaussians inside its box: an object owns the space it fills.

    A deformable Gaussian is taken where it lies inside the box when it is most visible: a car's return the lift
    left unlabelled, unsure or labelled as the road behind it is on the car at the time it was captured, wherever
    the car then was. A background Gaussian (still at every time) is taken where it lies inside the box at any
    frame the object is seen: nothing static fills a moving car's path above the road, so it is the car's, left
    behind (a smear); it joins the object at the frame it lies deepest inside, which becomes its reference time
    (and its visibility anchor). Other objects' members are never taken; where two boxes hold a Gaussian, the first
    object keeps it. The box's bottom is above the road (a car's road stays the road's). An object without a box
    (not placed on the sweeps) takes only deformable Gaussians, inside its members' extent (per axis from the
    ``quantile`` to the ``1 - quantile`` of their coordinates in its axes).

    Returns:
        [N] the reference times, with those of the background Gaussians taken replaced.
    """
    ref_times = ref_times.clone()
    times = torch.unique(frame_times.to(ref_times).float())
    for j in range(node.num_objects):
        box = node.box[j]
        placed = bool(torch.isfinite(box).all())
        if not placed:
            rows = (ids == OBJECT_ID0 + j).nonzero().squeeze(1)
            box = _member_extent(node, j, rows, world_means, ref_times, quantile)
            if not bool(torch.isfinite(box).all()):
                continue
        centre, half = 0.5 * (box[0] + box[1]), (0.5 * (box[1] - box[0])).clamp_min(1e-9)
        free = (ids == DEFORMABLE_ID).nonzero().squeeze(1)
        if free.numel():
            depth = ((_in_axes(node, j, world_means[free], ref_times[free]) - centre).abs() / half).amax(dim=-1)
            ids[free[depth <= 1]] = OBJECT_ID0 + j
        if not placed:  # without a box from the returns, the members' extent may reach down to the road
            continue
        still = (ids == BACKGROUND_ID).nonzero().squeeze(1)
        seen = times[(times >= node.interval[j, 0] - 1e-6) & (times <= node.interval[j, 1] + 1e-6)]
        if still.numel() == 0 or seen.numel() == 0:
            continue
        best = torch.full((still.numel(),), math.inf, device=world_means.device)
        when = torch.zeros(still.numel(), device=world_means.device)
        still_means = world_means[still]
        for t in seen.tolist():
            at = torch.full((still.numel(),), t, device=world_means.device)
            depth = ((_in_axes_at(node, j, still_means, t) - centre).abs() / half).amax(dim=-1)
            closer = depth < best
            best, when = torch.where(closer, depth, best), torch.where(closer, at, when)
        taken = best <= 1
        ids[still[taken]] = OBJECT_ID0 + j
        ref_times[still[taken]] = when[taken]
        if "anchor_time" in scene.params:
            scene.params["anchor_time"].data[still[taken]] = when[taken].to(scene.params["anchor_time"])
    return ref_times


__all__ = ["initial_trajectories", "regroup"]
