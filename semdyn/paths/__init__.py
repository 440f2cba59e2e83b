"""Camera paths for rendering: nerfstudio camera-path JSON, the test views, splines, lane shift, orbits."""

from semdyn.paths.camera_path import CameraPath, read_camera_path_json, write_camera_path_json
from semdyn.paths.trajectories import (
    dataset_path,
    ego_frames,
    lane_shift,
    lateral_axes,
    look_at,
    orbit_path,
    spline_path,
)

__all__ = [
    "CameraPath",
    "dataset_path",
    "ego_frames",
    "lane_shift",
    "lateral_axes",
    "look_at",
    "orbit_path",
    "read_camera_path_json",
    "spline_path",
    "write_camera_path_json",
]
