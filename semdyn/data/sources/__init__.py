"""Converters from public driving datasets to the semdyn sequence format (``shared/DATA_FORMAT.md``).

One module per dataset reads its native layout into a `SourceScene`; `common.write_sequence` writes every
dataset the same way. The dataset libraries (pyarrow for Waymo, nuscenes-devkit for nuScenes) are imported
only inside their modules, so importing semdyn never needs them:

- `semdyn.data.sources.waymo`: Waymo Open Dataset v2 parquet components, read with pyarrow (no TensorFlow).
- `semdyn.data.sources.nuscenes`: nuScenes v1.0 through nuscenes-devkit.
- `semdyn.data.sources.kitti`: KITTI raw drives (synced and rectified) and KITTI tracking sequences;
  `semdyn.data.sources.kitti_odometry`: KITTI odometry sequences (dispatched from `kitti`).
- `semdyn.data.sources.images`: a video or folders of frames, posed by structure from motion (pycolmap).

What a recording lacks comes from its sensors: `odometry` (ego poses from the LiDAR: kiss-icp or open3d ICP),
`lidar_objects` (moving objects from the LiDAR, without annotations); `alignment` scores estimated trajectories
(Umeyama alignment, absolute trajectory error).

The command line is ``scripts/convert.py {waymo,nuscenes,kitti,images}``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from semdyn.data.sources.common import (
    BoxTrack,
    CameraFrame,
    CameraModel,
    ConvertOptions,
    LidarSweep,
    SourceScene,
    write_sequence,
)
from semdyn.errors import InputError

__all__ = [
    "BoxTrack",
    "CameraFrame",
    "CameraModel",
    "ConvertOptions",
    "LidarSweep",
    "SourceScene",
    "require",
    "write_sequence",
]


def require(module: str, dataset: str, extra: str, package: str) -> ModuleType:
    """Import an optional dependency of a converter, or raise `InputError` naming the pip extra.

    Args:
        module: the module to import (``pyarrow.parquet``, ``nuscenes.nuscenes``).
        dataset: the dataset that needs it, for the message.
        extra: the pip extra of semdyn that installs it.
        package: the package's name on PyPI.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InputError(
            f"converting {dataset} needs {package}, which is not installed: "
            f"pip install 'semdyn[{extra}]' (or pip install {package})"
        ) from error
