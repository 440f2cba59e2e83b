"""Rigid objects placed on their LiDAR returns (semdyn.scene.registration) and the returns' labels
(semdyn.semantics.sweep_labels)."""

from __future__ import annotations

import dataclasses
import math

import torch

from semdyn.scene.registration import RegistrationConfig, Sweeps, register_to_sweeps
from semdyn.scene.trajectory import bspline_eval, fit_bspline, so3_exp
from semdyn.semantics.sweep_labels import label_points

LENGTH, WIDTH, HEIGHT = 4.5, 1.8, 1.5
T, K = 30, 10


def _truth(t: torch.Tensor, turn: float, start: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre [T, 3] and heading [T] of a car driving 8 m/s from heading ``start``, turning ``turn`` radians over the
    sequence."""
    heading = start + turn * t
    speed = 24.0  # metres per normalised time (3 s)
    dense = torch.linspace(0, 1, 2001, dtype=torch.float64)
    h = start + turn * dense
    step = speed / 2000
    path = torch.stack([torch.cos(h), torch.sin(h)], -1).cumsum(0) * step
    idx = (t * 2000).round().long()
    centre = torch.zeros(t.shape[0], 3, dtype=torch.float64)
    origin = [5.0, 4.0] if start == 0.0 else [40.0, 4.0]
    centre[:, :2] = path[idx] + torch.tensor(origin, dtype=torch.float64)
    centre[:, 2] = HEIGHT / 2
    return centre, heading


def _visible_surface(centre: torch.Tensor, heading: float, sensor: torch.Tensor, n: int, g: torch.Generator):
    """[M, 3] points on the faces of the car's box that face ``sensor`` (world)."""
    c, s = math.cos(heading), math.sin(heading)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    half = torch.tensor([LENGTH, WIDTH, HEIGHT], dtype=torch.float64) / 2
    eye = rot.T @ (sensor - centre)
    out = []
    for axis in range(2):  # the vertical faces only, as a LiDAR on a car sees them
        for sign in (-1.0, 1.0):
            if sign * float(eye[axis]) <= float(half[axis]):
                continue
            p = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * half
            p[:, axis] = sign * half[axis]
            out.append(p)
    local = torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.float64)
    return local @ rot.T + centre


def _scene(turn: float, start: float = 0.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, T, dtype=torch.float64)
    centre, heading = _truth(t, turn, start)
    sensor = torch.zeros(T, 3, dtype=torch.float64)
    sensor[:, 0] = 21.0 * t  # the ego: 7 m/s straight, in the next lane
    sensor[:, 2] = 1.7
    pts, times, groups = [], [], []
    for i in range(T):
        car = _visible_surface(centre[i], float(heading[i]), sensor[i], 40, g)
        ground = torch.rand(200, 3, generator=g, dtype=torch.float64) * torch.tensor([60.0, 30.0, 0.0]) - torch.tensor(
            [10.0, 10.0, 0.0]
        )
        stray = centre[i] + torch.tensor([12.0, 0.0, 0.0], dtype=torch.float64) + torch.randn(3, 3, generator=g)
        pts += [car, ground, stray]
        times += [torch.full((len(car) + len(ground) + len(stray),), float(t[i]), dtype=torch.float64)]
        groups += [torch.zeros(len(car), dtype=torch.int64), torch.full((200,), -1), torch.zeros(3, dtype=torch.int64)]
    sweeps = Sweeps(torch.cat(pts).float(), torch.cat(times).float(), sensor.float(), t.float(), torch.cat(groups))
    return t, centre, heading, sweeps


