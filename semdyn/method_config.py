"""``ns-train`` presets of semdyn (nerfstudio ``MethodSpecification`` objects, registered through the
``nerfstudio.method_configs`` entry points).

- ``semdyn``: the full method (the semantic regularizers plug in here); today the same model as ``semdyn-base``.
- ``semdyn-base``: the dynamic scene without semantics (:func:`semdyn.presets.full_preset`).
- ``semdyn-static``: the base with the deformation switched off (the static baseline).
- ``semdyn-cpu``: the small CPU preset (:func:`semdyn.presets.cpu_preset`): half resolution, 3k steps, on the CPU.

Without ``--data`` they train on the synthetic default street, generated into the cache ($SEMDYN_CACHE or
~/.cache/semdyn) the first time a datamanager is set up, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecayScheduler, ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification
from torch.optim import Optimizer, lr_scheduler

from semdyn import presets
from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig
from semdyn.nerfstudio.model import SemdynModelConfig
from semdyn.scene.dynamic import DynamicSceneConfig
from semdyn.scene.gaussians import PARAM_KEYS
from semdyn.scene.sky import SkyConfig
from semdyn.semantics.feature_field import LATENT_KEY, FeatureFieldConfig
from semdyn.semantics.training import SemanticsConfig
from semdyn.synth import SynthConfig, ensure_scene
from semdyn.train.trainer import TrainConfig


@dataclass
class SemdynDatamanagerConfig(FullImageDatamanagerConfig):
    """nerfstudio's full-image datamanager; without --data it trains on the synthetic default street.

    The default scene is resolved here rather than in a dataparser subclass: ns-train exposes the dataparser as a
    subcommand union of the registered parsers, where a subclass would lose its command-line options.
    """

    synth: SynthConfig = field(default_factory=SynthConfig)
    """The synthetic scene used when neither --data nor the dataparser's data is given (generated on first use)."""

    def setup(self, **kwargs: Any) -> Any:
        """Resolve an empty data path to the cached synthetic scene, then build the datamanager."""
        if self.data is None and self.dataparser.data == Path():
            self.data = ensure_scene(self.synth, show_progress=True)
        return super().setup(**kwargs)


class FloatExponentialDecayScheduler(ExponentialDecayScheduler):
    """nerfstudio's exponential decay with Python-float rates.

    nerfstudio 1.1.5 computes the rates with numpy; numpy scalars then land in the checkpoint, which the weights-only
    ``torch.load`` of torch >= 2.6 (nerfstudio's eval_setup: ns-viewer, ns-render, ns-eval; and --load-dir) refuses.
    """

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> lr_scheduler.LRScheduler:
        numpy_multiplier = super().get_scheduler(optimizer, lr_init).lr_lambdas[0]
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda step: float(numpy_multiplier(step)))


@dataclass
class FloatExponentialDecaySchedulerConfig(ExponentialDecaySchedulerConfig):
    """Exponential decay from lr to lr_final over max_steps (nerfstudio's, with checkpoint-safe float rates)."""

    _target: type = field(default_factory=lambda: FloatExponentialDecayScheduler)
    """Target class to instantiate."""


def optimizers(
    scene: DynamicSceneConfig, max_steps: int, semantics: SemanticsConfig | None = None
) -> dict[str, dict[str, Any]]:
    """One Adam (eps 1e-15) per parameter group at the core's rates (as :class:`semdyn.train.Trainer`).

    The centres decay exponentially from ``lrs.means`` to ``lrs.means_final`` over ``max_steps`` (splatfacto's
    schedule; the core multiplies both by the scene scale, which is 1 in the dataparser's normalised world). The
    feature field's latent and decoder groups are always listed (at ``semantics.feature_field``'s rates, else the
    defaults), so that a feature field switched on from the command line finds its optimizers.
    """

    def adam(lr: float, scheduler: FloatExponentialDecaySchedulerConfig | None = None) -> dict[str, Any]:
        return {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler}

    lrs = scene.lrs
    groups = {key: adam(getattr(lrs, key)) for key in PARAM_KEYS}
    groups["means"] = adam(
        lrs.means, FloatExponentialDecaySchedulerConfig(lr_final=lrs.means_final, max_steps=max_steps)
    )
    groups["deform_grid"] = adam(scene.deform_lr)
    groups["deform_mlp"] = adam(scene.deform_lr / 10)
    groups["sky"] = adam((scene.sky or SkyConfig()).lr)
    if scene.visibility is not None:
        groups["anchor_time"] = adam(scene.visibility.anchor_lr)
        groups["log_lifespan"] = adam(scene.visibility.lifespan_lr)
    if scene.velocity is not None and scene.deformation is not None:  # as DynamicScene adds the parameter
        groups["velocity"] = adam(scene.velocity.lr)
    ff = (semantics.feature_field if semantics is not None else None) or FeatureFieldConfig()
    groups[LATENT_KEY] = adam(ff.latent_lr)
    groups["feature_decoder"] = adam(ff.decoder_lr)
    return groups


def trainer_config(name: str, preset: TrainConfig, device: str = "cuda") -> TrainerConfig:
    """nerfstudio's run of a core preset: its model, step count and downscale (the datamanager's resolution)."""
    return TrainerConfig(
        method_name=name,
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=min(2000, preset.steps_per_save),
        steps_per_eval_all_images=1000,
        max_num_iterations=preset.max_steps,
        mixed_precision=False,
        machine=MachineConfig(device_type=device, seed=preset.seed),  # type: ignore[arg-type]
        pipeline=VanillaPipelineConfig(
            datamanager=SemdynDatamanagerConfig(
                dataparser=SemdynDataParserConfig(),
                synth=preset.synth,
                camera_res_scale_factor=1.0 / preset.downscale,
                cache_images="gpu",  # the training device ("cpu" pins memory, which needs CUDA)
                cache_images_type="uint8",
            ),
            model=SemdynModelConfig(scene=preset.model, seed=preset.seed, semantics=preset.semantics),
        ),
        optimizers=optimizers(preset.model, preset.max_steps, preset.semantics),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


semdyn_method = MethodSpecification(
    config=trainer_config("semdyn", presets.semantic(presets.full_preset(), 1000, 3000)),
    description="semdyn: dynamic 3D Gaussians of driving scenes, objects lifted from the sequence's instance masks "
    "(or SAM + CLIP maps: --pipeline.model.semantics.masks cache) and regularized to move as rigid wholes.",
)
semdyn_base_method = MethodSpecification(
    config=trainer_config("semdyn-base", presets.full_preset()),
    description="semdyn without semantics: canonical Gaussians + HexPlane deformation + learned sky.",
)
semdyn_static_method = MethodSpecification(
    config=trainer_config("semdyn-static", presets.static(presets.full_preset())),
    description="semdyn-base with the deformation switched off (static baseline).",
)
semdyn_cpu_method = MethodSpecification(
    config=trainer_config("semdyn-cpu", presets.cpu_preset(), device="cpu"),
    description="Small CPU preset: half resolution, 3k steps, small deformation grids (semdyn.presets.cpu_preset).",
)
