"""The feature field learns: its loss falls, its latent follows densification, and a text query runs on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from semdyn.data.scene_data import load_scene
from semdyn.semantics.clip import ClipConfig, ClipEncoder
from semdyn.semantics.extract import ExtractConfig, extract_sequence
from semdyn.semantics.feature_field import LATENT_KEY, FeatureFieldConfig, render_latent
from semdyn.semantics.query import CANONICAL_NEGATIVES, relevancy
from semdyn.semantics.training import SemanticsConfig
from semdyn.train.trainer import Trainer
from tests.semantics.test_training import _config


def test_feature_field_trains_and_answers_queries(tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path) -> None:
    clip = ClipConfig(model_name=tiny_clip_config.stem, model_config=tiny_clip_config)
    ex = extract_sequence(
        ExtractConfig(
            data=tiny_scene, output=tmp_path / "cache", masks="gt", clip=clip, random_weights=True, device="cpu"
        ),
        show_progress=False,
    )
    data = load_scene(tiny_scene, 2)
    ff = FeatureFieldConfig(latent_dim=4, hidden=32, latent_lr=2e-2, decoder_lr=5e-3, weight=1.0)
    sem = SemanticsConfig(masks="cache", cache_dir=Path(ex["run_dir"]), lift_start=1000, feature_field=ff)
    cfg = _config(tiny_scene, tmp_path, 60, sem)
    trainer = Trainer(cfg, data)
    trainer.train()  # densifies every 3 steps: the latent must keep one row per Gaussian
    assert trainer.model.params[LATENT_KEY].shape == (trainer.model.num_gaussians, 4)
    feat = [h["feature"] for h in trainer.history]
    assert sum(feat[-10:]) / 10 < 0.8 * sum(feat[:10]) / 10, (feat[:10], feat[-10:])

    v = int(data.train_idx[0])
    with torch.no_grad():
        g = trainer.model.gaussians_at(float(data.times[v]))
        lat = render_latent(
            g, trainer.model.params[LATENT_KEY], data.viewmats[v : v + 1], data.Ks[v : v + 1], data.width, data.height
        )
        decoded = trainer.semantics.decoder(lat)[0]  # [H, W, D]
    enc = ClipEncoder(clip, torch.device("cpu"), random_weights=True)
    r = relevancy(decoded, enc.encode_text(["a car"])[0], enc.encode_text(list(CANONICAL_NEGATIVES)))
    assert r.shape == (data.height, data.width) and bool(((r >= 0) & (r <= 1)).all())

    resumed = Trainer(dataclasses.replace(cfg, max_steps=60), data)
    resumed.load(trainer.last_checkpoint)
    for a, b in zip(resumed.semantics.decoder.parameters(), trainer.semantics.decoder.parameters()):
        assert torch.equal(a, b)
