"""Rigid object nodes: each moving rigid group is one object whose Gaussians are stored in object-local coordinates
and moved by one SE(3) trajectory; a car is rigid because of how it is represented, not because a loss nudges it.

Object o owns the Gaussians whose ``node_ids`` is ``OBJECT_ID0 + o``. Their ``means``/``quats`` parameters are in
the object's frame; at time t they are drawn at ``R_o(t) x + c_o(t)`` with rotation ``q_o(t) * q`` (scales
unchanged), where ``c_o`` and ``R_o = exp(r_o)`` are cubic B-splines (:mod:`semdyn.scene.trajectory`) learned by
the photometric loss with acceleration and angular-acceleration priors. The object is visible, as one thing, over
the whole interval it was seen (``interval``), fading out over ``fade`` seconds beyond it; its Gaussians have no
lifespans of their own. Densification acts on the local parameters, so clones and splits stay in the object.

All objects are batched (one parameter tensor each for translations and rotations, ``[O, K, 3]``), so that one
optimiser serves however many objects a lift makes; :func:`semdyn.scene.promotion.regroup` creates, keeps,
merges and dissolves objects after each lift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from semdyn.conventions import quat_multiply, quat_to_rotmat
from semdyn.deform.group_motion import GroupMotionConfig
from semdyn.errors import InputError
from semdyn.scene.nodes.base import OBJECT_ID0, GaussianNode, NodeContext, NodeGaussians, ParamGroups
from semdyn.scene.registration import RegistrationConfig
from semdyn.scene.trajectory import bspline_eval, second_difference


@dataclass(frozen=True)
class RigidObjectsConfig:
    """Rigid object nodes: how moving rigid groups become objects, and how their trajectories are learned."""

    knot_spacing: float = 0.5
    """Seconds between trajectory control points (K = ceil(duration / spacing) + 3, at least 4)."""
    default_knots: int = 12
    """Control points when the sequence's duration is unknown."""
    translation_lr: float = 2e-4
    """Adam rate of the translation control points, times the scene scale (scene units per step)."""
    rotation_lr: float = 1e-3
    """Adam rate of the rotation-vector control points (radians per step)."""
    acceleration_weight: float = 0.01
    """Weight of the objects' mean squared acceleration, ((m/s^2)^2: the second difference of the translation
    control points over the knot spacing squared); a car braking at 3 m/s^2 costs 0.09."""
    angular_acceleration_weight: float = 0.01
    """Weight of the objects' mean squared angular acceleration ((rad/s^2)^2), likewise."""
    extent_quantile: float = 0.02
    """An object's extent (the box that claims unlabelled Gaussians, in its frame) runs from this quantile to one
    minus it of its labelled members' local coordinates."""
    fade: float = 0.3
    """Seconds over which an object fades out beyond the interval it was seen (a Gaussian falloff)."""
    min_speed: float = 0.5
    """Metres per second: where the initial path is slower, the heading is carried over from where it moves."""
    inherit_overlap: float = 0.5
    """After a re-lift, a moving group keeps an existing object's learned trajectory when at least this share of
    its members belonged to that object (else its trajectory starts again from the path estimate)."""
    paths: GroupMotionConfig = field(default_factory=GroupMotionConfig)
    """The robust path estimate that finds the moving groups, their members and the first trajectory."""
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    """After each lift, new objects are placed on their LiDAR returns (where the sequence has timed sweeps)."""
    refine_placed: bool = False
    """Whether the photometric loss also refines the trajectories of objects placed on the LiDAR sweeps. Off: a
    placed object keeps its measured track (its returns place a car to centimetres, which images at the CPU
    profile's resolution do not: refining them on the default street moved the tracks from 0.13 to 0.25 m and the
    heading up to 10 deg, and cost 0.4 dB of dynamic PSNR). Objects without returns are always refined."""

    def __post_init__(self) -> None:
        checks = [
            ("knot_spacing", self.knot_spacing > 0),
            ("default_knots", self.default_knots >= 4),
            ("translation_lr", self.translation_lr >= 0 and math.isfinite(self.translation_lr)),
            ("rotation_lr", self.rotation_lr >= 0 and math.isfinite(self.rotation_lr)),
            ("acceleration_weight", self.acceleration_weight >= 0),
            ("angular_acceleration_weight", self.angular_acceleration_weight >= 0),
            ("fade", self.fade > 0),
            ("min_speed", self.min_speed >= 0),
            ("inherit_overlap", 0 < self.inherit_overlap <= 1),
            ("extent_quantile", 0 <= self.extent_quantile < 0.5),
        ]
        for name, ok in checks:
            if not ok:
                raise InputError(f"--model.objects.{name.replace('_', '-')} is out of range: {getattr(self, name)!r}")

    def num_knots(self, duration_s: float | None) -> int:
        """K for a sequence of ``duration_s`` seconds (None: unknown)."""
        if duration_s is None or not duration_s > 0:
            return self.default_knots
        return max(4, math.ceil(duration_s / self.knot_spacing) + 3)


