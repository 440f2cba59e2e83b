"""What every deformation field shares: the output type, the base class, applying a deformation, the factory.

A deformation field maps canonical Gaussian centres and a time to per-Gaussian deltas of position,
rotation and log-scale (:class:`Deformation`). :func:`apply_deformation` turns canonical Gaussians into
the Gaussians at that time. Each model's config builds its own field (``config.setup(aabb)``, through
:func:`make_deformation`); the models are listed once, in :mod:`semdyn.deform.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from semdyn.conventions import quat_identity, quat_multiply, quat_normalize
from semdyn.errors import InputError
from semdyn.shapes import check_shape


@dataclass
class Deformation:
    """Per-Gaussian deltas at one time. Identity is dx = 0, dr = (1, 0, 0, 0), ds = 0."""

    dx: Tensor
    """[N, 3] position offset in scene units, added to the canonical centre."""
    dr: Tensor
    """[N, 4] rotation delta as a unit quaternion (w, x, y, z), left-multiplied onto the canonical rotation."""
    ds: Tensor
    """[N, 3] log-scale delta, added to the canonical log-scales (a factor exp(ds) on the scales)."""

    @classmethod
    def identity(
        cls, n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> Deformation:
        """The identity deformation of n Gaussians."""
        zeros = torch.zeros(n, 3, device=device, dtype=dtype)
        return cls(dx=zeros, dr=quat_identity(n, device=device, dtype=dtype), ds=zeros.clone())

    def __len__(self) -> int:
        return self.dx.shape[0]

    def scatter(self, index: Tensor, n: int) -> Deformation:
        """A deformation of n Gaussians: these deltas at rows ``index`` [M] (long), exact identity elsewhere.

        Differentiable with respect to these deltas.
        """
        out = Deformation.identity(n, device=self.dx.device, dtype=self.dx.dtype)
        return Deformation(
            dx=out.dx.index_copy(0, index, self.dx),
            dr=out.dr.index_copy(0, index, self.dr),
            ds=out.ds.index_copy(0, index, self.ds),
        )


def check_means(means: object, name: str = "means") -> Tensor:
    """Return ``means`` if it is a floating [N, 3] tensor, else raise :class:`InputError` naming it."""
    return check_shape(means, "[N, 3]", name, floating=True)


def check_time(t: object) -> float:
    """Return the time as a float if it is a scalar in [0, 1] (float or one-element tensor), else raise."""
    if isinstance(t, Tensor):
        if t.numel() != 1:
            shape = list(t.shape)
            raise InputError(f"t must be a scalar time in [0, 1] (a float or a one-element tensor), got shape {shape}")
        value = float(t.detach().reshape(()))
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        value = float(t)
    else:
        raise InputError(f"t must be a scalar time in [0, 1] (a float or a one-element tensor), got {type(t).__name__}")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise InputError(f"t must be a normalised time in [0, 1], got {value}")
    return value


def check_mask(mask: object, n: int, device: torch.device) -> Tensor | None:
    """Return ``mask`` if it is None or a bool [n] tensor on ``device``, else raise :class:`InputError`."""
    if mask is None:
        return None
    mask = check_shape(mask, "[N]", "mask", dims={"N": n}, dtype=torch.bool)  # one entry per Gaussian
    if mask.device != device:
        raise InputError(f"mask must be on the device of means ({device}), got {mask.device}")
    return mask


def check_aabb(aabb: object) -> Tensor:
    """Return ``aabb`` if it is a [2, 3] (min, max) floating tensor with max > min on every axis, else raise."""
    aabb = check_shape(aabb, "[2, 3]", "aabb (min row, max row)", floating=True)
    if not bool((aabb[1] > aabb[0]).all()):
        raise InputError(f"aabb must have max > min on every axis, got min {aabb[0].tolist()} max {aabb[1].tolist()}")
    return aabb


def normalize_to_aabb(means: Tensor, aabb: Tensor) -> Tensor:
    """Map centres [N, 3] (scene units) to [-1, 1]^3 by the box aabb [2, 3], clamping points outside.

    A point outside the box is moved to the nearest point on its surface, so it is deformed like that point.
    """
    return ((means - aabb[0]) / (aabb[1] - aabb[0]) * 2.0 - 1.0).clamp(-1.0, 1.0)


class DeformationField(nn.Module):
    """Base class of deformation fields: validates inputs, handles the mask, calls :meth:`deform`.

    Subclasses implement :meth:`deform` on the Gaussians that move, and may override
    :meth:`regularization` and :meth:`param_groups`.
    """

    aabb: Tensor

    def __init__(self, aabb: Tensor) -> None:
        super().__init__()
        self.register_buffer("aabb", check_aabb(aabb).detach().clone().float())

    def forward(self, means: Tensor, t: Tensor | float, mask: Tensor | None = None) -> Deformation:
        """Deltas of the Gaussians with canonical centres ``means`` at time ``t``.

        Args:
            means: [N, 3] canonical centres in scene units.
            t: normalised sequence time in [0, 1] (0 = first frame, 1 = last), a float or one-element tensor.
            mask: optional [N] bool; only these Gaussians are deformed and evaluated by the network, the
                others get the exact identity (dx = 0, dr = (1, 0, 0, 0), ds = 0).

        Returns:
            A :class:`Deformation` of N Gaussians.
        """
        means = check_means(means)
        time = check_time(t)
        mask = check_mask(mask, means.shape[0], means.device)
        if mask is None:
            if means.shape[0] == 0:
                return Deformation.identity(0, device=means.device, dtype=means.dtype)
            return self.deform(means, time)
        index = mask.nonzero().squeeze(1)
        if index.numel() == 0:
            return Deformation.identity(means.shape[0], device=means.device, dtype=means.dtype)
        return self.deform(means[index], time).scatter(index, means.shape[0])

    def deform(self, means: Tensor, t: float) -> Deformation:
        """Deltas for centres [M, 3] (validated, M >= 1) at time t in [0, 1]; implemented by subclasses."""
        raise NotImplementedError

    def regularization(self) -> dict[str, Tensor]:
        """Named, unweighted regularisation terms of the field's own parameters (none by default)."""
        return {}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group; all in "deform_mlp" unless a subclass splits them."""
        return {"deform_mlp": list(self.parameters())}


def make_head(width: int, out_dim: int, hidden_layers: int) -> nn.Sequential:
    """An output head: ``hidden_layers`` x (ReLU, Linear(width, width)), then ReLU (if any) and a zero Linear.

    The last layer's weight and bias are zero, so the head outputs exactly 0 until it is trained.
    """
    layers: list[nn.Module] = []
    for _ in range(hidden_layers):
        layers += [nn.ReLU(), nn.Linear(width, width)]
    if hidden_layers:
        layers.append(nn.ReLU())
    last = nn.Linear(width, out_dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


def heads_to_deformation(
    hidden: Tensor, dx_head: nn.Module | None, dr_head: nn.Module | None, ds_head: nn.Module | None
) -> Deformation:
    """Run the heads that exist on hidden features [M, W]; a missing head gives that part's identity.

    The rotation head's raw output r [M, 4] becomes the unit quaternion normalize((1, 0, 0, 0) + r).
    """
    m, device, dtype = hidden.shape[0], hidden.device, hidden.dtype
    dx = dx_head(hidden) if dx_head is not None else torch.zeros(m, 3, device=device, dtype=dtype)
    ds = ds_head(hidden) if ds_head is not None else torch.zeros(m, 3, device=device, dtype=dtype)
    identity = quat_identity(m, device=device, dtype=dtype)
    dr = quat_normalize(identity + dr_head(hidden)) if dr_head is not None else identity
    return Deformation(dx=dx, dr=dr, ds=ds)


def apply_deformation(
    means: Tensor, quats: Tensor, log_scales: Tensor, d: Deformation
) -> tuple[Tensor, Tensor, Tensor]:
    """The Gaussians at time t from canonical ones and their deformation.

    Args:
        means: [N, 3] canonical centres (scene units).
        quats: [N, 4] canonical rotations (w, x, y, z), not necessarily unit.
        log_scales: [N, 3] canonical log-scales.
        d: the deformation of these N Gaussians.

    Returns:
        (means + dx, normalize(dr) * quats, log_scales + ds). The quaternion product is the Hamilton
        product with the delta on the left: R(new) = R(dr) @ R(quats), i.e. the canonical rotation is
        applied first and the delta rotates the result in the world frame. |quats| is preserved.
    """
    n = check_means(means).shape[0]
    for name, value, width in (("quats", quats, 4), ("log_scales", log_scales, 3)):
        if not isinstance(value, Tensor) or value.shape != (n, width):
            got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(f"{name} must have shape [N, {width}] = [{n}, {width}], got {got}")
    for name, value, width in (("d.dx", d.dx, 3), ("d.dr", d.dr, 4), ("d.ds", d.ds, 3)):
        if value.shape != (n, width):
            raise InputError(f"{name} must have shape [N, {width}] = [{n}, {width}], got {list(value.shape)}")
    return means + d.dx, quat_multiply(quat_normalize(d.dr), quats), log_scales + d.ds


@runtime_checkable
class FieldConfig(Protocol):
    """What a deformation model's config provides: it builds its own field (nerfstudio's ``setup`` pattern)."""

    def setup(self, aabb: Tensor) -> DeformationField:
        """The field over the scene box ``aabb`` [2, 3] (min row, max row; scene units), on the CPU."""
        ...


def make_deformation(config: FieldConfig, aabb: Tensor) -> DeformationField:
    """Build the field described by ``config`` (any config of :data:`semdyn.deform.registry.DeformConfig`) over the
    scene box ``aabb`` [2, 3] (min row, max row; scene units).

    Returns the field on the device of ``aabb``.
    """
    aabb = check_aabb(aabb)
    if not isinstance(config, FieldConfig):
        raise InputError(f"config must be a deformation model's config (with setup), got {type(config).__name__}")
    return config.setup(aabb).to(aabb.device)
