"""Object paths estimated from lifted groups: moving cars are tracked, parked ones and static groups stay put."""

from __future__ import annotations

import pytest
import torch

from semdyn.deform.group_motion import GroupMotionConfig, estimate_paths, path_at
from semdyn.deform.regularizers import GroupLabels
from semdyn.errors import InputError


def _street(seed: int = 0, frames: int = 40, per_frame: int = 30):
    """Three groups seen at ``frames`` times: 0 a car driving +x at 0.5 units per unit time (its points captured
    where it was at each time), 1 a parked car (points around a fixed centre), 2 a static road patch; plus -1
    unlabelled noise. Returns (means, anchors, labels, car_start)."""
    g = torch.Generator().manual_seed(seed)
    times = torch.linspace(0, 1, frames)
    shape = lambda: (torch.rand(per_frame, 3, generator=g) - 0.5) * torch.tensor([0.09, 0.04, 0.03])  # noqa: E731
    start = torch.tensor([-0.2, 0.1, 0.0])
    means, anchors, ids = [], [], []
    for t in times:
        for gid, centre in ((0, start + torch.tensor([0.5 * float(t), 0, 0])), (1, torch.tensor([0.3, -0.1, 0.0]))):
            means.append(centre + shape())
            anchors.append(torch.full((per_frame,), float(t)))
            ids.append(torch.full((per_frame,), gid))
    road = torch.rand(200, 3, generator=g) * torch.tensor([1.0, 0.2, 0.0])
    noise = torch.rand(50, 3, generator=g)
    means += [road, noise]
    anchors += [torch.rand(200, generator=g), torch.rand(50, generator=g)]
    ids += [torch.full((200,), 2), torch.full((50,), -1)]
    means, anchors, ids = torch.cat(means), torch.cat(anchors), torch.cat(ids).long()
    labels = GroupLabels(
        ids, torch.ones(len(ids)), torch.tensor([False, False, True]), torch.tensor([True, True, False])
    )
    return means, anchors, labels, start


def test_a_moving_car_is_tracked_and_a_parked_car_and_the_road_are_not():
    means, anchors, labels, start = _street()
    paths = estimate_paths(means, anchors, torch.ones(len(means)), labels, GroupMotionConfig())
    assert paths.moving.tolist() == [True, False, False]
    assert bool(paths.members[labels.ids == 0].all()) and not bool(paths.members[labels.ids != 0].any())
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    truth = start[None] + torch.stack([0.5 * t, 0 * t, 0 * t], dim=1)
    got = path_at(paths, torch.zeros(4, dtype=torch.long), t)
    assert torch.allclose(got, truth, atol=0.02), (got, truth)  # the car is ~0.09 long: within a quarter of it


def test_the_path_carries_the_members_and_others_are_not_members():
    means, anchors, labels, _ = _street()
    paths = estimate_paths(means, anchors, torch.ones(len(means)), labels, GroupMotionConfig())
    car = labels.ids == 0
    group = torch.zeros(int(car.sum()), dtype=torch.long)
    off = path_at(paths, group, torch.full_like(anchors[car], 0.75)) - path_at(paths, group, anchors[car])
    expected_dx = 0.5 * (0.75 - anchors[car])  # where the car went between each point's capture and t
    assert torch.allclose(off[:, 0], expected_dx, atol=0.03)
    assert float(off[:, 1:].abs().max()) < 0.02
    assert not bool(paths.members[~car].any())
    assert float(paths.first[0]) < 0.05 and float(paths.last[0]) > 0.95  # seen over the whole sequence


def test_gaps_are_bridged_and_the_ends_extrapolated_with_the_mean_velocity():
    means, anchors, labels, start = _street()
    keep = (labels.ids != 0) | ((anchors > 0.2) & (anchors < 0.4)) | ((anchors > 0.6) & (anchors < 0.8))
    sub = GroupLabels(labels.ids[keep], labels.conf[keep], labels.is_static, labels.is_rigid)
    paths = estimate_paths(means[keep], anchors[keep], torch.ones(int(keep.sum())), sub, GroupMotionConfig())
    t = torch.tensor([0.0, 0.5, 1.0])  # before, inside the gap, after what was seen
    truth = start[None] + torch.stack([0.5 * t, 0 * t, 0 * t], dim=1)
    assert torch.allclose(path_at(paths, torch.zeros(3, dtype=torch.long), t), truth, atol=0.03)


def test_low_confidence_members_keep_the_field_and_no_groups_means_no_members():
    means, anchors, labels, _ = _street()
    conf = torch.where(torch.arange(len(means)) % 2 == 0, 1.0, 0.2)
    doubt = GroupLabels(labels.ids, conf, labels.is_static, labels.is_rigid)
    paths = estimate_paths(means, anchors, torch.ones(len(means)), doubt, GroupMotionConfig())
    assert not bool(paths.members[conf < 0.5].any()) and bool(paths.members[(conf >= 0.5) & (labels.ids == 0)].all())
    none = GroupLabels(torch.full_like(labels.ids, -1), labels.conf, labels.is_static, labels.is_rigid)
    empty = estimate_paths(means, anchors, torch.ones(len(means)), none, GroupMotionConfig())
    assert not bool(empty.members.any()) and not bool(empty.moving.any())
    assert torch.isfinite(empty.centre).all()


def test_bad_inputs_name_what_is_wrong():
    means, anchors, labels, _ = _street()
    with pytest.raises(InputError, match="anchors"):
        estimate_paths(means, anchors[:-1], torch.ones(len(means)), labels, GroupMotionConfig())
    with pytest.raises(InputError, match="knots"):
        GroupMotionConfig(knots=2)


def test_wrong_labels_neither_drag_the_path_nor_ride_it():
    """Road Gaussians labelled with the car (seen through its mask at some frame: anywhere along its path, at any
    anchor time) are as many as the car's own; the robust fit ignores them and they keep the field."""
    means, anchors, labels, start = _street()
    g = torch.Generator().manual_seed(1)
    car = int((labels.ids == 0).sum())
    road_on_path = torch.rand(car, 1, generator=g) * torch.tensor([[0.5, 0.0, 0.0]]) + start
    road_on_path[:, 1] += (torch.rand(car, generator=g) - 0.5) * 0.1
    road_on_path[:, 2] = -0.02
    means = torch.cat([means, road_on_path])
    anchors = torch.cat([anchors, torch.rand(car, generator=g)])
    ids = torch.cat([labels.ids, torch.zeros(car, dtype=torch.long)])
    wrong = GroupLabels(ids, torch.ones(len(ids)), labels.is_static, labels.is_rigid)
    metre = 0.03  # the car (0.09 units) is 3 m long
    paths = estimate_paths(means, anchors, torch.ones(len(ids)), wrong, GroupMotionConfig(), units_per_metre=metre)
    t = torch.linspace(0, 1, 11)
    truth = start[None] + torch.stack([0.5 * t, 0 * t, 0 * t], dim=1)
    err = (path_at(paths, torch.zeros(11, dtype=torch.long), t) - truth).norm(dim=-1)
    assert float(err.max()) < 1.5 * metre and float(err.mean()) < 0.5 * metre, err / metre
    riders = paths.members[-car:]
    assert float(riders.float().mean()) < 0.5  # most wrong labels stay off the path ...
    assert float(paths.members[: len(labels.ids)][labels.ids == 0].float().mean()) > 0.95  # ... the car rides it
