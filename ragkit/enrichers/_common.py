"""Helpers shared by the LLM enrichers: document titles, heading paths, progress bars, reports, and a generate loop that validates every answer, retries the invalid ones and never loses a chunk.

Example:
    >>> from ragkit.types import Document
    >>> document_title(Document.from_text("x", {"title": "Guide"}))
    'Guide'
    >>> heading_path_text(["Guide", "Install", "Linux"])
    'Guide > Install > Linux'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ragkit.errors import RagkitWarning, StructuredOutputError
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.types import Chunk, Document

log = logging.getLogger("ragkit.enrichers")


class MetadataWarning(RagkitWarning):
    """Some chunks kept empty metadata because the LLM's output stayed invalid after retries."""


def document_title(doc: Document | None) -> str:
    """A human title for a document: ``metadata.title``, its first top-level heading, or its source name."""
    if doc is None:
        return ""
    meta = doc.metadata
    for key in ("title", "name"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    headings = doc.headings
    if headings:
        top = min(h[2] for h in headings)
        first = next(h for h in headings if h[2] == top)
        if str(first[3]).strip():
            return " ".join(str(first[3]).split())
    for key in ("source_id", "source", "path"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return PurePath(value).stem if ("/" in value or "." in value) else value
    return ""


def heading_path_text(path: Any, separator: str = " > ") -> str:
    """``["A", "B"]`` → ``"A > B"`` (strings pass through, anything else gives ``""``)."""
    if isinstance(path, str):
        return " ".join(path.split())
    if isinstance(path, (list, tuple)):
        return separator.join(" ".join(str(p).split()) for p in path if str(p).strip())
    return ""


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with ``…`` when cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def progress(total: int, desc: str, enabled: bool | None) -> Any:
    """Progress on stderr by :mod:`ragkit.progress`'s policy (``enabled=None``: for more than one chunk)."""
    from ragkit.progress import progress as phase_progress

    return phase_progress(total, desc, "chunk", show=enabled)


@dataclass
class EnrichmentReport:
    """What one ``enrich`` call did.

    ``invalid_ids`` are the chunks that kept empty metadata (their last error in ``errors``);
    they are still in the returned list, never dropped.

    Example:
        >>> r = EnrichmentReport("llm_metadata", chunks=4, valid=3, invalid_ids=["c9"])
        >>> r.valid_rate
        0.75
    """

    stage: str
    chunks: int = 0
    valid: int = 0
    invalid_ids: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    retried: int = 0
    requests: int = 0
    cached: int = 0
    precomputed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def valid_rate(self) -> float:
        """Share of chunks that got valid output (1.0 for no chunks)."""
        return self.valid / self.chunks if self.chunks else 1.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "chunks": self.chunks, "valid": self.valid, "valid_rate": round(self.valid_rate, 4),
                "invalid_ids": list(self.invalid_ids), "errors": dict(self.errors), "retried": self.retried,
                "requests": self.requests, "cached": self.cached, "precomputed": self.precomputed, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3)}

    def warning_text(self) -> str:
        shown = ", ".join(i[:12] for i in self.invalid_ids[:10])
        more = f" and {len(self.invalid_ids) - 10} more" if len(self.invalid_ids) > 10 else ""
        first = next(iter(self.errors.values()), "")
        return (f"{self.stage}: {len(self.invalid_ids)} of {self.chunks} chunk(s) got no LLM metadata because the "
                f"LLM output stayed invalid after retries (ids {shown}{more}; first error: {first}). The chunks are "
                "indexed without it; a stronger model, a smaller schema or more max_tokens usually helps.")


Parser = Callable[[Completion], Any]


def generate_validated(
    llm: Any,
    requests: Sequence[GenerationRequest],
    parse: Parser,
    *,
    retry: Callable[[GenerationRequest, Completion | None, str], GenerationRequest] | None,
    max_retries: int,
    batch_size: int,
    report: EnrichmentReport,
    bar: Any = None,
) -> list[tuple[Any, str | None]]:
    """Run ``requests`` in groups of ``batch_size``; parse each answer; retry the invalid ones.

    Returns one ``(value, error)`` per request, in order: ``value`` is ``parse``'s result (``error``
    ``None``) or ``None`` with the last error. A :class:`StructuredOutputError` from the backend (or
    its caching wrapper, which retries invalid JSON itself) is final for that request only; answers
    that come back but fail ``parse`` are re-asked through ``retry`` up to ``max_retries`` times.
    Other backend errors propagate.
    """
    results: list[tuple[Any, str | None]] = [(None, "not generated")] * len(requests)
    pending = list(range(len(requests)))
    current = list(requests)
    previous: dict[int, Completion | None] = {}
    for attempt in range(max_retries + 1):
        if not pending:
            break
        if attempt:
            report.retried += len(pending)
            current = list(current)
            for i in pending:
                current[i] = retry(current[i], previous.get(i), results[i][1] or "") if retry else current[i]
        still: list[int] = []
        for start in range(0, len(pending), batch_size):
            group = pending[start: start + batch_size]
            answers = _generate_group(llm, [current[i] for i in group], report)
            for i, answer in zip(group, answers):
                if isinstance(answer, str):  # the backend's own structured-output retries are spent: final
                    results[i], previous[i] = (None, answer), None
                    continue
                previous[i] = answer
                try:
                    results[i] = (parse(answer), None)
                except ValueError as exc:
                    results[i] = (None, str(exc))
                    still.append(i)
            if bar is not None and attempt == 0:
                bar.update(len(group))
        pending = still
    return results


def _generate_group(llm: Any, requests: list[GenerationRequest], report: EnrichmentReport) -> list[Completion | str]:
    """Completions for ``requests``; a string (the error) in place of a request whose structured output failed in the backend or its caching wrapper (which has already retried it with the error).

    Uses the wrapper's ``generate_outcomes`` when there is one (failures come back in place), else
    ``generate``; a failed group is then re-run one request at a time so its valid answers are kept.
    """
    report.requests += len(requests)
    outcomes_fn = getattr(type(llm), "generate_outcomes", None)
    completions: list[Any]
    if outcomes_fn is not None:
        completions = list(llm.generate_outcomes(requests))
    else:
        try:
            completions = list(llm.generate(requests))
        except StructuredOutputError as exc:
            if len(requests) == 1:
                completions = [exc]
            else:
                completions = []
                for request in requests:
                    try:
                        completions.extend(llm.generate([request]))
                    except StructuredOutputError as one:
                        completions.append(one)
    if len(completions) != len(requests):
        raise RuntimeError(f"backend returned {len(completions)} completions for {len(requests)} requests")
    out: list[Completion | str] = []
    for c in completions:
        if isinstance(c, StructuredOutputError):
            out.append(f"structured output failed: {c}")
            continue
        report.cached += int(c.cached)
        report.prompt_tokens += c.prompt_tokens
        report.completion_tokens += c.completion_tokens
        out.append(c)
    return out


def docs_for(chunks: Sequence[Chunk], docs: Mapping[str, Document] | Sequence[Document] | None) -> dict[str, Document]:
    """``docs`` as a ``{doc_id: Document}`` mapping (accepts a list too)."""
    if docs is None:
        return {}
    if isinstance(docs, Mapping):
        return dict(docs)
    return {d.id: d for d in docs}


def elapsed(start: float) -> float:
    return time.perf_counter() - start
