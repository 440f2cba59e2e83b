"""A static world of random boxes on a ground plane, and LiDAR-like scans of it from given poses (for odometry tests).

Each scan is a fresh random sample of the surfaces within range of the sensor (no occlusion, 1 cm noise), so
that consecutive scans share no points: registering them has to find the motion, not match identical samples.
"""

from __future__ import annotations

import numpy as np

GROUND_Z = -1.8
"""The ground's height in the world, metres."""


def world_points(seed: int = 0, count: int = 400_000, extent: float = 70.0) -> np.ndarray:
    """Points on the ground and on the faces of 120 random boxes (1-6 m), float64 [count, 3] metres."""
    rng = np.random.default_rng(seed)
    ground = np.column_stack([rng.uniform(-extent, extent, (count // 4, 2)), np.full(count // 4, GROUND_Z)])
    centres = np.column_stack([rng.uniform(-extent, extent, (120, 2)), np.zeros(120)])
    sizes = rng.uniform(1.0, 6.0, (120, 3))
    centres[:, 2] = GROUND_Z + sizes[:, 2] / 2
    yaws = rng.uniform(0, np.pi, 120)
    per_box = (count - len(ground)) // 120
    boxes = []
    for centre, size, yaw in zip(centres, sizes, yaws, strict=True):
        local = rng.uniform(-0.5, 0.5, (per_box, 3)) * size
        axis = rng.integers(0, 3, per_box)  # push each point onto a face along a random axis
        local[np.arange(per_box), axis] = np.sign(local[np.arange(per_box), axis]) * size[axis] / 2
        c, s = np.cos(yaw), np.sin(yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        boxes.append(local @ rotation.T + centre)
    return np.concatenate([ground, *boxes])


def scan(world: np.ndarray, world_from_sensor: np.ndarray, rng: np.random.Generator, count: int = 30_000) -> np.ndarray:
    """A scan from `world_from_sensor` [4, 4]: `count` random world points within 50 m, in the sensor frame [P, 3]."""
    near = np.flatnonzero(np.linalg.norm(world[:, :2] - world_from_sensor[:2, 3], axis=1) < 50.0)
    chosen = world[rng.choice(near, size=min(count, len(near)), replace=False)]
    inverse = np.linalg.inv(world_from_sensor)
    return chosen @ inverse[:3, :3].T + inverse[:3, 3] + rng.normal(0.0, 0.01, (len(chosen), 3))


def drive(steps: int, speed: float = 0.8, yaw_rate: float = 0.03) -> np.ndarray:
    """Sensor poses along a gentle left curve, `speed` metres and `yaw_rate` radians per step. [steps, 4, 4]."""
    poses = []
    x = y = yaw = 0.0
    for _ in range(steps):
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]]
        pose[:3, 3] = [x, y, 0.0]
        poses.append(pose)
        x, y, yaw = x + speed * np.cos(yaw), y + speed * np.sin(yaw), yaw + yaw_rate
    return np.stack(poses)
