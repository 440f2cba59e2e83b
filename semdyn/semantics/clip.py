"""open_clip loading from a local ``pretrained=`` file, and text / image-patch encoding (unit-norm embeddings).

Nothing is downloaded: ``pretrained`` must be a local checkpoint file (e.g. ``open_clip_pytorch_model.bin`` of the
model's hub release). ``random_weights`` builds the model untrained instead (tests and timing only; the run says so).
``model_config`` registers an extra open_clip model config JSON (e.g. a tiny model for tests) before building.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from semdyn.errors import InputError, MissingCheckpointError, unreadable_checkpoint

log = logging.getLogger("semdyn")


@dataclass(frozen=True)
class ClipConfig:
    """The CLIP model that encodes mask patches and dictionary prompts."""

    model_name: str = "ViT-B-16"
    """open_clip model name (its architecture config)."""
    pretrained: Path | None = None
    """Local open_clip checkpoint file for model_name; required unless --random-weights."""
    model_config: Path | None = None
    """Optional open_clip model config JSON to register first (its file stem is the model name)."""
    batch_size: int = 32
    """Patches encoded together."""

    def output_params(self) -> dict[str, object]:
        """The options that change the embeddings (part of the cache key)."""
        cfg = None if self.model_config is None else Path(self.model_config).read_text()
        ckpt = None if self.pretrained is None else Path(self.pretrained).name
        return dict(model_name=self.model_name, pretrained=ckpt, model_config=cfg)


class ClipEncoder:
    """A CLIP model in eval mode on a device, with its tokenizer and image normalisation."""

    def __init__(self, config: ClipConfig, device: torch.device, random_weights: bool = False) -> None:
        import open_clip

        if config.model_config is not None:
            if not Path(config.model_config).is_file():
                raise InputError(f"--clip.model-config {config.model_config}: no such file")
            open_clip.add_model_config(config.model_config)
        if config.model_name not in open_clip.list_models():
            raise InputError(f"--clip.model-name {config.model_name!r} is not an open_clip model")
        pretrained = None
        if random_weights:
            log.warning(
                "semantics: CLIP %s runs on RANDOMLY INITIALISED weights: matches are meaningless", config.model_name
            )
        else:
            if config.pretrained is None or not Path(config.pretrained).is_file():
                expected = config.pretrained or Path(f"<{config.model_name} open_clip checkpoint>.bin")
                raise MissingCheckpointError(
                    "--clip.pretrained", expected, f"put the {config.model_name} open_clip weights in that file"
                )
            pretrained = str(config.pretrained)
        try:
            self.model = open_clip.create_model(config.model_name, pretrained=pretrained, device=device).eval()
        except (RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
            if pretrained is None:
                raise
            raise unreadable_checkpoint("--clip.pretrained", pretrained, err) from err
        self.tokenizer = open_clip.get_tokenizer(config.model_name)
        self.config = config
        self.device = device
        size = self.model.visual.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        pp = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        self.mean = torch.tensor(pp.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pp.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
        self.dim = int(self.encode_text(["a"]).shape[1])
        """D, the embedding size."""

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Tensor:
        """[P, D] unit-norm text embeddings of the prompts."""
        tokens = self.tokenizer(prompts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def encode_patches(self, patches: Tensor) -> Tensor:
        """[B, D] unit-norm embeddings of patches [B, 3, h, w] (RGB in [0, 1], any size: resized to the model's)."""
        if patches.dim() != 4 or patches.shape[1] != 3:
            raise InputError(f"encode_patches: patches must be [B, 3, h, w], got {list(patches.shape)}")
        if patches.shape[0] == 0:
            return torch.zeros(0, self.dim, device=self.device)
        out = []
        for chunk in patches.split(max(self.config.batch_size, 1)):
            x = F.interpolate(chunk.to(self.device).float(), size=self.image_size, mode="bilinear", antialias=True)
            out.append(F.normalize(self.model.encode_image((x - self.mean) / self.std).float(), dim=-1))
        return torch.cat(out)
