"""Waymo v2 converter on a parquet segment written by the test (tests/data/sources/waymo_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from semdyn.data import read_sequence  # noqa: E402
from semdyn.data.images import load_instance_mask  # noqa: E402
from semdyn.data.sources import write_sequence  # noqa: E402
from semdyn.data.sources.waymo import WaymoOptions, load  # noqa: E402
from semdyn.errors import DataFormatError, InputError  # noqa: E402
from tests.data.sources import waymo_fixture as fx  # noqa: E402
from tests.data.sources.checks import HEIGHT, WIDTH, assert_points_on_pixels  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[fx.WaymoTruth, Path]:
    root = tmp_path_factory.mktemp("waymo")
    truth = fx.write_segment(root / "training")
    options = WaymoOptions(data=root / "training", output=root / "seq")
    return truth, write_sequence(load(options), options)


def test_camera_poses_and_intrinsics_match_the_truth(converted: tuple[fx.WaymoTruth, Path]) -> None:
    truth, root = converted
    seq = read_sequence(root)
    offset = np.array(json.loads((root / "transforms.json").read_text())["source"]["world_offset"])
    assert seq.cameras == ("FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT")
    assert len(seq.frames) == 15
    np.testing.assert_allclose(np.unique(seq.times_seconds), [0.0, 0.1, 0.2], atol=1e-9)
    for frame in seq.frames:
        waymo = truth.camera_to_world[(frame.camera, round(frame.time * 10))]
        # nerfstudio camera axes in Waymo camera axes: right = -y, up = +z, back = -x
        expected = np.eye(4)
        expected[:3, 0], expected[:3, 1], expected[:3, 2] = -waymo[:3, 1], waymo[:3, 2], -waymo[:3, 0]
        expected[:3, 3] = waymo[:3, 3] - offset
        np.testing.assert_allclose(frame.camera_to_world, expected, atol=1e-9)
        k = frame.intrinsics
        assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (fx.FOCAL, fx.FOCAL, WIDTH / 2, HEIGHT / 2, WIDTH, HEIGHT)


def test_lidar_points_land_on_the_pixels_the_fixture_put_them_on(converted: tuple[fx.WaymoTruth, Path]) -> None:
    truth, root = converted
    assert assert_points_on_pixels(root, truth.dots) >= 5
    assert {d.camera for d in truth.dots} >= {"FRONT", "FRONT_LEFT"}


def test_boxes_become_tracks_and_masks(converted: tuple[fx.WaymoTruth, Path]) -> None:
    truth, root = converted
    seq = read_sequence(root)
    offset = np.array(seq.extra["source"]["world_offset"])
    moving, parked = sorted(seq.objects, key=lambda o: not o.dynamic)
    assert moving.dynamic and not parked.dynamic and moving.label == "vehicle"
    np.testing.assert_allclose(moving.size, [4.0, 1.8, 1.6])
    np.testing.assert_allclose(moving.times, [0.0, 0.1, 0.2], atol=1e-9)
    for k, pose in enumerate(moving.object_to_world):
        expected = truth.box_world[k].copy()
        expected[:3, 3] -= offset
        np.testing.assert_allclose(pose, expected, atol=1e-9)
    front = next(f for f in seq.frames if f.camera == "FRONT" and f.time == 0.0)
    mask = load_instance_mask(front.mask_path)
    centre = (
        np.linalg.inv(front.camera_to_world @ np.diag([1.0, -1.0, -1.0, 1.0])) @ moving.object_to_world[0][:, 3].numpy()
    )
    u, v = fx.FOCAL * centre[0] / centre[2] + WIDTH / 2, fx.FOCAL * centre[1] / centre[2] + HEIGHT / 2
    assert mask[int(v), int(u)] == moving.id
    assert mask[0, 0] == 0 and 0.02 < (mask == moving.id).mean() < 0.5


def test_rolling_shutter_metadata_is_kept(converted: tuple[fx.WaymoTruth, Path]) -> None:
    _, root = converted
    frame = json.loads((root / "transforms.json").read_text())["frames"][0]
    assert frame["rolling_shutter"]["direction"] == 2 and frame["rolling_shutter"]["shutter"] == 0.005


def test_frame_range_camera_subset_and_downscale(tmp_path: Path) -> None:
    fx.write_segment(tmp_path / "training")
    options = WaymoOptions(
        data=tmp_path / "training", output=tmp_path / "seq", frames=(1, 3), cameras=("FRONT",), downscale=2.0
    )
    seq = read_sequence(write_sequence(load(options), options))
    assert seq.cameras == ("FRONT",) and len(seq.frames) == 2
    k = seq.frames[0].intrinsics
    assert (k.width, k.height, k.fx, k.cx) == (WIDTH // 2, HEIGHT // 2, fx.FOCAL / 2, WIDTH / 4)
    assert seq.extra["source"]["time_origin_micros"] == fx.START_MICROS + 100_000


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="does not exist"):
        load(WaymoOptions(data=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="camera_image/ is missing"):
        load(WaymoOptions(data=tmp_path / "empty"))
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "segment-1.tfrecord").write_bytes(b"")
    with pytest.raises(DataFormatError, match="TFRecord"):
        load(WaymoOptions(data=tmp_path / "v1"))
    fx.write_segment(tmp_path / "no_lidar", skip=("lidar",))
    with pytest.raises(DataFormatError, match="component 'lidar' .* is missing .*--no-lidar"):
        load(WaymoOptions(data=tmp_path / "no_lidar"))
    assert load(WaymoOptions(data=tmp_path / "no_lidar", lidar=False)).sweeps == []
    fx.write_segment(tmp_path / "old", drop_column=("camera_calibration", "[CameraCalibrationComponent].intrinsic.f_u"))
    with pytest.raises(DataFormatError, match=r"intrinsic\.f_u.*unsupported version"):
        load(WaymoOptions(data=tmp_path / "old"))
    with pytest.raises(InputError, match="no camera 'BACK'"):
        load(WaymoOptions(data=tmp_path / "no_lidar", lidar=False, cameras=("BACK",)))
