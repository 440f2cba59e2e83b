"""The nerfstudio adapter: method configs, parity with the core, viewer time, training and reloading on the CPU."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("nerfstudio")
pytestmark = pytest.mark.nerfstudio

from nerfstudio.cameras.cameras import Cameras  # noqa: E402
from nerfstudio.data.datasets.base_dataset import InputDataset  # noqa: E402
from nerfstudio.engine.trainer import TrainerConfig  # noqa: E402

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig  # noqa: E402
from semdyn.data.scene_data import load_scene  # noqa: E402
from semdyn.method_config import (  # noqa: E402
    semdyn_base_method,
    semdyn_cpu_method,
    semdyn_method,
    semdyn_static_method,
)
from semdyn.nerfstudio.model import (  # noqa: E402
    SemdynModel,
    SemdynModelConfig,
    viewmat_from_camera_to_world,
)
from semdyn.scene.build import build_scene, scene_init_from_data  # noqa: E402
from semdyn.scene.dynamic import DynamicScene  # noqa: E402
from semdyn.scene.nodes import BACKGROUND_ID, DEFORMABLE_ID, OBJECT_ID0  # noqa: E402
from semdyn.semantics.training import SemanticsConfig  # noqa: E402
from semdyn.train import presets  # noqa: E402

TRAIN_STEPS = 6


def with_time(camera: Cameras, t: float | None) -> Cameras:
    """A copy of a one-camera ``Cameras`` at normalised time t (None: no time), as the viewer builds it."""
    camera = copy.deepcopy(camera)
    camera.times = None if t is None else torch.full((*camera.shape, 1), t)
    return camera


def cpu_config(data: Path, output_dir: Path) -> TrainerConfig:
    """semdyn-cpu on ``data``, a few steps, tensorboard instead of the viewer, densification early."""
    config = copy.deepcopy(semdyn_cpu_method.config)
    scene = config.pipeline.model.scene
    densify = dataclasses.replace(scene.densify, refine_start_iter=2, refine_every=2, refine_stop_iter=100)
    config.pipeline.model.scene = dataclasses.replace(scene, densify=densify)
    config.pipeline.datamanager.data = data
    config.output_dir = output_dir
    config.max_num_iterations = TRAIN_STEPS
    config.steps_per_eval_image = config.steps_per_eval_all_images = TRAIN_STEPS - 1
    config.vis = "tensorboard"
    return config


@pytest.fixture(scope="module")
def parsed(tiny_scene: Path) -> dict[str, Any]:
    outputs = SemdynDataParserConfig(data=tiny_scene).setup().get_dataparser_outputs("train")
    return dict(outputs=outputs, dataset=InputDataset(outputs))


def build_model(parsed: dict[str, Any]) -> SemdynModel:
    outputs = parsed["outputs"]
    config = copy.deepcopy(semdyn_cpu_method.config.pipeline.model)
    torch.manual_seed(0)
    return config.setup(scene_box=outputs.scene_box, num_train_data=len(outputs.image_filenames),
                        metadata=outputs.metadata)  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A few steps of semdyn-cpu through nerfstudio's own trainer; returns (config.yml, trainer)."""
    config = cpu_config(tiny_scene, tmp_path_factory.mktemp("ns_outputs"))
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    return config.get_base_dir() / "config.yml", trainer


def test_method_configs() -> None:
    specs = {"semdyn": semdyn_method, "semdyn-base": semdyn_base_method, "semdyn-static": semdyn_static_method,
             "semdyn-cpu": semdyn_cpu_method}  # fmt: skip
    for name, spec in specs.items():
        config = spec.config
        assert config.method_name == name
        assert isinstance(config.pipeline.model, SemdynModelConfig)
        assert {"means", "quats", "scales", "opacities", "sh0", "shN", "deform_grid", "deform_mlp", "sky"} <= set(
            config.optimizers
        )
        assert all(group["optimizer"].eps == 1e-15 for group in config.optimizers.values())
        assert config.optimizers["means"]["scheduler"].max_steps == config.max_num_iterations
    assert semdyn_static_method.config.pipeline.model.scene.deformation is None
    cpu, core = semdyn_cpu_method.config, presets.cpu_preset()
    assert cpu.pipeline.model.scene == core.model and cpu.max_num_iterations == core.max_steps
    assert cpu.pipeline.datamanager.camera_res_scale_factor == 1 / core.downscale == 0.5
    assert cpu.machine.device_type == "cpu"
    assert cpu.optimizers["deform_grid"]["optimizer"].lr == core.model.deform_lr
    assert cpu.optimizers["deform_mlp"]["optimizer"].lr == pytest.approx(core.model.deform_lr / 10)
    assert semdyn_method.config.pipeline.model.semantics is not None  # the full method lifts objects
    assert semdyn_base_method.config.pipeline.model.semantics is None


