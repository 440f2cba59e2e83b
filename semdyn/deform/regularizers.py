"""Object-wise deformation regularizers (SemDynReg): pure functions of the deformation and the Gaussians' groups.

Once lifting has put Gaussians into groups (object instances of the dictionary), the deformation of each group
is held to what the object can do, at T sampled times:

- ``reg_rigid_position``: a group's deformed centres follow one rigid motion. R, t are fitted per group and
  time by weighted Kabsch (weights = label confidences) and the squared residuals are penalised.
- ``reg_rigid_rotation``: each Gaussian's rotation delta agrees with its group's fitted rotation.
- ``reg_scale``: log-scale deltas are zero inside rigid groups (vehicles) and agree within the other dynamic
  groups (pedestrians).
- ``reg_static``: Gaussians of static groups (road, building, sky, vegetation, pole) do not deform. Better
  still, :func:`deform_mask_from_groups` keeps them out of the deformation field altogether.

Every term is a confidence-weighted mean over the Gaussians it covers (each Gaussian counts once, whatever the
size of its group) and over the T times, so it is 0 when nothing is covered. The cost is O(N T): per-group sums
are segment reductions (``index_add``) over a trash bin for unlabelled Gaussians, the only per-group work is one
batched 3x3 SVD over [T, G], and there is no Python loop over groups.

The rigid fit is not differentiated: R and t are constants of the losses. They are fitted to minimise exactly the
weighted sum of the two rigid terms (the centres' residuals and the rotation deltas' deviations, with the loss
weights; :func:`fit_rigid`), so by the envelope theorem the gradient with R, t held fixed *is* the gradient of the
minimum: detaching loses nothing. It also avoids SVD backward, whose formula divides by differences of singular
values and blows up for groups of one or two points or of collinear points (repeated zero singular values). Fitting
the rotation deltas too is what makes groups of one or two points well posed: their rotation is the one their
Gaussians' deltas agree on, so an exactly rigid motion gives 0 whatever the group size.

Group ids are compact indices 0..G-1 (-1 = unlabelled, ignored); the lifting's label values must be mapped to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from semdyn.conventions import quat_multiply, quat_normalize, quat_to_rotmat, rotmat_to_quat
from semdyn.deform.field import Deformation
from semdyn.errors import InputError
from semdyn.shapes import check_shape


@dataclass(frozen=True)
class GroupRegularizerConfig:
    """Weights and schedule of the object-wise deformation regularizers (a weight of 0 switches a term off)."""

    rigid_position_weight: float = 10.0
    """Weight of reg_rigid_position: mean squared distance (scene units^2; the cameras span about [-1, 1]) of
    deformed centres from their group's best rigid motion."""
    rigid_position_start: int = 0
    """First training step at which reg_rigid_position is applied."""
    rigid_rotation_weight: float = 0.1
    """Weight of reg_rigid_rotation: mean sin^2(angle / 2) between each rotation delta and its group's fitted
    rotation (0 when equal, 1 at 180 degrees)."""
    rigid_rotation_start: int = 0
    """First training step at which reg_rigid_rotation is applied."""
    scale_weight: float = 0.1
    """Weight of reg_scale: mean |ds|^2 in rigid groups, mean |ds - group mean|^2 in the other dynamic groups
    (log-scale units^2)."""
    scale_start: int = 0
    """First training step at which reg_scale is applied."""
    static_weight: float = 1.0
    """Weight of reg_static: mean |dx|^2 + sin^2(angle(dr) / 2) + |ds|^2 over Gaussians of static groups (with
    skip_static_deformation, only over those whose confidence is too low to skip the field)."""
    static_start: int = 0
    """First training step at which reg_static is applied."""
    nonrigid_factor: float = 0.1
    """Factor on the position and rotation terms of dynamic groups that are not rigid (pedestrians): a person is
    close to rigid at driving-scene scale, but not exactly. 0: only rigid groups are fitted."""
    num_times: int = 2
    """Times at which the deformation is regularised per step: the rendered time plus num_times - 1 others, each
    within pair_window of it (the rigid terms score the motion from the rendered time to each other time)."""
    pair_window: float = 0.1
    """Largest distance (normalised time) between the rendered time and a sampled one; a short window pairs times
    at which the same Gaussians are visible."""
    skip_static_deformation: bool = True
    """Gaussians of static groups skip the deformation field (exact identity): no drift, and less compute."""
    static_skip_min_conf: float = 0.5
    """Only Gaussians whose label confidence is at least this skip the field (a doubtful label keeps its motion)."""

    def active_terms(self, step: int) -> tuple[str, ...]:
        """Names of the terms (in :data:`GROUP_TERMS` order) with a positive weight whose start step has been reached
        at ``step``."""
        return tuple(t.name for t in GROUP_TERMS if self.weight(t.name) > 0 and step >= self.start(t.name))

    def weight(self, name: str) -> float:
        """The weight of term ``name`` (the field ``<key>_weight`` of its :data:`GROUP_TERMS` entry)."""
        return float(getattr(self, f"{group_term(name).key}_weight"))

    def start(self, name: str) -> int:
        """The first step of term ``name`` (the field ``<key>_start`` of its :data:`GROUP_TERMS` entry)."""
        return int(getattr(self, f"{group_term(name).key}_start"))


