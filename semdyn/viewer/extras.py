"""What the viewer and the render script show beyond RGB: groups, classes, deformation magnitude, and hiding chosen
groups or classes.

One extra rasterisation draws every per-Gaussian quantity at once as a feature image (D = 3 + 3 + 1 channels): the
group colour, the class colour and the deformation magnitude ``|dx|``. Colours are blended like RGB; the scalar is
divided by the accumulated alpha (its expected value along the ray). The text-query ``relevancy`` is scored per pixel
on the decoded feature field (:func:`semdyn.semantics.query.relevancy_image`), not here.
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
"""Names of the extra outputs of the viewer: groups [H, W, 3], classes [H, W, 3], deformation [H, W, 1] (scene units)
from :func:`render_extras`, and the text query's relevancy [H, W, 1] in [0, 1] (the nerfstudio model's)."""


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
) -> dict[str, Tensor]:
    """groups, classes [C, H, W, 3] and deformation [C, H, W, 1] for C cameras, from the Gaussians a render used.

    Args:
        gaussians: ``render_view(...)["gaussians"]`` (the deformed Gaussians, hidden ones transparent).
        group_ids, class_ids: [N] int64 (-1 = none, drawn grey).
    """
    g = gaussians
    n = g["means"].shape[0]
    dx = g.get("dx")
    motion = dx.norm(dim=-1) if dx is not None else g["means"].new_zeros(n)
    features = torch.cat(
        [id_colors(group_ids.to(motion.device)), id_colors(class_ids.to(motion.device)), motion[:, None]], dim=1
    )
    out = render(g["means"], g["quats"], g["scales"], g["opacities"], features, viewmats, Ks, width, height,
                 sh_degree=None, config=scene.config.render)  # fmt: skip
    image, alpha = out.image, out.alpha.clamp_min(1e-6)
    return {
        "groups": image[..., 0:3].clamp(0, 1),
        "classes": image[..., 3:6].clamp(0, 1),
        "deformation": image[..., 6:7] / alpha,
    }
