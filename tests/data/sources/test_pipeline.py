"""A converted sequence trains: read_sequence, the core trainer's load_scene, the nerfstudio dataparser, the CLI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from semdyn.data.scene_data import load_scene
from semdyn.data.sources import write_sequence
from semdyn.data.sources.kitti import KittiOptions, load
from tests.data.sources import kitti_fixture as fx

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def kitti_sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    truth = fx.write_drive(tmp_path_factory.mktemp("kitti"))
    options = KittiOptions(data=truth.drive, output=truth.drive.parent.parent / "seq")
    return write_sequence(load(options), options)


def test_core_trainer_loads_it(kitti_sequence: Path) -> None:
    scene = load_scene(kitti_sequence)
    assert scene.images.shape == (6, 48, 64, 3)
    assert scene.points is not None and scene.point_times is not None
    assert scene.sparse_depth is not None and len(scene.sparse_depth.depths) >= 8  # the fixture's dots at least
    assert scene.instance_masks is not None and scene.dynamic_ids == [1]
    assert any((scene.mask(i) == 1).any() for i in range(scene.num_frames))


def test_nerfstudio_dataparser_reads_it(kitti_sequence: Path) -> None:
    pytest.importorskip("nerfstudio")
    from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig

    outputs = SemdynDataParserConfig(data=kitti_sequence).setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 4  # timestamp 0 of 3 is held out (every 8th), both cameras
    assert outputs.metadata["points3D_xyz"].shape[1] == 3 and "points3D_time" in outputs.metadata
    assert outputs.cameras.times is not None and float(outputs.cameras.times.max()) == pytest.approx(1.0)


@pytest.mark.parametrize("dataset", ["waymo", "nuscenes"])
def test_core_trainer_loads_the_other_datasets(dataset: str, tmp_path: Path) -> None:
    if dataset == "waymo":
        pytest.importorskip("pyarrow")
        from semdyn.data.sources import waymo as source
        from tests.data.sources import waymo_fixture

        waymo_fixture.write_segment(tmp_path / "raw")
        options = source.WaymoOptions(data=tmp_path / "raw", output=tmp_path / "seq", downscale=2.0)
    else:
        pytest.importorskip("nuscenes")
        from semdyn.data.sources import nuscenes as source
        from tests.data.sources import nuscenes_fixture

        nuscenes_fixture.write_dataroot(tmp_path / "raw")
        options = source.NuScenesOptions(
            data=tmp_path / "raw", version="v1.0-mini", output=tmp_path / "seq", downscale=2.0
        )
    scene = load_scene(write_sequence(source.load(options), options))
    assert scene.images.shape[1:] == (24, 32, 3) and len(scene.images) in (15, 18)
    assert scene.sparse_depth is not None and (scene.sparse_depth.depths > 0).any()
    assert scene.instance_masks is not None and len(scene.dynamic_ids) == 1


def _cli() -> object:
    spec = importlib.util.spec_from_file_location("convert_cli", ROOT / "scripts" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_cli_converts_and_reports_errors_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = _cli()
    truth = fx.write_drive(tmp_path / "raw")
    out = tmp_path / "seq"
    monkeypatch.setattr(sys, "argv", ["convert.py", "kitti", "--data", str(truth.drive), "--output", str(out)])
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--cameras", "image_02", "--frames", "0", "2", "--no-objects"])
    cli.entrypoint()
    assert "wrote" in capsys.readouterr().out
    images = sorted(p.name for p in (out / "images" / "image_02").iterdir())
    assert images == ["00000.png", "00001.png"] and not (out / "images" / "image_03").exists()
    monkeypatch.setattr(sys, "argv", ["convert.py", "nuscenes", "--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as exit_info:
        cli.entrypoint()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nuScenes dataroot (--data) does not exist" in err and "Traceback" not in err
