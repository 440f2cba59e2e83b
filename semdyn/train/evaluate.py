"""Evaluate a trained scene on the held-out frames and write what people look at: renders and a video."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch
from rich.progress import track

from semdyn.eval.image import aggregate_dynamic_psnr, get_lpips_metric, psnr, ssim
from semdyn.scene.dynamic import DynamicScene
from semdyn.train.data import SceneData

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
    psnrs, ssims, lpipss, dyn = [], [], [], []
    for i in track(indices.tolist(), description="evaluating"):
        out = render_frame(model, data, i, device)
        pred, gt = out["rgb"][0].cpu(), data.images[i]
        psnrs.append(float(psnr(pred, gt)))
        ssims.append(float(ssim(pred, gt)))
        if lpips_metric.available:
            lpipss.append(float(lpips_metric(pred, gt)))
        if data.instance_masks is not None:
            dyn.append((pred, gt, data.instance_masks[i]))
        if out_dir is not None:
            frame = data.sequence.frames[i]
            row = np.concatenate(
                [
                    _to_u8(gt),
                    _to_u8(pred),
                    colorize_depth(out["depth"][0, ..., 0].cpu().numpy(), out["accumulation"][0, ..., 0].cpu().numpy()),
                ],
                1,
            )
            (out_dir / "test").mkdir(parents=True, exist_ok=True)
            imageio.imwrite(out_dir / "test" / f"{frame.camera}_{Path(frame.file_path).stem}.png", row)
    metrics: dict[str, Any] = {
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "lpips": float(np.mean(lpipss)) if lpipss else None,
        "lpips_note": None if lpips_metric.available else lpips_metric.reason,
        "num_gaussians": model.num_gaussians,
        "num_test_images": len(psnrs),
    }
    if dyn:
        summary = aggregate_dynamic_psnr(dyn, data.dynamic_ids)
        metrics["dynamic_psnr"] = None if math.isnan(summary.pooled) else float(summary.pooled)
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


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
    frames = []
    for t in track(times.tolist(), description="rendering video"):
        tiles: dict[int, int] = {}
        for i in range(len(data.times)):
            if float(data.times[i]) == t:
                tiles.setdefault(cams[i], i)
        blank = np.zeros((data.height, data.width, 3), np.uint8)
        pred = [_to_u8(render_frame(model, data, tiles[c], device)["rgb"][0]) if c in tiles else blank for c in columns]
        gt = [_to_u8(data.images[tiles[c]]) if c in tiles else blank for c in columns]
        frame = np.concatenate([np.concatenate(pred, 1), np.concatenate(gt, 1)], 0)
        h, w = frame.shape[:2]
        frames.append(np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0))))  # even sizes for H.264
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