@dataclass(frozen=True)
class GroupLabels:
    """The Gaussians' groups, as lifting produces them. N Gaussians, G groups."""

    ids: Tensor
    """[N] int64 group index in 0..G-1, -1 = unlabelled (ignored by every term)."""
    conf: Tensor
    """[N] float label confidence in [0, 1], the weight of the Gaussian in its group."""
    is_static: Tensor
    """[G] bool: the group is a static dictionary entry (road, building, sky, vegetation, pole)."""
    is_rigid: Tensor
    """[G] bool: the group moves rigidly (vehicles); dynamic groups that are not rigid are pedestrians and such."""

    @property
    def num_groups(self) -> int:
        return int(self.is_static.shape[0])


@dataclass(frozen=True)
class RigidFit:
    """Best rigid motions of G groups at T times (constants: no gradient flows through them)."""

    rot: Tensor
    """[T, G, 3, 3] rotations, det +1 (the identity for groups of zero weight)."""
    src_centroid: Tensor
    """[G, 3] weighted centroid of each group's canonical centres (scene units; 0 for groups of zero weight)."""
    dst_centroid: Tensor
    """[T, G, 3] weighted centroid of each group's deformed centres; the motion is y = rot (x - src) + dst."""


@dataclass(frozen=True)
class TermInputs:
    """What a term's function reads: the covered Gaussians (N' of the N) at T times."""

    means: Tensor
    """[N', 3] canonical centres (scene units)."""
    dx: Tensor
    """[T, N', 3] position deltas (scene units)."""
    dr: Tensor
    """[T, N', 4] rotation deltas (unit quaternions, w first)."""
    ds: Tensor
    """[T, N', 3] log-scale deltas."""
    ids: Tensor
    """[N'] group index (-1 = unlabelled)."""
    weights: dict[str, Tensor]
    """[N'] per-Gaussian weights of each part (see :func:`term_weights`)."""
    num_groups: int
    """G."""
    fit: RigidFit | None
    """The groups' best rigid motions; set whenever a term with ``uses_fit`` is computed."""

    def rigid_fit(self) -> RigidFit:
        if self.fit is None:
            raise RuntimeError("a term that uses the rigid fit was computed without it")
        return self.fit


@dataclass(frozen=True)
class GroupTerm:
    """One object-wise regularizer. Adding one is an entry in :data:`GROUP_TERMS` plus its two config fields
    ``<key>_weight`` and ``<key>_start`` on :class:`GroupRegularizerConfig` (``tests/deform`` checks both exist)."""

    name: str
    """Its name in the loss dict and the logs (``reg_...``)."""
    key: str
    """Prefix of its weight and start-step fields on :class:`GroupRegularizerConfig`."""
    parts: tuple[str, ...]
    """The per-Gaussian weights it reads (keys of :func:`term_weights`): the Gaussians it covers."""
    pairs: bool
    """True: it scores the motion between two times (the rendered one and a sampled one); False: the deformation at
    each sampled time."""
    uses_fit: bool
    """It needs the groups' rigid fit (:func:`fit_rigid`)."""
    fn: Callable[[TermInputs], Tensor]
    """The unweighted term, a scalar."""


# ---------------------------------------------------------------------------------------------------- checks


def _ids(ids: object, dims: dict[str, int]) -> Tensor:
    return check_shape(ids, "[N]", "group_ids", dims=dims, dtype=torch.int64)


