"""Files, format, determinism, camera convention and cache of the synthetic street generator."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from plyfile import PlyData

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.synth import SEMANTIC_CLASSES, SynthConfig, ensure_scene, generate_scene, scene_path
from semdyn.synth.camera import Intrinsics, project


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _frame(transforms: dict, camera: str, index: int) -> dict:
    frames = [f for f in transforms["frames"] if f["camera"] == camera]
    return sorted(frames, key=lambda f: f["time"])[index]


def test_files_and_format(tiny_scene: Path, tiny_config: SynthConfig) -> None:
    transforms = json.loads((tiny_scene / "transforms.json").read_text())
    assert transforms["camera_model"] == "OPENCV"
    assert transforms["semantic_classes"] == list(SEMANTIC_CLASSES)
    assert len(transforms["frames"]) == tiny_config.num_cameras * tiny_config.num_frames
    h, w = tiny_config.height, tiny_config.width
    for frame in transforms["frames"]:
        for key in ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2", "time", "camera"):
            assert key in frame
        assert np.asarray(frame["transform_matrix"]).shape == (4, 4)
        rgb = iio.imread(tiny_scene / frame["file_path"])
        mask = iio.imread(tiny_scene / frame["mask_path"])
        sem = iio.imread(tiny_scene / frame["semantic_path"])
        depth = np.load(tiny_scene / frame["depth_file_path"])
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        assert mask.shape == (h, w) and mask.dtype == np.uint16
        assert sem.shape == (h, w) and sem.dtype == np.uint8 and sem.max() < len(SEMANTIC_CLASSES)
        assert depth.shape == (h, w) and depth.dtype == np.float32
        sky = sem == 0
        assert np.all(mask[sky] == 0) and np.all(depth[sky] == 0) and np.all(depth[~sky] > 0)
    times = sorted({f["time"] for f in transforms["frames"]})
    ids = [o["id"] for o in transforms["objects"]]
    assert len(set(ids)) == len(ids) and min(ids) > 0
    for obj in transforms["objects"]:
        assert [p["time"] for p in obj["poses"]] == times
        assert obj["class"] in SEMANTIC_CLASSES and len(obj["size"]) == 3
    ply = PlyData.read(str(tiny_scene / transforms["ply_file_path"]))["vertex"]
    names = [p.name for p in ply.properties]
    assert names[:7] == ["x", "y", "z", "red", "green", "blue", "time"] and "instance" in names
    assert ply["x"].dtype == np.float32 and ply["red"].dtype == np.uint8 and ply["time"].dtype == np.float32
    assert np.allclose(np.unique(ply["time"]), times, atol=1e-6)
    split = json.loads((tiny_scene / "split.json").read_text())
    test_times = {f["time"] for f in transforms["frames"] if f["file_path"] in split["test"]}
    assert test_times == {times[0]} and len(split["test"]) == tiny_config.num_cameras
    assert len(split["train"]) + len(split["test"]) == len(transforms["frames"])
    meta = json.loads((tiny_scene / "meta.json").read_text())
    assert meta["seed"] == tiny_config.seed and meta["cache_key"] == tiny_config.cache_key()


def test_deterministic_per_seed(tiny_scene: Path, tiny_config: SynthConfig, tmp_path: Path) -> None:
    again = generate_scene(tiny_config, tmp_path / "again", show_progress=False)
    assert (again / "transforms.json").read_bytes() == (tiny_scene / "transforms.json").read_bytes()
    assert _digest(again) == _digest(tiny_scene)
    other = generate_scene(dataclasses.replace(tiny_config, seed=1), tmp_path / "other", show_progress=False)
    assert (other / "transforms.json").read_bytes() != (tiny_scene / "transforms.json").read_bytes()
    first = _frame(json.loads((tiny_scene / "transforms.json").read_text()), "front", 0)["file_path"]
    assert (other / first).read_bytes() != (tiny_scene / first).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folders left behind"


def test_known_point_lands_where_drawn(tiny_scene: Path) -> None:
    transforms = json.loads((tiny_scene / "transforms.json").read_text())
    lead = next(o for o in transforms["objects"] if o["dynamic"] and "ahead" in o["description"])
    frame = _frame(transforms, "front", 0)
    intr = Intrinsics(frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"], frame["w"], frame["h"])
    c2w = np.asarray(frame["transform_matrix"])
    pose = np.asarray(lead["poses"][0]["object_to_world"])
    uv, z = project(pose[:3, 3][None], c2w, intr)
    mask = iio.imread(tiny_scene / frame["mask_path"])
    u, v = int(np.floor(uv[0, 0])), int(np.floor(uv[0, 1]))
    assert mask[v, u] == lead["id"]
    # every pixel drawn as the lead car unprojects (depth + written camera) into the car's box
    depth = np.load(tiny_scene / frame["depth_file_path"])
    rows, cols = np.nonzero(mask == lead["id"])
    d = depth[rows, cols].astype(np.float64)
    cam_cv = np.stack([(cols + 0.5 - intr.cx) / intr.fx * d, (rows + 0.5 - intr.cy) / intr.fy * d, d], axis=-1)
    world = cam_cv @ (c2w[:3, :3] @ OPENGL_TO_OPENCV[:3, :3]).T + c2w[:3, 3]
    local = (world - pose[:3, 3]) @ pose[:3, :3]
    half = np.asarray(lead["size"]) / 2
    assert np.all(np.abs(local) <= half + 1e-3)
    assert np.mean(np.abs(local[:, 0] + half[0]) < 0.3) > 0.5, "the front camera should see the car's rear"
    assert z[0] > 10.0


def test_opengl_axes(tiny_scene: Path) -> None:
    transforms = json.loads((tiny_scene / "transforms.json").read_text())
    c2w = np.asarray(_frame(transforms, "front", 0)["transform_matrix"])
    assert c2w[:3, 2] @ np.array([1.0, 0.0, 0.0]) < -0.99  # looks down -z, along the street (+x)
    assert c2w[:3, 1] @ np.array([0.0, 0.0, 1.0]) > 0.99  # +y up
    assert np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)


def test_ensure_scene_caches(
    tiny_scene: Path, tiny_config: SynthConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tiny_scene.parent.parent
    stamp = (tiny_scene / "transforms.json").stat().st_mtime_ns
    assert ensure_scene(tiny_config, root) == tiny_scene
    assert (tiny_scene / "transforms.json").stat().st_mtime_ns == stamp
    assert tiny_scene.name.endswith(tiny_config.cache_key())
    assert not [p for p in tiny_scene.parent.iterdir() if p.name.startswith(".")]
    monkeypatch.setenv("SEMDYN_CACHE", str(tmp_path))
    target = scene_path(tiny_config)
    assert target.parent.parent == tmp_path
    target.mkdir(parents=True)  # an interrupted, half-written folder without transforms.json is not complete
    assert not (target / "transforms.json").exists()
    assert dataclasses.replace(tiny_config, device="cpu", chunk_rays=999).cache_key() == tiny_config.cache_key()
    assert dataclasses.replace(tiny_config, seed=3).cache_key() != tiny_config.cache_key()
