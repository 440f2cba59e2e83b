"""Per-frame SAM masks, CLIP features and object-ID maps of a sequence, cached (semdyn.semantics.extract).

python scripts/extract_semantics.py --data <sequence> --sam.checkpoint sam_vit_b_01ec64.pth \
    --clip.pretrained open_clip_vit_b16.bin                        # the real models, from local files
python scripts/extract_semantics.py --masks gt --clip.pretrained ...   # ground-truth masks instead of SAM
python scripts/extract_semantics.py --random-weights --max-frames 3    # untrained models: tests and timing only
"""

from __future__ import annotations

import json
import logging
import sys

import tyro
from rich.console import Console
from rich.logging import RichHandler

from semdyn.errors import SemdynError
from semdyn.semantics.extract import ExtractConfig, extract_sequence


def entrypoint() -> None:
    """Console entry point: errors the user can fix end in one line, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    console = Console()
    config = tyro.cli(ExtractConfig)
    try:
        summary = extract_sequence(config)
    except SemdynError as err:
        console.print(f"[bold red]error:[/bold red] {err}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: run the same command again to resume (finished frames are kept)")
        sys.exit(130)
    console.print_json(json.dumps(summary))


if __name__ == "__main__":
    entrypoint()
