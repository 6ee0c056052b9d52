"""``perplexity_filter``: drop chunks whose LM perplexity is abnormally high (the poisoning defence baseline).

The baseline METEORA compares with (METHODS.md §4.8, "perplexity defence"): injected or rewritten
passages often read unlike the corpus around them, so a chunk whose perplexity under a small causal
LM exceeds a threshold is flagged and dropped. Perplexity is ``exp(−mean log p)`` over the chunk's
tokens, from the backend's ``token_logprobs`` (every chunk one document, all in one batched call;
the LLM cache answers repeats across questions).

**Calibration on the corpus.** With ``threshold: null`` (default) the threshold is the
``quantile`` (default 0.95) of the perplexities of **calibration chunks**: the indexed chunks of the
candidates' documents (``context.chunks_of``), at most ``calibration_chunks`` per document taken at
evenly spaced positions. Each document is scored once and kept on the selector, so later questions
over the same documents cost nothing; :meth:`calibrate` sets the threshold explicitly from any
chunk texts (the evaluation calls it on the clean corpus). A fixed ``threshold`` skips calibration.
Without a context and without a threshold, the candidates themselves are the calibration set.

:meth:`trace` lists every flag (chunk id, type ``perplexity``, reason with the value and threshold)
and the threshold used.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.types import Chunk, Query, ScoredChunk
    >>> sel = PerplexityFilterSelector(llm=FakeLLM(), threshold=1e9)
    >>> cands = [ScoredChunk(Chunk("a", "d", "Cats purr softly.", 0, 17, 4), 1.0)]
    >>> [s.chunk.id for s in sel.select(Query.from_text("q"), cands)], sel.trace()["flags"]
    (['a'], [])
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field

from ragkit.llm.base import TOKEN_LOGPROBS
from ragkit.scorers._build import UsesBackends
from ragkit.selectors.base import Selector
from ragkit.stage import LLMRef
from ragkit.types import Query, ScoredChunk


class PerplexityFilterSelector(UsesBackends, Selector):
    """Keep candidates whose perplexity is at most the (calibrated) threshold, in their order.

    Args:
        llm: backend with ``token_logprobs`` (packaged SmolLM2 by default).
        threshold: fixed perplexity threshold; ``None`` calibrates on the corpus (see the module docs).
        quantile: the calibration quantile.
        calibration_chunks: at most this many chunks per document are scored for calibration.
        max_context: left-context cap per scored token (``None``: the backend's default).

    Example:
        >>> PerplexityFilterSelector().quantile
        0.95
    """

    needs_context: ClassVar[frozenset[str]] = frozenset({"chunks"})
    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({TOKEN_LOGPROBS})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        threshold: Annotated[float, Field(gt=0)] | None = None,
        quantile: Annotated[float, Field(gt=0, lt=1)] = 0.95,
        calibration_chunks: Annotated[int, Field(gt=0)] = 32,
        max_context: Annotated[int, Field(gt=0)] | None = None,
    ) -> None:
        self.llm = llm
        self.threshold = threshold
        self.quantile = quantile
        self.calibration_chunks = calibration_chunks
        self.max_context = max_context
        self._doc_perplexities: dict[str, list[float]] = {}
        self._calibrated: float | None = None
        self._trace: dict[str, Any] = {}

    def _load(self) -> None:
        self.llm_ = self._resolve(self.llm, "llm")

    def perplexities(self, texts: Sequence[str]) -> list[float]:
        """``exp(−mean log p)`` of each text's tokens (one batched ``token_logprobs`` call)."""
        self.warm_up()
        if not texts:
            return []
        results = self.llm_.token_logprobs_batch([[t] for t in texts], self.max_context)
        out = []
        for segments in results:
            values = np.asarray(segments[0], dtype=np.float64) if segments else np.zeros(0)
            values = values[np.isfinite(values)]
            out.append(float(math.exp(-values.mean())) if values.size else float("inf"))
        return out

    def calibrate(self, texts: Sequence[str]) -> float:
        """Set (and return) the threshold as the ``quantile`` of ``texts``' perplexities."""
        values = [v for v in self.perplexities(texts) if math.isfinite(v)]
        if not values:
            raise ValueError("perplexity_filter.calibrate: no text with a finite perplexity")
        self._calibrated = float(np.quantile(values, self.quantile))
        return self._calibrated

    def _threshold_for(self, candidates: Sequence[ScoredChunk], context: Any,
                       candidate_ppl: Sequence[float]) -> tuple[float, str]:
        if self.threshold is not None:
            return float(self.threshold), "fixed"
        if self._calibrated is not None:
            return self._calibrated, "calibrate()"
        if context is None:
            values = [v for v in candidate_ppl if math.isfinite(v)]
            return (float(np.quantile(values, self.quantile)) if values else float("inf")), "candidates"
        docs = list(dict.fromkeys(s.chunk.doc_id for s in candidates))
        todo = [d for d in docs if d not in self._doc_perplexities]
        texts: list[str] = []
        owners: list[str] = []
        for d in todo:
            chunks = context.chunks_of(d)
            if len(chunks) > self.calibration_chunks:
                picks = np.linspace(0, len(chunks) - 1, self.calibration_chunks).round().astype(int)
                chunks = [chunks[int(i)] for i in dict.fromkeys(picks.tolist())]
            texts.extend(c.text for c in chunks)
            owners.extend([d] * len(chunks))
        for owner, value in zip(owners, self.perplexities(texts)):
            self._doc_perplexities.setdefault(owner, []).append(value)
        values = [v for d in docs for v in self._doc_perplexities.get(d, []) if math.isfinite(v)]
        if not values:
            return float("inf"), "corpus (no chunks)"
        return float(np.quantile(values, self.quantile)), f"corpus ({len(values)} chunks of {len(docs)} documents)"

    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        """The candidates at or under the threshold, in their order."""
        start = time.perf_counter()
        cands = list(candidates)
        ppl = self.perplexities([s.chunk.text for s in cands])
        threshold, source = self._threshold_for(cands, context, ppl)
        kept, flags = [], []
        for scored, value in zip(cands, ppl):
            if value > threshold:
                flags.append({"chunk_id": scored.chunk.id, "doc_id": scored.chunk.doc_id, "type": "perplexity",
                              "reason": f"perplexity {value:.1f} > threshold {threshold:.1f}", "perplexity": value})
            else:
                kept.append(scored)
        self._trace = {"threshold": threshold, "calibration": source, "quantile": self.quantile,
                       "checked": len(cands), "accepted": len(kept), "flagged": len(flags), "flags": flags,
                       "perplexities": {s.chunk.id: v for s, v in zip(cands, ppl)},
                       "seconds": time.perf_counter() - start}
        return kept

    def trace(self) -> Mapping[str, Any]:
        """Flags (chunk id, type, reason), the threshold and where it came from, per-chunk perplexities."""
        return dict(self._trace)
