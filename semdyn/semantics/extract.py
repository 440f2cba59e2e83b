"""Per-frame semantics: masks (SAM or ground truth) -> CLIP patch embeddings -> dictionary match -> object-ID map.

Cache layout (one folder per set of output-changing options, so a changed parameter recomputes)::

    <output>/<run_key>/meta.json               options, dictionary, random-weights flag
    <output>/<run_key>/frames/<frame_key>.png  16-bit object-ID map (0 = none)
    <output>/<run_key>/frames/<frame_key>.npz  embeddings [M, D], mask ids [M], similarity [M], mask index map [H, W]

``run_key`` hashes the options; ``frame_key`` hashes ``run_key`` and the image file's bytes, so a frame is reused
exactly when its image and the options are unchanged. Every file is written to a temporary name and moved into place
(``os.replace``), the ``.npz`` before the ``.png``: a frame counts as done only when its ``.png`` exists, and an
interrupted run leaves no partial file under a final name; leftover temporaries are removed on the next run.

Several processes may fill one cache at once (``--shard I/N`` of a cluster's job array, or the ranks of ``torchrun``,
which take every N-th frame from the I-th; or two runs over the same frames): a process computes a frame only while
it holds the frame's claim, an exclusive ``flock`` on ``<run_key>/locks/<frame_key>.lock`` taken without waiting (a
frame claimed by a live process is left to it; the kernel drops the claim of a process that dies). Holding the claim
it checks the ``.png`` again, removes a dead claimant's temporaries of that frame, computes and writes, and removes
the lock file. Each frame is therefore computed once and no reader ever sees a partial file.

``masks="gt"``: the sequence's ground-truth instance masks replace SAM (the ID map is then the instance ids, and
each instance's embedding and dictionary match are stored beside), so lifting can be measured apart from SAM.
``masks="gt-class"``: the semantic class images replace SAM and CLIP matching (the ID map holds, per pixel, the
first dictionary entry whose class is the pixel's class), so instance separation can be measured apart from both.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import track
from torch import Tensor

from semdyn.data import read_sequence
from semdyn.errors import DataFormatError, InputError
from semdyn.ops import resolve_device
from semdyn.semantics.cache import atomic_write, content_hash, frame_key, write_id_map
from semdyn.semantics.clip import ClipConfig, ClipEncoder
from semdyn.semantics.dictionary import DEFAULT_DICTIONARY, ObjectDictionary, load_dictionary
from semdyn.semantics.matching import mask_index_map, match_to_dictionary, paint_id_map
from semdyn.semantics.sam import SAM_CHECKPOINT_NAMES, SamConfig, SamMasker
from semdyn.synth import SynthConfig, ensure_scene

log = logging.getLogger("semdyn")

CACHE_VERSION = "1"
"""Bumped whenever the pipeline's output changes for fixed options (part of the cache key)."""


@dataclass(frozen=True)
class ExtractConfig:
    """Per-frame SAM masks, CLIP features and object-ID maps of a sequence, cached."""

    data: Path | None = None
    """Sequence folder (transforms.json inside); None: the synthetic default street (generated on first use)."""
    output: Path | None = None
    """Cache root; default <data>/semantics_cache."""
    masks: Literal["sam", "gt", "gt-class"] = "sam"
    """sam: SAM automatic masks; gt: the sequence's ground-truth instance masks (measures lifting without SAM);
    gt-class: one mask per class of the sequence's semantic images, its object-ID the first dictionary entry of that
    class (an oracle SAM + CLIP: measures the 3D instance separation alone)."""
    sam: SamConfig = field(default_factory=SamConfig)
    """SAM options (masks=sam)."""
    clip: ClipConfig = field(default_factory=ClipConfig)
    """CLIP options."""
    dictionary: Path = DEFAULT_DICTIONARY
    """Object dictionary YAML (configs/dictionaries/*.yaml)."""
    match_threshold: float = 0.2
    """Minimum cosine similarity between a mask and its best prompt."""
    match_margin: float = 0.01
    """Minimum lead of the best prompt's similarity over the runner-up's."""
    patch_context: float = 0.1
    """Each mask's bounding box is grown by this fraction of its size on every side before cropping."""
    random_weights: bool = False
    """Run SAM and CLIP on randomly initialised weights (tests and timing only; logged and stored in meta.json)."""
    max_frames: int | None = None
    """Only the first this many frames (None: all)."""
    device: str = "auto"
    """auto (CUDA when available; under torchrun the rank's local GPU), cpu or cuda."""
    shard: str | None = None
    """I/N: only frames I, I + N, I + 2N, ... (0 <= I < N; for a job array of N tasks writing into one cache).
    None: all frames, or the rank's share under torchrun (RANK / WORLD_SIZE)."""

    def output_params(self, dictionary: ObjectDictionary) -> dict[str, Any]:
        """Everything that changes the cached outputs (device, batch sizes and frame count do not)."""
        return dict(
            version=CACHE_VERSION,
            masks=self.masks,
            sam=self.sam.output_params() if self.masks == "sam" else None,
            clip=self.clip.output_params(),
            dictionary=dictionary.fingerprint(),
            match_threshold=self.match_threshold,
            match_margin=self.match_margin,
            patch_context=self.patch_context,
            random_weights=self.random_weights,
        )


