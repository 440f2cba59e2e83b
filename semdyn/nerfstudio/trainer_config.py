"""The ``TrainerConfig`` of semdyn's ``ns-train`` methods: nerfstudio's, checked when parsed and careful with folders.

- When tyro builds it from a command line (``__post_init__``), the options are validated (one sentence naming the
  first bad one) and the optimizers follow the final model config (:func:`semdyn.nerfstudio.optimizers.sync_optimizers`:
  ``--pipeline.model.scene.lrs.scales 100`` trains at 100).
- Before nerfstudio prints the config and writes ``config.yml``, the sequence given by ``--data`` is read (its
  transforms, not its images), so a bad sequence ends in one sentence and leaves no run folder; an output folder
  that cannot be written is named in one sentence.
- A try that fails in setup with one of semdyn's errors removes the run folder it made when nothing but its
  ``config.yml`` is in it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import tyro
from nerfstudio.engine.trainer import Trainer, TrainerConfig

from semdyn.data.nerfstudio_dataparser import SemdynDataParserConfig
from semdyn.data.sequence import read_sequence
from semdyn.errors import InputError, SemdynError
from semdyn.nerfstudio.optimizers import Optimizers, optimizers, setting_key, settings, sync_optimizers
from semdyn.outputs import check_output_folder, make_output_folder
from semdyn.train.options import MAX_LR, MAX_SEED, at_least, check_numbers, flag

if TYPE_CHECKING:
    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

    from semdyn.nerfstudio.model import SemdynModelConfig

MAX_MACHINE_SEED = 2**32 - 1
"""nerfstudio seeds numpy's global generator with ``--machine.seed``, which takes [0, 2**32 - 1]."""


def _model(config: TrainerConfig) -> SemdynModelConfig:
    """The pipeline's model config, which semdyn's methods build as a SemdynModelConfig (nerfstudio: ModelConfig)."""
    return cast("SemdynModelConfig", config.pipeline.model)


def _datamanager(config: TrainerConfig) -> FullImageDatamanagerConfig:
    """The datamanager config, which semdyn's methods build as a FullImageDatamanagerConfig (nerfstudio: the base)."""
    return cast("FullImageDatamanagerConfig", config.pipeline.datamanager)


def validate_ns_config(config: TrainerConfig) -> None:
    """Raise :class:`InputError` naming the first option of an ``ns-train`` semdyn config that cannot make a run:
    the step count, the seeds, every number of the pipeline (finite; learning rates positive), the optimizers' rates.
    """
    at_least(config.max_num_iterations, 1, "max_num_iterations", "train at least one step")
    seed = config.machine.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_MACHINE_SEED:
        raise InputError(f"--machine.seed {seed!r}: give a seed in [0, {MAX_MACHINE_SEED}]")
    model_seed = _model(config).seed
    if isinstance(model_seed, bool) or not isinstance(model_seed, int) or not 0 <= model_seed <= MAX_SEED:
        raise InputError(f"--pipeline.model.seed {model_seed!r}: give a seed in [0, {MAX_SEED}]")
    check_numbers(config.pipeline, ("pipeline",))
    scale = _datamanager(config).camera_res_scale_factor
    if not scale > 0:
        raise InputError(f"--pipeline.datamanager.camera-res-scale-factor {scale}: give a positive factor")
    for (group, kind, attr), value in settings(config.optimizers).items():
        if attr != "max_steps" and not (math.isfinite(value) and 0 < value <= MAX_LR):
            raise InputError(f"{flag('optimizers', group, kind, attr)} {value}: give a rate in (0, {MAX_LR:g}]")


def sequence_path(config: TrainerConfig) -> Path | None:
    """The sequence semdyn's dataparser will read (``--data`` or the dataparser's ``data``); None for the synthetic
    default or another dataparser."""
    dataparser = _datamanager(config).dataparser
    if not isinstance(dataparser, SemdynDataParserConfig):
        return None
    data = config.data or getattr(config.pipeline.datamanager, "data", None)
    if data is None and dataparser.data != Path():
        data = dataparser.data
    return data


def remove_failed_run_dir(base_dir: Path, output_dir: Path) -> bool:
    """Remove ``base_dir`` when all it holds is ``config.yml`` (a try that failed before training wrote anything),
    and the folders above it up to ``output_dir`` that this left empty; returns whether it removed it."""
    try:
        entries = list(base_dir.iterdir())
    except OSError:
        return False
    if [e.name for e in entries] != ["config.yml"] or not entries[0].is_file():
        return False
    entries[0].unlink()
    base_dir.rmdir()
    top = Path(output_dir).resolve()
    parent = base_dir.resolve().parent
    while parent != top and top in parent.parents:
        with contextlib.suppress(OSError):
            parent.rmdir()  # only when empty
        if parent.exists():
            break
        parent = parent.parent
    return True


class SemdynTrainer(Trainer):
    """nerfstudio's trainer; a setup that fails with semdyn's error leaves no folder holding only config.yml."""

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        try:
            super().setup(test_mode=test_mode)
        except SemdynError:
            remove_failed_run_dir(self.base_dir, self.config.output_dir)
            raise


@dataclass
class SemdynTrainerConfig(TrainerConfig):
    """nerfstudio's trainer options (see semdyn.nerfstudio.trainer_config for what semdyn checks on top)."""

    _target: type = field(default_factory=lambda: SemdynTrainer)
    """Target class to instantiate."""
    preset_optimizers: tyro.conf.Suppress[dict[str, float]] = field(default_factory=dict)
    """The method's own optimizer settings (``--optimizers.*`` flag -> value), the defaults of both the optimizers
    and the model options they come from: what tells a rate given on the command line from one derived."""

    def __post_init__(self) -> None:
        validate_ns_config(self)
        model = _model(self)
        derived = settings(optimizers(model.scene, self.max_num_iterations, model.semantics))
        sync_optimizers(self.optimizers, derived, self.preset_optimizers)

    def check_sequence(self) -> None:
        """Read the transforms of the sequence to train on (not its images): one sentence on a bad one."""
        data = sequence_path(self)
        if data is not None:  # sequence_path found semdyn's dataparser
            dataparser = cast(SemdynDataParserConfig, _datamanager(self).dataparser)
            read_sequence(data, eval_interval=dataparser.eval_interval, check_files=False)

    def print_to_terminal(self) -> None:
        # nerfstudio prints the config, then writes it: refuse a bad sequence or output folder before both
        self.check_sequence()
        check_output_folder(Path(self.get_base_dir()), "--output-dir")
        super().print_to_terminal()

    def save_config(self) -> None:
        """Write config.yml into the run folder; an output folder that cannot be made or written is one sentence."""
        make_output_folder(Path(self.get_base_dir()), "--output-dir")
        super().save_config()


def preset_settings(groups: Optimizers) -> dict[str, float]:
    """The ``preset_optimizers`` of a method whose optimizers are ``groups``."""
    return {setting_key(s): v for s, v in settings(groups).items()}


__all__ = ["SemdynTrainer", "SemdynTrainerConfig", "preset_settings", "remove_failed_run_dir", "validate_ns_config"]
