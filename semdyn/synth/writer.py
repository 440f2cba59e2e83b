"""Render a synthetic street and write it as a sequence folder (shared/DATA_FORMAT.md), atomically."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Generator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from plyfile import PlyData, PlyElement
from rich.progress import Progress

from semdyn.errors import InputError
from semdyn.synth.camera import Intrinsics, pixel_rays, world_to_cv
from semdyn.synth.config import GENERATOR_VERSION, SEMANTIC_CLASSES, SynthConfig
from semdyn.synth.raycast import PrimitiveTable, cast_and_shade, cull_frustum, cull_range
from semdyn.synth.scene import Street, build_street

LIDAR_ELEVATION_DEG = (-24.0, 6.0)
"""Lowest and highest beam elevation of the LiDAR in degrees."""

INSTANCE_DOC = (
    "Every entry of objects has a unique instance id > 0 in masks/: dynamic objects first (1, 2, ...), then parked "
    "cars, then static structure (road, sidewalks, buildings, poles, trees); 0 is sky. The ground plane is all road."
)


def frame_times(config: SynthConfig) -> np.ndarray:
    """[T] frame times in seconds."""
    return np.arange(config.num_frames, dtype=np.float64) / config.fps


def _lidar_directions(config: SynthConfig, frame: int) -> np.ndarray:
    """Unit directions in the LiDAR frame of a random subset of the beam x azimuth grid.  -> [K, 3]."""
    elev = np.radians(np.linspace(*LIDAR_ELEVATION_DEG, config.lidar_beams))
    azim = np.linspace(0.0, 2 * math.pi, config.lidar_azimuth_steps, endpoint=False)
    e, a = np.meshgrid(elev, azim, indexing="ij")
    dirs = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1).reshape(-1, 3)
    keep = min(config.lidar_points_per_frame, len(dirs))
    rng = np.random.default_rng([config.seed, frame, 17])
    return dirs[np.sort(rng.choice(len(dirs), size=keep, replace=False))]


def _road_instance(street: Street) -> int:
    return next(o.instance_id for o in street.objects if o.semantic == "road")


def _write_camera_frame(
    root: Path, cam: str, frame: int, rgb: np.ndarray, inst: np.ndarray, sem: np.ndarray, depth: np.ndarray
) -> dict[str, str]:
    name = f"{frame:05d}"
    paths = {
        "file_path": f"images/{cam}/{name}.png",
        "mask_path": f"masks/{cam}/{name}.png",
        "semantic_path": f"semantics/{cam}/{name}.png",
        "depth_file_path": f"depth/{cam}/{name}.npy",
    }
    iio.imwrite(root / paths["file_path"], rgb)
    iio.imwrite(root / paths["mask_path"], inst)
    iio.imwrite(root / paths["semantic_path"], sem)
    np.save(root / paths["depth_file_path"], depth)
    return paths


def _write_ply(path: Path, chunks: list[dict[str, np.ndarray]]) -> int:
    fields = [
        ("x", "f4"),
        ("y", "f4"),
        ("z", "f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("time", "f4"),
        ("instance", "u2"),
        ("semantic", "u1"),
    ]
    n = sum(len(c["time"]) for c in chunks)
    data = np.empty(n, dtype=fields)
    if n:
        xyz = np.concatenate([c["xyz"] for c in chunks])
        rgb = np.concatenate([c["rgb"] for c in chunks])
        for k, axis in enumerate("xyz"):
            data[axis] = xyz[:, k]
        for k, channel in enumerate(("red", "green", "blue")):
            data[channel] = rgb[:, k]
        for key in ("time", "instance", "semantic"):
            data[key] = np.concatenate([c[key] for c in chunks])
    PlyData([PlyElement.describe(data, "vertex")], text=False).write(str(path))
    return n


def _objects_json(street: Street, times: np.ndarray) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for obj in street.objects:
        poses = obj.poses(times)
        out.append(
            {
                "id": obj.instance_id,
                "class": obj.semantic,
                "dynamic": obj.dynamic,
                "size": [float(s) for s in obj.size],
                "description": obj.description,
                "poses": [{"time": float(t), "object_to_world": p.tolist()} for t, p in zip(times, poses, strict=True)],
            }
        )
    return out


@contextmanager
def torch_threads(count: int) -> Generator[None, None, None]:
    """Set torch's CPU thread count for the block (0 leaves it), then restore it."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def render_into(config: SynthConfig, root: Path, show_progress: bool = True) -> dict[str, object]:
    """Render the whole sequence into an existing empty folder ``root``; returns the transforms.json dict."""
    config.validate()
    with torch_threads(config.cpu_threads):
        return _render(config, root, show_progress)


