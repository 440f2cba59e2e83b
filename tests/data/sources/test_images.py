"""Image-only recordings through structure from motion: the errors a user meets, and KITTI odometry frames against
their ground-truth poses (ATE after a similarity alignment)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semdyn.data import read_sequence
from semdyn.data.sources import write_sequence
from semdyn.data.sources.alignment import trajectory_error
from semdyn.data.sources.images import ImagesOptions, load
from semdyn.data.sources.kitti_odometry import read_odometry_poses
from semdyn.errors import DataFormatError, InputError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pycolmap") is None, reason="pycolmap is not installed")
SHARED = Path(__file__).resolve().parents[3] / "../shared/data/kitti-odometry-06-frames-000-050/dataset"


def test_a_video_that_cannot_be_decoded_is_named(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataFormatError, match=r"clip.mp4: cannot be decoded as a video .*re-encode it"):
        load(ImagesOptions(data=clip))


def test_structure_from_motion_that_registers_too_few_frames_says_what_to_do(tmp_path: Path) -> None:
    import imageio.v3 as iio

    clip = tmp_path / "blank.mp4"
    frames = np.full((8, 48, 64, 3), 120, dtype=np.uint8)  # textureless: no features, nothing to register
    iio.imwrite(clip, frames, fps=10, codec="libx264")
    with pytest.raises(
        DataFormatError, match=r"blank.mp4: structure from motion registered 0 of 8 frames in 3 tries .*--every"
    ):
        load(ImagesOptions(data=clip, threads=1))


def test_folders_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="nowhere: the video or frame folder .* does not exist"):
        load(ImagesOptions(data=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="empty: holds no frames"):
        load(ImagesOptions(data=tmp_path / "empty"))
    with pytest.raises(InputError, match="--min-registered"):
        load(ImagesOptions(data=tmp_path / "empty", min_registered=0.0))
    with pytest.raises(InputError, match="--focal"):
        load(ImagesOptions(data=tmp_path / "empty", focal=-1.0))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared KITTI odometry sequence is absent (../shared/data)")
def test_kitti_frames_are_posed_within_one_percent_of_the_path(tmp_path: Path) -> None:
    options = ImagesOptions(
        data=SHARED / "sequences" / "06" / "image_0", output=tmp_path / "seq", frames=(0, 14), focal=707.0912
    )
    seq = read_sequence(write_sequence(load(options), options))
    frames = sorted(seq.frames, key=lambda f: f.time)
    assert len(frames) == 14 and seq.ply_path is not None
    np.testing.assert_allclose([f.time for f in frames], 0.1 * np.arange(14), atol=1e-9)
    assert np.asarray(Image.open(frames[0].image_path)).shape == (370, 1226, 3)
    truth = read_odometry_poses(SHARED / "poses" / "06.txt")[:14]
    error = trajectory_error(np.array([f.camera_to_world for f in frames]), truth, with_scale=True)
    assert error.path_length > 14.0 and error.percent_of_path < 1.0, error


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared KITTI odometry sequence is absent (../shared/data)")
def test_a_video_becomes_a_sequence_with_its_own_frame_times(tmp_path: Path) -> None:
    import imageio.v3 as iio

    paths = sorted((SHARED / "sequences" / "06" / "image_0").glob("*.png"))[:10]
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    clip = tmp_path / "drive.mp4"
    iio.imwrite(clip, frames, fps=5, codec="libx264", macro_block_size=1)
    options = ImagesOptions(data=clip, output=tmp_path / "seq", focal=707.0912)
    seq = read_sequence(write_sequence(load(options), options))  # the decoded frames outlive load()
    ordered = sorted(seq.frames, key=lambda f: f.time)
    assert len(ordered) == 10
    np.testing.assert_allclose([f.time for f in ordered], 0.2 * np.arange(10), atol=1e-6)  # the video's 5 fps
    truth = read_odometry_poses(SHARED / "poses" / "06.txt")[:10]
    error = trajectory_error(np.array([f.camera_to_world for f in ordered]), truth, with_scale=True)
    assert error.percent_of_path < 1.0, error
