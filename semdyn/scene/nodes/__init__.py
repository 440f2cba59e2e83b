"""Scene-graph nodes (one contract: :class:`semdyn.scene.nodes.base.GaussianNode`).

A new node kind is one module here plus its line in :data:`NODE_KINDS`: the scene builds a node of every registered
kind that owns Gaussians (``GaussianNode.build``), in this order; its ``first_id`` says which ``node_ids`` it owns
(see :mod:`semdyn.scene.nodes.base`). Which Gaussians go to it after a lift is :mod:`semdyn.scene.promotion`'s
decision.
"""

from semdyn.scene.nodes.background import BackgroundNode
from semdyn.scene.nodes.base import (
    BACKGROUND_ID,
    DEFORMABLE_ID,
    OBJECT_ID0,
    GaussianNode,
    NodeContext,
    NodeGaussians,
    ParamGroups,
)
from semdyn.scene.nodes.deformable import DeformableNode
from semdyn.scene.nodes.rigid import RigidObjectsConfig, RigidObjectsNode
from semdyn.scene.nodes.sky import SkyNode

NODE_KINDS: dict[str, type[GaussianNode]] = {
    BackgroundNode.kind: BackgroundNode,
    DeformableNode.kind: DeformableNode,
    RigidObjectsNode.kind: RigidObjectsNode,
}
"""Every node kind that owns Gaussians, by name, in ``node_ids`` order (the sky, :class:`SkyNode`, owns none)."""

__all__ = [
    "BACKGROUND_ID",
    "DEFORMABLE_ID",
    "NODE_KINDS",
    "NodeContext",
    "OBJECT_ID0",
    "BackgroundNode",
    "DeformableNode",
    "GaussianNode",
    "NodeGaussians",
    "ParamGroups",
    "RigidObjectsConfig",
    "RigidObjectsNode",
    "SkyNode",
]
