"""``ns-train`` presets of semdyn (nerfstudio ``MethodSpecification`` objects, registered through the
``nerfstudio.method_configs`` entry points).

- ``semdyn``: the full method: lifted groups, rigid object nodes, the background, the object-wise regularizers.
- ``semdyn-base``: the dynamic scene without semantics (:func:`semdyn.train.presets.full_base_preset`).
- ``semdyn-static``: the base with the deformation switched off (the static baseline).
- ``semdyn-cpu``: the full method's small CPU preset (:func:`semdyn.train.presets.cpu_preset`):
  half resolution, 3k steps.

Without ``--data`` they train on the synthetic default street, generated into the cache ($SEMDYN_CACHE or
~/.cache/semdyn) the first time a datamanager is set up, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig
from semdyn.nerfstudio.errors import install_error_hook
from semdyn.nerfstudio.model import SemdynModelConfig
from semdyn.nerfstudio.optimizers import (  # noqa: F401  (the schedulers: where config.yml files of earlier runs find them)
    FloatExponentialDecayScheduler,
    FloatExponentialDecaySchedulerConfig,
    optimizers,
)
from semdyn.nerfstudio.trainer_config import SemdynTrainerConfig, preset_settings
from semdyn.synth import SynthConfig, ensure_scene
from semdyn.train import presets
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


def trainer_config(
    name: str, preset: TrainConfig, device: Literal["cpu", "cuda", "mps"] = "cuda"
) -> SemdynTrainerConfig:
    """nerfstudio's run of a core preset: its model, step count and downscale (the datamanager's resolution)."""
    groups = optimizers(preset.model, preset.max_steps, preset.semantics)
    return SemdynTrainerConfig(
        method_name=name,
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=min(2000, preset.steps_per_save),
        steps_per_eval_all_images=1000,
        max_num_iterations=preset.max_steps,
        mixed_precision=False,
        machine=MachineConfig(device_type=device, seed=preset.seed),
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
        optimizers=groups,
        preset_optimizers=preset_settings(groups),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


install_error_hook()  # ns-train imports this module to find the methods: our errors end in one line there

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
    description="The full method on a CPU: half resolution, 3k steps, small grids (semdyn.train.presets.cpu_preset).",
)
