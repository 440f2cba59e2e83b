"""The per-frame semantics cache: reuse, recompute on a changed option, resume after an interruption, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from semdyn.errors import InputError, MissingCheckpointError
from semdyn.semantics import extract
from semdyn.semantics.cache import read_cached_id_map, read_id_map
from semdyn.semantics.clip import ClipConfig
from semdyn.semantics.extract import ExtractConfig, extract_sequence
from semdyn.semantics.sam import SamConfig


def _config(scene: Path, out: Path, clip_cfg: Path, **kw) -> ExtractConfig:
    clip = ClipConfig(model_name=clip_cfg.stem, model_config=clip_cfg)
    base = dict(data=scene, output=out, masks="gt", clip=clip, random_weights=True, max_frames=3, device="cpu")
    return ExtractConfig(**{**base, **kw})


def _files(run_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "frames").iterdir()}


def test_second_run_computes_nothing_and_changed_option_recomputes(
    tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path
) -> None:
    cfg = _config(tiny_scene, tmp_path, tiny_clip_config)
    first = extract_sequence(cfg, show_progress=False)
    assert (first["computed"], first["reused"]) == (3, 0)
    run_dir = Path(first["run_dir"])
    before = _files(run_dir)
    assert len(before) == 6  # .png + .npz per frame, no temporaries
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["random_weights"] is True and "randomly initialised" in meta["warning"]

    second = extract_sequence(cfg, show_progress=False)
    assert (second["computed"], second["reused"]) == (3, 0)[::-1]
    assert _files(run_dir) == before  # nothing rewritten

    changed = extract_sequence(dataclasses.replace(cfg, match_threshold=0.5), show_progress=False)
    assert changed["computed"] == 3 and changed["run_dir"] != first["run_dir"]

    # the GT path's ID map is the instance mask, at full resolution
    from semdyn.data import read_sequence

    frame = read_sequence(tiny_scene).frames[0]
    id_map = read_cached_id_map(run_dir, frame.image_path)
    gt = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(frame.mask_path)).astype(np.int64)
    assert np.array_equal(id_map.numpy(), gt)


def test_interrupted_run_resumes_without_corrupt_files(
    tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tiny_scene, tmp_path, tiny_clip_config)
    real_write = extract.write_id_map
    calls = {"n": 0}

    def dying_write(path: Path, id_map: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # die half-way through writing frame 2's PNG, as a Ctrl-C would
            tmp = path.with_name(f".tmp-partial-{path.name}")
            tmp.write_bytes(b"\x89PNG partial")
            raise KeyboardInterrupt
        real_write(path, id_map)

    monkeypatch.setattr(extract, "write_id_map", dying_write)
    with pytest.raises(KeyboardInterrupt):
        extract_sequence(cfg, show_progress=False)
    monkeypatch.setattr(extract, "write_id_map", real_write)
    run_dir = next(p for p in tmp_path.iterdir() if (p / "meta.json").is_file())
    pngs = [p for p in (run_dir / "frames").glob("*.png") if not p.name.startswith(".")]
    assert any(p.name.startswith(".tmp") for p in (run_dir / "frames").iterdir())  # the partial write is there
    assert len(pngs) == 1 and read_id_map(pngs[0]).shape == (80, 128)

    resumed = extract_sequence(cfg, show_progress=False)
    assert (resumed["computed"], resumed["reused"]) == (2, 1)
    names = [p.name for p in (run_dir / "frames").iterdir()]
    assert len(names) == 6 and not any(n.startswith(".tmp") for n in names)
    for png in (run_dir / "frames").glob("*.png"):
        assert read_id_map(png).shape == (80, 128)
        npz = np.load(png.with_suffix(".npz"))
        assert npz["embeddings"].shape[1] == 32 and npz["mask_index"].shape == (80, 128)


def test_sam_path_end_to_end_with_a_tiny_random_model(tiny_scene: Path, tmp_path: Path, tiny_clip_config: Path) -> None:
    sam = SamConfig(
        model_type="tiny", points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_area=1
    )
    cfg = _config(
        tiny_scene,
        tmp_path,
        tiny_clip_config,
        masks="sam",
        sam=sam,
        max_frames=1,
        match_threshold=-1.0,
        match_margin=0.0,
    )
    out = extract_sequence(cfg, show_progress=False)
    assert out["computed"] == 1 and out["seconds_per_frame"] > 0
    png = next((Path(out["run_dir"]) / "frames").glob("*.png"))
    npz = np.load(png.with_suffix(".npz"))
    id_map = read_id_map(png).numpy()
    # every mask matched some prompt (threshold -1), so the painted IDs are exactly the masks' matches
    assert len(npz["matches"]) >= 1 and (npz["matches"] >= 1).all()
    assert set(np.unique(id_map)) - {0} <= set(npz["matches"].tolist())


def test_missing_checkpoints_name_the_option(tiny_scene: Path, tmp_path: Path) -> None:
    cfg = ExtractConfig(data=tiny_scene, output=tmp_path, clip=ClipConfig(pretrained=tmp_path / "nope.bin"))
    with pytest.raises(InputError, match=r"--sam\.checkpoint \(not set.*--clip\.pretrained.*nope\.bin"):
        extract_sequence(cfg, show_progress=False)  # every missing checkpoint in one sentence, before any load
    from semdyn.semantics.sam import load_sam

    with pytest.raises(MissingCheckpointError, match=r"--sam\.checkpoint.*sam_vit_b_01ec64\.pth"):
        load_sam(SamConfig(), device=__import__("torch").device("cpu"))


def test_a_frame_without_masks_gives_an_empty_map(tiny_clip_config: Path) -> None:
    import torch

    from semdyn.semantics.clip import ClipEncoder
    from semdyn.semantics.matching import match_to_dictionary, paint_id_map

    enc = ClipEncoder(
        ClipConfig(model_name=tiny_clip_config.stem, model_config=tiny_clip_config),
        torch.device("cpu"),
        random_weights=True,
    )
    emb = enc.encode_patches(torch.zeros(0, 3, 8, 8))
    assert emb.shape == (0, 32)
    ids, _ = match_to_dictionary(emb, enc.encode_text(["a car", "a road"]))
    assert int(paint_id_map(torch.zeros(0, 4, 5, dtype=torch.bool), ids).abs().sum()) == 0
