"""Named training presets of the core trainer (the nerfstudio method configs mirror them).

- ``cpu``: the full method (semdyn) on the embedded default on a 2-core CPU: the synthetic street at half resolution,
  a few thousand steps, small deformation grids; labels lifted from the sequence's instance masks (standing in for
  SAM + CLIP: ``--semantics.masks cache --semantics.cache-dir <run>`` for the maps of
  ``scripts/extract_semantics.py``), moving rigid groups promoted to rigid object nodes, static structure to the
  background, the object-wise regularizers on the rest; trains and renders in under 10 minutes.
- ``cpu-base``: semdyn-base, the same without semantics (one deformable node: field, velocities, visibility).
- ``cpu-static``: the base with every time dependence switched off (the static baseline, otherwise equal).
- ``full``, ``full-base``, ``full-static``: the same at full resolution and the full 30k-step schedule (a GPU).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from semdyn.deform import HexPlaneConfig
from semdyn.scene.dynamic import DynamicSceneConfig, LossWeights, VisibilityConfig
from semdyn.scene.gaussians import GaussianInitConfig
from semdyn.scene.strategy import DensifyConfig
from semdyn.semantics.training import SemanticsConfig
from semdyn.train.trainer import TrainConfig


def cpu_base_preset() -> TrainConfig:
    """semdyn-base on the CPU."""
    model = DynamicSceneConfig(
        init=GaussianInitConfig(sh_degree=1, max_points=30_000),
        deformation=HexPlaneConfig(
            feature_dim=8, spatial_resolution=48, multires=(1, 2), time_resolution=20, net_width=32
        ),
        densify=DensifyConfig(
            refine_start_iter=300, refine_stop_iter=1_200, refine_every=100, reset_every=100_000, grow_grad2d=0.0008
        ),
        sh_degree_interval=1000,
        visibility=VisibilityConfig(init_lifespan=0.1),
        losses=LossWeights(depth=0.05),
    )
    return TrainConfig(experiment_name="semdyn-cpu-base", max_steps=3000, downscale=2, steps_per_save=500, model=model)


def cpu_preset() -> TrainConfig:
    """The full method on the CPU (the README's main command)."""
    return dataclasses.replace(semantic(cpu_base_preset()), experiment_name="semdyn-cpu")


def static(config: TrainConfig) -> TrainConfig:
    """The same run with every time dependence switched off (deformation and temporal visibility): plain 3DGS."""
    model = dataclasses.replace(config.model, deformation=None, visibility=None, velocity=None)
    name = config.experiment_name.removesuffix("-base") + "-static"
    return dataclasses.replace(config, model=model, experiment_name=name, semantics=None)


def semantic(config: TrainConfig, lift_start: int = 500, lift_every: int = 1000) -> TrainConfig:
    """The run with semantics lifted from the instance masks (labels for the object-wise regularizers)."""
    sem = SemanticsConfig(lift_start=lift_start, lift_every=lift_every)
    return dataclasses.replace(config, semantics=sem, experiment_name=config.experiment_name + "-semantic")


def full_base_preset() -> TrainConfig:
    """semdyn-base at full resolution, 30k steps."""
    return TrainConfig(experiment_name="semdyn-base", max_steps=30_000, downscale=1, output_dir=Path("outputs"))


def full_preset() -> TrainConfig:
    """The full method at full resolution, 30k steps."""
    return dataclasses.replace(semantic(full_base_preset(), 1000, 3000), experiment_name="semdyn")


PRESETS: dict[str, tuple[str, TrainConfig]] = {
    "cpu": (
        "The full method on the embedded default on a CPU: half resolution, 3k steps, instance masks for SAM + CLIP.",
        cpu_preset(),
    ),
    "cpu-base": (
        "semdyn-base on a CPU: the cpu preset without semantics (no objects, no background).",
        cpu_base_preset(),
    ),
    "cpu-static": (
        "The cpu preset with every time dependence switched off (static baseline).",
        static(cpu_base_preset()),
    ),
    "full": ("The full method at full resolution, 30k steps (for a GPU).", full_preset()),
    "full-base": ("semdyn-base at full resolution, 30k steps.", full_base_preset()),
    "full-static": ("The full-base preset with every time dependence switched off.", static(full_base_preset())),
}
