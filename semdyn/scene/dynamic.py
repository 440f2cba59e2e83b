"""The dynamic scene: a scene graph of nodes over one set of Gaussians, and a sky, rendered at a time t.

This is the core that both the plain trainer (:mod:`semdyn.train`) and the nerfstudio Model wrap. It
knows nothing of datasets or nerfstudio: cameras are OpenCV world-to-camera matrices and intrinsics,
time is the normalised sequence time in [0, 1].

The graph (:mod:`semdyn.scene.nodes`): every Gaussian belongs to one node through its ``node_ids`` entry (kept in
the densification strategy state and handed to the scene each step with :meth:`DynamicScene.set_groups`):

- the background (static structure: no time dependence at all),
- the deformable node (deformation field + velocities + temporal visibility; everything, before the first lift
  and in semdyn-base),
- one rigid object per moving rigid group (object-local Gaussians moved by a learned SE(3) trajectory),

and the sky behind them. :func:`semdyn.scene.promotion.regroup` changes membership after each lift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semdyn import losses
from semdyn.conventions import quat_identity
from semdyn.deform import DeformConfig, HexPlaneConfig
from semdyn.deform.field import Deformation, DeformationField
from semdyn.deform.regularizers import (
    PAIR_TERMS,
    PER_TIME_TERMS,
    GroupLabels,
    GroupRegularizerConfig,
    covered_mask,
    group_regularizer_losses,
    relative_deformation,
)
from semdyn.errors import InputError
from semdyn.render import RenderConfig, render
from semdyn.scene.gaussians import GaussianInitConfig, LearningRates, init_gaussians
from semdyn.scene.nodes import (
    BACKGROUND_ID,
    DEFORMABLE_ID,
    NODE_KINDS,
    BackgroundNode,
    DeformableNode,
    GaussianNode,
    NodeContext,
    ParamGroups,
    RigidObjectsConfig,
    RigidObjectsNode,
    SkyNode,
)
from semdyn.scene.sky import SkyConfig, composite_sky
from semdyn.scene.strategy import DensifyConfig
from semdyn.scene.trajectory import nearest_index


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
    deformation: DeformConfig | None = field(default_factory=HexPlaneConfig)
    """The deformation field; None gives a static model (the baseline)."""
    visibility: VisibilityConfig | None = field(default_factory=VisibilityConfig)
    """Temporal visibility of the Gaussians; None: every Gaussian is visible at all times."""
    velocity: VelocityConfig | None = field(default_factory=VelocityConfig)
    """Per-Gaussian velocities added to the deformation; None: the field alone moves the Gaussians."""
    objects: RigidObjectsConfig | None = field(default_factory=RigidObjectsConfig)
    """Rigid object nodes: after each lift every moving rigid group becomes an object whose Gaussians live in its
    local frame and move with one learned SE(3) trajectory (:mod:`semdyn.scene.nodes.rigid`); None: the deformable
    node moves them too. Without semantics there are no groups and this does nothing."""
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
    """The Gaussians (``self.params``, a ParameterDict, one row per Gaussian) and the graph's nodes that draw them
    (``background``, ``deformable``, ``objects``) over the ``sky``."""

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
        up: Tensor | None = None,
        units_per_metre: float = 1.0,
        duration_s: float | None = None,
        scene_scale: float = 1.0,
    ) -> None:
        """Args: points [P, 3] and colors [P, 3] (uint8) of the initial cloud or None; aabb [2, 3] (scene units);
        camera_centres [F, 3] (scene units) place the deformation box (else it is aabb); point_times [P] are the
        points' capture times (normalised), the anchors of the temporal visibility; up [3] the world's up axis
        (scene coordinates; +z when None), about which objects turn; units_per_metre the sequence's normalisation
        scale (the metric radii and priors of the objects); duration_s the sequence's length in seconds (None:
        unknown); scene_scale the scale of the learning rates of positions. Build it from data with
        :func:`semdyn.scene.build.build_scene`."""
        super().__init__()
        self.config = config
        self.params = init_gaussians(points, colors, aabb, config.init, device=device, generator=generator)
        if config.visibility is not None:
            self._init_visibility(config.visibility, points, point_times, generator)
        if config.velocity is not None and config.deformation is not None:
            self.params["velocity"] = nn.Parameter(torch.zeros_like(self.params["means"]))
        self.units_per_metre = float(units_per_metre)
        """Scene units per metre (the sequence's normalisation scale)."""
        self.up = F.normalize((torch.tensor([0.0, 0.0, 1.0]) if up is None else up.float().cpu()), dim=0).to(device)
        box = aabb if camera_centres is None else deformation_box(camera_centres, config.deform_box_margin)
        ctx = NodeContext(config, box, device, scene_scale, self.units_per_metre, duration_s)
        built = {kind: cls.build(ctx) for kind, cls in NODE_KINDS.items()}
        self.nodes = nn.ModuleDict({kind: node for kind, node in built.items() if node is not None})
        """The graph's nodes that own Gaussians, by kind (:data:`semdyn.scene.nodes.NODE_KINDS`), in id order."""
        self.sky = SkyNode(config.sky, device=device) if config.sky is not None else None
        self.node_ids: Tensor | None = None
        """[N] int64 node of each Gaussian (None: all in :attr:`default_node_id`); set with :meth:`set_groups`."""
        self.groups: GroupLabels | None = None
        """The Gaussians' object groups for the regularizers (None: none yet); set with :meth:`set_groups`."""
        self._added_lrs: dict[str, float] = {}

    # ------------------------------------------------------------------ the graph
    # nn.ModuleDict is typed as holding Modules; self.nodes holds each kind's node class
    @property
    def background(self) -> BackgroundNode:
        return cast(BackgroundNode, self.nodes[BackgroundNode.kind])

    @property
    def deformable(self) -> DeformableNode | None:
        return cast(DeformableNode, self.nodes[DeformableNode.kind]) if DeformableNode.kind in self.nodes else None

    @property
    def objects(self) -> RigidObjectsNode | None:
        if RigidObjectsNode.kind not in self.nodes:
            return None
        return cast(RigidObjectsNode, self.nodes[RigidObjectsNode.kind])

    @property
    def deform(self) -> DeformationField | None:
        """The deformable node's deformation field (None: a static model)."""
        return None if self.deformable is None else self.deformable.field

    @property
    def default_node_id(self) -> int:
        """The node of Gaussians no lift has placed: the deformable node where there is one, else the background."""
        return DEFORMABLE_ID if self.deformable is not None else BACKGROUND_ID

    def gaussian_nodes(self) -> list[GaussianNode]:
        """The nodes that own Gaussians, in ``node_ids`` order."""
        return cast(list[GaussianNode], list(self.nodes.values()))

    def node_ids_now(self) -> Tensor:
        """[N] int64 node of each current Gaussian (the default node when none were set for this N)."""
        ids = self.node_ids
        means = self.params["means"]
        if ids is None or ids.shape[0] != means.shape[0]:
            return torch.full((means.shape[0],), self.default_node_id, dtype=torch.int64, device=means.device)
        return ids.to(means.device)

    def set_groups(self, labels: GroupLabels | None, node_ids: Tensor | None = None) -> None:
        """Hand the scene the current Gaussians' groups (for the object-wise regularizers) and nodes (``node_ids``
        [N], from the strategy state; None keeps the ones set last, which are ignored once N changes). Cheap: the
        trainers call this every step, since densification changes N. Membership itself changes only in
        :func:`semdyn.scene.promotion.regroup`, after a lift."""
        self.groups = labels
        if node_ids is not None:
            self.node_ids = node_ids

    def param_groups(self) -> ParamGroups:
        """Every non-Gaussian parameter by optimiser group, each with its learning rate, from the nodes that own
        them (deformation field, object trajectories, sky)."""
        groups: ParamGroups = {}
        for node in [*self.gaussian_nodes(), *([self.sky] if self.sky is not None else [])]:
            groups.update(node.param_groups())
        return groups

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Non-Gaussian parameters by optimiser (the Gaussians have one optimiser per attribute)."""
        return {name: params for name, (params, _) in self.param_groups().items()}

    # ------------------------------------------------------------------ per-Gaussian state
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
        """[N] the per-Gaussian temporal visibility in (0, 1] at normalised time t (the deformable node's; object
        and background rows do not use it); None without temporal visibility."""
        if "anchor_time" not in self.params:
            return None
        z = (t - self.params["anchor_time"]) / torch.exp(self.params["log_lifespan"])
        return torch.exp(-0.5 * z * z)

    def anchor_times(self) -> Tensor:
        """[N] each Gaussian's visibility anchor (normalised time; 0.5 for all without temporal visibility)."""
        if "anchor_time" in self.params:
            return self.params["anchor_time"]
        return self.params["means"].new_full((self.num_gaussians,), 0.5)

    def anchor_frame(self, times: Tensor) -> Tensor:
        """[N] int64 index into ``times`` [T] (normalised) of the time nearest each Gaussian's visibility anchor, where
        it is most visible (the time nearest 0.5 without temporal visibility). On the model's device."""
        anchor = self.anchor_times().detach()
        return nearest_index(anchor, times.to(anchor))

    @torch.no_grad()
    def at_reference(self, times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Where every Gaussian is when it is most visible: ``(t [N], means [N, 3], quats [N, 4])`` at the frame time
        of ``times`` [T] (normalised) nearest its anchor, in the world (no gradient)."""
        means = self.params["means"]
        times = torch.unique(times.to(means.device).float())
        nearest = self.anchor_frame(times)
        out_m, out_q = means.detach().clone(), self.params["quats"].detach().clone()
        for j in torch.unique(nearest).tolist():
            sel = nearest == j
            g = self.gaussians_at(float(times[j]), normalize=False)
            out_m[sel], out_q[sel] = g["means"][sel], g["quats"][sel]
        return times[nearest], out_m, out_q

    def opacities_at(self, t: float) -> Tensor:
        """[N] opacities at normalised time t (each node's visibility applied)."""
        return self.gaussians_at(t)["opacities"]

    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def sh_degree_at(self, step: int) -> int:
        return min(step // max(self.config.sh_degree_interval, 1), self.config.init.sh_degree)

    # ------------------------------------------------------------------ rendering
    def gaussians_at(self, t: float, normalize: bool = True) -> dict[str, Tensor]:
        """The rasteriser's inputs at normalised time t, composed from every node's rows: means [N, 3], quats [N, 4]
        (unit unless ``normalize`` is False), scales [N, 3] (not log), opacities [N], colors [N, K, 3]; plus, with a
        deformation field, the motion deltas dx [N, 3], dr [N, 4], ds [N, 3] (identity where a node has none)."""
        p = self.params
        ids = self.node_ids_now()
        means, quats, log_scales = p["means"], p["quats"], p["scales"]
        opacity = torch.sigmoid(p["opacities"])
        has_motion = self.deform is not None
        n = means.shape[0]
        dx = means.new_zeros(n, 3) if has_motion else None
        dr = quat_identity(n, device=means.device, dtype=means.dtype) if has_motion else None
        ds = means.new_zeros(n, 3) if has_motion else None
        for node in self.gaussian_nodes():
            rows = node.rows(ids)
            if rows.numel() == 0 or isinstance(node, BackgroundNode):  # the background draws its rows as they are
                continue
            g = node.gaussians_at(p, rows, ids[rows], t)
            means = means.index_copy(0, rows, g.means)
            quats = quats.index_copy(0, rows, g.quats)
            log_scales = log_scales.index_copy(0, rows, g.log_scales)
            if g.visibility is not None:
                opacity = opacity.index_copy(0, rows, opacity[rows] * g.visibility)
            if has_motion:
                assert dx is not None and dr is not None and ds is not None
                dx = dx if g.dx is None else dx.index_copy(0, rows, g.dx.to(dx.dtype))
                dr = dr if g.dr is None else dr.index_copy(0, rows, g.dr.to(dr.dtype))
                ds = ds if g.ds is None else ds.index_copy(0, rows, g.ds.to(ds.dtype))
        out: dict[str, Tensor] = dict(
            means=means,
            quats=F.normalize(quats, dim=-1) if normalize else quats,
            scales=torch.exp(log_scales),
            opacities=opacity,
            colors=torch.cat([p["sh0"], p["shN"]], dim=1),
        )
        if has_motion:
            assert dx is not None and dr is not None and ds is not None
            out.update(dx=dx, dr=dr, ds=ds)
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

    # ------------------------------------------------------------------ losses
    def loss_dict(
        self, outputs: dict[str, Any], gt_rgb: Tensor, sparse_depth: Tensor | None = None, step: int | None = None
    ) -> dict[str, Tensor]:
        """Weighted, named loss terms: the photometric and depth terms, every node's own terms (the field's
        regularizers and the velocity prior of the deformable node, the trajectory priors of the objects) and the
        object-wise regularizers. gt_rgb: [C, H, W, 3] in [0, 1]; sparse_depth: [C, H, W] or None; step: the
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
        ids = self.node_ids_now()
        for node in self.gaussian_nodes():
            terms.update(node.regularization(self.params, node.rows(ids), step or 0))
        if step is not None:
            terms.update(self.group_losses(outputs, step))
        return terms

    def group_losses(self, outputs: dict[str, Any], step: int) -> dict[str, Tensor]:
        """The weighted object-wise regularizers (see :mod:`semdyn.deform.regularizers`) over the deformable node's
        labelled rows, at the rendered time t1 and ``num_times - 1`` times t2 within ``pair_window`` of it (torch's
        global generator). The rigid terms score the t1 -> t2 motion of each group, fitted on the Gaussians visible
        at both times; scale and static terms score the deformation at every time. Empty before the first lift or
        without a field (rigid objects are rigid by construction and need none)."""
        cfg, labels, means = self.config.groups, self.groups, self.params["means"]
        node = self.deformable
        if node is None or node.field is None or labels is None or len(labels.ids) != len(means):
            return {}
        if labels.num_groups == 0:  # nothing was lifted (a drive without objects)
            return {}
        if not cfg.active_terms(step):
            return {}
        g, t1 = outputs["gaussians"], float(outputs["time"])
        first = Deformation(g["dx"], g["dr"], g["ds"])
        mask = covered_mask(labels, cfg) & node.in_box(means) & (self.node_ids_now() == DEFORMABLE_ID)
        offsets = (2 * torch.rand(max(cfg.num_times - 1, 0)) - 1) * cfg.pair_window
        others = [min(max(t1 + float(o), 0.0), 1.0) for o in offsets]
        every = torch.arange(len(means), device=means.device)
        seconds = [node.deformation(self.params, every, t2, mask) for t2 in others]
        first = Deformation(
            torch.where(mask[:, None], first.dx, torch.zeros_like(first.dx)),
            torch.where(mask[:, None], first.dr, quat_identity(len(means), device=means.device, dtype=means.dtype)),
            torch.where(mask[:, None], first.ds, torch.zeros_like(first.ds)),
        )
        terms = group_regularizer_losses(cfg, step, means, [first, *seconds], labels, PER_TIME_TERMS)
        vis1 = self.visibility_at(t1)
        for t2, second in zip(others, seconds):
            vis2 = self.visibility_at(t2)
            fit_scale = None if vis1 is None or vis2 is None else (vis1 * vis2).detach()
            rigid = group_regularizer_losses(
                cfg, step, means + first.dx, [relative_deformation(first, second)], labels,
                PAIR_TERMS, fit_scale,
            )  # fmt: skip
            for name, value in rigid.items():
                terms[name] = terms.get(name, 0.0) + value / len(others)
        return terms

    # ------------------------------------------------------------------ checkpoints
    def graph_shapes(self) -> dict[str, int]:
        """What :meth:`resize_graph_to` needs to rebuild the graph before loading a state dict."""
        return {"objects": self.objects.num_objects if self.objects is not None else 0}

    def resize_graph_to(self, shapes: dict[str, int]) -> None:
        """Recreate the graph's variable-size state (the number of objects) before loading a checkpoint's state."""
        if self.objects is not None:
            self.objects.resize(int(shapes.get("objects", 0)))

    def resize_params_to(self, shapes: dict[str, torch.Size]) -> None:
        """Recreate the Gaussian parameters with the given shapes (before loading a checkpoint's state)."""
        device = self.params["means"].device
        for key, shape in shapes.items():
            self.params[key] = nn.Parameter(torch.zeros(shape, device=device))
