"""A cut image file is one sentence naming it, in both trainers (the core loader and nerfstudio's dataparser)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from semdyn.data.scene_data import load_scene
from semdyn.errors import DataFormatError


@pytest.fixture
def cut_scene(tiny_scene: Path, tmp_path: Path) -> tuple[Path, Path]:
    scene = tmp_path / "cut"
    shutil.copytree(tiny_scene, scene)
    image = scene / "images" / "front" / "00002.png"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return scene, image


def test_core_trainer_names_a_cut_png(cut_scene: tuple[Path, Path]) -> None:
    """Before: ``OSError: image file is truncated``, naming no file."""
    scene, image = cut_scene
    with pytest.raises(DataFormatError, match="is not a readable image") as err:
        load_scene(scene, 2)
    assert err.value.path == image and "\n" not in str(err.value)


def test_nerfstudio_dataparser_names_a_cut_png(cut_scene: tuple[Path, Path]) -> None:
    """Before: the datamanager's image cache raised ``OSError: image file is truncated`` mid set-up."""
    pytest.importorskip("nerfstudio")
    from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig

    scene, image = cut_scene
    with pytest.raises(DataFormatError, match="is not a readable image") as err:
        SemdynDataParserConfig(data=scene).setup().get_dataparser_outputs("train")
    assert err.value.path == image
