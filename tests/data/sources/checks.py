"""Checks shared by the converter tests: the fixtures' truth against the converted sequence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdyn.data import read_points, read_sequence

WIDTH, HEIGHT = 64, 48
"""Image size of every fixture, pixels."""
BACKGROUND = (40, 40, 40)
"""Colour of the fixture images away from the dots."""


@dataclass(frozen=True)
class Dot:
    """A LiDAR return the fixture put in the data, and the pixel of one image it must land on."""

    colour: tuple[int, int, int]
    """Unique colour the fixture painted at the pixel (in every camera that sees the point)."""
    camera: str
    """Camera name as converted."""
    time: float
    """Frame time as converted (seconds since the first frame)."""
    pixel: tuple[float, float]
    """(u, v) where the dataset's own camera model puts the point, pixels."""
    point_time: float | None = None
    """Capture time the point must carry in the PLY (seconds since the first frame), when known."""


def gl_to_cv(pose: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world -> OpenCV camera-to-world."""
    return pose @ np.diag([1.0, -1.0, -1.0, 1.0])


def blank_image(dots: list[tuple[tuple[int, int, int], tuple[float, float]]]) -> np.ndarray:
    """A fixture image: background with each dot's colour at floor(u), floor(v). Returns uint8 [H, W, 3]."""
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for colour, (u, v) in dots:
        image[int(np.floor(v)), int(np.floor(u))] = colour
    return image


def inside(u: float, v: float) -> bool:
    """Whether (u, v) lies on the fixture image, a pixel away from its border."""
    return 1.0 <= u < WIDTH - 1.0 and 1.0 <= v < HEIGHT - 1.0


def assert_points_on_pixels(root: Path, dots: list[Dot], tolerance_px: float = 1e-2) -> int:
    """Every dot's LiDAR point is in points.ply once, with the dot's colour, and projects onto its pixel.

    Projection uses only the converted sequence (pose, intrinsics; OpenCV pinhole). Returns the number checked.
    """
    seq = read_sequence(root)
    cloud = read_points(seq.ply_path)
    assert cloud.time is not None
    assert len(dots) >= 3, "the fixture put too few LiDAR points in view"
    for dot in dots:
        hits = np.flatnonzero((cloud.rgb == np.array(dot.colour, dtype=np.uint8)).all(axis=1))
        assert len(hits) == 1, f"{dot}: {len(hits)} points carry its colour"
        xyz = cloud.xyz[hits[0]]
        if dot.point_time is not None:
            assert abs(cloud.time[hits[0]] - dot.point_time) < 1e-4, dot
        frame = next(f for f in seq.frames if f.camera == dot.camera and abs(f.time - dot.time) < 1e-6)
        cam = np.linalg.inv(gl_to_cv(frame.camera_to_world)) @ np.append(xyz, 1.0)
        k = frame.intrinsics
        assert cam[2] > 0
        uv = np.array([k.fx * cam[0] / cam[2] + k.cx, k.fy * cam[1] / cam[2] + k.cy])
        np.testing.assert_allclose(uv, dot.pixel, atol=tolerance_px, err_msg=str(dot))
    return len(dots)
