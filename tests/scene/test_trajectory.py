"""The SE(3) splines of the rigid objects: basis, fitting, rotations."""

from __future__ import annotations

import math

import pytest
import torch

from semdyn.conventions import quat_to_rotmat
from semdyn.errors import InputError
from semdyn.scene.nodes.rigid import rotvec_to_quat
from semdyn.scene.trajectory import bspline_eval, bspline_matrix, fit_bspline, so3_angle, so3_exp


def test_basis_is_a_partition_of_unity_and_reproduces_lines() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    basis = bspline_matrix(t, 7)
    assert torch.allclose(basis.sum(1), torch.ones(101, dtype=torch.float64))
    ctrl = torch.linspace(-1, 2, 7, dtype=torch.float64)[None, :, None] * torch.tensor([1.0, -2.0, 0.5]).double()
    line = bspline_eval(ctrl, torch.zeros(101, dtype=torch.long), t)
    # evenly spaced collinear control points give a straight line traversed at constant speed
    second = line[2:] - 2 * line[1:-1] + line[:-2]
    assert float(second.abs().max()) < 1e-9


def test_third_difference_smoothing_keeps_a_steady_turn_turning() -> None:
    """A quarter circle, fitted with a strong ridge: on second differences the ends are straightened (the direction
    of travel there is off by degrees), on third differences a steady turn costs little and the direction holds."""
    t = torch.linspace(0, 1, 30, dtype=torch.float64)
    angle = 0.5 * math.pi * t
    arc = torch.stack([torch.sin(angle), 1 - torch.cos(angle)], dim=-1)[None] * 20.0
    w, ids = torch.ones(1, 30, dtype=torch.float64), torch.zeros(30, dtype=torch.long)

    def worst_heading(order: int) -> float:
        fit = bspline_eval(fit_bspline(t, arc, w, 10, ridge=0.3, order=order), ids, t)
        chord = fit[1:] - fit[:-1]  # a circle's chord points the way of the arc's middle
        mid = 0.5 * (angle[1:] + angle[:-1])
        return float(torch.rad2deg((torch.atan2(chord[:, 1], chord[:, 0]) - mid).abs()).max())

    assert worst_heading(2) > 4.0
    assert worst_heading(3) < 1.0


def test_fit_rejects_an_unknown_smoothing_order() -> None:
    with pytest.raises(InputError, match="order"):
        fit_bspline(torch.linspace(0, 1, 5), torch.zeros(1, 5, 2), torch.ones(1, 5), 6, order=4)


def test_fit_recovers_a_smooth_curve() -> None:
    t = torch.linspace(0, 1, 200, dtype=torch.float64)
    truth = torch.stack([torch.sin(2 * t), t**2, 0.3 * t], dim=-1)[None]
    ctrl = fit_bspline(t, truth, torch.ones(1, 200, dtype=torch.float64), 12, ridge=1e-8)
    got = bspline_eval(ctrl, torch.zeros(200, dtype=torch.long), t)
    assert float((got - truth[0]).abs().max()) < 1e-3


def test_so3_exp_matches_the_quaternion_and_the_angle() -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.randn(50, 3, generator=g, dtype=torch.float64)
    r = r / r.norm(dim=-1, keepdim=True) * torch.rand(50, 1, generator=g, dtype=torch.float64) * 3.0
    rot = so3_exp(r)
    assert torch.allclose(rot, quat_to_rotmat(rotvec_to_quat(r)), atol=1e-10)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-10)
    assert torch.allclose(so3_angle(rot), r.norm(dim=-1), atol=1e-6)
    small = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    so3_exp(small).sum().backward()  # finite gradient at the identity
    assert torch.isfinite(small.grad).all()
    assert abs(float(so3_angle(so3_exp(torch.tensor([[0.0, 0.0, math.pi / 2]]))))) - math.pi / 2 < 1e-6


def test_nearest_index_is_the_dense_argmin_without_the_table() -> None:
    """Against ``(values[:, None] - grid[None]).abs().argmin(1)``, ties and repeated grid entries included."""
    from semdyn.scene.trajectory import nearest_index

    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        t = int(torch.randint(1, 12, (1,), generator=g))
        grid = torch.rand(t, generator=g) if trial % 3 == 0 else torch.randint(0, 6, (t,), generator=g).float() / 5
        midpoints = (grid[:, None] + grid[None]).flatten() / 2  # exact ties between two entries
        values = torch.cat([torch.rand(50, generator=g) * 1.4 - 0.2, grid, midpoints])
        assert torch.equal(nearest_index(values, grid), (values[:, None] - grid[None]).abs().argmin(1))
