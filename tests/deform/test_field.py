"""The shared parts of semdyn.deform: apply_deformation, quaternions, input checks, configs, the factory."""

from __future__ import annotations

import math

import pytest
import torch

from semdyn.conventions import quat_from_axis_angle, quat_identity, quat_multiply, quat_to_rotmat
from semdyn.deform import (
    Deformation,
    DeformConfig,
    HexPlaneConfig,
    HexPlaneField,
    MLPDeformConfig,
    MLPDeformField,
    apply_deformation,
    make_deformation,
)
from semdyn.errors import InputError

AABB = torch.tensor([[-2.0, -2.0, -1.0], [2.0, 2.0, 1.0]])
SMALL = [HexPlaneConfig(feature_dim=4, spatial_resolution=4, multires=(1,), time_resolution=4, net_width=8)]
SMALL.append(MLPDeformConfig(position_frequencies=2, time_frequencies=2, depth=2, width=8, skip_layers=(0,)))


def test_apply_deformation_rotates_by_90_degrees_about_z_and_offsets() -> None:
    means = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0], [math.cos(math.pi / 8), math.sin(math.pi / 8), 0.0, 0.0]])
    log_scales = torch.tensor([[0.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    s = math.sqrt(0.5)
    d = Deformation(
        dx=torch.tensor([[0.5, 0.0, -1.0], [0.0, 0.0, 0.0]]),
        dr=torch.tensor([[s, 0.0, 0.0, s], [2 * s, 0.0, 0.0, 2 * s]]),  # 90 deg about +z (second not unit)
        ds=torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]),
    )
    new_means, new_quats, new_log_scales = apply_deformation(means, quats, log_scales, d)
    torch.testing.assert_close(new_means, torch.tensor([[1.5, 2.0, 2.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(new_log_scales, torch.tensor([[0.1, -0.8, 2.3], [0.5, 0.5, 0.5]]))
    # Identity canonical rotation: the result is the delta itself, R maps x -> y, y -> -x.
    torch.testing.assert_close(new_quats[0], torch.tensor([s, 0.0, 0.0, s]))
    rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(quat_to_rotmat(new_quats[0]), rz)
    # Canonical 45 deg about x, then the delta: R(new) = Rz(90) @ Rx(45) (delta applied last, world frame).
    c = math.sqrt(0.5)
    rx45 = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -c], [0.0, c, c]])
    torch.testing.assert_close(quat_to_rotmat(new_quats[1]), rz @ rx45)
    torch.testing.assert_close(new_quats[1].norm(), torch.tensor(1.0))


def test_quaternion_helpers_agree_with_rotation_matrices() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    ra, rb = quat_to_rotmat(a), quat_to_rotmat(b)
    torch.testing.assert_close(quat_to_rotmat(quat_multiply(a, b)), ra @ rb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ra @ ra.transpose(-1, -2), torch.eye(3).expand(16, 3, 3), atol=1e-5, rtol=1e-5)
    q = quat_from_axis_angle(torch.tensor([0.0, 0.0, 3.0]), math.pi / 2)
    torch.testing.assert_close(quat_to_rotmat(q) @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(quat_multiply(quat_identity(16), a), a)


def test_deformation_scatter_puts_identity_elsewhere() -> None:
    sub = Deformation(dx=torch.ones(2, 3), dr=torch.tensor([[0.0, 1.0, 0.0, 0.0]] * 2), ds=torch.full((2, 3), 2.0))
    full = sub.scatter(torch.tensor([3, 1]), 5)
    assert len(full) == 5
    assert torch.equal(full.dx[[0, 2, 4]], torch.zeros(3, 3))
    assert torch.equal(full.dr[[0, 2, 4]], quat_identity(3))
    assert torch.equal(full.ds[[1, 3]], torch.full((2, 3), 2.0))


@pytest.mark.parametrize("config", SMALL, ids=["hexplane", "mlp"])
def test_bad_inputs_name_the_argument(config: DeformConfig) -> None:
    field = make_deformation(config, AABB)
    means = torch.zeros(5, 3)
    with pytest.raises(InputError, match="means"):
        field(torch.zeros(5, 2), 0.5)
    with pytest.raises(InputError, match="means"):
        field(torch.zeros(5), 0.5)
    with pytest.raises(InputError, match="means"):
        field(torch.zeros(5, 3, dtype=torch.long), 0.5)
    for bad_t in (1.5, -0.1, float("nan"), torch.tensor([0.1, 0.2]), torch.zeros(5), "0.5", True):
        with pytest.raises(InputError, match="t must"):
            field(means, bad_t)
    with pytest.raises(InputError, match="mask"):
        field(means, 0.5, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(InputError, match="mask"):
        field(means, 0.5, mask=torch.ones(5))
    with pytest.raises(InputError, match="aabb"):
        make_deformation(config, torch.zeros(2, 3))
    with pytest.raises(InputError, match="aabb"):
        make_deformation(config, torch.zeros(3, 2))
    # Scalars as floats, ints, 0-d and one-element tensors all work and agree.
    ref = field(means, 1.0).dx
    for t in (1, torch.tensor(1.0), torch.tensor([1.0])):
        assert torch.equal(field(means, t).dx, ref)


def test_apply_deformation_checks_shapes() -> None:
    d = Deformation.identity(4)
    with pytest.raises(InputError, match="quats"):
        apply_deformation(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3), d)
    with pytest.raises(InputError, match="log_scales"):
        apply_deformation(torch.zeros(4, 3), torch.zeros(4, 4), torch.zeros(3, 3), d)
    with pytest.raises(InputError, match="d.dr"):
        bad = Deformation(dx=torch.zeros(2, 3), dr=torch.zeros(2, 3), ds=torch.zeros(2, 3))
        apply_deformation(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), bad)


def test_bad_configs_name_the_option() -> None:
    with pytest.raises(InputError, match="time_resolution"):
        make_deformation(HexPlaneConfig(time_resolution=1), AABB)
    with pytest.raises(InputError, match="multires"):
        make_deformation(HexPlaneConfig(multires=()), AABB)
    with pytest.raises(InputError, match="skip_layers"):
        make_deformation(MLPDeformConfig(depth=4, skip_layers=(3,)), AABB)
    with pytest.raises(InputError, match="config"):
        make_deformation("hexplane", AABB)  # type: ignore[arg-type]


def test_factory_builds_the_configured_field() -> None:
    assert isinstance(make_deformation(SMALL[0], AABB), HexPlaneField)
    assert isinstance(make_deformation(SMALL[1], AABB), MLPDeformField)
    field = make_deformation(SMALL[0], AABB.double())
    assert field.aabb.dtype == torch.float32 and torch.equal(field.aabb, AABB)
    groups = field.param_groups()
    assert len(groups["deform_grid"]) == 2  # one spatial and one space-time stack per resolution
    assert sum(len(g) for g in groups.values()) == len(list(field.parameters()))


def test_configs_work_with_tyro(capsys: pytest.CaptureFixture[str]) -> None:
    tyro = pytest.importorskip("tyro")
    hex_config = tyro.cli(HexPlaneConfig, args=["--feature-dim", "8", "--multires", "1", "2", "4", "--no-deform-scale"])
    assert hex_config == HexPlaneConfig(feature_dim=8, multires=(1, 2, 4), deform_scale=False)
    mlp_config = tyro.cli(MLPDeformConfig, args=["--depth", "4", "--width", "64", "--skip-layers", "2"])
    assert mlp_config == MLPDeformConfig.small()
    chosen = tyro.cli(DeformConfig, args=["mlp-deform-config", "--width", "32"])  # type: ignore[call-overload]
    assert isinstance(chosen, MLPDeformConfig) and chosen.width == 32
    with pytest.raises(SystemExit):
        tyro.cli(HexPlaneConfig, args=["--help"])
    assert "Feature channels D of every plane" in capsys.readouterr().out
