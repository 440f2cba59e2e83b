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
  size away; along an axis the sensor is beside, where the points only bound it (:func:`_centre_from_faces`);
- labels stop at the edges of the cameras' views, the LiDAR does not: each labelled frame's box is measured again
  on all the frame's returns near it that no other group claims, and the frames beyond are followed one by one
  (:func:`_follow`), so a car that has passed the ego is still placed;
- the size: per axis, the median extent over the frames where the sensor is beside that axis (both ends in view),
  else a high quantile of the labelled extents (a car only ever seen from behind: a lower bound);
- the heights: the first trajectory's above the road measured under the box, carried to the frames followed;

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
    end_quantile: float = 0.01
    """A frame's faces are this quantile and one minus it of its points along the box's axes (the rest are taken as
    strays; a face's returns thin out with range, so a larger one cuts into the far end of a car seen whole)."""
    size_quantile: tuple[float, float] = (0.9, 0.5)
    """The object's length and width: these quantiles over the frames of the distance between its faces (its
    length shows whole only from the side, so a high one; its width from behind or ahead, most of the time)."""
    heading_steps: int = 90
    """Angles tried over a quarter turn by the rectangle fit."""
    heading_from_travel: bool = False
    """A vehicle moves along its heading (no sideslip): with this on, where an object moves faster than
    ``min_speed`` of the objects' config, its heading is the direction of travel of its fitted track (forward or,
    reversing, backward: whichever is nearer the rectangle fit) rather than the rectangle fits of its frames. Off by
    default: on seed 0 of the default street it held the oncoming car (seen a few frames, often by one face) to 2.8
    deg where the rectangles leave 6.8, but the cars close ahead, whose rectangles are sharp, lost (the one cutting
    in 2.0 -> 4.3 deg) and dynamic PSNR fell 1.9 dB; a fusion weighing each by its uncertainty is the way on."""

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
    whole: Tensor
    """[O, 2] bool: whether the object's length (width) was seen whole, in frames where the sensor was beside it;
    elsewhere ``size`` only bounds it from below (a car only ever seen from behind)."""
    heights: Tensor
    """[O, 2] the bottom of each object's box, ``ground_clearance`` above the road under it, and its top, the
    highest of its returns, relative to its trajectory's height (scene units; NaN where the road was not
    measured)."""


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
    low, high, view = _faces(clouds, ok, heading, sensor, config.end_quantile)
    size = torch.zeros(2, dtype=dt, device=dev)
    if bool(ok.any()):
        for axis, q in enumerate(config.size_quantile):
            size[axis] = torch.quantile((high - low)[ok, axis], q)
    centre = mid.clone()
    centre[:, :2] = _centre_from_faces(low, high, view, size, heading)
    return centre, heading, weight, size