def rotvec_to_quat(rotvec: Tensor) -> Tensor:
    """[..., 4] unit quaternions (w, x, y, z) of rotation vectors [..., 3] (radians), smooth through zero."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    w = torch.where(small, 1 - theta2 / 8, torch.cos(theta / 2))
    k = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)
    return torch.cat([w, k * rotvec], dim=-1)


def quat_conjugate(q: Tensor) -> Tensor:
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


class RigidObjectsNode(GaussianNode):
    """O rigid objects (O may be 0), one ``node_ids`` value each from :data:`OBJECT_ID0`."""

    kind: ClassVar[str] = "rigid"
    first_id = OBJECT_ID0

    @classmethod
    def build(cls, ctx: NodeContext) -> RigidObjectsNode | None:
        """With ``objects`` configured and a deformation field (objects come from lifted moving groups)."""
        c = ctx.config
        if c.objects is None or c.deformation is None:
            return None
        return cls(c.objects, ctx.scene_scale, ctx.units_per_metre, ctx.duration_s, ctx.device)

    def __init__(
        self,
        config: RigidObjectsConfig,
        scene_scale: float,
        units_per_metre: float,
        duration_s: float | None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.config = config
        self.scene_scale = scene_scale
        self.units_per_metre = units_per_metre
        self.duration_s = duration_s
        k = config.num_knots(duration_s)
        self.translation = nn.Parameter(torch.zeros(0, k, 3, device=device))
        """[O, K, 3] translation control points (scene units, world frame)."""
        self.rotation = nn.Parameter(torch.zeros(0, k, 3, device=device))
        """[O, K, 3] rotation-vector control points (radians)."""
        self.register_buffer("interval", torch.zeros(0, 2, device=device))
        """[O, 2] normalised times between which the object was seen."""
        self.register_buffer("frame", torch.zeros(0, 3, 3, device=device))
        """[O, 3, 3] object axes (x forward, y left, z up) in the local coordinates: export's object-to-world is
        ``[R(t) @ frame | c(t)]``."""
        self.register_buffer("group", torch.zeros(0, dtype=torch.int64, device=device))
        """[O] the lifted group each object was made from (index into the group table)."""
        self.register_buffer("box", torch.full((0, 2, 3), math.nan, device=device))
        """[O, 2, 3] each object's box, its low and high corners in its axes (forward, left, up; scene units, about
        the local origin): what it owns (:func:`semdyn.scene.promotion.regroup`). NaN where unknown."""
        self.register_buffer("refined", torch.ones(0, dtype=torch.bool, device=device))
        """[O] whether the photometric loss refines each object's trajectory (False: it keeps its measured track,
        see ``RigidObjectsConfig.refine_placed``)."""

    @property
    def num_objects(self) -> int:
        return int(self.translation.shape[0])

    @property
    def num_ids(self) -> int:
        return max(self.num_objects, 0)

    @property
    def num_knots(self) -> int:
        return int(self.translation.shape[1])

    def resize(self, num_objects: int) -> None:
        """Zero-filled state for ``num_objects`` objects, in place (the parameters stay the same objects, so the
        optimisers built on them keep working; their Adam state must be reset by the caller)."""
        k, dev = self.num_knots, self.translation.device
        self.translation.data = torch.zeros(num_objects, k, 3, device=dev)
        self.rotation.data = torch.zeros(num_objects, k, 3, device=dev)
        self.interval = torch.zeros(num_objects, 2, device=dev)
        self.frame = torch.eye(3, device=dev).repeat(num_objects, 1, 1)
        self.group = torch.zeros(num_objects, dtype=torch.int64, device=dev)
        self.box = torch.full((num_objects, 2, 3), math.nan, device=dev)
        self.refined = torch.ones(num_objects, dtype=torch.bool, device=dev)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Checkpoints written before objects had boxes load with the boxes unknown (NaN); before some objects kept
        their measured tracks, with every trajectory refined."""
        if prefix + "translation" in state_dict and prefix + "box" not in state_dict:
            state_dict[prefix + "box"] = torch.full_like(self.box, math.nan)
        if prefix + "translation" in state_dict and prefix + "refined" not in state_dict:
            state_dict[prefix + "refined"] = torch.ones_like(self.refined)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def control_points(self) -> tuple[Tensor, Tensor]:
        """``(translation, rotation)`` control points [O, K, 3] as the losses see them: those of the objects that
        keep their measured tracks carry no gradient (so Adam leaves them where they were measured)."""
        keep = ~self.refined[:, None, None]
        t, r = self.translation, self.rotation
        if not bool(keep.any()):
            return t, r
        return torch.where(keep, t.detach(), t), torch.where(keep, r.detach(), r)

    def poses(self, objects: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(quat [M, 4], centre [M, 3])`` of ``objects`` [M] at normalised times ``t`` [M]: the rotation and
        translation that carry object-local coordinates to the world (scene units). Differentiable (but for the
        objects that keep their measured tracks)."""
        translation, rotation = self.control_points()
        centre = bspline_eval(translation, objects, t)
        quat = rotvec_to_quat(bspline_eval(rotation, objects, t))
        return quat, centre

    def to_world(self, local_means: Tensor, local_quats: Tensor, objects: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """World centres [M, 3] and rotations [M, 4] of local ones at times ``t`` [M] (objects [M])."""
        quat, centre = self.poses(objects, t)
        rot = quat_to_rotmat(quat)
        return (rot @ local_means[..., None]).squeeze(-1) + centre, quat_multiply(quat, local_quats)

    def to_local(self, world_means: Tensor, world_quats: Tensor, objects: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The inverse of :meth:`to_world`."""
        quat, centre = self.poses(objects, t)
        rot = quat_to_rotmat(quat)
        local = (rot.transpose(1, 2) @ (world_means - centre)[..., None]).squeeze(-1)
        return local, quat_multiply(quat_conjugate(quat), world_quats)

    def visibility(self, objects: Tensor, t: float) -> Tensor:
        """[M] 1 inside each object's seen interval, a Gaussian falloff of ``fade`` seconds beyond it."""
        lo, hi = self.interval[objects, 0], self.interval[objects, 1]
        gap = (lo - t).clamp_min(0) + (t - hi).clamp_min(0)
        sigma = self.config.fade / self.duration_s if self.duration_s else 0.1
        return torch.exp(-0.5 * (gap / sigma) ** 2)

    def gaussians_at(self, params: nn.ParameterDict, rows: Tensor, node_ids: Tensor, t: float) -> NodeGaussians:
        objects = node_ids - OBJECT_ID0
        local_means, local_quats = params["means"][rows], params["quats"][rows]
        times = torch.full_like(local_means[:, 0], float(t))
        quat_t, centre_t = self.poses(objects, times)
        means = (quat_to_rotmat(quat_t) @ local_means[..., None]).squeeze(-1) + centre_t
        out = NodeGaussians(
            means, quat_multiply(quat_t, local_quats), params["scales"][rows], self.visibility(objects, t)
        )
        if not self.training and "anchor_time" in params:  # the motion since the row's anchor (viewer, metrics)
            quat_a, centre_a = self.poses(objects, params["anchor_time"][rows].detach())
            then = (quat_to_rotmat(quat_a) @ local_means[..., None]).squeeze(-1) + centre_a
            out.dx, out.dr = means - then, quat_multiply(quat_t, quat_conjugate(quat_a))
        return out

    def regularization(self, params: nn.ParameterDict, rows: Tensor, step: int) -> dict[str, Tensor]:
        if self.num_objects == 0 or self.num_knots < 3:
            return {}
        c = self.config
        spacing = (self.duration_s or 1.0) / (self.num_knots - 3)  # seconds between control points
        terms: dict[str, Tensor] = {}
        translation, rotation = self.control_points()
        if c.acceleration_weight > 0:
            accel = second_difference(translation) / (self.units_per_metre * spacing**2)
            terms["object_acceleration"] = c.acceleration_weight * accel.square().sum(-1).mean()
        if c.angular_acceleration_weight > 0:
            ang = second_difference(rotation) / spacing**2
            terms["object_angular_acceleration"] = c.angular_acceleration_weight * ang.square().sum(-1).mean()
        return terms

    def param_groups(self) -> ParamGroups:
        c = self.config
        return {
            "object_translation": ([self.translation], c.translation_lr * self.scene_scale),
            "object_rotation": ([self.rotation], c.rotation_lr),
        }

    @torch.no_grad()
    def object_to_world(self, times: Tensor) -> Tensor:
        """[O, T, 4, 4] object-to-world transforms (object axes x forward, y left, z up; scene units) at normalised
        ``times`` [T]."""
        o, n = self.num_objects, times.shape[0]
        objects = torch.arange(o, device=times.device).repeat_interleave(n)
        quat, centre = self.poses(objects, times.to(self.translation).repeat(o))
        out = torch.zeros(o * n, 4, 4, dtype=centre.dtype, device=centre.device)
        out[:, :3, :3] = quat_to_rotmat(quat) @ self.frame[objects]
        out[:, :3, 3] = centre
        out[:, 3, 3] = 1.0
        return out.view(o, n, 4, 4)
