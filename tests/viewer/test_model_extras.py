"""Viewer extras of the nerfstudio model: the extra outputs, hiding groups, freezing time, stable colours."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("nerfstudio")

from nerfstudio.cameras.cameras import Cameras  # noqa: E402

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig  # noqa: E402
from semdyn.method_config import semdyn_cpu_method  # noqa: E402
from semdyn.scene.strategy import set_labels  # noqa: E402
from semdyn.viewer.colors import heat_map, id_colors  # noqa: E402
from semdyn.viewer.controls import parse_ids  # noqa: E402


@pytest.fixture(scope="module")
def model_and_camera(tiny_scene: Path) -> tuple[Any, Cameras]:
    outputs = SemdynDataParserConfig(data=tiny_scene).setup().get_dataparser_outputs("train")
    config = copy.deepcopy(semdyn_cpu_method.config.pipeline.model)
    torch.manual_seed(0)
    model = config.setup(scene_box=outputs.scene_box, num_train_data=len(outputs.image_filenames),
                         metadata=outputs.metadata).eval()  # fmt: skip
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.scene.deform.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        model.scene.params["opacities"].fill_(2.0)  # opaque, so that hiding a group shows
    x = model.scene.params["means"][:, 0].detach().contiguous()
    ids = torch.bucketize(x, torch.quantile(x, torch.tensor([0.25, 0.5, 0.75])))
    set_labels(model.strategy_state, ids)
    return model, outputs.cameras[0:1]


def at(camera: Cameras, t: float) -> Cameras:
    camera = copy.deepcopy(camera)
    camera.times = torch.full((1, 1), t)
    return camera


def test_extra_outputs_and_hiding(model_and_camera: tuple[Any, Cameras]) -> None:
    model, camera = model_and_camera
    out = model.get_outputs_for_camera(at(camera, 0.3))
    h, w = int(camera.height), int(camera.width)
    assert {"rgb", "depth", "accumulation", "groups", "classes", "deformation", "relevancy"} == set(out)
    assert out["groups"].shape == (h, w, 3) and out["deformation"].shape == (h, w, 1)
    assert out["relevancy"].shape == (h, w, 1) and not out["relevancy"].any()  # no text query: zeros
    assert out["groups"].std() > 0.02  # several group colours on screen
    assert torch.allclose(out["classes"], 0.5 * out["accumulation"].expand(h, w, 3), atol=1e-4)  # all grey
    assert out["deformation"].max() > 0
    visible = out["accumulation"][..., 0] > 0.5
    model.viewer_controls.hide_groups.value = "0, 1, 2, 3"
    try:
        hidden = model.get_outputs_for_camera(at(camera, 0.3))
    finally:
        model.viewer_controls.hide_groups.value = ""
    assert hidden["accumulation"].max() < 1e-6 and visible.any()
    model.viewer_controls.hide_groups.value = "2"
    try:
        one = model.get_outputs_for_camera(at(camera, 0.3))
    finally:
        model.viewer_controls.hide_groups.value = ""
    assert 0 < (one["rgb"] - out["rgb"]).abs().amax(-1).gt(0.05).float().mean() < 0.9


def test_freeze_time(model_and_camera: tuple[Any, Cameras]) -> None:
    model, camera = model_and_camera
    early, late = (model.get_outputs_for_camera(at(camera, t))["rgb"] for t in (0.1, 0.9))
    assert (early - late).abs().max() > 1e-2
    controls = model.viewer_controls
    controls.freeze_time.value, controls.frozen_time.value = True, 0.1
    try:
        frozen = model.get_outputs_for_camera(at(camera, 0.9))["rgb"]
    finally:
        controls.freeze_time.value = False
    torch.testing.assert_close(frozen, early, atol=1e-5, rtol=0)  # float32 camera time vs the float slider


def test_colours_and_parsing() -> None:
    ids = torch.tensor([-1, 0, 1, 2, 0])
    c = id_colors(ids)
    assert torch.equal(c[0], torch.full((3,), 0.5)) and torch.equal(c[1], c[4])
    assert (c[1] - c[2]).abs().max() > 0.2 and (c[2] - c[3]).abs().max() > 0.2
    assert torch.equal(id_colors(torch.tensor([2])), c[3:4])  # stable: the colour depends on the id only
    assert heat_map(torch.tensor([0.0, 1.0]), vmax=1.0).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert parse_ids("3, 7 x") == {3, 7}
