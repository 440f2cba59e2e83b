"""The background node: static structure (road, buildings, parked cars) with no time dependence at all.

Its Gaussians are drawn at their canonical centres, rotations and scales at every time, fully opaque as learned
(no temporal visibility, no deformation field, no velocity): static drift is exactly zero by construction.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from semdyn.scene.nodes.base import BACKGROUND_ID, GaussianNode, NodeContext, NodeGaussians


class BackgroundNode(GaussianNode):
    kind: ClassVar[str] = "background"
    first_id = BACKGROUND_ID

    @classmethod
    def build(cls, ctx: NodeContext) -> BackgroundNode:
        return cls()

    def gaussians_at(self, params: nn.ParameterDict, rows: Tensor, node_ids: Tensor, t: float) -> NodeGaussians:
        return NodeGaussians(params["means"][rows], params["quats"][rows], params["scales"][rows])
