"""``ns-train`` presets of semdyn (nerfstudio ``MethodSpecification`` objects, registered through the
``nerfstudio.method_configs`` entry points).

- ``semdyn``: the full method: lifted groups, rigid object nodes, the background, the object-wise regularizers.
- ``semdyn-base``: the dynamic scene without semantics (:func:`semdyn.presets.full_base_preset`).
- ``semdyn-static``: the base with the deformation switched off (the static baseline).
- ``semdyn-cpu``: the full method's small CPU preset (:func:`semdyn.presets.cpu_preset`): half resolution, 3k steps.

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
from semdyn.scene.build import optimizer_rates
from semdyn.scene.dynamic import DynamicSceneConfig
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
    # as the scene's components own them; every group a default scene has is listed too, so that a component switched
    # on from the command line (a deformation field for semdyn-static) finds its optimiser
    rates = optimizer_rates(DynamicSceneConfig()) | optimizer_rates(scene)
    groups = {key: adam(lr) for key, lr in rates.items()}
    groups["means"] = adam(
        lrs.means, FloatExponentialDecaySchedulerConfig(lr_final=lrs.means_final, max_steps=max_steps)
    )
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
    config=trainer_config("semdyn", presets.full_preset()),
    description="semdyn: dynamic 3D Gaussians of driving scenes, objects lifted from the sequence's instance masks "
    "(or SAM + CLIP maps: --pipeline.model.semantics.masks cache) and regularized to move as rigid wholes.",
)
semdyn_base_method = MethodSpecification(
    config=trainer_config("semdyn-base", presets.full_base_preset()),
    description="semdyn without semantics: one deformable node (HexPlane field, velocities, visibility) + sky.",
)
semdyn_static_method = MethodSpecification(
    config=trainer_config("semdyn-static", presets.static(presets.full_base_preset())),
    description="semdyn-base with the deformation switched off (static baseline).",
)
semdyn_cpu_method = MethodSpecification(
    config=trainer_config("semdyn-cpu", presets.cpu_preset(), device="cpu"),
    description="The full method on a CPU: half resolution, 3k steps, small grids (semdyn.presets.cpu_preset).",
)
