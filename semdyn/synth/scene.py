"""The procedural street: objects made of primitive parts, their trajectories, and the ego rig.

World frame: x along the street (the ego drives towards +x), y to the left, z up, metres; the ground is z = 0.
Cross-section (y): lanes of the ego direction at -1.75 and -5.25, oncoming lanes at +1.75 and +5.25, parking
strips 7 to 9 m from the centre, kerbs and sidewalks from 9 to 13 m, building facades from 13 m outwards.

Instance ids (16-bit masks): every entry of ``Street.objects`` has a unique id > 0, dynamic objects first
(1, 2, ...), then parked cars, then static structure (road, sidewalks, buildings, poles, trees). Sky is 0.
The ground plane beyond the street's extent still belongs to the road object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from semdyn.synth.config import SEMANTIC_CLASSES, SynthConfig
from semdyn.synth.trajectories import LaneTrajectory, StaticPose, planar_poses


class Shape(IntEnum):
    """Primitive shapes of the ray caster, each in its own local frame centred at the origin."""

    BOX = 0
    """Axis-aligned box with half extents (hx, hy, hz)."""
    CYLINDER = 1
    """Cylinder along local z with radius hx (= hy) and half height hz, capped."""
    SPHERE = 2
    """Sphere of radius hx."""


class Material(IntEnum):
    """Procedural materials (see :mod:`semdyn.synth.textures`)."""

    GROUND = 0
    SIDEWALK = 1
    FACADE = 2
    PAINT = 3
    CABIN = 4
    TIRE = 5
    METAL = 6
    BARK = 7
    FOLIAGE = 8
    CLOTH = 9
    SKIN = 10


CLASS_ID = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}
"""Semantic class name -> 8-bit id."""

LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 9.0
SIDEWALK_OUTER = 13.0
SIDEWALK_HEIGHT = 0.15


@dataclass(frozen=True)
class Part:
    """One primitive of an object, placed in the object frame."""

    shape: Shape
    half: tuple[float, float, float]
    """Half extents (box) or (radius, radius, half height) (cylinder) or (radius,)*3 (sphere), metres."""
    offset: np.ndarray
    """Part-to-object transform, [4, 4]."""
    material: Material
    colour: tuple[float, float, float]
    """Base albedo in [0, 1]."""
    semantic: str
    """Class name of the pixels this part covers."""


@dataclass
class SceneObject:
    """A rigid object: a box-shaped track for the ground truth and primitive parts for rendering."""

    instance_id: int
    semantic: str
    description: str
    dynamic: bool
    size: tuple[float, float, float]
    """Box length (x), width (y), height (z) in metres; the object frame is at the box centre."""
    parts: list[Part]
    trajectory: LaneTrajectory | StaticPose

    def poses(self, times: np.ndarray) -> np.ndarray:
        """Object-to-world poses.  times: [T] -> [T, 4, 4]."""
        return self.trajectory.poses(times)


@dataclass(frozen=True)
class RigCamera:
    """A camera on the ego rig."""

    name: str
    rig_to_ego: np.ndarray
    """Camera-to-ego transform, OpenGL camera axes (looks down -z, +y up), [4, 4]."""


@dataclass
class Street:
    """A whole procedural scene."""

    objects: list[SceneObject]
    ego: LaneTrajectory
    cameras: list[RigCamera]
    lidar_to_ego: np.ndarray
    """LiDAR sensor frame to ego frame (x forward, z up), [4, 4]."""
    x_range: tuple[float, float]
    seed: int
    extras: dict[str, object] = field(default_factory=dict)


def _transform(translation: tuple[float, float, float], rotation: np.ndarray | None = None) -> np.ndarray:
    out = np.eye(4)
    if rotation is not None:
        out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


_Y_AXIS_CYLINDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation taking the cylinder's local z axis onto the object's y axis (wheels)."""


def _box(
    centre: tuple[float, float, float],
    size: tuple[float, float, float],
    material: Material,
    colour: tuple[float, float, float],
    semantic: str,
) -> Part:
    half = (size[0] / 2, size[1] / 2, size[2] / 2)
    return Part(Shape.BOX, half, _transform(centre), material, colour, semantic)


