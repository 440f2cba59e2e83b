"""Semantics in the trainer: lifting writes labels into the strategy state, group facts come from the objects,
labels follow densification, and checkpoints keep them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from semdyn.data.scene_data import load_scene
from semdyn.errors import DataFormatError
from semdyn.export.checkpoint import load_run
from semdyn.scene.strategy import DensifyConfig, get_labels
from semdyn.semantics.clip import ClipConfig
from semdyn.semantics.extract import ExtractConfig, extract_sequence
from semdyn.semantics.training import SemanticsConfig
from semdyn.train.presets import cpu_preset
from semdyn.train.trainer import Trainer


def _config(scene: Path, out: Path, steps: int, semantics: SemanticsConfig):
    base = cpu_preset()
    model = dataclasses.replace(
        base.model, densify=DensifyConfig(refine_start_iter=2, refine_every=3, refine_stop_iter=1000)
    )
    return dataclasses.replace(
        base,
        data=scene,
        output_dir=out,
        max_steps=steps,
        steps_per_save=steps,
        log_every=1000,
        model=model,
        semantics=semantics,
    )


def gt_class_cache(scene: Path, out: Path, clip_config: Path) -> Path:
    """Class-level ID maps (every car pixel is the one "car" prompt) cached by extract_semantics with a random
    tiny CLIP; the run folder."""
    clip = ClipConfig(model_name=clip_config.stem, model_config=clip_config)
    config = ExtractConfig(data=scene, output=out, masks="gt-class", clip=clip, random_weights=True, device="cpu")
    return Path(extract_sequence(config, show_progress=False)["run_dir"])


def test_gt_lifting_in_the_trainer(tiny_scene: Path, tmp_path: Path) -> None:
    data = load_scene(tiny_scene, 2)
    sem = SemanticsConfig(lift_start=3, lift_every=4, topk=4, min_conf=0.0)
    trainer = Trainer(_config(tiny_scene, tmp_path, 8, sem), data)
    assert trainer.group_labels() is None
    trainer.train()  # lifts at steps 3 and 7, densifies at 3 and 6
    labels = trainer.group_labels()
    assert labels is not None
    n, g = trainer.model.num_gaussians, len(data.sequence.objects)
    assert labels.ids.shape == (n,) and labels.conf.shape == (n,)
    assert labels.is_static.shape == (g,) and labels.is_rigid.shape == (g,)
    assert int((labels.ids >= 0).sum()) > 0.2 * n
    assert int(labels.ids.max()) < g
    groups = trainer.semantics.groups
    objs = {o.id: o for o in data.sequence.objects}
    for k in range(g):
        o = objs[int(groups.source_ids[k])]
        assert bool(labels.is_static[k]) == (not o.dynamic)
        assert bool(labels.is_rigid[k]) == (o.label != "pedestrian")
    classes = trainer.strategy_state["class_ids"]  # carried by densification like the group ids
    vocab = data.sequence.semantic_classes
    assert classes.shape == (n,) and bool(((classes >= 0) == (labels.ids >= 0)).all())
    for i in torch.nonzero(labels.ids >= 0)[:50, 0].tolist():
        assert vocab[int(classes[i])] == groups.class_names[int(labels.ids[i])]
    # a pixel-level check of the vote: visible Gaussians' labels agree with the masks they project into
    view = int(data.train_idx[0])
    out = trainer.model(
        data.viewmats[view : view + 1],
        data.Ks[view : view + 1],
        data.width,
        data.height,
        float(data.times[view]),
        topk=1,
    )
    top = out["topk_ids"][0, ..., 0]
    sel = (top >= 0) & (labels.ids[top.clamp_min(0)] >= 0) & (data.mask(view) > 0)
    pred = groups.source_ids[labels.ids[top[sel]]]
    assert (pred == data.mask(view)[sel]).float().mean() > 0.5  # the graph moved some since the lift

    # the checkpoint keeps labels and groups
    again = Trainer(_config(tiny_scene, tmp_path, 8, sem), data)
    again.load(trainer.last_checkpoint)
    restored = again.group_labels()
    assert restored is not None and torch.equal(restored.ids, labels.ids)
    assert torch.equal(restored.is_static, labels.is_static)
    assert get_labels(again.strategy_state) is not None
    assert again.model.groups is not None  # the scene has them at once (the regularizers' groups)
    run = load_run(trainer.last_checkpoint, "cpu", data)  # and so has a run loaded for rendering or export
    assert run.model.groups is not None and torch.equal(run.model.groups.ids, labels.ids)
    assert torch.equal(run.model.node_ids_now(), trainer.model.node_ids_now())  # the graph as trained


def test_cached_gt_maps_are_read_back(tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path) -> None:
    """masks=cache reads what extract_semantics wrote; a run made from GT masks holds instance ids, read back
    exactly and grouped by the sequence's objects."""
    data = load_scene(tiny_scene, 2)
    clip = ClipConfig(model_name=tiny_clip_config.stem, model_config=tiny_clip_config)
    ex = extract_sequence(
        ExtractConfig(
            data=tiny_scene, output=tmp_path / "cache", masks="gt", clip=clip, random_weights=True, device="cpu"
        ),
        show_progress=False,
    )
    sem = SemanticsConfig(masks="cache", cache_dir=Path(ex["run_dir"]), lift_start=1, lift_every=100, topk=4)
    trainer = Trainer(_config(tiny_scene, tmp_path, 1, sem), data)
    torch.testing.assert_close(trainer.semantics.id_maps, data.instance_masks.to(torch.int64))  # read back exactly
    trainer.train()
    assert trainer.group_labels() is not None


