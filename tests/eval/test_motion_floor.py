"""The benchmark's motion errors of the ground truth: zero for a car's own returns, above zero as soon as the road
it stands on is scored as part of its box."""

from __future__ import annotations

import math

import torch

from semdyn.data.object_track import ObjectTrack
from semdyn.eval.motion_floor import motion_floor


def _car_and_road(with_road: bool):
    """A 4 x 2 x 1.5 m car driving 10 m/s along x over 1 s (11 frames), its box's bottom on the road (z = 0); its
    returns inside the box, road returns at z = 0 under it (instance 9) where asked."""
    frames = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    poses = torch.eye(4, dtype=torch.float64).repeat(11, 1, 1)
    poses[:, 0, 3] = 10.0 * frames
    poses[:, 2, 3] = 0.75
    car = ObjectTrack(1, "car", True, torch.tensor([4.0, 2.0, 1.5], dtype=torch.float64), frames, poses)
    g = torch.Generator().manual_seed(0)
    pts, times, inst = [], [], []
    for j, t in enumerate(frames.tolist()):
        body = (torch.rand(30, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([3.6, 1.6, 1.0]).double()
        body[:, 2] += 0.8
        body[:, 0] += float(poses[j, 0, 3])
        pts.append(body), times.append(torch.full((30,), t, dtype=torch.float64)), inst.append(torch.ones(30))
        if with_road:
            road = (torch.rand(10, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([3.6, 1.6, 0.0]).double()
            road[:, 0] += float(poses[j, 0, 3])
            pts.append(road), times.append(torch.full((10,), t, dtype=torch.float64)), inst.append(torch.full((10,), 9))
    return torch.cat(pts), torch.cat(times), torch.cat(inst).long(), [car], frames


def test_a_cars_own_returns_score_zero() -> None:
    floor = motion_floor(*_car_and_road(with_road=False))
    assert floor.trajectory_error < 1e-9 and floor.rigidity_error < 1e-9
    assert floor.in_boxes == 330 and floor.foreign == 0 and math.isnan(floor.foreign_height_max)


def test_the_road_under_a_box_is_scored_as_the_car() -> None:
    floor = motion_floor(*_car_and_road(with_road=True))
    assert floor.foreign == 110 and floor.foreign_height_max == 0.0
    assert floor.trajectory_error > 0.5 and floor.rigidity_error > 0.5


def test_the_script_names_a_sequence_without_returns_in_one_line(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "motion_floor.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "Traceback" not in done.stderr, (done.stdout, done.stderr)
