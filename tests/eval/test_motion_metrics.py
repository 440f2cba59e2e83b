"""Motion metrics on hand-built tracks with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semdyn.data.object_track import ObjectTrack, tracks_from_objects
from semdyn.errors import DataFormatError, InputError
from semdyn.eval.motion import (
    assign_to_objects,
    points_in_box,
    rigidity_error,
    static_drift,
    static_structure_mask,
    trajectory_error,
)


def _pose(x: float, y: float, z: float = 0.0, yaw: float = 0.0) -> list[list[float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return [[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]]


def _objects() -> list[dict]:
    """A car driving +x at 2 m/s and turning 90 deg by t = 1 s, a pedestrian, and a parked car; poses at 0, 0.5, 1."""
    times = [0.0, 0.5, 1.0]
    car = [_pose(2.0 * t, 0.0, 0.0, (math.pi / 2) * t) for t in times]
    walker = [_pose(10.0, 5.0 + t, 0.0) for t in times]
    parked = [_pose(-10.0, 0.0) for _ in times]
    return [
        {"id": 1, "class": "car", "dynamic": True, "size": [4.0, 2.0, 1.5], "poses": _poses(times, car)},
        {"id": 2, "class": "pedestrian", "dynamic": True, "size": [0.6, 0.6, 1.8], "poses": _poses(times, walker)},
        {"id": 3, "class": "car", "dynamic": False, "size": [4.0, 2.0, 1.5], "poses": _poses(times, parked)},
    ]


def _poses(times: list[float], mats: list) -> list[dict]:
    return [{"time": t, "object_to_world": m} for t, m in zip(times, mats, strict=True)]


@pytest.fixture
def scene() -> tuple[list[ObjectTrack], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tracks, canonical means [N, 3] (world at t = 0), times [T] and the exactly rigid deformed means [T, N, 3]."""
    tracks = tracks_from_objects(_objects())
    g = torch.Generator().manual_seed(0)
    in_car = (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor(
        [3.8, 1.8, 1.4], dtype=torch.float64
    )
    in_walker = (torch.rand(20, 3, generator=g, dtype=torch.float64) - 0.5) * 0.5 + torch.tensor([10.0, 5.0, 0.0])
    in_parked = (torch.rand(10, 3, generator=g, dtype=torch.float64) - 0.5) + torch.tensor([-10.0, 0.0, 0.0])
    road = torch.rand(30, 3, generator=g, dtype=torch.float64) * torch.tensor([20.0, 20.0, 0.0]) + torch.tensor(
        [0.0, -30.0, -1.0]
    )
    canonical = torch.cat([in_car, in_walker, in_parked, road])
    times = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    deformed = canonical[None].repeat(len(times), 1, 1)
    for k, t in enumerate(times.tolist()):
        yaw = (math.pi / 2) * t
        rot = torch.tensor(_pose(0, 0, 0, yaw), dtype=torch.float64)[:3, :3]
        deformed[k, :50] = in_car @ rot.T + torch.tensor([2.0 * t, 0.0, 0.0], dtype=torch.float64)
        deformed[k, 50:70] = in_walker + torch.tensor([0.0, t, 0.0], dtype=torch.float64)
    return tracks, canonical, times, deformed


def test_tracks_from_objects_parses_and_validates() -> None:
    tracks = tracks_from_objects(_objects())
    assert [t.id for t in tracks] == [1, 2, 3]
    assert tracks[0].label == "car" and tracks[0].dynamic and not tracks[2].dynamic
    assert tracks[0].times.tolist() == [0.0, 0.5, 1.0] and tracks[0].object_to_world.shape == (3, 4, 4)
    bad = _objects()
    bad[1]["size"] = [1.0, 2.0]
    with pytest.raises(InputError, match=r"objects\[1\]\.size"):
        tracks_from_objects(bad)
    bad = _objects()
    del bad[0]["poses"][1]["time"]
    with pytest.raises(DataFormatError, match=r"objects\[0\]\.poses\[1\]"):
        tracks_from_objects(bad, source="seq/transforms.json")


def test_pose_at_selects_and_interpolates() -> None:
    car = tracks_from_objects(_objects())[0]
    exact = car.pose_at([0.5])
    assert torch.equal(exact[0], car.object_to_world[1])
    mid = car.pose_at(0.25)[0]  # halfway between yaw 0 and 45 deg, x between 0 and 1
    expected = torch.tensor(_pose(0.5, 0.0, 0.0, math.pi / 8), dtype=torch.float64)
    assert torch.allclose(mid, expected, atol=1e-12)
    with pytest.raises(InputError, match="times"):
        car.pose_at([1.5])


def test_points_in_box_rotated_and_boundary() -> None:
    pose = torch.tensor(_pose(1.0, 2.0, 0.0, math.pi / 2), dtype=torch.float64)  # x axis of the box along world +y
    size = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    pts = torch.tensor(
        [
            [1.0, 2.0, 0.0],  # centre
            [1.0, 3.9, 0.0],  # 1.9 m along the box's length
            [2.5, 2.0, 0.0],  # 1.5 m across: outside (half width 1)
            [1.0, 4.0, 0.5],  # on the corner edge: inside
            [1.0, 2.0, 0.6],  # above
        ],
        dtype=torch.float64,
    )
    assert points_in_box(pts, pose, size).tolist() == [True, True, False, True, False]
    assert points_in_box(pts.numpy(), pose.numpy(), size.numpy(), margin=0.6).tolist() == [True] * 5
    with pytest.raises(InputError, match=r"points must be a tensor of shape \[N, 3\]"):
        points_in_box(pts[:, :2], pose, size)
    with pytest.raises(InputError, match="object_to_world"):
        points_in_box(pts, pose[:3], size)


def test_assign_and_static_mask(scene) -> None:
    tracks, canonical, _, _ = scene
    ids = assign_to_objects(canonical, tracks, 0.0)
    assert (ids[:50] == 1).all() and (ids[50:70] == 2).all() and (ids[70:] == -1).all()
    ids_all = assign_to_objects(canonical, tracks, 0.0, dynamic_only=False)
    assert (ids_all[70:80] == 3).all() and (ids_all[80:] == -1).all()
    static = static_structure_mask(canonical, tracks, 0.0)
    assert static.tolist() == [False] * 70 + [True] * 40


def test_rigid_motion_gives_zero_errors(scene) -> None:
    tracks, canonical, times, deformed = scene
    result = trajectory_error(canonical, deformed, times, tracks)
    assert result.value < 1e-9 and result.count == 70
    assert result.per_object_count == {1: 50, 2: 20} and result.reason == ""
    rigid = rigidity_error(deformed, assign_to_objects(canonical, tracks, 0.0))
    assert rigid.value < 1e-9 and rigid.count == 50 * 49 // 2 + 20 * 19 // 2
    assert static_drift(canonical, deformed, static_structure_mask(canonical, tracks, 0.0)) < 1e-12


def test_yaw_is_carried_not_just_translation(scene) -> None:
    """Moving the car's Gaussians by translation only leaves an error from the missing 90 deg turn."""
    tracks, canonical, times, deformed = scene
    translated = deformed.clone()
    translated[:, :50] = canonical[None, :50] + torch.stack([2.0 * times, 0 * times, 0 * times], -1)[:, None]
    result = trajectory_error(canonical, translated, times, tracks)
    assert result.per_object[2] < 1e-9 and result.per_object[1] > 0.1
    # a point 1 m ahead of the car centre ends at (2, 1) at t = 1 instead of (3, 0)
    pt = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    wrong = (pt + torch.tensor([2.0, 0.0, 0.0]))[None].to(torch.float64)
    one = trajectory_error(pt, wrong, [1.0], tracks, canonical_time=0.0)
    assert abs(one.value - math.sqrt(2.0)) < 1e-9


def test_constant_offset_gives_half_metre(scene) -> None:
    tracks, canonical, times, deformed = scene
    offset = deformed.clone()
    offset[:, :70] += torch.tensor([0.3, 0.0, 0.4], dtype=torch.float64)  # |offset| = 0.5 m
    offset[:, 70:] += 10.0  # outside every moving box: ignored
    result = trajectory_error(canonical, offset.float(), times.numpy(), tracks)
    assert abs(result.value - 0.5) < 1e-6
    assert abs(result.per_object[1] - 0.5) < 1e-6 and abs(result.per_object[2] - 0.5) < 1e-6
    # rigid translation does not change pairwise distances
    assert rigidity_error(offset, assign_to_objects(canonical, tracks, 0.0)).value < 1e-9


def test_canonical_time_other_than_first(scene) -> None:
    tracks, canonical, times, deformed = scene
    canonical_mid = deformed[2]  # the world at t = 0.5 as canonical space
    result = trajectory_error(canonical_mid, deformed, times, tracks, canonical_time=0.5)
    assert result.value < 1e-9 and result.count == 70


def test_no_gaussian_in_any_box_is_nan() -> None:
    tracks = tracks_from_objects(_objects())
    far = torch.full((5, 3), 100.0)
    result = trajectory_error(far, far[None].repeat(2, 1, 1), [0.0, 1.0], tracks)
    assert math.isnan(result.value) and result.count == 0 and "no Gaussian" in result.reason


def test_stretch_gives_known_rigidity_error() -> None:
    base = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    deformed = torch.stack([base, base * torch.tensor([1.5, 1.0, 1.0]), base * torch.tensor([2.0, 1.0, 1.0])])
    ids = torch.tensor([0, 0, -1])  # the third point belongs to no object: ignored
    result = rigidity_error(deformed, ids)
    assert abs(result.value - 0.75) < 1e-12  # mean of 0.5 (t1) and 1.0 (t2); the reference time is left out
    assert result.count == 1 and result.per_object == {0: pytest.approx(0.75)}
    assert abs(rigidity_error(deformed, ids, reference_index=2).value - 0.75) < 1e-12  # |1.5-2|, |1-2|


def test_rigidity_sampling_is_seeded_and_capped() -> None:
    g = torch.Generator().manual_seed(1)
    deformed = torch.randn(3, 200, 3, generator=g)
    ids = torch.zeros(200, dtype=torch.int64)
    a = rigidity_error(deformed, ids, max_pairs=500, seed=7)
    b = rigidity_error(deformed, ids.numpy(), max_pairs=500, seed=7)
    assert a.value == b.value and a.count == 500
    exact = rigidity_error(deformed, ids, max_pairs=10**6)
    assert exact.count == 200 * 199 // 2 and abs(a.value - exact.value) < 0.15 * exact.value
    single = rigidity_error(deformed[:1], ids)
    assert math.isnan(single.value) and "two times" in single.reason
    none = rigidity_error(deformed, torch.full((200,), -1))
    assert math.isnan(none.value) and none.count == 0


def test_static_drift_of_known_jitter() -> None:
    canonical = torch.zeros(4, 3, dtype=torch.float64)
    canonical[:, 0] = torch.arange(4.0)
    deformed = canonical[None].repeat(3, 1, 1)
    deformed[1, :, 2] += 0.2  # every static Gaussian 0.2 m up at t1
    deformed[2, :, 1] -= 0.1  # 0.1 m sideways at t2
    deformed[:, 3] += 5.0  # a moving Gaussian, not static
    mask = torch.tensor([True, True, True, False])
    assert abs(static_drift(canonical, deformed, mask) - 0.1) < 1e-12  # (0 + 0.2 + 0.1) / 3
    shifted = deformed + 0.5  # a constant offset: counted against the canonical centre, not against the first time
    expected = (math.sqrt(0.75) + math.sqrt(0.25 + 0.25 + 0.49) + math.sqrt(0.25 + 0.16 + 0.25)) / 3
    assert abs(static_drift(canonical, shifted, mask) - expected) < 1e-9
    assert abs(static_drift(canonical, shifted, mask, reference="first") - 0.1) < 1e-12
    assert math.isnan(static_drift(canonical, deformed, torch.zeros(4, dtype=torch.bool)))
    with pytest.raises(InputError, match="static_mask"):
        static_drift(canonical, deformed, np.ones(3, dtype=bool))


@pytest.mark.parametrize(
    "canonical,deformed,times",
    [
        (torch.zeros(5, 2), torch.zeros(2, 5, 3), [0.0, 1.0]),
        (torch.zeros(5, 3), torch.zeros(2, 4, 3), [0.0, 1.0]),
        (torch.zeros(5, 3), torch.zeros(5, 3), [0.0]),
        (torch.zeros(5, 3), torch.zeros(2, 5, 3), [0.0, 0.5, 1.0]),
    ],
)
def test_trajectory_error_bad_shapes(canonical, deformed, times) -> None:
    with pytest.raises(InputError):
        trajectory_error(canonical, deformed, times, tracks_from_objects(_objects()))


def test_quaternion_round_trip_including_half_turns() -> None:
    from semdyn.conventions import quat_to_rotmat, rotmat_to_quat

    g = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(200, 4, generator=g, dtype=torch.float64), dim=-1)
    half_turns = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0.6, 0.8, 0]], dtype=torch.float64)
    rot = quat_to_rotmat(torch.cat([q, half_turns]))
    assert torch.allclose(quat_to_rotmat(rotmat_to_quat(rot)), rot, atol=1e-12)
