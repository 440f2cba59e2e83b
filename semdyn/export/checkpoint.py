"""Load a trained run from a core-trainer checkpoint alone: its config, data (cameras, normalisation) and model.

Rendering (``scripts/render.py``) and export (``scripts/export_ply.py``) start here. The checkpoint carries the
:class:`TrainConfig` it was trained with, so the same sequence (or the same cached synthetic street) and the same
model are rebuilt, then the weights are loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from semdyn.config_io import dataclass_from_dict
from semdyn.data.scene_data import SceneData, load_scene
from semdyn.deform.regularizers import check_labels
from semdyn.errors import InputError
from semdyn.ops import resolve_device
from semdyn.scene.build import build_scene, scene_init_from_data
from semdyn.scene.dynamic import DynamicScene
from semdyn.scene.strategy import NODE_IDS, get_labels
from semdyn.semantics.groups import SemanticGroups
from semdyn.synth import ensure_scene
from semdyn.train.resume import FINGERPRINT_KEY, NORMALIZATION_KEY, normalization_from_dict, sequence_fingerprint
from semdyn.train.run_dir import latest_checkpoint
from semdyn.train.trainer import TrainConfig

CLASS_IDS = "class_ids"
"""Strategy-state key of per-Gaussian semantic class ids, int64 [N] (-1 = none), when semantics wrote them."""


log = logging.getLogger("semdyn")

_OLD_KEYS = {"deformable.": "nodes.deformable.", "objects.": "nodes.rigid."}
"""State-dict prefixes of the first scene-graph checkpoints (before the node registry) and what they became."""


def _renamed(key: str) -> str:
    for old, new in _OLD_KEYS.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


@dataclass
class TrainedRun:
    """A trained model with everything needed to place cameras and times in its world."""

    config: TrainConfig
    """The config the run was trained with."""
    checkpoint: Path
    """The checkpoint file loaded."""
    step: int
    """Training step of the checkpoint."""
    model: DynamicScene
    """The trained scene (eval mode) on ``device``."""
    data: SceneData
    """The sequence's frames, cameras, times and normalisation (metres -> scene units)."""
    device: torch.device
    """Where the model lives."""
    group_ids: Tensor
    """[N] int64 object/group id of each Gaussian (-1 = unlabelled; all -1 when the run has no labels)."""
    class_ids: Tensor
    """[N] int64 semantic class id of each Gaussian (-1 = none)."""
    groups_table: SemanticGroups | None = None
    """The lifted group table (class, static, rigid per group), or None for a run without semantics."""


def read_checkpoint(path: Path, device: torch.device) -> tuple[Path, dict]:
    """The checkpoint file (``path`` itself, or the newest under ``path/checkpoints``) and its contents."""
    ckpt_path = latest_checkpoint(Path(path))
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    except Exception as err:
        raise InputError(f"{ckpt_path}: not a readable semdyn checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or not {"model", "config", "param_shapes"} <= set(ckpt):
        raise InputError(f"{ckpt_path}: not a semdyn-train checkpoint (no model/config/param_shapes)")
    return ckpt_path, ckpt


def run_config(ckpt_path: Path, ckpt: dict) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint (as read by :func:`read_checkpoint`) was trained with."""
    model_cfg = ckpt["config"].get("model")
    if isinstance(model_cfg, dict) and "velocity" not in model_cfg:  # written before velocities existed
        model_cfg["velocity"] = None
    if isinstance(model_cfg, dict) and "group_motion" in model_cfg:  # written before the scene graph
        raise InputError(f"{ckpt_path}: written before semdyn's scene graph (group paths); retrain it")
    return dataclass_from_dict(TrainConfig, ckpt["config"], where=f"{ckpt_path}: config")


def load_run(
    path: Path, device: str = "auto", data: SceneData | None = None, data_dir: Path | None = None
) -> TrainedRun:
    """Rebuild the trained model of a checkpoint (file, or run folder: its newest ``checkpoints/step-*.pt``).

    The sequence is read in the world the run was trained in (the normalisation stored in the checkpoint, not one
    recomputed from the folder as it is now); a sequence that changed since (another fingerprint) is named in one
    warning.

    Args:
        path: checkpoint file or run folder.
        data_dir: the sequence folder, where it has moved since training (default: the one in the run's config).
        device: auto, cpu or cuda.
        data: the run's data when already loaded (tests); else loaded from the checkpoint's config.
    """
    dev = resolve_device(device)
    ckpt_path, ckpt = read_checkpoint(path, dev)
    config = run_config(ckpt_path, ckpt)
    if data is None:
        source = data_dir or config.data
        source = source if source is not None else ensure_scene(config.synth, show_progress=True)
        stored = ckpt.get(NORMALIZATION_KEY)
        norm = normalization_from_dict(stored, ckpt_path) if stored is not None else None
        data = load_scene(source, config.downscale, normalization=norm)
        saved = ckpt.get(FINGERPRINT_KEY)
        if saved is not None and saved != sequence_fingerprint(data):
            log.warning("%s: the sequence in %s has changed since this run was trained (frames, poses or split)",
                        ckpt_path, source)  # fmt: skip
    g = torch.Generator().manual_seed(config.seed)
    model = build_scene(config.model, scene_init_from_data(data), dev, g)
    model.resize_params_to({k: torch.Size(s) for k, s in ckpt["param_shapes"].items()})
    model.resize_graph_to(ckpt.get("graph_shapes", {}))
    state_dict = {_renamed(k): v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:  # a checkpoint of another model or another semdyn version
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise InputError(f"{ckpt_path}: does not fit the model its config describes ({first[:200]})") from err
    model.eval()
    n = model.num_gaussians
    state = ckpt.get("strategy_state") or {}
    labels = get_labels(state)
    groups = labels[0].long().cpu() if labels is not None else torch.full((n,), -1, dtype=torch.long)
    classes = state.get(CLASS_IDS)
    classes = classes.long().cpu() if isinstance(classes, Tensor) else torch.full((n,), -1, dtype=torch.long)
    for name, v in (("group ids", groups), ("class ids", classes)):
        if len(v) != n:
            raise InputError(f"{ckpt_path}: {len(v)} {name} for {n} Gaussians")
    table = (ckpt.get("semantics") or {}).get("groups")
    node_ids = state.get(NODE_IDS)
    if isinstance(node_ids, Tensor) and len(node_ids) != n:
        raise InputError(f"{ckpt_path}: {len(node_ids)} node ids for {n} Gaussians")
    groups_table = SemanticGroups.from_state_dict(table) if table is not None else None
    labels = groups_table.labels(state, dev) if groups_table is not None else None
    if labels is not None:
        check_labels(labels, n, dev, values=True)
    model.set_groups(labels, node_ids.to(dev) if isinstance(node_ids, Tensor) else None)  # the graph as trained
    return TrainedRun(config, ckpt_path, int(ckpt["step"]), model, data, dev, groups, classes, groups_table)
