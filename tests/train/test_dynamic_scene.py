"""The dynamic scene: the deformation box, the static switch, and time."""

from __future__ import annotations

import dataclasses

import torch

from semdyn.deform.regularizers import GroupLabels
from semdyn.scene.dynamic import DynamicScene, deformation_box
from semdyn.scene.nodes import BACKGROUND_ID, OBJECT_ID0
from semdyn.scene.promotion import regroup
from semdyn.train.presets import cpu_base_preset

TIMES = torch.linspace(0, 1, 11)


def _scene(static: bool = False) -> DynamicScene:
    cfg = cpu_base_preset().model
    if static:
        cfg = dataclasses.replace(cfg, deformation=None)
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.rand(200, 3) * 2 - 1, torch.rand(50, 3) * 2 + 10])  # 50 far outside the box
    colors = torch.randint(0, 255, (250, 3), dtype=torch.uint8)
    centres = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    return DynamicScene(cfg, points, colors, torch.tensor([[-1.0, -1, -1], [12, 12, 12]]), "cpu", g, centres)


def test_deformation_box_is_the_camera_box_grown_by_the_margin() -> None:
    box = deformation_box(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.5, 0.0]]), (2.0, 2.0, 0.5))
    torch.testing.assert_close(box, torch.tensor([[-3.0, -2.0, -0.5], [3.0, 2.5, 0.5]]))


def test_gaussians_outside_the_box_do_not_move_and_inside_ones_can() -> None:
    scene = _scene()
    with torch.no_grad():
        for p in scene.deform.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    g = scene.gaussians_at(0.7)
    canonical = scene.params["means"]
    moved = (g["means"] - canonical).norm(dim=-1) > 1e-6
    inside = ((canonical >= scene.deform.aabb[0]) & (canonical <= scene.deform.aabb[1])).all(-1)
    assert not moved[~inside].any() and moved[inside].float().mean() > 0.9
    assert not torch.equal(scene.gaussians_at(0.1)["means"], g["means"])


def test_static_model_ignores_time() -> None:
    scene = _scene(static=True)
    assert scene.deform is None
    assert torch.equal(scene.gaussians_at(0.1)["means"], scene.gaussians_at(0.9)["means"])


def test_temporal_visibility_peaks_at_each_points_capture_time() -> None:
    cfg = cpu_base_preset().model
    points = torch.rand(300, 3) * 2 - 1
    times = torch.rand(300)
    scene = DynamicScene(cfg, points, None, torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), "cpu",
                         torch.Generator().manual_seed(0), None, times)  # fmt: skip
    torch.testing.assert_close(scene.params["anchor_time"], times)  # no subsampling at 300 points
    base = torch.sigmoid(scene.params["opacities"])
    i = 7
    at_anchor = scene.opacities_at(float(times[i]))[i]
    torch.testing.assert_close(at_anchor, base[i])
    far = float(1.0 if times[i] < 0.5 else 0.0)
    assert scene.opacities_at(far)[i] < 0.5 * base[i]
    assert "anchor_time" in scene.extra_lrs() and "log_lifespan" in scene.extra_lrs()


def test_subsampled_points_keep_their_own_capture_times() -> None:
    cfg = dataclasses.replace(
        cpu_base_preset().model, init=dataclasses.replace(cpu_base_preset().model.init, max_points=100)
    )
    points = torch.rand(1000, 3) * 2 - 1
    times = points[:, 0] * 0.5 + 0.5  # a function of the point, so the match can be checked
    scene = DynamicScene(cfg, points, None, torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), "cpu",
                         torch.Generator().manual_seed(0), None, times)  # fmt: skip
    assert scene.num_gaussians == 100
    torch.testing.assert_close(scene.params["anchor_time"], scene.params["means"][:, 0].detach() * 0.5 + 0.5)


def _grouped_scene() -> tuple[DynamicScene, GroupLabels]:
    scene = _scene()
    with torch.no_grad():
        for p in scene.deform.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # a field that moves everything, non-rigidly
    n = scene.num_gaussians
    ids = torch.full((n,), -1, dtype=torch.int64)
    ids[:100], ids[100:200] = 0, 1  # group 0: a pedestrian (dynamic, not rigid); group 1: road (static)
    labels = GroupLabels(ids, torch.ones(n), torch.tensor([False, True]), torch.tensor([False, False]))
    return scene, labels


