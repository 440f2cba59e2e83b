"""Files that exist but are not what they should be: one sentence naming the option or the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semdyn.errors import DataFormatError, InputError, read_text
from semdyn.semantics.clip import ClipConfig, ClipEncoder
from semdyn.semantics.dictionary import load_dictionary
from semdyn.semantics.sam import SamConfig, load_sam


def _junk(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 64)
    return path


def test_a_random_bytes_sam_checkpoint_names_the_option(tmp_path: Path) -> None:
    junk = _junk(tmp_path / "sam_vit_b.pth")
    with pytest.raises(InputError, match=r"--sam.checkpoint .*sam_vit_b.pth: not a readable checkpoint"):
        load_sam(SamConfig(model_type="vit_b", checkpoint=junk), torch.device("cpu"))


def test_a_random_bytes_clip_checkpoint_names_the_option(tmp_path: Path, tiny_clip_config: Path) -> None:
    junk = _junk(tmp_path / "clip.bin")
    cfg = ClipConfig(model_name="semdyn-tiny-clip", model_config=tiny_clip_config, pretrained=junk)
    with pytest.raises(InputError, match=r"--clip.pretrained .*clip.bin: not a readable checkpoint"):
        ClipEncoder(cfg, torch.device("cpu"))


def test_binary_text_files_are_named(tmp_path: Path) -> None:
    junk = _junk(tmp_path / "dictionary.yaml")
    with pytest.raises(DataFormatError, match="dictionary.yaml.*not a text file"):
        load_dictionary(junk)
    with pytest.raises(DataFormatError, match="calib.txt.*cannot be read"):
        read_text(tmp_path / "calib.txt")


def test_extraction_without_checkpoints_names_every_missing_one(tmp_path: Path) -> None:
    from semdyn.semantics.extract import ExtractConfig, check_checkpoints

    cfg = ExtractConfig(data=tmp_path, masks="sam")
    with pytest.raises(InputError, match=r"--sam.checkpoint \(not set.*and --clip.pretrained \(not set"):
        check_checkpoints(cfg)
    check_checkpoints(ExtractConfig(data=tmp_path, masks="sam", random_weights=True))  # explicit: allowed
