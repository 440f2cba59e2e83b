"""Moving objects found in the LiDAR itself, for recordings without annotations and without model weights.

With the sweeps in one world frame (ego motion compensated by the recording's poses):

1. ground: per sweep, the lowest return of each ``ground_cell`` cell (minimum over its neighbours) is the local
   ground height; returns within ``ground_clearance`` of it, or higher than ``max_height`` above it, are dropped;
2. disagreement with the static map: a return is *moving* when no sweep ``gap`` to ``gap + window`` frames before
   or after it saw anything within about ``radius`` (voxels of that size and their neighbours): static surfaces are
   seen again where they were, from earlier or later viewpoints; moving ones are not;
3. clusters: the remaining returns of a sweep are grouped by connected bird's-eye-view cells (``cluster_cell``),
   kept when object-sized;
4. tracks: clusters are linked from sweep to sweep (nearest predicted centre within ``max_step`` metres, constant
   velocity); a track is a moving object when it is seen in ``min_track`` sweeps, its centre travels at least
   ``min_travel`` metres, and on average ``min_moving_fraction`` of its returns are moving (a car sliding along
   its own length re-covers most of its surface: only its front and back disagree with the map, so the fraction
   is low; a parked car's centre drifts as the viewpoint changes, but its returns all agree with the map);
5. boxes: heading along the track's motion, length/width/height from the extent of the points in that frame
   (the largest seen over the track, since one side is usually hidden), centre from the points of each sweep.

The result is `BoxTrack` tracks in the world frame; the writer flags each ``dynamic`` from its travel and draws
instance masks from the boxes. Static objects (parked cars) are not found: nothing moves in them.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from rich.progress import track
from scipy import ndimage

from semdyn.data.sources.common import BoxTrack, LidarSweep, rigid
from semdyn.errors import InputError

log = logging.getLogger("semdyn")


@dataclass(frozen=True)
class LidarObjectsOptions:
    """How moving objects are found in the LiDAR sweeps (metres, frames)."""

    max_range: float = 40.0
    """Returns farther than this from the sensor are ignored (too sparse to cluster)."""
    ground_cell: float = 1.0
    """Cell size of the ground-height grid."""
    ground_clearance: float = 0.4
    """Returns less than this above the local ground are ground."""
    max_height: float = 4.0
    """Returns higher than this above the ground are ignored (bridges, trees over the road)."""
    gap: int = 8
    """Compare each sweep with the sweeps at least this many frames before and after it..."""
    window: int = 8
    """...and at most ``gap + window`` frames (a queue of cars re-covers a lane given longer)."""
    radius: float = 0.3
    """Voxel size of the static map: a return whose voxel and neighbours no distant sweep saw is moving."""
    min_width: float = 0.25
    """Tracks thinner than this are not objects (a facade's visible part slides along it as the ego drives)."""
    cluster_cell: float = 0.3
    """Bird's-eye-view cell size of the clustering; touching occupied cells form one cluster."""
    min_points: int = 15
    """Clusters with fewer returns are ignored."""
    min_moving_fraction: float = 0.1
    """A track is moving when on average at least this fraction of its returns are moving."""
    min_travel: float = 1.0
    """A track is moving when its centre travels at least this far over the track, metres."""
    min_height: float = 0.5
    """Clusters lower than this are not objects (kerbs, ground the grid missed)."""
    max_step: float = 2.5
    """Largest distance between a track's predicted and observed centre from one sweep to the next."""
    min_track: int = 4
    """Tracks seen in fewer sweeps are dropped."""
    max_size: tuple[float, float, float] = (20.0, 4.0, 4.5)
    """Clusters larger than this (length, width, height) are not objects (walls, hedges)."""

    def validate(self) -> None:
        """Raise `InputError` naming the first bad option."""
        positive = ("max_range", "ground_cell", "radius", "cluster_cell", "max_step", "max_height", "min_travel")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(
                    f"--lidar-objects.{name.replace('_', '-')} must be positive, got {getattr(self, name)}"
                )
        if self.gap < 1 or self.window < 0 or self.min_points < 1 or self.min_track < 1:
            raise InputError("--lidar-objects.gap, min-points and min-track must be positive integers, window >= 0")
        if not 0.0 <= self.min_moving_fraction <= 1.0:
            raise InputError(f"--lidar-objects.min-moving-fraction must be in [0, 1], got {self.min_moving_fraction}")


@dataclass
class _Cluster:
    sweep: int
    time: float
    points: np.ndarray  # [P, 3] world
    centre: np.ndarray  # [3] mean of the points
    sensor: np.ndarray  # [3] the sensor's position
    moving: float  # fraction of the returns that disagree with the map


@dataclass
class _Track:
    clusters: list[_Cluster] = field(default_factory=list)

    def predicted(self, sweep: int) -> np.ndarray:
        last = self.clusters[-1]
        if len(self.clusters) == 1:
            return last.centre
        before = self.clusters[-2]
        velocity = (last.centre - before.centre) / max(1, last.sweep - before.sweep)
        return last.centre + velocity * (sweep - last.sweep)


def moving_objects(sweeps: list[LidarSweep], options: LidarObjectsOptions = LidarObjectsOptions()) -> list[BoxTrack]:
    """Moving-object box tracks found in world-frame sweeps (see the module docstring).

    Args:
        sweeps: the recording's sweeps in time order, points in the world frame (z up), metres.
        options: thresholds.

    Returns:
        One `BoxTrack` per moving object (label ``moving``), poses at the times of the sweeps it was seen in.
    """
    options.validate()
    sweeps = sorted(sweeps, key=lambda s: s.time)
    clouds = [_non_ground(s, options) for s in track(sweeps, "LiDAR objects: ground")]
    static_map = _StaticMap(clouds, options.radius)
    tracks: list[_Track] = []
    for k, cloud in enumerate(track(clouds, "LiDAR objects: moving returns")):
        if len(cloud) == 0:
            continue
        moving = static_map.moving(cloud, k, options.gap, options.window)
        clusters = [
            _Cluster(
                k, sweeps[k].time, cloud[members], cloud[members].mean(0), sweeps[k].origin, moving[members].mean()
            )
            for members in _clusters(cloud, options)
            if _fits(cloud[members], options)
        ]
        _associate(tracks, clusters, k, options)
    kept = [t for t in tracks if _is_moving(t, options)]
    out = [_boxes(t, f"lidar-{n}") for n, t in enumerate(kept)]
    log.info("LiDAR objects: %d moving tracks in %d sweeps", len(out), len(sweeps))
    return out


def _non_ground(sweep: LidarSweep, options: LidarObjectsOptions) -> np.ndarray:
    """The sweep's returns within range, above the local ground and below max_height: [P, 3]."""
    xyz = np.asarray(sweep.load_points(), dtype=np.float64).reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz).all(1) & (np.linalg.norm(xyz[:, :2] - sweep.origin[:2], axis=1) < options.max_range)]
    if len(xyz) == 0:
        return xyz
    cells = np.floor(xyz[:, :2] / options.ground_cell).astype(np.int64)
    low = cells.min(0)
    index = cells - low
    shape = index.max(0) + 1
    ground = np.full(shape, np.inf)
    np.minimum.at(ground, (index[:, 0], index[:, 1]), xyz[:, 2])
    ground = ndimage.minimum_filter(ground, size=3, mode="nearest")
    height = xyz[:, 2] - ground[index[:, 0], index[:, 1]]
    return xyz[(height > options.ground_clearance) & (height < options.max_height)]


