"""The benchmark's pieces: motion metrics of a model, method configs, the table and the ratios."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from semdyn.data.scene_data import load_scene
from semdyn.eval.scene_motion import motion_metrics
from semdyn.scene.dynamic import DynamicScene
from semdyn.tools.benchmark import PROFILES, markdown_table, method_config, ratios, write_results
from semdyn.train.presets import cpu_base_preset, static


def _model(data, deformation: bool) -> DynamicScene:
    cfg = cpu_base_preset().model if deformation else static(cpu_base_preset()).model
    g = torch.Generator().manual_seed(0)
    return DynamicScene(
        cfg, data.points, data.point_colors, data.aabb, "cpu", g, data.viewmats.inverse()[:, :3, 3], data.point_times
    )


def test_a_static_model_has_no_drift_and_no_rigidity_error_but_misses_the_traffic(tiny_scene: Path) -> None:
    data = load_scene(tiny_scene, 2)
    m = motion_metrics(_model(data, deformation=False), data, list(data.sequence.objects))
    assert m["static_drift"] == 0.0 and m["rigidity_error"] == 0.0
    assert m["trajectory_gaussians"] > 0 and m["trajectory_error"] > 0.1  # the cars move, its Gaussians do not


def test_a_field_that_moves_static_structure_shows_drift(tiny_scene: Path) -> None:
    data = load_scene(tiny_scene, 2)
    model = _model(data, deformation=True)
    with torch.no_grad():
        for p in model.deform.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    m = motion_metrics(model, data, list(data.sequence.objects))
    assert m["static_gaussians"] > 0 and m["static_drift"] > 1e-3


def test_methods_share_scene_steps_and_seed_and_differ_where_they_should(tmp_path: Path) -> None:
    prof = PROFILES["cpu"]
    cfgs = {m: method_config(m, 1, prof, tmp_path) for m in ("static", "semdyn-base", "semdyn")}
    assert {(c.synth.seed, c.seed, c.max_steps, c.downscale) for c in cfgs.values()} == {(1, 1, 3000, 2)}
    assert cfgs["static"].model.deformation is None and cfgs["semdyn-base"].model.deformation is not None
    assert cfgs["semdyn-base"].semantics is None and cfgs["semdyn"].semantics is not None
    assert (
        dataclasses.replace(cfgs["semdyn"], semantics=None, experiment_name="semdyn-base-seed1") == cfgs["semdyn-base"]
    )


def test_table_and_ratios(tmp_path: Path) -> None:
    rows = [
        {"method": "semdyn-base", "seed": 0, "psnr": 25.0, "dynamic_psnr": 18.0, "trajectory_error": 2.0,
         "static_drift": 0.1},
        {"method": "semdyn", "seed": 0, "psnr": 25.5, "dynamic_psnr": 18.5, "trajectory_error": 0.5,
         "static_drift": 0.0, "lpips": None},
        {"method": "static", "seed": 0, "error": "TrainingDivergedError: step 3"},
    ]  # fmt: skip
    r = ratios(rows)[0]
    assert r["trajectory_error_ratio"] == 0.25 and r["static_drift_ratio"] == 0.0 and r["dynamic_psnr_gain_db"] == 0.5
    table = markdown_table(rows)
    assert "| semdyn | 0 | 25.50 |" in table and "n/a" in table and "failed: TrainingDivergedError" in table
    json_path, md_path = write_results(tmp_path, rows, {"profile": "cpu", "machine": "test"})
    assert json.loads(json_path.read_text())["ratios_semdyn_over_base"]["0"]["trajectory_error_ratio"] == 0.25
    assert "x0.250" in md_path.read_text()
