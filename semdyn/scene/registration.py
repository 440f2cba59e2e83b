"""Rigid objects' trajectories placed on the LiDAR sweeps: where a car is at each time, from its own returns.

The first trajectory of an object (:func:`semdyn.scene.promotion.initial_trajectories`) follows its members'
centres at the times they are most visible. Those centres slide along the car as the view changes (its front is
seen while it approaches, its back once it has passed), so the path runs slower than the car, and where few
members are labelled its tangent, hence its heading, is noise. The sweeps hold the car's visible surface at every
frame. :func:`register_to_sweeps` fits a box to each frame's returns of the object:

- the returns: where the sweep points carry labels (:func:`semdyn.semantics.sweep_labels.label_points`, from the
  views' ID maps), the object's own points; otherwise the points near its current box, above the local ground;
- the heading: the rectangle the frame's points hug most closely (an L-shape fit), of the four directions of its
  axes the one nearest the direction of travel (without labels, the first trajectory's heading is kept);
- the centre: each axis from the face turned to the sensor (the far face is hidden or sparse), half the object's
  size away; the size, per axis, a high quantile over the frames of the distance between the faces (a frame seldom
  shows both faces, and never more than the object);

and fits the trajectory's control points to the frames' boxes (frames with too few points are bridged by the
spline's smoothing and a light pull to the first trajectory). Without labels only the position along the heading
is corrected (the slide), in ``iterations`` rounds that take the points again around the corrected box. A
sequence without timed sweeps (structure from motion, images only) keeps the first trajectory. Distances are
scene units unless a name says metres; times are normalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from semdyn.errors import InputError
from semdyn.scene.trajectory import bspline_eval, fill_nearest_valid, fit_bspline, nearest_index, so3_exp, unwrap_angles


@dataclass(frozen=True)
class RegistrationConfig:
    """Placing the rigid objects' trajectories on the LiDAR sweeps."""

    enabled: bool = True
    """Place trajectories on the sweeps when the sequence has timed LiDAR points."""
    iterations: int = 3
    """Unlabelled sweeps: rounds of take-points-then-refit (the points are taken again around the corrected box)."""
    gate: float = 1.5
    """Metres the object's box is grown by, horizontally, to take a frame's unlabelled points; also how far outside
    the fitted box (in its frame) a member may lie before it returns to the deformable node."""
    ground_clearance: float = 0.2
    """Metres above the local ground (a low quantile of the points around the box) below which points are road."""
    min_points: int = 8
    """A frame with fewer of the object's points keeps the spline's pose."""
    ridge: float = 0.3
    """Smoothing of the fit (see :func:`semdyn.scene.trajectory.fit_bspline`)."""
    end_quantile: float = 0.03
    """A frame's faces are this quantile and one minus it of its points along the box's axes."""
    size_quantile: tuple[float, float] = (0.9, 0.5)
    """The object's length and width: these quantiles over the frames of the distance between its faces (its
    length shows whole only from the side, so a high one; its width from behind or ahead, most of the time)."""
    heading_steps: int = 90
    """Angles tried over a quarter turn by the rectangle fit."""

    def __post_init__(self) -> None:
        checks = [
            ("iterations", self.iterations >= 1),
            ("gate", self.gate >= 0 and math.isfinite(self.gate)),
            ("ground-clearance", self.ground_clearance >= 0),
            ("min-points", self.min_points >= 3),
            ("ridge", self.ridge >= 0),
            ("end-quantile", 0 <= self.end_quantile < 0.5),
            ("size-quantile", all(0 < q <= 1 for q in self.size_quantile)),
            ("heading-steps", self.heading_steps >= 4),
        ]
        for name, ok in checks:
            if not ok:
                value = getattr(self, name.replace("-", "_"))
                raise InputError(f"--model.objects.registration.{name} is out of range: {value!r}")


@dataclass(frozen=True)
class Sweeps:
    """Timed LiDAR points of a sequence, with the sensor's positions and, where known, the points' groups."""

    points: Tensor
    """[P, 3] scene units, world frame."""
    times: Tensor
    """[P] normalised capture times (a frame's sweep shares its frame's time)."""
    sensor_positions: Tensor
    """[S, 3] where the sensor (the camera rig) was, scene units."""
    sensor_times: Tensor
    """[S] normalised times of ``sensor_positions``."""
    groups: Tensor | None = None
    """[P] int64 lifted group of each point (-1: none), or None when the points carry no labels."""


