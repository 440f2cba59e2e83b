"""semdyn.data: reading driving sequences (``shared/DATA_FORMAT.md``).

Only the pure reader is exported here; the nerfstudio adapter lives in
`semdyn.data.nerfstudio_dataparser` so that importing `semdyn.data` never imports nerfstudio.
"""

from semdyn.data.object_track import tracks_from_objects
from semdyn.data.sequence import (
    Frame,
    Intrinsics,
    ObjectTrack,
    PointCloud,
    SceneNormalization,
    Sequence,
    Split,
    TimeAxis,
    compute_normalization,
    read_points,
    read_sequence,
)

__all__ = [
    "Frame",
    "Intrinsics",
    "ObjectTrack",
    "PointCloud",
    "SceneNormalization",
    "Sequence",
    "Split",
    "TimeAxis",
    "compute_normalization",
    "read_points",
    "read_sequence",
    "tracks_from_objects",
]
