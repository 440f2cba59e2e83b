"""The sky node: the learned equirectangular sky behind the Gaussians (:class:`semdyn.scene.sky.SkyModel`). It
draws no Gaussians; it owns its parameters and their learning rate like every node."""

from __future__ import annotations

from typing import ClassVar

from semdyn.scene.nodes.base import ParamGroups
from semdyn.scene.sky import SkyModel


class SkyNode(SkyModel):
    kind: ClassVar[str] = "sky"

    def param_groups(self) -> ParamGroups:
        return {"sky": (list(self.parameters()), self.config.lr)}
