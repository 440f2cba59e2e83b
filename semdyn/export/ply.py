"""Per-time PLY export in the standard 3DGS layout, plus group and class ids.

One file holds the Gaussians as they are at one normalised time t (deformation and temporal visibility applied):

``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3 group_id class_id``

as the original 3DGS writes it (and splat viewers read it): f_dc are the degree-0 SH coefficients, f_rest the
higher bands channel-major (every R coefficient, then G, then B), opacity is the logit, scales are logs, rot is a
unit quaternion (w, x, y, z); normals are zero. ``group_id`` and ``class_id`` are int32 (-1 = none).

Units: metres in the sequence's world (the dataparser's recentring and scaling undone) by default, or the model's
normalised units. Going to metres divides positions by the scale and subtracts the translation, and subtracts
log(scale) from the log scales; a rotation in the normalisation would also need the SH rotated, which is not done,
so it is refused unless the SH has degree 0.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from semdyn.conventions import quat_multiply, rotmat_to_quat
from semdyn.data.sequence import SceneNormalization
from semdyn.errors import InputError
from semdyn.scene.dynamic import DynamicScene

Units = Literal["metres", "normalized"]

MIN_VISIBLE_OPACITY = 1.0 / 255.0
"""A Gaussian below this opacity never changes a pixel (the rasteriser skips alphas under 1/255)."""


def ply_fields(num_rest: int) -> list[str]:
    """Float property names in file order for ``num_rest`` higher-band SH coefficients per channel."""
    return [
        *("x", "y", "z", "nx", "ny", "nz"),
        *(f"f_dc_{i}" for i in range(3)),
        *(f"f_rest_{i}" for i in range(3 * num_rest)),
        "opacity",
        *(f"scale_{i}" for i in range(3)),
        *(f"rot_{i}" for i in range(4)),
    ]


@torch.no_grad()
def gaussians_table(
    model: DynamicScene,
    t: float,
    normalization: SceneNormalization | None = None,
    min_opacity: float = MIN_VISIBLE_OPACITY,
) -> tuple[dict[str, np.ndarray], Tensor]:
    """The PLY columns of the Gaussians at normalised time t, and which Gaussians were kept.

    Args:
        model: the trained scene.
        t: normalised time in [0, 1].
        normalization: metres -> scene units of the run; given, the table is in metres, else in scene units.
        min_opacity: drop Gaussians whose opacity at t is below this (0 keeps every Gaussian).

    Returns:
        ``({name: float32 [M]}, keep [N] bool)`` with the names of :func:`ply_fields`.
    """
    if not 0.0 <= t <= 1.0:
        raise InputError(f"time {t} is outside the sequence's normalised range [0, 1]")
    g = model.gaussians_at(t)
    keep = g["opacities"] >= min_opacity
    means = g["means"][keep].double()
    quats = torch.nn.functional.normalize(g["quats"][keep].double(), dim=-1)
    log_scales = torch.log(g["scales"][keep].double())
    sh = g["colors"][keep].double()  # [M, K, 3]
    if normalization is not None:
        R = normalization.transform[:, :3]
        if not np.allclose(R, np.eye(3), atol=1e-9):
            if sh.shape[1] > 1:
                raise InputError(
                    "export in metres of a rotated normalisation needs SH rotation; use --units normalized"
                )
            quats = quat_multiply(
                rotmat_to_quat(torch.from_numpy(np.ascontiguousarray(R.T))).to(quats).expand_as(quats), quats
            )
        means = torch.from_numpy(normalization.points_to_metres(means.cpu().numpy()))
        log_scales = log_scales - float(np.log(normalization.scale))
    opacity = g["opacities"][keep].double().clamp(1e-7, 1 - 1e-7)
    rest = sh[:, 1:, :].transpose(1, 2).reshape(len(sh), 3 * (sh.shape[1] - 1))  # channel-major, as 3DGS
    columns = [means.cpu(), torch.zeros(len(sh), 3, dtype=torch.float64), sh[:, 0, :].cpu(), rest.cpu(),
               torch.logit(opacity).cpu()[:, None], log_scales.cpu(), quats.cpu()]  # fmt: skip
    table = torch.cat(columns, dim=1).float().numpy()
    names = ply_fields(sh.shape[1] - 1)
    return {name: table[:, i] for i, name in enumerate(names)}, keep.cpu()


def write_ply(path: Path, table: dict[str, np.ndarray], group_ids: np.ndarray, class_ids: np.ndarray) -> Path:
    """Write a binary little-endian PLY with the float ``table`` columns, then int32 ``group_id`` and
    ``class_id`` [M] each; atomically (temporary file, then rename)."""
    count = len(next(iter(table.values())))
    if len(group_ids) != count or len(class_ids) != count:
        raise InputError(f"write_ply: {len(group_ids)} group ids / {len(class_ids)} class ids for {count} Gaussians")
    dtype = [(name, "f4") for name in table] + [("group_id", "i4"), ("class_id", "i4")]
    vertex = np.empty(count, dtype=dtype)
    for name, column in table.items():
        vertex[name] = column
    vertex["group_id"], vertex["class_id"] = group_ids, class_ids
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(tmp))
    os.replace(tmp, path)
    return path


def export_ply(
    path: Path,
    model: DynamicScene,
    t: float,
    group_ids: Tensor,
    class_ids: Tensor,
    normalization: SceneNormalization | None = None,
    min_opacity: float = MIN_VISIBLE_OPACITY,
) -> int:
    """Write the Gaussians at normalised time t to ``path``; returns how many were written.

    group_ids, class_ids: [N] per-Gaussian ids (-1 = none). normalization: given, positions and scales are in
    metres; None, in the model's units.
    """
    n = model.num_gaussians
    if len(group_ids) != n or len(class_ids) != n:
        raise InputError(f"export_ply: {len(group_ids)} group ids / {len(class_ids)} class ids for {n} Gaussians")
    table, keep = gaussians_table(model, t, normalization, min_opacity)
    groups, classes = group_ids.cpu()[keep].numpy(), class_ids.cpu()[keep].numpy()
    write_ply(path, table, groups.astype(np.int32), classes.astype(np.int32))
    return int(keep.sum())


def parse_times(spec: str, frame_times: np.ndarray) -> list[float]:
    """``"0,0.5,1"`` -> those normalised times; ``"all"`` -> every distinct frame time (sorted).

    Raises :class:`InputError` naming ``--times`` for anything else or a time outside [0, 1].
    """
    if spec.strip().lower() == "all":
        return sorted({round(float(t), 9) for t in frame_times})
    try:
        times = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError as err:
        raise InputError(f"--times {spec!r}: give comma-separated numbers in [0, 1] or 'all'") from err
    if not times or any(not 0.0 <= t <= 1.0 for t in times):
        raise InputError(f"--times {spec!r}: give comma-separated numbers in [0, 1] or 'all'")
    return times
