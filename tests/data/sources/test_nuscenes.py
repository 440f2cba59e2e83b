"""nuScenes converter on a v1.0 dataroot written by the test (tests/data/sources/nuscenes_fixture.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nuscenes")

from semdyn.data import read_sequence  # noqa: E402
from semdyn.data.sources import write_sequence  # noqa: E402
from semdyn.data.sources.nuscenes import NuScenesOptions, load  # noqa: E402
from semdyn.errors import DataFormatError, InputError  # noqa: E402
from tests.data.sources import nuscenes_fixture as fx  # noqa: E402
from tests.data.sources.checks import HEIGHT, WIDTH, assert_points_on_pixels  # noqa: E402


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory: pytest.TempPathFactory) -> fx.NuScenesTruth:
    return fx.write_dataroot(tmp_path_factory.mktemp("nuscenes") / "nuscenes")


def convert(truth: fx.NuScenesTruth, output: Path, **kwargs: object) -> Path:
    options = NuScenesOptions(data=truth.root, version=fx.VERSION, output=output, **kwargs)
    return write_sequence(load(options), options)


def test_keyframes_poses_intrinsics_and_projection(dataroot: fx.NuScenesTruth, tmp_path: Path) -> None:
    root = convert(dataroot, tmp_path / "seq")
    seq = read_sequence(root)
    offset = np.array(seq.extra["source"]["world_offset"])
    assert set(seq.cameras) == set(fx.CAMERAS) and len(seq.frames) == 6 * fx.NUM_SAMPLES
    np.testing.assert_allclose(np.unique(seq.times_seconds), [0.0, 0.5, 1.0], atol=1e-9)
    for frame in seq.frames:
        number = list(fx.CAMERAS).index(frame.camera)
        stamp = fx.camera_stamp(number, round(frame.time / 0.25))
        expected = fx.CAMERA_TO_EGO[frame.camera].copy()
        expected = fx.ego_pose(stamp) @ expected @ np.diag([1.0, -1.0, -1.0, 1.0])
        expected[:3, 3] -= offset
        np.testing.assert_allclose(frame.camera_to_world, expected, atol=1e-6)
        k = frame.intrinsics
        assert (k.fx, k.cx, k.cy, k.width, k.height) == (fx.FOCAL, WIDTH / 2, HEIGHT / 2, WIDTH, HEIGHT)
    assert assert_points_on_pixels(root, dataroot.keyframe_dots) >= 5


def test_sweeps_use_capture_times_and_interpolate_tracks(dataroot: fx.NuScenesTruth, tmp_path: Path) -> None:
    root = convert(dataroot, tmp_path / "seq", sweeps=True)
    seq = read_sequence(root)
    assert len(seq.frames) == 6 * 5 and len(np.unique(seq.times_seconds)) == 30
    assert assert_points_on_pixels(root, dataroot.sweep_dots) >= 10
    offset = np.array(seq.extra["source"]["world_offset"])
    car = next(o for o in seq.objects if o.label == "vehicle.car")
    ped = next(o for o in seq.objects if o.label == "human.pedestrian.adult")
    assert car.dynamic and not ped.dynamic
    np.testing.assert_allclose(car.size, [4.5, 1.9, 1.6])  # nuScenes (w, l, h) -> (l, w, h)
    assert len(car.times) == 25 and ped.times[0] >= 0.5 - 1e-9  # covered span only: no extrapolation
    for time, pose in zip(car.times, car.object_to_world, strict=True):
        expected = fx.car_pose(fx.START + round(float(time) * 1e6))
        expected[:3, 3] -= offset
        np.testing.assert_allclose(pose, expected, atol=1e-6)


def test_errors_name_what_is_wrong(dataroot: fx.NuScenesTruth, tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="dataroot .* does not exist"):
        load(NuScenesOptions(data=tmp_path / "nowhere"))
    with pytest.raises(DataFormatError, match="v1.0-trainval is missing .*found v1.0-mini"):
        load(NuScenesOptions(data=dataroot.root, version="v1.0-trainval"))
    (dataroot.root / "v2.0").mkdir(exist_ok=True)
    with pytest.raises(DataFormatError, match="version v2.0 is not supported"):
        load(NuScenesOptions(data=dataroot.root, version="v2.0"))
    broken = fx.write_dataroot(tmp_path / "broken", skip_table="sample_annotation")
    with pytest.raises(
        DataFormatError, match="sample_annotation.json: the nuScenes table 'sample_annotation' is missing"
    ):
        load(NuScenesOptions(data=broken.root, version=fx.VERSION))
    with pytest.raises(InputError, match="--scene scene-9999"):
        load(NuScenesOptions(data=dataroot.root, version=fx.VERSION, scene="scene-9999"))
    with pytest.raises(InputError, match="no camera 'CAM_TOP'"):
        load(NuScenesOptions(data=dataroot.root, version=fx.VERSION, cameras=("CAM_TOP",)))