def car_parts(size: tuple[float, float, float], colour: tuple[float, float, float], suv: bool) -> list[Part]:
    """Body box + cabin box + four wheels, inside the box of the given size (l, w, h)."""
    l, w, h = size
    radius = 0.37 if suv else 0.33
    clearance = 0.2
    body_top = -h / 2 + (0.62 if suv else 0.55) * h
    body_bottom = -h / 2 + clearance
    parts = [
        _box((0.0, 0.0, (body_top + body_bottom) / 2), (l, w, body_top - body_bottom), Material.PAINT, colour, "car")
    ]
    cabin_back, cabin_front = (-l / 2 + 0.25, l / 2 - 1.05) if suv else (-l / 2 + 0.85, l / 2 - 1.25)
    cabin_centre = ((cabin_back + cabin_front) / 2, 0.0, (body_top + h / 2) / 2)
    cabin_size = (cabin_front - cabin_back, w - 0.12, h / 2 - body_top)
    parts.append(_box(cabin_centre, cabin_size, Material.CABIN, colour, "car"))
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            centre = (sx * (l / 2 - 0.85), sy * (w / 2 - 0.13), -h / 2 + radius)
            offset = _transform(centre, _Y_AXIS_CYLINDER)
            parts.append(Part(Shape.CYLINDER, (radius, radius, 0.12), offset, Material.TIRE, (0.06, 0.06, 0.07), "car"))
    return parts


def pedestrian_parts(size: tuple[float, float, float], shirt: tuple[float, float, float]) -> list[Part]:
    """Legs box, torso box and a spherical head inside the box of the given size."""
    l, w, h = size
    legs_h, torso_h, head_r = 0.85 * h / 1.75, 0.62 * h / 1.75, 0.12
    parts = [
        _box((0.0, 0.0, -h / 2 + legs_h / 2), (0.25, 0.34, legs_h), Material.CLOTH, (0.15, 0.17, 0.3), "pedestrian"),
        _box((0.0, 0.0, -h / 2 + legs_h + torso_h / 2), (0.3, w, torso_h), Material.CLOTH, shirt, "pedestrian"),
    ]
    head = _transform((0.0, 0.0, h / 2 - head_r))
    parts.append(Part(Shape.SPHERE, (head_r, head_r, head_r), head, Material.SKIN, (0.85, 0.66, 0.52), "pedestrian"))
    return parts


SEDAN = (4.5, 1.8, 1.45)
SUV = (4.75, 1.95, 1.75)
PARKED_COLOURS: list[tuple[str, tuple[float, float, float]]] = [
    ("blue", (0.12, 0.25, 0.7)),
    ("green", (0.15, 0.5, 0.2)),
    ("silver", (0.62, 0.64, 0.66)),
    ("black", (0.08, 0.08, 0.09)),
    ("orange", (0.9, 0.45, 0.1)),
    ("purple", (0.4, 0.18, 0.5)),
    ("brown", (0.4, 0.26, 0.15)),
    ("teal", (0.1, 0.5, 0.5)),
]
FACADE_COLOURS: list[tuple[float, float, float]] = [
    (0.72, 0.62, 0.5),
    (0.6, 0.35, 0.28),
    (0.78, 0.76, 0.7),
    (0.5, 0.52, 0.56),
    (0.82, 0.72, 0.55),
    (0.55, 0.45, 0.4),
    (0.68, 0.7, 0.62),
]


def _dynamic_vehicles(config: SynthConfig, ego: LaneTrajectory) -> list[tuple[str, str, tuple, tuple, LaneTrajectory]]:
    """(description, semantic, size, colour, trajectory) of the moving actors."""
    v = config.ego_speed
    duration = max(config.duration, 1.0)
    oncoming_speed = 8.0
    pass_time = min(2.5, 0.6 * duration)
    change_duration = float(np.clip(0.7 * duration, 3.0, 5.0))
    change_start = float(np.clip(0.2 * duration, 0.3, 3.0))
    out = [
        (
            "white SUV driving ahead in the ego lane",
            "car",
            SUV,
            (0.93, 0.93, 0.91),
            LaneTrajectory(x0=ego.x0 + 22.0, speed=v + 0.3, y0=-1.75, z=SUV[2] / 2, surge=0.5, surge_period=5.0),
        ),
        (
            "red sedan oncoming in the opposite lane",
            "car",
            SEDAN,
            (0.8, 0.08, 0.07),
            LaneTrajectory(
                x0=ego.x0 + (v + oncoming_speed) * pass_time, speed=-oncoming_speed, y0=1.75, z=SEDAN[2] / 2
            ),
        ),
        (
            "yellow sedan changing from the outer lane into the ego lane",
            "car",
            SEDAN,
            (0.95, 0.78, 0.1),
            LaneTrajectory(
                x0=ego.x0 + 7.0,
                speed=v + 0.6,
                y0=-5.25,
                y1=-1.75,
                z=SEDAN[2] / 2,
                change_start=change_start,
                change_duration=change_duration,
            ),
        ),
    ]
    if config.pedestrian:
        size = (0.4, 0.55, 1.75)
        walker = LaneTrajectory(x0=ego.x0 + 14.0, speed=1.4, y0=-10.2, z=SIDEWALK_HEIGHT + size[2] / 2)
        description = "pedestrian in a green shirt walking on the right sidewalk"
        out.append((description, "pedestrian", size, (0.2, 0.6, 0.3), walker))
    return out


