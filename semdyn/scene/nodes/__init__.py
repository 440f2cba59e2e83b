"""Scene-graph nodes (one contract: :class:`semdyn.scene.nodes.base.GaussianNode`).

A new node kind is one module here plus its line in :data:`NODE_KINDS` (and, where it owns Gaussians, the ``node_ids``
values it claims, see :mod:`semdyn.scene.nodes.base`).
"""

from semdyn.scene.nodes.background import BackgroundNode
from semdyn.scene.nodes.base import (
    BACKGROUND_ID,
    DEFORMABLE_ID,
    OBJECT_ID0,
    GaussianNode,
    NodeGaussians,
    ParamGroups,
)
from semdyn.scene.nodes.deformable import DeformableNode
from semdyn.scene.nodes.rigid import RigidObjectsConfig, RigidObjectsNode
from semdyn.scene.nodes.sky import SkyNode

NODE_KINDS: dict[str, type] = {
    BackgroundNode.kind: BackgroundNode,
    DeformableNode.kind: DeformableNode,
    RigidObjectsNode.kind: RigidObjectsNode,
    SkyNode.kind: SkyNode,
}
"""Every node kind by name."""

__all__ = [
    "BACKGROUND_ID",
    "DEFORMABLE_ID",
    "NODE_KINDS",
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
