"""Semantics in the training loop: ID maps per frame, lifting at chosen steps, labels into the strategy state.

:class:`SemanticLifter` is what :class:`semdyn.train.trainer.Trainer` holds when ``TrainConfig.semantics`` is set:

- ``masks="gt"``: the sequence's ground-truth instance masks are the ID maps; each instance of ``objects`` is a
  group, static from ``objects[].dynamic`` and rigid from its class (measures lifting apart from SAM's quality).
- ``masks="cache"``: the object-ID maps that ``scripts/extract_semantics.py`` wrote (dictionary object-IDs); after
  the vote, same-ID Gaussians are split into instances by 3D connectivity, static/rigid come from the dictionary.
  With ``instances="tracks"`` the maps' segments are also tracked across each camera's frames
  (:mod:`semdyn.semantics.tracking`), the vote is over track ids, and a connected component is split further where
  it holds tracks seen side by side in one view (two objects of one prompt).

At ``lift_start`` and every ``lift_every`` steps after it, every training view is rendered once without gradients,
the top-k contributors vote (:mod:`semdyn.semantics.lifting`), and ``group_ids``/``group_conf`` are written into the
strategy state (where densification carries them until the next lift). :meth:`SemanticLifter.group_labels` returns
:class:`semdyn.deform.regularizers.GroupLabels` (``ids [N]``, ``conf [N]``, ``is_static [G]``, ``is_rigid [G]``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from semdyn.deform.regularizers import GroupLabels
from semdyn.errors import DataFormatError, InputError
from semdyn.scene.nodes.base import BACKGROUND_ID, OBJECT_ID0
from semdyn.scene.promotion import regroup
from semdyn.scene.registration import Sweeps
from semdyn.scene.strategy import CLASS_IDS, NODE_IDS, set_labels
from semdyn.semantics.cache import read_cached_id_map
from semdyn.semantics.dictionary import DEFAULT_DICTIONARY, load_dictionary
from semdyn.semantics.feature_field import (
    LATENT_KEY,
    FeatureDecoder,
    FeatureFieldConfig,
    PixelTargets,
    feature_loss,
    render_latent,
)
from semdyn.semantics.groups import (
    SemanticGroups,
    groups_from_dictionary,
    groups_from_objects,
    labels_to_group_index,
)
from semdyn.semantics.instances import connected_components
from semdyn.semantics.lifting import LiftResult, RenderTopK, decide, lift_labels, lift_sparse_votes
from semdyn.semantics.sweep_labels import label_points
from semdyn.semantics.tracking import (
    TrackTable,
    split_by_conflicts,
    track_conflicts,
    track_objects,
    track_views,
)

if TYPE_CHECKING:
    from semdyn.data.scene_data import SceneData
    from semdyn.scene.dynamic import DynamicScene

log = logging.getLogger("semdyn")


@dataclass(frozen=True)
class SemanticsConfig:
    """Lifting of per-frame object-ID maps onto the Gaussians during training."""

    masks: Literal["gt", "cache"] = "gt"
    """gt: the sequence's ground-truth instance masks; cache: the object-ID maps of scripts/extract_semantics.py."""
    cache_dir: Path | None = None
    """masks=cache: the run folder extract_semantics printed (meta.json inside)."""
    dictionary: Path = DEFAULT_DICTIONARY
    """masks=cache: the object dictionary the ID maps were matched against (static/rigid flags per entry)."""
    lift_start: int = 500
    """First step at which labels are lifted (after the Gaussians have settled a little)."""
    lift_every: int = 2000
    """Lift again every this many steps (Gaussians move, split and die in between)."""
    topk: int = 8
    """Contributors per pixel that vote (at most 32)."""
    min_conf: float = 0.5
    """Gaussians whose winning share of their vote weight is below this stay unlabelled (-1)."""
    instance_voxel: float = 0.6
    """masks=cache: voxel edge (metres) of the 3D connectivity that splits one prompt's Gaussians into instances."""
    instance_min_size: int = 10
    """masks=cache: connected components with fewer Gaussians are left unlabelled."""
    instances: Literal["connectivity", "tracks"] = "tracks"
    """masks=cache: how one prompt's Gaussians become objects. connectivity: 3D connected components; tracks: the
    same components, split where the ID maps' segments, tracked across each camera's frames by mask IoU, show two
    objects of the prompt side by side in one view (static dictionary entries are not tracked)."""
    track_min_iou: float = 0.2
    """instances=tracks: the smallest mask IoU that links a segment to one of the previous frame of its camera."""
    feature_field: FeatureFieldConfig | None = None
    """The semantic feature field (needs masks=cache); None: off."""


