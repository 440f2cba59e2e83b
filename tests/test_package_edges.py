"""The packages of semdyn are layered: a package imports only packages below it (read from the sources' imports,
function-level ones included, so that the layering stays true as the code changes).

``KNOWN`` lists the edges that still go up or sideways; each is a debt to pay off (the architecture issue), not an
allowance: a new one fails here, and so does a listed one that no longer exists (take it off the list).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "semdyn"

LAYERS: dict[str, int] = {
    # foundations
    "errors": 0,
    "shapes": 1,
    "conventions": 0,
    "ops": 1,
    "outputs": 1,
    "config_io": 1,
    # data: the synthetic street and the sequences read from disk
    "synth": 1,
    "data": 2,
    # what a scene is made of
    "render": 2,
    "deform": 2,
    "losses": 2,
    "scene": 3,
    "semantics": 4,
    # metrics of a scene, its images and its motion
    "eval": 4,
    # training (with its presets) and looking at a scene while it trains
    "train": 5,
    "viewer": 5,
    # what is done with a trained run: loading, exporting, rendering along paths
    "export": 6,
    "paths": 6,
    # command-line tools over all of them (the benchmark runner, the grouping report) and the nerfstudio adapter
    "tools": 7,
    "nerfstudio": 7,
    "method_config": 8,
}

KNOWN: set[tuple[str, str]] = set()


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0].removesuffix(".py")


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package pairs, each with the files (and lines) where it happens."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = _package_of(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "semdyn" or len(parts) < 2 or parts[1] == src:
                    continue
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                found.setdefault((src, parts[1]), []).append(where)
    return found


def test_every_package_has_a_layer() -> None:
    packages = {_package_of(p) for p in ROOT.rglob("*.py")} - {"__init__", "__main__", "py"}
    assert packages <= set(LAYERS), f"give these packages a layer: {sorted(packages - set(LAYERS))}"


def test_packages_import_only_packages_below_them() -> None:
    edges = _edges()
    upward = {e: w for e, w in edges.items() if e[1] in LAYERS and LAYERS[e[1]] >= LAYERS.get(e[0], 99)}
    new = {e: w for e, w in upward.items() if e not in KNOWN}
    assert not new, "imports that go up or sideways: " + "; ".join(
        f"{a} -> {b} ({', '.join(w)})" for (a, b), w in new.items()
    )
    gone = KNOWN - set(upward)
    assert not gone, f"no longer imported, take them off KNOWN: {sorted(gone)}"
