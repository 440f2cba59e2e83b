"""KITTI odometry layout: a tiny sequence written here (keyed calib, times.txt) and the shared sequence 06 (bare-number
calib, no times, grey stereo pair) against its poses/06.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semdyn.data import read_sequence
from semdyn.data.sources import write_sequence
from semdyn.data.sources.kitti import KittiOptions, load
from semdyn.data.sources.kitti_odometry import Z_UP_FROM_CAMERA, read_odometry_poses
from semdyn.errors import DataFormatError, InputError

SHARED = Path(__file__).resolve().parents[3] / "../shared/data/kitti-odometry-06-frames-000-050/dataset"
GL = np.diag([1.0, -1.0, -1.0, 1.0])
K = np.array([[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]])


def _pose(i: int) -> np.ndarray:
    yaw = 0.05 * i  # camera 0 turns about its y (down) axis while driving forward along its z
    out = np.eye(4)
    out[:3, :3] = [[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]]
    out[:3, 3] = [0.1 * i, 0.01 * i, 1.5 * i]
    return out


def write_sequence_folder(root: Path, frames: int = 4, keyed: bool = True) -> Path:
    """dataset/sequences/03 with image_0/image_1 (grey), calib.txt, times.txt and dataset/poses/03.txt."""
    folder = root / "sequences" / "03"
    for camera in ("image_0", "image_1"):
        (folder / camera).mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(np.full((48, 64), 40 * i, dtype=np.uint8)).save(folder / camera / f"{i:06d}.png")
    p0 = np.concatenate([K, np.zeros((3, 1))], axis=1)
    p1 = np.concatenate([K, (K @ [-0.54, 0.0, 0.0])[:, None]], axis=1)
    matrices = {"P0": p0, "P1": p1, "P2": p0, "P3": p1}
    if keyed:
        text = "\n".join(f"{k}: " + " ".join(f"{v:.9e}" for v in m.ravel()) for k, m in matrices.items())
    else:
        text = " ".join(f"{v:.9e}" for m in matrices.values() for v in m.ravel())
    (folder / "calib.txt").write_text(text + "\n")
    (folder / "times.txt").write_text("\n".join(f"{0.5 + 0.103 * i:.6e}" for i in range(frames)) + "\n")
    (root / "poses").mkdir()
    lines = [" ".join(f"{v:.9e}" for v in _pose(i)[:3].ravel()) for i in range(frames)]
    (root / "poses" / "03.txt").write_text("\n".join(lines) + "\n")
    return root


def test_a_stereo_sequence_becomes_two_rgb_cameras_on_its_poses(tmp_path: Path) -> None:
    root = write_sequence_folder(tmp_path / "dataset")
    options = KittiOptions(data=root, output=tmp_path / "seq")
    seq = read_sequence(write_sequence(load(options), options))
    assert seq.cameras == ("image_0", "image_1") and len(seq.frames) == 8
    np.testing.assert_allclose(np.unique(seq.times_seconds), 0.103 * np.arange(4), atol=1e-6)  # from times.txt
    image = np.asarray(Image.open(seq.frames[0].image_path))
    assert image.shape == (48, 64, 3)
    by_camera = {c: sorted((f for f in seq.frames if f.camera == c), key=lambda f: f.time) for c in seq.cameras}
    first = by_camera["image_0"][0].camera_to_world
    for i in range(4):
        left = by_camera["image_0"][i].camera_to_world
        right = by_camera["image_1"][i].camera_to_world
        np.testing.assert_allclose(np.linalg.inv(first) @ left, GL @ _pose(i) @ GL, atol=1e-6)
        offset = np.linalg.inv(left) @ right  # the right camera 0.54 m along the left one's x (right)
        np.testing.assert_allclose(offset[:3, 3], [0.54, 0.0, 0.0], atol=1e-6)
        assert right[2, 1] == pytest.approx(1.0, abs=0.01)  # world z up: the camera's +y (OpenGL up) is up
    assert by_camera["image_0"][0].intrinsics.fx == 50.0


def test_bare_number_calib_and_errors(tmp_path: Path) -> None:
    root = write_sequence_folder(tmp_path / "a", keyed=False)
    scene = load(KittiOptions(data=root / "sequences" / "03", cameras=("image_1",)))
    assert {f.camera for f in scene.frames} == {"image_1"}
    (root / "sequences" / "03" / "calib.txt").write_text("1 2 3\n")
    with pytest.raises(DataFormatError, match="calib.txt: holds 3 numbers, not 12 per matrix"):
        load(KittiOptions(data=root))
    root = write_sequence_folder(tmp_path / "b")
    (root / "poses" / "03.txt").write_text("1 0 0 0 1 0\n")
    with pytest.raises(DataFormatError, match=r"03.txt: line 1 is not a pose \(12 numbers"):
        load(KittiOptions(data=root))
    (root / "poses" / "03.txt").unlink()
    with pytest.raises(DataFormatError, match="poses are missing and the sequence has no velodyne/ scans"):
        load(KittiOptions(data=root))
    with pytest.raises(InputError, match="--cameras: KITTI odometry sequence 03 has no camera 'image_2'"):
        load(KittiOptions(data=root, cameras=("image_2",)))
    with pytest.raises(DataFormatError, match="sequences/07: the --sequence folder does not exist"):
        load(KittiOptions(data=root, sequence="07"))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared KITTI odometry sequence is absent (../shared/data)")
def test_the_shared_odometry_sequence_matches_its_poses(tmp_path: Path) -> None:
    options = KittiOptions(data=SHARED, sequence="06", output=tmp_path / "seq", frames=(0, 20), downscale=4.0)
    seq = read_sequence(write_sequence(load(options), options))
    assert seq.cameras == ("image_0", "image_1") and len(seq.frames) == 40
    assert np.asarray(Image.open(seq.frames[0].image_path)).shape == (92, 306, 3)  # 1226x370 grey, /4, as RGB
    np.testing.assert_allclose(np.unique(seq.times_seconds), 0.1 * np.arange(20), atol=1e-6)
    truth = read_odometry_poses(SHARED / "poses" / "06.txt")[:20]
    truth = Z_UP_FROM_CAMERA @ np.linalg.inv(truth[0]) @ truth
    left = sorted((f for f in seq.frames if f.camera == "image_0"), key=lambda f: f.time)
    right = sorted((f for f in seq.frames if f.camera == "image_1"), key=lambda f: f.time)
    centres = np.array([f.camera_to_world[:3, 3] for f in left])
    np.testing.assert_allclose(centres - centres[0], truth[:, :3, 3], atol=1e-4)
    assert np.linalg.norm(centres[-1] - centres[0]) > 20.0  # ~1.2 m per frame down the street
    baselines = [np.linalg.norm(r.camera_to_world[:3, 3] - l.camera_to_world[:3, 3]) for l, r in zip(left, right)]
    np.testing.assert_allclose(baselines, 0.537, atol=0.002)  # P1's 379.81 / 707.09 = 0.537 m


def test_without_poses_the_velodyne_gives_them(tmp_path: Path) -> None:
    from tests.data.sources import box_world

    root = write_sequence_folder(tmp_path / "dataset")
    (root / "poses" / "03.txt").unlink()
    folder = root / "sequences" / "03"
    velo_to_cam0 = np.array([[0.0, -1.0, 0.0, 0.05], [0.0, 0.0, -1.0, -0.1], [1.0, 0.0, 0.0, -0.3], [0, 0, 0, 1.0]])
    with (folder / "calib.txt").open("a") as calib:
        calib.write("Tr: " + " ".join(f"{v:.9e}" for v in velo_to_cam0[:3].ravel()) + "\n")
    world, rng = box_world.world_points(), np.random.default_rng(1)
    (folder / "velodyne").mkdir()
    for i in range(4):  # the Velodyne at camera 0's pose i (through Tr)
        world_from_velo = _pose_z_up(i) @ velo_to_cam0
        points = box_world.scan(world, world_from_velo, rng)
        cloud = np.concatenate([points, np.zeros((len(points), 1))], axis=1).astype(np.float32)
        (folder / "velodyne" / f"{i:06d}.bin").write_bytes(cloud.tobytes())
    options = KittiOptions(data=root, output=tmp_path / "seq", lidar_stride=10)
    seq = read_sequence(write_sequence(load(options), options))
    assert seq.extra["source"]["poses"].startswith("LiDAR odometry")
    left = sorted((f for f in seq.frames if f.camera == "image_0"), key=lambda f: f.time)
    first = np.linalg.inv(left[0].camera_to_world)
    for i, frame in enumerate(left):
        np.testing.assert_allclose(first @ frame.camera_to_world, GL @ _pose(i) @ GL, atol=0.05)


def _pose_z_up(i: int) -> np.ndarray:
    """Camera 0's pose i in a z-up world (the box world's ground is z = -1.8)."""
    return Z_UP_FROM_CAMERA @ _pose(i)
