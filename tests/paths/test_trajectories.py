"""Trajectories: lane shift moves the ego poses sideways by the offset, the spline passes through the cameras,
frozen time holds the time, timelapse holds the pose, and camera-path JSON round-trips."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from semdyn.data.scene_data import load_scene
from semdyn.errors import DataFormatError, InputError
from semdyn.paths import (
    CameraPath,
    lane_shift,
    lateral_axes,
    read_camera_path_json,
    spline_path,
    write_camera_path_json,
)
from semdyn.paths.build import PathOptions, build_path
from semdyn.paths.trajectories import c2w_of, ego_frames

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import render as render_script  # noqa: E402


def test_lane_shift_render_moves_the_ego_poses_along_its_lateral_axis(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Render lane-shift with the script; the poses it rendered (its camera_path.json, back in metres) are the
    reference camera's poses moved 2 m along the ego's lateral axis: in the synthetic street the ego drives along
    +x with z up, so left is +y."""
    config = render_script.RenderConfig("lane-shift", tiny_checkpoint, PathOptions(offset=2.0), tmp_path,
                                        outputs=("rgb", "groups"), video=False, device="cpu")  # fmt: skip
    written = render_script.main(config)
    rendered = read_camera_path_json(written["camera_path"])
    run_data = render_script.load_run(tiny_checkpoint, "cpu").data
    norm = run_data.normalization
    frames = ego_frames(run_data)
    original = norm.poses_to_metres(c2w_of(run_data, frames))
    shifted = norm.poses_to_metres(rendered.camera_to_worlds)
    assert len(shifted) == len(frames) == len(list((tmp_path / "rgb").glob("*.png")))
    np.testing.assert_allclose(shifted[:, :3, :3], original[:, :3, :3], atol=1e-5)
    np.testing.assert_allclose(shifted[:, :3, 3] - original[:, :3, 3], np.tile([0.0, 2.0, 0.0], (len(frames), 1)),
                               atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(rendered.times.numpy(), run_data.times[frames].numpy(), atol=1e-6)
    groups = imageio.imread(tmp_path / "groups" / "00000.png")
    rgb = imageio.imread(tmp_path / "rgb" / "00000.png")
    assert groups.shape == rgb.shape and np.abs(groups.astype(int) - rgb).mean() > 1.0


def test_lateral_axis_is_left_of_travel_and_ignores_heading_noise() -> None:
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, 0, 3] = np.arange(5.0)  # driving along +x
    np.testing.assert_allclose(lateral_axes(c2w), np.tile([0.0, 1.0, 0.0], (5, 1)), atol=1e-12)
    c2w[:, 2, 3] = np.arange(5.0)  # climbing: the lateral axis stays horizontal
    np.testing.assert_allclose(lane_shift(c2w, -1.5)[:, 1, 3], -1.5)
    static = np.tile(np.eye(4), (3, 1, 1))  # a parked ego looks down -z: no horizontal direction
    with pytest.raises(InputError, match="lateral"):
        lateral_axes(static)


def test_spline_passes_through_the_cameras_and_is_smooth() -> None:
    c2w = np.tile(np.eye(4), (4, 1, 1))
    c2w[:, :3, 3] = [[0, 0, 0], [1, 0.5, 0], [2, 0.0, 0.2], [3, -0.5, 0]]
    out, t = spline_path(c2w, np.array([0.0, 0.2, 0.6, 1.0]), 7)  # samples at keys 0, 0.5, 1, ... 3
    np.testing.assert_allclose(out[::2, :3, 3], c2w[:, :3, 3], atol=1e-9)
    np.testing.assert_allclose(t[::2], [0.0, 0.2, 0.6, 1.0])
    assert np.all(np.diff(out[:, 0, 3]) > 0)


def test_frozen_timelapse_and_interpolate(tiny_scene: Path) -> None:
    data = load_scene(tiny_scene, 2)
    frozen = build_path("frozen", data, PathOptions(num_frames=5, time=0.4))
    assert torch.all(frozen.times == 0.4) and len(frozen) == 5
    centres = np.linalg.inv(frozen.viewmats.double().numpy())[:, :3, 3]
    assert np.ptp(centres[:, 1]) > 0  # the camera swings
    lapse = build_path("timelapse", data, PathOptions(num_frames=4))
    assert torch.allclose(lapse.viewmats, lapse.viewmats[:1].expand(4, 4, 4))
    np.testing.assert_allclose(lapse.times.numpy(), [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    inter = build_path("interpolate", data, PathOptions(num_frames=9))
    assert len(inter) == 9 and float(inter.times[0]) <= float(inter.times[-1])
    test = build_path("dataset", data, PathOptions())
    assert len(test) == len(data.test_idx)
    with pytest.raises(InputError, match="--time"):
        build_path("frozen", data, PathOptions(time=1.5))


def test_camera_path_json_round_trip_and_errors(tiny_scene: Path, tmp_path: Path) -> None:
    data = load_scene(tiny_scene, 2)
    path = build_path("dataset", data, PathOptions())
    write_camera_path_json(tmp_path / "p.json", path, fps=5.0)
    back = read_camera_path_json(tmp_path / "p.json")
    np.testing.assert_allclose(back.viewmats.numpy(), path.viewmats.numpy(), atol=1e-5)
    np.testing.assert_allclose(back.times.numpy(), path.times.numpy())
    np.testing.assert_allclose(back.Ks[:, 1, 1].numpy(), path.Ks[:, 1, 1].numpy(), rtol=1e-5)
    raw = json.loads((tmp_path / "p.json").read_text())
    for cam in raw["camera_path"]:
        del cam["render_time"]
    raw["default_time"] = 0.25
    (tmp_path / "q.json").write_text(json.dumps(raw))
    assert torch.all(read_camera_path_json(tmp_path / "q.json").times == 0.25)
    (tmp_path / "bad.json").write_text(json.dumps({"render_width": 4, "camera_path": []}))
    with pytest.raises(DataFormatError, match="bad.json"):
        read_camera_path_json(tmp_path / "bad.json")
    with pytest.raises(InputError):
        CameraPath(torch.zeros(2, 4, 4), torch.zeros(3, 3, 3), torch.zeros(2), 4, 4)
