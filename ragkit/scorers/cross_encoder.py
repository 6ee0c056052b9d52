"""``cross_encoder`` scorer: a sentence-transformers ``CrossEncoder`` reads (question, text) pairs.

- ``model``: a local model folder or a hub name (downloaded on first use, needs network). **No
  cross-encoder is packaged for offline use** (OFFLINE.md): offline, point ``model`` at a folder you
  trained or copied. ragkit's tests exercise this code path with MiniLM's packaged weights loaded
  as a ``CrossEncoder`` with a fresh one-label head saved to a temporary folder, which runs the real
  code but gives meaningless scores.
- One ``predict`` call per ``score`` call (pairs batched by ``batch_size``); device ``auto`` = CUDA
  when available. A text longer than the model's ``max_length`` is truncated by the model.
- Needs the ``embeddings`` extra (``pip install 'ragkit[embeddings]'``).

Example:
    >>> CrossEncoderScorer(model="/models/my-reranker").batch_size   # no I/O until first use
    32
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.errors import BackendError, ConfigError
from ragkit.scorers.base import Scorer
from ragkit.types import Query

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"


class CrossEncoderScorer(Scorer):
    """Relevance of each text to the question by a cross-encoder (higher is better).

    Args:
        model: local folder or hub name (default: a hub name, which needs network once).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        batch_size: pairs per forward pass.
        max_length: token limit per pair (``None``: the model's own).

    Example:
        >>> CrossEncoderScorer().model
        'cross-encoder/ms-marco-MiniLM-L6-v2'
    """

    def __init__(self, *, model: str = DEFAULT_MODEL, device: str = "auto",
                 batch_size: Annotated[int, Field(gt=0)] = 32,
                 max_length: Annotated[int, Field(gt=0)] | None = None) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"cross_encoder model: got {model!r}; give a local model folder or a hub name")
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length

    def model_source(self) -> str:
        """The local folder (resolved) when ``model`` is one, else the hub name."""
        local = Path(self.model).expanduser()
        return str(local.resolve()) if local.is_dir() else self.model

    def _load(self) -> None:
        st = require("sentence_transformers", "embeddings", "the cross_encoder scorer")
        device = self.device
        if device == "auto":
            torch = require("torch", "embeddings", "the cross_encoder scorer")
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.model_ = st.CrossEncoder(self.model_source(), device=device, max_length=self.max_length)
        except (OSError, ValueError) as exc:
            raise BackendError(
                "cross_encoder",
                f"cannot load cross-encoder {self.model!r} ({exc}). No cross-encoder is packaged: offline, give a "
                "local model folder; hub names need network access the first time.",
            ) from exc

    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray:
        """The cross-encoder's score of ``(question, text)`` per text, shape ``(len(texts),)``."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        self.warm_up()
        scores = self.model_.predict([(query.text, t) for t in texts], batch_size=self.batch_size,
                                     show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float64).reshape(len(texts), -1)[:, 0]
