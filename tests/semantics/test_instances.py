"""Same-prompt objects are split by 3D connectivity; touching ones stay one."""

from __future__ import annotations

import torch

from semdyn.semantics.instances import connected_components


def test_two_cars_with_one_label_are_two_instances() -> None:
    g = torch.Generator().manual_seed(0)
    car_a = torch.rand(200, 3, generator=g)  # a 1 m cube
    car_b = torch.rand(200, 3, generator=g) + torch.tensor([5.0, 0.0, 0.0])
    road = torch.rand(300, 3, generator=g) * torch.tensor([8.0, 3.0, 0.05])
    means = torch.cat([car_a, car_b, road])
    labels = torch.cat([torch.full((400,), 1), torch.full((300,), 7)])
    labels[5] = -1
    inst, inst_label = connected_components(means, labels, voxel=0.5)
    assert inst[5] == -1
    a, b = inst[:200], inst[200:400]
    assert len(torch.unique(a[a >= 0])) == 1 and len(torch.unique(b)) == 1 and a[0] != b[0]
    assert len(torch.unique(inst[400:])) == 1
    assert sorted(inst_label.tolist()) == [1, 1, 7]


def test_min_size_drops_small_components() -> None:
    means = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [9.0, 9, 9]])
    inst, inst_label = connected_components(means, torch.tensor([3, 3, 3]), voxel=0.5, min_size=2)
    assert inst.tolist() == [0, 0, -1] and inst_label.tolist() == [3]
