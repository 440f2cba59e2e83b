"""Named training presets of the core trainer (the nerfstudio method configs mirror them).

- ``cpu``: the embedded default on a 2-core CPU: the synthetic street at half resolution, a few thousand
  steps, small deformation grids; trains and renders in under 10 minutes.
- ``cpu-static``: the same with the deformation switched off (the static baseline, otherwise equal).
- ``full``: full resolution and the full 30k-step schedule (for a GPU).
- ``full-static``: its static baseline.
- ``cpu-semantic`` / ``full-semantic``: the full method (semdyn): labels lifted from the sequence's instance masks
  (``--semantics.masks cache --semantics.cache-dir <run>`` for the SAM + CLIP maps of ``scripts/extract_semantics.py``)
  and the object-wise deformation regularizers.
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


def cpu_preset() -> TrainConfig:
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
    return TrainConfig(experiment_name="semdyn-cpu", max_steps=3000, downscale=2, steps_per_save=500, model=model)


def static(config: TrainConfig) -> TrainConfig:
    """The same run with every time dependence switched off (deformation and temporal visibility): plain 3DGS."""
    model = dataclasses.replace(config.model, deformation=None, visibility=None, velocity=None)
    return dataclasses.replace(config, model=model, experiment_name=config.experiment_name + "-static")


def semantic(config: TrainConfig, lift_start: int = 500, lift_every: int = 1000) -> TrainConfig:
    """The run with semantics lifted from the instance masks (labels for the object-wise regularizers)."""
    sem = SemanticsConfig(lift_start=lift_start, lift_every=lift_every)
    return dataclasses.replace(config, semantics=sem, experiment_name=config.experiment_name + "-semantic")


def full_preset() -> TrainConfig:
    return TrainConfig(experiment_name="semdyn", max_steps=30_000, downscale=1, output_dir=Path("outputs"))


PRESETS: dict[str, tuple[str, TrainConfig]] = {
    "cpu": ("The embedded default on a CPU: half resolution, 3k steps (under 10 minutes on 2 cores).", cpu_preset()),
    "cpu-static": ("The cpu preset with the deformation switched off (static baseline).", static(cpu_preset())),
    "full": ("Full resolution, 30k steps (for a GPU).", full_preset()),
    "full-static": ("The full preset with the deformation switched off (static baseline).", static(full_preset())),
    "cpu-semantic": ("The cpu preset with semantics and the object-wise regularizers.", semantic(cpu_preset())),
    "full-semantic": ("The full preset with semantics and the regularizers.", semantic(full_preset(), 1000, 3000)),
}
