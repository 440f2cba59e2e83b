"""Reading a checkpoint to resume from, and refusing one that does not fit the run.

A checkpoint carries the config it was trained with and a fingerprint of its sequence; resuming compares both with
the run's and refuses, in one sentence naming the differing option, a checkpoint of another model (a static one into
a deforming run, another SH degree) or of another sequence, before any state is loaded. A newest checkpoint that
cannot be read (a killed copy, a full disk) is named together with the newest older one that can.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from semdyn.config_io import TYPE_KEY, config_to_json
from semdyn.data.sequence import SceneNormalization
from semdyn.errors import InputError
from semdyn.train.options import flag
from semdyn.train.run_dir import checkpoint_step, latest_checkpoint, run_checkpoints

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.train.trainer import TrainConfig

FINGERPRINT_KEY = "sequence"
"""Checkpoint key of :func:`sequence_fingerprint` (absent in checkpoints written before it existed)."""
REQUIRED_KEYS = {"step", "model", "param_shapes", "config"}


NORMALIZATION_KEY = "normalization"
"""Checkpoint key of the run's metres -> scene units similarity (:func:`normalization_to_dict`), so that a run is
rendered and exported in the world it was trained in, whatever became of its sequence folder."""


def normalization_to_dict(norm: SceneNormalization) -> dict[str, Any]:
    return {"transform": np.asarray(norm.transform, dtype=np.float64).tolist(), "scale": float(norm.scale)}


def normalization_from_dict(d: Any, where: Path) -> SceneNormalization:
    """The inverse of :func:`normalization_to_dict` (one sentence naming ``where`` when it is not one)."""
    try:
        transform = np.asarray(d["transform"], dtype=np.float64)
        scale = float(d["scale"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{where}: its stored normalization is unreadable ({type(err).__name__})") from err
    if transform.shape != (3, 4) or not np.isfinite(transform).all() or not scale > 0:
        raise InputError(f"{where}: its stored normalization is not a [3, 4] transform with a positive scale")
    return SceneNormalization(transform=transform, scale=scale)


def sequence_fingerprint(data: SceneData) -> str:
    """A short hash of what the sequence is: every frame's file, camera, time and pose (to 1e-6 m), and the split.
    The same sequence anywhere on disk, however its JSON is formatted."""
    h = hashlib.sha256()
    seq = data.sequence
    for f in seq.frames:
        h.update(f"{f.file_path}|{f.camera}|{f.time!r}|".encode())
        h.update(np.round(np.asarray(f.camera_to_world, dtype=np.float64), 6).tobytes())
    h.update(f"{list(seq.split.train)}|{list(seq.split.test)}".encode())
    return h.hexdigest()[:16]


def _torch_load(path: Path, device: torch.device) -> dict:
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(ckpt, dict) or not REQUIRED_KEYS <= set(ckpt):
        raise ValueError("not a semdyn-train checkpoint (no step/model/param_shapes/config)")
    return ckpt


def read_train_checkpoint(path: Path, device: torch.device, option: str = "--load-dir") -> tuple[Path, dict]:
    """The checkpoint ``path`` names (the file, or a run folder's newest) and its contents.

    Raises:
        InputError: nothing to read there, or the file is unreadable; then the newest older checkpoint of the same
            folder that reads is offered.
    """
    ckpt_path = latest_checkpoint(Path(path))
    try:
        return ckpt_path, _torch_load(ckpt_path, device)
    except Exception as err:  # torch raises many types for a cut or foreign file
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
        older = _older_readable(ckpt_path, device)
        hint = f"; the older checkpoint {older} reads: resume from it with {option} {older}" if older else ""
        raise InputError(f"{ckpt_path}: not a readable semdyn checkpoint ({reason}){hint}") from err


def _older_readable(ckpt_path: Path, device: torch.device) -> Path | None:
    step = checkpoint_step(ckpt_path)
    if step is None or ckpt_path.parent.name != "checkpoints":
        return None
    for older in reversed(run_checkpoints(ckpt_path.parent.parent)):
        if (checkpoint_step(older) or 0) < step:
            try:
                _torch_load(older, device)
            except Exception:
                continue
            return older
    return None


def _differences(saved: Any, current: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], Any, Any] | None:
    """The first leaf (path, saved, current) where two config trees differ; keys one side lacks are skipped."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in current:
            if key in saved:
                found = _differences(saved[key], current[key], (*path, key))
                if found is not None:
                    return found
        return None
    if isinstance(saved, float) and isinstance(current, float) and math.isclose(saved, current, rel_tol=1e-12):
        return None
    return None if saved == current else (path, saved, current)


def _show(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict):
        return "on"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def check_resume_fits(ckpt_path: Path, ckpt: dict, config: TrainConfig, data: SceneData) -> None:
    """Refuse a checkpoint of another model config or another sequence than ``config``/``data``, in one sentence."""
    saved = ckpt.get("config", {}).get("model")
    if isinstance(saved, dict):
        diff = _differences(saved, config_to_json(config.model), ("model",))
        if diff is not None:
            where, old, new = diff
            where = where[:-1] if where[-1] == TYPE_KEY else where  # another deformation model: name the option
            raise InputError(
                f"{ckpt_path} was trained with {flag(*where)} {_show(old)}, this run has {_show(new)}; resume with "
                "the checkpoint's model options (the same preset) or start a new run"
            )
    fingerprint = ckpt.get(FINGERPRINT_KEY)
    if fingerprint is not None and fingerprint != sequence_fingerprint(data):
        trained_on = ckpt.get("config", {}).get("data") or "the synthetic street"
        raise InputError(
            f"{ckpt_path} was trained on another sequence ({trained_on}) than this run's "
            f"{data.sequence.transforms_path.parent}; resume with the same --data or start a new run"
        )


__all__ = ["FINGERPRINT_KEY", "check_resume_fits", "read_train_checkpoint", "sequence_fingerprint"]
