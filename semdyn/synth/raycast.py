"""A vectorised PyTorch ray caster over boxes, cylinders, spheres and the ground plane (not splatting).

Rays of one batch share one origin (a camera centre or the LiDAR), which lets every primitive transform the
origin once. Hits are shaded with Lambert + ambient light over procedural albedo; misses are sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from semdyn.synth.scene import CLASS_ID, Shape, Street
from semdyn.synth.textures import ground, material_albedo

_EPS = 1e-4
SUN = (0.35, -0.45, 0.82)
"""Direction towards the sun in the world frame (normalised on use)."""
AMBIENT = 0.38


@dataclass
class Primitives:
    """P world-space primitives at one time."""

    shape: Tensor
    """[P] int64 Shape ids."""
    centre: Tensor
    """[P, 3] part centres in the world."""
    rotation: Tensor
    """[P, 3, 3] part-to-world rotations."""
    half: Tensor
    """[P, 3] half extents (see Shape)."""
    material: Tensor
    """[P] int64 Material ids."""
    colour: Tensor
    """[P, 3] base albedo."""
    semantic: Tensor
    """[P] int64 class ids."""
    instance: Tensor
    """[P] int64 instance ids."""

    def subset(self, keep: Tensor) -> Primitives:
        """The primitives selected by a [P] bool mask or an index tensor."""
        return Primitives(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))

    def bounding_radius(self) -> Tensor:
        """[P] radius of a sphere around each primitive's centre containing it."""
        return self.half.norm(dim=-1)

    def __len__(self) -> int:
        return int(self.shape.shape[0])


class PrimitiveTable:
    """All parts of a street with their object poses at every frame time, ready to pack per time."""

    def __init__(self, street: Street, times: np.ndarray, device: torch.device) -> None:
        offsets, obj_index, static = [], [], []
        for k, obj in enumerate(street.objects):
            for part in obj.parts:
                offsets.append(part.offset)
                obj_index.append(k)
                static.append(
                    (
                        int(part.shape),
                        *part.half,
                        int(part.material),
                        *part.colour,
                        CLASS_ID[part.semantic],
                        obj.instance_id,
                    )
                )
        table = np.asarray(static, dtype=np.float64).reshape(-1, 10)
        self.device = device
        self.offsets = np.asarray(offsets).reshape(-1, 4, 4)
        self.obj_index = np.asarray(obj_index, dtype=np.int64)
        self.object_poses = np.stack([obj.poses(times) for obj in street.objects], axis=1)  # [T, O, 4, 4]
        self.shape = torch.as_tensor(table[:, 0], dtype=torch.int64, device=device)
        self.half = torch.as_tensor(table[:, 1:4], dtype=torch.float32, device=device)
        self.material = torch.as_tensor(table[:, 4], dtype=torch.int64, device=device)
        self.colour = torch.as_tensor(table[:, 5:8], dtype=torch.float32, device=device)
        self.semantic = torch.as_tensor(table[:, 8], dtype=torch.int64, device=device)
        self.instance = torch.as_tensor(table[:, 9], dtype=torch.int64, device=device)

    def at(self, frame: int) -> Primitives:
        """World-space primitives at frame index ``frame``."""
        world = self.object_poses[frame][self.obj_index] @ self.offsets  # [P, 4, 4]
        return Primitives(
            shape=self.shape,
            centre=torch.as_tensor(world[:, :3, 3], dtype=torch.float32, device=self.device),
            rotation=torch.as_tensor(world[:, :3, :3], dtype=torch.float32, device=self.device),
            half=self.half,
            material=self.material,
            colour=self.colour,
            semantic=self.semantic,
            instance=self.instance,
        )


def _intersect_boxes(origin_local: Tensor, dirs_local: Tensor, half: Tensor) -> Tensor:
    """Slab test.  origin_local: [P, 3], dirs_local: [N, P, 3], half: [P, 3] -> t [N, P] (inf = miss)."""
    d = torch.where(dirs_local.abs() < 1e-12, torch.full_like(dirs_local, 1e-12), dirs_local)
    inv = 1.0 / d
    t1 = (-half - origin_local) * inv
    t2 = (half - origin_local) * inv
    t_near = torch.minimum(t1, t2).amax(dim=-1)
    t_far = torch.maximum(t1, t2).amin(dim=-1)
    hit = (t_near <= t_far) & (t_near > _EPS)
    return torch.where(hit, t_near, torch.full_like(t_near, float("inf")))