def _weights(weights: object, dims: dict[str, int], name: str = "weights") -> Tensor:
    return check_shape(weights, "[N]", name, dims=dims, floating=True)


def _check_same_device(device: torch.device, **tensors: Tensor) -> None:
    for name, x in tensors.items():
        if x.device != device:
            raise InputError(f"{name} is on {x.device} but the means are on {device}; pass all tensors on one device")


def check_labels(labels: GroupLabels, n: int, device: torch.device, values: bool = False) -> None:
    """Raise :class:`InputError` unless ``labels`` fit N Gaussians on ``device``: shapes, dtypes and devices (no
    host sync), and with ``values`` that the ids lie in -1..G-1 (one host sync). Labels are range-checked where
    they enter (a lift's path estimate, a resumed or loaded checkpoint); the per-step regularizers, which densification
    only copies them for, check their shapes."""
    dims = {"N": n}
    _ids(labels.ids, dims)
    _weights(labels.conf, dims, "group_conf")
    static = check_shape(labels.is_static, "[G]", "group_is_static", dims=dims, dtype=torch.bool)
    rigid = check_shape(labels.is_rigid, "[G]", "group_is_rigid", dims=dims, dtype=torch.bool)
    _check_same_device(
        device, group_ids=labels.ids, group_conf=labels.conf, group_is_static=static, group_is_rigid=rigid
    )
    if values and n > 0:
        lo, hi = int(labels.ids.min()), int(labels.ids.max())
        if lo < -1 or hi >= labels.num_groups:
            raise InputError(
                f"group_ids must lie in -1..G-1 = -1..{labels.num_groups - 1} (compact group indices), "
                f"got values from {lo} to {hi}"
            )


# ---------------------------------------------------------------------------------------------------- reductions


def _bins(ids: Tensor, num_groups: int) -> Tensor:
    """[N] bin of each Gaussian: its group, or the trash bin ``num_groups`` when unlabelled (-1)."""
    return torch.where(ids < 0, torch.full_like(ids, num_groups), ids)


def segment_sum(values: Tensor, ids: Tensor, num_groups: int) -> Tensor:
    """Per-group sums of per-Gaussian values, ignoring unlabelled Gaussians. Differentiable.

    Args:
        values: [..., N, D] values (any leading dims, e.g. T times).
        ids: [N] int64 group index, -1 = unlabelled.
        num_groups: G.

    Returns:
        [..., G, D] sums (0 for empty groups).
    """
    lead, n = values.shape[:-2], values.shape[-2]
    width = values.shape[-1] * int(torch.Size(lead).numel())
    flat = values.movedim(-2, 0).reshape(n, width)  # [N, F]: a row per Gaussian (scatter_add on rows is fast)
    index = _bins(ids, num_groups)[:, None].expand(flat.shape)
    out = flat.new_zeros(num_groups + 1, flat.shape[1]).scatter_add(0, index, flat)
    return out[:num_groups].reshape(num_groups, *lead, values.shape[-1]).movedim(0, -2)


def _gather(per_group: Tensor, ids: Tensor, fill: Tensor) -> Tensor:
    """[..., N, *E] value of each Gaussian's group from ``per_group`` [..., G, *E]; ``fill`` [*E] where unlabelled."""
    num_groups, dim = per_group.shape[-1 - fill.dim()], per_group.dim() - 1 - fill.dim()
    pad = fill.expand(*per_group.shape[:dim], 1, *fill.shape)
    return torch.cat([per_group, pad], dim=dim).index_select(dim, _bins(ids, num_groups))


# ---------------------------------------------------------------------------------------------------- rigid fit