def class_ids_of(group_ids: Tensor, group_classes: list[str], vocabulary: tuple[str, ...] | list[str]) -> Tensor:
    """[N] int64 index into ``vocabulary`` of the class of each Gaussian's group (-1 unlabelled or not in it)."""
    table = torch.tensor([vocabulary.index(c) if c in vocabulary else -1 for c in group_classes] + [-1])
    return table.to(group_ids.device)[torch.where(group_ids >= 0, group_ids, len(group_classes))]


@torch.no_grad()
def positions_at_anchor(model: DynamicScene, frame_times: Tensor) -> Tensor:
    """[N, 3] where each Gaussian is when it is most visible: its deformed centre at the frame time nearest its
    temporal-visibility anchor (normalised time 0.5 for models without visibility); the scene's own
    :meth:`~semdyn.scene.dynamic.DynamicScene.at_reference`."""
    return model.at_reference(frame_times)[1]


def load_cached_id_maps(cache_dir: Path, data: SceneData) -> Tensor:
    """[F, H, W] int64 object-ID maps of every frame of ``data`` from an extract_semantics run folder, subsampled
    to the training resolution as the instance masks are."""

    maps = []
    h, w = data.height, data.width
    for frame in data.sequence.frames:
        m = read_cached_id_map(cache_dir, frame.image_path)
        fy, fx = m.shape[0] // h, m.shape[1] // w
        if fy < 1 or fx < 1 or m.shape[0] != fy * h or m.shape[1] != fx * w:
            raise DataFormatError(frame.image_path, f"cached ID map {tuple(m.shape)} does not fit the {h}x{w} images")
        maps.append(m[fy // 2 :: fy, fx // 2 :: fx])
    return torch.stack(maps).to(torch.int64)


def _objects_groups(data: SceneData) -> SemanticGroups:
    """One group per object of the sequence's ``objects``. A sequence without objects is fine when its masks hold
    no instance (a drive in which the converter found nothing that moves: nothing is lifted, every Gaussian stays in
    the deformable node); masks with instances but no objects to name them are refused."""
    objs = data.sequence.objects
    if not objs:
        if any(bool((data.mask(i) > 0).any()) for i in range(data.num_frames)):
            raise DataFormatError(
                data.sequence.transforms_path,
                "the instance masks hold instances but 'objects' names none of them; add the objects list "
                "(id, class, dynamic) or train without --semantics.masks gt",
            )
        log.info("semantics: the sequence has no objects and its masks no instance: nothing to lift")
    return groups_from_objects([o.id for o in objs], [o.label for o in objs], [o.dynamic for o in objs])


def _cached_mask_source(run_dir: Path) -> str:
    """``sam`` or ``gt``: which masks an extract_semantics run folder was made from."""
    meta = run_dir / "meta.json"
    if not meta.is_file():
        raise DataFormatError(run_dir, "not an extract_semantics run folder (no meta.json)")
    return str(json.loads(meta.read_text())["options"]["masks"])


class SemanticLifter:
    """Holds the ID maps and the group table; lifts labels into a strategy state (see the module docstring)."""

    def __init__(self, config: SemanticsConfig, data: SceneData) -> None:
        self.config = config
        self.data = data
        if not 1 <= config.topk <= 32:
            raise InputError(f"--semantics.topk must be between 1 and 32, got {config.topk}")
        if config.masks == "gt":
            if data.instance_masks is None:
                raise DataFormatError(data.sequence.transforms_path, "--semantics.masks gt needs instance masks")
            self.id_maps = data.instance_masks  # [F, H, W] uint16, not copied: read a frame at a time
            self.groups: SemanticGroups | None = _objects_groups(data)
            self.dictionary = None
        elif config.masks == "cache":
            if config.cache_dir is None:
                raise InputError("--semantics.masks cache needs --semantics.cache-dir (a run of extract_semantics)")
            self.id_maps = load_cached_id_maps(Path(config.cache_dir), data)
            if _cached_mask_source(Path(config.cache_dir)) == "gt":  # ID maps are instance ids: groups as for gt
                self.groups, self.dictionary = _objects_groups(data), None
            else:
                self.dictionary = load_dictionary(config.dictionary)
                self.groups = None
                top = int(self.id_maps.max())
                if top > len(self.dictionary.entries):
                    raise DataFormatError(
                        config.dictionary,
                        f"has {len(self.dictionary.entries)} entries but the cached ID maps "
                        f"reach object-ID {top}; pass the dictionary they were extracted with",
                    )
        else:
            raise InputError(f"--semantics.masks must be gt or cache, got {config.masks!r}")
        if config.instances not in ("connectivity", "tracks"):
            raise InputError(f"--semantics.instances must be connectivity or tracks, got {config.instances!r}")
        self.tracks: TrackTable | None = None
        if self.dictionary is not None and config.instances == "tracks":
            self.tracks, self.track_conflicts = self._track_views()
        self.last_result: LiftResult | None = None
        self._sweep_groups: Tensor | None = None
        self.decoder: FeatureDecoder | None = None
        self.decoder_optimizer: torch.optim.Optimizer | None = None
        self.feature_targets: PixelTargets | None = None
        if config.feature_field is not None:
            if config.masks != "cache" or config.cache_dir is None:
                raise InputError("--semantics.feature-field needs --semantics.masks cache (the cached CLIP features)")
            self.feature_targets = PixelTargets(Path(config.cache_dir), data)

    def _track_views(self) -> tuple[TrackTable, Tensor]:
        """Tracks of the training views' ID maps (static entries untracked): the table (its maps ``[F, H, W]``
        indexed by frame, 0 outside the training views) and its conflicts ``[T + 1, T + 1]``."""
        c, d = self.config, self.data
        if not 0.0 < c.track_min_iou <= 1.0:
            raise InputError(f"--semantics.track-min-iou must be in (0, 1], got {c.track_min_iou}")
        assert self.dictionary is not None
        views = d.train_idx.tolist()
        static = [i + 1 for i, e in enumerate(self.dictionary.entries) if e.static]
        cameras = [d.sequence.frames[v].camera for v in views]
        table = track_views([self.id_maps[v] for v in views], cameras, d.times[views], c.track_min_iou, static)
        assert isinstance(self.id_maps, Tensor)  # the cached ID maps are read into memory (load_cached_id_maps)
        maps = torch.zeros_like(self.id_maps)
        maps[views] = table.maps
        table = TrackTable(maps=maps, entry=table.entry, tracked=table.tracked)
        log.info("semantics: %d tracks in %d training views", int(table.tracked.sum()), len(views))
        return table, track_conflicts(table)

    def attach(self, model: DynamicScene, device: torch.device, generator: torch.Generator | None = None) -> None:
        """Add the feature latent to the model's Gaussian parameters and build the decoder (feature field only)."""
        ff = self.config.feature_field
        if ff is None or self.feature_targets is None:
            return
        latent = 0.1 * torch.randn(model.num_gaussians, ff.latent_dim, generator=generator)
        model.add_gaussian_param(LATENT_KEY, latent, ff.latent_lr)
        self.decoder = FeatureDecoder(ff.latent_dim, self.feature_targets.dim, ff.hidden).to(device)
        self.decoder_optimizer = torch.optim.Adam(self.decoder.parameters(), lr=ff.decoder_lr)

    def loss_terms(
        self, model: DynamicScene, outputs: dict[str, Any], frame: int, batch: dict[str, Any]
    ) -> dict[str, Tensor]:
        """``{"feature": weight * (1 - cos)}`` of the decoded latent render against frame ``frame``'s CLIP targets;
        empty without a feature field."""
        ff = self.config.feature_field
        if ff is None or self.decoder is None or self.feature_targets is None:
            return {}
        h, w = batch["image"].shape[1:3]
        lat = render_latent(
            outputs["gaussians"], model.params[LATENT_KEY], batch["viewmats"], batch["Ks"], w, h, model.config.render
        )
        target, valid = self.feature_targets.target(frame)
        dev = lat.device
        return {"feature": ff.weight * feature_loss(self.decoder(lat), target[None].to(dev), valid[None].to(dev))}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers the trainer steps besides the Gaussians' (the feature decoder's)."""
        return [] if self.decoder_optimizer is None else [self.decoder_optimizer]

    def due(self, step: int) -> bool:
        return self.is_due(self.config, step)

    @staticmethod
    def is_due(c: SemanticsConfig, step: int) -> bool:
        """Whether labels are lifted after ``step`` training steps."""
        return step >= c.lift_start and (step - c.lift_start) % max(c.lift_every, 1) == 0

    @torch.no_grad()
    def lift(
        self,
        model: DynamicScene,
        state: dict[str, Any],
        device: torch.device,
        show_progress: bool = False,
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    ) -> None:
        """One pass over the training views; writes ``group_ids``/``group_conf`` into ``state``, then rebuilds the
        scene graph from them (:func:`semdyn.scene.promotion.regroup`: rigid objects, background, deformable) and
        writes the Gaussians' ``node_ids`` into ``state``. ``optimizers`` (by group name) have the Adam state of
        what changed reset."""
        d = self.data

        posed: dict[float, dict[str, Tensor]] = {}  # the Gaussians at the last time drawn: cameras share a time

        def render_topk(v: int) -> tuple[Tensor, Tensor]:
            vm, K = d.viewmats[v : v + 1].to(device), d.Ks[v : v + 1].to(device)
            t = float(d.times[v])
            if t not in posed:
                posed.clear()
                posed[t] = model.gaussians_at(t)
            out = model.render_gaussians(posed[t], vm, K, d.width, d.height, topk=self.config.topk)
            return out["topk_ids"], out["topk_weights"]

        views = d.train_idx.tolist()
        if self.dictionary is None:
            assert self.groups is not None  # GT: vote over every object (and 0 = sky / nothing)
            values = torch.cat([torch.zeros(1, dtype=torch.int64), self.groups.source_ids]).unique()
            res = lift_labels(
                render_topk, self.id_maps, views, model.num_gaussians, values, self.config.min_conf, show_progress
            )
            group_ids = labels_to_group_index(res.labels, self.groups.source_ids.to(res.labels.device))
        else:
            res, group_ids = self._lift_instances(model, render_topk, views, show_progress)
        self.last_result = res
        assert self.groups is not None
        conf = torch.where(group_ids >= 0, res.conf, torch.zeros_like(res.conf))
        set_labels(state, group_ids, conf)
        state[CLASS_IDS] = class_ids_of(group_ids, self.groups.class_names, d.sequence.semantic_classes)
        labelled = int((group_ids >= 0).sum())
        log.info(
            "semantics: lifted %d of %d Gaussians into %d groups", labelled, len(group_ids), self.groups.num_groups
        )
        state[NODE_IDS] = regroup(model, self.groups.labels(state), d.times, optimizers, self._sweeps())
        objects = model.objects.num_objects if model.objects is not None else 0
        members = int((state[NODE_IDS] >= OBJECT_ID0).sum())
        log.info("scene graph: %d rigid objects (%d Gaussians), %d in the background", objects, members,
                 int((state[NODE_IDS] == BACKGROUND_ID).sum()))  # fmt: skip

    def _sweeps(self) -> Sweeps | None:
        """The sequence's timed LiDAR points for placing the rigid objects, with each point's group where the ID
        maps name the groups (instance masks); None without timed points."""
        d = self.data
        if d.points is None or d.point_times is None:
            return None
        if self._sweep_groups is None and self.dictionary is None and self.groups is not None:
            distinct = torch.unique(d.times)
            window = 0.5 * float(torch.diff(distinct).min()) if distinct.numel() > 1 else 1.0
            values = label_points(
                d.points, d.point_times, d.times, d.viewmats, d.Ks, self.id_maps, d.train_idx.tolist(), window
            )
            self._sweep_groups = labels_to_group_index(values, self.groups.source_ids)
        return Sweeps(d.points, d.point_times, torch.linalg.inv(d.viewmats)[:, :3, 3], d.times, self._sweep_groups)

    def _lift_instances(
        self, model: DynamicScene, render_topk: RenderTopK, views: list[int], show_progress: bool
    ) -> tuple[LiftResult, Tensor]:
        """Dictionary ID maps: the vote (over entries, or over track ids), then instances by 3D connectivity, split
        by conflicting tracks for instances=tracks. Sets ``self.groups``; returns the vote and ``group_ids [N]``."""
        c, d = self.config, self.data
        assert self.dictionary is not None
        n = model.num_gaussians
        objects: tuple[Tensor, Tensor] | None = None  # instances=tracks: object [N], object conflicts
        if self.tracks is None:
            res = lift_labels(render_topk, self.id_maps, views, n, None, c.min_conf, show_progress)
        else:
            ids = torch.arange(self.tracks.num_tracks + 1)
            votes = lift_sparse_votes(render_topk, self.tracks.maps, views, n, ids, show_progress)
            dev, num_entries = votes.weight.device, len(self.dictionary.entries) + 1
            entry_votes = votes.collapse(self.tracks.entry.to(dev), num_entries)
            res = decide(entry_votes, torch.arange(num_entries, device=dev), min_conf=c.min_conf)
            objects = track_objects(votes, self.tracks, res.labels, self.track_conflicts)
        pos = positions_at_anchor(model, d.times)
        voxel = c.instance_voxel * d.normalization.scale
        group_ids, inst_label = connected_components(pos, res.labels, voxel, c.instance_min_size)
        if objects is not None:
            group_ids, part = split_by_conflicts(group_ids, *objects, c.instance_min_size)
            inst_label = inst_label[part]
        self.groups = groups_from_dictionary(self.dictionary, inst_label)
        return res, group_ids

    def group_labels(self, state: dict[str, Any]) -> GroupLabels | None:
        """``group_ids [N]``, ``group_conf [N]`` (from the strategy state), ``group_is_static [G]``,
        ``group_is_rigid [G]``; None before the first lift."""
        return None if self.groups is None else self.groups.labels(state)

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": None if self.groups is None else self.groups.state_dict()}
        if self.decoder is not None and self.decoder_optimizer is not None:
            out.update(decoder=self.decoder.state_dict(), decoder_optimizer=self.decoder_optimizer.state_dict())
        return out

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("groups") is not None:
            self.groups = SemanticGroups.from_state_dict(d["groups"])
        if self.decoder is not None and self.decoder_optimizer is not None and "decoder" in d:
            self.decoder.load_state_dict(d["decoder"])
            self.decoder_optimizer.load_state_dict(d["decoder_optimizer"])
