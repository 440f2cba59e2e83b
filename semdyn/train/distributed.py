"""Data parallel training on ``torch.distributed``, launched by ``torchrun`` (no launcher of semdyn's own).

Every rank holds the whole scene and renders its own cameras of the step; :func:`all_reduce_gradients` sums the
gradients of every optimised parameter (Gaussians, deformation field, sky, object trajectories, semantic decoder)
over the ranks, and the densification statistics are summed the same way, so every rank takes the same optimiser
step and the same densification decisions and the Gaussians stay identical. NCCL on GPUs, gloo on CPUs.

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous (``MASTER_ADDR``/``MASTER_PORT``);
without them (a plain ``semdyn-train``) everything here is a no-op of one rank.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from semdyn.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0
    """0..world_size-1; rank 0 writes checkpoints, logs and renders."""
    world_size: int = 1
    """Number of processes (GPUs)."""
    local_rank: int = 0
    """Rank within this node (its GPU index)."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the environment holds a torchrun rendezvous of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (once per process) and pick the rank's device: ``cuda:LOCAL_RANK``
    for a CUDA device, the CPU otherwise. Without torchrun: one rank and ``device`` unchanged."""
    if not launched_by_torchrun():
        return DistContext(), device
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except (KeyError, ValueError) as err:
        raise InputError(f"torchrun environment incomplete or malformed (RANK, WORLD_SIZE, LOCAL_RANK): {err}") from err
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPUs; "
                "give torchrun --nproc-per-node at most the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local), device


def _group_params(params: Iterable[Tensor]) -> list[Tensor]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def all_reduce_gradients(params: Iterable[Tensor], ctx: DistContext) -> None:
    """Sum the gradients of ``params`` over the ranks, in place (one flat buffer per dtype and device).

    A parameter keeps ``grad = None`` only where no rank has a gradient for it (as one process over all the ranks'
    cameras would); where some rank has one the others join with zeros.
    """
    if not ctx.enabled:
        return
    plist = _group_params(params)
    if not plist:
        return
    device = plist[0].device
    has = torch.tensor([p.grad is not None for p in plist], dtype=torch.int32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    grads = []
    for p, any_rank in zip(plist, has.tolist()):
        if not any_rank:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    all_reduce_tensors(grads, ctx)


def all_reduce_tensors(tensors: list[Tensor], ctx: DistContext, op: str = "sum") -> None:
    """Reduce ``tensors`` over the ranks in place (``sum`` or ``max``), flattened into one buffer per dtype/device."""
    if not ctx.enabled or not tensors:
        return
    reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
    buckets: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.dtype, t.device), []).append(t)
    for group in buckets.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=reduce_op)
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def broadcast_params(params: Iterable[Tensor], ctx: DistContext) -> None:
    """Copy rank 0's values of ``params`` to every rank (the start of a run: identical scenes)."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for p in _group_params(params):
            dist.broadcast(p.data, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a torchrun worker)."""
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "all_reduce_tensors",
    "barrier",
    "broadcast_params",
    "launched_by_torchrun",
    "setup",
    "shutdown",
]
