"""Cost of the object-wise deformation regularizers against one training step, as a table.

Builds the core trainer of the ``cpu`` preset on the embedded default street (generated into the cache on first
use; 160x96 training images), with ``--gaussians`` initial Gaussians, and times (median of ``--repeats`` after a
warm-up, on the CPU unless ``--device cuda``):

- one training step (render, losses, backward, optimiser and densification bookkeeping) as today, with every
  Gaussian in the deformation box going through the field;
- the same with static groups skipping the field (``deform_mask`` from :func:`deform_mask_from_groups`);
- the same plus the regularizers hooked into ``loss_dict`` at T times: the rendered time's deformation and the
  field evaluated at T - 1 extra times on the Gaussians the terms cover (what the proposed hook does);
- the regularizer functions alone (forward + backward) on given deformations at T times.

The cases are timed round robin (``--repeats`` rounds after one warm-up each; medians), so that load from other
processes on a shared machine falls on every case alike.

The groups are synthetic (no lifting here): fractions of the Gaussians are put into static groups (anywhere),
rigid and non-rigid dynamic groups (inside the deformation box, where traffic is), the rest stay unlabelled; costs
depend on these counts, not on which Gaussian is where.

    OMP_NUM_THREADS=1 python scripts/profile_regularizers.py
    python scripts/profile_regularizers.py --times 1 2 4 --out outputs/profile_regularizers.md
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.progress import track
from rich.table import Table

from semdyn.deform import Deformation
from semdyn.deform.regularizers import (
    GroupLabels,
    GroupRegularizerConfig,
    deform_mask_from_groups,
    group_regularizer_losses,
    sample_times,
)
from semdyn.eval.machine import describe_machine
from semdyn.train.presets import cpu_base_preset
from semdyn.train.trainer import Trainer


@dataclass
class ProfileConfig:
    """What to time."""

    gaussians: int = 40_000
    """Initial Gaussians of the cpu preset's scene (init.max_points; the trained cpu model ends near 46k)."""
    times: list[int] = field(default_factory=lambda: [1, 2, 4])
    """Numbers T of sampled times per step to time the regularizers at."""
    repeats: int = 7
    """Timed rounds (after one warm-up); each round runs every case once; the median is reported."""
    static_fraction: float = 0.55
    """Share of the Gaussians in static groups (road, building, sky, vegetation, pole)."""
    rigid_fraction: float = 0.15
    """Share of the Gaussians in rigid dynamic groups (vehicles), taken inside the deformation box."""
    nonrigid_fraction: float = 0.03
    """Share of the Gaussians in non-rigid dynamic groups (pedestrians), taken inside the deformation box."""
    groups: tuple[int, int, int] = (8, 16, 4)
    """Numbers of static, rigid and non-rigid groups."""
    device: str = "cpu"
    """cpu or cuda."""
    seed: int = 0
    """Seeds the labels and the sampled times."""
    out: Path | None = None
    """Also write the table (Markdown) here, atomically."""


def timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call of fn() in milliseconds (synchronising a GPU before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def synthetic_labels(
    cfg: ProfileConfig, means: torch.Tensor, in_box: torch.Tensor, gen: torch.Generator
) -> GroupLabels:
    """Random groups with the configured shares; dynamic groups only inside the deformation box."""
    n = means.shape[0]
    n_static, n_rigid, n_other = cfg.groups
    ids = torch.full((n,), -1, dtype=torch.int64)
    order_box = in_box.nonzero().squeeze(1)[torch.randperm(int(in_box.sum()), generator=gen)]
    k_rigid = min(int(cfg.rigid_fraction * n), len(order_box))
    k_other = min(int(cfg.nonrigid_fraction * n), len(order_box) - k_rigid)
    rigid_idx, other_idx = order_box[:k_rigid], order_box[k_rigid : k_rigid + k_other]
    ids[rigid_idx] = n_static + torch.randint(0, n_rigid, (k_rigid,), generator=gen)
    ids[other_idx] = n_static + n_rigid + torch.randint(0, n_other, (k_other,), generator=gen)
    free = (ids < 0).nonzero().squeeze(1)
    static_idx = free[torch.randperm(len(free), generator=gen)[: int(cfg.static_fraction * n)]]
    ids[static_idx] = torch.randint(0, n_static, (len(static_idx),), generator=gen)
    conf = torch.rand(n, generator=gen) * 0.6 + 0.4  # some static labels below the skip threshold
    kinds = [True] * n_static + [False] * (n_rigid + n_other)
    rigid = [False] * n_static + [True] * n_rigid + [False] * n_other
    dev = means.device
    return GroupLabels(ids.to(dev), conf.to(dev), torch.tensor(kinds, device=dev), torch.tensor(rigid, device=dev))


def main(cfg: ProfileConfig) -> None:
    console = Console()
    base = cpu_base_preset()
    model_cfg = dataclasses.replace(base.model, init=dataclasses.replace(base.model.init, max_points=cfg.gaussians))
    with tempfile.TemporaryDirectory() as tmp:
        train_cfg = dataclasses.replace(base, model=model_cfg, output_dir=Path(tmp), device=cfg.device, seed=cfg.seed)
        console.log("building the cpu preset's trainer (generates the default street on first use) ...")
        trainer = Trainer(train_cfg)
    model, device = trainer.model, trainer.device
    assert model.deform is not None
    params, box = model.params, model.deform.aabb
    n = model.num_gaussians
    gen = torch.Generator().manual_seed(cfg.seed)
    in_box = ((params["means"] >= box[0]) & (params["means"] <= box[1])).all(-1).cpu()
    labels = synthetic_labels(cfg, params["means"].detach().cpu(), in_box, gen)
    labels = GroupLabels(*(getattr(labels, k).to(device) for k in ("ids", "conf", "is_static", "is_rigid")))
    reg_cfg = GroupRegularizerConfig()
    skip = deform_mask_from_groups(labels, reg_cfg.static_skip_min_conf)
    # The Gaussians the terms cover: dynamic labelled ones, and static ones too doubtful to skip the field.
    covered = (labels.ids >= 0) & skip & in_box.to(device)
    counts = (
        f"{n:,} Gaussians, {int(in_box.sum()):,} in the deformation box, {int((~skip).sum()):,} skip the field, "
        f"{int(covered.sum()):,} covered by the regularizers"
    )
    console.log(counts)

    means = params["means"]
    plain_loss_dict = model.loss_dict

    def step_with(mask: torch.Tensor | None, t_count: int) -> Callable[[], object]:
        """A training step with this deform_mask and the regularizers at t_count times (0: none), hooked into
        loss_dict as the lead would: the rendered time's deformation plus t_count - 1 extra field evaluations."""

        def loss_dict(outputs: dict, gt_rgb: torch.Tensor, sparse_depth: torch.Tensor | None = None) -> dict:
            terms = plain_loss_dict(outputs, gt_rgb, sparse_depth)
            g = outputs["gaussians"]
            deformations = [Deformation(g["dx"], g["dr"], g["ds"])]
            extra = sample_times(t_count - 1, gen) if t_count > 1 else []
            deformations += [model.deformation_at(t, covered) for t in extra]
            return terms | group_regularizer_losses(reg_cfg, 10_000, means, deformations, labels)

        def run() -> object:
            model.deform_mask = mask
            model.loss_dict = loss_dict if t_count else plain_loss_dict  # type: ignore[method-assign]
            return trainer.train_step()

        return run

    def regularizers_only(t_count: int) -> Callable[[], object]:
        with torch.no_grad():
            fixed = [model.deformation_at(t, covered) for t in sample_times(t_count, gen)]

        def run() -> None:
            leaves = [Deformation(*(x.detach().requires_grad_(True) for x in (d.dx, d.dr, d.ds))) for d in fixed]
            losses = group_regularizer_losses(reg_cfg, 10_000, means.detach(), leaves, labels)
            sum(losses.values()).backward()

        return run

    cases: dict[str, Callable[[], object]] = {
        "training step, all Gaussians through the field (today)": step_with(None, 0),
        "training step, static groups skip the field": step_with(skip, 0),
    }
    for t_count in cfg.times:
        cases[f"training step, static skip + regularizers at T={t_count}"] = step_with(skip, t_count)
    for t_count in cfg.times:
        cases[f"regularizer functions alone, T={t_count} (fwd+bwd)"] = regularizers_only(t_count)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up
        fn()
    for _ in track(range(cfg.repeats), description="timing (round robin)", console=console):
        for name, fn in cases.items():  # interleaved, so that load from other processes hits every case alike
            samples[name].append(timed_ms(fn, device))
    model.deform_mask, model.loss_dict = None, plain_loss_dict  # type: ignore[method-assign]
    rows = [(name, statistics.median(v)) for name, v in samples.items()]
    step_ms = rows[0][1]

    title = f"semdyn regularizer profile ({describe_machine()}; {counts})"
    table = Table(title=title)
    for h in ("what", "ms (median)", "share of a training step"):
        table.add_column(h, justify="right")
    md = [title, "", "| what | ms (median) | share of a training step |", "|---|---|---|"]
    for name, ms in rows:
        cells = [name, f"{ms:.1f}", f"{100 * ms / step_ms:.1f} %"]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console.print(table)
    if cfg.out is not None:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = cfg.out.with_name(f".{cfg.out.name}.tmp{os.getpid()}")
        tmp.write_text("\n".join(md) + "\n")
        os.replace(tmp, cfg.out)
        console.log(f"wrote {cfg.out}")


if __name__ == "__main__":
    main(tyro.cli(ProfileConfig))
