"""Per-time PLY export: read back with plyfile, the counts, fields and values are the model's at that time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData

from semdyn.errors import InputError
from semdyn.export import export_ply, load_run, parse_times, ply_fields

ROOT = Path(__file__).resolve().parents[2]


def _read(path: Path) -> np.ndarray:
    return PlyData.read(str(path))["vertex"].data


@pytest.mark.parametrize("t", [0.0, 0.6])
def test_ply_matches_the_model_at_that_time(tiny_checkpoint: Path, tmp_path: Path, t: float) -> None:
    run = load_run(tiny_checkpoint, "cpu")
    n = export_ply(tmp_path / "a.ply", run.model, t, run.group_ids, run.class_ids, None, min_opacity=0.0)
    v = _read(tmp_path / "a.ply")
    g = run.model.gaussians_at(t)
    assert n == len(v) == run.model.num_gaussians
    k = run.model.params["shN"].shape[1]
    assert list(v.dtype.names) == [*ply_fields(k), "group_id", "class_id"]
    xyz = np.stack([v["x"], v["y"], v["z"]], 1)
    np.testing.assert_allclose(xyz, g["means"].detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"])), g["opacities"].detach().numpy(), atol=1e-5)
    scales = np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1))
    np.testing.assert_allclose(scales, g["scales"].detach().numpy(), rtol=1e-5)
    rot = np.stack([v[f"rot_{i}"] for i in range(4)], 1)
    np.testing.assert_allclose(rot, g["quats"].detach().numpy(), atol=1e-6)
    dc = np.stack([v[f"f_dc_{i}"] for i in range(3)], 1)
    np.testing.assert_allclose(dc, run.model.params["sh0"][:, 0].detach().numpy(), atol=1e-6)
    rest = np.stack([v[f"f_rest_{i}"] for i in range(3 * k)], 1).reshape(-1, 3, k).transpose(0, 2, 1)
    np.testing.assert_allclose(rest, run.model.params["shN"].detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(v["group_id"], run.group_ids.numpy())
    assert (v["group_id"] >= 0).any() and (v["group_id"] == -1).any()
    assert (v["class_id"] == -1).all()


def test_times_differ_where_gaussians_move(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The deformation moves some Gaussians between t = 0 and 1 and leaves others (outside its box) still."""
    run = load_run(tiny_checkpoint, "cpu")
    with torch.no_grad():  # give the field a visible motion so that the check does not hinge on 12 training steps
        for p in run.model.deform.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for t in (0.0, 1.0):
        export_ply(tmp_path / f"{t}.ply", run.model, t, run.group_ids, run.class_ids, None, min_opacity=0.0)
    a, b = _read(tmp_path / "0.0.ply"), _read(tmp_path / "1.0.ply")
    moved = np.abs(a["x"] - b["x"]) + np.abs(a["y"] - b["y"]) + np.abs(a["z"] - b["z"])
    assert (moved > 1e-4).any() and (moved == 0).any()


def test_metres_undo_the_normalisation_and_pruning_drops_invisible(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run = load_run(tiny_checkpoint, "cpu")
    norm = run.data.normalization
    g = run.model.gaussians_at(0.5)
    cut = float(g["opacities"].detach().median())
    n = export_ply(tmp_path / "m.ply", run.model, 0.5, run.group_ids, run.class_ids, norm, min_opacity=cut)
    keep = (g["opacities"] >= cut).detach().numpy()
    v = _read(tmp_path / "m.ply")
    assert n == len(v) == keep.sum() and 0 < n < run.model.num_gaussians
    metres = norm.points_to_metres(g["means"].detach().numpy()[keep])
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), metres, atol=1e-3)
    log_s = np.log(g["scales"].detach().numpy()[keep]) - np.log(norm.scale)
    np.testing.assert_allclose(v["scale_0"], log_s[:, 0], atol=1e-5)
    np.testing.assert_array_equal(v["group_id"], run.group_ids.numpy()[keep])


def test_parse_times() -> None:
    assert parse_times("0, 0.5,1", np.array([])) == [0.0, 0.5, 1.0]
    assert parse_times("all", np.array([0.5, 0.0, 0.5, 1.0])) == [0.0, 0.5, 1.0]
    for bad in ("", "0,x", "1.5"):
        with pytest.raises(InputError, match="--times"):
            parse_times(bad, np.array([]))


def test_cli_writes_one_file_per_time(tiny_checkpoint: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "export_ply.py"), "--checkpoint", str(tiny_checkpoint),
           "--times", "0,1", "--output-dir", str(tmp_path), "--device", "cpu"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["t0.0000.ply", "t1.0000.ply"]
    bad = subprocess.run([*cmd[:-4], "--times", "2", "--device", "cpu"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--times" in bad.stdout
