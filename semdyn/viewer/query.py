"""The viewer's text query: the CLIP text encoder, loaded on the first query, and the embeddings of the last one.

The feature field is trained against the CLIP embeddings that ``scripts/extract_semantics.py`` cached, so a query
must be encoded by the same CLIP model. The model name, the checkpoint's file name, a custom model config and the
random-weights flag come from the cache's ``meta.json`` (``semantics.cache_dir``); the checkpoint's path from
:class:`TextQueryConfig` (meta.json records only its file name). Random weights are used only when meta.json says
the cache was made with them (tests), and the log says so.

Nothing is loaded before the first non-empty query, so a model is set up without CLIP weights. Every failure to
answer a query is one log line (logged again only when the reason changes), never an exception: the viewer renders
on in its render thread. This module does not import nerfstudio.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from semdyn.errors import DataFormatError, InputError, MissingCheckpointError, SemdynError
from semdyn.semantics.clip import ClipConfig, ClipEncoder
from semdyn.semantics.query import CANONICAL_NEGATIVES

log = logging.getLogger("semdyn")

PRETRAINED_OPTION = "--pipeline.model.text-query.clip-pretrained"
"""The command-line option naming the CLIP checkpoint for text queries (in error messages)."""


@dataclass(frozen=True)
class TextQueryConfig:
    """CLIP text queries in the viewer (the ``relevancy`` output; needs a feature field)."""

    clip_pretrained: Path | None = None
    """Local open_clip checkpoint of the CLIP model the feature field's targets were extracted with (the file given
    to scripts/extract_semantics.py as --clip.pretrained); read on the first query, never at set-up."""
    clip_model_name: str | None = None
    """open_clip model name; None: the one in the semantics cache's meta.json (ViT-B-16 without a cache)."""
    negatives: tuple[str, ...] = CANONICAL_NEGATIVES
    """Negative phrases of the relevancy score (LERF's canonical ones)."""
    temperature: float = 10.0
    """Multiplies the cosine similarities before the softmax of the relevancy score."""


@dataclass(frozen=True)
class CachedClip:
    """The CLIP settings an extract_semantics run recorded in its meta.json."""

    model_name: str
    """open_clip model name."""
    pretrained_name: str | None
    """File name (not path) of the checkpoint; None for random weights."""
    model_config: str | None
    """JSON text of the custom open_clip model config registered at extraction, or None."""
    random_weights: bool
    """Whether CLIP ran on randomly initialised weights."""


