"""Shared pytest set-up: GPU-only tests are skipped on machines without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semdyn.synth import SynthConfig, ensure_scene

# A tiny street (2 cameras, 6 frames) generated once per session through the cache helper.
TINY = SynthConfig(num_cameras=2, num_frames=6, width=128, height=80, lidar_points_per_frame=2000)


@pytest.fixture(scope="session")
def tiny_config() -> SynthConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_scene(TINY, tmp_path_factory.mktemp("synth_cache"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