def test_one_prompt_two_cars_are_two_groups(tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path) -> None:
    """Class-level ID maps (masks=gt-class: every car pixel is the one "car" prompt) become one group per car."""
    from semdyn.tools.grouping import gt_instances

    data = load_scene(tiny_scene, 2)
    cache = gt_class_cache(tiny_scene, tmp_path / "c", tiny_clip_config)
    sem = SemanticsConfig(masks="cache", cache_dir=cache, lift_start=1, lift_every=100, topk=4)
    trainer = Trainer(_config(tiny_scene, tmp_path, 1, sem), data)
    trainer.train()
    labels, groups = trainer.group_labels(), trainer.semantics.groups
    car_groups = [k for k, c in enumerate(groups.class_names) if c == "car"]
    assert len(car_groups) >= 2  # one prompt, several cars
    assert all(not bool(labels.is_static[k]) for k in car_groups)
    assert all(groups.class_names[k] != "road" or bool(labels.is_static[k]) for k in range(groups.num_groups))
    # each car group lies (mostly) within one ground-truth car box
    gt = gt_instances(trainer.model, data, margin=0.2)
    for k in car_groups:
        ids = gt[labels.ids == k]
        ids = ids[ids >= 0]
        if len(ids) >= 10:
            assert torch.bincount(ids).max() >= 0.8 * len(ids)


def test_a_sequence_without_objects_trains_with_nothing_lifted(tiny_scene: Path, tmp_path: Path) -> None:
    """A drive in which the converter found nothing that moves (no objects, empty masks) trains: the lift finds
    no group and every Gaussian stays deformable; masks with instances but no objects are refused in one sentence."""
    data = load_scene(tiny_scene, 2)
    assert data.instance_masks is not None
    sequence = dataclasses.replace(data.sequence, objects=())
    empty = dataclasses.replace(data, sequence=sequence, instance_masks=torch.zeros_like(data.instance_masks))
    sem = SemanticsConfig(lift_start=3, lift_every=4, topk=4, min_conf=0.0)
    trainer = Trainer(_config(tiny_scene, tmp_path / "empty", 8, sem), empty)
    trainer.train()
    labels = trainer.group_labels()
    assert labels is None or not bool((labels.ids >= 0).any())
    assert trainer.model.objects is None or trainer.model.objects.num_objects == 0
    unnamed = dataclasses.replace(data, sequence=sequence)
    with pytest.raises(DataFormatError, match="names none of them"):
        Trainer(_config(tiny_scene, tmp_path / "unnamed", 8, sem), unnamed).train()
