"""Procedural textures: integer-hash value noise and the albedo of each material at ray hits.

Everything is a pure function of tensors so that the same surface point gets the same colour from any
camera or LiDAR ray. Textures of objects are computed in the part's local frame, so they move with it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from semdyn.synth.scene import CLASS_ID, LANE_WIDTH, ROAD_HALF_WIDTH, Material

_MASK32 = 0xFFFFFFFF


def hash2(ix: Tensor, iy: Tensor, seed: int) -> Tensor:
    """Deterministic hash of integer lattice points to [0, 1].  ix, iy: [N] int64 -> [N] float32."""
    h = (ix & _MASK32) * 374761393 & _MASK32
    h = h ^ ((iy & _MASK32) * 668265263 & _MASK32)
    h = h ^ ((seed * 2654435761 + 1013904223) & _MASK32)
    h = ((h ^ (h >> 13)) * 1274126177) & _MASK32
    h = h ^ (h >> 16)
    return (h & 0xFFFF).to(torch.float32) / 65535.0


def value_noise(x: Tensor, y: Tensor, seed: int) -> Tensor:
    """Smoothly interpolated lattice noise in [0, 1].  x, y: [N] (lattice units) -> [N]."""
    fx, fy = torch.floor(x), torch.floor(y)
    tx, ty = x - fx, y - fy
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    ix, iy = fx.to(torch.int64), fy.to(torch.int64)
    a, b = hash2(ix, iy, seed), hash2(ix + 1, iy, seed)
    c, d = hash2(ix, iy + 1, seed), hash2(ix + 1, iy + 1, seed)
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty


def fbm(x: Tensor, y: Tensor, seed: int, octaves: int = 3) -> Tensor:
    """Fractal sum of value noise, normalised to [0, 1].  x, y: [N] -> [N]."""
    total, amp, norm = torch.zeros_like(x), 1.0, 0.0
    for k in range(octaves):
        scale = 2.0**k
        total = total + amp * value_noise(x * scale, y * scale, seed + 7919 * k)
        norm += amp
        amp *= 0.5
    return total / norm


def _stripe(coord: Tensor, centre: float, width: float) -> Tensor:
    return (coord - centre).abs() < width / 2


def ground(points: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Asphalt with lane markings on the plane z = 0.

    Args:
        points: [N, 3] world hit points.
        seed: texture seed.

    Returns:
        albedo [N, 3] and semantic class id [N] (road or lane_marking).
    """
    x, y = points[:, 0], points[:, 1]
    grain = fbm(x * 2.5, y * 2.5, seed, octaves=4)
    fine = value_noise(x * 23.0, y * 23.0, seed + 1)
    grey = 0.2 + 0.1 * grain + 0.05 * fine
    albedo = torch.stack([grey, grey, grey * 1.04], dim=-1)
    on_road = y.abs() < ROAD_HALF_WIDTH
    yellow = (_stripe(y, 0.14, 0.12) | _stripe(y, -0.14, 0.12)) & on_road
    dash = torch.remainder(x, 9.0) < 3.0
    white = (_stripe(y.abs(), LANE_WIDTH, 0.15) & dash) | _stripe(y.abs(), 2 * LANE_WIDTH, 0.15)
    white = white & on_road
    wear = 0.85 + 0.15 * fine
    albedo = torch.where(white[:, None], torch.stack([wear, wear, wear * 0.98], -1) * 0.9, albedo)
    albedo = torch.where(yellow[:, None], torch.stack([0.9 * wear, 0.72 * wear, 0.1 * wear], -1), albedo)
    cls = torch.where(white | yellow, CLASS_ID["lane_marking"], CLASS_ID["road"])
    return albedo, cls