def run_key(config: ExtractConfig, dictionary: ObjectDictionary) -> str:
    """16 hex digits identifying the options (the cache sub-folder)."""
    return content_hash(json.dumps(config.output_params(dictionary), sort_keys=True).encode())[:16]


def parse_shard(shard: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(I, N)`` of ``--shard I/N``; without it torchrun's ``(RANK, WORLD_SIZE)`` when set, else ``(0, 1)``."""
    env = os.environ if env is None else env
    if shard is None:
        if "WORLD_SIZE" not in env:
            return 0, 1
        text, option = f"{env.get('RANK', '0')}/{env['WORLD_SIZE']}", "RANK/WORLD_SIZE (torchrun)"
    else:
        text, option = shard, "--shard"
    parts = text.split("/")
    try:
        index, count = int(parts[0]), int(parts[1])
        if len(parts) != 2 or count < 1 or not 0 <= index < count:
            raise ValueError
    except (ValueError, IndexError):
        raise InputError(f"{option} must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}") from None
    return index, count


@contextmanager
def frame_claim(lock_dir: Path, key: str) -> Generator[bool, None, None]:
    """Hold the claim on frame ``key`` (see the module docstring); yields False, holding nothing, when another live
    process has it. The lock file is removed on leaving, before the lock is released."""
    path = lock_dir / f"{key}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            same = path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder we waited behind removed this file: its frame is done (or a new claim exists)
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock


def crop_patches(image: Tensor, masks: Tensor, context: float) -> Tensor:
    """[M, 3, s, s] square patches around each mask, pixels outside the mask grey (0.5).

    Args:
        image: [H, W, 3] float in [0, 1].
        masks: [M, H, W] bool.
        context: bounding boxes grow by this fraction of their size per side.
    """
    h, w = image.shape[:2]
    size = 64
    out = torch.full((masks.shape[0], 3, size, size), 0.5)
    for m in range(masks.shape[0]):
        ys, xs = torch.nonzero(masks[m], as_tuple=True)
        if ys.numel() == 0:
            continue
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        side = max(y1 - y0, x1 - x0) * (1 + 2 * context)
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        t, b = max(int(cy - side / 2), 0), min(int(np.ceil(cy + side / 2)), h)
        lft, r = max(int(cx - side / 2), 0), min(int(np.ceil(cx + side / 2)), w)
        crop = torch.where(masks[m, t:b, lft:r, None], image[t:b, lft:r], torch.full_like(image[t:b, lft:r], 0.5))
        out[m] = F.interpolate(crop.permute(2, 0, 1)[None], size=(size, size), mode="bilinear", antialias=True)[0]
    return out


def class_id_lut(classes: tuple[str, ...], dictionary: ObjectDictionary) -> np.ndarray:
    """[256] uint16: semantic class id -> object-ID of the first dictionary entry of that class (0 if none)."""
    first: dict[str, int] = {}
    for i, e in enumerate(dictionary.entries):
        first.setdefault(e.class_name, i + 1)
    lut = np.zeros(256, dtype=np.uint16)
    for c, name in enumerate(classes[:256]):
        lut[c] = first.get(name, 0)
    return lut


def gt_masks(instance_map: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(masks [M, H, W] bool largest first, instance ids [M])`` of a ground-truth instance map (0 = none)."""
    ids, counts = np.unique(instance_map[instance_map > 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    ids = ids[order]
    masks = torch.from_numpy(instance_map[None] == ids[:, None, None])
    return masks, torch.from_numpy(ids.astype(np.int64))


@dataclass
class FrameResult:
    """What one frame produced (also what is cached)."""

    id_map: np.ndarray
    """[H, W] uint16 object-ID map."""
    embeddings: np.ndarray
    """[M, D] float16 unit-norm CLIP embeddings of the masks."""
    mask_ids: np.ndarray
    """[M] int64 each mask's id in the ID map (dictionary object-ID, or GT instance id for masks=gt)."""
    matches: np.ndarray
    """[M] int64 dictionary object-ID each mask matched (0 = none)."""
    similarity: np.ndarray
    """[M] float32 cosine similarity of the best prompt."""
    mask_index: np.ndarray
    """[H, W] int16 index of the smallest mask covering each pixel (-1 none): the pixel's CLIP feature."""


def check_checkpoints(config: ExtractConfig) -> None:
    """Before loading anything: every model checkpoint the run needs (SAM's for masks=sam, CLIP's always) is a file,
    or one sentence names all that are not (unless ``random_weights``)."""
    if config.random_weights:
        return
    missing = []
    if config.masks == "sam" and (config.sam.checkpoint is None or not Path(config.sam.checkpoint).is_file()):
        where = config.sam.checkpoint or "not set"
        missing.append(f"--sam.checkpoint ({where}; the SAM {config.sam.model_type} release file, e.g. "
                       f"{SAM_CHECKPOINT_NAMES.get(config.sam.model_type, 'sam_vit_b_01ec64.pth')})")  # fmt: skip
    if config.clip.pretrained is None or not Path(config.clip.pretrained).is_file():
        where = config.clip.pretrained or "not set"
        missing.append(f"--clip.pretrained ({where}; the {config.clip.model_name} open_clip weights)")
    if missing:
        raise InputError(
            "missing model checkpoints: " + " and ".join(missing) + "; pass local files (nothing is downloaded), "
            "or --random-weights to test the pipeline with meaningless weights"
        )


class SemanticExtractor:
    """The per-frame pipeline with loaded models (see the module docstring)."""

    def __init__(self, config: ExtractConfig, device: torch.device) -> None:
        self.config = config
        check_checkpoints(config)
        self.dictionary = load_dictionary(config.dictionary)
        self.clip = ClipEncoder(config.clip, device, config.random_weights)
        self.text = self.clip.encode_text(self.dictionary.prompts).cpu()
        self.sam = SamMasker(config.sam, device, config.random_weights) if config.masks == "sam" else None

    def process(self, image_u8: np.ndarray, instance_map: np.ndarray | None = None) -> FrameResult:
        """One frame: image [H, W, 3] uint8; instance_map [H, W] (instance ids for masks=gt, object-IDs for
        masks=gt-class; its regions are the masks and it is the ID map as it is)."""
        if self.sam is not None:
            masks = torch.from_numpy(self.sam.masks(image_u8))
        else:
            if instance_map is None:
                raise InputError("masks=gt / gt-class needs the frame's instance (or object-ID) map")
            masks, gt_ids = gt_masks(instance_map)
        image = torch.from_numpy(image_u8).float() / 255.0
        emb = self.clip.encode_patches(crop_patches(image, masks, self.config.patch_context)).cpu()
        matches, sims = match_to_dictionary(emb, self.text, self.config.match_threshold, self.config.match_margin)
        if self.sam is not None:
            id_map, mask_ids = paint_id_map(masks, matches), matches
        else:
            assert instance_map is not None  # checked above
            id_map, mask_ids = torch.from_numpy(instance_map.astype(np.int64)), gt_ids
        return FrameResult(
            id_map=id_map.numpy().astype(np.uint16),
            embeddings=emb.numpy().astype(np.float16),
            mask_ids=mask_ids.numpy(),
            matches=matches.numpy(),
            similarity=sims.numpy().astype(np.float32),
            mask_index=mask_index_map(masks).numpy().astype(np.int16),
        )


def _write_frame(folder: Path, key: str, result: FrameResult, meta: dict[str, Any]) -> None:
    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                embeddings=result.embeddings,
                mask_ids=result.mask_ids,
                matches=result.matches,
                similarity=result.similarity,
                mask_index=result.mask_index,
                meta=np.array(json.dumps(meta)),
            )

    atomic_write(folder / f"{key}.npz", save_npz)
    write_id_map(folder / f"{key}.png", result.id_map)  # last: the frame is done when its .png exists


def extract_sequence(config: ExtractConfig, show_progress: bool = True) -> dict[str, Any]:
    """Run the pipeline over every frame of the sequence, reusing cached frames; returns a summary."""
    data = config.data if config.data is not None else ensure_scene(SynthConfig(), show_progress=show_progress)
    shard, num_shards = parse_shard(config.shard)
    seq = read_sequence(data)
    frames = seq.frames[: config.max_frames] if config.max_frames is not None else seq.frames
    if config.masks == "gt" and not seq.has("mask"):
        raise DataFormatError(seq.transforms_path, "--masks gt needs instance masks (mask_path) in every frame")
    if config.masks == "gt-class" and not (seq.has("semantic") and seq.semantic_classes):
        raise DataFormatError(seq.transforms_path, "--masks gt-class needs semantic images and semantic_classes")
    dictionary = load_dictionary(config.dictionary)
    lut = class_id_lut(seq.semantic_classes, dictionary)
    run = run_key(config, dictionary)
    run_dir = Path(config.output if config.output is not None else Path(data) / "semantics_cache") / run
    folder, lock_dir = run_dir / "frames", run_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock_dir.mkdir(exist_ok=True)
    meta = {
        "run_key": run,
        "options": config.output_params(dictionary),
        "dictionary": dictionary.name,
        "prompts": dictionary.prompts,
        "random_weights": config.random_weights,
    }
    if config.random_weights:
        meta["warning"] = "SAM and CLIP ran on randomly initialised weights: masks and matches are meaningless"
    meta_path = run_dir / "meta.json"  # every shard writes the same text (atomically)
    atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2, default=str)))
    mine = list(range(shard, len(frames), num_shards))
    keys = {i: frame_key(run, frames[i].image_path) for i in mine}
    todo = [i for i in mine if not (folder / f"{keys[i]}.png").is_file()]
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "shard": f"{shard}/{num_shards}",
        "frames": len(mine),
        "computed": 0,
        "reused": len(mine) - len(todo),
        "claimed_elsewhere": 0,
        "random_weights": config.random_weights,
    }
    if todo:
        t0 = time.perf_counter()
        extractor = SemanticExtractor(config, _shard_device(config.device))
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        for i in track(todo, f"extracting semantics (shard {shard}/{num_shards})", disable=not show_progress):
            key = keys[i]
            with frame_claim(lock_dir, key) as held:
                if not held:
                    summary["claimed_elsewhere"] += 1
                    continue
                if (folder / f"{key}.png").is_file():  # finished by another process since the list was made
                    summary["reused"] += 1
                    continue
                for stale in folder.glob(f".tmp*-{key}.*"):  # a dead claimant's partial writes
                    stale.unlink(missing_ok=True)
                _write_frame(
                    folder,
                    key,
                    _process_frame(extractor, config, frames[i], lut),
                    {"image": str(frames[i].image_path), **meta},
                )
                summary["computed"] += 1
        if summary["computed"]:
            summary.update(
                model_load_seconds=round(load_s, 2),
                seconds_per_frame=round((time.perf_counter() - t1) / summary["computed"], 3),
            )
    log.info(
        "semantics: shard %d/%d: %d frames computed, %d reused, %d left to other processes, in %s",
        shard, num_shards, summary["computed"], summary["reused"], summary["claimed_elsewhere"], run_dir,
    )  # fmt: skip
    return summary


def _process_frame(extractor: SemanticExtractor, config: ExtractConfig, frame: Any, lut: np.ndarray) -> FrameResult:
    """Read one frame's image (and masks or class image) and run the pipeline on it."""
    with Image.open(frame.image_path) as im:
        img = np.array(im.convert("RGB"))
    inst = None
    if config.masks == "gt":
        with Image.open(frame.mask_path) as im:
            inst = np.asarray(im).astype(np.int64)
    elif config.masks == "gt-class":
        with Image.open(frame.semantic_path) as im:
            inst = lut[np.asarray(im)].astype(np.int64)
    return extractor.process(img, inst)


def _shard_device(name: str) -> torch.device:
    """The device of ``--device``; ``auto`` under torchrun takes the rank's local GPU (LOCAL_RANK)."""
    device = resolve_device(name)
    if name == "auto" and device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % max(torch.cuda.device_count(), 1))
    return device
