"""The ground-truth self-consistency check and the two scripts."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from semdyn.synth import SynthConfig, check_scene

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


def test_boxes_match_masks_and_depth_matches_lidar(tiny_scene: Path, tmp_path: Path) -> None:
    result = check_scene(tiny_scene, tmp_path / "overlays")
    assert result.num_boxes >= 3
    assert result.mean_iou > 0.8
    assert result.num_depth_points > 1000
    assert result.depth_median_abs_error < 0.01
    assert result.depth_frac_within_5cm > 0.85
    assert len(result.overlay_paths) == 3 and all(p.is_file() for p in result.overlay_paths)


def test_check_script(tiny_scene: Path, tmp_path: Path) -> None:
    module = _script("check_synthetic_gt")
    result = module.main(module.Args(scene=tiny_scene, out=tmp_path))
    assert not math.isnan(result.mean_iou)
    assert len(list(tmp_path.glob("overlay_*.png"))) == 3


def test_make_script(tmp_path: Path) -> None:
    module = _script("make_synthetic_scene")
    config = SynthConfig(num_cameras=1, num_frames=2, width=48, height=32, lidar_points_per_frame=100)
    path = module.main(module.Args(output=tmp_path / "street", scene=config))
    assert (path / "transforms.json").is_file()
    assert np.load(path / "depth" / "front" / "00001.npy").shape == (32, 48)
