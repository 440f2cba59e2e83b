"""Tracking same-prompt masks across frames: stable ids, breaks, the IoU threshold, merging and splitting objects."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from semdyn.data.scene_data import load_scene
from semdyn.errors import InputError
from semdyn.scene.strategy import get_labels
from semdyn.semantics.lifting import lift_labels, lift_sparse_votes
from semdyn.semantics.tracking import (
    assign_objects,
    link_segments,
    merge_tracks,
    segment_iou,
    segment_map,
    shared_mass,
    split_by_conflicts,
    track_conflicts,
    track_sequence,
    track_views,
)
from semdyn.semantics.training import SemanticLifter, SemanticsConfig
from semdyn.train.trainer import Trainer
from tests.semantics.test_training import _config, gt_class_cache

H, W = 12, 24


def _box(m: torch.Tensor, y: int, x: int, value: int, h: int = 4, w: int = 4) -> None:
    m[y : y + h, x : x + w] = value


def _two_cars(frames: int = 5) -> torch.Tensor:
    """[F, H, W]: two entry-1 blobs moving right 1 px per frame, and an entry-7 strip (road) along the bottom."""
    maps = torch.zeros(frames, H, W, dtype=torch.int64)
    for f in range(frames):
        _box(maps[f], 1, 2 + f, 1)
        _box(maps[f], 6, 12 + f, 1)
        maps[f, -1] = 7
    return maps


def test_segments_split_one_id_into_its_blobs() -> None:
    seg, ids = segment_map(_two_cars(1)[0])
    assert ids.tolist() == [1, 1, 7]
    assert int(seg[2, 3]) != int(seg[7, 13]) and {int(seg[2, 3]), int(seg[7, 13])} == {1, 2}
    assert int(seg[-1, 0]) == 3 and int(seg[0, 0]) == 0
    seg_skip, ids_skip = segment_map(_two_cars(1)[0], skip=[7])
    assert ids_skip.tolist() == [1, 1] and int(seg_skip[-1, 0]) == 0


def test_two_same_class_blobs_keep_two_stable_tracks() -> None:
    maps = _two_cars()
    tracks, entry = track_sequence(maps, min_iou=0.2, skip=[7])
    assert entry.tolist() == [1, 1]
    top = {int(tracks[f, 2, 3 + f]) for f in range(5)}
    bottom = {int(tracks[f, 7, 13 + f]) for f in range(5)}
    assert len(top) == 1 and len(bottom) == 1 and top != bottom
    assert int((tracks[:, -1] != 0).sum()) == 0  # the skipped road is no track
    assert torch.equal(tracks > 0, maps == 1)


def test_a_blob_that_disappears_comes_back_as_a_new_track() -> None:
    maps = torch.zeros(5, H, W, dtype=torch.int64)
    for f in (0, 1, 3, 4):
        _box(maps[f], 2, 5 + f, 2)
    _box(maps[4], 7, 15, 2)  # a second blob appears in the last frame
    tracks, entry = track_sequence(maps)
    ids = [int(tracks[f, 3, 6 + f]) for f in (0, 1, 3, 4)]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[1] != ids[2]
    assert int(tracks[2].max()) == 0
    assert int(tracks[4, 8, 16]) not in ids and entry.tolist() == [2, 2, 2]


def test_the_iou_threshold_decides_a_link() -> None:
    # a 4x4 box shifted by 2 px: IoU = 8 / 24 = 1/3
    maps = torch.zeros(2, H, W, dtype=torch.int64)
    _box(maps[0], 2, 2, 1)
    _box(maps[1], 2, 4, 1)
    seg0, ids0 = segment_map(maps[0])
    seg1, ids1 = segment_map(maps[1])
    iou = segment_iou(seg0, 1, seg1, 1)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3]], dtype=torch.float64))
    assert link_segments(iou, ids0, ids1, 0.3) == [(0, 0)]
    assert link_segments(iou, ids0, ids1, 0.4) == []
    assert len(torch.unique(track_sequence(maps, 0.3)[0])) == 2  # 0 and one track
    assert len(torch.unique(track_sequence(maps, 0.4)[0])) == 3  # 0 and two tracks
    assert link_segments(iou, ids0, ids1 + 1, 0.1) == []  # different entries never link


def test_views_of_several_cameras_get_unique_ids_and_stuff_one_track() -> None:
    maps = _two_cars(4)
    order = [3, 0, 2, 1]  # views given out of time order, two cameras
    views = [maps[i] for i in order] + [maps[i] for i in range(4)]
    cameras = ["front"] * 4 + ["left"] * 4
    times = [float(i) for i in order] + [float(i) for i in range(4)]
    table = track_views(views, cameras, times, untracked=[7])
    assert table.num_tracks == 5 and table.entry.tolist() == [0, 7, 1, 1, 1, 1]
    assert table.tracked.tolist() == [False, False, True, True, True, True]
    assert bool((table.maps[:, -1] == 1).all())  # the road: track 1 in every view of both cameras
    front = {int(table.maps[k, 2, 3 + order[k]]) for k in range(4)}
    left = {int(table.maps[4 + k, 2, 3 + k]) for k in range(4)}
    assert len(front) == 1 and len(left) == 1 and front != left
    conflicts = track_conflicts(table)
    front_bottom = int(table.maps[0, 7, 13 + order[0]])
    assert bool(conflicts[next(iter(front)), front_bottom]) and not bool(conflicts[next(iter(front)), next(iter(left))])
    assert not bool(conflicts[1].any())  # untracked entries conflict with nothing


def test_mismatched_map_shapes_are_an_input_error() -> None:
    with pytest.raises(InputError, match=r"one shape.*\(12, 24\).*\(12, 25\)"):
        track_views([torch.zeros(H, W), torch.zeros(H, W + 1)], ["a", "a"], [0.0, 1.0])
    with pytest.raises(InputError, match="2 ID maps but 1 cameras"):
        track_views([torch.zeros(H, W), torch.zeros(H, W)], ["a"], [0.0, 1.0])
    with pytest.raises(InputError, match="min_iou"):
        link_segments(torch.zeros(1, 1), torch.ones(1), torch.ones(1), 0.0)


def test_tracks_that_share_gaussians_merge_unless_they_conflict() -> None:
    # Gaussians 0-2 seen by tracks 1 and 2 (one car from two cameras), Gaussian 3 by track 3 only.
    gaussian = torch.tensor([0, 0, 1, 1, 2, 3])
    track = torch.tensor([1, 2, 1, 2, 1, 3])
    share = torch.tensor([0.5, 0.5, 0.75, 0.25, 1.0, 1.0])
    a, b, mass = shared_mass(gaussian, track, share, 4)
    assert a.tolist() == [1] and b.tolist() == [2]
    torch.testing.assert_close(mass, torch.tensor([0.75]))
    none = torch.zeros(4, 4, dtype=torch.bool)
    obj, _ = merge_tracks(a, b, mass, none)
    assert obj.tolist() == [0, 1, 1, 3]
    assert assign_objects(gaussian, obj[track], share, 5).tolist() == [1, 1, 1, 3, -1]
    conflict = none.clone()
    conflict[1, 2] = conflict[2, 1] = True
    obj_c, obj_conflicts = merge_tracks(a, b, mass, conflict)
    assert obj_c.tolist() == [0, 1, 2, 3] and bool(obj_conflicts[1, 2])
    assert assign_objects(gaussian, obj_c[track], share, 5).tolist() == [1, 1, 1, 3, -1]  # 0: tie, first wins
    # a conflict is inherited: 3 conflicts with 2, so once 1 and 2 are one object, 3 cannot join it
    a3, b3, m3 = torch.tensor([1, 1]), torch.tensor([2, 3]), torch.tensor([2.0, 1.0])
    conflict3 = none.clone()
    conflict3[2, 3] = conflict3[3, 2] = True
    assert merge_tracks(a3, b3, m3, conflict3)[0].tolist() == [0, 1, 1, 3]


def test_components_split_only_between_conflicting_objects() -> None:
    component = torch.tensor([0, 0, 0, 0, 1, 1, -1])
    obj = torch.tensor([5, 5, 6, 7, 6, 8, 5])
    conflicts = torch.zeros(9, 9, dtype=torch.bool)
    conflicts[5, 6] = conflicts[6, 5] = True  # 5 and 6 were side by side in one view; 7 and 8 conflict with nothing
    part, part_component = split_by_conflicts(component, obj, conflicts)
    assert part.tolist() == [0, 0, 1, 0, 2, 2, -1]
    assert part_component.tolist() == [0, 0, 1]
    part2, pc2 = split_by_conflicts(component, obj, conflicts, min_size=2)
    assert part2.tolist() == [0, 0, -1, 0, 1, 1, -1] and pc2.tolist() == [0, 1]


def test_sparse_votes_equal_the_dense_vote() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 4, (3, 5, 6), generator=g)
    ids = torch.randint(-1, 20, (3, 1, 5, 6, 4), generator=g)
    weights = torch.rand(3, 1, 5, 6, 4, generator=g)

    def render_topk(v: int) -> tuple[torch.Tensor, torch.Tensor]:
        return ids[v], weights[v]

    dense = lift_labels(render_topk, maps, [0, 1, 2], 20)
    sparse = lift_sparse_votes(render_topk, maps, [0, 1, 2], 20)
    assert sparse.values.tolist() == [0, 1, 2, 3] and bool((sparse.weight > 0).all())
    table = sparse.collapse(torch.arange(4), 4)
    total = torch.zeros(20).index_add_(0, ids[ids >= 0], weights[ids >= 0])
    torch.testing.assert_close(table.sum(1), total)
    torch.testing.assert_close(table.sum(1), dense.total_weight)
    merged = sparse.collapse(torch.tensor([0, 1, 1, 1]), 2)  # labels 1-3 as one column
    torch.testing.assert_close(merged[:, 1], table[:, 1:].sum(1))


def test_track_groups_refine_the_connected_components_in_the_trainer(
    tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path
) -> None:
    """Class-level maps (gt-class): instances=tracks tracks the moving entries only, and each of its groups lies
    within one group of instances=connectivity lifted from the same model."""
    data = load_scene(tiny_scene, 2)
    cache = gt_class_cache(tiny_scene, tmp_path / "c", tiny_clip_config)
    sem = SemanticsConfig(masks="cache", cache_dir=cache, lift_start=1, lift_every=100, topk=4, instances="tracks")
    trainer = Trainer(_config(tiny_scene, tmp_path, 1, sem), data)
    trainer.train()
    tracks = trainer.semantics.tracks
    assert tracks is not None and int(tracks.tracked.sum()) >= 2
    static = {i + 1 for i, e in enumerate(trainer.semantics.dictionary.entries) if e.static}
    assert not any(int(e) in static for e in tracks.entry[tracks.tracked])
    # both lifts from one model (a lift rebuilds the scene graph, so each gets its own copy)
    model_tracks, model_conn = copy.deepcopy(trainer.model), copy.deepcopy(trainer.model)
    state_tracks, state = dict(trainer.strategy_state), dict(trainer.strategy_state)
    trainer.semantics.lift(model_tracks, state_tracks, trainer.device)
    labels = trainer.semantics.groups.labels(state_tracks)
    assert labels is not None and int((labels.ids >= 0).sum()) > 0
    conn = SemanticLifter(dataclasses.replace(sem, instances="connectivity"), data)
    conn.lift(model_conn, state, trainer.device)
    conn_ids = get_labels(state)[0]
    for k in torch.unique(labels.ids[labels.ids >= 0]).tolist():
        inside = torch.unique(conn_ids[labels.ids == k])
        assert len(inside) == 1 and int(inside[0]) >= 0
        assert trainer.semantics.groups.class_names[k] == conn.groups.class_names[int(inside[0])]
    with pytest.raises(InputError, match="track-min-iou"):
        SemanticLifter(dataclasses.replace(sem, track_min_iou=0.0), data)
