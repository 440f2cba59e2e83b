"""Deformation fields: canonical Gaussians + time -> per-Gaussian position, rotation and scale deltas.

``make_deformation(config, aabb)`` builds a :class:`HexPlaneField` (default, 4DGaussians) or an
:class:`MLPDeformField` (Deformable-3DGS ablation); ``field(means, t, mask)`` gives a :class:`Deformation`
and :func:`apply_deformation` applies it.
"""

from semdyn.deform.field import Deformation, DeformationField, FieldConfig, apply_deformation, make_deformation
from semdyn.deform.hexplane import HexPlaneConfig, HexPlaneField
from semdyn.deform.mlp import MLPDeformConfig, MLPDeformField
from semdyn.deform.registry import DeformConfig

__all__ = [
    "DeformConfig",
    "Deformation",
    "DeformationField",
    "FieldConfig",
    "HexPlaneConfig",
    "HexPlaneField",
    "MLPDeformConfig",
    "MLPDeformField",
    "apply_deformation",
    "make_deformation",
]