def fit_rigid(
    src: Tensor,
    dst: Tensor,
    ids: Tensor,
    weights: Tensor,
    num_groups: int,
    dr: Tensor | None = None,
    fit_weights: tuple[float, float] = (1.0, 0.0),
) -> RigidFit:
    """Per group and time, the rigid motion that minimises the weighted sum of the position and rotation terms:

        a sum_i w_i |R (x_i - c) + d - y_i|^2  +  b sum_i w_i |R(dr_i) - R|_F^2 / 8,   (a, b) = fit_weights,

    i.e. weighted Kabsch (b = 0), rotation averaging (a = 0) or both. c and d are the weighted centroids; R
    maximises tr(R^T A) with A = a sum w (y - d)(x - c)^T + b/8 sum w R(dr_i), from one batched SVD of A [T, G, 3, 3]
    in float64. Fitting the sum of the two terms (with the loss weights) makes R, t their exact joint minimiser, so
    holding them constant in the losses gives the exact gradient of the minimum (envelope theorem), and the
    rotation deltas decide R where the centres cannot: a group of one or two points, or of collinear points.

    Degenerate groups never give NaN: zero weight gives the identity; where A is rank-deficient (a group of one or
    collinear points with b = 0) R is one of the optimal rotations; reflections are corrected (det R = +1).
    Non-finite inputs give non-finite centroids but never a failing SVD.

    Args:
        src: [N, 3] canonical centres (scene units).
        dst: [T, N, 3] deformed centres at T times.
        ids: [N] int64 group index, -1 = unlabelled (ignored).
        weights: [N] non-negative weights w (label confidences).
        num_groups: G.
        dr: [T, N, 4] rotation deltas (w, x, y, z); needed when b > 0.
        fit_weights: (a, b), the weights of the position and rotation terms.

    Returns:
        The :class:`RigidFit`, detached, in the dtype of ``src``.
    """
    dims: dict[str, int] = {}
    check_shape(src, "[N, 3]", "src", dims=dims, floating=True)
    check_shape(dst, "[T, N, 3]", "dst", dims=dims, floating=True)
    _ids(ids, dims)
    _weights(weights, dims)
    a, b = fit_weights
    if b > 0:
        check_shape(dr, "[T, N, 4]", "dr", dims=dims, floating=True)
    with torch.no_grad():
        src, dst, w = src.detach(), dst.detach(), weights.detach().to(src.dtype)
        w = torch.where(ids < 0, torch.zeros_like(w), w)[:, None]  # [N, 1]
        wsum = segment_sum(w, ids, num_groups).clamp_min(torch.finfo(src.dtype).tiny)  # [G, 1]
        src_c = segment_sum(w * src, ids, num_groups) / wsum  # [G, 3]
        dst_c = segment_sum(w * dst, ids, num_groups) / wsum  # [T, G, 3]
        zero = src.new_zeros(3)
        p = src - _gather(src_c, ids, zero)  # [N, 3], centred (two-pass: no cancellation far from the origin)
        q = dst - _gather(dst_c, ids, zero)  # [T, N, 3]
        per = (a * q)[..., :, None] * (w * p)[None, :, None, :]  # [T, N, 3, 3] = a w q p^T
        if b > 0:
            assert dr is not None  # checked above: b > 0 needs dr
            per = per + (b / 8.0) * w[..., None] * quat_to_rotmat(dr.detach().to(src.dtype))
        mat = segment_sum(per.flatten(-2), ids, num_groups).unflatten(-1, (3, 3)).double()  # [T, G, 3, 3]
        mat = torch.nan_to_num(mat, nan=0.0, posinf=0.0, neginf=0.0)
        u, _, vh = torch.linalg.svd(mat)
        sign = torch.sign(torch.linalg.det(u @ vh))
        fix = torch.ones_like(mat[..., 0])  # [T, G, 3]
        fix[..., 2] = torch.where(sign == 0, torch.ones_like(sign), sign)
        rot = (u * fix[..., None, :]) @ vh  # U diag(1, 1, det) V^T
    return RigidFit(rot=rot.to(src.dtype), src_centroid=src_c, dst_centroid=dst_c)


# ---------------------------------------------------------------------------------------------------- terms


def _weighted_mean(per: Tensor, weights: Tensor) -> Tensor:
    """sum_{t,i} w_i per[t, i] / (T sum_i w_i), 0 when the weights sum to 0. per: [T, N]; weights: [N]."""
    total = weights.sum() * per.shape[0]
    return (per * weights).sum() / total.clamp_min(torch.finfo(per.dtype).tiny)


