"""Smooth rigid trajectories on a flat street, with analytic velocity (yaw follows the path tangent).

World frame: x along the street (the ego drives towards +x), y to the left, z up, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _quintic_step(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smooth step 0 -> 1 on s in [0, 1] with zero first and second derivatives at both ends.

    Returns (value, derivative with respect to s), both shaped like s.
    """
    s = np.clip(s, 0.0, 1.0)
    value = s**3 * (10.0 - 15.0 * s + 6.0 * s**2)
    slope = 30.0 * s**2 * (1.0 - s) ** 2
    return value, slope


@dataclass(frozen=True)
class LaneTrajectory:
    """A path along the street: x(t) = x0 + speed t + surge sin(2 pi t / surge_period),
    y(t) moves from y0 to y1 with a quintic step between change_start and change_start + change_duration.

    The pose's yaw follows the velocity direction (when the speed is near zero, the last heading is
    meaningless, so ``heading_if_still`` is used); z is constant (the box centre height).
    """

    x0: float
    speed: float
    y0: float
    z: float
    y1: float | None = None
    change_start: float = 0.0
    change_duration: float = 1.0
    surge: float = 0.0
    surge_period: float = 6.0
    heading_if_still: float = 0.0

    def position(self, times: np.ndarray) -> np.ndarray:
        """Positions at the given times.  times: [T] seconds -> [T, 3]."""
        t = np.asarray(times, dtype=np.float64)
        x = self.x0 + self.speed * t + self.surge * np.sin(2.0 * np.pi * t / self.surge_period)
        y = np.full_like(t, self.y0)
        if self.y1 is not None:
            step, _ = _quintic_step((t - self.change_start) / self.change_duration)
            y = self.y0 + (self.y1 - self.y0) * step
        return np.stack([x, y, np.full_like(t, self.z)], axis=-1)

    def velocity(self, times: np.ndarray) -> np.ndarray:
        """Analytic velocities.  times: [T] -> [T, 3] metres per second."""
        t = np.asarray(times, dtype=np.float64)
        w = 2.0 * np.pi / self.surge_period
        vx = self.speed + self.surge * w * np.cos(w * t)
        vy = np.zeros_like(t)
        if self.y1 is not None:
            _, slope = _quintic_step((t - self.change_start) / self.change_duration)
            vy = (self.y1 - self.y0) * slope / self.change_duration
        return np.stack([vx, vy, np.zeros_like(t)], axis=-1)

    def poses(self, times: np.ndarray) -> np.ndarray:
        """Object-to-world poses, x forward along the velocity.  times: [T] -> [T, 4, 4]."""
        pos = self.position(times)
        vel = self.velocity(times)
        speed = np.linalg.norm(vel[:, :2], axis=-1)
        yaw = np.where(speed > 1e-6, np.arctan2(vel[:, 1], vel[:, 0]), self.heading_if_still)
        return planar_poses(pos, yaw)


@dataclass(frozen=True)
class StaticPose:
    """A pose that does not change: position and yaw."""

    position: tuple[float, float, float]
    yaw: float = 0.0

    def poses(self, times: np.ndarray) -> np.ndarray:
        """times: [T] -> [T, 4, 4] identical poses."""
        n = len(np.asarray(times))
        pos = np.tile(np.asarray(self.position, dtype=np.float64), (n, 1))
        return planar_poses(pos, np.full(n, self.yaw))


def planar_poses(positions: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rigid poses rotating about +z.  positions: [T, 3], yaw: [T] radians -> [T, 4, 4]."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 4, 4))
    out[:, 0, 0], out[:, 0, 1] = c, -s
    out[:, 1, 0], out[:, 1, 1] = s, c
    out[:, 2, 2] = 1.0
    out[:, :3, 3] = positions
    out[:, 3, 3] = 1.0
    return out
