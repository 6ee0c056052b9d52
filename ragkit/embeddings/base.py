"""The embedder contract: ``embed_documents(texts) -> ndarray``, ``embed_query(text) -> ndarray``.

Embedders are stateless after ``warm_up``; rows are L2-normalised float32 vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragkit.stage import Component


class Embedder(Component):
    """Base class for embedders. Subclasses implement ``embed_documents`` (and ``identity``)."""

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement embed_documents(texts)")

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query (defaults to the document embedding of the text)."""
        return self.embed_documents([text])[0]

    @property
    def identity(self) -> str:
        """What makes two embedders produce the same vectors (used in cache keys and manifests)."""
        return repr(self)

    def get_dimension(self) -> int:
        """Vector size (embeds a probe text unless the subclass knows it)."""
        return int(self.embed_documents(["dimension probe"]).shape[1])
