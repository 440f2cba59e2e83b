"""Tiny SAM/CLIP set-up for the semantics tests (random weights, behind the explicit flag)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An open_clip model config JSON for a 1-layer CLIP (model name: its stem, ``semdyn-tiny-clip``)."""
    path = tmp_path_factory.mktemp("clip") / "semdyn-tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return path
