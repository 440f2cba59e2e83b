"""The dynamic scene: canonical Gaussians, a deformation field and a sky, rendered at a time t.

This is the core that both the plain trainer (:mod:`semdyn.train`) and the nerfstudio Model wrap. It
knows nothing of datasets or nerfstudio: cameras are OpenCV world-to-camera matrices and intrinsics,
time is the normalised sequence time in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semdyn import losses
from semdyn.deform import HexPlaneConfig, MLPDeformConfig, apply_deformation, make_deformation
from semdyn.deform.field import Deformation, DeformationField
from semdyn.deform.group_motion import GroupMotionConfig, GroupPaths, estimate_paths, path_offsets
from semdyn.deform.regularizers import (
    GroupLabels,
    GroupRegularizerConfig,
    covered_mask,
    deform_mask_from_groups,
    group_regularizer_losses,
    relative_deformation,
)
from semdyn.errors import InputError
from semdyn.render import RenderConfig, render
from semdyn.scene.gaussians import GaussianInitConfig, LearningRates, init_gaussians
from semdyn.scene.sky import SkyConfig, SkyModel, composite_sky
from semdyn.scene.strategy import DensifyConfig


@dataclass(frozen=True)
class LossWeights:
    """Weights of the named loss terms (0 switches a term off)."""

    ssim_lambda: float = 0.2
    """rgb = (1 - ssim_lambda) * L1 + ssim_lambda * D-SSIM, as 3DGS."""
    depth: float = 0.0
    """L1 between the rendered depth and the LiDAR points of the frame's time (scene units)."""
    opacity: float = 0.0
    """Mean opacity, which pushes unneeded Gaussians to transparency."""
    scale_ratio: float = 0.0
    """Penalty on Gaussians whose largest/smallest scale ratio exceeds 10 (splatfacto's scale regularisation)."""
    plane_tv: float = 2e-4
    """Total variation of the HexPlane's spatial planes (4DGaussians' weight)."""
    time_smoothness: float = 1e-3
    """Second-order smoothness of the HexPlane's time planes along time."""
    time_l1: float = 1e-4
    """L1 of the HexPlane's time planes away from 1 (a static prior)."""
    velocity: float = 0.1
    """Mean L1 norm of the per-Gaussian velocities (a static prior: most of a street does not move). On the
    default street (cpu preset) 0.01 gives static drift 0.52 m, dynamic PSNR 21.9 dB; 0.1 gives 0.19 m, 20.8 dB."""


@dataclass(frozen=True)
class VisibilityConfig:
    """Temporal visibility: each Gaussian is most opaque at its anchor time (the capture time of the LiDAR point it
    came from) and fades with a learned lifespan: ``opacity(t) = opacity * exp(-0.5 ((t - anchor) / lifespan)^2)``.

    This is how PVG and 4D Gaussian Splatting let things appear and disappear; without it a deformation field must
    carry every LiDAR return of a moving car (captured along its whole path) onto the car at every time, which a
    field learns slowly. Static structure learns long lifespans, points swept along by traffic short ones."""

    init_lifespan: float = 0.2
    """Initial lifespan (normalised time, 1 = the whole sequence) of Gaussians whose point has a capture time."""
    untimed_lifespan: float = 10.0
    """Initial lifespan of Gaussians with no capture time (random init or untimed points): visible throughout."""
    lifespan_lr: float = 1e-2
    """Adam learning rate of the log lifespans."""
    anchor_lr: float = 1e-4
    """Adam learning rate of the anchor times."""


@dataclass(frozen=True)
class VelocityConfig:
    """Per-Gaussian linear motion about the visibility anchor, as PVG's velocity: the deformation's position offset
    gains ``velocity * (t - anchor)``. A Gaussian made from a LiDAR return on a moving car is right at its capture
    time and, with a velocity, stays on the car at the neighbouring frames, so the car is drawn by Gaussians that
    move with it instead of by Gaussians fading in and out along its path. The deformation field adds what a
    constant velocity misses (turns, surges). Applied only where the field applies (its box, the static skip);
    ignored without a field, and anchored at t = 0.5 without temporal visibility."""

    lr: float = 5e-3
    """Adam learning rate of the velocities (scene units per unit of normalised time); they start at zero."""