def _first_guess(t: torch.Tensor, sweeps: Sweeps, heading: torch.Tensor | None):
    """A first trajectory as the members' centres give it: the centroid of each frame's visible car points (it
    slides along the car), heading ``heading`` (None: the first frame's, held)."""
    assert sweeps.groups is not None
    car = sweeps.groups == 0
    cents = torch.stack([sweeps.points[car & (sweeps.times == float(s))].double().mean(0) for s in t])
    ctrl = fit_bspline(t, cents[None], torch.ones(1, T, dtype=torch.float64), K, 0.3)
    yaw = torch.zeros(T, dtype=torch.float64) if heading is None else heading - heading[0]
    rot = fit_bspline(t, (yaw[:, None] * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))[None],
                      torch.ones(1, T, dtype=torch.float64), K)  # fmt: skip
    frame = torch.eye(3)[None].clone()
    h0 = 0.0 if heading is None else float(heading[0])
    frame[0, :2, :2] = torch.tensor([[math.cos(h0), -math.sin(h0)], [math.sin(h0), math.cos(h0)]])
    members = (cents.float(), t.float())
    return ctrl.float(), rot.float(), frame, members


def _errors(t, centre, heading, translation, rotation, frame) -> tuple[float, float]:
    """Mean distance (metres) between where the placed trajectory and the truth carry the car's corners from the
    middle frame, and the largest heading error (degrees) after the constant offset."""
    ids = torch.zeros(T, dtype=torch.int64)
    c = bspline_eval(translation.double(), ids, t)
    r = so3_exp(bspline_eval(rotation.double(), ids, t))
    fwd = r @ frame[0, :, 0].double()
    yaw = torch.atan2(fwd[:, 1], fwd[:, 0])
    d = torch.remainder(yaw - heading + math.pi, 2 * math.pi) - math.pi
    d = d - d.mean()
    corners = torch.tensor([[sx * LENGTH / 2, sy * WIDTH / 2, 0.0] for sx in (-1, 1) for sy in (-1, 1)],
                           dtype=torch.float64)  # fmt: skip

    def truth_rot(h):
        return torch.tensor([[math.cos(h), -math.sin(h), 0.0], [math.sin(h), math.cos(h), 0.0], [0.0, 0.0, 1.0]],
                            dtype=torch.float64)  # fmt: skip

    m = T // 2
    world0 = corners @ truth_rot(float(heading[m])).T + centre[m]
    local = (world0 - c[m]) @ r[m]  # the corners in the placed object's frame
    err = []
    for i in range(T):
        want = corners @ truth_rot(float(heading[i])).T + centre[i]
        got = local @ r[i].T + c[i]
        err.append((got - want).norm(dim=-1).mean())
    return float(torch.stack(err).mean()), float(torch.rad2deg(d.abs().max()))


def _place(sweeps, t, guess, config=RegistrationConfig()):
    translation, rotation, frame, members = guess
    return register_to_sweeps(
        translation, rotation, frame, torch.tensor([0]), [members], torch.tensor([[0.0, 1.0]]), sweeps, t.float(),
        torch.tensor([0.0, 0.0, 1.0]), 1.0, 0.5 * 3.0, config,
    )  # fmt: skip


def test_labelled_returns_place_a_turning_car_and_its_heading() -> None:
    """A car turning 90 degrees past the ego: the centroid of its visible faces slides and its first heading is
    held; placed on its labelled returns, the corners follow the truth to a few centimetres and the heading to a
    few degrees (and the stray labelled points behind its silhouette do not pull it)."""
    t, centre, heading, sweeps = _scene(turn=math.pi / 2)
    guess = _first_guess(t, sweeps, None)
    before = _errors(t, centre, heading, guess[0], guess[1], guess[2])
    placed = _place(sweeps, t, guess)
    after = _errors(t, centre, heading, placed.translation, placed.rotation, placed.frame)
    assert before[0] > 0.8 and before[1] > 40.0, before
    assert after[0] < 0.25, after
    assert after[1] < 4.0, after
    assert abs(float(placed.size[0, 1]) - WIDTH) < 0.3
    assert int((placed.used[0] > 0).sum()) == T
    # the heading taken from the track's direction of travel follows the turn too, to its ends
    travel = _place(sweeps, t, guess, RegistrationConfig(heading_from_travel=True))
    along = _errors(t, centre, heading, travel.translation, travel.rotation, travel.frame)
    assert along[0] < 0.25 and along[1] < 2.0, along


