"""KITTI raw converter on a drive written by the test (tests/data/sources/kitti_fixture.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from semdyn.data import read_sequence
from semdyn.data.images import load_instance_mask
from semdyn.data.sources import write_sequence
from semdyn.data.sources.kitti import KittiOptions, load
from semdyn.errors import DataFormatError, InputError
from tests.data.sources import kitti_fixture as fx
from tests.data.sources.checks import assert_points_on_pixels


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[fx.KittiTruth, Path]:
    truth = fx.write_drive(tmp_path_factory.mktemp("kitti"))
    options = KittiOptions(data=truth.drive, output=truth.drive.parent.parent / "seq")
    return truth, write_sequence(load(options), options)


def check_poses(root: Path, step: float) -> None:
    """Converted camera poses against the devkit's projection matrices and oxts poses (frames every `step` s)."""
    seq = read_sequence(root)
    offset = np.array(seq.extra["source"]["world_offset"])
    assert seq.cameras == ("image_02", "image_03") and len(seq.frames) == 2 * fx.NUM_FRAMES
    np.testing.assert_allclose(np.unique(seq.times_seconds), step * np.arange(fx.NUM_FRAMES), atol=1e-6)
    rect = np.eye(4)
    rect[:3, :3] = fx.R_RECT
    for frame in seq.frames:
        i = round(frame.time / step)
        projection = fx.p_rect(frame.camera[-2:]) @ rect @ fx.VELO_TO_CAM  # [3, 4], velo -> pixels
        centre_velo = np.linalg.svd(projection)[2][-1]
        centre_world = (fx.world_from_velo(i) @ (centre_velo / centre_velo[3]))[:3] - offset
        np.testing.assert_allclose(frame.camera_to_world[:3, 3], centre_world, atol=1e-6)
        forward_velo = np.linalg.solve(fx.K, projection[:, :3])[2]
        forward_world = fx.world_from_velo(i)[:3, :3] @ forward_velo
        forward_world /= np.linalg.norm(forward_world)
        np.testing.assert_allclose(-frame.camera_to_world[:3, 2], forward_world, atol=1e-6)
        yaw = fx.oxts_packet(i)[5]  # world x east, z up: the cameras look along the heading, level
        assert np.dot(forward_world, [np.cos(yaw), np.sin(yaw), 0.0]) > 0.99
        assert (frame.intrinsics.fx, frame.intrinsics.cx) == (fx.FOCAL, fx.K[0, 2])
        assert (frame.intrinsics.width, frame.intrinsics.height) == (64, 48)


def check_car(root: Path, step: float, atol: float) -> None:
    """The one car: size, world centre and heading against its Velodyne-frame truth; its mask under its centre."""
    seq = read_sequence(root)
    offset = np.array(seq.extra["source"]["world_offset"])
    (car,) = seq.objects
    assert car.label == "Car" and car.dynamic
    np.testing.assert_allclose(car.size, fx.CAR_SIZE)
    for i, pose in enumerate(car.object_to_world):
        bottom, yaw = fx.car_in_velo(i)
        centre_velo = bottom + [0.0, 0.0, fx.CAR_SIZE[2] / 2]
        expected = (fx.world_from_velo(i) @ np.append(centre_velo, 1))[:3] - offset
        np.testing.assert_allclose(pose[:3, 3], expected, atol=atol)
        heading = fx.world_from_velo(i)[:3, :3] @ [np.cos(yaw), np.sin(yaw), 0.0]
        assert np.dot(pose[:3, 0], heading) > 0.999 and pose[2, 2] > 0.999  # x along the length, z up
        frame = next(f for f in seq.frames if f.camera == "image_02" and abs(f.time - i * step) < 1e-6)
        u, v, _ = fx.project("02", centre_velo)
        assert load_instance_mask(frame.mask_path)[int(v), int(u)] == car.id


def test_camera_poses_match_the_devkit(converted: tuple[fx.KittiTruth, Path]) -> None:
    check_poses(converted[1], fx.FRAME_STEP)


def test_velodyne_points_land_on_the_pixels_the_fixture_put_them_on(converted: tuple[fx.KittiTruth, Path]) -> None:
    truth, root = converted
    assert assert_points_on_pixels(root, truth.dots) >= 8
    assert {d.camera for d in truth.dots} == {"image_02", "image_03"}


def test_tracklets_become_a_track_and_masks(converted: tuple[fx.KittiTruth, Path]) -> None:
    check_car(converted[1], fx.FRAME_STEP, atol=1e-6)


def test_tracking_sequence(tmp_path: Path) -> None:
    truth = fx.write_tracking(tmp_path / "tracking" / "training")
    options = KittiOptions(data=truth.drive, output=tmp_path / "seq")
    root = write_sequence(load(options), options)
    check_poses(root, 0.1)
    assert assert_points_on_pixels(root, truth.dots) >= 8
    check_car(root, 0.1, atol=0.02)  # labels are in the camera frame, whose y is tilted ~0.01 rad off Velodyne z
    with pytest.raises(DataFormatError, match="0009.txt: the calibration of --sequence is missing"):
        load(KittiOptions(data=truth.drive, sequence="0009"))
    with pytest.raises(DataFormatError, match="tracking root; pass its training/"):
        load(KittiOptions(data=tmp_path / "tracking"))


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="drive folder .* does not exist"):
        load(KittiOptions(data=tmp_path / "nowhere"))
    truth = fx.write_drive(tmp_path / "a", skip=("calib_velo_to_cam.txt",))
    with pytest.raises(DataFormatError, match="calib_velo_to_cam.txt: the KITTI calibration file is missing"):
        load(KittiOptions(data=truth.drive))
    truth = fx.write_drive(tmp_path / "b", skip=("tracklet_labels.xml", "velodyne_points"))
    with pytest.raises(DataFormatError, match="velodyne_points/data: the Velodyne scans are missing"):
        load(KittiOptions(data=truth.drive))
    with pytest.raises(DataFormatError, match="tracklet_labels.xml: the tracklets file is missing .*--no-objects"):
        load(KittiOptions(data=truth.drive, lidar=False))
    assert load(KittiOptions(data=truth.drive, lidar=False, objects=False)).tracks == []
    shutil.copytree(truth.drive, truth.drive.parent / "2011_09_26_drive_0001_extract")
    with pytest.raises(DataFormatError, match="unsynced"):
        load(KittiOptions(data=truth.drive.parent / "2011_09_26_drive_0001_extract"))
    with pytest.raises(InputError, match="no camera 'image_04'"):
        load(KittiOptions(data=truth.drive, cameras=("image_04",)))
    with pytest.raises(InputError, match="--frames 5 9 starts past"):
        load(KittiOptions(data=truth.drive, frames=(5, 9)))
