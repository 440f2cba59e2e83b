"""The breakdown of the motion errors by the node holding each Gaussian agrees with the benchmark's metrics."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from semdyn.data.scene_data import load_scene
from semdyn.eval.motion_breakdown import motion_breakdown
from semdyn.eval.scene_motion import motion_metrics
from semdyn.scene.dynamic import DynamicScene
from semdyn.scene.nodes.base import BACKGROUND_ID
from semdyn.train.presets import cpu_base_preset, static


def test_a_still_scene_is_all_background_and_pools_to_the_benchmark_error(tiny_scene: Path) -> None:
    """A static model: every Gaussian in a moving box is the background's, the shares of each box add to one, the
    rows pooled by their counts give the benchmark's trajectory error, and nothing in a box changes its distances."""
    data = load_scene(tiny_scene, 2)
    g = torch.Generator().manual_seed(0)
    model = DynamicScene(
        static(cpu_base_preset()).model, data.points, data.point_colors, data.aabb, "cpu", g,
        data.viewmats.inverse()[:, :3, 3], data.point_times,
    )  # fmt: skip
    tracks = list(data.sequence.objects)
    found = motion_breakdown(model, data, tracks)
    assert found, "the tiny scene's cars hold Gaussians"
    metrics = motion_metrics(model, data, tracks)
    pooled = sum(r.trajectory_error * r.gaussians for o in found for r in o.rows)
    count = sum(r.gaussians for o in found for r in o.rows)
    assert count == metrics["trajectory_gaussians"]
    assert math.isclose(pooled / count, metrics["trajectory_error"], rel_tol=1e-4)
    for obj in found:
        assert {r.holder for r in obj.rows} == {"background"}
        assert math.isclose(sum(r.error_share for r in obj.rows), 1.0, rel_tol=1e-6)
        assert obj.rigidity_all == 0.0 and math.isnan(obj.rigidity_objects)
    assert bool((model.node_ids_now() == BACKGROUND_ID).all())


def test_the_script_names_a_missing_checkpoint_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "motion_breakdown.py"
    missing = tmp_path / "no-run"
    done = subprocess.run([sys.executable, str(script), "--checkpoint", str(missing)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "no-run" in lines[0] and "Traceback" not in done.stderr, (done.stdout, done.stderr)
