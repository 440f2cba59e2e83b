"""Frames read from disk through a bounded cache: the same pixels and the same training as frames held in memory."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semdyn.data.frame_cache import FrameCache
from semdyn.data.scene_data import load_scene
from semdyn.errors import DataFormatError, InputError
from semdyn.train.presets import cpu_base_preset
from semdyn.train.trainer import Trainer


def test_the_cache_gives_the_frames_held_in_memory_and_stays_bounded(tiny_scene: Path) -> None:
    held = load_scene(tiny_scene, 2)
    cached = load_scene(tiny_scene, 2, cache_mb=0.05)  # 3/5 of 0.05 MiB: 4 images of 64x40x3
    assert isinstance(cached.images, FrameCache) and isinstance(cached.instance_masks, FrameCache)
    assert cached.images.capacity == 4 and tuple(cached.images.shape) == tuple(held.images.shape)
    for i in [0, 5, 11, 3, 5, 0, 7]:
        assert torch.equal(cached.image(i), held.image(i))
        assert torch.equal(cached.mask(i), held.mask(i))
    assert len(cached.images._frames) <= 4  # the budget holds
    loads = cached.images.loads
    cached.prefetch([9, 10])
    cached.images.close()  # waits for the worker
    cached.image(9), cached.image(10)
    assert cached.images.loads == loads + 2  # decoded once each, ahead of use


def test_a_bad_budget_and_a_corrupt_frame_are_one_sentence(tiny_scene: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--cache-mb must be a positive number"):
        load_scene(tiny_scene, 2, cache_mb=0)
    scene = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene)
    data = load_scene(scene, 2, cache_mb=0.05)
    victim = data.sequence.frames[4].image_path
    victim.write_bytes(victim.read_bytes()[:100])  # cut short after loading: found when the frame is read
    with pytest.raises(DataFormatError, match=victim.name):
        data.image(4)


def test_training_from_the_cache_equals_training_from_memory(tiny_scene: Path, tmp_path: Path) -> None:
    base = dataclasses.replace(
        cpu_base_preset(), data=tiny_scene, max_steps=6, output_dir=tmp_path, steps_per_save=100, log_every=100
    )
    runs = []
    for name, cache in (("held", None), ("cached", 0.05)):
        trainer = Trainer(dataclasses.replace(base, experiment_name=name, cache_mb=cache))
        trainer.train()
        runs.append(trainer)
    assert isinstance(runs[1].data.images, FrameCache) and runs[1].data.images.loads > 3  # it did read from disk
    for key, value in runs[0].model.params.items():
        assert np.allclose(value.detach().numpy(), runs[1].model.params[key].detach().numpy(), atol=0), key
