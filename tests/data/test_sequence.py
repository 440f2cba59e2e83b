"""Tests of the pure sequence reader (semdyn.data.sequence); nerfstudio is never imported here."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from semdyn.data import compute_normalization, read_points, read_sequence
from semdyn.data.images import load_depth, load_instance_mask, load_semantic
from semdyn.errors import DataFormatError
from tests.data.sequence_writer import (
    HEIGHT,
    JSON_VALUES,
    WIDTH,
    camera_to_world,
    mutate_json,
    write_json,
    write_sequence,
)


def _meta(root: Path) -> dict[str, Any]:
    return json.loads((root / "transforms.json").read_text())


def test_reads_tiny_sequence(tiny_sequence: Path) -> None:
    seq = read_sequence(tiny_sequence)
    assert len(seq.frames) == 8
    assert seq.cameras == ("front", "left")
    assert [f.camera for f in seq.frames] == ["front", "left"] * 4
    np.testing.assert_allclose(seq.times_seconds, np.repeat([0.0, 0.1, 0.2, 0.3], 2))
    np.testing.assert_allclose(seq.times_normalized, np.repeat([0.0, 1 / 3, 2 / 3, 1.0], 2), atol=1e-12)
    assert seq.time_axis.duration == pytest.approx(0.3)
    np.testing.assert_array_equal(seq.timestamp_indices, np.repeat(np.arange(4), 2))
    np.testing.assert_array_equal(seq.camera_indices, [0, 1] * 4)
    front, left = seq.frames[0].intrinsics, seq.frames[1].intrinsics
    assert (front.fx, front.k1, front.width, front.height) == (20.0, -0.05, WIDTH, HEIGHT)  # shared top level
    assert (left.fx, left.k1) == (18.0, 0.0)  # per frame overrides
    np.testing.assert_allclose(front.distortion_params(), [-0.05, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(seq.frames[2].camera_to_world, camera_to_world("front", 1.0))
    assert seq.has("mask") and seq.has("semantic") and seq.has("depth")
    assert seq.semantic_classes == ("background", "car")
    assert seq.ply_path == tiny_sequence / "points.ply"
    (track,) = seq.objects
    assert (track.id, track.label, track.dynamic) == (300, "car", True)
    assert track.object_to_world.shape == (4, 4, 4)
    np.testing.assert_allclose(track.object_to_world[-1, :3, 3], [9.5, 3.0, 0.8])


def test_default_split_holds_out_every_eighth_timestamp_with_all_cameras(tmp_path: Path) -> None:
    write_sequence(tmp_path, times=tuple(0.1 * i for i in range(10)), side_files=False, ply=False, objects=False)
    seq = read_sequence(tmp_path)
    assert seq.split.source == "interval"
    held_out = sorted({round(seq.frames[i].time, 6) for i in seq.split.test})
    assert held_out == [0.0, 0.8]
    assert {seq.frames[i].camera for i in seq.split.test} == {"front", "left"}
    assert len(seq.split.train) == 16 and not set(seq.split.train) & set(seq.split.test)


def test_split_json_wins(tmp_path: Path) -> None:
    split = {"train": ["images/front/000.png", "./images/left/000.png"], "test": ["images/front/003.png"]}
    write_sequence(tmp_path, split=split, side_files=False)
    seq = read_sequence(tmp_path)
    assert seq.split.source == "split.json"
    assert [seq.frames[i].file_path for i in seq.split.train] == ["images/front/000.png", "images/left/000.png"]
    assert [seq.frames[i].file_path for i in seq.split.test] == ["images/front/003.png"]


def test_static_nerfstudio_transforms(tmp_path: Path) -> None:
    meta = write_sequence(tmp_path, cameras=("front",), side_files=False, ply=False, objects=False)
    for frame in meta["frames"]:
        del frame["time"], frame["camera"]
    write_json(tmp_path / "transforms.json", meta)
    seq = read_sequence(tmp_path, eval_interval=2)
    assert seq.time_axis.source == "none" and seq.time_axis.duration == 0.0
    np.testing.assert_array_equal(seq.times_normalized, np.zeros(4))
    assert seq.cameras == ("default",)
    assert seq.split.test == (0, 2) and seq.split.train == (1, 3)  # frames, not timestamps


def test_dnerf_style_transforms(tmp_path: Path) -> None:
    meta = write_sequence(tmp_path, cameras=("front",), side_files=False, ply=False, objects=False)
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        del meta[key]
    meta["camera_angle_x"] = 2 * math.atan(WIDTH / 2 / 30.0)
    for i, frame in enumerate(meta["frames"]):
        frame["time"] = i / 3
        frame["file_path"] = "./" + frame["file_path"][: -len(".png")]  # D-NeRF leaves out the suffix
    write_json(tmp_path / "transforms.json", meta)
    seq = read_sequence(tmp_path)
    k = seq.frames[0].intrinsics
    assert (k.width, k.height) == (WIDTH, HEIGHT)
    assert k.fx == pytest.approx(30.0) and k.fy == pytest.approx(30.0) and (k.cx, k.cy) == (WIDTH / 2, HEIGHT / 2)
    np.testing.assert_allclose(seq.times_normalized, [0, 1 / 3, 2 / 3, 1])
    assert seq.frames[0].image_path.suffix == ".png"


def test_dnerf_split_files(tmp_path: Path) -> None:
    meta = write_sequence(tmp_path, cameras=("front",), side_files=False, ply=False, objects=False)
    (tmp_path / "transforms.json").unlink()
    write_json(tmp_path / "transforms_train.json", {**meta, "frames": meta["frames"][:3]})
    write_json(tmp_path / "transforms_test.json", {"frames": meta["frames"][3:]})
    seq = read_sequence(tmp_path)
    assert seq.split.source == "transforms.json" and seq.split.train == (0, 1, 2) and seq.split.test == (3,)
    assert seq.frames[3].intrinsics.fx == 20.0  # shared intrinsics come from the train file


def test_single_json_file_path_is_accepted(tiny_sequence: Path) -> None:
    assert len(read_sequence(tiny_sequence / "transforms.json").frames) == 8


def test_normalization_round_trips_and_orients(tiny_sequence: Path) -> None:
    seq = read_sequence(tiny_sequence)
    norm = compute_normalization(seq.camera_to_worlds)
    poses = norm.poses_to_normalized(seq.camera_to_worlds)
    assert np.abs(poses[:, :3, 3]).max() == pytest.approx(1.0)
    np.testing.assert_allclose(poses[:, :3, 3].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(norm.poses_to_metres(poses), seq.camera_to_worlds, atol=1e-12)
    xyz = read_points(seq.ply_path).xyz
    np.testing.assert_allclose(norm.points_to_metres(norm.points_to_normalized(xyz)), xyz, atol=1e-9)
    # the homogeneous matrix agrees with the point map
    np.testing.assert_allclose((norm.matrix() @ np.append(xyz[0], 1.0))[:3], norm.points_to_normalized(xyz[0]))
    # 'up' turns the mean camera up-vector (+y column) to +z
    tilt = np.eye(4)
    tilt[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    tilted = tilt @ seq.camera_to_worlds
    up = compute_normalization(tilted, orientation_method="up").poses_to_normalized(tilted)[:, :3, 1]
    np.testing.assert_allclose(up, np.tile([0.0, 0.0, 1.0], (8, 1)), atol=1e-9)
    single = compute_normalization(seq.camera_to_worlds[:1] * 0 + np.eye(4))  # one camera at the origin
    assert single.scale == 1.0


def test_points_and_lazy_loaders(tiny_sequence: Path) -> None:
    seq = read_sequence(tiny_sequence)
    points = read_points(seq.ply_path)
    assert points.xyz.shape == (300, 3) and points.rgb.dtype == np.uint8 and points.time.shape == (300,)
    assert 0.0 <= points.time.min() and points.time.max() <= 0.3
    frame = seq.frames[0]
    ids = load_instance_mask(frame.mask_path)
    assert ids.shape == (HEIGHT, WIDTH) and ids.max() == 300  # 16 bits kept
    assert load_semantic(frame.semantic_path).max() == 1
    assert load_depth(frame.depth_path).dtype == np.float32 and load_depth(frame.depth_path)[0, 0] == 7.5


def test_importing_semdyn_data_does_not_import_nerfstudio() -> None:
    code = "import sys, semdyn.data, semdyn.data.images; assert 'nerfstudio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------
# Bad input: one DataFormatError naming the file and the field


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        meta = _meta(root)
        change(meta)
        write_json(root / "transforms.json", meta)

    return apply


def _write_text(text: str) -> Callable[[Path], None]:
    return lambda root: (root / "transforms.json").write_text(text)


def _resize(rel: str, size: tuple[int, int] = (12, 8), mode: str = "RGB") -> Callable[[Path], None]:
    return lambda root: Image.new(mode, size).save(root / rel)


def _set_frame(key: str, value: Any, index: int = 0) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta["frames"][index].__setitem__(key, value)


def _del_frame(key: str, index: int = 0) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta["frames"][index].pop(key)


def _del_top(*keys: str) -> Callable[[dict[str, Any]], None]:
    return lambda meta: [meta.pop(k) for k in keys]


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (how to break the sequence, file named by the error, words in the message)
    "missing image": (lambda root: (root / "images/left/002.png").unlink(), "002.png", "frames[5].file_path"),
    "invalid json": (_write_text('{"frames": [}'), "transforms.json", "not valid JSON"),
    "binary garbage": (
        lambda root: (root / "transforms.json").write_bytes(b"\xff\xfe\x00"),
        "transforms.json",
        "UTF-8",
    ),
    "deep nesting": (_write_text("[" * 100_000), "transforms.json", "not valid JSON"),
    "not an object": (_write_text("[1, 2]"), "transforms.json", "JSON object"),
    "frames missing": (_edit(_del_top("frames")), "transforms.json", "'frames'"),
    "frames not a list": (_edit(lambda m: m.__setitem__("frames", {"a": 1})), "transforms.json", "'frames' must be"),
    "empty frames": (_edit(lambda m: m.__setitem__("frames", [])), "transforms.json", "'frames' is empty"),
    "frame not an object": (_edit(lambda m: m["frames"].__setitem__(1, "x")), "transforms.json", "frames[1]"),
    "matrix 3x4": (_edit(_set_frame("transform_matrix", np.eye(4)[:3].tolist(), 2)), "transforms.json", "frames[2]"),
    "matrix strings": (
        _edit(_set_frame("transform_matrix", [["1"] * 4] * 4)),
        "transforms.json",
        "transform_matrix[0][0] must be a number",
    ),
    "matrix nan": (
        _edit(lambda m: m["frames"][3]["transform_matrix"][1].__setitem__(3, float("nan"))),
        "transforms.json",
        "frames[3].transform_matrix[1][3] must be finite",
    ),
    "time string": (_edit(_set_frame("time", "0.1", 1)), "transforms.json", "frames[1].time must be a number"),
    "time infinite": (_edit(_set_frame("time", float("inf"), 1)), "transforms.json", "frames[1].time must be finite"),
    "frame without time": (_edit(_del_frame("time", 4)), "transforms.json", "frames[4] has no 'time'"),
    "no file_path": (_edit(_del_frame("file_path", 4)), "transforms.json", "frames[4].file_path is missing"),
    "image size mismatch": (_resize("images/front/001.png"), "images/front/001.png", "declares w=24 h=16"),
    "mask size mismatch": (_resize("masks/left/003.png", mode="I;16"), "masks/left/003.png", "mask_path"),
    "semantic size mismatch": (_resize("semantics/front/000.png", mode="L"), "semantics/front/000.png", "semantic"),
    "depth shape mismatch": (
        lambda root: np.save(root / "depth/front/002.npy", np.zeros((4, 4), np.float32)),
        "depth/front/002.npy",
        "depth map has shape (4, 4)",
    ),
    "depth not npy": (
        lambda root: (root / "depth/front/002.npy").write_text("hello"),
        "depth/front/002.npy",
        ".npy",
    ),
    "missing mask": (lambda root: (root / "masks/front/001.png").unlink(), "masks/front/001.png", "mask_path"),
    "mask on some frames only": (_edit(_del_frame("mask_path", 6)), "transforms.json", "frames[6] has no 'mask_path'"),
    "missing intrinsics": (
        _edit(lambda m: [m.pop("fl_x"), m.pop("fl_y")]),
        "transforms.json",
        "frames[0] has no focal length",
    ),
    "negative focal": (_edit(_set_frame("fl_x", -3.0, 1)), "transforms.json", "frames[1].fl_x must be positive"),
    "width not integer": (_edit(lambda m: m.__setitem__("w", 23.5)), "transforms.json", "w must be a positive integer"),
    "unknown camera model": (
        _edit(lambda m: m.__setitem__("camera_model", "BROWN")),
        "transforms.json",
        "camera_model 'BROWN'",
    ),
    "missing ply": (lambda root: (root / "points.ply").unlink(), "points.ply", "ply_file_path"),
    "bad object": (_edit(lambda m: m["objects"][0].pop("poses")), "transforms.json", "objects[0].poses is missing"),
    "repeated file_path": (
        _edit(_set_frame("file_path", "images/left/000.png", 0)),
        "transforms.json",
        "repeats",
    ),
    "split names unknown file": (
        lambda root: write_json(root / "split.json", {"train": ["images/front/000.png"], "test": ["nope.png"]}),
        "split.json",
        "test[0] 'nope.png'",
    ),
    "split not an object": (lambda root: write_json(root / "split.json", [1]), "split.json", "top level"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_clear_error(tiny_sequence: Path, name: str) -> None:
    breaks, file_name, words = BAD_INPUTS[name]
    breaks(tiny_sequence)
    with pytest.raises(DataFormatError) as info:
        read_sequence(tiny_sequence)
    assert info.value.path.as_posix().endswith(file_name), str(info.value)
    assert words in info.value.message, str(info.value)
    assert "\n" not in str(info.value)


def test_missing_folder_and_transforms(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="does not exist"):
        read_sequence(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="transforms.json"):
        read_sequence(tmp_path)


# ----------------------------------------------------------------------------------------------
# Property-based: whatever transforms.json holds, the reader succeeds or raises DataFormatError


def _parse_everything(root: Path) -> None:
    seq = read_sequence(root)
    compute_normalization(seq.camera_to_worlds, orientation_method="up").poses_to_normalized(seq.camera_to_worlds)
    if seq.ply_path is not None:
        read_points(seq.ply_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_mutations_raise_only_data_format_errors(fuzz_root: tuple[Path, dict[str, Any]], data: Any) -> None:
    root, meta = fuzz_root
    mutated = mutate_json(copy.deepcopy(meta), data)
    write_json(root / "transforms.json", mutated)
    try:
        _parse_everything(root)
    except DataFormatError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES | st.fixed_dictionaries({"frames": st.lists(JSON_VALUES, min_size=1, max_size=3)}))
def test_random_json_raises_only_data_format_errors(fuzz_root: tuple[Path, dict[str, Any]], value: Any) -> None:
    root, _ = fuzz_root
    write_json(root / "transforms.json", value)
    try:
        _parse_everything(root)
    except DataFormatError:
        pass


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        ([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]], None),
        ([[1e-12, 0, 0], [0, 1e-12, 0], [0, 0, 1e-12]], "not orthonormal"),  # was accepted
        ([[0.0, 0, 0], [0, 0, 0], [0, 0, 0]], "not orthonormal"),  # was a LinAlgError mid-training in ns-train
        ([[1.0, 0, 0], [0, 1, 0], [0, 0, -1]], "determinant -1"),  # a mirror
    ],
)
def test_transform_matrix_must_be_a_rotation(tmp_path: Path, rotation, message: str | None) -> None:
    root = tmp_path
    meta = write_sequence(root)
    pose = meta["frames"][1]["transform_matrix"]
    for i in range(3):
        pose[i][:3] = rotation[i]
    (root / "transforms.json").write_text(json.dumps(meta))
    if message is None:
        read_sequence(root)
        return
    with pytest.raises(DataFormatError, match=rf"frames\[1\].transform_matrix: the rotation part .*{message}"):
        read_sequence(root)