def _faces(
    clouds: list[Tensor], ok: Tensor, heading: Tensor, sensor: Tensor, end_quantile: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per frame, ``(low [S, 2], high [S, 2], view [S, 2])``: the ``end_quantile`` and one minus it of the frame's
    points (clouds [P_s, 3], horizontal coordinates) along the box axes at ``heading`` [S] (0 where not ``ok``), and
    the sensor [S, 3] in those axes."""
    n, dev, dt = len(clouds), sensor.device, sensor.dtype
    cos, sin = torch.cos(heading), torch.sin(heading)
    quant = torch.tensor([end_quantile, 1 - end_quantile], dtype=dt, device=dev)
    low = torch.zeros(n, 2, dtype=dt, device=dev)
    high = torch.zeros(n, 2, dtype=dt, device=dev)
    view = torch.zeros(n, 2, dtype=dt, device=dev)
    for s, c in enumerate(clouds):
        rot = torch.stack([torch.stack([cos[s], sin[s]]), torch.stack([-sin[s], cos[s]])])  # world -> box axes
        view[s] = rot @ sensor[s, :2]
        if ok[s]:
            low[s], high[s] = torch.quantile(c[:, :2] @ rot.T, quant, dim=0)
    return low, high, view


def _centre_from_faces(
    low: Tensor, high: Tensor, view: Tensor, size: Tensor, heading: Tensor, guess: Tensor | None = None
) -> Tensor:
    """[S, 2] horizontal box centres from the extent of each frame's points, ``low`` and ``high`` [S, 2] along the
    box axes, and the sensor's position ``view`` [S, 2] in them (:func:`_faces`); ``size`` [2], ``heading`` [S]
    radians.

    Per axis: where the sensor lies beyond one end of the points, that face is the one it sees (the far face is
    hidden or sparse) and the centre is half ``size`` in from it. Where it lies between the ends (beside the object:
    the side is seen, the ends at a grazing angle or cut off by a camera's view), the points only say that the
    centre is where the box still holds them, between ``high - size / 2`` and ``low + size / 2``: the centre is the
    point of that interval nearest ``guess`` [S, 2] (box axes; the interval's middle without a guess)."""
    half = 0.5 * size
    beyond_high, beyond_low = view > high, view < low
    first, last = high - half, low + half
    between = (
        0.5 * (low + high) if guess is None else guess.clamp(torch.minimum(first, last), torch.maximum(first, last))
    )
    box = torch.where(beyond_high, first, torch.where(beyond_low, last, between))  # [S, 2] in box axes
    cos, sin = torch.cos(heading), torch.sin(heading)
    return torch.stack([cos * box[:, 0] - sin * box[:, 1], sin * box[:, 0] + cos * box[:, 1]], dim=-1)


def _to_box_axes(xy: Tensor, heading: Tensor) -> Tensor:
    """[S, 2] horizontal points ``xy`` [S, 2] in the axes of boxes turned by ``heading`` [S] radians."""
    cos, sin = torch.cos(heading), torch.sin(heading)
    return torch.stack([cos * xy[:, 0] + sin * xy[:, 1], -sin * xy[:, 0] + cos * xy[:, 1]], dim=-1)


def _gate(
    points: Tensor,
    centre: Tensor,
    heading: Tensor,
    lo: Tensor,
    hi: Tensor,
    gate: float,
    clearance: float,
    ring: float,
    free: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(near [P] bool, ground)``: which ``points`` [P, 3] (horizontal coordinates; of them only the ``free``
    [P] ones, those no other object's label claims, where given) lie near an object's box,
    within ``gate`` of the box ``lo``..``hi`` [3] (object axes, relative to ``centre`` [3], turned by ``heading``
    radians) horizontally, more than ``clearance`` above the local ground and at most ``gate`` above the box's top;
    and that ground's height: a low quantile of the points in a ``ring`` wide band around the gated box (four times
    as wide where it holds too few; the box's own bottom less ``clearance`` where that is empty too)."""
    p = points - centre
    cs, sn = torch.cos(heading), torch.sin(heading)
    a = torch.stack([cs * p[:, 0] + sn * p[:, 1], -sn * p[:, 0] + cs * p[:, 1]], dim=-1)
    inside = ((a >= lo[:2] - gate) & (a <= hi[:2] + gate)).all(-1)
    ground = lo[2] - clearance
    for width in (ring, 4 * ring):  # a sparse LiDAR has few returns on the road far out: a wider band there
        band = ((a >= lo[:2] - gate - width) & (a <= hi[:2] + gate + width)).all(-1) & ~inside
        if int(band.sum()) >= 10:
            ground = torch.quantile(p[band, 2], 0.2)
            break
    near = inside & (p[:, 2] > ground + clearance) & (p[:, 2] <= hi[2] + gate)
    return (near if free is None else near & free), ground + centre[2]


def _median_velocity(ts: Tensor, xy: Tensor) -> Tensor:
    """[2] median over consecutive pairs of the velocities of positions ``xy`` [M, 2] at times ``ts`` [M] (zero
    for one time): one frame's box gone wrong does not steer the prediction."""
    if ts.numel() < 2:
        return torch.zeros(2, dtype=xy.dtype, device=xy.device)
    return (torch.diff(xy, dim=0) / torch.diff(ts)[:, None]).median(dim=0).values


@dataclass(frozen=True)
class _Shape:
    """What is known of an object's box when its returns are measured: ``size`` [2] length and width, and its
    bottom and top relative to its centre's height (scene units)."""

    size: Tensor
    bottom: float
    top: float


def _measure(
    cloud: Tensor,
    free: Tensor,
    guess: Tensor,
    heading: Tensor,
    shape: _Shape,
    sensor: Tensor,
    config: RegistrationConfig,
    units_per_metre: float,
    follows: bool,
) -> tuple[Tensor, Tensor, int, Tensor, Tensor, Tensor] | None:
    """The box of an object of known ``shape`` in one frame's points ``cloud`` [P, 3] (horizontal coordinates; the
    road is found on all of them, the object on the ``free`` [P] ones, those no other object's label claims) near a
    ``guess`` of its centre [3] and ``heading`` (radians): ``(centre [3], heading, points used, height of the
    ground under it, extent [2] of the points along each box axis the sensor is beside, NaN along the others:
    along those the points reach both ends, height of its top above the ground)``; None when fewer than
    ``min_points`` points lie near it or, when it ``follows`` the object from a neighbouring frame, the box lands
    farther than ``gate`` from the guess.

    The points near the guessed box (:func:`_gate`) place the centre from its faces (:func:`_centre_from_faces`, the
    guess deciding along an axis the sensor is beside). Following, they also turn the heading to the rectangle they
    hug nearest the guessed one (a frame placed by its labels keeps the heading of the object's own points)."""
    gate, clearance = config.gate * units_per_metre, config.ground_clearance * units_per_metre
    lo = torch.cat([-0.5 * shape.size, shape.size.new_tensor([shape.bottom])])
    hi = torch.cat([0.5 * shape.size, shape.size.new_tensor([shape.top])])
    keep, ground = _gate(cloud, guess, heading, lo, hi, gate, clearance, 3 * units_per_metre, free)
    near = cloud[keep]
    if near.shape[0] < config.min_points:
        return None
    turn = heading
    if follows and near.shape[0] >= 2 * config.min_points:
        axis = _rectangle_heading(near[:, :2] - near[:, :2].median(dim=0).values, config.heading_steps)
        turn = _nearest_axis(axis, heading)
    ok = torch.ones(1, dtype=torch.bool, device=cloud.device)
    low, high, view = _faces([near], ok, turn[None], sensor[None], config.end_quantile)
    prior = _to_box_axes(guess[None, :2], turn[None])
    centre = guess.clone()
    centre[:2] = _centre_from_faces(low, high, view, shape.size, turn[None], prior)[0]
    centre[2] = near[:, 2].median()
    if follows and float((centre[:2] - guess[:2]).norm()) > gate:
        return None
    beside = (view > low) & (view < high)
    roof = torch.quantile(near[:, 2], 1 - config.end_quantile) - ground
    return centre, turn, int(near.shape[0]), ground, torch.where(beside, high - low, math.nan)[0], roof


def _follow(
    clouds: list[tuple[Tensor, Tensor]],
    times: Tensor,
    centre: Tensor,
    heading: Tensor,
    known: Tensor,
    shape: _Shape,
    sensor: Tensor,
    config: RegistrationConfig,
    units_per_metre: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """An object measured on all of its frames' returns, placed first by its labelled ones.

    The labels say which returns are the object's, but only inside the cameras' views: a car passing beside the
    ego is cut by the edge of the view, and once past it is not labelled at all. So each ``known`` frame's box is
    measured again on the frame's returns near it (:func:`_measure`, the labelled box as the guess), and the frames
    around the known ones are followed one by one, forward and then backward: the guess is the last box moved by
    the median velocity of the last few, and a frame that cannot be measured ends the following in that direction.

    Args:
        clouds: T frames' points [P_t, 3] in horizontal coordinates and which of them are free [P_t] (not labelled
            as another object).
        times: [T] normalised frame times.
        centre: [T, 3] box centres where ``known`` (horizontal coordinates; the height is the points' median).
        heading: [T] radians where ``known``.
        known: [T] bool, the frames placed from labels.
        shape: the object's box (:class:`_Shape`).
        sensor: [T, 3] the sensor in horizontal coordinates.
        config: see :class:`RegistrationConfig`.
        units_per_metre: scene units per metre.

    Returns:
        ``(centre [T, 3], heading [T], count [T], ground [T], extent [T, 2], roof [T])``: ``count`` the points
        that placed each frame (0 where none did; there ``centre`` and ``heading`` are unchanged), ``ground``
        the height of the road under the box, ``extent`` that of the points along the box's axes where both ends
        are in view (see :func:`_measure`) and ``roof`` the height of their top above the road (NaN where they are
        not or nothing was measured).
    """
    centre, heading, state = centre.clone(), heading.clone(), known.clone()
    count = torch.zeros(times.numel(), dtype=torch.int64, device=times.device)
    ground = torch.full_like(times, math.nan)
    roof = torch.full_like(times, math.nan)
    extent = torch.full((times.numel(), 2), math.nan, dtype=times.dtype, device=times.device)
    for f in known.nonzero().squeeze(1).tolist():
        found = _measure(*clouds[f], centre[f], heading[f], shape, sensor[f], config, units_per_metre, False)
        if found is not None:
            centre[f], heading[f], count[f], ground[f], extent[f], roof[f] = found
    n = times.numel()
    for step in (1, -1):
        for f in range(n) if step == 1 else range(n - 1, -1, -1):
            prev = f - step
            if state[f] or not 0 <= prev < n or not state[prev]:
                continue
            back = [b for b in (prev - step * i for i in range(8)) if 0 <= b < n and state[b]][::-1]
            vel = _median_velocity(times[back], centre[back, :2])
            guess = centre[prev].clone()
            guess[:2] = centre[prev, :2] + vel * (times[f] - times[prev])
            found = _measure(*clouds[f], guess, heading[prev], shape, sensor[f], config, units_per_metre, True)
            if found is None:
                continue
            centre[f], heading[f], count[f], ground[f], extent[f], roof[f] = found
            state[f] = True
    return centre, heading, count, ground, extent, roof


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
    sensor = _sensor_at(sweeps, times).to(dev).double() @ basis  # [T, 3] horizontal coordinates
    trans, rots, frame = translation.double().clone(), rotation.double().clone(), frames.double().clone()
    size = torch.full((o, 2), math.nan, dtype=dt, device=dev)
    used = torch.zeros(o, times.numel(), dtype=torch.int64, device=dev)
    whole = torch.zeros(o, 2, dtype=torch.bool, device=dev)
    heights = torch.full((o, 2), math.nan, dtype=dt, device=dev)
    quantiles = torch.tensor([extent_quantile, 1 - extent_quantile], dtype=dt, device=dev)
    for j in range(o):
        seen = ((times >= intervals[j, 0] - 1e-6) & (times <= intervals[j, 1] + 1e-6)).nonzero().squeeze(1)
        if seen.numel() < 2:
            continue
        first = (trans[j : j + 1], rots[j : j + 1], frame[j])
        if labels is not None:
            mine = labels == int(groups[j])
            clouds = [points[idx[mine[idx]]] @ basis for idx in per_frame]
            others = [(points[idx] @ basis, (labels[idx] < 0) | mine[idx]) for idx in per_frame]
            fit = _place_labelled(first, clouds, others, seen, times, sensor, basis, min_speed, units_per_metre, config)
        else:
            member_x, member_t = (v.to(dev).double() for v in members[j])
            if member_x.shape[0] < config.min_points:
                continue
            at = torch.full_like(member_t, j, dtype=torch.int64)
            offset = (member_x - bspline_eval(trans, at, member_t))[:, None]
            local = (offset @ so3_exp(bspline_eval(rots, at, member_t))).squeeze(1) @ frame[j]  # object axes
            extent = torch.quantile(local, quantiles, dim=0)  # [2, 3] the members' box about the trajectory
            clouds = [points[idx] @ basis for idx in per_frame]
            fit = _slide(first, clouds, seen, times, sensor, basis, extent, min_speed, units_per_metre, config)
        if fit is None:
            continue
        trans[j], rots[j], frame[j], size[j], used[j], whole[j], heights[j] = fit
    return Placement(
        trans.to(translation.dtype), rots.to(rotation.dtype), frame.to(frames.dtype), size, used, whole, heights
    )


_First = tuple[Tensor, Tensor, Tensor]
"""An object's first trajectory: translation and rotation control points [1, K, 3] and its axes [3, 3]."""
_Fit = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
"""A placed object: translation and rotation control points [K, 3], axes [3, 3], size [2], points used [T],
whether each of the size's axes was seen whole [2], and its box's bottom and top [2] (see :class:`Placement`)."""


def _first_at(first: _First, ts: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """The first trajectory at times ``ts`` [S]: ``(centre [S, 3] in world coordinates, heading [S] radians about
    up, unwrapped)``; ``basis`` [3, 3] from :func:`_basis`."""
    trans, rots, frame = first
    zero = torch.zeros_like(ts, dtype=torch.int64)
    forward = (so3_exp(bspline_eval(rots, zero, ts)) @ frame[:, 0]) @ basis  # [S, 3]
    return bspline_eval(trans, zero, ts), unwrap_angles(torch.atan2(forward[:, 1], forward[:, 0]))


def _fit_boxes(
    first: _First,
    times: Tensor,
    centre: Tensor,
    heading: Tensor,
    count: Tensor,
    basis: Tensor,
    config: RegistrationConfig,
    fit_heading: bool,
    min_speed: float = math.inf,
) -> tuple[Tensor, Tensor, Tensor]:
    """Translation and rotation control points [K, 3] and axes [3, 3] fitted to boxes at every frame (``centre``
    [T, 3] horizontal coordinates, ``heading`` [T], weighted by ``count`` [T] points; the first trajectory's heights,
    and a light pull to it where no frame holds). With ``fit_heading`` False the first trajectory's rotation and axes
    are kept; else, with ``config.heading_from_travel``, placed frames where the fitted track moves faster than
    ``min_speed`` (scene units per normalised time) take its direction of travel as their heading."""
    trans, rots, frame = first
    k, up = trans.shape[1], basis[:, 2]
    centre0, _ = _first_at(first, times, basis)
    weight = (count > 0).to(centre.dtype)
    points_weight = count.to(centre.dtype) / count.max().clamp_min(1)
    hold = centre0 @ basis  # where no frame holds: the first trajectory across the road, the nearest height
    hold[:, 2] = fill_nearest_valid(centre[:, 2], count > 0) if bool((count > 0).any()) else hold[:, 2]
    values = torch.cat([centre, hold])[None]  # horizontal coordinates
    both = torch.cat([times, times])
    pull = torch.full_like(weight, 1e-3)
    # Across the road each placed frame counts once (its box, not its points, is the measurement). Heights come
    # from the road under the box, which a sparse frame's few returns place poorly: they are weighted by points,
    # and, since a road's height changes slowly, held near a straight line (a hundred times the smoothing).
    level = fit_bspline(both, values[..., :2], torch.cat([weight, pull])[None], k, config.ridge)[0]
    height = fit_bspline(both, values[..., 2:], torch.cat([points_weight, pull])[None], k, 100 * config.ridge)[0]
    new_trans = torch.cat([level, height], dim=-1) @ basis.T
    if not fit_heading:
        return new_trans, rots[0], frame
    valid = count > 0
    heading = heading.clone()
    heading[valid] = unwrap_angles(heading[valid])
    heading = fill_nearest_valid(heading, valid)
    travelling = torch.zeros_like(valid)
    if config.heading_from_travel and times.numel() > 1:
        # the direction of travel from a fit to the placed frames alone, smoothed on its third differences: the
        # second ones straighten a turn's ends, and the pull to the first trajectory bends it where the frames end
        loose = fit_bspline(times, centre[None, :, :2], weight[None], k, config.ridge, order=3)
        along = bspline_eval(loose, torch.zeros_like(times, dtype=torch.int64), times)  # [T, 2]
        vel = torch.gradient(along, spacing=(times,), dim=0)[0]
        travelling = valid & (vel.norm(dim=-1) >= min_speed)
        travel = torch.atan2(vel[:, 1], vel[:, 0])
        # forward or backward, whichever is nearer the rectangle's heading (a car reversing), folded near it
        turn = torch.remainder(travel - heading + 0.5 * math.pi, math.pi) - 0.5 * math.pi
        heading = torch.where(travelling, heading + turn, heading)
    ref = heading[valid].mean()
    forward = basis @ torch.stack([torch.cos(ref), torch.sin(ref), torch.zeros_like(ref)])
    new_frame = torch.stack([forward, torch.linalg.cross(up, forward), up], dim=1)
    yaw = (heading - ref)[:, None] * up  # [T, 3] rotation vectors about up
    # a rectangle's heading firms up with its points; a direction of travel is the whole track's
    trust = torch.where(travelling, torch.ones_like(points_weight), points_weight.clamp_min(1e-3))
    new_rots = fit_bspline(times, yaw[None], trust[None], k, config.ridge)[0]
    return new_trans, new_rots, new_frame


def _place_labelled(
    first: _First,
    clouds: list[Tensor],
    others: list[tuple[Tensor, Tensor]],
    seen: Tensor,
    times: Tensor,
    sensor: Tensor,
    basis: Tensor,
    min_speed: float,
    units_per_metre: float,
    config: RegistrationConfig,
) -> _Fit | None:
    """An object placed on its labelled returns (``clouds``: T frames' labelled points [P_t, 3], horizontal
    coordinates) over the frames it was ``seen`` [S] (indices into ``times`` [T]), then followed through the frames
    around them on ``others`` (the frames' points, and which no other group claims; :func:`_follow`). None when fewer
    than two frames hold enough of its points."""
    ts = times[seen]
    centre, heading, weight, size = _boxes([clouds[f] for f in seen.tolist()], sensor[seen], None, ts, min_speed,
                                           config)  # fmt: skip
    ok = weight > 0
    if int(ok.sum()) < 2:
        return None
    known = torch.zeros_like(times, dtype=torch.bool)
    known[seen[ok]] = True
    start_c = torch.zeros(times.numel(), 3, dtype=centre.dtype, device=centre.device)
    start_h = torch.zeros_like(times)
    start_c[seen], start_h[seen] = centre, heading
    labelled = [_compact(clouds[f], config.min_points) for f in seen[ok].tolist()]
    ends = torch.tensor([config.end_quantile, 1 - config.end_quantile], dtype=times.dtype, device=times.device)
    spread = torch.stack([torch.quantile(c[:, 2], ends) - c[:, 2].median() for c in labelled])  # [S, 2]
    whole = torch.zeros(2, dtype=torch.bool, device=times.device)
    for _ in range(2):  # the size again where all of the object's returns show both ends of an axis
        shape = _Shape(size, float(spread[:, 0].min()), float(spread[:, 1].max()))
        found = _follow(others, times, start_c, start_h, known, shape, sensor, config, units_per_metre)
        full_c, full_h, count, ground, extent, roof = found
        for axis in range(2):
            span = extent[:, axis][torch.isfinite(extent[:, axis])]
            if span.numel() >= 2:
                size[axis], whole[axis] = span.median(), True
    # Heights: the first trajectory's (a frame's visible points say little of them) where the object was seen, as a
    # height above the road under it, which carries them to the frames it was followed through.
    first_z = (_first_at(first, times, basis)[0] @ basis)[:, 2]
    measured = torch.isfinite(ground)
    seen_measured = torch.zeros_like(measured)
    seen_measured[seen] = measured[seen]
    full_c[:, 2] = first_z
    heights = torch.full((2,), math.nan, dtype=times.dtype, device=times.device)
    if bool(seen_measured.any()):
        lift = (first_z - ground)[seen_measured].median()
        full_c[:, 2] = fill_nearest_valid(ground, measured) + lift
        top = torch.quantile(roof[measured], config.size_quantile[0])  # the roof shows whole only from nearby
        heights = torch.stack([config.ground_clearance * units_per_metre - lift, top - lift])
    labelled_count = torch.tensor([c.shape[0] for c in labelled], device=count.device)
    count[seen[ok]] = torch.maximum(count[seen[ok]], labelled_count)
    new_trans, new_rots, new_frame = _fit_boxes(first, times, full_c, full_h, count, basis, config, True, min_speed)
    return new_trans, new_rots, new_frame, size, count, whole, heights


def _slide(
    first: _First,
    clouds: list[Tensor],
    seen: Tensor,
    times: Tensor,
    sensor: Tensor,
    basis: Tensor,
    extent: Tensor,
    min_speed: float,
    units_per_metre: float,
    config: RegistrationConfig,
) -> _Fit | None:
    """Without labels: over the frames it was ``seen`` [S], the object's position along its heading corrected on
    the frames' points near its box (``extent`` [2, 3], its members' box in its axes), in ``iterations`` rounds
    that gate the points again around the corrected box. Heading and axes stay the first trajectory's."""
    ts = times[seen]
    trans, rots, frame = first
    _, heading0 = _first_at(first, ts, basis)
    gate, clearance = config.gate * units_per_metre, config.ground_clearance * units_per_metre
    fwd = torch.stack([torch.cos(heading0), torch.sin(heading0)], dim=-1)
    count = torch.zeros(times.numel(), dtype=torch.int64, device=times.device)
    size = torch.full((2,), math.nan, dtype=heading0.dtype, device=heading0.device)
    current = trans
    for _ in range(config.iterations):
        c_now = bspline_eval(current, torch.zeros_like(ts, dtype=torch.int64), ts) @ basis  # [S, 3]
        gated = []
        for s, f in enumerate(seen.tolist()):
            keep, _ = _gate(
                clouds[f], c_now[s], heading0[s], extent[0], extent[1], gate, clearance, 3 * units_per_metre
            )
            gated.append(clouds[f][keep])
        box, _, weight, size = _boxes(gated, sensor[seen], heading0, ts, min_speed, config)
        ok = weight > 0
        along = ((box[:, :2] - c_now[:, :2]) * fwd).sum(-1, keepdim=True)  # beside the heading the first holds
        centre = c_now.clone()
        centre[:, :2] = torch.where(ok[:, None], c_now[:, :2] + along * fwd, c_now[:, :2])
        count.zero_()
        count[seen] = torch.where(ok, torch.tensor([c.shape[0] for c in gated], device=count.device), 0)
        full = torch.zeros(times.numel(), 3, dtype=centre.dtype, device=centre.device)
        full[seen] = centre
        current = _fit_boxes(first, times, full, torch.zeros_like(times), count, basis, config, False)[0][None]
    if int((count > 0).sum()) < 2:
        return None
    nothing = torch.zeros(2, dtype=torch.bool, device=count.device)
    return current[0], rots[0], frame, size, count, nothing, torch.full((2,), math.nan, dtype=size.dtype)


__all__ = ["Placement", "RegistrationConfig", "Sweeps", "register_to_sweeps"]
