"""Object labels of LiDAR points, read from the 2D ID maps of the views captured with them.

A point of a sweep is projected into every view of its frame time; where it is the nearest point of its pixel (it is
not hidden behind the surface the view shows there) it takes that pixel's label. The rigid objects' trajectories
are then placed on their own returns (:mod:`semdyn.scene.registration`) rather than on the Gaussians that happen to
be labelled, which slide along a car as the view changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from semdyn.data.frame_cache import FrameCache


@torch.no_grad()
def label_points(
    points: Tensor,
    point_times: Tensor,
    times: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    id_maps: Tensor | FrameCache,
    views: list[int],
    window: float,
    depth_tolerance: float = 0.05,
) -> Tensor:
    """The label of every point in the views captured within ``window`` of it.

    Args:
        points: [P, 3] world points (scene units).
        point_times: [P] their capture times (normalised).
        times: [F] each view's time (normalised).
        viewmats: [F, 4, 4] world-to-camera (OpenCV axes).
        Ks: [F, 3, 3] intrinsics at the ID maps' resolution.
        id_maps: [F, H, W] integer labels (0: none).
        views: the views to read (e.g. the training views).
        window: a view reads the points within this much normalised time of its own.
        depth_tolerance: relative depth above the nearest point of a pixel within which a point still counts as
            seen there (the pixel's surface).

    Returns:
        [P] int64 labels, 0 where no view labels the point (the first view that labels it wins).
    """
    h, w = id_maps.shape[1:3]
    out = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
    for f in views:
        sel = ((point_times - times[f]).abs() <= window).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        pc = points[sel] @ viewmats[f, :3, :3].T.to(points) + viewmats[f, :3, 3].to(points)
        z = pc[:, 2]
        front = z > 1e-4
        sel, pc, z = sel[front], pc[front], z[front]
        uv = pc[:, :2] / z[:, None] @ Ks[f, :2, :2].T.to(points) + Ks[f, :2, 2].to(points)
        u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        sel, u, v, z = sel[inside], u[inside], v[inside], z[inside]
        pixel = v * w + u
        nearest = torch.full((h * w,), float("inf"), dtype=z.dtype, device=z.device).scatter_reduce(0, pixel, z, "amin")
        seen = z <= nearest[pixel] * (1 + depth_tolerance)
        lab = id_maps[f].to(points.device).reshape(-1)[pixel].to(torch.int64)
        take = seen & (lab > 0) & (out[sel] == 0)
        out[sel[take]] = lab[take]
    return out


__all__ = ["label_points"]
