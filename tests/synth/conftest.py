"""A tiny synthetic scene, generated once per test session through the cache helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from semdyn.synth import SynthConfig, ensure_scene

TINY = SynthConfig(num_cameras=2, num_frames=6, width=128, height=80, lidar_points_per_frame=2000)


@pytest.fixture(scope="session")
def tiny_config() -> SynthConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_scene(TINY, tmp_path_factory.mktemp("synth_cache"))
