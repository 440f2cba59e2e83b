"""Rendering speed and memory of semdyn's backends, as a table.

For each Gaussian count and resolution, and each backend available on this machine (``cpu``: the
C++/OpenMP extension; ``torch``: the pure-PyTorch reference, small cases only; ``gsplat``: CUDA),
measures the forward time, the forward+backward time (median of ``repeats`` after a warm-up) and
the peak memory (resident set growth on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU).
Each case runs in its own subprocess so that peak memory is its own.

    python scripts/benchmark_render.py                      # CPU table
    python scripts/benchmark_render.py --counts 10000 100000 1000000 --out outputs/bench_render.md
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro


@dataclass
class BenchmarkConfig:
    """Which cases to time."""

    counts: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    """Gaussian counts."""
    resolutions: list[str] = field(default_factory=lambda: ["320x192", "1920x1280"])
    """Image sizes as WIDTHxHEIGHT."""
    backends: list[str] = field(default_factory=lambda: ["cpu", "torch", "gsplat"])
    """Backends to try; those unavailable here are left out of the table."""
    repeats: int = 3
    """Timed repetitions per case (after one warm-up)."""
    torch_max_work: float = 2e8
    """Skip the dense PyTorch reference when pixels x Gaussians exceeds this (it is O(pixels x N))."""
    out: Path | None = None
    """Also write the table (Markdown) and the raw rows (JSON, same name) here."""


def _scene(n: int, width: int, height: int, device: str, seed: int = 0):
    """N Gaussians of street-like sizes spread 4-60 m in front of one camera (OpenCV frame)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    z = 4.0 + 56.0 * torch.rand(n, generator=g) ** 2
    f = 0.8 * width
    x = (torch.rand(n, generator=g) - 0.5) * z * width / f * 1.2
    y = (torch.rand(n, generator=g) - 0.5) * z * height / f * 1.2
    means = torch.stack([x, y, z], dim=-1)
    # Sizes so that the scene is roughly covered a few times over, as a trained scene is.
    pix = math.sqrt(width * height * 4.0 / n)
    scales = (z[:, None] * pix / f) * torch.exp(torch.randn(n, 3, generator=g) * 0.3) * 0.5
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    tensors = dict(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        scales=scales,
        opacities=torch.rand(n, generator=g) * 0.8 + 0.1,
        colors=torch.randn(n, 16, 3, generator=g) * 0.2,
        viewmats=torch.eye(4)[None],
        Ks=K[None],
    )
    return {k: v.to(device) for k, v in tensors.items()} | dict(width=width, height=height, sh_degree=3)


def run_case(n: int, width: int, height: int, backend: str, repeats: int) -> dict:
    """Time one case in this process and return a row."""
    import resource
    import time

    import torch

    from semdyn.render import RenderConfig, render

    device = "cuda" if backend == "gsplat" else "cpu"
    scene = _scene(n, width, height, device)
    config = RenderConfig(backend=backend)
    keys = ("means", "quats", "scales", "opacities", "colors")

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward(grad: bool):
        leaves = {k: scene[k].detach().requires_grad_(grad) for k in keys}
        out = render(**{**scene, **leaves}, config=config)
        if grad:
            (out.image.sum() + out.alpha.sum()).backward()
        sync()
        return out

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    forward(True)  # warm-up (and extension load)
    times = {}
    for grad in (False, True):
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.set_grad_enabled(grad):
                out = forward(grad)
            samples.append((time.perf_counter() - t0) * 1e3)
        times[grad] = sorted(samples)[len(samples) // 2]
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # ru_maxrss is in KiB
    return dict(
        gaussians=n,
        resolution=f"{width}x{height}",
        backend=out.backend,
        forward_ms=round(times[False], 1),
        forward_backward_ms=round(times[True], 1),
        peak_memory_mb=round(peak_mb, 1),
        coverage=round(out.alpha.mean().item(), 3),
    )


def machine() -> str:
    from semdyn.eval.machine import describe_machine

    return describe_machine()


def main(config: BenchmarkConfig) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console()
    backends = [b for b in config.backends if b != "gsplat" or torch.cuda.is_available()]
    rows = []
    for res in config.resolutions:
        width, height = (int(v) for v in res.lower().split("x"))
        for n in config.counts:
            for backend in backends:
                if backend == "torch" and n * width * height > config.torch_max_work:
                    continue
                console.log(f"{backend:6s} {n:>9,d} Gaussians at {res} ...")
                code = (
                    "import json, sys; sys.path.insert(0, 'scripts'); from benchmark_render import run_case;"
                    f"print('ROW', json.dumps(run_case({n}, {width}, {height}, {backend!r}, {config.repeats})))"
                )
                res_p = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
                lines = [ln for ln in res_p.stdout.splitlines() if ln.startswith("ROW ")]
                if res_p.returncode != 0 or not lines:
                    err = (res_p.stderr.strip().splitlines() or ["no output"])[-1]
                    console.log(f"[red]failed[/red]: {err}")
                    rows.append(dict(gaussians=n, resolution=res, backend=backend, error=err))
                    continue
                rows.append(json.loads(lines[-1][4:]))
    header = ["Gaussians", "resolution", "backend", "forward ms", "fwd+bwd ms", "peak MB"]
    table = Table(title=f"semdyn render benchmark ({machine()})")
    for h in header:
        table.add_column(h, justify="right")
    md = [f"Machine: {machine()}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r['gaussians']:,}", r["resolution"], r["backend"]]
        cells += (
            ["failed", "", r["error"][:40]]
            if "error" in r
            else [f"{r['forward_ms']:.1f}", f"{r['forward_backward_ms']:.1f}", f"{r['peak_memory_mb']:.0f}"]
        )
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console.print(table)
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        config.out.write_text("\n".join(md) + "\n")
        config.out.with_suffix(".json").write_text(json.dumps(dict(machine=machine(), rows=rows), indent=2))
        console.log(f"wrote {config.out} and {config.out.with_suffix('.json')}")


if __name__ == "__main__":
    main(tyro.cli(BenchmarkConfig))