def _intersect_cylinders(origin_local: Tensor, dirs_local: Tensor, half: Tensor) -> Tensor:
    """Capped cylinders along local z.  Shapes as for boxes -> t [N, P]."""
    ox, oy, oz = origin_local[:, 0], origin_local[:, 1], origin_local[:, 2]
    dx, dy, dz = dirs_local[..., 0], dirs_local[..., 1], dirs_local[..., 2]
    r, hz = half[:, 0], half[:, 2]
    inf = torch.full_like(dx, float("inf"))
    a = dx * dx + dy * dy
    b = 2.0 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - r * r
    disc = b * b - 4.0 * a * c
    safe_a = torch.where(a > 1e-12, a, torch.ones_like(a))
    t_side = (-b - disc.clamp_min(0.0).sqrt()) / (2.0 * safe_a)
    z_side = oz + t_side * dz
    side_ok = (disc >= 0) & (a > 1e-12) & (t_side > _EPS) & (z_side.abs() <= hz)
    best = torch.where(side_ok, t_side, inf)
    safe_dz = torch.where(dz.abs() > 1e-12, dz, torch.full_like(dz, 1e-12))
    for sign in (-1.0, 1.0):
        t_cap = (sign * hz - oz) / safe_dz
        px, py = ox + t_cap * dx, oy + t_cap * dy
        cap_ok = (t_cap > _EPS) & (px * px + py * py <= r * r)
        best = torch.minimum(best, torch.where(cap_ok, t_cap, inf))
    return best


def _intersect_spheres(origin: Tensor, dirs: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    """origin: [3], dirs: [N, 3], centre: [P, 3], radius: [P] -> t [N, P]."""
    oc = origin[None, :] - centre  # [P, 3]
    a = (dirs * dirs).sum(-1, keepdim=True)  # [N, 1]
    b = dirs @ oc.T  # [N, P]
    c = (oc * oc).sum(-1) - radius * radius  # [P]
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0.0).sqrt()) / a
    return torch.where((disc >= 0) & (t > _EPS), t, torch.full_like(t, float("inf")))


def intersect(origin: Tensor, dirs: Tensor, prims: Primitives, far: float) -> tuple[Tensor, Tensor]:
    """Nearest hit of each ray.

    Args:
        origin: [3] shared ray origin.
        dirs: [N, 3] ray directions (any length; t is in units of that length).
        prims: the P primitives to test.
        far: largest t reported.

    Returns:
        t [N] (inf for sky) and index [N] into prims (P for the ground plane, -1 for sky).
    """
    n = dirs.shape[0]
    best_t = torch.full((n,), float("inf"), device=dirs.device)
    best_i = torch.full((n,), -1, dtype=torch.int64, device=dirs.device)
    for shape in (Shape.BOX, Shape.CYLINDER, Shape.SPHERE):
        idx = torch.nonzero(prims.shape == int(shape)).squeeze(-1)
        if idx.numel() == 0:
            continue
        if shape == Shape.SPHERE:
            t = _intersect_spheres(origin, dirs, prims.centre[idx], prims.half[idx, 0])
        else:
            rot = prims.rotation[idx]  # [P, 3, 3]
            origin_local = torch.einsum("pji,pj->pi", rot, origin[None, :] - prims.centre[idx])
            dirs_local = torch.einsum("nj,pji->npi", dirs, rot)
            fn = _intersect_boxes if shape == Shape.BOX else _intersect_cylinders
            t = fn(origin_local, dirs_local, prims.half[idx])
        t_min, arg = t.min(dim=1)
        better = t_min < best_t
        best_t = torch.where(better, t_min, best_t)
        best_i = torch.where(better, idx[arg], best_i)
    if float(origin[2]) > 0:
        t_ground = torch.where(dirs[:, 2] < -1e-9, -origin[2] / dirs[:, 2].clamp(max=-1e-9), float("inf"))
        better = t_ground < best_t
        best_t = torch.where(better, t_ground, best_t)
        best_i = torch.where(better, torch.full_like(best_i, len(prims)), best_i)
    sky = best_t > far
    best_t = torch.where(sky, torch.full_like(best_t, float("inf")), best_t)
    best_i = torch.where(sky, torch.full_like(best_i, -1), best_i)
    return best_t, best_i


def _local_normals(shape: Tensor, local: Tensor, half: Tensor) -> Tensor:
    """Unit normals in the part frame at points on the surface.  shape: [N], local, half: [N, 3] -> [N, 3]."""
    q = local / half.clamp_min(1e-6)
    axis = q.abs().argmax(dim=-1)
    box_n = torch.nn.functional.one_hot(axis, 3).to(local.dtype) * torch.sign(q.gather(1, axis[:, None]))
    radial = torch.cat([local[:, :2], torch.zeros_like(local[:, :1])], dim=-1)
    radial_len = radial[:, :2].norm(dim=-1)
    cap = q[:, 2].abs() > radial_len / half[:, 0].clamp_min(1e-6)
    cap_n = torch.zeros_like(local)
    cap_n[:, 2] = torch.sign(local[:, 2])
    cyl_n = torch.where(cap[:, None], cap_n, radial / radial_len.clamp_min(1e-9)[:, None])
    sph_n = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    out = torch.where((shape == int(Shape.BOX))[:, None], box_n, sph_n)
    return torch.where((shape == int(Shape.CYLINDER))[:, None], cyl_n, out)


