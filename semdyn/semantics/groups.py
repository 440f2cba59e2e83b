"""The group table: what each lifted Gaussian group is (static? rigid?), the one place regularizers read it from.

Per-Gaussian labels live in the densification strategy state (``group_ids [N]`` int64 indices into this table,
-1 unlabelled; ``group_conf [N]``), where gsplat carries them through clone/split/prune. The per-group facts live
here, outside that state (gsplat's ops would resize any tensor in it as if it were per-Gaussian).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from semdyn.deform.regularizers import GroupLabels
from semdyn.scene.strategy import get_labels
from semdyn.semantics.dictionary import ObjectDictionary

NON_RIGID_CLASSES = frozenset({"pedestrian", "cyclist", "person", "rider", "animal"})
"""Classes whose objects deform (not one rigid body)."""


@dataclass
class SemanticGroups:
    """G groups of Gaussians (objects)."""

    source_ids: Tensor
    """[G] int64: the ID-map label each group came from (GT instance id, or dictionary object-ID)."""
    class_names: list[str]
    """[G] class name of each group."""
    is_static: Tensor
    """[G] bool: the group never moves (road, buildings, parked cars in ground truth)."""
    is_rigid: Tensor
    """[G] bool: the group moves as one rigid body (vehicles true, pedestrians false)."""

    @property
    def num_groups(self) -> int:
        return int(self.source_ids.numel())

    def state_dict(self) -> dict[str, Any]:
        return {
            "source_ids": self.source_ids.cpu(),
            "class_names": list(self.class_names),
            "is_static": self.is_static.cpu(),
            "is_rigid": self.is_rigid.cpu(),
        }

    def labels(self, state: Mapping[str, Any], device: torch.device | str | None = None) -> GroupLabels | None:
        """What the regularizers and the scene graph read: the Gaussians' ``group_ids``/``group_conf`` from a
        strategy state with this table's ``is_static``/``is_rigid``, on ``device`` (default: the labels'); None when
        the state holds no labels."""
        labels = get_labels(state)
        if labels is None:
            return None
        dev = labels[0].device if device is None else device
        return GroupLabels(labels[0].to(dev), labels[1].to(dev), self.is_static.to(dev), self.is_rigid.to(dev))

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> SemanticGroups:
        return cls(d["source_ids"], list(d["class_names"]), d["is_static"], d["is_rigid"])


def groups_from_objects(ids: Sequence[int], classes: Sequence[str], dynamic: Sequence[bool]) -> SemanticGroups:
    """Groups for ground-truth instance masks: one per object of the sequence's ``objects`` list."""
    return SemanticGroups(
        source_ids=torch.tensor(list(ids), dtype=torch.int64),
        class_names=list(classes),
        is_static=torch.tensor([not d for d in dynamic], dtype=torch.bool),
        is_rigid=torch.tensor([c not in NON_RIGID_CLASSES for c in classes], dtype=torch.bool),
    )


def groups_from_dictionary(dictionary: ObjectDictionary, entry_ids: Tensor) -> SemanticGroups:
    """Groups for dictionary matches: group g is an instance of entry ``entry_ids[g]`` (object-ID, 1-based)."""
    entries = [dictionary.entries[int(i) - 1] for i in entry_ids.tolist()]
    return SemanticGroups(
        source_ids=entry_ids.to(torch.int64).cpu(),
        class_names=[e.class_name for e in entries],
        is_static=torch.tensor([e.static for e in entries], dtype=torch.bool),
        is_rigid=torch.tensor([e.rigid for e in entries], dtype=torch.bool),
    )


def labels_to_group_index(labels: Tensor, source_ids: Tensor) -> Tensor:
    """[N] group index of each label value (-1 for -1 or a label with no group)."""
    order = torch.argsort(source_ids)
    sorted_ids = source_ids[order].to(labels.device)
    if sorted_ids.numel() == 0:
        return torch.full_like(labels, -1)
    pos = torch.searchsorted(sorted_ids, labels).clamp(max=len(sorted_ids) - 1)
    found = (sorted_ids[pos] == labels) & (labels >= 0)
    return torch.where(found, order.to(labels.device)[pos], torch.full_like(labels, -1))
