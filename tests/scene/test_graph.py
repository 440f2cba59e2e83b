"""The scene graph: rigid object nodes move their Gaussians exactly, membership survives densification and
checkpoints, and regroup turns a moving group into an object with the right heading."""

from __future__ import annotations

import math

import torch

from semdyn.conventions import quat_from_axis_angle, quat_multiply, quat_to_rotmat
from semdyn.deform import HexPlaneConfig
from semdyn.deform.regularizers import GroupLabels
from semdyn.scene.build import up_from_cameras
from semdyn.scene.dynamic import DynamicScene, DynamicSceneConfig
from semdyn.scene.gaussians import GaussianInitConfig
from semdyn.scene.nodes import BACKGROUND_ID, DEFORMABLE_ID, OBJECT_ID0
from semdyn.scene.promotion import _claim_inside, regroup


def _scene(n: int = 300, seed: int = 0, **kw) -> DynamicScene:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=g) * torch.tensor([8.0, 8.0, 2.0]) - torch.tensor([4.0, 4.0, 0.0])
    colors = (torch.rand(n, 3, generator=g) * 255).to(torch.uint8)
    cfg = DynamicSceneConfig(
        init=GaussianInitConfig(sh_degree=0, max_points=n),
        deformation=HexPlaneConfig(feature_dim=4, spatial_resolution=8, multires=(1,), time_resolution=4, net_width=8),
        sky=None,
    )
    aabb = torch.tensor([[-5.0, -5.0, -1.0], [5.0, 5.0, 3.0]])
    times = torch.rand(n, generator=g)
    return DynamicScene(cfg, points, colors, aabb, "cpu", g, point_times=times, duration_s=4.0, **kw)


def _camera() -> tuple[torch.Tensor, torch.Tensor]:
    """A camera 20 units above the origin looking straight down (OpenCV world-to-camera), 64x64."""
    viewmat = torch.eye(4)
    viewmat[:3, :3] = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    viewmat[2, 3] = 20.0
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    return viewmat[None], K[None]


def _linear_motion(scene: DynamicScene, p0: torch.Tensor, v: torch.Tensor, omega: float) -> None:
    """One object with c(t) = p0 + v t and R(t) = Rz(omega t): evenly spaced collinear control points."""
    node = scene.objects
    assert node is not None
    node.resize(1)
    k = node.num_knots
    s = (torch.arange(k, dtype=torch.float32) - 1) / (k - 3)  # the curve parameter each control point stands for
    node.translation.data[0] = p0 + s[:, None] * v
    node.rotation.data[0] = s[:, None] * torch.tensor([0.0, 0.0, omega])
    node.interval.copy_(torch.tensor([[0.0, 1.0]]))


def test_a_rigid_node_reproduces_a_known_se3_motion_exactly() -> None:
    scene = _scene()
    n = scene.num_gaussians
    p0, v, omega = torch.tensor([1.0, -0.5, 0.2]), torch.tensor([2.0, 1.0, 0.0]), 0.8
    _linear_motion(scene, p0, v, omega)
    ids = torch.full((n,), DEFORMABLE_ID, dtype=torch.long)
    ids[:100] = OBJECT_ID0
    ids[100:150] = BACKGROUND_ID
    scene.set_groups(None, ids)
    viewmat, K = _camera()
    for t in (0.0, 0.37, 1.0):
        out = scene(viewmat, K, 64, 64, t)
        g = {k: v.detach().clone() for k, v in out["gaussians"].items()}
        # by hand: the object's rows moved by Rz(omega t) and p0 + v t, nothing else changed for them
        p = scene.params
        rot = quat_to_rotmat(quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]), omega * t))
        want = p["means"][:100].detach() @ rot.T + p0 + v * t
        assert torch.allclose(g["means"][:100], want, atol=1e-5)
        q = quat_multiply(quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]), omega * t).expand(100, 4),
                          p["quats"][:100].detach())  # fmt: skip
        assert torch.allclose(g["quats"][:100], q / q.norm(dim=-1, keepdim=True), atol=1e-5)
        assert torch.allclose(g["opacities"][:100], torch.sigmoid(p["opacities"][:100]).detach())  # no lifespans
        # the background is drawn exactly as stored, at full learned opacity
        assert torch.equal(g["means"][100:150], p["means"][100:150].detach())
        assert torch.allclose(g["opacities"][100:150], torch.sigmoid(p["opacities"][100:150]).detach())
        # the render of the scene equals the render of the Gaussians moved by hand
        hand = dict(g)
        hand["means"] = torch.cat([want, g["means"][100:]])
        ref = scene.render_gaussians(hand, viewmat, K, 64, 64)
        assert torch.allclose(out["rgb"], ref["rgb"], atol=1e-6)