def read_cached_clip(run_dir: Path) -> CachedClip:
    """The CLIP settings of an extract_semantics run folder (``meta.json`` inside)."""
    path = Path(run_dir) / "meta.json"
    if not path.is_file():
        raise DataFormatError(run_dir, "not an extract_semantics run folder (no meta.json)")
    try:
        meta = json.loads(path.read_text())
        clip = meta["options"]["clip"]
        return CachedClip(
            model_name=str(clip["model_name"]),
            pretrained_name=None if clip["pretrained"] is None else str(clip["pretrained"]),
            model_config=None if clip["model_config"] is None else str(clip["model_config"]),
            random_weights=bool(meta["random_weights"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataFormatError(path, f"has no options.clip settings and random_weights ({type(err).__name__})") from err


def resolve_clip(config: TextQueryConfig, cached: CachedClip | None, workdir: Path) -> tuple[ClipConfig, bool]:
    """The CLIP model to encode queries with, and whether it runs on random weights.

    Args:
        cached: the settings of the semantics cache (None: no cache; the config alone decides).
        workdir: where a cached custom model config is written for open_clip to register.

    Raises:
        MissingCheckpointError: the checkpoint file is not configured or absent (and the cache is not random).
    """
    name = config.clip_model_name or (cached.model_name if cached is not None else ClipConfig().model_name)
    if cached is not None and name != cached.model_name:
        log.warning("viewer: text queries use CLIP %s but the features were extracted with %s", name, cached.model_name)
    model_config = None
    if cached is not None and cached.model_config is not None and name == cached.model_name:
        model_config = Path(workdir) / f"{name}.json"  # open_clip registers a config under its file's stem
        model_config.write_text(cached.model_config)
    if cached is not None and cached.random_weights:
        log.warning(
            "viewer: text queries use RANDOMLY INITIALISED CLIP weights, as the semantics cache's meta.json says"
        )
        return ClipConfig(model_name=name, model_config=model_config), True
    pretrained = config.clip_pretrained
    if pretrained is None or not Path(pretrained).is_file():
        expected = pretrained or f"<{(cached and cached.pretrained_name) or name + ' open_clip checkpoint'}>"
        raise MissingCheckpointError(PRETRAINED_OPTION, expected, f"put the {name} open_clip weights in that file")
    if cached is not None and cached.pretrained_name not in (None, Path(pretrained).name):
        log.warning("viewer: CLIP checkpoint %s is not the %s the features were extracted with",
                    Path(pretrained).name, cached.pretrained_name)  # fmt: skip
    return ClipConfig(model_name=name, pretrained=Path(pretrained), model_config=model_config), False


def _interrupts() -> tuple[type[BaseException], ...]:
    """The exception nerfstudio's render thread raises to abandon a render (must pass through, not be logged)."""
    try:
        from nerfstudio.viewer_legacy.server.viewer_utils import IOChangeException
    except ImportError:
        return ()
    return (IOChangeException,)


class TextQuery:
    """The CLIP text encoder (loaded on the first query) and the cached embeddings of the last query.

    Thread-safe: nerfstudio calls :meth:`answer` from its render thread and (through the text box's callback) from
    viser's thread, so that a new query is encoded before the render that shows it.
    """

    def __init__(self, config: TextQueryConfig, cache_dir: Path | None) -> None:
        """cache_dir: the extract_semantics run folder the feature field was trained on (its meta.json names the
        CLIP model), or None."""
        self.config = config
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.encoder: ClipEncoder | None = None
        self.encode_calls = 0
        """How many times a query text was encoded (the negatives are encoded once, with the first query)."""
        self._text: str | None = None
        self._embeddings: tuple[Tensor, Tensor] | None = None
        self._negatives: Tensor | None = None
        self._failed: str | None = None
        self._reason: str | None = None
        self._lock = threading.Lock()

    def answer(self, text: str, has_feature_field: bool, device: torch.device) -> tuple[Tensor, Tensor] | None:
        """``(positive [D], negatives [M, D])`` unit-norm embeddings of ``text`` and the negatives, re-encoded only
        when the text changes; None, with one log line saying why, when the query cannot be answered (a text that
        failed is tried again once the text has changed)."""
        text = text.strip()
        if not text:
            self._explain("'relevancy' is zero until a CLIP text query is typed in 'Text query'", logging.INFO)
            return None
        if not has_feature_field:
            self._explain("'relevancy' is zero: this model has no feature field (--pipeline.model.semantics."
                          "feature-field, with semantics.masks cache)")  # fmt: skip
            return None
        with self._lock:
            if text == self._text and self._embeddings is not None:
                return self._embeddings
            if text == self._failed:
                return None
            try:
                self._embeddings = self._encode(text, device)
            except Exception as err:  # the viewer's render thread must survive any failure to load CLIP
                if isinstance(err, _interrupts()):
                    raise
                self._failed = text
                detail = str(err) if isinstance(err, SemdynError) else f"{type(err).__name__}: {err}"
                self._explain(f"text query {text!r} not answered: {detail}")
                return None
            self._text, self._failed, self._reason = text, None, None
            return self._embeddings

    def _encode(self, text: str, device: torch.device) -> tuple[Tensor, Tensor]:
        if not self.config.negatives:
            raise InputError("--pipeline.model.text-query.negatives needs at least one phrase")
        if self.encoder is None:
            cached = read_cached_clip(self.cache_dir) if self.cache_dir is not None else None
            with tempfile.TemporaryDirectory() as tmp:
                clip, random_weights = resolve_clip(self.config, cached, Path(tmp))
                self.encoder = ClipEncoder(clip, device, random_weights)
            log.info("viewer: CLIP %s loaded for text queries", clip.model_name)
        if self._negatives is None:
            self._negatives = self.encoder.encode_text(list(self.config.negatives))
        positive = self.encoder.encode_text([text])[0]
        self.encode_calls += 1
        return positive, self._negatives

    def _explain(self, reason: str, level: int = logging.WARNING) -> None:
        """Log ``reason`` once (again only after another reason was logged)."""
        if reason != self._reason:
            self._reason = reason
            log.log(level, "viewer: %s", reason)