def test_viewmat_matches_core_loader(parsed: dict[str, Any], tiny_scene: Path) -> None:
    """OpenGL camera-to-world -> OpenCV world-to-camera agrees with the core's own loader."""
    outputs = parsed["outputs"]
    data = load_scene(tiny_scene)
    frames = outputs.metadata["frame_indices"]
    viewmats = viewmat_from_camera_to_world(outputs.cameras.camera_to_worlds)
    torch.testing.assert_close(viewmats, data.viewmats[frames], atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs.cameras.get_intrinsics_matrices(), data.Ks[frames], atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs.cameras.times[:, 0], data.times[frames], atol=1e-6, rtol=0)


def _one_object(scene: DynamicScene) -> None:
    """The same graph in any scene of the tiny street: a third of the Gaussians in one rigid object that drives
    and turns, a third in the background, the rest deformable."""
    n = scene.num_gaussians
    node = scene.objects
    assert node is not None
    node.resize(1)
    k = node.num_knots
    s = (torch.arange(k, dtype=torch.float32) - 1) / (k - 3)
    node.translation.data[0] = s[:, None] * torch.tensor([0.3, 0.05, 0.0])
    node.rotation.data[0] = s[:, None] * torch.tensor([0.0, 0.0, 0.4])
    node.interval.copy_(torch.tensor([[0.2, 0.8]]))
    ids = torch.full((n,), DEFORMABLE_ID, dtype=torch.long)
    ids[: n // 3] = OBJECT_ID0
    ids[n // 3 : 2 * n // 3] = BACKGROUND_ID
    scene.set_groups(None, ids)


def test_model_matches_core(parsed: dict[str, Any], tiny_scene: Path) -> None:
    """The nerfstudio model and the core trainer build the same graph from the same sequence (through one
    build_scene): same parameters, and with the same nodes (an object, the background, the deformable rest) the
    same get_outputs + get_loss_dict as the core's forward + loss_dict."""
    model = build_model(parsed)
    outputs = parsed["outputs"]
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(model.config.seed)
    core = build_scene(model.config.scene, scene_init_from_data(load_scene(tiny_scene)), "cpu", generator)
    for key, value in core.state_dict().items():
        torch.testing.assert_close(model.scene.state_dict()[key], value, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.scene.up, core.up, atol=1e-6, rtol=0)
    assert model.scene.objects.num_knots == core.objects.num_knots
    _one_object(core)
    _one_object(model.scene)

    camera = with_time(outputs.cameras[3:4], 0.37)
    batch = parsed["dataset"].get_data(3, image_type="uint8")  # as semdyn-cpu caches them
    model.train()
    ns_out = model.get_outputs(camera)
    ns_loss = model.get_loss_dict(ns_out, batch)

    viewmats = viewmat_from_camera_to_world(camera.camera_to_worlds)
    w, h = int(camera.width), int(camera.height)
    core_out = core(viewmats, camera.get_intrinsics_matrices(), w, h, 0.37, step=0)
    core_loss = core.loss_dict(core_out, batch["image"][None].float() / 255.0)
    assert ns_out["rgb"].shape == (h, w, 3) and ns_out["depth"].shape == ns_out["accumulation"].shape == (h, w, 1)
    for key in ("rgb", "depth", "accumulation"):
        torch.testing.assert_close(ns_out[key], core_out[key][0], atol=1e-6, rtol=0)
    assert "object_acceleration" in core_loss  # the object node's own terms
    assert ns_loss.keys() == core_loss.keys() and "rgb" in ns_loss
    for key, value in core_loss.items():
        torch.testing.assert_close(ns_loss[key], value, atol=1e-6, rtol=0)
    metrics = model.get_metrics_dict(ns_out, batch)
    assert metrics["gaussian_count"] == core.num_gaussians and torch.isfinite(metrics["psnr"])


def test_time_slider_drives_deformation(parsed: dict[str, Any]) -> None:
    """The viewer's render path at camera.times 0.1 vs 0.9 differs once the field moves; same time, same image."""
    model = build_model(parsed).eval()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for p in model.scene.deform.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    camera = parsed["outputs"].cameras[0:1]
    early = model.get_outputs_for_camera(with_time(camera, 0.1))
    late = model.get_outputs_for_camera(with_time(camera, 0.9))
    again = model.get_outputs_for_camera(with_time(camera, 0.1))
    assert {"rgb", "depth", "accumulation"} <= set(early)
    assert (early["rgb"] - late["rgb"]).abs().max() > 1e-2
    torch.testing.assert_close(early["rgb"], again["rgb"], atol=0, rtol=0)
    no_time = model.get_outputs_for_camera(with_time(camera, None))
    torch.testing.assert_close(no_time["rgb"], model.get_outputs_for_camera(with_time(camera, 0.0))["rgb"])


def test_image_metrics_without_lpips_weights(parsed: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:  # fmt: skip
    """Evaluation works offline: PSNR and SSIM, and no LPIPS when its weights are not on disk."""
    monkeypatch.setenv("SEMDYN_LPIPS_WEIGHTS", str(tmp_path / "absent.pth"))
    model = build_model(parsed).eval()
    batch = parsed["dataset"][0]
    outputs = model.get_outputs_for_camera(parsed["outputs"].cameras[0:1])
    metrics, images = model.get_image_metrics_and_images(outputs, batch)
    assert set(metrics) == {"psnr", "ssim"} and 0 < metrics["ssim"] <= 1
    h, w = batch["image"].shape[:2]
    assert images["img"].shape == (h, 2 * w, 3) and images["depth"].shape == (h, w, 3)


def test_training_through_nerfstudio(trained_run: tuple[Path, Any]) -> None:
    """semdyn-cpu trains a few steps with nerfstudio's trainer on the CPU: finite loss, strategy ran, checkpoint."""
    config_path, trainer = trained_run
    model = trainer.pipeline.model
    assert isinstance(model, SemdynModel) and model.device.type == "cpu"
    assert model.step == TRAIN_STEPS - 1
    seeds = trainer.pipeline.datamanager.train_dataparser_outputs.metadata["points3D_xyz"]
    assert model.num_gaussians > len(seeds)  # the callbacks ran gsplat's strategy: it grew Gaussians at step 4
    _, loss_dict, _ = trainer.pipeline.get_train_loss_dict(TRAIN_STEPS)
    assert all(torch.isfinite(v) for v in loss_dict.values())
    for group, params in model.get_param_groups().items():
        optimizer_params = trainer.optimizers.optimizers[group].param_groups[0]["params"]
        assert [id(p) for p in optimizer_params] == [id(p) for p in params], group
    assert list((config_path.parent / "nerfstudio_models").glob("step-*.ckpt"))


def test_eval_setup_loads_checkpoint(trained_run: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """What ns-viewer / ns-render do: eval_setup(config.yml) on the CPU, then render one camera at two times."""
    from nerfstudio.utils import eval_utils

    config_path, trainer = trained_run
    monkeypatch.setitem(eval_utils.all_methods, "semdyn-cpu", semdyn_cpu_method.config)  # the entry point's job
    _, pipeline, _, step = eval_utils.eval_setup(config_path, test_mode="inference")
    model, trained = pipeline.model, trainer.pipeline.model.eval()
    assert step == TRAIN_STEPS - 1 and model.num_gaussians == trained.num_gaussians
    camera = pipeline.datamanager.train_dataset.cameras[0:1]
    for t in (0.2, 0.8):
        loaded = model.get_outputs_for_camera(with_time(camera, t))
        expected = trained.get_outputs_for_camera(with_time(camera, t))
        assert torch.isfinite(loaded["rgb"]).all()
        torch.testing.assert_close(loaded["rgb"], expected["rgb"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("spec", [semdyn_static_method, semdyn_method], ids=["static", "full"])
def test_every_param_group_has_an_optimizer(parsed: dict[str, Any], spec: Any) -> None:
    """The presets' models build on the tiny scene, and each of their groups has an optimizer in the config."""
    outputs = parsed["outputs"]
    config = copy.deepcopy(spec.config.pipeline.model)
    model = config.setup(scene_box=outputs.scene_box, num_train_data=1, metadata=outputs.metadata)
    groups = model.get_param_groups()
    assert set(groups) <= set(spec.config.optimizers)
    assert ("deform_grid" in groups) == (config.scene.deformation is not None)


def test_semantic_lifting_and_regularizers_through_nerfstudio(tiny_scene: Path, tmp_path: Path) -> None:
    """ns-train with semantics: labels are lifted from the instance masks at the scheduled step, the scene gets
    them (static groups skip the field) and the loss dict gains the named group regularizers."""
    config = cpu_config(tiny_scene, tmp_path)
    config.pipeline.model.semantics = SemanticsConfig(lift_start=3, lift_every=100, topk=4, min_conf=0.0)
    config.set_timestamp()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    model = trainer.pipeline.model
    labels = model.lifter.group_labels(model.strategy_state)
    assert labels is not None and int((labels.ids >= 0).sum()) > 0
    model.scene.set_groups(labels, model.strategy_state.get("node_ids"))
    _, loss_dict, _ = trainer.pipeline.get_train_loss_dict(TRAIN_STEPS)
    assert {"reg_rigid_position", "reg_scale"} <= set(loss_dict) or "reg_static" in loss_dict
    assert all(torch.isfinite(v) for v in loss_dict.values())
    assert bool((model.scene.node_ids_now() == BACKGROUND_ID).any())  # static groups joined the background
    # A checkpoint carries the labels and the group table: a model loaded from it (ns-viewer) has the groups.
    fresh = type(model)(model.config, model.scene_box, model.num_train_data, **model.kwargs)
    fresh.load_state_dict(model.state_dict())
    assert fresh.scene.groups is not None and torch.equal(fresh.scene.groups.ids.cpu(), labels.ids.cpu())
    assert torch.equal(fresh.gaussian_labels()[0].cpu(), model.gaussian_labels()[0].cpu())
    assert torch.equal(fresh.scene.node_ids_now().cpu(), model.scene.node_ids_now().cpu())  # and its graph


def test_viewer_lists_and_draws_the_object_tracks(parsed: dict[str, Any]) -> None:
    """ "Draw object tracks" lists every rigid object with its path over the interval it was seen."""
    model = build_model(parsed).eval()
    assert model.viewer_controls.show_tracks() == []  # no objects before a lift
    _one_object(model.scene)
    paths = model.viewer_controls.show_tracks()
    assert len(paths) == 1 and paths[0].positions.shape == (64, 3)
    step = torch.from_numpy(paths[0].positions[1:] - paths[0].positions[:-1])
    assert float(step.norm(dim=-1).sum()) > 0.1  # it drives: 0.3 units x 0.6 of the sequence, and turns
    assert f"{model.num_gaussians // 3:,} Gaussians" in paths[0].text


def test_lifting_renders_in_the_dataparsers_world(tiny_scene: Path) -> None:
    """With a dataparser option that changes the world (scale_factor), the lifter's cameras are the model's."""
    outputs = SemdynDataParserConfig(data=tiny_scene, scale_factor=0.5).setup().get_dataparser_outputs("train")
    model = build_model(dict(outputs=outputs))
    width = int(outputs.cameras[0].width)
    data = model.semantic_lifter(width).data
    frames = outputs.metadata["frame_indices"]
    viewmats = viewmat_from_camera_to_world(outputs.cameras.camera_to_worlds)
    torch.testing.assert_close(data.viewmats[frames], viewmats, atol=1e-5, rtol=0)
    assert data.normalization is outputs.metadata["scene_normalization"]


def test_divergence_stops_before_a_checkpoint_of_nan(parsed: dict[str, Any]) -> None:
    """A NaN loss, or a parameter made non-finite by the optimiser step, stops training with one sentence, before
    nerfstudio would save the broken state."""
    from semdyn.train.trainer import TrainingDivergedError

    model = build_model(parsed)
    model.train()
    camera = with_time(parsed["outputs"].cameras[0:1], 0.3)
    batch = parsed["dataset"].get_data(0, image_type="uint8")
    out = model.get_outputs(camera)
    model.get_loss_dict(out, batch)  # finite: fine
    with torch.no_grad():
        model.scene.params["scales"][0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="'scales' is not finite"):
        model._after_step(0)
    with torch.no_grad():
        model.scene.params["scales"][0] = 0.0
        model.scene.sky.texture.fill_(float("nan"))  # the loss itself becomes NaN
    out = model.get_outputs(camera)
    with pytest.raises(TrainingDivergedError, match="loss term 'rgb' is nan"):
        model.get_loss_dict(out, batch)