def test_object_trajectories_learn_from_the_images() -> None:
    scene = _scene()
    n = scene.num_gaussians
    _linear_motion(scene, torch.zeros(3), torch.tensor([1.0, 0.0, 0.0]), 0.0)
    ids = torch.full((n,), OBJECT_ID0, dtype=torch.long)
    scene.set_groups(None, ids)
    viewmat, K = _camera()
    out = scene(viewmat, K, 64, 64, 0.5)
    out["rgb"].mean().backward()
    assert scene.objects.translation.grad is not None and scene.objects.translation.grad.abs().sum() > 0
    assert scene.objects.rotation.grad is not None and scene.objects.rotation.grad.abs().sum() > 0
    names = set(scene.param_groups())
    assert {"object_translation", "object_rotation", "deform_grid", "deform_mlp"} <= names


def _turning_car(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Members of a car (4 x 2 x 1.5 m box) driving a quarter circle of radius 10 m (a 90 degree left turn) over
    normalised time [0, 1], each seen at its own anchor time: (world centres [n, 3], anchors [n], true yaw fn)."""
    g = torch.Generator().manual_seed(seed)
    local = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 2.0, 1.5])
    anchors = torch.rand(n, generator=g)
    yaw = anchors * math.pi / 2
    centre = torch.stack([10 * torch.sin(yaw), 10 * (1 - torch.cos(yaw)), torch.full_like(yaw, 0.75)], dim=-1)
    c, s = torch.cos(yaw), torch.sin(yaw)
    world = torch.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], -1)
    return world + centre, anchors, yaw


def test_regroup_makes_a_turning_car_an_object_with_its_heading() -> None:
    n_car, n_road = 600, 300
    world, anchors, true_yaw = _turning_car(n_car)
    scene = _scene(n_car + n_road)
    g = torch.Generator().manual_seed(1)
    road = torch.rand(n_road, 3, generator=g) * torch.tensor([12.0, 12.0, 0.0])
    p = scene.params
    p["means"].data = torch.cat([world, road])
    p["anchor_time"].data = torch.cat([anchors, torch.rand(n_road, generator=g)])
    p["opacities"].data.fill_(2.0)
    p["velocity"].data.zero_()
    for t in scene.deform.parameters():  # a field that does nothing: the centres are where they are
        t.data.zero_()
    labels = GroupLabels(
        ids=torch.cat([torch.zeros(n_car, dtype=torch.long), torch.ones(n_road, dtype=torch.long)]),
        conf=torch.ones(n_car + n_road),
        is_static=torch.tensor([False, True]),
        is_rigid=torch.tensor([True, False]),
    )
    times = torch.linspace(0, 1, 41)
    ids = regroup(scene, labels, times)
    assert scene.objects.num_objects == 1
    assert (ids[:n_car] == OBJECT_ID0).float().mean() > 0.95
    assert bool((ids[n_car:] == BACKGROUND_ID).all())
    # the heading of the object follows the turn: compare its forward axis with the car's over the track
    poses = scene.objects.object_to_world(times)[0]
    forward = poses[:, :3, 0]
    yaw = torch.atan2(forward[:, 1], forward[:, 0])
    truth = times * math.pi / 2
    err = torch.rad2deg((yaw - truth + math.pi) % (2 * math.pi) - math.pi).abs()
    assert float(err[4:-4].max()) < 5.0, err  # the first trajectory; the images refine the ends
    # the members, drawn at their anchors, are where they were seen
    at = scene.gaussians_at(0.5)["means"][:n_car][(anchors - 0.5).abs() < 0.01]
    assert at.shape[0] > 0
    want = world[(anchors - 0.5).abs() < 0.01]
    assert float((at - want).norm(dim=-1).max()) < 0.25


def test_densification_inside_a_node_stays_in_that_node() -> None:
    from semdyn.scene.gaussians import make_optimizers
    from semdyn.scene.strategy import NODE_IDS, DensifyConfig, densify_pre_backward, densify_step, make_strategy

    scene = _scene(400)
    _linear_motion(scene, torch.zeros(3), torch.tensor([1.0, 0.0, 0.0]), 0.0)
    n = scene.num_gaussians
    ids = torch.full((n,), DEFORMABLE_ID, dtype=torch.long)
    ids[:150], ids[150:250] = OBJECT_ID0, BACKGROUND_ID
    strategy, state = make_strategy(
        DensifyConfig(refine_start_iter=0, refine_every=1, grow_grad2d=0.0, grow_scale3d=0.05, prune_opa=0.0)
    )
    state[NODE_IDS] = ids.clone()
    opts = make_optimizers(scene.params, extra_lrs=scene.extra_lrs())
    viewmat, K = _camera()
    for step in range(2):
        scene.set_groups(None, state[NODE_IDS])
        out = scene(viewmat, K, 64, 64, 0.5)
        densify_pre_backward(strategy, scene.params, opts, state, step, out["meta"])
        out["rgb"].mean().backward()
        densify_step(strategy, scene.params, opts, state, step, out["meta"], lr=0.0)
    new = state[NODE_IDS]
    assert scene.num_gaussians > n and new.shape == (scene.num_gaussians,)
    scene.set_groups(None, new)
    for k in (BACKGROUND_ID, DEFORMABLE_ID, OBJECT_ID0):
        assert int((new == k).sum()) > int((ids == k).sum())  # every node kept and grew its own
    # every child of the object moves with it (1 unit along x over the sequence), the background's stay
    moved = (scene.gaussians_at(1.0)["means"] - scene.gaussians_at(0.0)["means"]).detach()
    torch.testing.assert_close(moved[new == OBJECT_ID0], torch.tensor([1.0, 0.0, 0.0]).expand(int((new == 2).sum()), 3))
    assert torch.count_nonzero(moved[new == BACKGROUND_ID]) == 0


def test_a_graph_survives_a_checkpoint_round_trip(tmp_path) -> None:
    scene = _scene()
    _linear_motion(scene, torch.tensor([0.5, 0.0, 0.0]), torch.tensor([1.0, 0.3, 0.0]), 0.7)
    n = scene.num_gaussians
    ids = torch.full((n,), DEFORMABLE_ID, dtype=torch.long)
    ids[:90], ids[90:120] = OBJECT_ID0, BACKGROUND_ID
    scene.set_groups(None, ids)
    path = tmp_path / "graph.pt"
    torch.save({"model": scene.state_dict(), "graph": scene.graph_shapes(), "nodes": ids,
                "shapes": {k: v.shape for k, v in scene.params.items()}}, path)  # fmt: skip
    ckpt = torch.load(path, weights_only=False)
    again = _scene(seed=5)  # another initialisation, no objects
    assert again.objects.num_objects == 0
    again.resize_params_to(ckpt["shapes"])
    again.resize_graph_to(ckpt["graph"])
    again.load_state_dict(ckpt["model"])
    again.set_groups(None, ckpt["nodes"])
    for t in (0.0, 0.6, 1.0):
        a, b = scene.gaussians_at(t), again.gaussians_at(t)
        for key in ("means", "quats", "scales", "opacities"):
            torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_track_error_is_zero_for_the_true_track_and_sees_a_heading_bias() -> None:
    from semdyn.data.object_track import ObjectTrack
    from semdyn.eval.tracks import NodeTrack, track_error, track_errors

    times = torch.linspace(0, 4, 41, dtype=torch.float64)
    yaw = torch.sin(times) * 0.3
    gt = torch.zeros(41, 4, 4, dtype=torch.float64)
    gt[:, 0, 0], gt[:, 0, 1], gt[:, 1, 0], gt[:, 1, 1] = yaw.cos(), -yaw.sin(), yaw.sin(), yaw.cos()
    gt[:, 2, 2] = gt[:, 3, 3] = 1
    gt[:, 0, 3], gt[:, 1, 3] = 5 * times, torch.sin(times)
    truth = ObjectTrack(7, "car", True, torch.tensor([4.0, 2.0, 1.5], dtype=torch.float64), times, gt)
    offset = torch.eye(4, dtype=torch.float64)  # the node's frame: 0.5 m behind the box centre, turned 30 degrees
    offset[:3, :3] = quat_to_rotmat(quat_from_axis_angle(torch.tensor([0.0, 0, 1]), 0.5236)).double()
    offset[0, 3] = -0.5
    node = gt @ torch.linalg.inv(offset)
    exact = track_error(NodeTrack(0, 0, "car", 10, times, node, 7), truth)
    assert exact["translation_error"] < 1e-6 and exact["heading_error_max"] < 0.02  # float32 offset rotation
    bias = torch.eye(4, dtype=torch.float64).repeat(41, 1, 1)  # 10 degrees off in the middle of the track
    bias[15:25, :3, :3] = quat_to_rotmat(quat_from_axis_angle(torch.tensor([0.0, 0, 1]), math.radians(10))).double()
    off = track_errors([NodeTrack(0, 0, "car", 10, times, node @ bias, 7)], [truth])[7]
    assert 7.0 < off["heading_error_max"] < 10.5 and off["node"] == 0
    missing = track_errors([], [truth])[7]
    assert missing["node"] == -1 and math.isnan(missing["translation_error"])


def test_the_images_correct_the_heading_of_a_car_turning_90_degrees() -> None:
    """A textured car drives a quarter circle (a 90 degree left turn), seen from above; its object starts with a
    heading off by up to 18 degrees and a translation off by 0.4 m; the photometric loss alone (trajectory
    parameters only) brings the heading error under 5 degrees over the whole track."""
    torch.manual_seed(0)
    truth, model = _scene(500, seed=3), _scene(500, seed=3)
    n = truth.num_gaussians
    g = torch.Generator().manual_seed(4)
    local = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 2.0, 1.5])
    for scene in (truth, model):
        scene.params["means"].data = local.clone()
        scene.params["scales"].data.fill_(-1.6)
        scene.params["opacities"].data.fill_(3.0)
        scene.set_groups(None, torch.full((n,), OBJECT_ID0, dtype=torch.long))
        scene.objects.resize(1)
        scene.objects.interval.copy_(torch.tensor([[0.0, 1.0]]))
    k = truth.objects.num_knots
    t = torch.linspace(0, 1, 200, dtype=torch.float64)
    yaw = t * math.pi / 2
    path = torch.stack([10 * torch.sin(yaw) - 5, 10 * (1 - torch.cos(yaw)) - 5, torch.zeros_like(t)], -1)
    ones = torch.ones(1, 200, dtype=torch.float64)
    from semdyn.scene.trajectory import fit_bspline

    truth.objects.translation.data[0] = fit_bspline(t, path[None], ones, k, ridge=1e-9)[0].float()
    truth.objects.rotation.data[0] = fit_bspline(t, (yaw[:, None] * torch.tensor([0.0, 0, 1]))[None], ones, k,
                                                 ridge=1e-9)[0].float()  # fmt: skip
    wrong = 0.8 * yaw + torch.deg2rad(torch.tensor(4.0)) * torch.sin(9 * t)  # up to 18 degrees behind
    model.objects.translation.data[0] = truth.objects.translation.data[0] + torch.tensor([0.3, -0.25, 0.0])
    model.objects.rotation.data[0] = fit_bspline(t, (wrong[:, None] * torch.tensor([0.0, 0, 1]))[None], ones, k,
                                                 ridge=1e-9)[0].float()  # fmt: skip
    viewmat, K = _camera()
    K = K.clone()
    K[0, :2, :2] *= 0.9

    def heading_error() -> float:
        times = torch.linspace(0, 1, 41)
        a = torch.atan2(*model.objects.object_to_world(times)[0, :, :2, 0].flip(-1).unbind(-1))
        b = torch.atan2(*truth.objects.object_to_world(times)[0, :, :2, 0].flip(-1).unbind(-1))
        return float(torch.rad2deg((a - b + math.pi) % (2 * math.pi) - math.pi).abs().max())

    start = heading_error()
    assert start > 12.0
    groups = model.param_groups()
    opt = torch.optim.Adam(
        [{"params": groups["object_translation"][0], "lr": 0.02}, {"params": groups["object_rotation"][0], "lr": 0.01}]
    )
    for _ in range(150):
        t_s = float(torch.rand(()))
        with torch.no_grad():
            target = truth(viewmat, K, 64, 64, t_s)["rgb"]
        loss = (model(viewmat, K, 64, 64, t_s)["rgb"] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert heading_error() < 5.0, (start, heading_error())


def _rot(axis: str, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_up_is_the_normal_of_the_level_camera_axes_not_the_pitched_image_up() -> None:
    """Cameras pitched 3 degrees down (about their right axis) on a rig driving along x, three yaws: up is the
    world's z to 0.01 degrees, where the mean image-up leans 2 degrees. One camera standing still: its right axis
    alone does not fix up, which falls back to the image-up made orthogonal to it."""
    poses = []
    for i in range(10):
        for yaw in (-1.0, 0.0, 1.0):
            c2w = torch.eye(4)
            # OpenGL-style camera: x right, y up, z back; looking along world +x when yaw = 0, nose down 3 deg
            look = _rot("z", yaw) @ torch.tensor([[0.0, 0, -1], [-1.0, 0, 0], [0, 1.0, 0]])
            c2w[:3, :3] = look @ _rot("x", math.radians(-3.0))
            c2w[:3, 3] = torch.tensor([2.0 * i, 0.0, 1.6])
            poses.append(c2w)
    poses = torch.stack(poses)
    mean_up = torch.nn.functional.normalize(poses[:, :3, 1].mean(0), dim=0)
    assert math.degrees(math.acos(float(mean_up[2]))) > 1.5  # what the image-up alone gives (2.1 deg here)
    up = up_from_cameras(poses)
    assert math.degrees(math.acos(min(1.0, float(up[2])))) < 0.01, up
    still = poses[1:2].repeat(5, 1, 1)
    fallback = up_from_cameras(still)
    assert abs(float(fallback @ still[0, :3, 0])) < 1e-6 and float(fallback @ still[0, :3, 1]) > 0.99


def test_an_object_owns_the_space_of_its_box() -> None:
    """A placed object takes the deformable Gaussians inside its box when they are most visible and the background
    Gaussians its box sweeps through (at the frame they lie deepest inside, which becomes their anchor), but not
    the road under it, nor what lies beside its path."""
    scene = _scene(40)
    node = scene.objects
    assert node is not None
    _linear_motion(scene, torch.tensor([-3.0, 0.0, 0.75]), torch.tensor([6.0, 0.0, 0.0]), 0.0)
    node.box = torch.tensor([[[-2.0, -0.9, -0.55], [2.0, 0.9, 0.75]]])  # 4 x 1.8 m, from 0.2 m above the road
    n = scene.num_gaussians
    ids = torch.full((n,), BACKGROUND_ID, dtype=torch.long)
    world = torch.zeros(n, 3)
    ref = torch.full((n,), 0.5)
    world[0] = torch.tensor([1.0, 0.0, 0.85])  # background in the path, at the box centre when t = 2/3
    world[1] = torch.tensor([1.0, 0.3, 0.05])  # the road in the path
    world[2] = torch.tensor([1.0, 2.0, 1.0])  # beside the path
    world[3] = torch.tensor([-3.5, 0.0, 0.5])  # deformable, in the box at its time 0
    world[4] = torch.tensor([3.0, 0.0, 0.5])  # deformable, far ahead of the box at its time 0
    ids[3:5] = DEFORMABLE_ID
    ref[3:5] = 0.0
    ids[5:] = OBJECT_ID0  # the members (never taken from)
    frames = torch.linspace(0, 1, 13)
    new_ref = _claim_inside(scene, node, ids, world, ref, frames, 0.02)
    assert ids[:5].tolist() == [OBJECT_ID0, BACKGROUND_ID, BACKGROUND_ID, OBJECT_ID0, DEFORMABLE_ID]
    assert abs(float(new_ref[0]) - 4 / 6) < 1e-6 and abs(float(scene.params["anchor_time"][0]) - 4 / 6) < 1e-6
    assert float(new_ref[3]) == 0.0


def test_an_object_placed_on_its_returns_keeps_its_measured_track() -> None:
    """The photometric loss (here any loss of the poses) and the smoothness priors move the trajectory of an object
    it may refine and leave a measured one's control points as they were; the flag survives a checkpoint."""
    from semdyn.scene.nodes.rigid import RigidObjectsConfig, RigidObjectsNode

    node = RigidObjectsNode(RigidObjectsConfig(), 1.0, 1.0, 4.0)
    node.resize(2)
    g = torch.Generator().manual_seed(0)
    node.translation.data = torch.randn(2, node.num_knots, 3, generator=g)
    node.rotation.data = 0.2 * torch.randn(2, node.num_knots, 3, generator=g)
    node.refined = torch.tensor([False, True])
    before = (node.translation.detach().clone(), node.rotation.detach().clone())
    opt = torch.optim.Adam([node.translation, node.rotation], lr=0.05)
    objects, t = torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.7, 0.1, 0.7])
    for _ in range(3):
        opt.zero_grad()
        quat, centre = node.poses(objects, t)
        loss = (centre - 1.0).square().sum() + (quat[:, 1:] - 0.3).square().sum()
        loss = loss + sum(node.regularization(torch.nn.ParameterDict(), torch.zeros(0, dtype=torch.long), 0).values())
        loss.backward()
        opt.step()
    assert torch.equal(node.translation[0], before[0][0]) and torch.equal(node.rotation[0], before[1][0])
    assert float((node.translation[1] - before[0][1]).abs().max()) > 0.05
    assert float((node.rotation[1] - before[1][1]).abs().max()) > 0.05
    again = RigidObjectsNode(RigidObjectsConfig(), 1.0, 1.0, 4.0)
    again.resize(2)
    again.load_state_dict(node.state_dict())
    assert again.refined.tolist() == [False, True]
    old = {k: v for k, v in node.state_dict().items() if k != "refined"}  # a checkpoint from before the flag
    again.load_state_dict(old)
    assert again.refined.tolist() == [True, True]
