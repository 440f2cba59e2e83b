"""Densification through gsplat's strategies, with per-Gaussian labels that follow the Gaussians.

semdyn never grows or prunes Gaussians itself: :func:`make_strategy` builds gsplat's
``DefaultStrategy`` (3DGS clone / split / prune / opacity reset) or ``MCMCStrategy`` (3DGS-MCMC
relocate / add / noise), and :func:`densify_pre_backward` / :func:`densify_step` call them.

Labels. Each Gaussian may carry an object/group id (int64, -1 = none) and a label confidence
(float) in the strategy state, ``state["group_ids"]`` and ``state["group_conf"]`` ([N] each), set
with :func:`set_labels` and read with :func:`get_labels`. How they survive each gsplat operation
(gsplat 1.4.0, ``gsplat/strategy/ops.py``):

- ``duplicate``: every tensor in the state is extended with ``cat([v, v[sel]])``: a clone gets its
  parent's label.
- ``split``: ``cat([v[rest], v[sel].repeat(2)])``: both children get the parent's label (the parent
  itself is removed).
- ``remove``: ``v[keep]``: pruned Gaussians' labels go with them.
- ``reset_opa``: touches no state.
- ``relocate`` / ``sample_add`` (MCMC): ``MCMCStrategy`` calls them with an *empty* state (``state={}``),
  so labels in the state would silently fall out of step with the parameters; and if they were passed,
  ``relocate`` would zero the sources' labels (``v[sampled_idxs] = 0``) and ``sample_add`` would append
  zeros (as float32). :class:`LabelledMCMCStrategy` therefore adds, for the duration of one
  ``step_post_backward``, a tracer parameter holding each Gaussian's index (float64, exact below
  2**53) with a no-op optimiser: gsplat's ops move it like every other parameter
  (``p[dead] = p[sampled]`` in relocate, ``cat([p, p[sampled]])`` in sample_add), so afterwards it
  says which old Gaussian each slot was copied from, and the labels are gathered with it. A
  relocated or added Gaussian thus has its source's label.

CPU. ``DefaultStrategy`` runs unchanged on the CPU with :func:`semdyn.render.render`'s meta. Two
calls in ``MCMCStrategy`` are CUDA kernels (they try to JIT-build gsplat's extension and fail):
``gsplat.relocation.compute_relocation`` (in relocate and sample_add) and
``gsplat.quat_scale_to_covar_preci`` (in ``inject_noise_to_position``). For CPU parameters,
:class:`LabelledMCMCStrategy` swaps the names ``compute_relocation`` and ``quat_scale_to_covar_preci``
inside ``gsplat.strategy.ops`` for :func:`compute_relocation_reference` (written here from the
3DGS-MCMC paper, Eq. 9) and gsplat's own PyTorch reference ``_quat_scale_to_covar_preci`` for that
one call, and restores them afterwards (not thread-safe; CUDA parameters never patch anything).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import gsplat.strategy.ops as _gsplat_ops
import torch
from gsplat.strategy import DefaultStrategy, MCMCStrategy
from torch import Tensor

from semdyn.errors import InputError

GROUP_IDS = "group_ids"
"""State key of the per-Gaussian object/group ids, int64 [N] (-1 = unlabelled)."""
GROUP_CONF = "group_conf"
"""State key of the per-Gaussian label confidences, float32 [N]."""
NODE_IDS = "node_ids"
"""State key of each Gaussian's scene-graph node, int64 [N] (:mod:`semdyn.scene.nodes.base`): densification inside a
node stays in that node, because gsplat carries the key like the labels."""
CLASS_IDS = "class_ids"
"""State key of each Gaussian's class, int64 [N] index into the sequence's ``semantic_classes`` (-1 none)."""

LABEL_KEYS = (GROUP_IDS, GROUP_CONF, NODE_IDS, CLASS_IDS)
"""Every per-Gaussian key semdyn keeps in a strategy state (each follows its Gaussian through densification)."""

GaussianParams = dict[str, torch.nn.Parameter] | torch.nn.ParameterDict
"""The Gaussian parameters as gsplat's strategies take them (replaced in place): a dict, or the scene's ParameterDict
(which the type stubs do not make a MutableMapping)."""


def _gsplat_optimizers(optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, torch.optim.Optimizer]:
    """``optimizers`` as gsplat's annotation names it: it only reads the entries (and changes the optimisers in them),
    so any mapping does, e.g. ``dict[str, Adam]`` from :func:`semdyn.scene.gaussians.make_optimizers`."""
    return cast(dict[str, torch.optim.Optimizer], optimizers)


_TRACER = "_semdyn_source_index"

_GSPLAT_RELOCATION = _gsplat_ops.compute_relocation
_GSPLAT_COVAR = _gsplat_ops.quat_scale_to_covar_preci


@dataclass(frozen=True)
class DensifyConfig:
    """Which gsplat densification strategy runs, and its main thresholds (gsplat's defaults)."""

    kind: Literal["default", "mcmc"] = "default"
    """default: 3DGS clone/split/prune with opacity resets; mcmc: 3DGS-MCMC relocation with a budget."""
    refine_start_iter: int = 500
    """No refinement at or before this step."""
    refine_stop_iter: int = 15_000
    """No refinement from this step on (gsplat's MCMC default is 25_000)."""
    refine_every: int = 100
    """Refine every this many steps."""
    reset_every: int = 3000
    """default only: clamp opacities to 2 * prune_opa every this many steps."""
    pause_refine_after_reset: int = 0
    """default only: skip refinement for this many steps after an opacity reset."""
    prune_opa: float = 0.005
    """default only: Gaussians with opacity below this are pruned."""
    grow_grad2d: float = 0.0002
    """default only: Gaussians whose mean image-plane gradient (normalised to [-1, 1] screen units) exceeds
    this are cloned (small) or split (large)."""
    grow_scale3d: float = 0.01
    """default only: largest scale / scene_scale at or below which a Gaussian is cloned rather than split."""
    grow_scale2d: float = 0.05
    """default only: screen radius / image size above which a Gaussian is split (while refine_scale2d_stop_iter)."""
    prune_scale3d: float = 0.1
    """default only: largest scale / scene_scale above which a Gaussian is pruned (after the first reset)."""
    prune_scale2d: float = 0.15
    """default only: screen radius / image size above which a Gaussian is pruned (while refine_scale2d_stop_iter)."""
    refine_scale2d_stop_iter: int = 0
    """default only: use the screen-size criteria before this step (0 = never, as 3DGS in practice)."""
    absgrad: bool = False
    """default only: use absolute gradients (AbsGS; raise grow_grad2d to ~0.0008). Needs a renderer that
    fills ``means2d.absgrad`` (gsplat's rasterization with absgrad=True; semdyn.render does not yet)."""
    revised_opacity: bool = False
    """default only: opacity of split children from arXiv:2404.06109."""
    cap_max: int = 1_000_000
    """mcmc only: the number of Gaussians grows by 5% per refinement up to this."""
    noise_lr: float = 5e5
    """mcmc only: scale of the position noise, times the current means learning rate."""
    min_opacity: float = 0.005
    """mcmc only: Gaussians with opacity at or below this are relocated."""
    verbose: bool = False
    """Print what each refinement did."""


def make_strategy(
    config: DensifyConfig = DensifyConfig(), scene_scale: float = 1.0
) -> tuple[DefaultStrategy | LabelledMCMCStrategy, dict[str, Any]]:
    """gsplat's strategy for ``config.kind`` and its running state.

    Args:
        config: strategy options.
        scene_scale: scene radius (metres); DefaultStrategy's 3D scale thresholds are relative to it.

    Returns:
        ``(strategy, state)``: a ``gsplat.strategy.DefaultStrategy`` or a :class:`LabelledMCMCStrategy`,
        and the state dict to pass to every step (add labels to it with :func:`set_labels`).
    """
    if config.kind == "default":
        strategy: DefaultStrategy | LabelledMCMCStrategy = DefaultStrategy(
            prune_opa=config.prune_opa,
            grow_grad2d=config.grow_grad2d,
            grow_scale3d=config.grow_scale3d,
            grow_scale2d=config.grow_scale2d,
            prune_scale3d=config.prune_scale3d,
            prune_scale2d=config.prune_scale2d,
            refine_scale2d_stop_iter=config.refine_scale2d_stop_iter,
            refine_start_iter=config.refine_start_iter,
            refine_stop_iter=config.refine_stop_iter,
            reset_every=config.reset_every,
            refine_every=config.refine_every,
            pause_refine_after_reset=config.pause_refine_after_reset,
            absgrad=config.absgrad,
            revised_opacity=config.revised_opacity,
            verbose=config.verbose,
        )
        return strategy, strategy.initialize_state(scene_scale=scene_scale)
    if config.kind == "mcmc":
        strategy = LabelledMCMCStrategy(
            cap_max=config.cap_max,
            noise_lr=config.noise_lr,
            refine_start_iter=config.refine_start_iter,
            refine_stop_iter=config.refine_stop_iter,
            refine_every=config.refine_every,
            min_opacity=config.min_opacity,
            verbose=config.verbose,
        )
        return strategy, strategy.initialize_state()
    raise InputError(f"make_strategy: config.kind must be 'default' or 'mcmc', got {config.kind!r}")


def set_labels(state: MutableMapping[str, Any], ids: Tensor, conf: Tensor | None = None) -> None:
    """Store per-Gaussian labels in a strategy state, where gsplat's strategies carry them.

    Args:
        state: the state from :func:`make_strategy`.
        ids: [N] object/group ids (any integer dtype; stored as int64; -1 = unlabelled).
        conf: [N] label confidences (stored as float32), or None for ones.
    """
    if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
        raise InputError(f"set_labels: ids must be an integer tensor of shape [N], got {ids!r}")
    if conf is None:
        conf = torch.ones(ids.shape, device=ids.device)
    if not isinstance(conf, Tensor) or conf.shape != ids.shape or not conf.is_floating_point():
        raise InputError(f"set_labels: conf must be a float tensor of shape {list(ids.shape)} like ids")
    if conf.device != ids.device:
        raise InputError(f"set_labels: conf is on {conf.device} but ids is on {ids.device}")
    state[GROUP_IDS] = ids.detach().to(torch.int64).clone()
    state[GROUP_CONF] = conf.detach().to(torch.float32).clone()


def get_labels(state: Mapping[str, Any]) -> tuple[Tensor, Tensor] | None:
    """``(group_ids [N] int64, group_conf [N] float32)`` from a strategy state, or None if never set."""
    if not isinstance(state.get(GROUP_IDS), Tensor):
        return None
    return state[GROUP_IDS], state[GROUP_CONF]


def _check_labels(params: GaussianParams, state: Mapping[str, Any], where: str) -> None:
    n = params["means"].shape[0]
    for key in LABEL_KEYS:
        v = state.get(key)
        if isinstance(v, Tensor) and v.shape[0] != n:
            raise InputError(f"{where}: state[{key!r}] has {v.shape[0]} entries but there are {n} Gaussians")


def densify_pre_backward(
    strategy: DefaultStrategy | MCMCStrategy,
    params: GaussianParams,
    optimizers: Mapping[str, torch.optim.Optimizer],
    state: dict[str, Any],
    step: int,
    info: dict[str, Any],
) -> None:
    """Call before ``loss.backward()``: lets the strategy keep the gradient of ``info["means2d"]``.

    ``info`` is :attr:`semdyn.render.RenderOutput.meta` (gsplat's meta layout, non-packed).
    """
    strategy.step_pre_backward(params, _gsplat_optimizers(optimizers), state, step, info)


def densify_step(
    strategy: DefaultStrategy | MCMCStrategy,
    params: GaussianParams,
    optimizers: Mapping[str, torch.optim.Optimizer],
    state: dict[str, Any],
    step: int,
    info: dict[str, Any],
    lr: float | None = None,
    statistics: Mapping[str, Tensor] | None = None,
) -> None:
    """Call after ``loss.backward()``; gsplat's simple_trainer then steps the optimisers (Gaussians this
    call creates have no gradient yet, so Adam leaves them alone on that step).

    May replace the tensors in ``params``, the optimisers' parameter groups and the state's
    per-Gaussian tensors (labels included); re-read them afterwards.

    Args:
        strategy, state: from :func:`make_strategy`.
        params: the Gaussian parameters, one optimiser each in ``optimizers``.
        step: the training step (0-based).
        info: the render's meta (``means2d`` with its gradient, ``radii [C, N]``, ``width``, ...).
        lr: the current learning rate of ``means``; required by MCMC (scales its position noise).
        statistics: DefaultStrategy's running statistics of this step, gathered with :func:`densify_statistics`
            (several cameras, several ranks); ``info``'s gradient is then not read. None: from ``info`` (one call).
    """
    _check_labels(params, state, "densify_step")
    if isinstance(strategy, MCMCStrategy):
        if lr is None:
            raise InputError("densify_step: lr (the current means learning rate) is required by the MCMC strategy")
        strategy.step_post_backward(params, _gsplat_optimizers(optimizers), state, step, info, lr=lr)
        return
    if isinstance(strategy, DefaultStrategy) and strategy.absgrad:
        if getattr(info.get(strategy.key_for_gradient), "absgrad", None) is None:
            raise InputError(
                "densify_step: absgrad=True needs info['means2d'].absgrad, which this renderer did not fill"
            )
    if statistics is not None and isinstance(strategy, DefaultStrategy) and step < strategy.refine_stop_iter:
        with _statistics_given(strategy, state, statistics):
            strategy.step_post_backward(params, _gsplat_optimizers(optimizers), state, step, info)
        return
    strategy.step_post_backward(params, _gsplat_optimizers(optimizers), state, step, info)


STAT_KEYS = ("grad2d", "count", "radii")
"""DefaultStrategy's running statistics in the state (``radii`` only with ``refine_scale2d_stop_iter > 0``)."""


def densify_statistics(
    strategy: DefaultStrategy | MCMCStrategy,
    params: GaussianParams,
    info: dict[str, Any],
    step: int,
    n_cameras: int,
    into: dict[str, Tensor] | None = None,
) -> dict[str, Tensor] | None:
    """One rendered camera's share of DefaultStrategy's running statistics (after its ``backward``), added into
    ``into`` (and returned): ``grad2d [N]`` and ``count [N]`` summed, ``radii [N]`` the maximum. None for MCMC
    (it keeps no statistics) and from ``refine_stop_iter`` on.

    For a step over several cameras rendered (and backpropagated) one at a time, with each camera's loss divided by
    ``n_cameras``: gsplat normalises the screen gradient by the cameras of one call (``info["n_cameras"]``), so
    ``n_cameras`` here is the batch, and the sum over the cameras equals what one call over all of them records.
    Hand the sum (over the ranks too, :func:`semdyn.train.distributed.all_reduce_tensors`) to :func:`densify_step`.
    """
    if not isinstance(strategy, DefaultStrategy) or step >= strategy.refine_stop_iter:
        return into
    n = params["means"].shape[0]
    device = params["means"].device
    if into is None:
        into = {"grad2d": torch.zeros(n, device=device), "count": torch.zeros(n, device=device)}
        if strategy.refine_scale2d_stop_iter > 0:
            into["radii"] = torch.zeros(n, device=device)
    tmp: dict[str, Any] = {"grad2d": torch.zeros(n, device=device), "count": torch.zeros(n, device=device)}
    tmp["radii"] = torch.zeros(n, device=device) if strategy.refine_scale2d_stop_iter > 0 else None
    strategy._update_state(params, tmp, {**info, "n_cameras": n_cameras}, packed=False)
    into["grad2d"] += tmp["grad2d"]
    into["count"] += tmp["count"]
    if "radii" in into:
        if tmp["radii"] is None:
            raise InputError(
                "densify_statistics: into has 'radii' but this strategy keeps none (refine_scale2d_stop_iter is 0)"
            )
        torch.maximum(into["radii"], tmp["radii"], out=into["radii"])
    return into


@contextlib.contextmanager
def _statistics_given(
    strategy: DefaultStrategy, state: dict[str, Any], stats: Mapping[str, Tensor]
) -> Generator[None, None, None]:
    """Within the block the strategy's running statistics are ``state``'s plus ``stats`` and its own update (from
    ``info``) is skipped: the decisions of ``step_post_backward`` from statistics gathered elsewhere."""
    for key, value in stats.items():
        if state.get(key) is None:
            state[key] = torch.zeros_like(value)
        if key == "radii":
            torch.maximum(state[key], value, out=state[key])
        else:
            state[key] += value
    strategy._update_state = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del strategy._update_state


@dataclass
class LabelledMCMCStrategy(MCMCStrategy):
    """gsplat's ``MCMCStrategy``, unchanged, plus two things (see the module docstring):

    - per-Gaussian labels in the state follow ``relocate`` / ``sample_add`` (source's label);
    - on CPU parameters, the two CUDA kernels it calls are replaced by PyTorch references.
    """

    def step_post_backward(
        self,
        params: GaussianParams,
        optimizers: MutableMapping[str, torch.optim.Optimizer],
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        lr: float,
    ) -> None:
        keys = [k for k in LABEL_KEYS if isinstance(state.get(k), Tensor)]
        on_cuda = params["means"].is_cuda
        with contextlib.ExitStack() as stack:
            if not on_cuda:
                stack.enter_context(_cpu_reference_ops())
            source = stack.enter_context(_source_tracer(params, optimizers)) if keys else None
            super().step_post_backward(params, _gsplat_optimizers(optimizers), state, step, info, lr=lr)
        if source is not None:
            index = source[0]
            for k in keys:
                state[k] = state[k][index.to(state[k].device)]


@contextlib.contextmanager
def _source_tracer(
    params: GaussianParams, optimizers: MutableMapping[str, torch.optim.Optimizer]
) -> Generator[list[Tensor], None, None]:
    """Add a parameter holding each Gaussian's index while gsplat moves the parameters; on exit, remove it
    and put into the yielded list the int64 [N'] index of the old Gaussian each new slot was copied from."""
    n = params["means"].shape[0]
    tracer = torch.nn.Parameter(torch.arange(n, dtype=torch.float64, device=params["means"].device))
    params[_TRACER] = tracer
    optimizers[_TRACER] = torch.optim.SGD([tracer], lr=0.0)  # stateless: gsplat's optimizer_fn has nothing to do
    out: list[Tensor] = []
    try:
        yield out
    finally:
        out.append(params[_TRACER].detach().round().to(torch.int64))
        del params[_TRACER]
        del optimizers[_TRACER]


@torch.no_grad()
def compute_relocation_reference(
    opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor
) -> tuple[Tensor, Tensor]:
    """Opacity and scale of each of ``ratios`` copies that together replace one Gaussian (3DGS-MCMC, Eq. 9).

    Kheradmand et al., "3D Gaussian Splatting as Markov Chain Monte Carlo" (arXiv:2404.09591): a
    Gaussian of opacity o split into n copies keeps its rendered footprint when each copy has

        o' = 1 - (1 - o) ** (1 / n)
        S' = o / (sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)**k o'**(k+1) / sqrt(k+1)) * S

    (S: standard deviations; the paper writes it for the covariance, with the factor squared).
    Same signature and meaning as ``gsplat.relocation.compute_relocation``; evaluated in float64.

    Args:
        opacities: [N] in (0, 1).
        scales: [N, 3] standard deviations (metres).
        ratios: [N] number of copies n of each Gaussian (clamped to [1, n_max], as gsplat).
        binoms: [n_max, n_max] binomial coefficients, ``binoms[i, k] = C(i, k)``.

    Returns:
        ``(new_opacities [N], new_scales [N, 3])`` in the inputs' dtype.
    """
    n_max = binoms.shape[0]
    n = ratios.clamp(1, n_max).to(torch.int64)
    o = opacities.double()
    o_new = 1.0 - torch.pow(1.0 - o, 1.0 / n.double())
    k = torch.arange(n_max, device=o.device, dtype=torch.float64)
    # coef[i - 1, k] = C(i-1, k) (-1)^k / sqrt(k + 1): row i - 1 of the table is zero beyond k = i - 1.
    coef = binoms.double() * torch.where(k % 2 == 0, 1.0, -1.0) / torch.sqrt(k + 1)
    powers = o_new[:, None] ** (k + 1)  # [N, n_max]: o'^(k+1)
    inner = powers @ coef.T  # [N, n_max]: column i - 1 holds the inner sum for i
    keep = torch.arange(1, n_max + 1, device=o.device)[None] <= n[:, None]
    denom = (inner * keep).sum(dim=1)
    new_scales = (o / denom)[:, None] * scales.double()
    return o_new.to(opacities.dtype), new_scales.to(scales.dtype)


def _quat_scale_to_covar_preci_any_device(
    quats: Tensor, scales: Tensor, compute_covar: bool = True, compute_preci: bool = True, triu: bool = False
) -> tuple[Tensor | None, Tensor | None]:
    """gsplat's CUDA kernel for CUDA tensors, its PyTorch reference otherwise."""
    if quats.is_cuda:
        return _GSPLAT_COVAR(quats, scales, compute_covar, compute_preci, triu)
    from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci

    return _quat_scale_to_covar_preci(quats, scales, compute_covar, compute_preci, triu)


def _compute_relocation_any_device(
    opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor
) -> tuple[Tensor, Tensor]:
    """gsplat's CUDA kernel for CUDA tensors, :func:`compute_relocation_reference` otherwise."""
    if opacities.is_cuda:
        return _GSPLAT_RELOCATION(opacities=opacities, scales=scales, ratios=ratios, binoms=binoms)
    return compute_relocation_reference(opacities, scales, ratios, binoms)


@contextlib.contextmanager
def _cpu_reference_ops() -> Generator[None, None, None]:
    """Within the block, gsplat's strategy ops use device-dispatching versions of its two CUDA-only calls."""
    ops: Any = _gsplat_ops  # a patched module: a type checker takes its functions for fixed ``def``s
    saved = (ops.compute_relocation, ops.quat_scale_to_covar_preci)
    ops.compute_relocation = _compute_relocation_any_device
    ops.quat_scale_to_covar_preci = _quat_scale_to_covar_preci_any_device
    try:
        yield
    finally:
        ops.compute_relocation, ops.quat_scale_to_covar_preci = saved
