"""One way to build a :class:`semdyn.scene.dynamic.DynamicScene` from data: the core trainer, :func:`load_run` and
the nerfstudio model all go through :func:`build_scene`, so that they make the same graph from the same sequence.

:class:`SceneInit` is what the scene needs of the data (all in the normalised world of the sequence): the initial
points, the camera poses (the deformation box and the up axis), the normalisation scale and the duration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from semdyn.scene.dynamic import DynamicScene, DynamicSceneConfig
from semdyn.scene.gaussians import PARAM_KEYS

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData


@dataclass
class SceneInit:
    """What a scene is built from (normalised units; times normalised to [0, 1])."""

    points: Tensor | None
    """[P, 3] initial points, or None (random Gaussians in ``aabb``)."""
    colors: Tensor | None
    """[P, 3] uint8 colours of the points, or None."""
    point_times: Tensor | None
    """[P] capture times of the points, or None."""
    aabb: Tensor
    """[2, 3] box of the random initialisation (and of the field without cameras)."""
    camera_to_worlds: Tensor | None
    """[F, 4, 4] camera-to-world poses of every frame (OpenCV or OpenGL axes: only the centres and the image's
    vertical axis are read), or None."""
    units_per_metre: float = 1.0
    """The sequence's normalisation scale."""
    duration_s: float | None = None
    """Seconds from the first to the last frame (None: unknown)."""
    scene_scale: float = 1.0
    """The scale of the positions' learning rates (the core trainer's camera half-extent; 1 in nerfstudio)."""

    @property
    def camera_centres(self) -> Tensor | None:
        return None if self.camera_to_worlds is None else self.camera_to_worlds[:, :3, 3]

    @property
    def up(self) -> Tensor | None:
        """[3] the world's up axis, or None without cameras; see :func:`up_from_cameras`."""
        return None if self.camera_to_worlds is None else up_from_cameras(self.camera_to_worlds)


def up_from_cameras(camera_to_worlds: Tensor, planar: float = 1e-2) -> Tensor:
    """[3] the world's up axis from camera poses ``camera_to_worlds`` [C, 4, 4] whose +y is image-up.

    A driving camera is pitched (down, a few degrees) but not rolled, and the rig moves on the road: the cameras'
    image-right axes and the directions of travel are level, so up is the normal of the plane they span (the
    eigenvector of the smallest eigenvalue of the sum of their outer products), turned to the side of the mean
    image-up. Where they do not span a plane (one camera yaw and no motion: the second eigenvalue below ``planar``
    times the largest), up is the mean image-up made orthogonal to them; pitch then stays in it."""
    c2w = camera_to_worlds.double()
    image_up = F.normalize(c2w[:, :3, 1].mean(0), dim=0)
    level = [c2w[:, :3, 0]]
    step = torch.diff(c2w[:, :3, 3], dim=0)
    if step.shape[0]:
        length = step.norm(dim=-1)
        moving = length > 1e-6 * max(float(length.max()), 1e-12)
        level.append(step[moving] / length[moving, None])
    axes = F.normalize(torch.cat(level), dim=-1)
    values, vectors = torch.linalg.eigh(axes.T @ axes)  # ascending
    if float(values[1]) >= planar * float(values[2]):
        up = vectors[:, 0]
    else:
        main = vectors[:, 2]
        up = F.normalize(image_up - (image_up @ main) * main, dim=0)
    up = up if float(up @ image_up) >= 0 else -up
    return up.float()


def scene_init_from_data(data: SceneData) -> SceneInit:
    """The :class:`SceneInit` of a :class:`semdyn.data.scene_data.SceneData` (OpenCV poses: image-up is -y)."""
    c2w = torch.linalg.inv(data.viewmats)
    c2w = c2w.clone()
    c2w[:, :3, 1] = -c2w[:, :3, 1]  # store image-up as +y, as OpenGL poses have it
    return SceneInit(
        points=data.points,
        colors=data.point_colors,
        point_times=data.point_times,
        aabb=data.aabb,
        camera_to_worlds=c2w,
        units_per_metre=float(data.normalization.scale),
        duration_s=float(data.sequence.time_axis.duration),
        scene_scale=float(data.scene_scale),
    )


def scene_init_from_metadata(metadata: dict[str, Any], aabb: Tensor) -> SceneInit:
    """The :class:`SceneInit` of the semdyn-data dataparser's metadata (OpenGL poses of every frame, normalised as
    the dataparser normalised them); ``aabb`` is the model's random-initialisation box."""
    sequence, norm = metadata.get("sequence"), metadata.get("scene_normalization")
    c2w = None
    if sequence is not None and norm is not None:
        c2w = torch.from_numpy(np.asarray(norm.poses_to_normalized(sequence.camera_to_worlds))).float()
    duration = metadata.get("duration_seconds")
    return SceneInit(
        points=metadata.get("points3D_xyz"),
        colors=metadata.get("points3D_rgb"),
        point_times=metadata.get("points3D_time"),
        aabb=aabb,
        camera_to_worlds=c2w,
        units_per_metre=float(norm.scale) if norm is not None else 1.0,
        duration_s=float(duration) if duration is not None else None,
        scene_scale=1.0,
    )


def build_scene(
    config: DynamicSceneConfig,
    init: SceneInit,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> DynamicScene:
    """The scene of ``config`` over the data ``init`` (see the module docstring)."""
    return DynamicScene(
        config,
        init.points,
        init.colors,
        init.aabb,
        device,
        generator,
        camera_centres=init.camera_centres,
        point_times=init.point_times,
        up=init.up,
        units_per_metre=init.units_per_metre,
        duration_s=init.duration_s,
        scene_scale=init.scene_scale,
    )


def optimizer_rates(config: DynamicSceneConfig, scene_scale: float = 1.0) -> dict[str, float]:
    """The Adam learning rate of every optimiser group a scene of ``config`` has, Gaussian attributes included, as
    its components own them (a probe scene of four random Gaussians is built to ask them): for trainers such as
    nerfstudio's that list their optimisers before the model exists. ``means`` is its initial rate."""
    probe_init = dataclasses.replace(config.init, random_count=4)
    probe = DynamicScene(dataclasses.replace(config, init=probe_init), None, None,
                         torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), scene_scale=scene_scale)  # fmt: skip
    rates = {key: float(getattr(config.lrs, key)) for key in PARAM_KEYS}
    rates["means"] = config.lrs.means * scene_scale
    rates |= probe.extra_lrs()
    rates |= {name: lr for name, (_, lr) in probe.param_groups().items()}
    return rates


__all__ = [
    "SceneInit",
    "build_scene",
    "optimizer_rates",
    "scene_init_from_data",
    "scene_init_from_metadata",
    "up_from_cameras",
]
