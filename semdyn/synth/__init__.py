"""Synthetic driving streets with exact ground truth, rendered by a ray caster (not by splatting).

Public API::

    from semdyn.synth import SynthConfig, generate_scene, ensure_scene, check_scene
    path = ensure_scene(SynthConfig(seed=1))          # cached under $SEMDYN_CACHE or ~/.cache/semdyn
    generate_scene(SynthConfig(num_frames=10), "out/street")
    result = check_scene(path, "outputs/synth_check")  # GTCheckResult with mean_iou, depth agreement
"""

from semdyn.synth.cache import default_cache_root, ensure_scene, scene_path
from semdyn.synth.check import GTCheckResult, check_scene
from semdyn.synth.config import CAMERA_NAMES, GENERATOR_VERSION, SEMANTIC_CLASSES, SynthConfig
from semdyn.synth.writer import generate_scene

__all__ = [
    "CAMERA_NAMES",
    "GENERATOR_VERSION",
    "SEMANTIC_CLASSES",
    "GTCheckResult",
    "SynthConfig",
    "check_scene",
    "default_cache_root",
    "ensure_scene",
    "generate_scene",
    "scene_path",
]
