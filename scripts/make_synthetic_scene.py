"""Generate a synthetic driving street with exact ground truth (shared/DATA_FORMAT.md).

python scripts/make_synthetic_scene.py --output outputs/synthetic/seed0 --scene.seed 0
python scripts/make_synthetic_scene.py --output /data/street_gpu --preset gpu   # 5 cams, 200 frames, 1920x1280
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console

from semdyn.errors import SemdynError
from semdyn.synth import SynthConfig, generate_scene

GPU_PRESET = {
    "num_cameras": 5,
    "num_frames": 200,
    "width": 1920,
    "height": 1280,
    "device": "cuda",
    "lidar_points_per_frame": 8000,
    "chunk_rays": 262144,
}
"""Options the ``gpu`` preset replaces."""


@dataclass
class Args:
    """Generate a synthetic street sequence."""

    output: Path = Path("outputs/synthetic/street")
    """Sequence folder to write (rendered into a temp folder beside it, then renamed)."""
    scene: SynthConfig = field(default_factory=SynthConfig)
    """Generator options."""
    preset: Literal["default", "gpu"] = "default"
    """``gpu`` replaces cameras, frames, resolution, device and LiDAR density by the GPU-scale scene."""
    overwrite: bool = False
    """Replace ``output`` if it exists."""


def main(args: Args) -> Path:
    """Generate the scene and print where it went."""
    config = dataclasses.replace(args.scene, **GPU_PRESET) if args.preset == "gpu" else args.scene
    console = Console()
    start = time.perf_counter()
    path = generate_scene(config, args.output, overwrite=args.overwrite)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    console.print(f"wrote {path} in {time.perf_counter() - start:.1f} s ({size / 2**20:.1f} MiB)")
    return path


def entrypoint() -> None:
    """Console entry point: errors the user can fix end in one line, not a traceback."""
    try:
        main(tyro.cli(Args))
    except SemdynError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()