def build_street(config: SynthConfig) -> Street:
    """The deterministic street of ``config.seed`` with all objects, the ego trajectory and the rig."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    ego = LaneTrajectory(x0=0.0, speed=config.ego_speed, y0=-1.75, z=0.0, surge=0.3, surge_period=7.0)
    travel = float(ego.position(np.array([config.duration]))[0, 0])
    x_min, x_max = -40.0, travel + config.max_distance + 30.0
    objects: list[SceneObject] = []

    def add(semantic: str, description: str, dynamic: bool, size, parts, trajectory) -> None:
        objects.append(SceneObject(len(objects) + 1, semantic, description, dynamic, size, parts, trajectory))

    for description, semantic, size, colour, traj in _dynamic_vehicles(config, ego):
        parts = pedestrian_parts(size, colour) if semantic == "pedestrian" else car_parts(size, colour, size == SUV)
        add(semantic, description, True, size, parts, traj)

    _add_parked_cars(config, rng, add)
    length = x_max - x_min
    centre_x = (x_min + x_max) / 2
    road_parts = []  # the road is drawn by the ground plane; its box is for the ground truth only
    add("road", "road surface", False, (length, 2 * ROAD_HALF_WIDTH, 0.1), road_parts, StaticPose((centre_x, 0.0, 0.0)))
    width = SIDEWALK_OUTER - ROAD_HALF_WIDTH
    for side in (1.0, -1.0):
        y = side * (ROAD_HALF_WIDTH + width / 2)
        size = (length, width, SIDEWALK_HEIGHT)
        part = _box((0.0, 0.0, 0.0), size, Material.SIDEWALK, (0.62, 0.61, 0.58), "sidewalk")
        pose = StaticPose((centre_x, y, size[2] / 2))
        add("sidewalk", f"sidewalk {'left' if side > 0 else 'right'}", False, size, [part], pose)
    _add_buildings(rng, x_min, x_max, add)
    _add_street_furniture(rng, x_min, x_max, add)
    cameras = _rig_cameras(config)
    lidar = _transform((0.0, 0.0, 1.95))
    return Street(objects, ego, cameras, lidar, (x_min, x_max), config.seed)


def _add_parked_cars(config: SynthConfig, rng: np.random.Generator, add) -> None:
    slots = np.arange(6.0, 6.0 + 7.5 * 2 * max(config.num_parked_cars, 1), 7.5)
    chosen = rng.choice(len(slots), size=min(config.num_parked_cars, len(slots)), replace=False)
    for k, slot in enumerate(sorted(chosen)):
        side = 1.0 if k % 2 == 0 else -1.0
        name, colour = PARKED_COLOURS[int(rng.integers(len(PARKED_COLOURS)))]
        suv = bool(rng.random() < 0.3)
        size = SUV if suv else SEDAN
        x = float(slots[slot] + rng.uniform(-1.0, 1.0))
        y = side * (ROAD_HALF_WIDTH - 1.0)
        yaw = 0.0 if side < 0 else math.pi
        kind = "SUV" if suv else "sedan"
        where = "left" if side > 0 else "right"
        add(
            "car",
            f"parked {name} {kind} on the {where}",
            False,
            size,
            car_parts(size, colour, suv),
            StaticPose((x, y, size[2] / 2), yaw),
        )


def _add_buildings(rng: np.random.Generator, x_min: float, x_max: float, add) -> None:
    for side in (1.0, -1.0):
        x = x_min
        while x < x_max:
            frontage = float(rng.uniform(9.0, 20.0))
            depth = float(rng.uniform(8.0, 14.0))
            height = float(rng.uniform(7.0, 24.0))
            setback = float(rng.uniform(0.0, 1.5))
            red, green, blue = FACADE_COLOURS[int(rng.integers(len(FACADE_COLOURS)))]
            jitter = float(rng.uniform(0.9, 1.1))
            colour = (
                float(np.clip(red * jitter, 0.0, 1.0)),
                float(np.clip(green * jitter, 0.0, 1.0)),
                float(np.clip(blue * jitter, 0.0, 1.0)),
            )
            size = (frontage, depth, height)
            y = side * (SIDEWALK_OUTER + setback + depth / 2)
            part = _box((0.0, 0.0, 0.0), size, Material.FACADE, colour, "building")
            pose = StaticPose((x + frontage / 2, y, height / 2))
            add("building", f"building {'left' if side > 0 else 'right'}", False, size, [part], pose)
            x += frontage


def _add_street_furniture(rng: np.random.Generator, x_min: float, x_max: float, add) -> None:
    """Street lights and trees on both sidewalks, alternating, with jittered spacing."""
    for side in (1.0, -1.0):
        x = x_min + float(rng.uniform(0.0, 6.0))
        k = 0
        while x < x_max:
            y = side * (ROAD_HALF_WIDTH + 0.6)
            if k % 2 == 0:
                height = 6.0
                pole = Part(
                    Shape.CYLINDER,
                    (0.09, 0.09, height / 2),
                    _transform((0.0, 0.0, 0.0)),
                    Material.METAL,
                    (0.45, 0.47, 0.5),
                    "pole",
                )
                arm = _box(
                    (0.0, -side * 0.6, height / 2 - 0.1), (0.25, 1.3, 0.14), Material.METAL, (0.4, 0.42, 0.45), "pole"
                )
                add(
                    "pole",
                    "street light",
                    False,
                    (0.3, 1.5, height),
                    [pole, arm],
                    StaticPose((x, y - side * 0.0, SIDEWALK_HEIGHT + height / 2)),
                )
            else:
                trunk_h, crown = 2.6, float(rng.uniform(1.3, 1.8))
                height = trunk_h + 2 * crown - 0.4
                trunk_at = _transform((0.0, 0.0, -height / 2 + trunk_h / 2))
                trunk = Part(
                    Shape.CYLINDER, (0.16, 0.16, trunk_h / 2), trunk_at, Material.BARK, (0.35, 0.25, 0.16), "vegetation"
                )
                leaves = Part(
                    Shape.SPHERE,
                    (crown, crown, crown),
                    _transform((0.0, 0.0, height / 2 - crown)),
                    Material.FOLIAGE,
                    (0.18, 0.42, 0.14),
                    "vegetation",
                )
                add(
                    "vegetation",
                    "tree",
                    False,
                    (2 * crown, 2 * crown, height),
                    [trunk, leaves],
                    StaticPose((x, y, SIDEWALK_HEIGHT + height / 2)),
                )
            x += float(rng.uniform(8.0, 14.0))
            k += 1


_GL_TO_EGO = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""OpenGL camera axes (right, up, back) expressed in the ego frame (x forward, y left, z up) for a forward camera."""

_MOUNTS: dict[str, tuple[tuple[float, float, float], float]] = {
    "front": ((1.3, 0.0, 1.55), 0.0),
    "front_left": ((1.1, 0.35, 1.55), 55.0),
    "front_right": ((1.1, -0.35, 1.55), -55.0),
    "side_left": ((0.2, 0.5, 1.55), 100.0),
    "side_right": ((0.2, -0.5, 1.55), -100.0),
}
_PITCH_DOWN_DEG = 3.0


def _rig_cameras(config: SynthConfig) -> list[RigCamera]:
    cams = []
    pitch = math.radians(_PITCH_DOWN_DEG)
    cp, sp = math.cos(pitch), math.sin(pitch)
    r_pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])  # about +y: nose down for positive angles
    for name in config.camera_names:
        position, yaw_deg = _MOUNTS[name]
        r_yaw = planar_poses(np.zeros((1, 3)), np.array([math.radians(yaw_deg)]))[0, :3, :3]
        cams.append(RigCamera(name, _transform(position, r_yaw @ r_pitch @ _GL_TO_EGO)))
    return cams
