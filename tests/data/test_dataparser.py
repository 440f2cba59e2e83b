"""Tests of the nerfstudio adapter: entry point, DataparserOutputs, and splatfacto's datamanager on the CPU."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semdyn.data import read_points, read_sequence
from semdyn.errors import DataFormatError
from tests.data.sequence_writer import HEIGHT, WIDTH, mutate_json, write_json, write_sequence

pytest.importorskip("nerfstudio")
pytestmark = pytest.mark.nerfstudio

from nerfstudio.data.dataparsers.base_dataparser import transform_poses_to_original_space  # noqa: E402

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig, semdyn_dataparser  # noqa: E402


def test_entry_point_resolves() -> None:
    from nerfstudio.plugins.registry_dataparser import discover_dataparsers

    configs, descriptions = discover_dataparsers()
    assert isinstance(configs["semdyn-data"], SemdynDataParserConfig)
    assert descriptions["semdyn-data"] == semdyn_dataparser.description


def test_outputs_of_each_split(tiny_sequence: Path) -> None:
    parser = SemdynDataParserConfig(data=tiny_sequence).setup()
    train = parser.get_dataparser_outputs("train")
    test = parser.get_dataparser_outputs("test")
    assert parser.includes_time
    assert len(train.image_filenames) == 6 and len(test.image_filenames) == 2
    assert parser.get_dataparser_outputs("val").image_filenames == test.image_filenames
    np.testing.assert_allclose(train.cameras.times.squeeze(-1), np.repeat([1 / 3, 2 / 3, 1.0], 2), atol=1e-6)
    np.testing.assert_allclose(test.cameras.times.squeeze(-1), [0.0, 0.0])
    meta = train.metadata
    np.testing.assert_allclose(meta["times_seconds"], np.repeat([0.1, 0.2, 0.3], 2))
    assert meta["time_range_seconds"] == (0.0, 0.3) and meta["duration_seconds"] == pytest.approx(0.3)
    assert meta["camera_names"] == ["front", "left"] * 3 and meta["sensor_names"] == ["front", "left"]
    assert meta["sensor_indices"].tolist() == [0, 1] * 3
    assert train.cameras.metadata["sensor_idx"].squeeze(-1).tolist() == [0, 1] * 3
    assert meta["timestamp_indices"].tolist() == [1, 1, 2, 2, 3, 3]
    # per-camera intrinsics and OPENCV distortion [k1 k2 k3 k4 p1 p2]
    assert train.cameras.fx.squeeze(-1).tolist() == [20.0, 18.0] * 3
    assert train.cameras.distortion_params[0].tolist() == pytest.approx([-0.05, 0, 0, 0, 0, 0])
    assert train.cameras.distortion_params[1].abs().sum() == 0
    assert (train.cameras.width == WIDTH).all() and (train.cameras.height == HEIGHT).all()
    # side files are lists of paths, not loaded; nerfstudio's binary loss masks are left alone
    assert train.mask_filenames is None
    assert [p.name for p in meta["instance_mask_filenames"]] == [p.name for p in train.image_filenames]
    assert all(p.parent.parent.name == "semantics" for p in meta["semantic_filenames"])
    assert all(p.suffix == ".npy" for p in meta["depth_filenames"]) and meta["depth_unit_scale_factor"] == 1.0
    assert meta["semantic_classes"] == ["background", "car"]
    assert meta["objects"][0].id == 300 and meta["objects"][0].object_to_world[0, 0, 3] == 8.0  # metres


def test_normalization_is_recorded_and_invertible(tiny_sequence: Path) -> None:
    parser = SemdynDataParserConfig(data=tiny_sequence, orientation_method="up").setup()
    out = parser.get_dataparser_outputs("train")
    seq = read_sequence(tiny_sequence)
    metres = torch.from_numpy(seq.camera_to_worlds[list(seq.split.train), :3, :]).float()
    back = transform_poses_to_original_space(
        out.cameras.camera_to_worlds, out.dataparser_transform, out.dataparser_scale, camera_convention="opengl"
    )
    torch.testing.assert_close(back, metres, atol=1e-5, rtol=0)
    assert out.metadata["dataparser_scale"] == out.dataparser_scale
    torch.testing.assert_close(out.metadata["dataparser_transform"], out.dataparser_transform)
    # PLY points: normalised with the same similarity, colours uint8, time normalised like the frames
    ply = read_points(seq.ply_path)
    xyz = out.metadata["points3D_xyz"]
    assert xyz.dtype == torch.float32 and xyz.shape == (300, 3)
    homogeneous = np.concatenate([ply.xyz, np.ones((300, 1))], axis=1)
    expected = out.dataparser_scale * homogeneous @ out.dataparser_transform.double().numpy().T
    np.testing.assert_allclose(xyz.numpy(), expected, atol=1e-5)
    assert out.metadata["points3D_rgb"].dtype == torch.uint8
    np.testing.assert_allclose(out.metadata["points3D_time"].numpy(), ply.time / 0.3, atol=1e-6)
    norm = out.metadata["scene_normalization"]
    np.testing.assert_allclose(norm.points_to_metres(xyz.double().numpy()), ply.xyz, atol=1e-4)


def test_static_transforms_without_time_or_points(tmp_path: Path) -> None:
    meta = write_sequence(tmp_path, cameras=("front",), side_files=False, ply=False, objects=False)
    for frame in meta["frames"]:
        del frame["time"]
    write_json(tmp_path / "transforms.json", meta)
    out = SemdynDataParserConfig(data=tmp_path).setup().get_dataparser_outputs("train")
    assert out.cameras.times.abs().sum() == 0 and out.metadata["has_time"] is False
    assert out.metadata["depth_filenames"] is None and out.metadata["instance_mask_filenames"] is None
    assert "points3D_xyz" not in out.metadata


@pytest.mark.filterwarnings("ignore::UserWarning")  # nerfstudio indexes tensors with lists in generate_rays
def test_splatfacto_datamanager_on_cpu(tiny_sequence: Path) -> None:
    """The datamanager splatfacto uses (nerfstudio 1.1.5) built with our dataparser, on the CPU."""
    from nerfstudio.configs.method_configs import method_configs

    config = copy.deepcopy(method_configs["splatfacto"].pipeline.datamanager)
    config.dataparser = SemdynDataParserConfig(data=tiny_sequence)
    config.cache_images = "gpu"  # "gpu" means "on the datamanager's device"; "cpu" calls pin_memory (CUDA)
    datamanager = config.setup(device="cpu")
    assert datamanager.includes_time
    camera, batch = datamanager.next_train(0)
    assert camera.times is not None and camera.times.shape == (1, 1) and 0.0 < camera.times.item() <= 1.0
    assert batch["image"].shape == (HEIGHT, WIDTH, 3) and batch["image"].dtype == torch.uint8
    camera, batch = datamanager.next_eval(0)
    assert camera.times.item() == 0.0 and batch["image"].shape[-1] == 3
    # ray generation (nerfacto-style methods) copes with the per-camera sensor index in Cameras.metadata
    # (nerfstudio undistorts OPENCV images when caching them, which may crop them: read sizes from the camera)
    cameras = datamanager.train_dataset.cameras
    rays = cameras.generate_rays(camera_indices=1, keep_shape=True)
    shape = (int(cameras.height[1]), int(cameras.width[1]), 1)
    assert rays.times.shape == shape and rays.metadata["sensor_idx"].shape == shape
    assert (rays.metadata["sensor_idx"] == 1).all()
    assert "points3D_xyz" in datamanager.train_dataparser_outputs.metadata


def test_errors_surface_before_training(tiny_sequence: Path) -> None:
    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

    (tiny_sequence / "images/front/001.png").unlink()
    config = FullImageDatamanagerConfig(dataparser=SemdynDataParserConfig(data=tiny_sequence))
    with pytest.raises(DataFormatError, match="001.png"):
        config.setup(device="cpu")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_transforms_through_dataparser(fuzz_root: tuple[Path, dict[str, Any]], data: Any) -> None:
    root, meta = fuzz_root
    write_json(root / "transforms.json", mutate_json(copy.deepcopy(meta), data))
    parser = SemdynDataParserConfig(data=root).setup()
    try:
        for split in ("train", "test"):
            out = parser.get_dataparser_outputs(split)
            assert torch.isfinite(out.cameras.camera_to_worlds).all()
            assert ((out.cameras.times >= 0) & (out.cameras.times <= 1)).all()
    except DataFormatError:
        pass
    json.dumps(meta)  # the fixture itself was not mutated
