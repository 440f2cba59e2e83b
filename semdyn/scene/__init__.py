"""Canonical Gaussians, their densification through gsplat's strategies, and the sky.

- :mod:`semdyn.scene.gaussians`: initialisation from points (or random), activations, one Adam per attribute.
- :mod:`semdyn.scene.strategy`: gsplat's DefaultStrategy / MCMCStrategy, with per-Gaussian labels carried.
- :mod:`semdyn.scene.sky`: a learned equirectangular sky behind the Gaussians.
"""

from semdyn.scene.gaussians import (
    PARAM_KEYS,
    GaussianInitConfig,
    LearningRates,
    activated,
    init_gaussians,
    knn_mean_distance,
    make_optimizers,
    means_lr_scheduler,
    rgb_to_sh0,
    sh0_to_rgb,
)
from semdyn.scene.sky import SkyConfig, SkyModel, composite_sky, pixel_directions, sky_opacity_loss
from semdyn.scene.strategy import (
    DensifyConfig,
    LabelledMCMCStrategy,
    compute_relocation_reference,
    densify_pre_backward,
    densify_step,
    get_labels,
    make_strategy,
    set_labels,
)

__all__ = [
    "PARAM_KEYS",
    "DensifyConfig",
    "GaussianInitConfig",
    "LabelledMCMCStrategy",
    "LearningRates",
    "SkyConfig",
    "SkyModel",
    "activated",
    "composite_sky",
    "compute_relocation_reference",
    "densify_pre_backward",
    "densify_step",
    "get_labels",
    "init_gaussians",
    "knn_mean_distance",
    "make_optimizers",
    "make_strategy",
    "means_lr_scheduler",
    "pixel_directions",
    "rgb_to_sh0",
    "set_labels",
    "sh0_to_rgb",
    "sky_opacity_loss",
]