def _render(config: SynthConfig, root: Path, show_progress: bool) -> dict[str, object]:
    device = torch.device(config.device)
    street = build_street(config)
    times = frame_times(config)
    table = PrimitiveTable(street, times, device)
    ego = street.ego.poses(times)
    intr = Intrinsics.from_fov(config.width, config.height, config.horizontal_fov_deg)
    road = _road_instance(street)
    for sub in ("images", "masks", "semantics", "depth"):
        for cam in config.camera_names:
            (root / sub / cam).mkdir(parents=True, exist_ok=True)
    frames, lidar_chunks = [], []
    progress = Progress(transient=True) if show_progress else None
    with progress if progress is not None else nullcontext():
        task = (
            progress.add_task("rendering synthetic street", total=config.num_frames) if progress is not None else None
        )
        for i, t in enumerate(times):
            prims = table.at(i)
            for cam in street.cameras:
                c2w = ego[i] @ cam.rig_to_ego
                w2c = torch.as_tensor(world_to_cv(c2w), dtype=torch.float32, device=device)
                visible = cull_frustum(
                    prims, w2c, (intr.fx, intr.fy, intr.cx, intr.cy), (intr.width, intr.height), config.max_distance
                )
                origin, dirs = pixel_rays(intr, c2w, device)
                out = cast_and_shade(origin, dirs, visible, config.max_distance, road, config.seed, config.chunk_rays)
                hw = (intr.height, intr.width)
                rgb = (out.rgb.reshape(*hw, 3) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
                inst = out.instance.reshape(hw).cpu().numpy().astype(np.uint16)
                sem = out.semantic.reshape(hw).cpu().numpy().astype(np.uint8)
                depth = out.t.reshape(hw).cpu().numpy().astype(np.float32)
                paths = _write_camera_frame(root, cam.name, i, rgb, inst, sem, depth)
                frames.append(
                    {**paths, "transform_matrix": c2w.tolist(), "time": float(t), "camera": cam.name, **intr.as_json()}
                )
            if config.lidar_points_per_frame > 0:
                lidar_chunks.append(_lidar_frame(config, street, table, ego[i], i, float(t), road, device))
            if progress is not None and task is not None:
                progress.advance(task)
    num_points = _write_ply(root / "points.ply", lidar_chunks)
    transforms = {
        "camera_model": "OPENCV",
        "ply_file_path": "points.ply",
        "semantic_classes": list(SEMANTIC_CLASSES),
        "frames": frames,
        "objects": _objects_json(street, times),
    }
    (root / "transforms.json").write_text(json.dumps(transforms, indent=1))
    test = [f["file_path"] for f in frames if round(f["time"] * config.fps) % 8 == 0]
    train = [f["file_path"] for f in frames if round(f["time"] * config.fps) % 8 != 0]
    (root / "split.json").write_text(json.dumps({"train": train, "test": test}, indent=1))
    meta = {
        "generator": "semdyn.synth",
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "cache_key": config.cache_key(),
        "params": config.output_params(),
        "cameras": list(config.camera_names),
        "num_lidar_points": num_points,
        "world_frame": "x along the street (ego drives +x), y left, z up, metres; ground at z = 0",
        "depth": "z-depth along the optical axis in metres, 0 for sky",
        "lidar": "instantaneous 360 degree scan per frame from the roof (time = frame time), subsampled",
        "split": "test = every 8th frame index (0, 8, 16, ...), all cameras",
        "instance_ids": INSTANCE_DOC,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    return transforms


def _lidar_frame(
    config: SynthConfig,
    street: Street,
    table: PrimitiveTable,
    ego_pose: np.ndarray,
    frame: int,
    time: float,
    road: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    sensor = ego_pose @ street.lidar_to_ego
    dirs_np = _lidar_directions(config, frame) @ sensor[:3, :3].T
    origin = torch.as_tensor(sensor[:3, 3], dtype=torch.float32, device=device)
    dirs = torch.as_tensor(dirs_np, dtype=torch.float32, device=device)
    prims = cull_range(table.at(frame), origin, config.max_distance)
    out = cast_and_shade(origin, dirs, prims, config.max_distance, road, config.seed, config.chunk_rays)
    hit = (out.instance > 0).cpu().numpy()
    n = int(hit.sum())
    return {
        "xyz": out.points.cpu().numpy()[hit].astype(np.float32),
        "rgb": (out.rgb.cpu().numpy()[hit] * 255.0 + 0.5).clip(0, 255).astype(np.uint8),
        "time": np.full(n, time, dtype=np.float32),
        "instance": out.instance.cpu().numpy()[hit].astype(np.uint16),
        "semantic": out.semantic.cpu().numpy()[hit].astype(np.uint8),
    }


def generate_scene(
    config: SynthConfig, output: str | Path, overwrite: bool = False, show_progress: bool = True
) -> Path:
    """Generate a sequence folder at ``output`` atomically (a temp folder next to it, then a rename).

    Raises:
        InputError: bad config values, or ``output`` exists and ``overwrite`` is False.
    """
    config.validate()
    output = Path(output).expanduser().resolve()
    if output.exists() and not overwrite:
        raise InputError(f"output folder {output} already exists; pass overwrite=True (--overwrite) to replace it")
    render_atomically(config, output, replace=True, show_progress=show_progress)
    return output


def render_atomically(config: SynthConfig, output: Path, replace: bool, show_progress: bool) -> None:
    """Render into a temp folder beside ``output``, then :func:`publish` it; the temp folder never outlives this."""
    build_atomically(output, lambda tmp: render_into(config, tmp, show_progress), replace)


def build_atomically(output: Path, build: Callable[[Path], object], replace: bool) -> bool:
    """Fill a fresh temp folder beside ``output`` with ``build(tmp)``, then :func:`publish` it (see there for the
    return value); the temp folder never outlives this, whether ``build`` finishes or raises."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        return publish(tmp, output, replace=replace)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, output: Path, replace: bool) -> bool:
    """Rename a finished temp folder to ``output``. Returns False when ``output`` exists and is kept.

    With ``replace``, an existing ``output`` is first renamed aside and removed after the swap, so that
    ``output`` is at every moment either absent, the old complete folder or the new complete folder.
    """
    if output.exists():
        if not replace:
            return False
        trash = output.parent / f".{output.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(output, trash)
        os.rename(tmp, output)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    try:
        os.rename(tmp, output)
    except OSError:
        if output.exists():  # another process published the same folder first
            return False
        raise
    return True
