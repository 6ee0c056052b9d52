"""``token_budget``: ranked chunks while the running token count stays within the budget ``B``.

Candidates are taken in rank order while ``sum(tokens) <= budget``; selection stops at the first chunk
that would exceed it (it is not skipped in favour of a smaller later one, so the result is always a
prefix of the ranking). At least one chunk is returned when there are candidates, even if the first
alone exceeds the budget. This is the selector of the evaluation's ``budget`` protocol (B = 1,000).

Tokens are counted with ``tokenizer`` (default ``minilm``, the tokenizer chunkers count with): a
chunk's stored ``token_count`` is used when it was counted with the same tokenizer
(``metadata["tokenizer"]`` if present, else ``minilm``); otherwise the text is re-counted.

Example:
    >>> from ragkit.types import Chunk, Query, ScoredChunk
    >>> ranked = [ScoredChunk(Chunk(str(i), "d", "t", 0, 1, n), 1.0) for i, n in enumerate([400, 500, 300])]
    >>> [s.chunk.id for s in TokenBudgetSelector(budget=1000).select(Query.from_text("q"), ranked)]
    ['0', '1']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ragkit.selectors.base import Selector
from ragkit.types import Chunk, Query, ScoredChunk


class TokenBudgetSelector(Selector):
    """Take ranked chunks while the running token count stays ``<= budget`` (at least one).

    Example:
        >>> TokenBudgetSelector(budget=512).tokenizer
        'minilm'
    """

    def __init__(self, *, budget: Annotated[int, Field(gt=0)] = 1000, tokenizer: str = "minilm") -> None:
        self.budget = budget
        self.tokenizer = tokenizer

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self.tokenizer_ = get_tokenizer(self.tokenizer)

    def tokens(self, chunk: Chunk) -> int:
        """The chunk's size in ``tokenizer`` tokens (stored count when it was made with that tokenizer)."""
        if chunk.metadata.get("tokenizer", "minilm") == self.tokenizer:
            return int(chunk.token_count)
        self.warm_up()
        return int(self.tokenizer_.count(chunk.text))

    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        """The longest prefix of ``candidates`` whose total tokens fit the budget (never empty if any)."""
        selected: list[ScoredChunk] = []
        used = 0
        for scored in candidates:
            size = self.tokens(scored.chunk)
            if selected and used + size > self.budget:
                break
            if not selected and size > self.budget:
                selected.append(scored)
                break
            selected.append(scored)
            used += size
        return selected