def _masked_weights(weights: Tensor, ids: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.where(ids < 0, torch.zeros((), dtype=dtype, device=weights.device), weights.to(dtype))


def rigid_position_loss(means: Tensor, dx: Tensor, fit: RigidFit, ids: Tensor, weights: Tensor) -> Tensor:
    """Mean squared distance of deformed centres from their group's rigid motion (scene units^2).

    Args:
        means: [N, 3] canonical centres. dx: [T, N, 3] position offsets at T times.
        fit: the groups' rigid motions at those times (:func:`fit_rigid` of means, means + dx), held constant.
        ids: [N] int64 group index (-1 ignored). weights: [N] per-Gaussian weights (0 excludes a Gaussian).

    Returns:
        Scalar: sum_{t,i} w_i |x_i + dx_ti - (R_tg (x_i - c_g) + d_tg)|^2 / (T sum_i w_i); 0 when no weight.
    """
    dims: dict[str, int] = {}
    check_shape(means, "[N, 3]", "means", dims=dims, floating=True)
    check_shape(dx, "[T, N, 3]", "dx", dims=dims, floating=True)
    _ids(ids, dims)
    _weights(weights, dims)
    zero = means.new_zeros(3)
    rot = _gather(fit.rot, ids, torch.eye(3, dtype=means.dtype, device=means.device))  # [T, N, 3, 3]
    p = means - _gather(fit.src_centroid, ids, zero)
    target = (rot @ p[None, :, :, None]).squeeze(-1) + _gather(fit.dst_centroid, ids, zero)
    residual = means + dx - target
    return _weighted_mean(residual.square().sum(-1), _masked_weights(weights, ids, means.dtype))


def rigid_rotation_loss(dr: Tensor, fit: RigidFit, ids: Tensor, weights: Tensor) -> Tensor:
    """Mean sin^2(angle / 2) between each rotation delta and its group's rotation (0 equal, 1 at 180 degrees).

    Args:
        dr: [T, N, 4] rotation deltas (w, x, y, z), normalised here.
        fit: the groups' rigid motions (only ``fit.rot`` [T, G, 3, 3] is used), held constant.
        ids: [N] int64 group index (-1 ignored). weights: [N] per-Gaussian weights.

    Returns:
        Scalar: the weighted mean over Gaussians and times of |R(dr) - R_group|_F^2 / 8 = sin^2(angle / 2),
        computed as 1 - (q_group . dr)^2 / |dr|^2 with the group rotation as a unit quaternion.
    """
    dims: dict[str, int] = {}
    _ids(ids, dims)
    check_shape(dr, "[T, N, 4]", "dr", dims=dims, floating=True)
    _weights(weights, dims)
    group_quat = rotmat_to_quat(fit.rot.double()).to(dr.dtype)  # [T, G, 4]
    q = _gather(group_quat, ids, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dr.dtype, device=dr.device))
    per = (1.0 - (q * dr).sum(-1).square() / dr.square().sum(-1).clamp_min(1e-12)).clamp_min(0.0)
    return _weighted_mean(per, _masked_weights(weights, ids, dr.dtype))


def scale_loss(ds: Tensor, ids: Tensor, zero_weights: Tensor, agree_weights: Tensor, num_groups: int) -> Tensor:
    """Log-scale deltas: near zero where ``zero_weights`` > 0 (rigid groups), equal within a group where
    ``agree_weights`` > 0 (other dynamic groups).

    Args:
        ds: [T, N, 3] log-scale deltas. ids: [N] int64 group index (-1 ignored).
        zero_weights, agree_weights: [N] per-Gaussian weights of the two parts (0 excludes).
        num_groups: G.

    Returns:
        Scalar: (sum w0_i |ds_ti|^2 + sum w1_i |ds_ti - m_tg|^2) / (T sum (w0 + w1)), where m_tg is the
        ``agree_weights``-weighted group mean (held constant: the gradient is the same, as the weighted
        deviations from the mean sum to 0).
    """
    dims: dict[str, int] = {}
    _ids(ids, dims)
    check_shape(ds, "[T, N, 3]", "ds", dims=dims, floating=True)
    w0 = _masked_weights(_weights(zero_weights, dims), ids, ds.dtype)
    w1 = _masked_weights(_weights(agree_weights, dims), ids, ds.dtype)
    with torch.no_grad():
        wsum = segment_sum(w1[:, None], ids, num_groups).clamp_min(torch.finfo(ds.dtype).tiny)
        mean = segment_sum(w1[:, None] * ds, ids, num_groups) / wsum  # [T, G, 3]
    per = w0 * ds.square().sum(-1) + w1 * (ds - _gather(mean, ids, ds.new_zeros(3))).square().sum(-1)  # [T, N]
    total = (w0 + w1).sum() * ds.shape[0]
    return per.sum() / total.clamp_min(torch.finfo(ds.dtype).tiny)


