"""Camera paths and render options that cannot make an image are refused in one sentence (they rendered flat grey
frames with exit 0, or ended in a numpy traceback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from semdyn.data.scene_data import load_scene
from semdyn.errors import DataFormatError, InputError
from semdyn.paths import read_camera_path_json, write_camera_path_json
from semdyn.paths.build import PathOptions, build_path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import render as render_script  # noqa: E402


@pytest.fixture(scope="module")
def data(tiny_scene: Path):
    return load_scene(tiny_scene, 2)


def _edited(tmp_path: Path, data, edit) -> Path:
    write_camera_path_json(tmp_path / "p.json", build_path("dataset", data, PathOptions()), fps=5.0)
    raw = json.loads((tmp_path / "p.json").read_text())
    edit(raw)
    (tmp_path / "e.json").write_text(json.dumps(raw))
    return tmp_path / "e.json"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: r["camera_path"][1].update(camera_to_world=[float("nan")] * 16),
            r"camera_path\[1\].camera_to_world",
        ),
        (lambda r: r["camera_path"][0].update(fov=0), r"camera_path\[0\].fov 0.0"),
        (lambda r: r["camera_path"][0].update(fov=180), r"camera_path\[0\].fov 180.0"),
        (lambda r: r["camera_path"][1].update(render_time=float("nan")), r"camera_path\[1\].render_time nan"),
        (lambda r: r.update(render_width=0), "render_width x render_height 0x"),
        (
            lambda r: r["camera_path"][0].update(camera_to_world=[2.0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]),
            "the rotation part is not a rotation",
        ),  # fmt: skip
    ],
)
def test_bad_camera_path_files_name_the_field(tmp_path: Path, data, edit, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        read_camera_path_json(_edited(tmp_path, data, edit))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PathOptions(num_frames=-3), "--num-frames -3"),  # was a numpy traceback
        (PathOptions(num_frames=0), "--num-frames 0"),
        (PathOptions(offset=float("nan")), "--offset nan"),  # was flat grey frames, exit 0
        (PathOptions(time=float("inf")), "--time inf"),
        (PathOptions(orbit_distance=0.0), "--orbit-distance 0.0"),
    ],
)
def test_bad_path_options_name_the_flag(data, options: PathOptions, message: str) -> None:
    for kind in ("interpolate", "lane-shift", "frozen"):
        with pytest.raises(InputError, match=message):
            build_path(kind, data, options)


def test_render_names_its_own_checkpoint_option(tmp_path: Path) -> None:
    """Before: ``--load-dir /nonexistent: no checkpoint ...``, an option render.py does not have."""
    config = render_script.RenderConfig(trajectory="dataset", checkpoint=tmp_path / "nonexistent")
    with pytest.raises(InputError, match=r"^--checkpoint .*nonexistent: no such checkpoint file or run folder"):
        render_script.main(config)
