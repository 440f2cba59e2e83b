"""Write tiny sequences in the format of shared/DATA_FORMAT.md for the data tests (no nerfstudio)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image
from plyfile import PlyData, PlyElement

WIDTH, HEIGHT = 24, 16
"""Image size of the tiny sequences, pixels."""
CAMERAS = ("front", "left")
"""Camera names; front looks along +x, left along +y (world z up, metres)."""
SPEED = 10.0
"""Ego speed along +x, metres per second."""


def camera_to_world(camera: str, x: float) -> np.ndarray:
    """OpenGL camera-to-world of a camera on the ego car at position x. Returns [4, 4]."""
    if camera == "front":
        right, back = np.array([0.0, -1.0, 0.0]), np.array([-1.0, 0.0, 0.0])
    else:
        right, back = np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, up, back
    pose[:3, 3] = [x, 0.0 if camera == "front" else 0.5, 1.5]
    return pose


def write_sequence(
    root: Path,
    *,
    times: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3),
    cameras: tuple[str, ...] = CAMERAS,
    side_files: bool = True,
    ply: bool = True,
    objects: bool = True,
    shared_intrinsics: bool = True,
    split: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Write a sequence of len(times) x len(cameras) frames under `root` and return its transforms dict.

    Front camera: fl 20, k1 -0.05 (shared or per frame); left camera: per-frame fl 18, no distortion.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = []
    for t_index, time in enumerate(times):
        for camera in cameras:
            name = f"{t_index:03d}"
            image_rel = f"images/{camera}/{name}.png"
            _save(root / image_rel, rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
            frame: dict[str, Any] = {
                "file_path": image_rel,
                "transform_matrix": camera_to_world(camera, SPEED * time).tolist(),
                "time": time,
                "camera": camera,
            }
            if camera != "front" or not shared_intrinsics:
                focal = 18.0 if camera != "front" else 20.0
                frame.update(fl_x=focal, fl_y=focal, cx=WIDTH / 2, cy=HEIGHT / 2, w=WIDTH, h=HEIGHT)
                frame.update(k1=0.0 if camera != "front" else -0.05, k2=0.0, p1=0.0, p2=0.0)
            if side_files:
                ids = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
                ids[4:10, 6:14] = 300  # above 255: checks that 16 bits survive
                frame["mask_path"] = f"masks/{camera}/{name}.png"
                _save(root / frame["mask_path"], ids)
                frame["semantic_path"] = f"semantics/{camera}/{name}.png"
                _save(root / frame["semantic_path"], (ids > 0).astype(np.uint8))
                frame["depth_file_path"] = f"depth/{camera}/{name}.npy"
                (root / "depth" / camera).mkdir(parents=True, exist_ok=True)
                np.save(root / frame["depth_file_path"], np.full((HEIGHT, WIDTH), 7.5, dtype=np.float32))
            frames.append(frame)
    meta: dict[str, Any] = {"camera_model": "OPENCV", "frames": frames}
    if shared_intrinsics:
        meta.update(fl_x=20.0, fl_y=20.0, cx=WIDTH / 2, cy=HEIGHT / 2, w=WIDTH, h=HEIGHT)
        meta.update(k1=-0.05, k2=0.0, p1=0.0, p2=0.0)
    if side_files:
        meta["semantic_classes"] = ["background", "car"]
    if ply:
        write_ply(root / "points.ply", n=300, t_max=max(times))
        meta["ply_file_path"] = "points.ply"
    if objects:
        poses = []
        for time in times:
            pose = np.eye(4)
            pose[:3, 3] = [8.0 + 5.0 * time, 3.0, 0.8]
            poses.append({"time": time, "object_to_world": pose.tolist()})
        meta["objects"] = [{"id": 300, "class": "car", "dynamic": True, "size": [4.0, 1.8, 1.6], "poses": poses}]
    write_json(root / "transforms.json", meta)
    if split is not None:
        write_json(root / "split.json", split)
    return meta


def write_ply(path: Path, n: int, t_max: float) -> None:
    """A PLY of `n` random points with colours and per-point time in [0, t_max] seconds."""
    rng = np.random.default_rng(1)
    vertex = np.zeros(
        n,
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("time", "f4")],
    )
    xyz = rng.uniform([-5.0, -10.0, 0.0], [20.0, 10.0, 5.0], size=(n, 3))
    vertex["x"], vertex["y"], vertex["z"] = xyz.T
    vertex["red"], vertex["green"], vertex["blue"] = rng.integers(0, 255, (3, n))
    vertex["time"] = rng.uniform(0.0, t_max, n)
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def write_json(path: Path, value: Any) -> None:
    """Write JSON (NaN allowed, as Python's json writes it)."""
    path.write_text(json.dumps(value, indent=1))


def _save(path: Path, array: np.ndarray) -> None:
    """Save a PNG (uint16 arrays as 16-bit greyscale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# Fuzzing helpers (hypothesis)

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["images/front/000.png", "points.ply", "depth/front/000.npy", "masks/left/001.png", "."])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
KEYS = st.sampled_from(
    ["frames", "file_path", "transform_matrix", "time", "camera", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "p2"]
    + ["camera_model", "camera_angle_x", "distortion_params", "mask_path", "semantic_path", "depth_file_path"]
    + ["ply_file_path", "objects", "semantic_classes", "poses", "object_to_world", "size", "id", "train_filenames"]
)


def mutate_json(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Walk into `value` along random keys and replace, delete or corrupt what is found there."""
    children = list(value) if isinstance(value, dict) else list(range(len(value))) if isinstance(value, list) else []
    if children and depth < 8 and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(children))
        action = data.draw(st.sampled_from(["descend", "delete", "replace", "stringify", "nan"]))
        if action == "descend":
            value[key] = mutate_json(value[key], data, depth + 1)
        elif action == "delete":
            del value[key]
        elif action == "replace":
            value[key] = data.draw(JSON_VALUES)
        elif action == "stringify":
            value[key] = str(value[key])
        else:
            value[key] = float("nan")
        return value
    if isinstance(value, dict) and data.draw(st.booleans()):
        value[data.draw(KEYS)] = data.draw(JSON_VALUES)
        return value
    return data.draw(JSON_VALUES)
