"""Render a trained run along a trajectory: MP4 videos and PNG frames of rgb, depth and group overlays.

python scripts/render.py dataset     --checkpoint outputs/semdyn-cpu           # the test views
python scripts/render.py interpolate --checkpoint outputs/semdyn-cpu           # a spline through the training cameras
python scripts/render.py lane-shift  --checkpoint outputs/semdyn-cpu --offset 2.0   # ego path 2 m to the left
python scripts/render.py frozen      --checkpoint outputs/semdyn-cpu --time 0.5     # orbit at a frozen time
python scripts/render.py timelapse   --checkpoint outputs/semdyn-cpu           # fixed camera, time sweeps
python scripts/render.py camera-path --checkpoint outputs/semdyn-cpu --camera-path path.json   # viewer's render panel

Writes <output-dir>/<trajectory>/{rgb,depth,groups}/NNNNN.png, <output>.mp4 and camera_path.json (nerfstudio's
format, with times: it renders again with ``camera-path``).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imageio.v2 as imageio
import numpy as np
import torch
import tyro
from rich.console import Console
from rich.progress import track

from semdyn.errors import InputError, SemdynError
from semdyn.export import TrainedRun, load_run
from semdyn.outputs import make_output_folder
from semdyn.paths import CameraPath, write_camera_path_json
from semdyn.paths.build import Kind, PathOptions, build_path, check_path_options
from semdyn.train.evaluate import colorize_depth
from semdyn.viewer.extras import render_extras, render_view, visible_mask

Output = Literal["rgb", "depth", "groups"]


@dataclass(frozen=True)
class RenderConfig:
    """A render of a trained run along one trajectory."""

    trajectory: tyro.conf.Positional[Kind]
    """dataset, interpolate, lane-shift, frozen, timelapse or camera-path."""
    checkpoint: Path
    """A semdyn-train checkpoint (step-*.pt) or run folder (its newest checkpoint)."""
    path: tyro.conf.OmitArgPrefixes[PathOptions] = PathOptions()
    """Trajectory options."""
    output_dir: Path | None = None
    """Default <run folder>/renders/<trajectory>."""
    outputs: tuple[Output, ...] = ("rgb", "depth", "groups")
    """What to write: rgb, depth (turbo, inverse depth), groups (rgb overlaid with the group colours)."""
    fps: float = 10.0
    """Frame rate of the videos."""
    video: bool = True
    """Write an MP4 per output besides the PNG frames."""
    hide_groups: tuple[int, ...] = ()
    """Group ids to leave out of the render (e.g. every car)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    data: Path | None = None
    """The run's sequence folder, where it has moved since training (default: the path in the run's config)."""


@torch.no_grad()
def render_frame(run: TrainedRun, path: CameraPath, i: int, keep: torch.Tensor | None, outputs: tuple[str, ...]
                 ) -> dict[str, np.ndarray]:  # fmt: skip
    """Frame i of the path as uint8 [H, W, 3] images by output name."""
    dev = run.device
    viewmats, Ks = path.viewmats[i : i + 1].to(dev), path.Ks[i : i + 1].to(dev)
    out = render_view(run.model, viewmats, Ks, path.width, path.height, float(path.times[i]), keep)
    rgb = out["rgb"][0].clamp(0, 1).cpu()
    images = {"rgb": (rgb.numpy() * 255).round().astype(np.uint8)}
    if "depth" in outputs:
        images["depth"] = colorize_depth(
            out["depth"][0, ..., 0].cpu().numpy(), out["accumulation"][0, ..., 0].cpu().numpy()
        )
    if "groups" in outputs:
        extras = render_extras(
            run.model, out["gaussians"], viewmats, Ks, path.width, path.height, run.group_ids, run.class_ids
        )
        overlay = 0.45 * rgb + 0.55 * extras["groups"][0].cpu()
        images["groups"] = (overlay.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return {k: v for k, v in images.items() if k in outputs}


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))  # H.264 needs even sizes


def main(config: RenderConfig) -> dict[str, Path]:
    """Render every frame of the trajectory; returns the written videos and camera_path.json by name."""
    if not config.checkpoint.exists():
        raise InputError(f"--checkpoint {config.checkpoint}: no such checkpoint file or run folder")
    if not (math.isfinite(config.fps) and config.fps > 0):
        raise InputError(f"--fps {config.fps}: give a positive frame rate")
    check_path_options(config.path)
    run = load_run(config.checkpoint, config.device, data_dir=config.data)
    path = build_path(config.trajectory, run.data, config.path)
    out_dir = config.output_dir or run.checkpoint.parent.parent / "renders" / config.trajectory
    make_output_folder(out_dir, "--output-dir")
    keep = visible_mask(run.group_ids, run.class_ids, config.hide_groups, ()).to(run.device)
    written = {"camera_path": write_camera_path_json(out_dir / "camera_path.json", path, config.fps,
                                                     {"trajectory": config.trajectory})}  # fmt: skip
    writers = {}
    for name in config.outputs:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        if config.video:
            tmp = out_dir / f".{name}.tmp{os.getpid()}.mp4"
            writers[name] = (imageio.get_writer(tmp, fps=config.fps, macro_block_size=1), tmp)
    try:
        for i in track(range(len(path)), description=f"rendering {config.trajectory}"):
            for name, image in render_frame(run, path, i, keep, config.outputs).items():
                imageio.imwrite(out_dir / name / f"{i:05d}.png", image)
                if name in writers:
                    writers[name][0].append_data(_even(image))
        for name, (writer, tmp) in writers.items():
            writer.close()
            os.replace(tmp, out_dir / f"{name}.mp4")
            written[name] = out_dir / f"{name}.mp4"
    finally:  # an error or Ctrl-C mid-render leaves no temporary video behind
        for writer, tmp in writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
    return written


if __name__ == "__main__":
    console = Console()
    try:
        cfg = tyro.cli(RenderConfig)
        for key, file in main(cfg).items():
            console.print(f"{key}: {file}  ({file.stat().st_size / 1e6:.2f} MB)")
    except SemdynError as err:
        console.print(f"[bold red]error:[/bold red] {err}", soft_wrap=True)  # one line, however long
        sys.exit(2)
