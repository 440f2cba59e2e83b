"""Deformation fields: canonical Gaussians + time -> per-Gaussian position, rotation and scale deltas.

``make_deformation(config, aabb)`` builds a :class:`HexPlaneField` (default, 4DGaussians) or an
:class:`MLPDeformField` (Deformable-3DGS ablation); ``field(means, t, mask)`` gives a :class:`Deformation`
and :func:`apply_deformation` applies it.
"""

# field first: it defines the base classes that hexplane and mlp subclass, then imports them.
from semdyn.deform.field import (  # isort: skip
    DeformConfig,
    Deformation,
    DeformationField,
    apply_deformation,
    make_deformation,
)
from semdyn.deform.hexplane import HexPlaneConfig, HexPlaneField
from semdyn.deform.mlp import MLPDeformConfig, MLPDeformField

__all__ = [
    "DeformConfig",
    "Deformation",
    "DeformationField",
    "HexPlaneConfig",
    "HexPlaneField",
    "MLPDeformConfig",
    "MLPDeformField",
    "apply_deformation",
    "make_deformation",
]
