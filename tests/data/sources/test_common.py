"""The shared writer's pieces: undistortion, box masks, track interpolation, option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from semdyn.data.sources.common import (
    BoxTrack,
    CameraFrame,
    CameraModel,
    ConvertOptions,
    SourceScene,
    box_outline,
    interpolate_poses,
    undistort_image,
    write_sequence,
)
from semdyn.errors import InputError

CAMERA = CameraModel(
    fx=50.0, fy=52.0, cx=40.5, cy=29.0, width=80, height=60, k1=-0.2, k2=0.05, k3=0.01, p1=0.003, p2=-0.002
)


def test_undistortion_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 255, (CAMERA.height, CAMERA.width, 3))).astype(np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 1.5)  # smooth, so that both bilinear samplers agree closely
    k = CAMERA.matrix()
    dist = np.array([CAMERA.k1, CAMERA.k2, CAMERA.p1, CAMERA.p2, CAMERA.k3])
    map_x, map_y = cv2.initUndistortRectifyMap(k, dist, None, k, (CAMERA.width, CAMERA.height), cv2.CV_32FC1)
    expected = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ours = undistort_image(image, CAMERA)
    interior = (slice(6, -6), slice(6, -6))
    assert np.abs(ours[interior].astype(int) - expected[interior].astype(int)).max() <= 2


def test_box_straddling_the_near_plane_is_clipped_not_dropped() -> None:
    camera = CameraModel(50.0, 50.0, 40.0, 30.0, 80, 60)
    c2w = np.eye(4)  # OpenCV camera at the origin looking along +z
    box = np.eye(4)
    box[:3, 3] = [0.0, 0.0, 1.0]  # 4 m long along x: reaches from z = -1 to z = 3 once turned
    box[:3, :3] = Rotation.from_euler("y", -90, degrees=True).as_matrix()
    polygon, nearest = box_outline(box, np.array([4.0, 1.0, 1.0]), c2w, camera)
    assert nearest == pytest.approx(0.05)
    assert polygon[:, 0].min() < -100 and polygon[:, 0].max() > 180  # near the lens it covers the whole width
    behind = box.copy()
    behind[:3, 3] = [0.0, 0.0, -5.0]
    assert box_outline(behind, np.array([4.0, 1.0, 1.0]), c2w, camera) is None


def test_interpolation_is_linear_and_slerp_inside_the_track_only() -> None:
    times = np.array([0.0, 1.0])
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    poses[1, :3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    poses[1, :3, 3] = [2.0, 0.0, 0.0]
    inside, out = interpolate_poses(times, poses, np.array([-0.5, 0.25, 1.0, 1.5]))
    assert inside.tolist() == [False, True, True, False]
    np.testing.assert_allclose(out[0, :3, 3], [0.5, 0.0, 0.0])
    np.testing.assert_allclose(
        Rotation.from_matrix(out[0, :3, :3]).as_euler("xyz", degrees=True), [0, 0, 22.5], atol=1e-9
    )


def test_masks_put_the_nearest_box_in_front(tmp_path: Path) -> None:
    camera = CameraModel(30.0, 30.0, 16.0, 12.0, 32, 24)
    c2w = np.eye(4)

    def box(depth: float) -> np.ndarray:
        pose = np.eye(4)
        pose[:3, 3] = [0.0, 0.0, depth]
        return pose

    tracks = [
        BoxTrack("far", "car", np.array([8.0, 8.0, 8.0]), np.array([0.0]), box(20.0)[None]),
        BoxTrack("near", "car", np.array([1.0, 1.0, 1.0]), np.array([0.0]), box(5.0)[None]),
    ]
    frame = CameraFrame("cam", 0.0, c2w, camera, lambda: np.zeros((24, 32, 3), dtype=np.uint8))
    options = ConvertOptions(output=tmp_path / "seq", lidar=False)
    root = write_sequence(SourceScene("test", [frame], tracks=tracks), options)
    from semdyn.data.images import load_instance_mask

    mask = load_instance_mask(root / "masks" / "cam" / "00000.png")
    assert mask[12, 16] == 2 and mask[12, 10] == 1 and mask[0, 0] == 0
    assert (mask == 2).sum() == pytest.approx(6.67**2, abs=12)  # front face 1 m at 4.5 m, f = 30: 6.7 px square
    with pytest.raises(InputError, match="already exists"):
        write_sequence(SourceScene("test", [frame], tracks=tracks), options)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": (3, 2)}, "--frames"),
        ({"downscale": 0.5}, "--downscale"),
        ({"lidar_stride": 0}, "--lidar-stride"),
        ({"cameras": ()}, "--cameras"),
    ],
)
def test_bad_options_name_the_option(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ConvertOptions(**kwargs).validate()


def test_a_missing_dataset_library_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from semdyn.data.sources.waymo import WaymoOptions, load

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import now raises ImportError
    with pytest.raises(InputError, match=r"needs pyarrow, which is not installed: pip install 'semdyn\[convert\]'"):
        load(WaymoOptions(data=tmp_path))


def test_importing_the_converters_imports_no_dataset_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, semdyn.data.sources.waymo, semdyn.data.sources.nuscenes, semdyn.data.sources.kitti; "
        "print(sorted(m for m in ('pyarrow', 'nuscenes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_image_of_the_wrong_size_names_its_file(tmp_path: Path) -> None:
    from semdyn.errors import DataFormatError

    camera = CameraModel(30.0, 30.0, 16.0, 12.0, 32, 24)
    source = tmp_path / "raw" / "cam" / "000.png"
    frame = CameraFrame("cam", 0.0, np.eye(4), camera, lambda: np.zeros((20, 32, 3), np.uint8), image_source=source)
    with pytest.raises(DataFormatError, match=r"000.png: the cam image .* has shape \(20, 32, 3\), .* \[24, 32, 3\]"):
        write_sequence(SourceScene("test", [frame]), ConvertOptions(output=tmp_path / "seq", lidar=False))
    assert not (tmp_path / "seq").exists() and not list(tmp_path.glob(".seq.tmp-*"))  # nothing half-written left
