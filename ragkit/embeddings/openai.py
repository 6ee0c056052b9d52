"""Embeddings from OpenAI or any OpenAI-compatible ``/embeddings`` endpoint (vLLM, llama.cpp, Ollama).

Texts go in batches of ``batch_size`` on at most ``concurrency`` threads, each request with a timeout
and bounded retries (see :class:`ragkit.llm.openai_backend.OpenAIConnection`); rows come back in input
order as L2-normalised float32 vectors. The API key is read from the environment variable named by
``api_key_env``; unset, ``$OPENAI_API_KEY`` is sent to OpenAI's own endpoint only (see
:meth:`~ragkit.llm.openai_backend.OpenAIConnection.api_key`).

Example:
    >>> emb = OpenAIEmbedder(base_url="http://127.0.0.1:8766/v1", model="smollm2", api_key_env=None)
    >>> emb.identity
    'openai:http://127.0.0.1:8766/v1:smollm2:None'
    >>> emb.embed_documents(["a cat", "a dog"]).shape                      # doctest: +SKIP
    (2, 576)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ragkit.embeddings.base import Embedder
from ragkit.errors import BackendError
from ragkit.llm.openai_backend import OpenAIConnection, run_concurrently
from ragkit.usage import active_scopes, record_usage


class OpenAIEmbedder(Embedder):
    """Embedder over an OpenAI-compatible ``/embeddings`` endpoint.

    Example:
        >>> OpenAIEmbedder(model="text-embedding-3-small", dimensions=256).get_params()["dimensions"]
        256
    """

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key_env: str | None = None,
        dimensions: Annotated[int, Field(gt=0)] | None = None,
        batch_size: Annotated[int, Field(gt=0, le=2048)] = 64,
        concurrency: Annotated[int, Field(gt=0, le=64)] = 4,
        timeout: Annotated[float, Field(gt=0)] = 60.0,
        max_retries: Annotated[int, Field(ge=0, le=10)] = 3,
        backoff_s: Annotated[float, Field(ge=0)] = 0.5,
        normalize: bool = True,
        show_progress: bool | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.normalize = normalize
        self.show_progress = show_progress

    @property
    def identity(self) -> str:
        return f"openai:{self.base_url or 'https://api.openai.com/v1'}:{self.model}:{self.dimensions}"

    def _load(self) -> None:
        self.connection_ = OpenAIConnection("openai-embeddings", base_url=self.base_url, api_key_env=self.api_key_env,
                                            timeout=self.timeout, max_retries=self.max_retries,
                                            backoff_s=self.backoff_s)
        self.connection_.api_key()

    def _embed_batch(self, texts: list[str], scopes: tuple[Any, ...]) -> np.ndarray:
        kwargs: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        response = self.connection_.call(lambda c: c.embeddings.create(**kwargs), "embeddings request")
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise BackendError("openai-embeddings", f"the server at {self.connection_.base_label} returned "
                                                    f"{len(rows)} embeddings for {len(texts)} inputs")
        vectors = [np.asarray(r.embedding, dtype=np.float32) for r in rows]
        if any(v.ndim != 1 for v in vectors):
            raise BackendError("openai-embeddings", f"the server at {self.connection_.base_label} returned per-token "
                                                    "embeddings instead of one vector per input; start it with a "
                                                    "pooling type (llama.cpp: --pooling_type 1 for mean pooling)")
        record_usage(scopes=scopes, embedding_calls=1, embedded_texts=len(texts))
        return np.stack(vectors)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        texts = [t if t else " " for t in texts]  # some servers reject empty strings
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        scopes = active_scopes()
        batches = [texts[i: i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        parts = run_concurrently(batches, lambda b: self._embed_batch(b, scopes), self.concurrency,
                                 "openai embeddings", self.show_progress)
        matrix = np.concatenate(parts, axis=0).astype(np.float32)
        if self.normalize:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms == 0, 1.0, norms)
        return matrix
