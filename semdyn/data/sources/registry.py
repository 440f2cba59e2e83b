"""The dataset converters ``scripts/convert.py`` offers, listed once.

A converter is one module in :mod:`semdyn.data.sources` with an options dataclass (a :class:`ConvertOptions`) and a
``load(options) -> SourceScene``; registering it is its line in :data:`SOURCES`, whose key is the subcommand. The
dataset libraries stay imported inside each module's ``load``, so listing a converter costs no import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semdyn.data.sources import images, kitti, nuscenes, waymo
from semdyn.data.sources.common import ConvertOptions, SourceScene


@dataclass(frozen=True)
class Source:
    """One converter: its options (the subcommand's flags) and the function that reads a recording with them."""

    options: type[ConvertOptions]
    load: Callable[[Any], SourceScene]


SOURCES: dict[str, Source] = {
    "waymo": Source(waymo.WaymoOptions, waymo.load),
    "nuscenes": Source(nuscenes.NuScenesOptions, nuscenes.load),
    "kitti": Source(kitti.KittiOptions, kitti.load),  # raw, tracking and odometry layouts
    "images": Source(images.ImagesOptions, images.load),
}
"""Every converter, by subcommand name, in the order ``--help`` lists them."""


def source_of(options: ConvertOptions) -> Source:
    """The converter whose options ``options`` are."""
    for source in SOURCES.values():
        if type(options) is source.options:
            return source
    raise TypeError(f"no converter takes {type(options).__name__}")
