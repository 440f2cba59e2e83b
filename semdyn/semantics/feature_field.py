"""A semantic feature field: a low-dimensional latent per Gaussian, rendered and decoded to CLIP space.

Never rasterise 512-channel CLIP features: each Gaussian carries a ``latent_dim`` latent (a Gaussian parameter,
``params["feature_latent"]``, so densification clones/splits/prunes it with the rest); the latents are rendered
through :func:`semdyn.render.render` as plain features with the frame's deformed geometry (detached: the feature
loss moves latents and decoder, never the geometry), and a small MLP decodes each pixel to CLIP space. The target of
a pixel is the CLIP embedding of the smallest mask covering it (cached by ``scripts/extract_semantics.py``); the loss
is ``1 - cos`` over pixels that have one. Text queries then run :func:`semdyn.semantics.query.relevancy` on the
decoded image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semdyn.errors import DataFormatError
from semdyn.render import RenderConfig, render
from semdyn.semantics.cache import frame_key

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData

LATENT_KEY = "feature_latent"
"""Name of the per-Gaussian latent in the scene's parameters."""


@dataclass(frozen=True)
class FeatureFieldConfig:
    """The semantic feature field (needs ``masks=cache``: the per-mask CLIP embeddings come from the cache)."""

    latent_dim: int = 8
    """Channels of the per-Gaussian latent that is rendered."""
    hidden: int = 64
    """Width of the decoder MLP's hidden layer."""
    latent_lr: float = 5e-3
    """Adam learning rate of the latents."""
    decoder_lr: float = 1e-3
    """Adam learning rate of the decoder."""
    weight: float = 0.1
    """Weight of the ``feature`` loss term (1 - cosine similarity)."""


class FeatureDecoder(nn.Module):
    """[..., latent_dim] -> [..., clip_dim] unit-norm CLIP-space features."""

    def __init__(self, latent_dim: int, clip_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, clip_dim))

    def forward(self, latent: Tensor) -> Tensor:
        return F.normalize(self.net(latent), dim=-1)


def render_latent(
    gaussians: dict[str, Tensor],
    latent: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    config: RenderConfig = RenderConfig(),
) -> Tensor:
    """[C, H, W, d] latents rendered with the (detached) geometry of ``gaussians`` (``DynamicScene.gaussians_at``)."""
    g = {k: gaussians[k].detach() for k in ("means", "quats", "scales", "opacities")}
    out = render(
        g["means"], g["quats"], g["scales"], g["opacities"], latent, viewmats, Ks, width, height, config=config
    )
    return out.image


def cached_clip_dim(run_dir: Path) -> int:
    """D, the size of the CLIP embeddings an extract_semantics run cached (read from one frame's ``.npz``)."""
    frames = sorted((Path(run_dir) / "frames").glob("*.npz"))
    if not frames:
        raise DataFormatError(run_dir, "holds no cached frames (frames/*.npz); run scripts/extract_semantics.py")
    with np.load(frames[0]) as z:
        return int(z["embeddings"].shape[1])


def feature_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``1 - cos(pred, target)`` over valid pixels. pred, target: [C, H, W, D]; valid: [C, H, W] bool."""
    if not bool(valid.any()):
        return pred.sum() * 0.0
    cos = (F.normalize(pred[valid], dim=-1) * F.normalize(target[valid].to(pred), dim=-1)).sum(-1)
    return (1.0 - cos).mean()


class PixelTargets:
    """Per-frame CLIP targets from an extract_semantics run: embeddings [M, D] and the mask index map, subsampled to
    the training resolution; ``target(i) -> ([H, W, D], valid [H, W])`` built on demand (never [F, H, W, D])."""

    def __init__(self, run_dir: Path, data: SceneData) -> None:
        import json

        meta = json.loads((Path(run_dir) / "meta.json").read_text())
        self.embeddings: list[Tensor] = []
        self.index: list[Tensor] = []
        h, w = data.height, data.width
        for frame in data.sequence.frames:
            path = Path(run_dir) / "frames" / f"{frame_key(meta['run_key'], frame.image_path)}.npz"
            if not path.is_file():
                raise DataFormatError(path, f"no cached CLIP features for {frame.image_path}; run extract_semantics")
            z = np.load(path)
            idx = torch.from_numpy(z["mask_index"].astype(np.int64))
            fy, fx = idx.shape[0] // h, idx.shape[1] // w
            self.index.append(idx[fy // 2 :: fy, fx // 2 :: fx][:h, :w])
            self.embeddings.append(torch.from_numpy(z["embeddings"].astype(np.float32)))
        self.dim = int(self.embeddings[0].shape[1])

    def target(self, i: int) -> tuple[Tensor, Tensor]:
        idx, emb = self.index[i], self.embeddings[i]
        valid = idx >= 0
        if emb.shape[0] == 0:
            return torch.zeros(*idx.shape, self.dim), valid
        return emb[idx.clamp_min(0)], valid