def test_groups_switch_on_named_regularizers_and_static_groups_skip_the_field() -> None:
    scene, labels = _grouped_scene()
    cams = torch.eye(4)[None], torch.tensor([[[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]])
    out = scene(cams[0], cams[1], 64, 48, 0.4, step=10)
    assert not any(k.startswith("reg_") for k in scene.loss_dict(out, out["rgb"].detach(), step=10))
    scene.set_groups(labels, regroup(scene, labels, TIMES))
    assert bool((scene.node_ids[100:200] == BACKGROUND_ID).all())  # the road joins the background
    out = scene(cams[0], cams[1], 64, 48, 0.4, step=10)
    assert torch.count_nonzero(out["gaussians"]["dx"][100:200]) == 0  # static group: exact identity
    terms = scene.loss_dict(out, out["rgb"].detach(), step=10)
    assert {"reg_rigid_position", "reg_rigid_rotation", "reg_scale"} <= set(terms)
    assert terms["reg_rigid_position"] > 0 and all(torch.isfinite(v) for v in terms.values())
    assert "reg_rigid_position" not in scene.loss_dict(out, out["rgb"].detach())  # no step: no regularizers
    sum(terms[k] for k in terms if k.startswith("reg_")).backward()
    grads = [p.grad for p in scene.deform.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_labels_of_another_size_are_ignored_until_set_again() -> None:
    scene, labels = _grouped_scene()
    scene.set_groups(GroupLabels(labels.ids[:-1], labels.conf[:-1], labels.is_static, labels.is_rigid))
    out = scene(torch.eye(4)[None], torch.tensor([[[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]]), 64, 48, 0.4, step=10)
    assert not any(k.startswith("reg_") for k in scene.loss_dict(out, out["rgb"].detach(), step=10))


def test_velocity_moves_gaussians_linearly_about_their_anchor_inside_the_field() -> None:
    scene = _scene()  # the field's heads start at zero: all motion below is the velocity's
    assert scene.extra_lrs()["velocity"] == cpu_base_preset().model.velocity.lr
    with torch.no_grad():
        scene.params["velocity"].copy_(torch.randn(scene.num_gaussians, 3))
        scene.params["anchor_time"].fill_(0.25)
    canonical, v = scene.params["means"], scene.params["velocity"]
    inside = ((canonical >= scene.deform.aabb[0]) & (canonical <= scene.deform.aabb[1])).all(-1)
    for t in (0.25, 0.75, 1.0):
        moved = scene.gaussians_at(t)["means"] - canonical
        torch.testing.assert_close(moved[inside], v[inside] * (t - 0.25))
        assert torch.count_nonzero(moved[~inside]) == 0
    labels = _grouped_scene()[1]
    scene.set_groups(labels, regroup(scene, labels, TIMES))  # the static group skips the field, velocity included
    assert torch.count_nonzero(scene.gaussians_at(0.9)["dx"][100:200]) == 0
    assert "velocity" not in _scene(static=True).params


def test_a_moving_car_becomes_an_object_whose_members_skip_the_field_and_velocity() -> None:
    torch.manual_seed(0)
    scene, labels = _scene(), _grouped_scene()[1]  # a field that starts at zero: the centres are where they are
    labels = GroupLabels(labels.ids, labels.conf, labels.is_static, torch.tensor([True, False]))  # group 0: a car
    anchors = torch.linspace(0, 1, 100)
    with torch.no_grad():  # the car's points were captured where it was: 0.8 units along x over the sequence
        scene.params["anchor_time"][:100] = anchors
        scene.params["means"][:100] = torch.stack([0.8 * anchors - 0.4, 0 * anchors, 0 * anchors], 1)
        scene.params["means"][:100] += (torch.rand(100, 3) - 0.5) * 0.05
    at_anchor = scene.at_reference(TIMES)[1][:100]
    scene.set_groups(labels, regroup(scene, labels, TIMES))
    with torch.no_grad():  # velocities no longer move the object's members
        scene.params["velocity"].copy_(torch.randn(scene.num_gaussians, 3))
    assert scene.objects is not None and scene.objects.num_objects == 1
    members = scene.node_ids[:100] == OBJECT_ID0
    assert members.float().mean() > 0.9
    nearest = TIMES[(anchors[:, None] - TIMES[None]).abs().argmin(1)]
    for t in (0.0, 0.5, 0.9):
        moved = scene.gaussians_at(t)["means"][:100] - at_anchor
        expected = torch.stack([0.8 * (t - nearest), 0 * anchors, 0 * anchors], 1)
        torch.testing.assert_close(moved[members], expected[members], atol=0.03, rtol=0)
    assert torch.count_nonzero(scene.gaussians_at(0.3)["dx"][100:200]) == 0  # the road still skips everything
    regroup(scene, None, TIMES)  # no labels: the objects dissolve, their Gaussians back where they were
    assert scene.objects.num_objects == 0
    torch.testing.assert_close(scene.params["means"][:100][members], at_anchor[members], atol=1e-5, rtol=0)
