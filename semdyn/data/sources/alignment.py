"""Trajectory alignment (Umeyama) and absolute trajectory error, for checking estimated poses against true ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semdyn.errors import InputError


@dataclass(frozen=True)
class TrajectoryError:
    """Absolute trajectory error of estimated positions after an alignment."""

    rmse: float
    """Root mean square of the position errors, metres (of the true trajectory)."""
    max: float
    """Largest position error, metres."""
    path_length: float
    """Length of the true trajectory, metres."""
    scale: float
    """Scale the alignment applied to the estimate (1 for a rigid alignment)."""

    @property
    def percent_of_path(self) -> float:
        """RMSE as a percentage of the true path length (nan for a path of zero length)."""
        return 100.0 * self.rmse / self.path_length if self.path_length > 0 else float("nan")


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (or rigid) transform that best maps `source` onto `target` in least squares.

    Args:
        source, target: [N, 3] corresponding points.
        with_scale: solve for a scale too (Sim(3)); else the scale is 1 (SE(3)).

    Returns:
        scale s, rotation R [3, 3] and translation t [3] with target ~ s R source + t.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 2:
        raise InputError(f"umeyama needs two [N, 3] arrays with N >= 2, got {source.shape} and {target.shape}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    covariance = xt.T @ xs / len(source)
    u, d, vt = np.linalg.svd(covariance)
    flip = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[2, 2] = -1.0
    rotation = u @ flip @ vt
    variance = (xs**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ flip) / variance) if with_scale and variance > 0 else 1.0
    return scale, rotation, mu_t - scale * rotation @ mu_s


def trajectory_error(estimate: np.ndarray, truth: np.ndarray, with_scale: bool = False) -> TrajectoryError:
    """ATE of estimated positions against true ones after the best rigid (or similarity) alignment.

    Args:
        estimate, truth: [N, 3] positions or [N, 4, 4] poses (their translations are used), same order.
        with_scale: align with a similarity (monocular structure from motion has no metric scale).
    """
    est = _positions(estimate)
    true = _positions(truth)
    scale, rotation, translation = umeyama(est, true, with_scale)
    aligned = scale * est @ rotation.T + translation
    errors = np.linalg.norm(aligned - true, axis=1)
    length = float(np.linalg.norm(np.diff(true, axis=0), axis=1).sum())
    return TrajectoryError(float(np.sqrt((errors**2).mean())), float(errors.max()), length, scale)


def _positions(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    return value[:, :3, 3] if value.ndim == 3 else value
