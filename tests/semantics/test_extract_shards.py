"""Several extract_semantics processes filling one cache at once: shards, claims, no corrupt or twice-computed frame."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from semdyn.data import read_sequence
from semdyn.errors import InputError
from semdyn.semantics import extract
from semdyn.semantics.cache import read_id_map
from semdyn.semantics.clip import ClipConfig
from semdyn.semantics.extract import ExtractConfig, extract_sequence, frame_claim, parse_shard

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "extract_semantics.py"


def test_parse_shard_reads_the_option_then_torchrun() -> None:
    assert parse_shard("1/4", {}) == (1, 4)
    assert parse_shard(None, {}) == (0, 1)
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    assert parse_shard("0/2", {"RANK": "2", "WORLD_SIZE": "3"}) == (0, 2)  # the option wins
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0", "1/2/3"):
        with pytest.raises(InputError, match="--shard must be I/N"):
            parse_shard(bad, {})
    with pytest.raises(InputError, match=r"RANK/WORLD_SIZE \(torchrun\)"):
        parse_shard(None, {"RANK": "5", "WORLD_SIZE": "2"})


def test_a_held_claim_is_refused_and_released(tmp_path: Path) -> None:
    with frame_claim(tmp_path, "k") as first:
        assert first
        with frame_claim(tmp_path, "k") as second:  # another open file: flock refuses it, as another process
            assert not second
        with frame_claim(tmp_path, "other") as third:
            assert third
    assert not (tmp_path / "k.lock").exists()
    with frame_claim(tmp_path, "k") as again:
        assert again


def _launch(scene: Path, out: Path, clip_cfg: Path, shard: str) -> subprocess.Popen:
    cmd = [
        sys.executable, str(SCRIPT), "--data", str(scene), "--output", str(out), "--masks", "gt", "--random-weights",
        "--device", "cpu", "--clip.model-name", clip_cfg.stem, "--clip.model-config", str(clip_cfg), "--shard", shard,
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "100000", "OMP_NUM_THREADS": "1"}  # no wrapped lines; small processes
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _summary(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("{"))  # the summary is printed last
    return json.loads("\n".join(lines[start:]))


def test_two_shards_and_an_overlapping_run_fill_one_cache(
    tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path
) -> None:
    """Shards 0/2 and 1/2 and a run over every frame (0/1) at once: together they compute each frame exactly once
    (the claims keep the overlapping run off the shards' frames and the shards off its), every file reads."""
    frames = read_sequence(tiny_scene).frames
    procs = [_launch(tiny_scene, tmp_path, tiny_clip_config, s) for s in ("0/2", "1/2", "0/1")]
    runs = [_summary(p) for p in procs]
    assert [r["frames"] for r in runs] == [(len(frames) + 1) // 2, len(frames) // 2, len(frames)]
    assert sum(r["computed"] for r in runs) == len(frames)  # once each
    for r in runs:
        assert r["computed"] + r["reused"] + r["claimed_elsewhere"] == r["frames"]
    run_dir = Path(runs[0]["run_dir"])
    assert {Path(r["run_dir"]) for r in runs} == {run_dir}
    names = sorted(p.name for p in (run_dir / "frames").iterdir())
    assert len(names) == 2 * len(frames) and not any(n.startswith(".") for n in names)  # no temporaries
    assert list((run_dir / "locks").iterdir()) == []
    for png in (run_dir / "frames").glob("*.png"):
        assert read_id_map(png).shape == (80, 128)
        assert np.load(png.with_suffix(".npz"))["mask_index"].shape == (80, 128)

    again = _summary(_launch(tiny_scene, tmp_path, tiny_clip_config, "0/1"))
    assert (again["computed"], again["reused"]) == (0, len(frames))


def test_overlapping_runs_never_compute_a_frame_twice(
    tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs at once in threads (flock claims conflict between open files as between processes), with every
    frame slowed down so that they meet on the same frames: shard 0/2 and the full run start on frame 0 together."""
    frames = read_sequence(tiny_scene).frames
    real = extract._process_frame

    def slow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "_process_frame", slow)
    clip = ClipConfig(model_name=tiny_clip_config.stem, model_config=tiny_clip_config)
    base = ExtractConfig(data=tiny_scene, output=tmp_path, masks="gt", clip=clip, random_weights=True, device="cpu")
    configs = [dataclasses.replace(base, shard=s) for s in ("0/2", "1/2", "0/1", "0/1")]
    with ThreadPoolExecutor(len(configs)) as pool:
        runs = list(pool.map(lambda c: extract_sequence(c, show_progress=False), configs))
    assert sum(r["computed"] for r in runs) == len(frames)
    assert sum(r["claimed_elsewhere"] for r in runs) > 0  # they did meet
    for png in (Path(runs[0]["run_dir"]) / "frames").glob("*.png"):
        assert read_id_map(png).shape == (80, 128)
