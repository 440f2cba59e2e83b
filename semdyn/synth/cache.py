"""A cache of generated synthetic scenes, keyed by a hash of the config and the generator version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from semdyn.synth.config import SynthConfig
from semdyn.synth.writer import render_atomically


def default_cache_root() -> Path:
    """``$SEMDYN_CACHE`` when set, else ``~/.cache/semdyn``."""
    env = os.environ.get("SEMDYN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "semdyn"


def scene_path(config: SynthConfig, cache_root: str | Path | None = None) -> Path:
    """Where :func:`ensure_scene` keeps the scene of ``config`` (it may not exist yet)."""
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    return root / "synth" / f"street-seed{config.seed}-{config.cache_key()}"


def ensure_scene(
    config: SynthConfig | None = None, cache_root: str | Path | None = None, show_progress: bool = False
) -> Path:
    """The folder of the synthetic scene of ``config``, generated on first use.

    The scene is rendered into a temp folder beside its final place and renamed when complete, so an
    interrupted run never leaves a folder that looks complete; concurrent callers each render and the first
    rename wins.

    Args:
        config: generator options (default: the default scene).
        cache_root: cache folder (default: ``$SEMDYN_CACHE`` or ``~/.cache/semdyn``).
        show_progress: show a progress bar while generating.

    Returns:
        Path of the sequence folder (with transforms.json).
    """
    config = config if config is not None else SynthConfig()
    config.validate()
    target = scene_path(config, cache_root)
    if (target / "transforms.json").is_file():
        return target
    if target.exists():  # not ours to have made; a complete scene always has transforms.json
        shutil.rmtree(target, ignore_errors=True)
    render_atomically(config, target, replace=False, show_progress=show_progress)
    return target
