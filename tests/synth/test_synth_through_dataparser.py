"""The generator's output is read by semdyn's reader and by nerfstudio through the semdyn-data dataparser."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from semdyn.data import read_points, read_sequence
from semdyn.synth import SynthConfig


def test_reader_accepts_the_synthetic_scene(tiny_scene: Path, tiny_config: SynthConfig) -> None:
    seq = read_sequence(tiny_scene)
    n_frames = tiny_config.num_frames * tiny_config.num_cameras
    assert len(seq.frames) == n_frames
    assert len(seq.cameras) == tiny_config.num_cameras
    np.testing.assert_allclose(np.unique(seq.times_seconds), np.arange(tiny_config.num_frames) / tiny_config.fps)
    assert seq.times_normalized.min() == 0.0 and seq.times_normalized.max() == 1.0
    assert seq.has("mask") and seq.has("semantic") and seq.has("depth")
    assert len(seq.split.test) == tiny_config.num_cameras  # timestamp 0 only, all cameras of it
    assert sum(o.dynamic for o in seq.objects) >= 3
    pts = read_points(seq.ply_path)
    assert pts.xyz.shape[0] > 1000 and pts.time is not None


@pytest.mark.nerfstudio
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_splatfacto_datamanager_builds_on_the_synthetic_scene(tiny_scene: Path, tiny_config: SynthConfig) -> None:
    """What `ns-train splatfacto semdyn-data --data <scene>` builds before its model needs CUDA."""
    pytest.importorskip("nerfstudio")
    from nerfstudio.configs.method_configs import method_configs

    from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig

    config = copy.deepcopy(method_configs["splatfacto"].pipeline.datamanager)
    config.dataparser = SemdynDataParserConfig(data=tiny_scene)
    config.cache_images = "gpu"  # means "on the datamanager's device"; "cpu" pins memory, which needs CUDA
    dm = config.setup(device="cpu")
    camera, batch = dm.next_train(0)
    assert batch["image"].shape == (tiny_config.height, tiny_config.width, 3)
    assert 0.0 < camera.times.item() <= 1.0
    meta = dm.train_dataparser_outputs.metadata
    assert meta["points3D_xyz"].shape[0] > 1000 and meta["points3D_time"].max() <= 1.0
    assert len(meta["objects"]) > 3 and meta["dataparser_scale"] > 0