def _face_uv(local: Tensor, normal: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal coordinate along a vertical box face and height above the box bottom.  -> [N], [N]."""
    along_x = normal[:, 1].abs() > 0.5
    u = torch.where(along_x, local[:, 0] + half[:, 0], local[:, 1] + half[:, 1])
    v = local[:, 2] + half[:, 2]
    return u, v


def _facade(local: Tensor, normal: Tensor, half: Tensor, colour: Tensor, seed: int) -> Tensor:
    u, v = _face_uv(local, normal, half)
    plaster = 0.85 + 0.15 * fbm(u * 1.5, v * 1.5, seed + 11)
    albedo = colour * plaster[:, None]
    floor = 3.2
    bay = 2.6
    fu, fv = torch.remainder(u, bay), torch.remainder(v, floor)
    window = (fu > 0.6) & (fu < bay - 0.6) & (fv > 0.9) & (fv < floor - 0.5) & (v > floor)
    door_band = v < floor
    cell = hash2(torch.floor(u / bay).to(torch.int64), torch.floor(v / floor).to(torch.int64), seed + 3)
    glass = torch.stack([0.12 + 0.25 * cell, 0.16 + 0.25 * cell, 0.22 + 0.28 * cell], -1)
    frame = (fu > 0.5) & (fu < bay - 0.5) & (fv > 0.8) & (fv < floor - 0.4) & (v > floor)
    albedo = torch.where(frame[:, None], torch.full_like(albedo, 0.88), albedo)
    albedo = torch.where(window[:, None], glass, albedo)
    shop = door_band & (fu > 0.3) & (fu < bay - 0.3) & (v > 0.3) & (v < floor - 0.6)
    albedo = torch.where(shop[:, None], glass * 0.7 + 0.05, albedo)
    vertical = normal[:, 2].abs() < 0.5
    roof = torch.full_like(albedo, 0.32) * (0.8 + 0.2 * fbm(local[:, 0], local[:, 1], seed + 5))[:, None]
    return torch.where(vertical[:, None], albedo, roof)


def _sidewalk(local: Tensor, normal: Tensor, colour: Tensor, seed: int) -> Tensor:
    x, y = local[:, 0], local[:, 1]
    tile = 1.2
    joint = (torch.remainder(x, tile) < 0.05) | (torch.remainder(y, tile) < 0.05)
    cell = hash2(torch.floor(x / tile).to(torch.int64), torch.floor(y / tile).to(torch.int64), seed + 21)
    shade = 0.9 + 0.1 * cell + 0.06 * value_noise(x * 9.0, y * 9.0, seed + 22)
    top = colour * shade[:, None]
    top = torch.where(joint[:, None], top * 0.7, top)
    kerb = torch.full_like(top, 0.72) * (0.9 + 0.1 * value_noise(x * 5.0, local[:, 2] * 5.0, seed + 23))[:, None]
    return torch.where((normal[:, 2] > 0.5)[:, None], top, kerb)


def _paint(local: Tensor, normal: Tensor, half: Tensor, colour: Tensor, seed: int) -> Tensor:
    height = local[:, 2] + half[:, 2]
    skirt = height < 0.3 * 2 * half[:, 2]
    albedo = colour * (0.95 + 0.05 * value_noise(local[:, 0] * 6.0, local[:, 2] * 6.0, seed + 31))[:, None]
    albedo = torch.where(skirt[:, None], albedo * 0.45 + 0.03, albedo)
    lamp_y = (half[:, 1] - local[:, 1].abs() > 0.08) & (half[:, 1] - local[:, 1].abs() < 0.45)
    lamp_z = (height > 0.55 * 2 * half[:, 2]) & (height < 0.85 * 2 * half[:, 2])
    front = (normal[:, 0] > 0.5) & lamp_y & lamp_z
    back = (normal[:, 0] < -0.5) & lamp_y & lamp_z
    albedo = torch.where(front[:, None], colour.new_tensor([0.98, 0.97, 0.88]), albedo)
    return torch.where(back[:, None], colour.new_tensor([0.75, 0.05, 0.05]), albedo)


def _cabin(local: Tensor, normal: Tensor, half: Tensor, colour: Tensor) -> Tensor:
    horizontal_face = normal[:, 2].abs() > 0.5
    along = torch.where(normal[:, 0].abs() > 0.5, local[:, 1].abs() - half[:, 1], local[:, 0].abs() - half[:, 0])
    pillar = (along > -0.1) | (local[:, 2] - half[:, 2] > -0.06) | (local[:, 2] + half[:, 2] < 0.05)
    glass = colour.new_tensor([0.07, 0.09, 0.12]).expand_as(colour)
    side = torch.where(pillar[:, None], colour, glass)
    return torch.where(horizontal_face[:, None], colour, side)


def _grain(local: Tensor, colour: Tensor, scale: tuple[float, float], amount: float, seed: int) -> Tensor:
    """Colour modulated by noise over (height, x): bark, metal."""
    noise = value_noise(local[:, 2] * scale[0], local[:, 0] * scale[1], seed)
    return colour * (1.0 - amount + amount * noise)[:, None]


def _foliage(local: Tensor, colour: Tensor, seed: int) -> Tensor:
    noise = fbm(local[:, 0] * 3.0 + local[:, 2] * 2.0, local[:, 1] * 3.0 - local[:, 2], seed + 41)
    return colour * (0.55 + 0.7 * noise)[:, None]


def material_albedo(material: Tensor, colour: Tensor, local: Tensor, normal: Tensor, half: Tensor, seed: int) -> Tensor:
    """Albedo of primitive hits in their part frames.

    Args:
        material: [N] Material ids.
        colour: [N, 3] base colours of the parts.
        local: [N, 3] hit points in the part frame.
        normal: [N, 3] unit normals in the part frame.
        half: [N, 3] half extents of the parts.
        seed: texture seed.

    Returns:
        [N, 3] albedo in [0, 1].
    """
    albedo = colour.clone()
    rules = {
        Material.FACADE: lambda m: _facade(local[m], normal[m], half[m], colour[m], seed),
        Material.SIDEWALK: lambda m: _sidewalk(local[m], normal[m], colour[m], seed),
        Material.PAINT: lambda m: _paint(local[m], normal[m], half[m], colour[m], seed),
        Material.CABIN: lambda m: _cabin(local[m], normal[m], half[m], colour[m]),
        Material.BARK: lambda m: _grain(local[m], colour[m], (8.0, 30.0), 0.3, seed),
        Material.FOLIAGE: lambda m: _foliage(local[m], colour[m], seed),
        Material.METAL: lambda m: _grain(local[m], colour[m], (4.0, 4.0), 0.1, seed),
    }
    for mat, rule in rules.items():
        mask = material == int(mat)
        if bool(mask.any()):
            albedo[mask] = rule(mask)
    return albedo.clamp(0.0, 1.0)
