"""The deformation models semdyn knows, listed once.

A model is one module holding its config (a dataclass with ``setup(aabb) -> DeformationField``, see
:class:`semdyn.deform.field.FieldConfig`) and its field; registering it is adding its config to
:data:`DeformConfig` here. The scene config, tyro's subcommands, saved configs and :func:`make_deformation` all
take the union from here.
"""

from __future__ import annotations

from semdyn.deform.hexplane import HexPlaneConfig
from semdyn.deform.mlp import MLPDeformConfig

DeformConfig = HexPlaneConfig | MLPDeformConfig
"""Config of any deformation field (tyro shows it as one subcommand per field)."""

__all__ = ["DeformConfig"]
