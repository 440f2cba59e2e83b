"""Trajectories of the synthetic street and validation of its options."""

from __future__ import annotations

import numpy as np
import pytest

from semdyn.errors import InputError
from semdyn.synth import SynthConfig, generate_scene
from semdyn.synth.scene import build_street
from semdyn.synth.writer import frame_times


@pytest.fixture(scope="module")
def tracks() -> dict[str, np.ndarray]:
    config = SynthConfig()
    street = build_street(config)
    times = frame_times(config)
    out = {o.description: o.poses(times) for o in street.objects if o.dynamic}
    out["ego"] = street.ego.poses(times)
    return out


def _velocity(poses: np.ndarray, fps: float = 10.0) -> np.ndarray:
    return np.gradient(poses[:, :3, 3], 1.0 / fps, axis=0)


def test_three_moving_vehicles_with_required_behaviour(tracks: dict[str, np.ndarray]) -> None:
    ego_dir = _velocity(tracks["ego"])
    ego_dir = ego_dir / np.linalg.norm(ego_dir, axis=-1, keepdims=True)
    cars = {k: v for k, v in tracks.items() if k != "ego" and "pedestrian" not in k}
    assert len(cars) >= 3
    same, oncoming, lateral = [], [], []
    for name, poses in cars.items():
        vel = _velocity(poses)
        along = (vel * ego_dir).sum(-1)
        side = np.abs(vel[:, 1])
        if np.all(along > 2.0) and side.max() < 0.1:
            same.append(name)
        if np.all(along < -2.0):
            oncoming.append(name)
        if side.max() > 1.0 and np.ptp(poses[:, 1, 3]) > 2.5:
            lateral.append(name)
    assert same and oncoming and lateral, (same, oncoming, lateral)


def test_tracks_smooth_and_yaw_follows_tangent(tracks: dict[str, np.ndarray]) -> None:
    for name, poses in tracks.items():
        vel = _velocity(poses)
        acc = np.gradient(vel, 0.1, axis=0)
        assert np.abs(acc).max() < 4.0, name
        speed = np.linalg.norm(vel[:, :2], axis=-1)
        heading = poses[:, :3, 0]
        cos = (heading[:, :2] * vel[:, :2]).sum(-1) / np.maximum(speed, 1e-9)
        assert np.all(cos[speed > 0.5] > 0.99), name
        rot = poses[:, :3, :3]
        assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-9)


@pytest.mark.parametrize(
    ("option", "value"),
    [("num_cameras", 0), ("num_cameras", 6), ("num_frames", -3), ("num_frames", 0), ("width", 0), ("fps", 0.0)],
)
def test_bad_options_name_the_option(option: str, value: object, tmp_path) -> None:
    config = SynthConfig(**{option: value})
    with pytest.raises(InputError, match=option):
        config.validate()
    with pytest.raises(InputError, match=option):
        generate_scene(config, tmp_path / "out", show_progress=False)
    assert not list(tmp_path.iterdir())


def test_existing_output_needs_overwrite(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="overwrite"):
        generate_scene(SynthConfig(num_frames=1, width=32, height=16), tmp_path / "out", show_progress=False)
