"""``meteora``: rationale-driven evidence selection with no k to tune (METEORA, METHODS.md §4).

An LLM writes query-specific **rationales** (search strategies, each with flag instructions;
:mod:`ragkit.selectors._rationales`), then the **Evidence Chunk Selection Engine**
(:mod:`ragkit.selectors._ecse`) selects ``pairing ∪ pooled-rationale elbow ∪ neighbour expansion``
and returns the union in document order.

**Scope** (the paper selects inside one long document and does not address corpora):

- ``scope: document`` (default): the documents of the retrieved candidates, in the order of their
  best candidate; each document is selected on **all** its indexed chunks
  (``context.chunks_of(doc_id)``), as in the paper; documents are concatenated in that order.
  ``max_documents`` bounds how many (default 3) since every chunk of a document is embedded.
- ``scope: pool``: pairing and elbow over the candidate pool itself (useful when documents are
  short passages, e.g. multi-hop corpora); expansion still adds index neighbours. The result is
  grouped by document (order of best candidate) and in document order inside each.

Expansion goes through the query context (``context.neighbors(chunk_id, window)``), so it stays
inside a document and stops at its edges. Embeddings come from ``embedder`` (the pipeline's
backend ``default``; the chunk vectors are answered by the embedding cache after the first query).
The paper's encoder is SBERT; METHODS.md names no likelihood scorer for ECSE, so none is used.

**Rationale format**: ``rationale_format: auto`` asks for JSON under :data:`RATIONALE_SCHEMA
<ragkit.selectors._rationales.RATIONALE_SCHEMA>` when the backend has ``structured_output`` and the
paper's ``<rationale_i>`` tags otherwise; ``json`` / ``tags`` force one. Decoding follows the paper
(T = 0.7, 768 new tokens with flag instructions, up to 3 attempts); a fixed ``seed`` makes the
sampled reply cacheable. Failed attempts are reported in :meth:`trace`; when all fail the query
itself is the one rationale (``fallback: true``).

**Hand-off to the verifier**: every returned chunk carries ``metadata["meteora"]`` =
``{"via": [...], "rationales": [...]}`` (which ECSE sets selected it, which rationales paired with it)
and ``metadata["flag_instructions"]`` = the rationales' flag instructions, which a later
``verifier`` link reads (chunk text, id and offsets are unchanged).

Example:
    >>> from ragkit.context import QueryContext
    >>> from ragkit.testing import FakeEmbedder, FakeLLM
    >>> from ragkit.types import Chunk, Document, Query, ScoredChunk
    >>> doc = Document.from_text("Cats purr. Dogs bark. Cows moo. Owls hoot.")
    >>> chunks = [Chunk.from_span(doc, s, e, 2) for s, e in [(0, 10), (11, 21), (22, 31), (32, 42)]]
    >>> reply = "<rationale_1>[Dogs] Find dogs bark. Flag Instructions: flag cats.</rationale_1>"
    >>> sel = MeteoraSelector(llm=FakeLLM(mode="fixed", responses=[reply]), embedder=FakeEmbedder(),
    ...                       rationale_format="tags")
    >>> out = sel.select(Query.from_text("Which animal barks?"), [ScoredChunk(chunks[3], 1.0)], QueryContext(chunks))
    >>> [s.chunk.text for s in out]
    ['Cats purr.', 'Dogs bark.', 'Cows moo.']
    >>> out[1].chunk.metadata["meteora"]["via"], sel.trace()["rationales"][0]["label"]
    (['pairing', 'elbow'], 'Dogs')
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.llm.base import GENERATE, STRUCTURED_OUTPUT
from ragkit.scorers._build import UsesBackends
from ragkit.selectors._ecse import Z_THRESHOLD, EvidenceSelection, expand, select_evidence
from ragkit.selectors._rationales import Rationale, RationaleResult, generate_rationales
from ragkit.selectors.base import Selector
from ragkit.stage import EmbedderRef, LLMRef
from ragkit.types import Chunk, Query, ScoredChunk


class MeteoraSelector(UsesBackends, Selector):
    """Rationales → ECSE (pairing ∪ elbow ∪ expansion) → the union in document order.

    Args:
        llm: the rationale generator (a backend name in a config, an instance in Python).
        embedder: the sentence encoder for rationales and chunks (default: the pipeline's ``default``).
        scope: ``document`` (each candidate document on all its chunks) or ``pool`` (the candidates).
        window: neighbours added on each side of every paired or elbow chunk (paper: 1).
        distinct_pairing: each rationale takes a chunk no earlier rationale took (experiment code).
        z_threshold: the elbow's z-score threshold (paper code: 1.0).
        num_rationales: how many rationales the prompt asks for (paper: 8-10).
        rationale_format: ``auto`` (JSON when the backend constrains output, else tags), ``json``, ``tags``.
        max_tokens, temperature, seed, attempts: rationale decoding (paper: 768, 0.7, -, 3).
        max_documents: with ``scope: document``, at most this many candidate documents are selected in.

    Example:
        >>> MeteoraSelector().scope, MeteoraSelector().window
        ('document', 1)
    """

    needs_context: ClassVar[frozenset[str]] = frozenset({"chunks", "embedder"})
    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({GENERATE})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        embedder: EmbedderRef = "default",
        scope: Literal["document", "pool"] = "document",
        window: Annotated[int, Field(ge=0)] = 1,
        distinct_pairing: bool = False,
        z_threshold: float = Z_THRESHOLD,
        num_rationales: Annotated[int, Field(ge=1, le=10)] = 8,
        rationale_format: Literal["auto", "json", "tags"] = "auto",
        max_tokens: Annotated[int, Field(gt=0)] = 768,
        temperature: Annotated[float, Field(ge=0)] = 0.7,
        seed: int | None = 0,
        attempts: Annotated[int, Field(ge=1)] = 3,
        max_documents: Annotated[int, Field(ge=1)] = 3,
    ) -> None:
        self.llm = llm
        self.embedder = embedder
        self.scope = scope
        self.window = window
        self.distinct_pairing = distinct_pairing
        self.z_threshold = z_threshold
        self.num_rationales = num_rationales
        self.rationale_format = rationale_format
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.attempts = attempts
        self.max_documents = max_documents
        self._trace: dict[str, Any] = {}

    # ------------------------------------------------------------------ collaborators
    def _load(self) -> None:
        self.llm_ = self._resolve(self.llm, "llm")

    def _embedder(self, context: Any) -> Any:
        if not isinstance(self.embedder, (str, Mapping)):
            return self.embedder
        if self.embedder == "default" and context is not None:
            try:
                return context.embedder
            except Exception:  # a context without an embedder: resolve the default ourselves
                pass
        if not hasattr(self, "embedder_"):
            self.embedder_ = self._resolve(self.embedder, "embedder")
        return self.embedder_

    def resolved_format(self) -> str:
        """``json`` or ``tags``: what ``rationale_format`` means for this selector's LLM."""
        if self.rationale_format != "auto":
            return self.rationale_format
        self.warm_up()
        supports = getattr(self.llm_, "supports", None)
        return "json" if callable(supports) and supports(STRUCTURED_OUTPUT) else "tags"

    def rationales(self, query: Query) -> RationaleResult:
        """Generate (or read from the LLM cache) the query's rationales."""
        self.warm_up()
        return generate_rationales(self.llm_, query.text, fmt=self.resolved_format(),  # type: ignore[arg-type]
                                   n=self.num_rationales, max_tokens=self.max_tokens,
                                   temperature=self.temperature, seed=self.seed, attempts=self.attempts)

    # ------------------------------------------------------------------ selection
    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        """The ECSE union over the candidates' documents (or the pool), in document order."""
        start = time.perf_counter()
        cands = list(candidates)
        if not cands:
            self._trace = {"scope": self.scope, "selected": 0, "documents": [], "rationales": [], "seconds": 0.0}
            return []
        result = self.rationales(query)
        embedder = self._embedder(context)
        r_vecs = np.asarray(embedder.embed_documents([r.text for r in result.rationales]), dtype=np.float64)
        score_of = {s.chunk.id: s.score for s in cands}
        doc_order = list(dict.fromkeys(s.chunk.doc_id for s in cands))
        groups: list[tuple[str, list[Chunk]]]
        if self.scope == "document":
            if context is None:
                raise ValueError("meteora with scope: document needs the query context (a pipeline gives it)")
            groups = [(d, context.chunks_of(d) or [s.chunk for s in cands if s.chunk.doc_id == d])
                      for d in doc_order[: self.max_documents]]
        else:
            groups = [("pool", [s.chunk for s in cands])]
        picked: dict[str, tuple[Chunk, list[str], list[int]]] = {}
        per_group: list[dict[str, Any]] = []
        for name, chunks in groups:
            vecs = np.asarray(embedder.embed_documents([c.text for c in chunks]), dtype=np.float64)
            ecse = select_evidence(r_vecs, vecs, window=0, distinct=self.distinct_pairing,
                                   z_threshold=self.z_threshold)
            core = sorted(set(ecse.paired) | set(ecse.elbow))
            for p in core:
                rats = [i for i, q in enumerate(ecse.paired) if q == p]
                picked[chunks[p].id] = (chunks[p], ecse.via(p), rats)
            added = self._expand([chunks[p] for p in core], chunks, context)
            for chunk in added:
                picked.setdefault(chunk.id, (chunk, ["expansion"], []))
            per_group.append(self._group_trace(name, chunks, ecse, core, added))
        ordered = self._document_order(picked, doc_order)
        flags = [r.flag_instructions for r in result.rationales if r.flag_instructions]
        out = []
        for chunk, via, rats in ordered:
            meta = {**chunk.metadata, "meteora": {"via": via, "rationales": rats}, "flag_instructions": flags}
            out.append(ScoredChunk(replace(chunk, metadata=meta), float(score_of.get(chunk.id, 0.0)), "meteora"))
        self._trace = {
            "scope": self.scope, "format": result.format, "attempts": result.attempts,
            "parse_failures": result.failures, "fallback": result.fallback,
            "rationales": [r.to_dict() for r in result.rationales],
            "documents": per_group, "selected": len(out), "selected_ids": [s.chunk.id for s in out],
            "seconds": time.perf_counter() - start,
        }
        return out

    def _expand(self, core: list[Chunk], chunks: list[Chunk], context: Any) -> list[Chunk]:
        """The ``window`` neighbours of ``core`` chunks not in it (through the context when there is one)."""
        if self.window <= 0 or not core:
            return []
        core_ids = {c.id for c in core}
        found: dict[str, Chunk] = {}
        for chunk in core:
            if context is not None:
                try:
                    neighbours = context.neighbors(chunk.id, self.window)
                except Exception:  # a chunk the index does not hold (pool of external candidates)
                    neighbours = []
            else:
                neighbours = []
            if not neighbours:
                index = next(i for i, c in enumerate(chunks) if c.id == chunk.id)
                same_doc = [c for c in chunks if c.doc_id == chunk.doc_id]
                same_doc.sort(key=lambda c: (c.start, c.end))
                local = same_doc.index(chunks[index])
                neighbours = [same_doc[p] for p in expand([local], len(same_doc), self.window)]
            for n in neighbours:
                if n.id not in core_ids:
                    found.setdefault(n.id, n)
        return list(found.values())

    @staticmethod
    def _document_order(picked: Mapping[str, tuple[Chunk, list[str], list[int]]],
                        doc_order: list[str]) -> list[tuple[Chunk, list[str], list[int]]]:
        rank = {d: i for i, d in enumerate(doc_order)}
        return sorted(picked.values(), key=lambda t: (rank.get(t[0].doc_id, len(rank)), t[0].doc_id,
                                                      t[0].start, t[0].end))

    @staticmethod
    def _group_trace(name: str, chunks: list[Chunk], ecse: EvidenceSelection, core: list[int],
                     added: list[Chunk]) -> dict[str, Any]:
        ids = [c.id for c in chunks]
        return {"doc_id": name, "chunks": len(chunks), "paired": [ids[p] for p in ecse.paired],
                "elbow": [ids[p] for p in ecse.elbow], "expanded": [c.id for c in added],
                "elbow_kept": len(ecse.elbow), "core": len(core)}

    def trace(self) -> Mapping[str, Any]:
        """Rationales, parse failures, per-document pairing/elbow/expansion ids, selected count."""
        return dict(self._trace)


def flag_instructions_of(candidates: Sequence[ScoredChunk]) -> list[str]:
    """The distinct flag instructions a ``meteora`` link attached to ``candidates`` (order kept).

    Example:
        >>> flag_instructions_of([])
        []
    """
    seen: dict[str, None] = {}
    for scored in candidates:
        for text in scored.chunk.metadata.get("flag_instructions") or ():
            seen.setdefault(str(text), None)
    return list(seen)


__all__ = ["MeteoraSelector", "Rationale", "flag_instructions_of"]