@dataclass
class Shaded:
    """Per-ray outputs of :func:`cast_and_shade`."""

    rgb: Tensor
    """[N, 3] in [0, 1]."""
    t: Tensor
    """[N] ray parameter of the hit (0 for sky)."""
    points: Tensor
    """[N, 3] world hit points (origin for sky)."""
    instance: Tensor
    """[N] int64 instance id (0 for sky)."""
    semantic: Tensor
    """[N] int64 class id (0 = sky)."""


def sky_colour(dirs: Tensor) -> Tensor:
    """Vertical gradient from a pale horizon to a blue zenith.  dirs: [N, 3] -> [N, 3]."""
    elevation = (dirs[:, 2] / dirs.norm(dim=-1).clamp_min(1e-9)).clamp(0.0, 1.0).sqrt()[:, None]
    horizon = dirs.new_tensor([0.82, 0.87, 0.94])
    zenith = dirs.new_tensor([0.32, 0.52, 0.86])
    return horizon * (1 - elevation) + zenith * elevation


def _shade_hits(
    origin: Tensor, dirs: Tensor, t: Tensor, index: Tensor, prims: Primitives, road_instance: int, seed: int
) -> Shaded:
    n = dirs.shape[0]
    hit = index >= 0
    t0 = torch.where(hit, t, torch.zeros_like(t))
    points = origin[None, :] + t0[:, None] * dirs
    rgb = sky_colour(dirs)
    instance = torch.zeros(n, dtype=torch.int64, device=dirs.device)
    semantic = torch.zeros(n, dtype=torch.int64, device=dirs.device)
    sun = dirs.new_tensor(SUN)
    sun = sun / sun.norm()
    on_ground = index == len(prims)
    if bool(on_ground.any()):
        albedo, cls = ground(points[on_ground], seed)
        rgb[on_ground] = albedo * (AMBIENT + (1 - AMBIENT) * float(sun[2]))
        instance[on_ground] = road_instance
        semantic[on_ground] = cls
    on_prim = hit & ~on_ground
    if bool(on_prim.any()):
        k = index[on_prim]
        rot = prims.rotation[k]
        local = torch.einsum("nji,nj->ni", rot, points[on_prim] - prims.centre[k])
        normal = _local_normals(prims.shape[k], local, prims.half[k])
        albedo = material_albedo(prims.material[k], prims.colour[k], local, normal, prims.half[k], seed)
        world_n = torch.einsum("nij,nj->ni", rot, normal)
        lambert = (world_n @ sun).clamp_min(0.0)
        rgb[on_prim] = albedo * (AMBIENT + (1 - AMBIENT) * lambert)[:, None]
        instance[on_prim] = prims.instance[k]
        semantic[on_prim] = prims.semantic[k]
    return Shaded(rgb.clamp(0.0, 1.0), t0, points, instance, semantic)


def cast_and_shade(
    origin: Tensor, dirs: Tensor, prims: Primitives, far: float, road_instance: int, seed: int, chunk: int
) -> Shaded:
    """Cast rays from one origin in chunks and shade them.  origin: [3], dirs: [N, 3] -> Shaded with N rays."""
    parts = []
    for start in range(0, dirs.shape[0], chunk):
        d = dirs[start : start + chunk]
        t, index = intersect(origin, d, prims, far)
        parts.append(_shade_hits(origin, d, t, index, prims, road_instance, seed))
    return Shaded(*(torch.cat([getattr(p, f) for p in parts]) for f in Shaded.__dataclass_fields__))


def cull_frustum(
    prims: Primitives,
    world_to_cv: Tensor,
    intrinsics: tuple[float, float, float, float],
    size: tuple[int, int],
    far: float,
) -> Primitives:
    """Drop primitives whose bounding sphere lies outside a pinhole camera's view.

    Args:
        prims: primitives in the world.
        world_to_cv: [4, 4] world-to-camera in OpenCV axes (x right, y down, z forward).
        intrinsics: fx, fy, cx, cy.
        size: (width, height).
        far: far limit along the optical axis.
    """
    fx, fy, cx, cy = intrinsics
    w, h = size
    pc = prims.centre @ world_to_cv[:3, :3].T + world_to_cv[:3, 3]
    radius = prims.bounding_radius()
    normals = pc.new_tensor(
        [[1.0, 0.0, -(w - cx) / fx], [-1.0, 0.0, -cx / fx], [0.0, 1.0, -(h - cy) / fy], [0.0, -1.0, -cy / fy]]
    )
    normals = normals / normals.norm(dim=-1, keepdim=True)
    outside = (pc @ normals.T > radius[:, None]).any(dim=-1)
    outside = outside | (pc[:, 2] < -radius) | (pc[:, 2] > far + radius)
    return prims.subset(~outside)


def cull_range(prims: Primitives, origin: Tensor, far: float) -> Primitives:
    """Drop primitives farther than ``far`` from ``origin`` (origin: [3])."""
    dist = (prims.centre - origin[None, :]).norm(dim=-1) - prims.bounding_radius()
    return prims.subset(dist <= far)