class _StaticMap:
    """Which sweeps saw something in each ``radius`` voxel: one bit per sweep and voxel ([V, ceil(T / 64)] words)."""

    def __init__(self, clouds: list[np.ndarray], radius: float) -> None:
        self.radius = radius
        self.words = max(1, (len(clouds) + 63) // 64)
        keys = [self._keys(c) for c in clouds]
        every = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        index = np.concatenate([np.full(len(k), i, dtype=np.int64) for i, k in enumerate(keys)]) if keys else every
        self.voxels, inverse = np.unique(every, return_inverse=True)
        self.bits = np.zeros((len(self.voxels), self.words), dtype=np.uint64)
        np.bitwise_or.at(self.bits, (inverse, index // 64), np.left_shift(np.uint64(1), (index % 64).astype(np.uint64)))
        self.count = len(clouds)

    def _keys(self, xyz: np.ndarray, offset: tuple[int, ...] = (0, 0, 0)) -> np.ndarray:
        cells = np.floor(xyz / self.radius).astype(np.int64) + np.array(offset) + 2**20
        return (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]

    def moving(self, cloud: np.ndarray, sweep: int, gap: int, window: int) -> np.ndarray:
        """bool [P]: no sweep ``gap`` to ``gap + window`` frames before or after saw anything in the point's voxel or
        its 26 neighbours (all False when there is no such sweep: nothing to compare with)."""
        others = [j for j in range(self.count) if gap <= abs(j - sweep) <= gap + window]
        if not others or len(self.voxels) == 0:
            return np.zeros(len(cloud), dtype=bool)
        mask = np.zeros(self.words, dtype=np.uint64)
        for j in others:
            mask[j // 64] |= np.uint64(1) << np.uint64(j % 64)
        static = np.zeros(len(cloud), dtype=bool)
        for offset in itertools.product((-1, 0, 1), repeat=3):
            keys = self._keys(cloud, offset)
            at = np.clip(np.searchsorted(self.voxels, keys), 0, len(self.voxels) - 1)
            found = self.voxels[at] == keys
            static |= found & (self.bits[at] & mask).any(axis=1)
        return ~static


def _clusters(cloud: np.ndarray, options: LidarObjectsOptions) -> list[np.ndarray]:
    """Index arrays of the returns of each connected group of occupied bird's-eye-view cells."""
    cells = np.floor(cloud[:, :2] / options.cluster_cell).astype(np.int64)
    index = cells - cells.min(0)
    grid = np.zeros(index.max(0) + 1, dtype=bool)
    grid[index[:, 0], index[:, 1]] = True
    labels, count = ndimage.label(grid)  # 4-connected: cells that share a side (a jam leaves gaps of a cell)
    point_labels = labels[index[:, 0], index[:, 1]]
    order = np.argsort(point_labels, kind="stable")
    bounds = np.searchsorted(point_labels[order], np.arange(1, count + 2))
    groups = [order[bounds[i] : bounds[i + 1]] for i in range(count)]
    return [g for g in groups if len(g) >= options.min_points]


def _fits(points: np.ndarray, options: LidarObjectsOptions) -> bool:
    """Whether a cluster is small enough to be one object (its bird's-eye extent along its main axes)."""
    xy = points[:, :2] - points[:, :2].mean(0)
    _, _, axes = np.linalg.svd(xy, full_matrices=False)
    extent = np.ptp(xy @ axes.T, axis=0)
    height = np.ptp(points[:, 2])
    small = extent[0] <= options.max_size[0] and extent[-1] <= options.max_size[1] and height <= options.max_size[2]
    return small and height >= options.min_height


def _is_moving(t: _Track, options: LidarObjectsOptions) -> bool:
    """Seen long enough, travelled far enough, and disagreeing with the static map enough."""
    if len(t.clusters) < options.min_track:
        return False
    travel = float(np.linalg.norm(t.clusters[-1].centre[:2] - t.clusters[0].centre[:2]))
    return (
        travel >= options.min_travel and float(np.mean([c.moving for c in t.clusters])) >= options.min_moving_fraction
    )


def _associate(tracks: list[_Track], clusters: list[_Cluster], sweep: int, options: LidarObjectsOptions) -> None:
    """Greedy nearest-neighbour association of this sweep's clusters to the live tracks; the rest start tracks."""
    live = [t for t in tracks if sweep - t.clusters[-1].sweep <= 2]
    pairs = sorted(
        (float(np.linalg.norm(t.predicted(sweep)[:2] - c.centre[:2])), i, j)
        for i, t in enumerate(live)
        for j, c in enumerate(clusters)
    )
    used_tracks, used_clusters = set(), set()
    for distance, i, j in pairs:
        if distance > options.max_step or i in used_tracks or j in used_clusters:
            continue
        live[i].clusters.append(clusters[j])
        used_tracks.add(i)
        used_clusters.add(j)
    tracks.extend(_Track([c]) for j, c in enumerate(clusters) if j not in used_clusters)


def _boxes(t: _Track, key: str) -> BoxTrack:
    """An oriented box per observation: heading along the motion, the largest extent seen, centre per sweep."""
    centres = np.stack([c.centre for c in t.clusters])
    motion = centres[-1, :2] - centres[0, :2]
    if np.linalg.norm(motion) > 0.5:
        yaw = math.atan2(motion[1], motion[0])
    else:  # barely moving: the main axis of the points
        xy = np.concatenate([c.points[:, :2] for c in t.clusters])
        axis = np.linalg.svd(xy - xy.mean(0), full_matrices=False)[2][0]
        yaw = math.atan2(axis[1], axis[0])
    c, s = math.cos(yaw), math.sin(yaw)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    local = [(cl.points - cl.centre) @ rotation for cl in t.clusters]  # object axes: x forward, y left
    lows = np.stack([p.min(0) for p in local])
    highs = np.stack([p.max(0) for p in local])
    size = np.max(highs - lows, axis=0)
    poses = []
    for cluster, low, high in zip(t.clusters, lows, highs, strict=True):
        extent = high - low
        middle = (low + high) / 2
        # The side hidden from the sensor makes the seen extent short: grow the box away from the sensor.
        away = rotation.T @ (cluster.centre - cluster.sensor)
        for axis in range(2):
            middle[axis] += math.copysign((size[axis] - extent[axis]) / 2, away[axis])
        poses.append(rigid(rotation, cluster.centre + rotation @ middle))
    times = np.array([cl.time for cl in t.clusters])
    return BoxTrack(key, "moving", size, times, np.stack(poses))
