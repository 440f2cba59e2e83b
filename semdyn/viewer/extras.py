"""What the viewer and the render script show beyond RGB: groups, classes, deformation magnitude, relevancy, and
hiding chosen groups or classes.

One extra rasterisation draws every per-Gaussian quantity at once as a feature image (D = 3 + 3 + 1 + 1 channels):
the group colour, the class colour, the deformation magnitude ``|dx|`` and, when given, a text-query relevancy.
Colours are blended like RGB; the scalars are divided by the accumulated alpha (their expected value along the ray).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from semdyn.render import render
from semdyn.scene.dynamic import DynamicScene
from semdyn.viewer.colors import id_colors

EXTRA_OUTPUTS = ("groups", "classes", "deformation", "relevancy")
"""Names of the extra outputs: [C, H, W, 3], [C, H, W, 3], [C, H, W, 1] (scene units), [C, H, W, 1] in [0, 1]
(relevancy only when a per-Gaussian relevancy is given)."""


def visible_mask(
    group_ids: Tensor, class_ids: Tensor, hide_groups: Iterable[int], hide_classes: Iterable[int]
) -> Tensor:
    """[N] bool: Gaussians whose group is not in ``hide_groups`` and whose class is not in ``hide_classes``."""
    keep = ~torch.isin(
        group_ids, torch.tensor(sorted(set(hide_groups)), dtype=group_ids.dtype, device=group_ids.device)
    )
    hidden_classes = torch.tensor(sorted(set(hide_classes)), dtype=class_ids.dtype, device=class_ids.device)
    return keep & ~torch.isin(class_ids, hidden_classes)


def render_view(
    scene: DynamicScene,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    t: float,
    keep: Tensor | None = None,
    step: int | None = None,
) -> dict[str, Any]:
    """:meth:`DynamicScene.forward` with the Gaussians outside ``keep`` ([N] bool) made fully transparent.

    Returns rgb [C, H, W, 3], depth [C, H, W, 1], accumulation [C, H, W, 1], meta and gaussians (as forward).
    """
    if keep is None or bool(keep.all()):
        return scene(viewmats, Ks, width, height, t, step=step)
    g = dict(scene.gaussians_at(t))
    g["opacities"] = g["opacities"] * keep.to(g["opacities"])
    return scene.render_gaussians(g, viewmats, Ks, width, height, step) | {"time": t}


def render_extras(
    scene: DynamicScene,
    gaussians: dict[str, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    group_ids: Tensor,
    class_ids: Tensor,
    relevancy: Tensor | None = None,
) -> dict[str, Tensor]:
    """The extra outputs of :data:`EXTRA_OUTPUTS` for C cameras, from the Gaussians a render used.

    Args:
        gaussians: ``render_view(...)["gaussians"]`` (the deformed Gaussians, hidden ones transparent).
        group_ids, class_ids: [N] int64 (-1 = none, drawn grey).
        relevancy: [N] per-Gaussian text-query relevancy in [0, 1], or None (then no "relevancy" output).
    """
    g = gaussians
    n = g["means"].shape[0]
    dx = g.get("dx")
    motion = dx.norm(dim=-1) if dx is not None else g["means"].new_zeros(n)
    rel = relevancy.to(motion) if relevancy is not None else motion.new_zeros(n)
    features = torch.cat(
        [id_colors(group_ids.to(motion.device)), id_colors(class_ids.to(motion.device)), motion[:, None], rel[:, None]],
        dim=1,
    )
    out = render(g["means"], g["quats"], g["scales"], g["opacities"], features, viewmats, Ks, width, height,
                 sh_degree=None, config=scene.config.render)  # fmt: skip
    image, alpha = out.image, out.alpha.clamp_min(1e-6)
    out = {
        "groups": image[..., 0:3].clamp(0, 1),
        "classes": image[..., 3:6].clamp(0, 1),
        "deformation": image[..., 6:7] / alpha,
    }
    if relevancy is not None:
        out["relevancy"] = (image[..., 7:8] / alpha).clamp(0, 1)
    return out
