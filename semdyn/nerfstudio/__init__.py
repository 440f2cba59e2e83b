"""The nerfstudio adapter of the core dynamic scene (:mod:`semdyn.scene.dynamic`).

Importing this package imports nerfstudio; the core never does. The ``ns-train`` presets live in
:mod:`semdyn.method_config`, the dataparser in :mod:`semdyn.data.nerfstudio_dataparser`.
"""

from semdyn.nerfstudio.model import SemdynModel, SemdynModelConfig, viewmat_from_camera_to_world

__all__ = ["SemdynModel", "SemdynModelConfig", "viewmat_from_camera_to_world"]
