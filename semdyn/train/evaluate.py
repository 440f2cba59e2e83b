"""Evaluate a trained scene on the held-out frames and write what people look at: renders and a video."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch
from rich.progress import track

from semdyn.data.scene_data import SceneData
from semdyn.eval.image import aggregate_dynamic_psnr, get_lpips_metric, psnr, ssim
from semdyn.scene.dynamic import DynamicScene

log = logging.getLogger("semdyn")


def colorize_depth(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """[H, W] depth -> [H, W, 3] uint8 (inverse depth, turbo-like ramp; black where empty)."""
    inv = np.where(alpha > 0.05, 1.0 / np.maximum(depth, 1e-6), 0.0)
    hi = np.percentile(inv[alpha > 0.05], 99) if (alpha > 0.05).any() else 1.0
    x = np.clip(inv / max(hi, 1e-9), 0, 1)
    rgb = np.stack(
        [np.clip(1.5 - abs(4 * x - 3), 0, 1), np.clip(1.5 - abs(4 * x - 2), 0, 1), np.clip(1.5 - abs(4 * x - 1), 0, 1)],
        axis=-1,
    )
    return (rgb * (alpha[..., None] > 0.05) * 255).astype(np.uint8)


def _to_u8(img: torch.Tensor) -> np.ndarray:
    return (img.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def render_frame(model: DynamicScene, data: SceneData, index: int, device: torch.device) -> dict[str, Any]:
    """Render frame ``index`` of ``data`` at its camera and time (C = 1)."""
    return model(
        data.viewmats[index : index + 1].to(device),
        data.Ks[index : index + 1].to(device),
        data.width,
        data.height,
        float(data.times[index]),
    )


@torch.no_grad()
def evaluate(
    model: DynamicScene,
    data: SceneData,
    device: torch.device,
    out_dir: Path | None = None,
    indices: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Image metrics on the held-out frames (PSNR, SSIM, LPIPS when its weights are local, dynamic-region PSNR).

    Writes ``out_dir/test/<camera>_<frame>.png`` (ground truth | render | depth) and ``out_dir/metrics.json``.
    """
    indices = data.test_idx if indices is None else indices
    lpips_metric = get_lpips_metric(device=device)
    psnrs: list[float] = []
    ssims: list[float] = []
    lpipss: list[float] = []

    def frames() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Render, score and write one test frame at a time; yields ``(pred, gt, mask)`` for the dynamic PSNR (only
        the running sums are kept, so memory does not grow with the test split)."""
        for i in track(indices.tolist(), description="evaluating"):
            out = render_frame(model, data, i, device)
            pred, gt = out["rgb"][0].cpu(), data.image(i)
            psnrs.append(float(psnr(pred, gt)))
            ssims.append(float(ssim(pred, gt)))
            if lpips_metric.available:
                value = lpips_metric(pred, gt)
                assert value is not None  # None only when unavailable
                lpipss.append(float(value))
            if out_dir is not None:
                frame = data.sequence.frames[i]
                depth = out["depth"][0, ..., 0].cpu().numpy()
                row = np.concatenate(
                    [_to_u8(gt), _to_u8(pred), colorize_depth(depth, out["accumulation"][0, ..., 0].cpu().numpy())], 1
                )
                (out_dir / "test").mkdir(parents=True, exist_ok=True)
                imageio.imwrite(out_dir / "test" / f"{frame.camera}_{Path(frame.file_path).stem}.png", row)
            yield pred, gt, (data.mask(i) if data.instance_masks is not None else None)

    summary = None
    if data.instance_masks is not None:
        summary = aggregate_dynamic_psnr(((p, g, m) for p, g, m in frames() if m is not None), data.dynamic_ids)
    else:
        for _ in frames():
            pass
    metrics: dict[str, Any] = {
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "lpips": float(np.mean(lpipss)) if lpipss else None,
        "lpips_note": None if lpips_metric.available else lpips_metric.reason,
        "num_gaussians": model.num_gaussians,
        "num_test_images": len(psnrs),
    }
    if summary is not None and psnrs:
        metrics["dynamic_psnr"] = None if math.isnan(summary.pooled) else float(summary.pooled)
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _video_frame(
    model: DynamicScene, data: SceneData, device: torch.device, cams: list[int], columns: list[int], t: float
) -> np.ndarray:
    """[2 H (+1), W * len(columns) (+1), 3] uint8: the renders over the ground truth of every camera at time ``t``,
    padded to even sizes for H.264."""
    tiles: dict[int, int] = {}
    for i in range(len(data.times)):
        if float(data.times[i]) == t:
            tiles.setdefault(cams[i], i)
    blank = np.zeros((data.height, data.width, 3), np.uint8)
    pred = [_to_u8(render_frame(model, data, tiles[c], device)["rgb"][0]) if c in tiles else blank for c in columns]
    gt = [_to_u8(data.image(tiles[c])) if c in tiles else blank for c in columns]
    frame = np.concatenate([np.concatenate(pred, 1), np.concatenate(gt, 1)], 0)
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


@torch.no_grad()
def render_video(model: DynamicScene, data: SceneData, device: torch.device, path: Path, fps: int = 10) -> Path:
    """An MP4 of every timestamp, all cameras side by side (render over ground truth), at the data's frame rate.

    One column per camera, so every frame has one size: a camera with no image at a time (a dropped frame) leaves
    its column black, and of two images at one (camera, time) the first in the sequence's order is shown. The video
    is written to a temporary file and renamed; a failure removes the temporary file.
    """
    cams = [int(c) for c in data.sequence.camera_indices]
    columns = sorted(set(cams))
    times = torch.unique(data.times)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        # Frames go to the encoder one at a time (a list of them would grow with the sequence).
        # entered apart: imageio's stub types __enter__ as the reader/writer base class, which has no append_data
        writer = imageio.get_writer(tmp, fps=fps, macro_block_size=1)
        with writer:
            for t in track(times.tolist(), description="rendering video"):
                writer.append_data(_video_frame(model, data, device, cams, columns, t))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