def static_loss(dx: Tensor, dr: Tensor, ds: Tensor, weights: Tensor) -> Tensor:
    """Mean deformation of Gaussians that should not move: |dx|^2 + sin^2(angle(dr) / 2) + |ds|^2.

    Args:
        dx: [T, N, 3] position offsets (scene units). dr: [T, N, 4] rotation deltas (w, x, y, z).
        ds: [T, N, 3] log-scale deltas. weights: [N] per-Gaussian weights (0 excludes; unlabelled = 0).

    Returns:
        Scalar weighted mean over Gaussians and times; 0 for the identity deformation.
    """
    dims: dict[str, int] = {}
    check_shape(dx, "[T, N, 3]", "dx", dims=dims, floating=True)
    check_shape(dr, "[T, N, 4]", "dr", dims=dims, floating=True)
    check_shape(ds, "[T, N, 3]", "ds", dims=dims, floating=True)
    _weights(weights, dims)
    angle = (1.0 - dr[..., 0].square() / dr.square().sum(-1).clamp_min(1e-12)).clamp_min(0.0)  # sin^2(angle / 2)
    per = dx.square().sum(-1) + angle + ds.square().sum(-1)
    return _weighted_mean(per, weights.to(dx.dtype))


# ---------------------------------------------------------------------------------------------------- together


def term_weights(
    labels: GroupLabels, nonrigid_factor: float, dtype: torch.dtype, static_below_conf: float | None = None
) -> dict[str, Tensor]:
    """Per-Gaussian weights [N] of each part: "motion" (position and rotation: rigid groups conf, other dynamic
    groups nonrigid_factor x conf), "scale_zero" (rigid), "scale_agree" (other dynamic), "static" (static groups,
    only those with conf < static_below_conf when it is set)."""
    ids = labels.ids
    labelled = ids >= 0
    static = _gather(labels.is_static, ids, labels.is_static.new_ones(())) & labelled
    rigid = _gather(labels.is_rigid, ids, labels.is_rigid.new_zeros(())) & labelled & ~static
    other = labelled & ~static & ~rigid
    conf = labels.conf.to(dtype)
    zero = torch.zeros((), dtype=dtype, device=conf.device)
    return {
        "motion": torch.where(rigid, conf, torch.where(other, conf * nonrigid_factor, zero)),
        "scale_zero": torch.where(rigid, conf, zero),
        "scale_agree": torch.where(other, conf, zero),
        "static": torch.where(static if static_below_conf is None else static & (conf < static_below_conf), conf, zero),
    }


GROUP_TERMS: tuple[GroupTerm, ...] = (
    GroupTerm(
        "reg_rigid_position", "rigid_position", ("motion",), pairs=True, uses_fit=True,
        fn=lambda x: rigid_position_loss(x.means, x.dx, x.rigid_fit(), x.ids, x.weights["motion"]),
    ),
    GroupTerm(
        "reg_rigid_rotation", "rigid_rotation", ("motion",), pairs=True, uses_fit=True,
        fn=lambda x: rigid_rotation_loss(x.dr, x.rigid_fit(), x.ids, x.weights["motion"]),
    ),
    GroupTerm(
        "reg_scale", "scale", ("scale_zero", "scale_agree"), pairs=False, uses_fit=False,
        fn=lambda x: scale_loss(x.ds, x.ids, x.weights["scale_zero"], x.weights["scale_agree"], x.num_groups),
    ),
    GroupTerm(
        "reg_static", "static", ("static",), pairs=False, uses_fit=False,
        fn=lambda x: static_loss(x.dx, x.dr, x.ds, x.weights["static"]),
    ),
)  # fmt: skip
"""Every object-wise regularizer, in the order of the loss dict."""

TERM_NAMES: tuple[str, ...] = tuple(t.name for t in GROUP_TERMS)
"""The stable names of the terms, as they appear in the loss dict and the logs."""

PAIR_TERMS: tuple[str, ...] = tuple(t.name for t in GROUP_TERMS if t.pairs)
"""The terms that score the motion between two times."""

PER_TIME_TERMS: tuple[str, ...] = tuple(t.name for t in GROUP_TERMS if not t.pairs)
"""The terms that score the deformation at each sampled time."""


def group_term(name: str) -> GroupTerm:
    """The :data:`GROUP_TERMS` entry called ``name``; an unknown name is an :class:`InputError` listing the terms."""
    for term in GROUP_TERMS:
        if term.name == name:
            return term
    raise InputError(f"unknown regularizer term {name!r}; the terms are {list(TERM_NAMES)}")


