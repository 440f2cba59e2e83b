"""semdyn.eval: the benchmark's metrics as pure functions (see ``shared/BENCHMARK.md``).

- ``image``: PSNR, SSIM, LPIPS as nerfstudio computes them, and PSNR over moving objects only.
- ``motion``: trajectory error, static drift and rigidity error against ground-truth object tracks.
- ``grouping``: adjusted Rand index and purity of Gaussian groups against ground-truth instances.

Importing this package imports neither nerfstudio nor torchmetrics (LPIPS imports torchmetrics when first built).
"""

from semdyn.eval.grouping import adjusted_rand_index, purity
from semdyn.eval.image import (
    LPIPS_WEIGHTS_ENV,
    DynamicPSNRSummary,
    LPIPSMetric,
    aggregate_dynamic_psnr,
    default_lpips_weights_path,
    dynamic_psnr,
    dynamic_squared_error,
    get_lpips_metric,
    lpips,
    psnr,
    psnr_from_mse,
    resolve_lpips_weights_path,
    ssim,
)
from semdyn.eval.motion import (
    MotionError,
    assign_to_objects,
    points_in_box,
    rigidity_error,
    static_drift,
    static_structure_mask,
    trajectory_error,
)

__all__ = [
    "LPIPS_WEIGHTS_ENV",
    "DynamicPSNRSummary",
    "LPIPSMetric",
    "MotionError",
    "adjusted_rand_index",
    "aggregate_dynamic_psnr",
    "assign_to_objects",
    "default_lpips_weights_path",
    "dynamic_psnr",
    "dynamic_squared_error",
    "get_lpips_metric",
    "lpips",
    "points_in_box",
    "psnr",
    "psnr_from_mse",
    "purity",
    "resolve_lpips_weights_path",
    "rigidity_error",
    "ssim",
    "static_drift",
    "static_structure_mask",
    "trajectory_error",
]