@dataclass(frozen=True)
class Placement:
    """What :func:`register_to_sweeps` made of the objects."""

    translation: Tensor
    """[O, K, 3] translation control points."""
    rotation: Tensor
    """[O, K, 3] rotation-vector control points."""
    frame: Tensor
    """[O, 3, 3] object axes (forward, left, up) in local coordinates."""
    size: Tensor
    """[O, 2] length and width of each object's box (scene units; NaN where it was not placed)."""
    used: Tensor
    """[O, T] how many sweep points placed each object at each frame (0 where the spline bridged)."""


def _basis(up: Tensor) -> Tensor:
    """[3, 3] orthonormal columns (e1, e2, up): coordinates whose third axis is the scene's up."""
    up = up / up.norm()
    seed = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype, device=up.device)
    if float((seed @ up).abs()) > 0.9:
        seed = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype, device=up.device)
    e1 = seed - (seed @ up) * up
    e1 = e1 / e1.norm()
    return torch.stack([e1, torch.linalg.cross(up, e1), up], dim=1)


def _frame_points(points: Tensor, times: Tensor, frame_times: Tensor) -> list[Tensor]:
    """Indices of the ``points`` (at ``times`` [P]) of each frame time [T]: those within half a frame interval."""
    half = 0.5 * float(torch.diff(frame_times).min()) if frame_times.numel() > 1 else 1.0
    nearest = nearest_index(times, frame_times)
    close = (times - frame_times[nearest]).abs() <= half + 1e-9
    return [(close & (nearest == j)).nonzero().squeeze(1) for j in range(frame_times.numel())]


def _sensor_at(sweeps: Sweeps, frame_times: Tensor) -> Tensor:
    """[T, 3] the sensor's position at each frame time (the mean of its positions there; the nearest otherwise)."""
    st = sweeps.sensor_times.to(frame_times)
    nearest = nearest_index(st, frame_times)  # [S]
    pos = sweeps.sensor_positions.to(frame_times)
    total = torch.zeros(frame_times.numel(), 3, dtype=pos.dtype, device=pos.device).index_add_(0, nearest, pos)
    count = torch.zeros(frame_times.numel(), dtype=pos.dtype, device=pos.device).index_add_(
        0, nearest, torch.ones_like(st)
    )
    have = count > 0
    out = total / count.clamp_min(1)[:, None]
    if not bool(have.all()):
        fill = (frame_times[:, None] - frame_times[have][None]).abs().argmin(dim=1)
        out = out[have][fill]
    return out


def _rectangle_heading(xy: Tensor, steps: int) -> Tensor:
    """Angle in [0, pi/2) of the axes of the rectangle that the points ``xy`` [P, 2] hug most closely: the search
    of Zhang et al. (2017, "Efficient L-shape fitting for vehicle detection using laser scanners") with the
    closeness criterion, the sum over points of one over their distance to the nearest edge (floored at half a
    percent of the cloud's size). A LiDAR sees one or two faces of a car, an L; the least-area rectangle tilts
    across an L's corner."""
    angles = torch.arange(steps, dtype=xy.dtype, device=xy.device) * (0.5 * math.pi / steps)
    c, s = torch.cos(angles), torch.sin(angles)
    a = xy[:, :1] * c + xy[:, 1:] * s  # [P, A] along the first axis
    b = -xy[:, :1] * s + xy[:, 1:] * c
    da = torch.minimum(a - a.min(0).values, a.max(0).values - a)
    db = torch.minimum(b - b.min(0).values, b.max(0).values - b)
    floor = 0.005 * float((xy.max(0).values - xy.min(0).values).norm()) + 1e-12
    closeness = (1.0 / torch.minimum(da, db).clamp_min(floor)).sum(0)
    return angles[closeness.argmax()]


def _nearest_axis(angle: Tensor, travel: Tensor) -> Tensor:
    """Of ``angle + k pi/2`` (k = 0..3) the one nearest ``travel`` (radians), folded near it."""
    cand = angle + torch.arange(4, dtype=angle.dtype, device=angle.device) * (0.5 * math.pi)
    diff = torch.remainder(cand - travel + math.pi, 2 * math.pi) - math.pi
    return travel + diff[diff.abs().argmin()]


