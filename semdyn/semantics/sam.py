"""SAM automatic masks through segment-anything, from a local checkpoint (nothing is downloaded).

``model_type`` vit_h / vit_l / vit_b load the matching checkpoint file (``sam_vit_b_01ec64.pth`` etc. from the SAM
release). ``random_weights`` builds the model untrained instead: masks are then meaningless and the run says so;
it exists for tests and timing only. ``tiny`` is a 128-pixel, one-block model for fast tests (random weights only).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import torch

from semdyn.errors import InputError, MissingCheckpointError, unreadable_checkpoint

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

log = logging.getLogger("semdyn")

SamModelType = Literal["vit_h", "vit_l", "vit_b", "tiny"]

SAM_CHECKPOINT_NAMES = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
"""The file names of the official SAM release, for the error message of a missing checkpoint."""


@dataclass(frozen=True)
class SamConfig:
    """SAM automatic mask generation."""

    model_type: SamModelType = "vit_b"
    """Backbone: vit_h, vit_l, vit_b (official checkpoints), or tiny (a test model, random weights only)."""
    checkpoint: Path | None = None
    """Local SAM checkpoint file (e.g. sam_vit_b_01ec64.pth); required unless --random-weights."""
    points_per_side: int = 32
    """Grid of point prompts per image side (points_per_side**2 prompts)."""
    points_per_batch: int = 64
    """Prompts decoded together (memory vs speed; does not change the masks)."""
    pred_iou_thresh: float = 0.88
    """Masks whose predicted IoU is below this are dropped."""
    stability_score_thresh: float = 0.95
    """Masks whose stability score (IoU across mask-threshold offsets) is below this are dropped."""
    box_nms_thresh: float = 0.7
    """Box IoU above which the lower-scoring of two masks is dropped."""
    min_mask_area: int = 16
    """Masks with fewer pixels are dropped."""

    def output_params(self) -> dict[str, object]:
        """The options that change the masks (part of the cache key)."""
        ckpt = None if self.checkpoint is None else Path(self.checkpoint).name
        return dict(
            model_type=self.model_type,
            checkpoint=ckpt,
            points_per_side=self.points_per_side,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            box_nms_thresh=self.box_nms_thresh,
            min_mask_area=self.min_mask_area,
        )


def _build_tiny() -> Sam:
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    dim, size, patch = 32, 128, 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=size,
            patch_size=patch,
            embed_dim=dim,
            depth=1,
            num_heads=2,
            mlp_ratio=2,
            out_chans=dim,
            # annotated type[Module], but only called (segment_anything's own build_sam passes this partial)
            norm_layer=cast(type[torch.nn.Module], partial(torch.nn.LayerNorm, eps=1e-6)),
            qkv_bias=True,
            use_rel_pos=True,
            window_size=0,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=dim,
        ),
    )


def load_sam(config: SamConfig, device: torch.device, random_weights: bool = False) -> Sam:
    """The SAM model of ``config`` on ``device`` in eval mode.

    Raises:
        MissingCheckpointError: no checkpoint configured or the file is absent (and not ``random_weights``).
        InputError: ``tiny`` without ``random_weights``.
    """
    from segment_anything import sam_model_registry

    if config.model_type == "tiny":
        if not random_weights:
            raise InputError("--sam.model-type tiny is a test model and needs --random-weights")
        model = _build_tiny()
    elif random_weights:
        log.warning(
            "semantics: SAM %s runs on RANDOMLY INITIALISED weights: its masks are meaningless", config.model_type
        )
        model = sam_model_registry[config.model_type](checkpoint=None)
    else:
        expected = config.checkpoint or Path(SAM_CHECKPOINT_NAMES[config.model_type])
        if config.checkpoint is None or not Path(config.checkpoint).is_file():
            raise MissingCheckpointError(
                "--sam.checkpoint", expected, f"download the SAM {config.model_type} release checkpoint to that file"
            )
        try:
            model = sam_model_registry[config.model_type](checkpoint=str(config.checkpoint))
        except (RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
            raise unreadable_checkpoint("--sam.checkpoint", config.checkpoint, err) from err
    return model.to(device).eval()


class SamMasker:
    """Automatic masks of one image: ``masks(image [H, W, 3] uint8) -> [M, H, W] bool``, largest first."""

    def __init__(self, config: SamConfig, device: torch.device, random_weights: bool = False) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        if config.points_per_side < 1 or config.points_per_batch < 1:
            raise InputError("--sam.points-per-side and --sam.points-per-batch must be positive")
        self.config = config
        self.model = load_sam(config, device, random_weights)
        self.generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=config.points_per_side,
            points_per_batch=config.points_per_batch,
            pred_iou_thresh=config.pred_iou_thresh,
            stability_score_thresh=config.stability_score_thresh,
            box_nms_thresh=config.box_nms_thresh,
        )

    @torch.no_grad()
    def masks(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"SamMasker.masks: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        records = self.generator.generate(image)
        records = [r for r in records if int(r["area"]) >= self.config.min_mask_area]
        records.sort(key=lambda r: -int(r["area"]))
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack([r["segmentation"] for r in records]).astype(bool)
