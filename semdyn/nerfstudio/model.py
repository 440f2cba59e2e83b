"""A thin nerfstudio Model around the core dynamic scene (:class:`semdyn.scene.dynamic.DynamicScene`).

Everything that defines the model (initialisation, deformation, sky, rendering, densification, loss weights) is the
core's :class:`DynamicSceneConfig`, nested as one field. This module only translates:

- a nerfstudio ``Cameras`` (OpenGL camera-to-world [1, 3, 4], fx/fy/cx/cy, ``times`` [1, 1]) into the core's
  arguments (OpenCV world-to-camera [1, 4, 4], K [1, 3, 3], width, height, t);
- the core's outputs ([1, H, W, C]) into nerfstudio's ([H, W, C]) and back for the loss;
- nerfstudio's per-group optimizers and training callbacks into the core's gsplat strategy helpers.

Time flows from the viewer's Time slider into ``camera.times`` (nerfstudio's viewer writes it into the camera it
renders, because the dataparser sets ``includes_time``), and from there into ``DynamicScene.forward(..., t)``,
which deforms the canonical Gaussians to that time before rasterising. The model holds no time state.

With ``semantics.feature_field`` the model also trains a feature field (a latent per Gaussian, decoded to the CLIP
space of the semantics cache), and the viewer's "Text query" box fills the ``relevancy`` output from it
(:mod:`semdyn.viewer.query` loads the CLIP text encoder on the first query). The output is always present, zeros
without a query or a feature field, because nerfstudio's viewer resets its output menus whenever the set of output
names changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from torch import Tensor, nn

from semdyn.conventions import OPENGL_TO_OPENCV
from semdyn.data.scene_data import load_scene
from semdyn.errors import InputError
from semdyn.eval import image as image_metrics
from semdyn.ops._backend import get_ext
from semdyn.scene.build import build_scene, scene_init_from_metadata
from semdyn.scene.dynamic import DynamicScene, DynamicSceneConfig
from semdyn.scene.nodes import OBJECT_ID0
from semdyn.scene.strategy import (
    NODE_IDS,
    densify_pre_backward,
    densify_step,
    get_labels,
    make_strategy,
    set_labels,
)
from semdyn.semantics.feature_field import LATENT_KEY, FeatureDecoder, cached_clip_dim, feature_loss, render_latent
from semdyn.semantics.groups import SemanticGroups
from semdyn.semantics.query import relevancy_image
from semdyn.semantics.training import SemanticLifter, SemanticsConfig
from semdyn.train.trainer import TrainingDivergedError
from semdyn.viewer.colors import id_colors
from semdyn.viewer.controls import ObjectPath, ViewerControls
from semdyn.viewer.extras import EXTRA_OUTPUTS, render_extras, render_view, visible_mask
from semdyn.viewer.query import TextQuery, TextQueryConfig

IMAGE_OUTPUTS = ("rgb", "depth", "accumulation")
"""The outputs the viewer, ns-render and evaluation get: [H, W, 3], [H, W, 1], [H, W, 1]."""


def viewmat_from_camera_to_world(camera_to_worlds: Tensor) -> Tensor:
    """OpenCV world-to-camera matrices from nerfstudio's OpenGL camera-to-world ones.

    Args:
        camera_to_worlds: [C, 3, 4] (x right, y up, z backwards).

    Returns:
        [C, 4, 4] world-to-camera (x right, y down, z forwards), as the core's ``viewmats``.
    """
    c2w = camera_to_worlds
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype, device=c2w.device).expand(c2w.shape[0], 1, 4)
    flip = torch.as_tensor(OPENGL_TO_OPENCV, dtype=c2w.dtype, device=c2w.device)
    return torch.linalg.inv(torch.cat([c2w, bottom], dim=1) @ flip)


def camera_arguments(camera: Cameras) -> tuple[Tensor, Tensor, int, int, float]:
    """The core's ``(viewmats [1, 4, 4], Ks [1, 3, 3], width, height, t)`` of one nerfstudio camera.

    Width, height and intrinsics are read as the camera holds them now, so a camera already rescaled (by the
    datamanager's ``camera_res_scale_factor`` or the viewer's render resolution) renders at that size.
    ``t`` is ``camera.times`` (normalised [0, 1]; the viewer's Time slider), 0 when the camera has no time.
    """
    if camera.camera_to_worlds.numel() != 12:
        raise InputError(f"SemdynModel renders one camera at a time, got cameras of shape {tuple(camera.shape)}")
    viewmats = viewmat_from_camera_to_world(camera.camera_to_worlds.reshape(1, 3, 4))
    Ks = camera.get_intrinsics_matrices().reshape(1, 3, 3).to(viewmats)
    t = 0.0 if camera.times is None else float(camera.times.reshape(-1)[0])
    return viewmats, Ks, int(camera.width.reshape(-1)[0]), int(camera.height.reshape(-1)[0]), t


@dataclass
class SemdynModelConfig(ModelConfig):
    """semdyn: canonical 3D Gaussians deformed over time by a field, over a learned sky (the core DynamicScene)."""

    _target: type = field(default_factory=lambda: SemdynModel)
    """Target class to instantiate."""
    scene: DynamicSceneConfig = field(default_factory=DynamicSceneConfig)
    """The core model: init, deformation, sky, render, densify and loss weights. The optimizers train at its rates
    (lrs, deform_lr, ...) as given on the command line; --optimizers.<group>.optimizer.lr changes one group alone
    (semdyn.nerfstudio.optimizers)."""
    seed: int = 0
    """Seeds the initial Gaussians (subsampling, random points, colours and rotations)."""
    aabb_from_points: bool = True
    """Box of the deformation field (and of random Gaussians) from the 0.1-99.9 % quantiles of the seed points, as
    the core trainer does; False, or no points: the dataparser's scene box."""
    enable_collider: bool = False
    """Unused: the ray collider of ray-marching models."""
    semantics: SemanticsConfig | None = None
    """Lift object labels onto the Gaussians during training (labels for the object-wise regularizers of
    ``scene.groups``); None: no semantics (semdyn-base). Lifting reads the sequence as the core trainer does, at the
    training cameras' resolution. Its ``feature_field`` (with ``masks cache``) trains a CLIP feature field."""
    viewer_extras: bool = True
    """Outside training, also render groups, classes (stable colours, grey = unlabelled), deformation magnitude
    (one extra rasterisation of a feature image) and the relevancy in [0, 1] of the viewer's "Text query" (zeros
    without a query or a feature field)."""
    text_query: TextQueryConfig = field(default_factory=TextQueryConfig)
    """The CLIP model of the viewer's text queries (loaded on the first query; the model name comes from the
    semantics cache's meta.json)."""


class SemdynModel(Model):
    """nerfstudio Model delegating rendering, losses and densification to :class:`DynamicScene`."""

    # nerfstudio's pattern (as splatfacto): a subclass narrows the config it is built with; only __init__ sets it
    config: SemdynModelConfig  # ty: ignore[incompatible-mutable-override]
    scene: DynamicScene

    def populate_modules(self) -> None:
        """Build the core scene from ``metadata["points3D_xyz"/"points3D_rgb"]`` (random Gaussians when absent),
        on the CPU: nerfstudio moves the model (parameters and buffers) with ``.to(device)`` afterwards."""
        super().populate_modules()
        metadata = self.kwargs.get("metadata") or {}
        if not torch.cuda.is_available():  # load the C++ rasteriser here, not in the viewer's render thread, whose
            get_ext()  # interrupts (a camera move) would cut the import short and leave the viewer without outputs
        generator = torch.Generator().manual_seed(self.config.seed)
        aabb = self.scene_aabb(metadata.get("points3D_xyz"))
        self.scene = build_scene(self.config.scene, scene_init_from_metadata(metadata, aabb), "cpu", generator)
        # Normalised world (the dataparser scales the cameras to about [-1, 1]): scene scale 1, as splatfacto.
        self.strategy, self.strategy_state = make_strategy(self.config.scene.densify, scene_scale=1.0)
        self.step = 0
        self.lifter: SemanticLifter | None = None
        self._groups: SemanticGroups | None = None  # the group table of a loaded checkpoint, until the next lift
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._all_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._meta: dict[str, Any] | None = None
        self.feature_decoder = self.feature_field()
        sem = self.config.semantics
        self.text_query = TextQuery(self.config.text_query, None if sem is None else sem.cache_dir)
        sequence, norm = metadata.get("sequence"), metadata.get("scene_normalization")
        poses = None if sequence is None or norm is None else norm.poses_to_normalized(sequence.camera_to_worlds)
        self.viewer_controls = ViewerControls(poses, on_query=self.prepare_query, tracks=self.object_paths)
        self._class_names: tuple[str, ...] = tuple(getattr(sequence, "semantic_classes", ()) or ())

    def feature_field(self) -> FeatureDecoder | None:
        """With ``semantics.feature_field``: add a latent per Gaussian (``scene.params["feature_latent"]``) and
        return the decoder to the semantics cache's CLIP size; None without."""
        sem = self.config.semantics
        if sem is None or sem.feature_field is None:
            return None
        if sem.masks != "cache" or sem.cache_dir is None:
            raise InputError("--pipeline.model.semantics.feature-field needs --pipeline.model.semantics.masks cache")
        ff = sem.feature_field
        g = torch.Generator().manual_seed(self.config.seed + 1)
        latent = 0.1 * torch.randn(self.num_gaussians, ff.latent_dim, generator=g)
        self.scene.add_gaussian_param(LATENT_KEY, latent, ff.latent_lr)
        return FeatureDecoder(ff.latent_dim, cached_clip_dim(sem.cache_dir), ff.hidden)

    @property
    def has_feature_field(self) -> bool:
        """Whether the Gaussians carry a feature latent and the model a decoder (text queries can be answered)."""
        return self.feature_decoder is not None and LATENT_KEY in self.scene.params

    def scene_aabb(self, points: Tensor | None) -> Tensor:
        """[2, 3] box of the deformation field and random initialisation (normalised units)."""
        if points is None or len(points) == 0 or not self.config.aabb_from_points:
            return self.scene_box.aabb.float()
        sample = points[:: max(1, len(points) // 100_000)].float()
        return torch.quantile(sample, torch.tensor([0.001, 0.999]), dim=0)

    @property
    def num_gaussians(self) -> int:
        return self.scene.num_gaussians

    # ------------------------------------------------------------------ rendering
    # nerfstudio's Model takes rays or cameras; its splatting models (as splatfacto) are only ever given Cameras
    def get_outputs(self, camera: Cameras) -> dict[str, Any]:  # ty: ignore[incompatible-method-override]
        """Render one camera at ``camera.times`` (or the viewer's frozen time): rgb [H, W, 3], depth [H, W, 1],
        accumulation [H, W, 1]; outside training also groups, classes [H, W, 3], deformation, relevancy [H, W, 1]
        (with ``viewer_extras``), in training the feature field's latents feature_latent [H, W, d] (with one); and
        the core's raw outputs under ``"scene"`` (batched, with ``meta``)."""
        viewmats, Ks, width, height, t = camera_arguments(camera)
        viewmats, Ks = viewmats.to(self.device), Ks.to(self.device)
        if self.training:
            out = self.scene(viewmats, Ks, width, height, t, step=self.step)
            self._meta = out["meta"]
            densify_pre_backward(self.strategy, self.scene.params, self._optimizers, self.strategy_state,
                                 self.step, out["meta"])  # fmt: skip
            result = {key: out[key][0] for key in IMAGE_OUTPUTS} | {"scene": out}
            if self.has_feature_field:  # [H, W, d], decoded and scored in get_loss_dict
                g, latent, cfg = out["gaussians"], self.scene.params[LATENT_KEY], self.config.scene.render
                result["feature_latent"] = render_latent(g, latent, viewmats, Ks, width, height, cfg)[0]
            return result
        groups, classes = self.gaussian_labels()
        controls = self.viewer_controls
        keep = visible_mask(groups, classes, controls.hidden_groups(), controls.hidden_classes(self._class_names))
        out = render_view(self.scene, viewmats, Ks, width, height, controls.time(t), keep)
        result = {key: out[key][0] for key in IMAGE_OUTPUTS} | {"scene": out}
        if self.config.viewer_extras:
            extras = render_extras(self.scene, out["gaussians"], viewmats, Ks, width, height, groups, classes)
            result |= {key: value[0] for key, value in extras.items()}
            result["relevancy"] = self.relevancy(out["gaussians"], viewmats, Ks, width, height)
        return result

    @torch.no_grad()
    def object_paths(self, samples: int = 64) -> list[ObjectPath]:
        """The rigid objects' paths for the viewer's "Draw object tracks": each trajectory's origin at ``samples``
        times over the interval it was seen (dataparser units), coloured as its group."""
        node = self.scene.objects
        if node is None or node.num_objects == 0:
            return []
        ids = self.scene.node_ids_now()
        names = self._groups.class_names if self._groups is not None else None
        if self.lifter is not None and self.lifter.groups is not None:
            names = self.lifter.groups.class_names
        colors = (id_colors(node.group.cpu()) * 255).round().to(torch.int64).tolist()
        out = []
        for o in range(node.num_objects):
            lo, hi = (float(v) for v in node.interval[o])
            t = torch.linspace(lo, hi, samples, device=node.translation.device)
            centre = node.poses(torch.full((samples,), o, dtype=torch.long, device=t.device), t)[1]
            group = int(node.group[o])
            label = names[group] if names is not None and group < len(names) else "object"
            count = int((ids == OBJECT_ID0 + o).sum())
            text = f"{count:,} Gaussians, seen at normalised times {lo:.2f}-{hi:.2f}, group {group}"
            out.append(ObjectPath(o, label, centre.cpu().numpy(), tuple(colors[o]), text))
        return out

    def prepare_query(self, text: str) -> None:
        """Encode a new "Text query" (the text box's callback, so that the render it triggers finds it encoded)."""
        self.text_query.answer(text, self.has_feature_field, self.device)

    def relevancy(self, gaussians: dict[str, Tensor], viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
        """[H, W, 1] relevancy in [0, 1] of the viewer's text query, scored per pixel on the decoded feature field
        of ``gaussians`` (one camera); zeros without a query or a feature field, or when the query cannot be
        encoded (:class:`TextQuery` logs why, once)."""
        query = self.text_query.answer(self.viewer_controls.query_text(), self.has_feature_field, self.device)
        if query is None or self.feature_decoder is None:
            return torch.zeros(height, width, 1, device=self.device)
        latent = self.scene.params[LATENT_KEY]
        image = render_latent(gaussians, latent, viewmats, Ks, width, height, self.config.scene.render)[0]
        score = relevancy_image(image, self.feature_decoder, *query, temperature=self.config.text_query.temperature)
        return score[..., None]

    def gaussian_labels(self) -> tuple[Tensor, Tensor]:
        """``(group_ids [N], class_ids [N])`` int64 on the model's device; -1 where unknown (no labels yet)."""
        n, dev = self.num_gaussians, self.device
        labels = get_labels(self.strategy_state)
        groups = labels[0] if labels is not None and len(labels[0]) == n else torch.full((n,), -1, dtype=torch.long)
        classes = self.strategy_state.get("class_ids")
        if not isinstance(classes, Tensor) or len(classes) != n:
            classes = torch.full((n,), -1, dtype=torch.long)
        return groups.to(dev).long(), classes.to(dev).long()

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: OrientedBox | None = None) -> dict[str, Tensor]:
        """What the viewer, ns-render and evaluation call: the image outputs at ``camera.times``.
        The viewer's crop box (``obb_box``) is not applied."""
        outputs = self.get_outputs(camera.to(self.device))
        return {key: outputs[key] for key in (*IMAGE_OUTPUTS, *EXTRA_OUTPUTS) if key in outputs}

    # ------------------------------------------------------------------ losses and metrics
    def gt_rgb(self, batch: Mapping[str, Any]) -> Tensor:
        """[H, W, 3] ground truth in [0, 1] on the model's device (uint8 scaled; RGBA composited over black, the
        Gaussians' canvas)."""
        image = batch["image"].to(self.device)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        return image[..., :3] * image[..., 3:4] if image.shape[-1] == 4 else image

    def get_loss_dict(
        self, outputs: dict[str, Any], batch: dict[str, Any], metrics_dict: dict[str, Any] | None = None
    ) -> dict[str, Tensor]:
        """The core's weighted, named terms (rgb, opacity, scale_ratio, plane_tv, time_smoothness, time_l1).

        The LiDAR depth term is not computed: nerfstudio's full-image datamanager yields no sparse depth, so
        ``scene.losses.depth`` has no effect here (the core trainer uses it). With a feature field, also
        ``feature``: weight * (1 - cos) of the decoded latents against the cached CLIP targets of the batch's frame.
        """
        losses = self.scene.loss_dict(outputs["scene"], self.gt_rgb(batch)[None], None, step=self.step)
        if "feature_latent" in outputs:
            losses["feature"] = self.feature_loss(outputs["feature_latent"], int(batch["image_idx"]))
        for name, value in losses.items():
            if self.training and not torch.isfinite(value):
                raise TrainingDivergedError(
                    f"training diverged at step {self.step}: loss term '{name}' is {value.item()}; the checkpoints "
                    "nerfstudio saved before this step (nerfstudio_models/) are from before it"
                )
        return losses

    def feature_loss(self, latent_image: Tensor, image_idx: int) -> Tensor:
        """The weighted feature term of training image ``image_idx`` from its rendered latents [H, W, d]."""
        sem = self.config.semantics
        frames = (self.kwargs.get("metadata") or {}).get("frame_indices")
        assert sem is not None and sem.feature_field is not None and self.feature_decoder is not None
        if frames is None:
            raise InputError("--pipeline.model.semantics.feature-field needs the semdyn-data dataparser")
        targets = self.semantic_lifter(latent_image.shape[1]).feature_targets
        assert targets is not None  # the lifter reads them when the config has a feature field
        target, valid = targets.target(int(frames[image_idx]))
        dev = latent_image.device
        pred = self.feature_decoder(latent_image)[None]
        return sem.feature_field.weight * feature_loss(pred, target[None].to(dev), valid[None].to(dev))

    def get_metrics_dict(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "psnr": image_metrics.psnr(outputs["rgb"].detach(), self.gt_rgb(batch)),
            "gaussian_count": self.num_gaussians,
        }

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        """PSNR, SSIM (as nerfstudio computes them) and LPIPS when its AlexNet weights are on disk (never
        downloaded; :func:`semdyn.eval.image.get_lpips_metric` logs once when they are missing)."""
        gt, pred = self.gt_rgb(batch), outputs["rgb"].clamp(0.0, 1.0)
        metrics = {"psnr": float(image_metrics.psnr(pred, gt)), "ssim": float(image_metrics.ssim(pred, gt))}
        lpips = image_metrics.get_lpips_metric(device=self.device)
        if lpips.available:
            value = lpips(pred, gt)
            assert value is not None  # None only when unavailable
            metrics["lpips"] = float(value)
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        return metrics, {"img": torch.cat([gt, pred], dim=1), "depth": depth}

    # ------------------------------------------------------------------ optimisation
    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        """One group per Gaussian attribute (means, quats, scales, opacities, sh0, shN), as gsplat's strategies
        need, plus the core's deform_grid, deform_mlp and sky (when present); with a feature field also
        feature_latent (a Gaussian attribute) and feature_decoder."""
        groups = {key: [p] for key, p in self.scene.params.items()} | self.scene.optimizer_groups()
        if self.feature_decoder is not None:
            groups["feature_decoder"] = list(self.feature_decoder.parameters())
        return groups

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> list[TrainingCallback]:
        before = TrainingCallbackLocation.BEFORE_TRAIN_ITERATION
        after = TrainingCallbackLocation.AFTER_TRAIN_ITERATION
        callbacks = [
            TrainingCallback([before], self._before_step, args=[training_callback_attributes.optimizers]),
            TrainingCallback([after], self._after_step),
        ]
        if self.config.semantics is not None:
            pipeline = training_callback_attributes.pipeline
            callbacks.append(TrainingCallback([after], self._lift, args=[pipeline]))
        return callbacks

    def _lift(self, pipeline: Any, step: int) -> None:
        """Lift labels when the schedule says so (after densification, as the core trainer). The first time, the
        sequence is read at the training cameras' resolution, as the core trainer reads it."""
        cfg = self.config.semantics
        if cfg is None or not SemanticLifter.is_due(cfg, step + 1):
            return
        width = int(pipeline.datamanager.train_dataset.cameras[0].width)
        optimizers = self._all_optimizers
        self.semantic_lifter(width).lift(self.scene, self.strategy_state, self.device, optimizers=optimizers)

    def semantic_lifter(self, width: int) -> SemanticLifter:
        """The lifter, built on first use: the sequence read at the training cameras' resolution (``width``
        pixels), as the core trainer reads it, without its images (the datamanager holds those; the lifter reads
        the cameras and masks)."""
        if self.lifter is None:
            cfg = self.config.semantics
            sequence = (self.kwargs.get("metadata") or {}).get("sequence")
            if cfg is None or sequence is None:
                raise InputError("--pipeline.model.semantics needs the semdyn-data dataparser (it names the sequence)")
            factor = max(round(sequence.frames[0].intrinsics.width / width), 1)
            norm = (self.kwargs.get("metadata") or {}).get("scene_normalization")  # the dataparser's world
            self.lifter = SemanticLifter(cfg, load_scene(sequence.root, factor, normalization=norm, load_images=False))
            if self._groups is not None:  # resumed: the checkpoint's groups until the next lift
                self.lifter.groups = self._groups
        return self.lifter

    def _before_step(self, optimizers: Optimizers, step: int) -> None:
        """Record the step (SH degree, strategy schedule) and the Gaussians' optimizers for the strategy."""
        self.step = step
        self._optimizers = {key: optimizers.optimizers[key] for key in self.scene.params}
        self._all_optimizers = dict(optimizers.optimizers)
        if self.lifter is not None:  # densification changes N: the scene gets the current Gaussians' labels
            self.scene.set_groups(self.lifter.group_labels(self.strategy_state), self.strategy_state.get(NODE_IDS))

    def _after_step(self, step: int) -> None:
        """Densify after the optimizers stepped, as the core trainer (MCMC scales its noise by the means lr)."""
        for name, p in self.scene.params.items():  # before nerfstudio saves this step: no checkpoint full of NaN
            if not torch.isfinite(p.detach().sum()):
                raise TrainingDivergedError(
                    f"training diverged at step {step}: Gaussian parameter '{name}' is not finite after the "
                    "optimiser step (a learning rate too large?); the checkpoints nerfstudio saved before it are kept"
                )
        if self._meta is None:
            return
        lr = self._optimizers["means"].param_groups[0]["lr"]
        densify_step(self.strategy, self.scene.params, self._optimizers, self.strategy_state, step, self._meta, lr=lr)
        self._meta = None

    # ------------------------------------------------------------------ checkpoints
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Resize the Gaussians to the checkpoint's count (densification changes it) before loading. The resize
        is in place, so optimizers built before loading (``ns-train --load-dir``) keep pointing at them."""
        prefix = "scene.params."
        for key, p in self.scene.params.items():
            saved = state_dict.get(prefix + key)
            if saved is not None and saved.shape != p.shape:
                p.data = p.data.new_zeros(saved.shape)
        objects = state_dict.get("scene.nodes.rigid.translation")
        if objects is not None:  # the rigid objects of the checkpoint's graph (the same parameters, resized)
            self.scene.resize_graph_to({"objects": int(objects.shape[0])})
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._restore_groups()
        return result

    def get_extra_state(self) -> dict[str, Any]:
        """Saved with the parameters: the Gaussians' labels and class ids (the strategy state) and the group table,
        so that a loaded checkpoint (``ns-viewer``, ``--load-dir``) shows the groups and moves the moving groups'
        members along their paths, as in training."""
        labels = get_labels(self.strategy_state)
        table = self.lifter.groups if self.lifter is not None else self._groups
        classes = self.strategy_state.get("class_ids")
        nodes = self.strategy_state.get(NODE_IDS)
        return {
            "labels": None if labels is None else (labels[0].cpu(), labels[1].cpu()),
            "class_ids": classes.cpu() if isinstance(classes, Tensor) else None,
            "node_ids": nodes.cpu() if isinstance(nodes, Tensor) else None,
            "groups": None if table is None else table.state_dict(),
        }

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        if state.get("labels") is not None:
            set_labels(self.strategy_state, *state["labels"])
        if state.get("class_ids") is not None:
            self.strategy_state["class_ids"] = state["class_ids"]
        if state.get("node_ids") is not None:
            self.strategy_state[NODE_IDS] = state["node_ids"]
        if state.get("groups") is not None:
            self._groups = SemanticGroups.from_state_dict(state["groups"])

    def _restore_groups(self) -> None:
        """Hand the scene the loaded labels, group table and nodes (the graph as trained)."""
        device = self.scene.params["means"].device
        nodes = self.strategy_state.get(NODE_IDS)
        nodes = nodes.to(device) if isinstance(nodes, Tensor) and len(nodes) == self.num_gaussians else None
        labels = None if self._groups is None else self._groups.labels(self.strategy_state, device)
        if labels is not None and len(labels.ids) != self.num_gaussians:
            labels = None
        self.scene.set_groups(labels, nodes)

    def update_to_step(self, step: int) -> None:
        self.step = step
