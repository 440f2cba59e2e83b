"""The viewer's text query: the ``relevancy`` output of the nerfstudio model, the lazily loaded CLIP text encoder,
its failures as one log line, and the feature field trained through the model.

The feature caches here are written by hand (meta.json + per-frame ``.npz``/``.png``), so no CLIP runs to make them;
the relevancy numbers use a stand-in text encoder with orthogonal word embeddings (a random tiny CLIP embeds every
phrase almost alike), and one test loads the tiny random CLIP itself, as meta.json's random_weights allows.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("nerfstudio")

from nerfstudio.cameras.cameras import Cameras  # noqa: E402

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig  # noqa: E402
from semdyn.method_config import semdyn_cpu_method  # noqa: E402
from semdyn.nerfstudio.model import camera_arguments  # noqa: E402
from semdyn.scene.strategy import set_labels  # noqa: E402
from semdyn.semantics.cache import frame_key, write_id_map  # noqa: E402
from semdyn.semantics.feature_field import LATENT_KEY, FeatureFieldConfig  # noqa: E402
from semdyn.semantics.query import CANONICAL_NEGATIVES, relevancy_image  # noqa: E402
from semdyn.semantics.training import SemanticsConfig  # noqa: E402
from semdyn.viewer.query import TextQueryConfig  # noqa: E402
from tests.semantics.conftest import TINY_CLIP  # noqa: E402

RUN_KEY = "viewer-test"
DIM = TINY_CLIP["embed_dim"]


class WordEncoder:
    """A stand-in CLIP text encoder: each word gets its own axis, so embeddings of different words are orthogonal."""

    def __init__(self) -> None:
        self.words: dict[str, int] = {}
        self.calls: list[list[str]] = []

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append(list(prompts))
        index = [self.words.setdefault(p, len(self.words)) for p in prompts]
        return F.one_hot(torch.tensor(index), DIM).float()


def write_cache(run_dir: Path, image_paths: Sequence[Path], random_weights: bool = True) -> Path:
    """An extract_semantics run folder: meta.json (tiny CLIP) and, per image, targets of two masks (left and right
    halves, random unit embeddings) and an all-zero ID map, at 80 x 128 pixels."""
    clip = {"model_name": "semdyn-tiny-clip", "model_config": json.dumps(TINY_CLIP),
            "pretrained": None if random_weights else "open_clip_pytorch_model.bin"}  # fmt: skip
    meta = {"run_key": RUN_KEY, "options": {"masks": "gt", "clip": clip}, "random_weights": random_weights}
    (run_dir / "frames").mkdir(parents=True)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    g = torch.Generator().manual_seed(0)
    index = np.zeros((80, 128), np.int64)
    index[:, 64:] = 1
    for key in [frame_key(RUN_KEY, p) for p in image_paths] or ["no-frames"]:
        emb = F.normalize(torch.randn(2, DIM, generator=g), dim=-1).numpy()
        np.savez(run_dir / "frames" / f"{key}.npz", embeddings=emb, mask_index=index)
        write_id_map(run_dir / "frames" / f"{key}.png", np.zeros((80, 128), np.int64))
    return run_dir


@pytest.fixture(scope="module")
def parsed(tiny_scene: Path) -> Any:
    return SemdynDataParserConfig(data=tiny_scene).setup().get_dataparser_outputs("train")


def build(parsed: Any, semantics: SemanticsConfig | None = None, text_query: TextQueryConfig | None = None) -> Any:
    """The semdyn-cpu model on the tiny street (eval mode, fairly opaque Gaussians)."""
    config = copy.deepcopy(semdyn_cpu_method.config.pipeline.model)
    config.semantics, config.text_query = semantics, text_query or TextQueryConfig()
    torch.manual_seed(0)
    model = config.setup(scene_box=parsed.scene_box, num_train_data=len(parsed.image_filenames),
                         metadata=parsed.metadata).eval()  # fmt: skip
    with torch.no_grad():
        model.scene.params["opacities"].fill_(2.0)
    return model


def with_feature_field(
    tmp_path: Path, image_paths: Sequence[Path] = (), random_weights: bool = True
) -> SemanticsConfig:
    cache = write_cache(tmp_path / "cache", list(image_paths), random_weights)
    ff = FeatureFieldConfig(latent_dim=2, hidden=2)
    return SemanticsConfig(masks="cache", cache_dir=cache, lift_start=10_000, feature_field=ff)


def camera(parsed: Any) -> Cameras:
    cam = copy.deepcopy(parsed.cameras[0:1])
    cam.times = torch.full((1, 1), 0.5)
    return cam


def semdyn_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "semdyn" and r.levelno >= logging.WARNING]


def test_relevancy_is_high_where_the_queried_gaussians_render(parsed: Any, tmp_path: Path) -> None:
    model = build(parsed, with_feature_field(tmp_path))
    cam, controls = camera(parsed), model.viewer_controls
    viewmat = camera_arguments(cam)[0][0]
    means = model.scene.params["means"].detach()
    car = (means @ viewmat[:3, :3].T + viewmat[:3, 3])[:, 0] > 0  # right half of the picture
    set_labels(model.strategy_state, car.long())  # group 1: the "car" Gaussians
    acc = {}
    for name, hide in (("car", "0"), ("other", "1")):
        controls.hide_groups.value = hide
        acc[name] = model.get_outputs_for_camera(cam)["accumulation"][..., 0]
    controls.hide_groups.value = ""
    stub = WordEncoder()
    model.text_query.encoder = stub  # as if CLIP were loaded: "car" and "object" are orthogonal
    e = stub.encode_text(["car", "object"])
    with torch.no_grad():  # latent [1, 0] decodes to the embedding of "car", [0, 1] to that of "object"
        first, second = model.feature_decoder.net[0], model.feature_decoder.net[2]
        first.weight.copy_(torch.eye(2)), first.bias.zero_(), second.weight.copy_(e.T), second.bias.zero_()
        model.scene.params[LATENT_KEY].copy_(torch.stack([car, ~car], dim=1).float())
    controls.query.value = " car "
    rel = model.get_outputs_for_camera(cam)["relevancy"]
    assert rel.shape == (int(cam.height), int(cam.width), 1) and 0 <= rel.min() and rel.max() <= 1
    on_car = (acc["car"] > 0.8) & (acc["other"] < 0.2)
    off_car = (acc["other"] > 0.8) & (acc["car"] < 0.2)
    assert on_car.float().mean() > 0.05 and off_car.float().mean() > 0.05
    assert rel[on_car].min() > 0.9 and rel[off_car].max() < 0.1
    controls.query.value = "tree"  # like neither the car nor the negatives: no preference anywhere on the car
    try:
        tree = model.get_outputs_for_camera(cam)["relevancy"]
    finally:
        controls.query.value = ""
    assert tree[on_car].max() < 0.6


def test_text_is_encoded_once_per_change(parsed: Any, tmp_path: Path) -> None:
    model = build(parsed, with_feature_field(tmp_path))
    stub = WordEncoder()
    model.text_query.encoder = stub
    cam, controls = camera(parsed), model.viewer_controls
    controls.query.value = "car"
    model.prepare_query("car")  # the text box's callback, then the renders it triggers
    for _ in range(2):
        model.get_outputs_for_camera(cam)
    assert stub.calls == [list(CANONICAL_NEGATIVES), ["car"]]
    controls.query.value = "tree"
    for _ in range(2):
        model.get_outputs_for_camera(cam)
    controls.query.value = "car"
    model.get_outputs_for_camera(cam)
    assert stub.calls[2:] == [["tree"], ["car"]] and model.text_query.encode_calls == 3


def test_clip_loads_on_the_first_query_with_the_caches_random_weights(
    parsed: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = build(parsed, with_feature_field(tmp_path))  # set-up needs no CLIP weights
    cam = camera(parsed)
    assert not model.get_outputs_for_camera(cam)["relevancy"].any()
    assert model.text_query.encoder is None
    model.viewer_controls.query.value = "car"
    with caplog.at_level(logging.INFO, logger="semdyn"):
        rel = model.get_outputs_for_camera(cam)["relevancy"]
    assert model.text_query.encoder is not None and model.text_query.encoder.dim == DIM
    assert any("RANDOMLY INITIALISED" in line and "meta.json" in line for line in semdyn_lines(caplog))
    assert torch.isfinite(rel).all() and rel.std() > 0  # scored from the (untrained) feature field


def test_missing_checkpoint_is_one_log_line(parsed: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "weights" / "open_clip_pytorch_model.bin"
    model = build(parsed, with_feature_field(tmp_path, random_weights=False), TextQueryConfig(clip_pretrained=missing))
    model.viewer_controls.query.value = "car"
    with caplog.at_level(logging.INFO, logger="semdyn"):
        model.prepare_query("car")
        out = [model.get_outputs_for_camera(camera(parsed))["relevancy"] for _ in range(2)]
    lines = semdyn_lines(caplog)
    assert len(lines) == 1, lines
    assert "--pipeline.model.text-query.clip-pretrained" in lines[0] and str(missing) in lines[0]
    assert "\n" not in lines[0] and "Traceback" not in lines[0]
    assert not any(r.exc_info for r in caplog.records)
    assert all(not r.any() for r in out) and model.text_query.encoder is None


def test_no_query_or_no_feature_field_gives_zeros_and_says_why(parsed: Any, caplog: pytest.LogCaptureFixture) -> None:
    model = build(parsed)  # semdyn-cpu: no semantics, no feature field
    cam = camera(parsed)
    with caplog.at_level(logging.INFO, logger="semdyn"):
        empty = model.get_outputs_for_camera(cam)
        model.viewer_controls.query.value = "car"
        queried = [model.get_outputs_for_camera(cam) for _ in range(2)]
    assert set(empty) == set(queried[0])  # the same outputs, with or without a query
    assert all(not out["relevancy"].any() for out in [empty, *queried])
    infos = [r.getMessage() for r in caplog.records if r.name == "semdyn" and r.levelno == logging.INFO]
    assert any("Text query" in line for line in infos)
    assert [line for line in semdyn_lines(caplog) if "feature field" in line] == [
        "viewer: 'relevancy' is zero: this model has no feature field (--pipeline.model.semantics.feature-field, "
        "with semantics.masks cache)"
    ]
    assert model.text_query.encoder is None  # CLIP is never loaded when nothing could be scored


def test_relevancy_image_decodes_in_chunks() -> None:
    latent = torch.randn(2, 5, 7, 3)
    decoder = torch.nn.Linear(3, 4)
    pos, neg = torch.randn(4), torch.randn(2, 4)
    whole = relevancy_image(latent, decoder, pos, neg, chunk=1 << 20)
    torch.testing.assert_close(relevancy_image(latent, decoder, pos, neg, chunk=4), whole)
    assert whole.shape == (2, 5, 7)


def test_feature_field_trains_through_the_model(parsed: Any, tmp_path: Path) -> None:
    """With semantics.feature_field the model renders latents in training, its loss dict gains "feature", and
    stepping the latent and decoder (their optimizer groups exist in the method configs) lowers it."""
    model = build(parsed, with_feature_field(tmp_path, [f.image_path for f in parsed.metadata["sequence"].frames]))
    missing = set(model.get_param_groups()) - set(semdyn_cpu_method.config.optimizers)
    assert not missing, missing
    params = [model.scene.params[LATENT_KEY], *model.feature_decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.05)
    model.train()
    cam = camera(parsed)
    batch = {"image": torch.zeros(int(cam.height), int(cam.width), 3), "image_idx": 0}
    losses = []
    for _ in range(12):
        loss = model.get_loss_dict(model.get_outputs(cam), batch)["feature"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
    assert model.scene.params[LATENT_KEY].grad.abs().sum() > 0  # the latents learn, not only the decoder