def config_fields_of_terms() -> set[str]:
    """The :class:`GroupRegularizerConfig` fields the table names (``<key>_weight``, ``<key>_start``); each must
    exist (checked by the tests, so that a term cannot be silently weightless)."""
    return {f"{t.key}_{what}" for t in GROUP_TERMS for what in ("weight", "start")}


def stack_deformations(deformations: Sequence[Deformation], n: int) -> tuple[Tensor, Tensor, Tensor]:
    """(dx [T, N, 3], dr [T, N, 4], ds [T, N, 3]) from T deformations of N Gaussians (T >= 1)."""
    if len(deformations) == 0:
        raise InputError("deformations must hold at least one Deformation (one per sampled time), got none")
    for k, d in enumerate(deformations):
        if not isinstance(d, Deformation):
            raise InputError(f"deformations[{k}] must be a Deformation, got {type(d).__name__}")
        for name, value, width in (("dx", d.dx, 3), ("dr", d.dr, 4), ("ds", d.ds, 3)):
            check_shape(value, f"[N, {width}]", f"deformations[{k}].{name}", dims={"N": n}, floating=True)
    return (
        torch.stack([d.dx for d in deformations]),
        torch.stack([d.dr for d in deformations]),
        torch.stack([d.ds for d in deformations]),
    )


def group_regularizer_terms(
    means: Tensor,
    deformations: Sequence[Deformation],
    labels: GroupLabels,
    terms: Sequence[str] = TERM_NAMES,
    nonrigid_factor: float = 0.1,
    fit_weights: tuple[float, float] = (1.0, 0.1),
    static_below_conf: float | None = None,
    fit_scale: Tensor | None = None,
) -> dict[str, Tensor]:
    """The unweighted terms named in ``terms`` (a subset of :data:`TERM_NAMES`), for T sampled times.

    Args:
        means: [N, 3] canonical centres (scene units); its dtype and device set those of the result.
        deformations: T deformations of the N Gaussians (one per sampled time).
        labels: the Gaussians' groups (validated here; one host sync).
        terms: which terms to compute; the rigid fit is done only if a rigid term is asked for.
        nonrigid_factor: see :attr:`GroupRegularizerConfig.nonrigid_factor`.
        fit_weights: weights of the position and rotation terms that the rigid fit minimises (see :func:`fit_rigid`);
            pass the loss weights, so that holding the fit constant gives the exact gradient.
        static_below_conf: when set, reg_static covers only static Gaussians with a confidence below it (the others
            skip the deformation field, see :func:`deform_mask_from_groups`).
        fit_scale: [N] non-negative factors on the Gaussians' weights in the rigid fit only (not in the penalties),
            e.g. their visibility at the sampled times: the visible members, which the images constrain, decide the
            group's motion and the rest are pulled along. The fit is then no longer the minimiser of the penalty, so
            the gradient is that of the penalty about a fixed motion (still toward it).

    Returns:
        {name: scalar tensor} in the order of ``terms``.
    """
    n = check_shape(means, "[N, 3]", "means", floating=True).shape[0]
    unknown = [t for t in terms if t not in TERM_NAMES]
    if unknown:
        raise InputError(f"unknown regularizer term(s) {unknown}; the terms are {list(TERM_NAMES)}")
    check_labels(labels, n, means.device)
    dx, dr, ds = stack_deformations(deformations, n)
    _check_same_device(means.device, dx=dx, dr=dr, ds=ds)
    w = term_weights(labels, nonrigid_factor, means.dtype, static_below_conf)
    ids, g = labels.ids, labels.num_groups
    asked = [group_term(name) for name in terms]
    # Work on the Gaussians some asked-for term covers only (typically the dynamic minority): one host sync.
    covered = torch.zeros(n, dtype=torch.bool, device=means.device)
    for part in {p for term in asked for p in term.parts}:
        covered |= w[part] > 0
    index = covered.nonzero().squeeze(1)
    if fit_scale is not None:
        fit_scale = _weights(fit_scale, {"N": n}, "fit_scale").to(means.dtype)
    if len(index) < n:
        means, ids = means.index_select(0, index), ids.index_select(0, index)
        fit_scale = None if fit_scale is None else fit_scale.index_select(0, index)
        dx, dr, ds = (x.index_select(1, index) for x in (dx, dr, ds))
        w = {k: v.index_select(0, index) for k, v in w.items()}
    fit: RigidFit | None = None
    if any(term.uses_fit for term in asked):
        fit_w = w["motion"] if fit_scale is None else w["motion"] * fit_scale
        fit = fit_rigid(means, means + dx, ids, fit_w, g, dr=dr, fit_weights=fit_weights)
    inputs = TermInputs(means=means, dx=dx, dr=dr, ds=ds, ids=ids, weights=w, num_groups=g, fit=fit)
    return {term.name: term.fn(inputs) for term in asked}


