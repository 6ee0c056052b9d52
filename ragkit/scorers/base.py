"""The scorer contract: ``score(query, texts) -> ndarray`` of one float per text, higher is better.

Scorers are batched: one call scores many texts (a selector's whole expansion step). They are
used by selectors that search over chunk combinations (``corag``) and by the ``scorer`` reranker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragkit.stage import Component
from ragkit.types import Query


class Scorer(Component):
    """Base class for scorers; subclasses implement :meth:`score`."""

    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement score(query, texts)")
