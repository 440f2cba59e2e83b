"""The deformable node: what cannot be one rigid body (pedestrians, cyclists, unlabelled Gaussians; everything
before the first lift, and everything in semdyn-base).

At a time t a row is drawn at ``canonical + field(canonical, t).dx + velocity * (t - anchor)`` with the field's
rotation and log-scale deltas, inside the field's box (outside it only its visibility changes), and with the
temporal visibility ``exp(-0.5 ((t - anchor) / lifespan)^2)`` on its opacity. The per-Gaussian ``velocity``,
``anchor_time`` and ``log_lifespan`` live in the scene's Gaussian parameters (densification carries them); the
field is this node's. SemDynReg's object-wise consistency terms act on this node's labelled rows
(:meth:`semdyn.scene.dynamic.DynamicScene.group_losses`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from semdyn.deform import DeformConfig, make_deformation
from semdyn.deform.field import Deformation, DeformationField, apply_deformation
from semdyn.scene.nodes.base import DEFORMABLE_ID, GaussianNode, NodeContext, NodeGaussians, ParamGroups


class DeformableNode(GaussianNode):
    kind: ClassVar[str] = "deformable"
    first_id = DEFORMABLE_ID

    @classmethod
    def build(cls, ctx: NodeContext) -> DeformableNode | None:
        """With a deformation field or temporal visibility (the static baseline has neither)."""
        c = ctx.config
        if c.deformation is None and c.visibility is None:
            return None
        w = c.losses
        weights = {"plane_tv": w.plane_tv, "time_smoothness": w.time_smoothness, "time_l1": w.time_l1}
        return cls(c.deformation, ctx.box.float().to(ctx.device), c.deform_lr, weights, w.velocity)

    def __init__(
        self,
        deformation: DeformConfig | None,
        box: Tensor,
        deform_lr: float,
        field_weights: dict[str, float],
        velocity_weight: float,
    ) -> None:
        """Args: deformation: the field's config (None: no field, only visibility); box [2, 3] (scene units) the
        field covers; deform_lr: Adam rate of its grids (its MLPs get a tenth); field_weights: loss weight of each
        of the field's named regularizers; velocity_weight: weight of the velocities' L1 prior."""
        super().__init__()
        self.field: DeformationField | None = None if deformation is None else make_deformation(deformation, box)
        self.deform_lr = deform_lr
        self.field_weights = dict(field_weights)
        self.velocity_weight = velocity_weight

    def in_box(self, means: Tensor) -> Tensor:
        """[M] bool: centres ``means`` [M, 3] inside the field's box (all False without a field)."""
        if self.field is None:
            return torch.zeros(means.shape[0], dtype=torch.bool, device=means.device)
        box = self.field.aabb
        return ((means >= box[0]) & (means <= box[1])).all(dim=-1)

    def deformation(self, params: nn.ParameterDict, rows: Tensor, t: float, mask: Tensor | None = None) -> Deformation:
        """The field's deltas of ``rows`` [M] at t plus ``velocity * (t - anchor)`` on the position, where the rows
        are in the field's box and ``mask`` [M] (None: all); exact identity elsewhere. Needs a field."""
        assert self.field is not None
        means = params["means"][rows]
        move = self.in_box(means) if mask is None else self.in_box(means) & mask
        d = self.field(means, t, mask=move)
        if "velocity" not in params:
            return d
        anchor = params["anchor_time"][rows] if "anchor_time" in params else torch.full_like(means[:, 0], 0.5)
        shift = params["velocity"][rows] * (t - anchor)[:, None]
        return Deformation(d.dx + shift * move[:, None].to(shift.dtype), d.dr, d.ds)

    def gaussians_at(self, params: nn.ParameterDict, rows: Tensor, node_ids: Tensor, t: float) -> NodeGaussians:
        means, quats, log_scales = params["means"][rows], params["quats"][rows], params["scales"][rows]
        vis = None
        if "anchor_time" in params:
            z = (t - params["anchor_time"][rows]) / torch.exp(params["log_lifespan"][rows])
            vis = torch.exp(-0.5 * z * z)
        if self.field is None:
            return NodeGaussians(means, quats, log_scales, vis)
        d = self.deformation(params, rows, t)
        means, quats, log_scales = apply_deformation(means, quats, log_scales, d)
        return NodeGaussians(means, quats, log_scales, vis, d.dx, d.dr, d.ds)

    def regularization(self, params: nn.ParameterDict, rows: Tensor, step: int) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if self.field is not None:
            for name, value in self.field.regularization().items():
                if name not in self.field_weights:  # a new field's term without a weight is never silently dropped
                    raise RuntimeError(
                        f"the deformation field's regularizer {name!r} has no weight: give it a LossWeights field and "
                        f"map it in DeformableNode.build (weighted terms: {sorted(self.field_weights)})"
                    )
                weight = self.field_weights[name]
                if weight > 0:
                    terms[name] = weight * value
        if self.velocity_weight > 0 and "velocity" in params and rows.numel() > 0:
            terms["velocity"] = self.velocity_weight * params["velocity"][rows].abs().sum(-1).mean()
        return terms

    def param_groups(self) -> ParamGroups:
        if self.field is None:
            return {}
        rates = {"deform_grid": self.deform_lr, "deform_mlp": self.deform_lr / 10}
        return {name: (ps, rates.get(name, self.deform_lr / 10)) for name, ps in self.field.param_groups().items()}