def _compact(cloud: Tensor, min_points: int) -> Tensor:
    """``cloud`` [P, 3] without the points far from its horizontal median (more than twice the upper quartile of
    the distances): returns that a label carried past the object's silhouette (the background behind an edge)."""
    if cloud.shape[0] < min_points:
        return cloud
    r = (cloud[:, :2] - cloud[:, :2].median(dim=0).values).norm(dim=-1)
    return cloud[r <= 2 * torch.quantile(r, 0.75)]


def _boxes(
    clouds: list[Tensor],
    sensor: Tensor,
    heading: Tensor | None,
    ts: Tensor,
    min_speed: float,
    config: RegistrationConfig,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per frame, the box of an object's points.

    Args:
        clouds: S clouds [P_s, 3] in horizontal coordinates (third axis up).
        sensor: [S, 3] the sensor in the same coordinates.
        heading: [S] fixed headings (radians), or None to fit them (rectangle + direction of travel).
        ts: [S] normalised times of the frames.
        min_speed: scene units per normalised time below which the direction of travel is not trusted.
        config: see :class:`RegistrationConfig`.

    Returns:
        ``(centre [S, 3], heading [S], weight [S], size [2])``: the third coordinate of a centre is the median
        height of the frame's points; a frame's weight is its share of the most points any frame has (0 for a
        frame with fewer than ``min_points``).
    """
    dev, dt = sensor.device, sensor.dtype
    n = len(clouds)
    clouds = [_compact(c, config.min_points) for c in clouds]
    count = torch.tensor([c.shape[0] for c in clouds], device=dev)
    ok = count >= config.min_points
    mid = torch.zeros(n, 3, dtype=dt, device=dev)
    for s, c in enumerate(clouds):
        if ok[s]:
            mid[s] = c.median(dim=0).values
    weight = torch.where(ok, count.to(dt) / count.max().clamp_min(1), torch.zeros((), dtype=dt, device=dev))
    if int(ok.sum()) < 2:  # nothing to place the object on
        return mid, torch.zeros(n, dtype=dt, device=dev), weight, torch.full((2,), math.nan, dtype=dt, device=dev)
    if heading is None:
        k = max(4, min(12, int(ok.sum()) // 2))
        ctrl = fit_bspline(ts, mid[None, :, :2], weight[None], k, config.ridge)
        dense = bspline_eval(ctrl, torch.zeros_like(ts, dtype=torch.int64), ts)
        vel = torch.gradient(dense, spacing=(ts,), dim=0)[0] if n > 1 else torch.zeros_like(dense)
        moving = ok & (vel.norm(dim=-1) >= min_speed)
        if not bool(moving.any()):
            moving = ok
        travel = fill_nearest_valid(unwrap_angles(torch.atan2(vel[:, 1], vel[:, 0])), moving)
        heading = travel.clone()
        for s, c in enumerate(clouds):
            if c.shape[0] >= 2 * config.min_points:
                axis = _rectangle_heading(c[:, :2] - mid[s, :2], config.heading_steps)
                heading[s] = _nearest_axis(axis, travel[s])
        heading = unwrap_angles(heading)
    cos, sin = torch.cos(heading), torch.sin(heading)
    quant = torch.tensor([config.end_quantile, 1 - config.end_quantile], dtype=dt, device=dev)
    low = torch.zeros(n, 2, dtype=dt, device=dev)
    high = torch.zeros(n, 2, dtype=dt, device=dev)
    view = torch.zeros(n, 2, dtype=dt, device=dev)
    for s, c in enumerate(clouds):
        rot = torch.stack([torch.stack([cos[s], sin[s]]), torch.stack([-sin[s], cos[s]])])  # world -> box axes
        view[s] = rot @ sensor[s, :2]
        if ok[s]:
            low[s], high[s] = torch.quantile(c[:, :2] @ rot.T, quant, dim=0)
    size = torch.zeros(2, dtype=dt, device=dev)
    if bool(ok.any()):
        for axis, q in enumerate(config.size_quantile):
            size[axis] = torch.quantile((high - low)[ok, axis], q)
    near_high = view > 0.5 * (low + high)
    box = torch.where(near_high, high - 0.5 * size, low + 0.5 * size)  # [S, 2] in box axes
    centre = mid.clone()
    centre[:, 0] = cos * box[:, 0] - sin * box[:, 1]
    centre[:, 1] = sin * box[:, 0] + cos * box[:, 1]
    return centre, heading, weight, size


@torch.no_grad()
def register_to_sweeps(
    translation: Tensor,
    rotation: Tensor,
    frames: Tensor,
    groups: Tensor,
    members: list[tuple[Tensor, Tensor]],
    intervals: Tensor,
    sweeps: Sweeps,
    frame_times: Tensor,
    up: Tensor,
    units_per_metre: float,
    min_speed: float,
    config: RegistrationConfig,
    extent_quantile: float = 0.02,
) -> Placement:
    """O objects' trajectories placed on their sweep points (see the module docstring).

    Args:
        translation: [O, K, 3] first translation control points (scene units).
        rotation: [O, K, 3] first rotation-vector control points (radians, about ``up``).
        frames: [O, 3, 3] the objects' axes (forward, left, up) in their local coordinates.
        groups: [O] each object's lifted group (matched against ``sweeps.groups``).
        members: per object, ``(world_means [M, 3], times [M])``: its members where and when they are most
            visible (unlabelled sweeps: their box in the object's frame, from the ``extent_quantile`` to one minus
            it, grown by ``gate``, is where the object's points are taken).
        intervals: [O, 2] normalised times over which each object was seen (only these frames are used).
        sweeps: the sequence's timed LiDAR points and sensor positions.
        frame_times: [T] normalised frame times.
        up: [3] the scene's up axis.
        units_per_metre: scene units per metre.
        min_speed: scene units per normalised time below which the direction of travel is not trusted.
        config: see :class:`RegistrationConfig`.
        extent_quantile: see :class:`semdyn.scene.nodes.rigid.RigidObjectsConfig`.

    Returns:
        A :class:`Placement` (objects without enough points keep their first trajectory).
    """
    o, k = translation.shape[:2]
    if rotation.shape != translation.shape or frames.shape != (o, 3, 3) or intervals.shape != (o, 2):
        raise InputError(
            f"register_to_sweeps needs translation and rotation [O, K, 3], frames [O, 3, 3] and intervals [O, 2], "
            f"got {list(translation.shape)}, {list(rotation.shape)}, {list(frames.shape)}, {list(intervals.shape)}"
        )
    if len(members) != o or groups.shape != (o,):
        raise InputError(f"register_to_sweeps needs one group and one member set per object ({o})")
    dev, dt = translation.device, torch.float64
    times = torch.unique(frame_times.to(dev).double())
    points = sweeps.points.to(dev).double()
    labels = None if sweeps.groups is None else sweeps.groups.to(dev)
    per_frame = _frame_points(points, sweeps.times.to(dev).double(), times)
    basis = _basis(up.to(dev).double())
    up_axis = basis[:, 2]
    sensor = _sensor_at(sweeps, times).to(dev).double() @ basis  # [T, 3] horizontal coordinates
    trans, rots, frame = translation.double().clone(), rotation.double().clone(), frames.double().clone()
    size = torch.full((o, 2), math.nan, dtype=dt, device=dev)
    used = torch.zeros(o, times.numel(), dtype=torch.int64, device=dev)
    gate, clearance = config.gate * units_per_metre, config.ground_clearance * units_per_metre
    quantiles = torch.tensor([extent_quantile, 1 - extent_quantile], dtype=dt, device=dev)
    for j in range(o):
        seen = ((times >= intervals[j, 0] - 1e-6) & (times <= intervals[j, 1] + 1e-6)).nonzero().squeeze(1)
        if seen.numel() < 2:
            continue
        ts = times[seen]
        ids = torch.full_like(ts, j, dtype=torch.int64)
        centre0 = bspline_eval(trans, ids, ts)
        forward0 = (so3_exp(bspline_eval(rots, ids, ts)) @ frame[j, :, 0]) @ basis  # [S, 3]
        heading0 = unwrap_angles(torch.atan2(forward0[:, 1], forward0[:, 0]))
        if labels is not None:
            mine = labels == int(groups[j])
            clouds = [points[idx[mine[idx]]] @ basis for idx in (per_frame[f] for f in seen.tolist())]
            centre, heading, weight, size_j = _boxes(clouds, sensor[seen], None, ts, min_speed, config)
        else:
            member_x, member_t = (v.to(dev).double() for v in members[j])
            if member_x.shape[0] < config.min_points:
                continue
            at = torch.full_like(member_t, j, dtype=torch.int64)
            centre = centre0 @ basis
            for _ in range(config.iterations):
                c_now = bspline_eval(trans, ids, ts) @ basis  # [S, 3]
                offset = (member_x - bspline_eval(trans, at, member_t))[:, None]
                local = (offset @ so3_exp(bspline_eval(rots, at, member_t))).squeeze(1) @ frame[j]  # object axes
                lo, hi = torch.quantile(local, quantiles, dim=0)
                clouds = []
                for s, f in enumerate(seen.tolist()):
                    p = points[per_frame[f]] @ basis - c_now[s]
                    cs, sn = torch.cos(heading0[s]), torch.sin(heading0[s])
                    a = torch.stack([cs * p[:, 0] + sn * p[:, 1], -sn * p[:, 0] + cs * p[:, 1]], dim=-1)
                    inside = ((a >= lo[:2] - gate) & (a <= hi[:2] + gate)).all(-1)
                    ring = ((a >= lo[:2] - gate - 3 * units_per_metre)
                            & (a <= hi[:2] + gate + 3 * units_per_metre)).all(-1) & ~inside  # fmt: skip
                    ground = torch.quantile(p[ring, 2], 0.2) if int(ring.sum()) >= 10 else lo[2] - clearance
                    keep = inside & (p[:, 2] > ground + clearance) & (p[:, 2] <= hi[2] + gate)
                    clouds.append(p[keep] + c_now[s])
                box, _, weight, size_j = _boxes(clouds, sensor[seen], heading0, ts, min_speed, config)
                ok = weight > 0
                # Along the heading only: beside it, the first trajectory's centre holds.
                fwd = torch.stack([torch.cos(heading0), torch.sin(heading0)], dim=-1)
                along = ((box[:, :2] - c_now[:, :2]) * fwd).sum(-1, keepdim=True)
                centre = c_now.clone()
                centre[:, :2] = torch.where(ok[:, None], c_now[:, :2] + along * fwd, c_now[:, :2])
                centre[:, 2] = c_now[:, 2]
                w = torch.cat([weight, torch.full_like(ts, 1e-3)])[None]
                trans[j] = fit_bspline(torch.cat([ts, ts]), torch.cat([centre @ basis.T, centre0])[None], w, k,
                                       config.ridge)[0]  # fmt: skip
            heading = heading0
        ok = weight > 0
        if int(ok.sum()) < 2:
            continue
        w = torch.cat([weight, torch.full_like(ts, 1e-3)])[None]
        if labels is not None:  # the first trajectory's heights: a frame's visible points say little of them
            placed = centre.clone()
            placed[:, 2] = (centre0 @ basis)[:, 2]
            trans[j] = fit_bspline(torch.cat([ts, ts]), torch.cat([placed @ basis.T, centre0])[None], w, k,
                                   config.ridge)[0]  # fmt: skip
            ref = heading[ok].mean()
            forward = basis @ torch.stack([torch.cos(ref), torch.sin(ref), torch.zeros_like(ref)])
            frame[j] = torch.stack([forward, torch.linalg.cross(up_axis, forward), up_axis], dim=1)
            yaw = (heading - ref)[:, None] * up_axis  # [S, 3] rotation vectors about up
            rots[j] = fit_bspline(ts, yaw[None], weight.clamp_min(1e-3)[None], k, config.ridge)[0]
        size[j] = size_j
        used[j, seen] = torch.where(ok, torch.tensor([c.shape[0] for c in clouds], device=dev), 0)
    return Placement(trans.to(translation.dtype), rots.to(rotation.dtype), frame.to(frames.dtype), size, used)


__all__ = ["Placement", "RegistrationConfig", "Sweeps", "register_to_sweeps"]
