"""semdyn.ops: where and how a scene is rendered (the rasteriser backends and the compute device)."""

from semdyn.ops._backend import resolve_device

__all__ = ["resolve_device"]