def test_unlabelled_returns_take_out_the_slide_along_the_heading() -> None:
    """An oncoming car, seen from ahead, beside and behind: without labels the points near its box are taken
    (above the ground) and only the position along the heading is corrected; the slide of the centroid shrinks
    by more than half."""
    t, centre, heading, sweeps = _scene(turn=0.0, start=math.pi)
    guess = _first_guess(t, sweeps, heading)
    before = _errors(t, centre, heading, guess[0], guess[1], guess[2])
    placed = _place(dataclasses.replace(sweeps, groups=None), t, guess)
    after = _errors(t, centre, heading, placed.translation, placed.rotation, placed.frame)
    assert before[0] > 0.3, before
    assert after[0] < 0.5 * before[0], (before, after)


def test_a_car_without_returns_keeps_its_first_trajectory() -> None:
    t, _, heading, sweeps = _scene(turn=0.0)
    guess = _first_guess(t, sweeps, heading)
    empty = dataclasses.replace(sweeps, groups=torch.full_like(sweeps.groups, -1))
    placed = _place(empty, t, guess)
    assert torch.equal(placed.translation, guess[0]) and torch.equal(placed.rotation, guess[1])
    assert bool(torch.isnan(placed.size).all())


def test_label_points_reads_the_pixel_and_skips_hidden_points() -> None:
    """A point takes the label of the pixel it projects to where it is the nearest point there; one hidden
    behind it in the same pixel, or outside every mask, stays 0."""
    K_ = torch.tensor([[50.0, 0.0, 20.0], [0.0, 50.0, 20.0], [0.0, 0.0, 1.0]])[None]
    view = torch.eye(4)[None]
    ids = torch.zeros(1, 40, 40, dtype=torch.int64)
    ids[0, 15:25, 15:25] = 7
    pts = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 9.0], [0.3, 0.3, 1.0], [0.0, 0.0, 5.0]])
    times = torch.tensor([0.0, 0.0, 0.0, 0.6])
    out = label_points(pts, times, torch.tensor([0.0]), view, K_, ids, [0], window=0.1)
    assert out.tolist() == [7, 0, 0, 0]


def test_a_car_is_followed_on_its_returns_where_its_labels_stop() -> None:
    """An oncoming car labelled only while the cameras see it (the first half of the frames): past that, its box is
    followed frame by frame on the unlabelled returns, so the whole track is placed, not bridged by the spline,
    its length comes from the frames where the ego is beside it, its box from the road to its highest returns."""
    t, centre, heading, sweeps = _scene(turn=0.0, start=math.pi)
    assert sweeps.groups is not None
    seen_by_cameras = sweeps.times <= 0.5
    cut = dataclasses.replace(sweeps, groups=torch.where(seen_by_cameras, sweeps.groups, -1))
    guess = _first_guess(t, sweeps, heading)
    placed = _place(cut, t, guess)
    half = t <= 0.5
    assert int((placed.used[0, ~half] > 0).sum()) >= int((~half).sum()) - 1  # followed past the labels
    ids = torch.zeros(T, dtype=torch.int64)
    c = bspline_eval(placed.translation.double(), ids, t)
    err = (c[:, :2] - centre[:, :2]).norm(dim=-1)
    assert float(err.mean()) < 0.3 and float(err[~half].max()) < 0.6, err
    assert bool(placed.whole[0, 0]) and abs(float(placed.size[0, 0]) - LENGTH) < 0.5, placed.size
    assert abs(float(placed.heights[0, 0]) - (0.2 - HEIGHT / 2)) < 0.15  # the road under it, the clearance above
    assert abs(float(placed.heights[0, 1]) - HEIGHT / 2) < 0.15  # its top, from its highest returns