@dataclass
class DynamicSceneConfig:
    """Everything that defines the model (not the data, not the schedule)."""

    init: GaussianInitConfig = field(default_factory=GaussianInitConfig)
    """Initial Gaussians."""
    deformation: HexPlaneConfig | MLPDeformConfig | None = field(default_factory=HexPlaneConfig)
    """The deformation field; None gives a static model (the baseline)."""
    visibility: VisibilityConfig | None = field(default_factory=VisibilityConfig)
    """Temporal visibility of the Gaussians; None: every Gaussian is visible at all times."""
    velocity: VelocityConfig | None = field(default_factory=VelocityConfig)
    """Per-Gaussian velocities added to the deformation; None: the field alone moves the Gaussians."""
    group_motion: GroupMotionConfig | None = field(default_factory=GroupMotionConfig)
    """Once lifting has grouped the Gaussians, the members of moving rigid groups ride their group's estimated
    path instead of the deformation field (:mod:`semdyn.deform.group_motion`); None: the field moves them too.
    Without semantics there are no groups and this does nothing."""
    sky: SkyConfig | None = field(default_factory=SkyConfig)
    """The learned sky behind the Gaussians; None renders over black."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """Rasterisation options."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    """gsplat densification strategy."""
    lrs: LearningRates = field(default_factory=LearningRates)
    """Learning rates of the Gaussian attributes."""
    deform_box_margin: tuple[float, float, float] = (2.0, 2.0, 0.5)
    """The deformation field covers the box of the camera centres grown by this much per axis (scene units;
    the cameras span about [-1, 1]); Gaussians outside it do not move. This keeps the field's cells small where
    traffic is, instead of spreading them over the whole LiDAR range."""
    deform_lr: float = 1.6e-3
    """Adam learning rate of the deformation field's grids (4DGaussians' rate); its MLPs get a tenth of it."""
    sh_degree_interval: int = 1000
    """Raise the rendered SH degree by one every this many steps, up to init.sh_degree."""
    losses: LossWeights = field(default_factory=LossWeights)
    """Loss weights."""
    groups: GroupRegularizerConfig = field(default_factory=GroupRegularizerConfig)
    """Object-wise deformation regularizers and the static skip; active only once lifting has set groups (a run
    without semantics is semdyn-base)."""


def deformation_box(camera_centres: Tensor, margin: tuple[float, float, float]) -> Tensor:
    """[2, 3] box of the camera centres [F, 3] grown by ``margin`` per axis (scene units)."""
    m = torch.tensor(margin, dtype=camera_centres.dtype, device=camera_centres.device)
    return torch.stack([camera_centres.min(0).values - m, camera_centres.max(0).values + m])


def _match_rows(rows: Tensor, table: Tensor) -> Tensor:
    """Index into ``table`` [P, 3] of each of ``rows`` [N, 3] (exact copies of table rows)."""
    order = torch.argsort(table[:, 0])
    pos = torch.searchsorted(table[order, 0].contiguous(), rows[:, 0].contiguous()).clamp(max=len(table) - 1)
    return order[pos]


class DynamicScene(nn.Module):
    """Canonical Gaussians + deformation + sky. Parameters live in ``self.params`` (a ParameterDict)."""

    def __init__(
        self,
        config: DynamicSceneConfig,
        points: Tensor | None,
        colors: Tensor | None,
        aabb: Tensor,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        camera_centres: Tensor | None = None,
        point_times: Tensor | None = None,
    ) -> None:
        """Args: points [P, 3] and colors [P, 3] (uint8) of the initial cloud or None; aabb [2, 3] (scene units);
        camera_centres [F, 3] (scene units) place the deformation box (else it is aabb); point_times [P] are the
        points' capture times (normalised), the anchors of the temporal visibility."""
        super().__init__()
        self.config = config
        self.params = init_gaussians(points, colors, aabb, config.init, device=device, generator=generator)
        if config.visibility is not None:
            self._init_visibility(config.visibility, points, point_times, generator)
        if config.velocity is not None and config.deformation is not None:
            self.params["velocity"] = nn.Parameter(torch.zeros_like(self.params["means"]))
        self.deform: DeformationField | None = None
        if config.deformation is not None:
            box = aabb if camera_centres is None else deformation_box(camera_centres, config.deform_box_margin)
            self.deform = make_deformation(config.deformation, box.float().to(device))
        self.sky = SkyModel(config.sky, device=device) if config.sky is not None else None
        self.deform_mask: Tensor | None = None
        """[N] bool: Gaussians the deformation field moves (None: all). Set from semantic labels."""
        self.groups: GroupLabels | None = None
        """The Gaussians' object groups for the regularizers (None: none yet); set with :meth:`set_groups`."""
        self.units_per_metre = 1.0
        """Scene units per metre (the sequence's normalisation scale): the metric radii of the group paths."""
        self.paths: GroupPaths | None = None
        """The moving groups' paths and their riding members (None: none); re-estimated by :meth:`set_groups`."""
        self._added_lrs: dict[str, float] = {}

    def _init_visibility(
        self,
        cfg: VisibilityConfig,
        points: Tensor | None,
        point_times: Tensor | None,
        generator: torch.Generator | None,
    ) -> None:
        n, device = self.num_gaussians, self.params["means"].device
        anchor = torch.full((n,), 0.5)
        lifespan = torch.full((n,), cfg.untimed_lifespan)
        if points is not None and point_times is not None and len(point_times) == len(points):
            times = point_times.float().cpu()
            if len(points) > n:  # init_gaussians subsampled with the same generator: find each kept point again
                index = _match_rows(self.params["means"].detach().cpu(), points.float().cpu())
                times = times[index]
            anchor, lifespan = times.clone(), torch.full((n,), cfg.init_lifespan)
        self.params["anchor_time"] = nn.Parameter(anchor.to(device))
        self.params["log_lifespan"] = nn.Parameter(torch.log(lifespan).to(device))

    def extra_lrs(self) -> dict[str, float]:
        """Learning rates of the per-Gaussian parameters beyond the standard attributes."""
        v = self.config.visibility
        lrs = {} if v is None else {"anchor_time": v.anchor_lr, "log_lifespan": v.lifespan_lr}
        if "velocity" in self.params and self.config.velocity is not None:
            lrs["velocity"] = self.config.velocity.lr
        return lrs | self._added_lrs

    def add_gaussian_param(self, name: str, value: Tensor, lr: float) -> None:
        """Add a per-Gaussian parameter ``value [N, ...]`` (e.g. the semantic feature latent) with its Adam learning
        rate; densification carries it like the standard attributes. Call before the optimisers are built."""
        if value.shape[0] != self.num_gaussians:
            raise InputError(f"add_gaussian_param: {name} has {value.shape[0]} rows for {self.num_gaussians} Gaussians")
        self.params[name] = nn.Parameter(value.to(self.params["means"].device))
        self._added_lrs[name] = lr

    def visibility_at(self, t: float) -> Tensor | None:
        """[N] temporal visibility factor in (0, 1] at normalised time t; None without temporal visibility."""
        if "anchor_time" not in self.params:
            return None
        z = (t - self.params["anchor_time"]) / torch.exp(self.params["log_lifespan"])
        return torch.exp(-0.5 * z * z)

    def anchor_times(self) -> Tensor:
        """[N] each Gaussian's visibility anchor (normalised time; 0.5 for all without temporal visibility)."""
        if "anchor_time" in self.params:
            return self.params["anchor_time"]
        return self.params["means"].new_full((self.num_gaussians,), 0.5)

    def deformation_at(self, t: float, mask: Tensor | None) -> Deformation:
        """The deformation of every Gaussian at normalised time t: the field's deltas plus ``velocity * (t -
        anchor)`` on the position, both only where ``mask`` [N] bool (None: all); members of moving groups
        (:attr:`paths`) skip both and ride their group's path instead. Needs a field."""
        assert self.deform is not None
        paths = self.paths if self.paths is not None and len(self.paths.members) == self.num_gaussians else None
        if paths is not None:
            mask = ~paths.members if mask is None else mask & ~paths.members
        d = self.deform(self.params["means"], t, mask=mask)
        dx = d.dx
        if "velocity" in self.params:
            shift = self.params["velocity"] * (t - self.anchor_times())[:, None]
            dx = dx + (shift if mask is None else shift * mask[:, None].to(shift.dtype))
        if paths is not None and self.groups is not None:
            dx = dx + path_offsets(paths, self.groups.ids, self.anchor_times(), t).to(dx.dtype)
        return Deformation(dx, d.dr, d.ds)

    def anchor_frame(self, times: Tensor) -> Tensor:
        """[N] int64 index into ``times`` [T] (normalised) of the time nearest each Gaussian's visibility anchor, where
        it is most visible (the time nearest 0.5 without temporal visibility). On the model's device."""
        anchor = self.anchor_times().detach()
        return (anchor[:, None] - times.to(anchor)[None]).abs().argmin(dim=1)

    def opacities_at(self, t: float) -> Tensor:
        """[N] opacities at normalised time t (temporal visibility applied when configured)."""
        opacity = torch.sigmoid(self.params["opacities"])
        vis = self.visibility_at(t)
        return opacity if vis is None else opacity * vis

    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def sh_degree_at(self, step: int) -> int:
        return min(step // max(self.config.sh_degree_interval, 1), self.config.init.sh_degree)

    def gaussians_at(self, t: float) -> dict[str, Tensor]:
        """The rasteriser's inputs at normalised time t: means [N, 3], quats [N, 4], scales [N, 3] (not log),
        opacities [N], colors [N, K, 3]; plus the raw deformation deltas when a field is present."""
        p = self.params
        means, quats, log_scales = p["means"], p["quats"], p["scales"]
        out: dict[str, Tensor] = {}
        if self.deform is not None:
            box = self.deform.aabb
            mask = ((means >= box[0]) & (means <= box[1])).all(dim=-1)
            if self.deform_mask is not None and len(self.deform_mask) == len(means):
                mask = mask & self.deform_mask
            d = self.deformation_at(t, mask)
            means, quats, log_scales = apply_deformation(means, quats, log_scales, d)
            out.update(dx=d.dx, dr=d.dr, ds=d.ds)
        out.update(
            means=means,
            quats=F.normalize(quats, dim=-1),
            scales=torch.exp(log_scales),
            opacities=self.opacities_at(t),
            colors=torch.cat([p["sh0"], p["shN"]], dim=1),
        )
        return out

    def forward(
        self, viewmats: Tensor, Ks: Tensor, width: int, height: int, t: float, step: int | None = None, topk: int = 0
    ) -> dict[str, Any]:
        """Render C cameras at time t.

        Args:
            viewmats: [C, 4, 4] world-to-camera (OpenCV). Ks: [C, 3, 3]. t: normalised time in [0, 1].
            step: training step (sets the SH degree; None = all bands).

        Returns:
            rgb [C, H, W, 3] (sky composited), depth [C, H, W, 1] (scene units), accumulation [C, H, W, 1],
            meta (for the densification strategy), gaussians (the deformed inputs), time (t), and topk ids/weights
            when asked.
        """
        return self.render_gaussians(self.gaussians_at(t), viewmats, Ks, width, height, step, topk) | {"time": t}

    def render_gaussians(
        self,
        g: dict[str, Tensor],
        viewmats: Tensor,
        Ks: Tensor,
        width: int,
        height: int,
        step: int | None = None,
        topk: int = 0,
    ) -> dict[str, Any]:
        """Render Gaussians ``g`` (as :meth:`gaussians_at` gives them, possibly edited: e.g. some made transparent)
        over the sky; the outputs of :meth:`forward` but ``time``."""
        sh_degree = self.config.init.sh_degree if step is None else self.sh_degree_at(step)
        out = render(
            g["means"],
            g["quats"],
            g["scales"],
            g["opacities"],
            g["colors"],
            viewmats,
            Ks,
            width,
            height,
            sh_degree=sh_degree,
            topk=topk,
            config=self.config.render,
        )
        rgb = out.image
        if self.sky is not None:
            rgb = composite_sky(rgb, out.alpha, self.sky.render(viewmats, Ks, width, height))
        result: dict[str, Any] = dict(
            rgb=rgb.clamp(0.0, 1.0), depth=out.depth, accumulation=out.alpha, meta=out.meta, gaussians=g
        )
        if topk:
            result.update(topk_ids=out.topk_ids, topk_weights=out.topk_weights)
        return result

    def loss_dict(
        self, outputs: dict[str, Any], gt_rgb: Tensor, sparse_depth: Tensor | None = None, step: int | None = None
    ) -> dict[str, Tensor]:
        """Weighted, named loss terms. gt_rgb: [C, H, W, 3] in [0, 1]; sparse_depth: [C, H, W] or None; step: the
        training step (None: no object-wise regularizers)."""
        w = self.config.losses
        pred = outputs["rgb"]
        terms = {
            "rgb": (1 - w.ssim_lambda) * losses.l1_loss(pred, gt_rgb) + w.ssim_lambda * losses.dssim_loss(pred, gt_rgb)
        }
        g = outputs["gaussians"]
        if w.depth > 0 and sparse_depth is not None:
            terms["depth"] = w.depth * losses.depth_loss(outputs["depth"], sparse_depth, outputs["accumulation"])
        if w.opacity > 0:
            terms["opacity"] = w.opacity * losses.opacity_loss(g["opacities"])
        if w.scale_ratio > 0:
            terms["scale_ratio"] = w.scale_ratio * losses.scale_ratio_loss(g["scales"])
        if w.velocity > 0 and "velocity" in self.params:
            terms["velocity"] = w.velocity * self.params["velocity"].abs().sum(-1).mean()
        if self.deform is not None:
            for name, value in self.deform.regularization().items():
                weight = getattr(w, name, 0.0)
                if weight > 0:
                    terms[name] = weight * value
        if step is not None:
            terms.update(self.group_losses(outputs, step))
        return terms

    def set_groups(self, labels: GroupLabels | None) -> None:
        """Use these object groups for the regularizers and, with ``config.groups.skip_static_deformation``, let
        confident static Gaussians skip the deformation field; with ``config.group_motion``, estimate the moving
        groups' paths from the current Gaussians (cheap: the trainers call this every step). Labels for another N
        are ignored until set again."""
        cfg = self.config.groups
        self.groups = labels
        skip = labels is not None and cfg.skip_static_deformation
        self.deform_mask = deform_mask_from_groups(labels, cfg.static_skip_min_conf) if skip else None
        self.paths = None
        motion = self.config.group_motion
        if (
            motion is not None
            and self.deform is not None
            and labels is not None
            and len(labels.ids) == len(self.params["means"])
        ):
            weight = torch.sigmoid(self.params["opacities"].detach())
            means, anchors = self.params["means"].detach(), self.anchor_times().detach()
            self.paths = estimate_paths(means, anchors, weight, labels, motion, self.units_per_metre)

    def group_losses(self, outputs: dict[str, Any], step: int) -> dict[str, Tensor]:
        """The weighted object-wise regularizers (see :mod:`semdyn.deform.regularizers`) at the rendered time t1
        and ``num_times - 1`` times t2 within ``pair_window`` of it (torch's global generator). The rigid terms
        score the t1 -> t2 motion of each group, fitted on the Gaussians visible at both times; scale and static
        terms score the deformation at every time. Empty before the first lift or without a field."""
        cfg, labels, means = self.config.groups, self.groups, self.params["means"]
        if self.deform is None or labels is None or len(labels.ids) != len(means) or not cfg.active_terms(step):
            return {}
        g, t1 = outputs["gaussians"], float(outputs["time"])
        first = Deformation(g["dx"], g["dr"], g["ds"])
        box = self.deform.aabb
        mask = covered_mask(labels, cfg) & ((means >= box[0]) & (means <= box[1])).all(dim=-1)
        offsets = (2 * torch.rand(max(cfg.num_times - 1, 0)) - 1) * cfg.pair_window
        others = [min(max(t1 + float(o), 0.0), 1.0) for o in offsets]
        seconds = [self.deformation_at(t2, mask) for t2 in others]
        terms = group_regularizer_losses(cfg, step, means, [first, *seconds], labels, ("reg_scale", "reg_static"))
        vis1 = self.visibility_at(t1)
        for t2, second in zip(others, seconds):
            vis2 = self.visibility_at(t2)
            fit_scale = None if vis1 is None or vis2 is None else (vis1 * vis2).detach()
            rigid = group_regularizer_losses(
                cfg, step, means + first.dx, [relative_deformation(first, second)], labels,
                ("reg_rigid_position", "reg_rigid_rotation"), fit_scale,
            )  # fmt: skip
            for name, value in rigid.items():
                terms[name] = terms.get(name, 0.0) + value / len(others)
        return terms

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Non-Gaussian parameters by optimiser (the Gaussians have one optimiser per attribute)."""
        groups: dict[str, list[nn.Parameter]] = {}
        if self.deform is not None:
            groups.update(self.deform.param_groups())
        if self.sky is not None:
            groups["sky"] = list(self.sky.parameters())
        return groups

    def resize_params_to(self, shapes: dict[str, torch.Size]) -> None:
        """Recreate the Gaussian parameters with the given shapes (before loading a checkpoint's state)."""
        device = self.params["means"].device
        for key, shape in shapes.items():
            self.params[key] = nn.Parameter(torch.zeros(shape, device=device))
