"""Checks of a :class:`~semdyn.train.trainer.TrainConfig` as parsed: one sentence naming the option at fault.

Called by the command line right after parsing and by the :class:`~semdyn.train.trainer.Trainer` (so a config
built in Python is checked the same way), before anything is loaded or written. Besides the named checks of the
run options, every number of the config tree (model, semantics, synthetic scene) must be finite, and every learning
rate (a field named ``lr``, ``*_lr`` or under ``lrs``) positive.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any

from semdyn.errors import InputError

if TYPE_CHECKING:
    from semdyn.train.trainer import TrainConfig

MAX_SEED = 2**31 - 1
"""Seeds are multiplied by about 1e6 per epoch (``image_order``): keep them where torch's generator accepts them."""
MAX_LR = 1e7
"""Largest learning rate accepted (gsplat's MCMC noise uses 5e5; beyond float32's range Adam's step overflows)."""
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def flag(*path: str) -> str:
    """The command-line flag of a config field: ``flag("model", "init", "sh_degree")`` -> ``--model.init.sh-degree``."""
    return "--" + ".".join(p.replace("_", "-") for p in path)


def _is_lr(path: tuple[str, ...]) -> bool:
    name = path[-1]
    return name == "lr" or name.endswith("_lr") or "lrs" in path[:-1]


def check_numbers(obj: Any, path: tuple[str, ...] = ()) -> None:
    """Every float of a dataclass tree finite, every learning rate positive; names the flag of the first not so."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            check_numbers(getattr(obj, f.name), (*path, f.name))
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            check_numbers(v, (*path[:-1], f"{path[-1]}[{i}]") if path else (str(i),))
    elif isinstance(obj, float) and not isinstance(obj, bool):
        if not math.isfinite(obj):
            raise InputError(f"{flag(*path)} {obj}: give a finite number")
        if _is_lr(path) and not 0 < obj <= MAX_LR:
            raise InputError(f"{flag(*path)} {obj}: a learning rate must be in (0, {MAX_LR:g}]")


def at_least(value: Any, low: int, name: str, meaning: str) -> None:
    """Refuse ``value`` (the option ``--<name>``) unless it is an integer of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{flag(name)} {value!r}: {meaning}")


def validate_train_config(config: TrainConfig) -> None:
    """Raise :class:`InputError` naming the first option of ``config`` that cannot make a run.

    Checks what the loop divides by or counts with, the seed range, the device name, the run folder's name, then
    every number of the tree (:func:`check_numbers`). Image-size limits (``--downscale`` larger than the images)
    are checked by :func:`semdyn.data.scene_data.load_scene`, which knows the image size.
    """
    at_least(config.max_steps, 1, "max_steps", "train at least one step")
    at_least(config.downscale, 1, "downscale", "give a positive integer image downscale factor")
    at_least(config.batch_size, 1, "batch_size", "give at least one camera per step")
    cache = config.cache_mb
    if cache is not None and (isinstance(cache, bool) or not isinstance(cache, (int, float)) or not 0 < cache < 1e12):
        raise InputError(f"--cache-mb {cache!r}: give a positive number of MiB (or leave it unset: all in memory)")
    at_least(config.steps_per_save, 1, "steps_per_save", "save at least every step (a positive number of steps)")
    at_least(config.keep_checkpoints, 1, "keep_checkpoints", "keep at least one checkpoint")
    at_least(config.log_every, 1, "log_every", "log every positive number of steps")
    at_least(config.seed, 0, "seed", f"give a seed in [0, {MAX_SEED}]")
    if config.seed > MAX_SEED:
        raise InputError(f"--seed {config.seed}: give a seed in [0, {MAX_SEED}]")
    if not isinstance(config.device, str) or not DEVICE.fullmatch(config.device):
        raise InputError(f"--device {config.device!r}: give auto, cpu, cuda or cuda:N")
    name = config.experiment_name
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name != name.strip():
        raise InputError(f"--experiment-name {name!r}: give a folder name (no slashes, not empty)")
    check_numbers(config)


__all__ = ["at_least", "check_numbers", "flag", "validate_train_config"]
