"""The one contract of a scene-graph node that owns Gaussians.

Every Gaussian of a :class:`semdyn.scene.dynamic.DynamicScene` belongs to exactly one node: its ``node_ids`` entry
(int64 [N], in the densification strategy state, where gsplat carries it through clone, split and prune so that
densification inside a node stays in that node) says which. The Gaussians' attributes themselves live in one
``ParameterDict`` (gsplat's optimisers and strategies need them together); a node reads the rows it owns and says
what the rasteriser draws for them at a time t, in the node's own coordinates: a background node draws its rows as
they are, a rigid object node stores its rows in object-local coordinates and moves them with its trajectory.

A node kind is one class (registered by name in :data:`semdyn.scene.nodes.NODE_KINDS`, which the scene builds its
nodes from, in that order) with:

- ``kind`` (a name) and ``first_id``/``num_ids`` (the ``node_ids`` values it owns; a batched kind such as the rigid
  objects owns one id per object);
- :meth:`GaussianNode.build`: its node for a scene's config (None: switched off);
- :meth:`GaussianNode.gaussians_at`: the rasteriser's inputs for its rows at t;
- :meth:`GaussianNode.regularization`: its named, weighted loss terms;
- :meth:`GaussianNode.param_groups`: its own parameters, each group with its learning rate.

The sky draws no Gaussians; it follows the same ``regularization``/``param_groups`` contract
(:class:`semdyn.scene.nodes.sky.SkyNode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

BACKGROUND_ID = 0
"""``node_ids`` value of the background node (static structure: no time dependence at all)."""
DEFORMABLE_ID = 1
"""``node_ids`` value of the deformable node (deformation field, velocities, temporal visibility)."""
OBJECT_ID0 = 2
"""``node_ids`` value of the first rigid object; object o is ``OBJECT_ID0 + o``."""

ParamGroups = dict[str, tuple[list[nn.Parameter], float]]
"""Optimiser group name -> (parameters, Adam learning rate)."""


@dataclass
class NodeContext:
    """What a node kind is built from (:meth:`GaussianNode.build`): the scene's config and its data-derived facts."""

    config: Any
    """The scene's :class:`semdyn.scene.dynamic.DynamicSceneConfig`."""
    box: Tensor
    """[2, 3] the deformation field's box (scene units)."""
    device: torch.device | str
    scene_scale: float
    """The scale of the positions' learning rates."""
    units_per_metre: float
    """The sequence's normalisation scale."""
    duration_s: float | None
    """The sequence's length in seconds (None: unknown)."""


@dataclass
class NodeGaussians:
    """What a node draws for M of its rows at one time (scene units, world frame)."""

    means: Tensor
    """[M, 3] centres."""
    quats: Tensor
    """[M, 4] rotations (w, x, y, z), not necessarily unit."""
    log_scales: Tensor
    """[M, 3] log-scales."""
    visibility: Tensor | None = None
    """[M] factor in (0, 1] on the opacities at t; None: 1."""
    dx: Tensor | None = None
    """[M, 3] displacement from where the row is at its own reference (canonical centre, or its anchor time for
    object rows): what the regularizers and the viewer's motion view read; None: 0."""
    dr: Tensor | None = None
    """[M, 4] rotation delta (unit quaternion) to go with ``dx``; None: identity."""
    ds: Tensor | None = None
    """[M, 3] log-scale delta; None: 0."""


class GaussianNode(nn.Module):
    """Base class of the nodes that own Gaussians (see the module docstring)."""

    kind: ClassVar[str] = ""
    first_id: int = 0
    """The first ``node_ids`` value this node owns."""

    @property
    def num_ids(self) -> int:
        """How many consecutive ``node_ids`` values, from :attr:`first_id`, this node owns (1 for single nodes)."""
        return 1

    @classmethod
    def build(cls, ctx: NodeContext) -> GaussianNode | None:
        """This kind's node for a scene, or None where the config switches it off."""
        raise NotImplementedError

    def rows(self, node_ids: Tensor) -> Tensor:
        """[M] int64 indices of the Gaussians this node owns, given every Gaussian's ``node_ids`` [N]."""
        own = (node_ids >= self.first_id) & (node_ids < self.first_id + self.num_ids)
        return own.nonzero().squeeze(1)

    def gaussians_at(self, params: nn.ParameterDict, rows: Tensor, node_ids: Tensor, t: float) -> NodeGaussians:
        """The rasteriser's inputs of ``rows`` [M] (this node's, with their ``node_ids`` [M]) at normalised time t,
        from the scene's Gaussian parameters."""
        raise NotImplementedError

    def regularization(self, params: nn.ParameterDict, rows: Tensor, step: int) -> dict[str, Tensor]:
        """Named, weighted loss terms of this node (its own parameters and its rows); none by default."""
        return {}

    def param_groups(self) -> ParamGroups:
        """This node's own parameters by optimiser group, with their learning rates; none by default."""
        return {}


def empty_rows(device: torch.device | str) -> Tensor:
    return torch.zeros(0, dtype=torch.int64, device=device)
