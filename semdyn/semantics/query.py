"""Text queries against CLIP-space features: LERF's relevancy score (Kerr et al., 2023, Eq. 1).

For a positive text embedding and M canonical negatives ("object", "things", "stuff", "texture"), a feature's
relevancy is ``min_i softmax([f.pos, f.neg_i])[0]``: how much more it resembles the query than the most similar
negative. 0.5 means no preference; values near 1 answer the query.

:func:`relevancy_image` scores a rendered feature-field latent image (:func:`semdyn.semantics.feature_field.
render_latent`) pixel by pixel, decoding a bounded number of pixels at a time: the viewer's ``relevancy`` output and
the render script share it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from semdyn.errors import InputError

CANONICAL_NEGATIVES = ("object", "things", "stuff", "texture")
"""LERF's default negative phrases."""


def relevancy(features: Tensor, positive: Tensor, negatives: Tensor, temperature: float = 10.0) -> Tensor:
    """Relevancy of each feature to a text query.

    Args:
        features: [H, W, D] or [P, D] CLIP-space features (normalised here).
        positive: [D] the query's text embedding.
        negatives: [M, D] negative phrases' text embeddings (M >= 1).
        temperature: multiplies the cosine similarities before the softmax (CLIP's logit scale is ~100; LERF
            works with raw dot products of unit vectors; 10 spreads the scores over [0, 1] without saturating).

    Returns:
        [H, W] or [P] relevancy in [0, 1] (features' leading shape).
    """
    if features.dim() not in (2, 3):
        raise InputError(f"relevancy: features must be [H, W, D] or [P, D], got {list(features.shape)}")
    d = features.shape[-1]
    if positive.shape != (d,):
        raise InputError(f"relevancy: positive must be [D] with D={d}, got {list(positive.shape)}")
    if negatives.dim() != 2 or negatives.shape[1] != d or negatives.shape[0] < 1:
        raise InputError(f"relevancy: negatives must be [M, D] with M >= 1 and D={d}, got {list(negatives.shape)}")
    f = F.normalize(features.float(), dim=-1)
    pos = f @ F.normalize(positive.float().to(f.device), dim=0)  # [...]
    neg = f @ F.normalize(negatives.float().to(f.device), dim=-1).T  # [..., M]
    pair = torch.stack([pos[..., None].expand_as(neg), neg], dim=-1) * temperature  # [..., M, 2]
    return pair.softmax(dim=-1)[..., 0].min(dim=-1).values


def relevancy_image(
    latent_image: Tensor,
    decoder: Callable[[Tensor], Tensor],
    positive: Tensor,
    negatives: Tensor,
    temperature: float = 10.0,
    chunk: int = 1 << 16,
) -> Tensor:
    """Relevancy of every pixel of a rendered feature-field latent to a text query.

    The latents are decoded to CLIP space ``chunk`` pixels at a time, so a full-resolution image never holds
    [H, W, 512] CLIP features at once.

    Args:
        latent_image: [..., H, W, d] rendered latents (e.g. [C, H, W, d] from ``render_latent``).
        decoder: [P, d] latents -> [P, D] CLIP-space features (the feature field's ``FeatureDecoder``).
        positive: [D] the query's text embedding. negatives: [M, D] the negative phrases' embeddings.
        temperature: as in :func:`relevancy`.
        chunk: pixels decoded together (memory: about ``chunk * D * 4`` bytes).

    Returns:
        [..., H, W] relevancy in [0, 1], on the latents' device.
    """
    if latent_image.dim() < 3:
        raise InputError(f"relevancy_image: latent_image must be [..., H, W, d], got {list(latent_image.shape)}")
    if chunk < 1:
        raise InputError(f"relevancy_image: chunk must be at least 1, got {chunk}")
    flat = latent_image.reshape(-1, latent_image.shape[-1])
    scores = [relevancy(decoder(part), positive, negatives, temperature) for part in flat.split(chunk)]
    out = torch.cat(scores) if scores else flat.new_zeros(0)
    return out.reshape(latent_image.shape[:-1])
