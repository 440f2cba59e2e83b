"""The video step copes with real logs (a camera missing a frame, two images at one camera and time) and leaves
no temporary file, even when writing fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v2 as imageio
import pytest

from semdyn.data.scene_data import load_scene
from semdyn.train import evaluate as evaluate_module
from semdyn.train.evaluate import render_video
from semdyn.train.trainer import Trainer
from tests.train.test_trainer import _config


def _ragged_copy(tiny_scene: Path, out: Path) -> Path:
    """The tiny street with front_left's frame 2 dropped and a second front image at frame 3's time."""
    shutil.copytree(tiny_scene, out)
    meta = json.loads((out / "transforms.json").read_text())
    split = json.loads((out / "split.json").read_text())
    dropped = "images/front_left/00002.png"
    meta["frames"] = [f for f in meta["frames"] if f["file_path"] != dropped]
    twin = dict(next(f for f in meta["frames"] if f["file_path"] == "images/front/00003.png"))
    twin["file_path"] = "images/front/00003b.png"
    shutil.copy(out / "images/front/00003.png", out / twin["file_path"])
    meta["frames"].append(twin)
    split = {k: [p for p in v if p != dropped] for k, v in split.items()}
    split["train"].append(twin["file_path"])
    (out / "transforms.json").write_text(json.dumps(meta))
    (out / "split.json").write_text(json.dumps(split))
    return out


def test_video_of_a_ragged_rig_has_one_frame_size(tiny_scene: Path, tmp_path: Path) -> None:
    """Before: ``ValueError: All images in a movie should have same size`` after training, no metrics.json, and
    ``renders/.video.tmp.mp4`` left behind."""
    scene = _ragged_copy(tiny_scene, tmp_path / "ragged")
    data = load_scene(scene, 2)
    model = Trainer(_config(scene, tmp_path, 1), data).model
    path = render_video(model, data, "cpu", tmp_path / "v.mp4")
    frames = imageio.mimread(path)
    assert len(frames) == 6 and {f.shape for f in frames} == {(2 * data.height, 2 * data.width, 3)}
    assert list(tmp_path.glob(".*tmp*")) == []


def test_a_failed_video_write_leaves_no_temporary_file(
    tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_scene(tiny_scene, 2)
    model = Trainer(_config(tiny_scene, tmp_path, 1), data).model

    class Broken:  # the encoder dies after the first frame, as on a full disk
        def __init__(self, path, **kw):
            self.path = Path(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def append_data(self, frame):
            self.path.write_bytes(b"half a video")
            raise OSError("disk full")

    monkeypatch.setattr(evaluate_module.imageio, "get_writer", Broken)
    with pytest.raises(OSError, match="disk full"):
        render_video(model, data, "cpu", tmp_path / "renders" / "video.mp4")
    assert list((tmp_path / "renders").iterdir()) == []
