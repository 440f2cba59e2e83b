"""The plain training loop (no nerfstudio): a batch of cameras per step, gsplat densification, atomic checkpoints.

Step s trains on B = ``batch_size`` x world size cameras: the camera slots ``s * B .. s * B + B - 1`` of a stream
fixed by the seed (a fresh permutation of the training frames per epoch), so a run resumed from a checkpoint
continues exactly as the uninterrupted run would have. Each camera is rendered and backpropagated on its own with its
loss divided by B (the gradients add up to those of the batch's mean loss), the densification statistics are
gathered per camera and summed, and every learning rate is multiplied by sqrt(B) (Grendel-GS's scaling rule).

Under ``torchrun`` (:mod:`semdyn.train.distributed`) rank r takes the slots ``r * batch_size ..`` of each step,
the gradients and densification statistics are summed over the ranks, and rank 0 alone writes the run folder;
the result equals one process with ``batch_size`` x world size (the random draws of a camera's loss terms and of
the densification are seeded by the step and the camera's slot, not by the process, whenever B > 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from semdyn.config_io import config_to_json
from semdyn.data.scene_data import SceneData, load_scene
from semdyn.deform.regularizers import GroupLabels, check_labels
from semdyn.errors import InputError, SemdynError
from semdyn.ops import resolve_device
from semdyn.scene.build import build_scene, scene_init_from_data
from semdyn.scene.dynamic import DynamicSceneConfig
from semdyn.scene.gaussians import PARAM_KEYS, make_optimizers, means_lr_scheduler
from semdyn.scene.strategy import NODE_IDS, densify_pre_backward, densify_statistics, densify_step, make_strategy
from semdyn.semantics.training import SemanticLifter, SemanticsConfig
from semdyn.shapes import shape_checks, shape_checks_enabled
from semdyn.synth import SynthConfig, ensure_scene
from semdyn.train import distributed
from semdyn.train.options import validate_train_config
from semdyn.train.resume import (
    FINGERPRINT_KEY,
    NORMALIZATION_KEY,
    check_resume_fits,
    normalization_to_dict,
    read_train_checkpoint,
    sequence_fingerprint,
)
from semdyn.train.run_dir import checkpoint_step, claim_run_dir, run_checkpoints

log = logging.getLogger("semdyn")


class TrainingDivergedError(SemdynError, FloatingPointError):
    """A loss term became NaN or infinite."""


@dataclass
class TrainConfig:
    """A training run of the core trainer."""

    data: Path | None = None
    """Sequence folder (transforms.json inside). None: the synthetic default street, generated into the cache
    ($SEMDYN_CACHE or ~/.cache/semdyn) on first use."""
    synth: SynthConfig = field(default_factory=SynthConfig)
    """The synthetic scene used when data is None."""
    output_dir: Path = Path("outputs")
    """Runs are written to output_dir/experiment_name."""
    experiment_name: str = "semdyn"
    """Name of the run folder."""
    max_steps: int = 30_000
    """Training steps (batch_size x world-size images each)."""
    batch_size: int = 1
    """Cameras per step on each process (under torchrun: per GPU); the step's batch B is this times the world size.
    Gradients are summed over the batch (each camera's loss / B) and every learning rate is scaled by sqrt(B)."""
    downscale: int = 1
    """Integer image downscale factor."""
    cache_mb: float | None = None
    """None: hold every image (uint8) and mask (uint16) in host memory. A number: read them from disk when used
    through a cache of this many MiB, the next step's images decoded ahead (memory that does not grow with the
    sequence: for long sequences, and for torchrun, where every rank holds its own copy)."""
    seed: int = 0
    """Seeds the initialisation and the order of training images."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    steps_per_save: int = 1000
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep only the newest this many checkpoints."""
    log_every: int = 250
    """Log a line with the losses every this many steps (the progress bar updates every step)."""
    load_dir: Path | None = None
    """Resume: a run folder (its newest checkpoint) or a checkpoint file."""
    overwrite: bool = False
    """Start again in a run folder that already holds a run (its checkpoints, renders and metrics are removed);
    without it (or --load-dir) such a folder is refused."""
    model: DynamicSceneConfig = field(default_factory=DynamicSceneConfig)
    """The model."""
    semantics: SemanticsConfig | None = None
    """Lift object-ID maps onto the Gaussians every few thousand steps (labels for the object-wise regularizers);
    None: no semantics."""

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.experiment_name


def image_order(seed: int, step: int, n: int) -> int:
    """Which training frame (0..n-1) step ``step`` uses: a seeded permutation per epoch, stateless."""
    epoch, k = divmod(step, n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return int(torch.randperm(n, generator=g)[k])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Builds the data, model, optimisers and strategy from a :class:`TrainConfig` and trains."""

    def __init__(self, config: TrainConfig, data: SceneData | None = None) -> None:
        validate_train_config(config)
        self.config = config
        self.dist, self.device = distributed.setup(resolve_device(config.device))
        self.global_batch = config.batch_size * self.dist.world_size
        """B: cameras per step over all ranks."""
        if data is None:
            path = config.data if config.data is not None else ensure_scene(config.synth, show_progress=True)
            data = load_scene(path, config.downscale, cache_mb=config.cache_mb)
        self.data = data
        if len(data.train_idx) == 0:
            raise InputError(f"{data.sequence.transforms_path}: no training frames")
        torch.manual_seed(config.seed)
        g = torch.Generator().manual_seed(config.seed)
        self.model = build_scene(config.model, scene_init_from_data(data), self.device, g)
        self.scene_scale = data.scene_scale
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.history: list[dict[str, float]] = []
        self.semantics = SemanticLifter(config.semantics, data) if config.semantics is not None else None
        if self.semantics is not None:
            self.semantics.attach(self.model, self.device, g)  # the feature latent, when configured
            for opt in self.semantics.optimizers():
                self._scale_lrs(opt)
        self._build_optimizers()
        distributed.broadcast_params(self._optimised_params(), self.dist)  # identical scenes on every rank

    def _build_optimizers(self) -> None:
        cfg = self.config.model
        self.optimizers = make_optimizers(self.model.params, cfg.lrs, self.scene_scale, self.model.extra_lrs())
        self.extra_optimizers = {
            name: torch.optim.Adam(params, lr=lr, eps=1e-15) for name, (params, lr) in self.model.param_groups().items()
        }
        for opt in [*self.optimizers.values(), *self.extra_optimizers.values()]:
            self._scale_lrs(opt)
        self.scheduler = means_lr_scheduler(self.optimizers["means"], cfg.lrs, max(self.config.max_steps, 1))
        self.strategy, self.strategy_state = make_strategy(cfg.densify, scene_scale=self.scene_scale)

    def _scale_lrs(self, optimizer: torch.optim.Optimizer) -> None:
        """Multiply the optimiser's learning rates by sqrt(B) (Grendel-GS: B cameras per step)."""
        if self.global_batch > 1:
            for group in optimizer.param_groups:
                group["lr"] *= math.sqrt(self.global_batch)

    def _all_optimizers(self) -> list[torch.optim.Optimizer]:
        semantic = self.semantics.optimizers() if self.semantics is not None else []
        return [*self.optimizers.values(), *self.extra_optimizers.values(), *semantic]

    def _optimised_params(self) -> list[torch.Tensor]:
        """Every tensor an optimiser steps (Gaussians, field, sky, trajectories, decoder), in a fixed order."""
        return [p for opt in self._all_optimizers() for group in opt.param_groups for p in group["params"]]

    def step_frames(self, step: int) -> list[tuple[int, int]]:
        """``(slot, frame index)`` of this rank's cameras at ``step`` (slots ``step * B + rank * batch_size ..``)."""
        n, b = len(self.data.train_idx), self.config.batch_size
        first = step * self.global_batch + self.dist.rank * b
        return [(j, int(self.data.train_idx[image_order(self.config.seed, j, n)])) for j in range(first, first + b)]

    @contextlib.contextmanager
    def _seeded(self, step: int, slot: int) -> Generator[None, None, None]:
        """With B > 1, torch's random draws inside the block are seeded by (seed, step, slot): the same on whichever
        rank the camera is rendered (slot -1: the densification). With B = 1 the global stream runs on, as always."""
        if self.global_batch == 1:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(((self.config.seed * 1_000_003 + step) * 1_000_033 + slot + 1) % 2**62)
            yield

    # ------------------------------------------------------------------ one step
    def frame_batch(self, index: int) -> dict[str, Any]:
        """Camera, time and ground truth of frame ``index`` on the training device (C = 1)."""
        d, dev = self.data, self.device
        depth = d.depth([index])
        return dict(
            viewmats=d.viewmats[index : index + 1].to(dev),
            Ks=d.Ks[index : index + 1].to(dev),
            t=float(d.times[index]),
            image=d.image(index)[None].to(dev),
            depth=None if depth is None else depth.to(dev),
        )

    def train_step(self) -> dict[str, float]:
        """One step over this rank's cameras; returns their mean loss terms and the Gaussian count."""
        step, batch = self.step, self.global_batch
        if self.semantics is not None:  # densification changes N: hand the scene the labels of the current Gaussians
            self.sync_groups()
        sums: dict[str, float] = {}
        stats = None
        self.data.prefetch([i for _, i in self.step_frames(step + 1)])  # decoded while this step trains
        for slot, idx in self.step_frames(step):
            with self._seeded(step, slot):
                b = self.frame_batch(idx)
                out = self.model(b["viewmats"], b["Ks"], self.data.width, self.data.height, b["t"], step=step)
                terms = self.model.loss_dict(out, b["image"], b["depth"], step=step)
                if self.semantics is not None:
                    terms.update(self.semantics.loss_terms(self.model, out, idx, b))
            for name, value in terms.items():
                if not torch.isfinite(value):
                    raise TrainingDivergedError(
                        f"training diverged at step {step}: loss term '{name}' is {value.item()}; {self._last_good()}"
                    )
            loss = cast(torch.Tensor, sum(terms.values()))  # never the empty sum: loss_dict always has the rgb term
            params, state = self.model.params, self.strategy_state
            densify_pre_backward(self.strategy, params, self.optimizers, state, step, out["meta"])
            (loss / batch if batch > 1 else loss).backward()
            stats = densify_statistics(self.strategy, params, out["meta"], step, batch, stats)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            sums["loss"] = sums.get("loss", 0.0) + loss.item()
        distributed.all_reduce_gradients(self._optimised_params(), self.dist)
        if stats is not None:
            distributed.all_reduce_tensors([stats["grad2d"], stats["count"]], self.dist, "sum")
            if "radii" in stats:
                distributed.all_reduce_tensors([stats["radii"]], self.dist, "max")
        self._check_gradients(step)
        for opt in self._all_optimizers():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.scheduler.step()
        with self._seeded(step, -1):
            densify_step(
                self.strategy,
                self.model.params,
                self.optimizers,
                self.strategy_state,
                step,
                out["meta"],
                lr=cast(float, self.scheduler.get_last_lr()[0]),  # float rates (make_optimizers), never tensors
                statistics=stats,
            )
        self.step += 1
        n = self.config.batch_size
        return {k: v / n for k, v in sums.items()} | {"gaussians": self.model.num_gaussians}

    def _check_gradients(self, step: int) -> None:
        """Stop before a non-finite gradient reaches the parameters (one sum per tensor: cheap)."""
        for name, p in self.model.named_parameters():
            if p.grad is not None and not torch.isfinite(p.grad.sum()):
                raise TrainingDivergedError(
                    f"training diverged at step {step}: the gradient of '{name}' is not finite; {self._last_good()}"
                )

    def _last_good(self) -> str:
        return f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"

    # ------------------------------------------------------------------ loop
    def train(self) -> Path:
        """Train to ``max_steps`` (from the resumed step, if any); returns the final checkpoint. Holds the run
        folder meanwhile (:func:`~semdyn.train.run_dir.claim_run_dir`: a lock, no mixing with another run); under
        torchrun rank 0 holds it and writes, the other ranks train alongside."""
        if not self.dist.is_main:
            return self._train()
        with claim_run_dir(self.config.run_dir, self.config.load_dir, self.config.overwrite):
            return self._train()

    def _train(self) -> Path:
        cfg = self.config
        main = self.dist.is_main
        if main:
            (cfg.run_dir / "config.json").write_text(json.dumps(config_to_json(cfg), indent=2))
        t0, start = time.perf_counter(), self.step
        columns = (
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False, disable=not main) as progress:
            task = progress.add_task("train", total=cfg.max_steps, completed=self.step, info="")
            check = shape_checks_enabled()  # the hot path checks its shapes once, and again after each lift
            while self.step < cfg.max_steps:
                with shape_checks(check):
                    record = self.train_step()
                check = False
                if self.semantics is not None and self.semantics.due(self.step):
                    optimizers = self.optimizers | self.extra_optimizers
                    with self._seeded(self.step, -2):  # every rank lifts the same labels
                        self.semantics.lift(self.model, self.strategy_state, self.device, optimizers=optimizers)
                    check = shape_checks_enabled()
                self.history.append(record | {"step": self.step})
                info = f"loss {record['loss']:.4f}  {record['gaussians']:,} Gaussians"
                progress.update(task, info=info)
                if main and self.step % cfg.log_every == 0:
                    rate = (self.step - start) / max(time.perf_counter() - t0, 1e-9)
                    log.info("step %d/%d  %s  %.1f it/s", self.step, cfg.max_steps, info, rate)
                progress.update(task, completed=self.step)
                if self.step % cfg.steps_per_save == 0 or self.step == cfg.max_steps:
                    self.save()
        if self.semantics is not None:  # the last steps may have densified: evaluation sees the current labels
            self.sync_groups()
        self.train_seconds = time.perf_counter() - t0
        if main:
            log.info("trained %d steps in %.1f s (to step %d)", self.step - start, self.train_seconds, self.step)
        if self.last_checkpoint is None:  # never: max_steps >= 1 saves at the last step, a finished run was loaded
            raise SemdynError(f"training of {cfg.run_dir} ended without a checkpoint")
        return self.last_checkpoint

    def sync_groups(self) -> None:
        """Hand the scene the current Gaussians' labels and nodes from the strategy state."""
        self.model.set_groups(self.group_labels(), self.strategy_state.get(NODE_IDS))

    def group_labels(self) -> GroupLabels | None:
        """What the object-wise regularizers read: ``group_ids [N]``, ``group_conf [N]`` (strategy state),
        ``group_is_static [G]``, ``group_is_rigid [G]``; None without semantics or before the first lift."""
        return None if self.semantics is None else self.semantics.group_labels(self.strategy_state)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "global_batch": self.global_batch,
            "model": self.model.state_dict(),
            "param_shapes": {k: tuple(v.shape) for k, v in self.model.params.items()},
            "graph_shapes": self.model.graph_shapes(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra_optimizers": {k: o.state_dict() for k, o in self.extra_optimizers.items()},
            "scheduler": self.scheduler.state_dict(),
            "strategy_state": self.strategy_state,
            "torch_rng": torch.get_rng_state(),
            "semantics": self.semantics.state_dict() if self.semantics is not None else None,
            "config": config_to_json(self.config),
            FINGERPRINT_KEY: sequence_fingerprint(self.data),
            NORMALIZATION_KEY: normalization_to_dict(self.data.normalization),
        }

    def save(self) -> Path:
        """Write ``checkpoints/step-XXXXXXX.pt`` atomically and keep the newest ``keep_checkpoints`` (rank 0; the
        other ranks, whose state is the same, only note the path)."""
        folder = self.config.run_dir / "checkpoints"
        path = folder / f"step-{self.step:07d}.pt"
        if not self.dist.is_main:
            self.last_checkpoint = path
            return path
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(self.state_dict(), path)
        self.last_checkpoint = path
        # Only this run's line (steps up to now) is pruned, and never the file just written.
        ours = [p for p in run_checkpoints(self.config.run_dir) if (checkpoint_step(p) or 0) <= self.step]
        for old in ours[: -self.config.keep_checkpoints]:
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def load(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save` (the Gaussian count may differ from the initial one)."""
        ckpt_path, ckpt = read_train_checkpoint(path, self.device)
        check_resume_fits(ckpt_path, ckpt, self.config, self.data)
        saved_batch = int(ckpt.get("global_batch", 1))
        if saved_batch != self.global_batch:
            raise InputError(
                f"{ckpt_path} was trained with {saved_batch} cameras per step (--batch-size x processes), this run has "
                f"{self.global_batch}; resume with the same batch (its learning rates and camera order depend on it)"
            )
        self.model.resize_params_to({k: torch.Size(s) for k, s in ckpt["param_shapes"].items()})
        self.model.resize_graph_to(ckpt.get("graph_shapes", {}))
        self.model.load_state_dict(ckpt["model"])
        self._build_optimizers()
        for k, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        for k, opt in self.extra_optimizers.items():
            opt.load_state_dict(ckpt["extra_optimizers"][k])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.strategy_state = ckpt["strategy_state"]
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        if self.semantics is not None and ckpt.get("semantics") is not None:
            self.semantics.load_state_dict(ckpt["semantics"])
        if self.semantics is not None:
            labels = self.group_labels()
            if labels is not None:
                check_labels(labels, self.model.num_gaussians, self.device, values=True)
            self.sync_groups()
        self.step = int(ckpt["step"])
        self.last_checkpoint = ckpt_path
        if self.dist.is_main:
            log.info("resumed from %s at step %d", ckpt_path, self.step)


__all__ = ["PARAM_KEYS", "TrainConfig", "Trainer", "TrainingDivergedError", "image_order"]
