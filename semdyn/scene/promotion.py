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
   then placed on the object's own returns (:mod:`semdyn.scene.registration`: a box per frame), and members that
   lie outside the placed box when they are most visible go back to the deformable node. Its members are written
   in its local coordinates.
4. Each object also takes the deformable Gaussians inside its extent (the box of its members in its own frame) at
   the times they are most visible: unlabelled or unsure returns of the car; a placed object also the background
   Gaussians inside its fitted box there (:func:`_claim_extent`).
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
    if labels is not None and len(labels.ids) == n and scene.deformable is not None:
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
    kept: list[int] = []  # objects that keep a learned trajectory
    for j, rows in enumerate(members_of):
        prev = old[rows] - OBJECT_ID0
        prev = prev[(prev >= 0) & (prev < num_old)]
        if prev.numel() == 0:
            continue
        counts = torch.bincount(prev, minlength=num_old)
        best = int(counts.argmax())
        if best not in taken and float(counts[best]) >= node.config.inherit_overlap * rows.numel():
            taken.add(best)
            kept.append(j)
            translation[j], rotation[j], frame[j] = old_state[0][best], old_state[1][best], old_state[2][best]
    interval = torch.stack([paths.first[moving_groups], paths.last[moving_groups]], dim=1).clamp(0, 1)
    size: Tensor | None = None  # [O, 2] the placed objects' boxes (NaN for those that keep a learned trajectory)
    new = [j for j in range(o) if j not in kept]  # a learned trajectory is not thrown away
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
        size = torch.full((o, 2), math.nan, dtype=placed.size.dtype, device=placed.size.device)
        size[new] = placed.size
    node.resize(o)
    node.translation.data.copy_(translation)
    node.rotation.data.copy_(rotation)
    node.frame.copy_(frame)
    node.group.copy_(moving_groups)
    node.interval.copy_(interval)
    for j, rows in enumerate(members_of):
        ids[rows] = OBJECT_ID0 + j
    if size is not None:
        _release_outside(node, ids, world_means, ref_times, size, node.config.registration.gate)
    _claim_extent(node, ids, world_means, ref_times, node.config.extent_quantile, size)
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


def _release_outside(
    node: RigidObjectsNode, ids: Tensor, world_means: Tensor, ref_times: Tensor, size: Tensor, gate_m: float
) -> None:
    """Members that lie, when they are most visible, farther than ``gate_m`` metres outside their object's box
    (``size`` [O, 2]: length and width, scene units; NaN: not placed) go back to the deformable node: labelled
    with the car, but not on it when they were seen."""
    gate = gate_m * node.units_per_metre
    for j in range(node.num_objects):
        if not bool(torch.isfinite(size[j]).all()):
            continue
        rows = (ids == OBJECT_ID0 + j).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        objects = torch.full_like(rows, j)
        local, _ = node.to_local(world_means[rows], torch.zeros(rows.numel(), 4, device=rows.device), objects,
                                 ref_times[rows])  # fmt: skip
        axes = (local @ node.frame[j])[:, :2]  # forward, left
        half = 0.5 * size[j].to(axes) + gate
        ids[rows[(axes.abs() > half).any(dim=-1)]] = DEFORMABLE_ID


def _claim_extent(
    node: RigidObjectsNode,
    ids: Tensor,
    world_means: Tensor,
    ref_times: Tensor,
    quantile: float,
    size: Tensor | None = None,
) -> None:
    """Give each object the Gaussians that lie inside its extent when they are most visible. The extent is, in the
    object's own frame, the box that holds its labelled members (per axis, from the ``quantile`` to the ``1 -
    quantile`` of their local coordinates). Where the object was placed on the sweeps (``size`` [O, 2], length and
    width, finite), background Gaussians inside both that box and its fitted one are taken too. A car's returns
    that the lift left unlabelled, unsure or labelled as the road behind it are on the car at the time they were
    captured, wherever the car then was: geometry, not labels, decides. Other objects' members are never taken;
    where two boxes hold a Gaussian, the first object keeps it."""
    for j in range(node.num_objects):
        rows = (ids == OBJECT_ID0 + j).nonzero().squeeze(1)
        placed = size is not None and bool(torch.isfinite(size[j]).all())
        free = ((ids == DEFORMABLE_ID) | ((ids == BACKGROUND_ID) & placed)).nonzero().squeeze(1)
        if rows.numel() < 8 or free.numel() == 0:
            continue
        objects = torch.full_like(rows, j)
        local, _ = node.to_local(world_means[rows], torch.zeros(rows.numel(), 4, device=rows.device), objects,
                                 ref_times[rows])  # fmt: skip
        axes = node.frame[j].to(local)
        local = local @ axes  # forward, left, up
        q = torch.tensor([quantile, 1 - quantile], device=local.device, dtype=local.dtype)
        lo, hi = torch.quantile(local, q, dim=0)
        objects = torch.full_like(free, j)
        there, _ = node.to_local(world_means[free], torch.zeros(free.numel(), 4, device=free.device), objects,
                                 ref_times[free])  # fmt: skip
        there = there @ axes
        inside = ((there >= lo) & (there <= hi)).all(dim=-1)
        if placed:  # background only inside the fitted box as well (never a neighbour's parked car)
            assert size is not None
            half = 0.5 * size[j].to(local)
            in_box = (there[:, :2].abs() <= half).all(dim=-1)
            inside &= in_box | (ids[free] == DEFORMABLE_ID)
        ids[free[inside]] = OBJECT_ID0 + j


__all__ = ["initial_trajectories", "regroup"]