def group_regularizer_losses(
    config: GroupRegularizerConfig,
    step: int,
    means: Tensor,
    deformations: Sequence[Deformation],
    labels: GroupLabels,
    terms: Sequence[str] = TERM_NAMES,
    fit_scale: Tensor | None = None,
) -> dict[str, Tensor]:
    """Named, weighted losses of the ``terms`` active at ``step`` (empty before the first start step).

    Args:
        config: weights and start steps.
        step: the training step.
        means: [N, 3] canonical centres (scene units).
        deformations: the deformations of the N Gaussians at T sampled times (see :func:`sample_times`).
        labels: the Gaussians' groups.
        terms: which terms to consider (all by default).
        fit_scale: [N] factors on the rigid fit's weights only (see :func:`group_regularizer_terms`).

    Returns:
        {"reg_rigid_position" | "reg_rigid_rotation" | "reg_scale" | "reg_static": weight x term}. With
        ``config.skip_static_deformation``, reg_static covers only the static Gaussians whose confidence is too low
        to skip the field (the others do not deform).
    """
    active = tuple(name for name in config.active_terms(step) if name in terms)
    if not active:
        return {}
    fit_weights = (
        config.weight("reg_rigid_position") if "reg_rigid_position" in active else 0.0,
        config.weight("reg_rigid_rotation") if "reg_rigid_rotation" in active else 0.0,
    )
    below = config.static_skip_min_conf if config.skip_static_deformation else None
    values = group_regularizer_terms(
        means,
        deformations,
        labels,
        active,
        config.nonrigid_factor,
        fit_weights,
        below,
        fit_scale,
    )
    return {name: config.weight(name) * value for name, value in values.items()}


def relative_deformation(first: Deformation, second: Deformation) -> Deformation:
    """The deformation from time t1 to time t2, given both from the canonical space ([N, ...] each):
    dx = dx2 - dx1, dr = dr2 * conj(dr1) (so that R(dr) R(dr1) = R(dr2)), ds = ds2 - ds1.

    With temporal visibility the canonical space holds each Gaussian where it was captured, at different times
    for different members of one car, so the canonical-to-t motion of a group is not rigid; its t1-to-t2 motion is.
    Regularize it with canonical centres ``means + dx1``.
    """
    conj = first.dr * first.dr.new_tensor([1.0, -1.0, -1.0, -1.0])
    dr = quat_multiply(quat_normalize(second.dr), quat_normalize(conj))
    return Deformation(second.dx - first.dx, dr, second.ds - first.ds)


def deform_mask_from_groups(labels: GroupLabels, min_conf: float = 0.5) -> Tensor:
    """[N] bool: False for Gaussians of static groups with confidence >= min_conf (they skip the field), else True.

    Set it as ``DynamicScene.deform_mask``; the field then gives those Gaussians the exact identity and never
    evaluates them.
    """
    ids = labels.ids
    static = _gather(labels.is_static, ids, labels.is_static.new_zeros(())) & (ids >= 0)
    return ~(static & (labels.conf >= min_conf))


def covered_mask(labels: GroupLabels, config: GroupRegularizerConfig) -> Tensor:
    """[N] bool: the Gaussians some term covers, whose deformation the regularizers need at the extra sampled
    times (pass it as the field's ``mask``): labelled ones, less the static ones that skip the field."""
    labelled = labels.ids >= 0
    if not config.skip_static_deformation:
        return labelled
    return labelled & deform_mask_from_groups(labels, config.static_skip_min_conf)


def sample_times(num: int, generator: torch.Generator | None = None) -> list[float]:
    """``num`` stratified times in [0, 1]: one uniform sample in each of ``num`` equal intervals."""
    if num < 1:
        raise InputError(f"num_times must be at least 1, got {num}")
    u = torch.rand(num, generator=generator, dtype=torch.float64)
    return [float((k + u[k]) / num) for k in range(num)]
