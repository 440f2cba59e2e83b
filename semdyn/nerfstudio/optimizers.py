"""The optimizers of semdyn's ``ns-train`` methods, and the one rule tying them to the model config.

nerfstudio lists a method's optimizers in its ``TrainerConfig`` before the model exists, so the rates are read from
the model config (:func:`optimizers`) when a method config is built. A command line may change either side:
``--pipeline.model.scene.lrs.scales 100`` (the model's rate) or ``--optimizers.scales.optimizer.lr 100``
(nerfstudio's). :func:`sync_optimizers` makes the optimizers follow the final model config: a rate changed on the
model's side is copied into its optimizer, one changed on the optimizer's side is kept, and two changed to different
values are refused in one sentence naming both options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecayScheduler, ExponentialDecaySchedulerConfig
from torch.optim import Optimizer, lr_scheduler

from semdyn.errors import InputError
from semdyn.scene.build import optimizer_rates
from semdyn.scene.dynamic import DynamicSceneConfig
from semdyn.scene.gaussians import PARAM_KEYS
from semdyn.semantics.feature_field import LATENT_KEY, FeatureFieldConfig
from semdyn.semantics.training import SemanticsConfig
from semdyn.train.options import flag

Optimizers = dict[str, dict[str, Any]]
"""nerfstudio's ``TrainerConfig.optimizers``: group -> {"optimizer": ..., "scheduler": ... or None}."""
Setting = tuple[str, str, str]
"""One number of an optimizer entry: (group, "optimizer" or "scheduler", attribute)."""

_SCENE = ("pipeline", "model", "scene")
SOURCES: dict[str, tuple[str, ...]] = {
    "deform_grid": (*_SCENE, "deform_lr"),
    "deform_mlp": (*_SCENE, "deform_lr"),
    "sky": (*_SCENE, "sky", "lr"),
    "object_translation": (*_SCENE, "objects", "translation_lr"),
    "object_rotation": (*_SCENE, "objects", "rotation_lr"),
    "anchor_time": (*_SCENE, "visibility", "anchor_lr"),
    "log_lifespan": (*_SCENE, "visibility", "lifespan_lr"),
    "velocity": (*_SCENE, "velocity", "lr"),
    LATENT_KEY: ("pipeline", "model", "semantics", "feature_field", "latent_lr"),
    "feature_decoder": ("pipeline", "model", "semantics", "feature_field", "decoder_lr"),
} | {key: (*_SCENE, "lrs", key) for key in PARAM_KEYS}
"""The model-config field each optimizer group's rate comes from (for the messages)."""


class FloatExponentialDecayScheduler(ExponentialDecayScheduler):
    """nerfstudio's exponential decay with Python-float rates.

    nerfstudio 1.1.5 computes the rates with numpy; numpy scalars then land in the checkpoint, which the weights-only
    ``torch.load`` of torch >= 2.6 (nerfstudio's eval_setup: ns-viewer, ns-render, ns-eval; and --load-dir) refuses.
    """

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> lr_scheduler.LRScheduler:
        scheduler = cast(lr_scheduler.LambdaLR, super().get_scheduler(optimizer, lr_init))  # annotated: the base
        numpy_multiplier = scheduler.lr_lambdas[0]
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda step: float(numpy_multiplier(step)))


@dataclass
class FloatExponentialDecaySchedulerConfig(ExponentialDecaySchedulerConfig):
    """Exponential decay from lr to lr_final over max_steps (nerfstudio's, with checkpoint-safe float rates)."""

    _target: type = field(default_factory=lambda: FloatExponentialDecayScheduler)
    """Target class to instantiate."""


def optimizers(scene: DynamicSceneConfig, max_steps: int, semantics: SemanticsConfig | None = None) -> Optimizers:
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


def settings(groups: Optimizers) -> dict[Setting, float]:
    """The numbers of ``groups`` that :func:`optimizers` derives from a config: every lr, and the means schedule's
    lr_final and max_steps."""
    out: dict[Setting, float] = {}
    for name, entry in groups.items():
        out[(name, "optimizer", "lr")] = entry["optimizer"].lr
        scheduler = entry.get("scheduler")
        if isinstance(scheduler, ExponentialDecaySchedulerConfig):
            out[(name, "scheduler", "lr_final")] = scheduler.lr_final
            out[(name, "scheduler", "max_steps")] = scheduler.max_steps
    return out


def setting_key(setting: Setting) -> str:
    """The command-line flag of an optimizer setting: ``--optimizers.scales.optimizer.lr``."""
    return "--optimizers." + ".".join([setting[0], *(part.replace("_", "-") for part in setting[1:])])


def source_flag(setting: Setting) -> str:
    """The flag of the model-config (or trainer) option that ``setting`` is derived from."""
    group, _, attr = setting
    if attr == "max_steps":
        return flag("max_num_iterations")
    if attr == "lr_final" and group == "means":
        return flag(*_SCENE, "lrs", "means_final")
    return flag(*SOURCES.get(group, _SCENE))


def sync_optimizers(groups: Optimizers, derived: Mapping[Setting, float], preset: Mapping[str, float]) -> None:
    """Make ``groups`` (the parsed optimizers) agree with ``derived`` (what :func:`optimizers` gives for the final
    model config), in place. ``preset`` holds both sides' defaults (the method's optimizer settings, keyed by
    :func:`setting_key`): a setting still at its default follows the model config; one given on the command line
    is kept when the model side is at its default.

    Raises:
        InputError: both sides were changed, to different values.
    """
    for setting, want in derived.items():
        group, kind, attr = setting
        entry = groups.get(group, {}).get(kind)
        if entry is None:
            continue
        have = getattr(entry, attr)
        default = preset.get(setting_key(setting), want)
        if have == want or want == default:
            continue
        if have != default:
            raise InputError(
                f"{setting_key(setting)} {have:g} disagrees with {source_flag(setting)}, which sets the same value to "
                f"{want:g}; give only one of the two"
            )
        setattr(entry, attr, type(have)(want))


__all__ = [
    "FloatExponentialDecayScheduler",
    "FloatExponentialDecaySchedulerConfig",
    "optimizers",
    "settings",
    "setting_key",
    "source_flag",
    "sync_optimizers",
]
