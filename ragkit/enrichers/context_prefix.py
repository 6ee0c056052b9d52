"""``context_prefix``: a short LLM-written description of where a chunk sits in its document.

For every chunk it stores ``chunk.metadata["context"]`` (``key``) =
``{"title": ..., "heading_path": [...], "summary": "<one situating sentence>"}``: the document title
and heading path come from the document (no LLM), the sentence from one LLM call that sees the
start of the document and the chunk (the "contextual retrieval" idea). ``chunk.text`` is never
changed; the ``prefix_fusion`` view puts this context in front of the text only when embedding
(:func:`context_line` renders it).

Like :class:`~ragkit.enrichers.llm_metadata.LLMMetadataEnricher`: versioned prompt
(:data:`CONTEXT_PROMPT`), requests ``batch_size`` at a time (device batches or bounded
concurrency), cached through the pipeline's LLM wrapper, retries, a report in ``last_report_``,
and a chunk whose answer stays empty keeps title and heading path without a summary (reported,
never dropped).

Example:
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("Setup. Install the CLI first.", {"title": "Guide"})
    >>> llm = FakeLLM(mode="fixed", responses=["How to install the tool, from the guide's setup part."])
    >>> chunk = ContextPrefixEnricher(llm=llm).enrich([Chunk.from_span(doc, 7, 29, 5)], {doc.id: doc})[0]
    >>> chunk.metadata["context"]["title"], context_line(chunk.metadata["context"])
    ('Guide', "Guide: How to install the tool, from the guide's setup part.")
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import Field

from ragkit.enrichers._common import (
    EnrichmentReport,
    MetadataWarning,
    clip,
    docs_for,
    document_title,
    generate_validated,
    heading_path_text,
    progress,
)
from ragkit.enrichers.base import Enricher
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import LLMRef
from ragkit.types import Chunk, Document

#: The situating prompt. Bump the version whenever the wording changes (it is part of the cache key).
CONTEXT_PROMPT = PromptTemplate(
    "context_prefix",
    1,
    system="You explain where a passage sits within its document. Answer with one short sentence.",
    text=(
        "Document: {title}\n{section}"
        "Beginning of the document:\n\"\"\"\n{document}\n\"\"\"\n\n"
        "Passage from this document:\n\"\"\"\n{text}\n\"\"\"\n\n"
        "In one short sentence, say what this passage covers and how it fits into the document."
    ),
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_WORD = re.compile(r"\w{2,}")


def context_line(context: Mapping[str, Any] | None, separator: str = " > ") -> str:
    """Render stored context as one line: ``"Title > Section: summary"`` (empty parts left out).

    Example:
        >>> context_line({"title": "Guide", "heading_path": ["Install"], "summary": "Linux steps."})
        'Guide > Install: Linux steps.'
        >>> context_line({})
        ''
    """
    if not isinstance(context, Mapping):
        return ""
    head = separator.join(p for p in [str(context.get("title") or "").strip(),
                                      heading_path_text(context.get("heading_path"), separator)] if p)
    summary = str(context.get("summary") or "").strip()
    if head and summary:
        return f"{head}: {summary}"
    return head or summary


class ContextPrefixEnricher(Enricher):
    """Stores ``{title, heading_path, summary}`` under ``metadata[key]``; the summary is LLM-written.

    Parameters:
        llm: the LLM backend (a name under ``backends.llm`` in YAML, an instance in Python).
        key: metadata key (default ``context``; ``prefix_fusion`` reads it).
        max_tokens: output budget of the situating sentence.
        max_summary_chars: the stored sentence is clipped to this length.
        max_document_chars: how much of the document's beginning the prompt shows.
        max_input_chars: the chunk text is clipped to this many characters in the prompt only.
        max_retries: re-asks when the answer is empty.
        batch_size: requests per ``generate`` call (device batch / concurrency unit).
        show_progress: tqdm bar on stderr (``None``: when ragkit logs at INFO).

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> ContextPrefixEnricher(llm=FakeLLM()).key
        'context'
    """

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "context",
        max_tokens: Annotated[int, Field(gt=0, le=512)] = 48,
        max_summary_chars: Annotated[int, Field(ge=20)] = 200,
        max_document_chars: Annotated[int, Field(ge=0)] = 1000,
        max_input_chars: Annotated[int, Field(ge=100)] = 1500,
        max_retries: Annotated[int, Field(ge=0, le=5)] = 1,
        batch_size: Annotated[int, Field(gt=0)] = 32,
        show_progress: bool | None = None,
    ) -> None:
        self.llm = llm
        self.key = key
        self.max_tokens = max_tokens
        self.max_summary_chars = max_summary_chars
        self.max_document_chars = max_document_chars
        self.max_input_chars = max_input_chars
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.last_report_: EnrichmentReport | None = None

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({"generate"})}

    def request_for(self, chunk: Chunk, doc: Document | None) -> GenerationRequest:
        """The generation request for one chunk."""
        title = document_title(doc) or "(untitled)"
        section = heading_path_text(chunk.metadata.get("heading_path"))
        beginning = clip(doc.text.strip(), self.max_document_chars) if doc is not None else ""
        return CONTEXT_PROMPT.request(
            title=title,
            section=f"Section: {section}\n\n" if section else "\n",
            document=beginning or "(not available)",
            text=clip(chunk.text.strip(), self.max_input_chars),
            max_tokens=self.max_tokens,
            stop=("\n\n",),
        )

    def _parse(self, completion: Completion) -> str:
        text = " ".join(completion.text.replace('"""', " ").split()).strip(" \"'")
        parts = _SENTENCE_END.split(text, maxsplit=1)
        sentence = parts[0] if parts else ""
        if len(_WORD.findall(sentence)) < 3:
            raise ValueError(f"expected one sentence of at least three words, got {completion.text[:120]!r}")
        return clip(sentence, self.max_summary_chars)

    def _retry(self, request: GenerationRequest, previous: Completion | None, error: str) -> GenerationRequest:
        messages = list(request.messages or ())[:2]
        messages.append({"role": "assistant", "content": (previous.text if previous else "")[:500] or "..."})
        messages.append({"role": "user", "content": "Please answer with one complete sentence of 10 to 25 words."})
        return request.with_messages(messages)

    def enrich(self, chunks: Sequence[Chunk], docs: Mapping[str, Document] | None = None) -> list[Chunk]:
        """Return ``chunks`` (same order, text and offsets) with ``metadata[key]`` set."""
        enriched, _ = self.enrich_with_report(chunks, docs)
        return enriched

    def enrich_with_report(self, chunks: Sequence[Chunk],
                           docs: Mapping[str, Document] | None = None) -> tuple[list[Chunk], EnrichmentReport]:
        """Like :meth:`enrich`, also returning the :class:`EnrichmentReport`."""
        start = time.perf_counter()
        chunks = list(chunks)
        by_id = docs_for(chunks, docs)
        report = EnrichmentReport("context_prefix", chunks=len(chunks))
        if not chunks:
            self.last_report_ = report
            return [], report
        if hasattr(self.llm, "warm_up"):
            self.llm.warm_up()
        order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].text))
        requests = [self.request_for(chunks[i], by_id.get(chunks[i].doc_id)) for i in order]
        bar = progress(len(chunks), "context prefix", self.show_progress)
        try:
            answers = generate_validated(self.llm, requests, self._parse, retry=self._retry,
                                         max_retries=self.max_retries, batch_size=self.batch_size,
                                         report=report, bar=bar)
        finally:
            bar.close()
        out = list(chunks)
        for position, (summary, error) in zip(order, answers):
            chunk = chunks[position]
            context: dict[str, Any] = {
                "title": document_title(by_id.get(chunk.doc_id)),
                "heading_path": _path_list(chunk.metadata.get("heading_path")),
            }
            if error is None:
                report.valid += 1
                context["summary"] = summary
            else:
                report.invalid_ids.append(chunk.id)
                report.errors[chunk.id] = error
            out[position] = chunk.with_metadata(**{self.key: context})
        rank = {c.id: i for i, c in enumerate(chunks)}
        report.invalid_ids.sort(key=rank.__getitem__)
        report.seconds = time.perf_counter() - start
        self.last_report_ = report
        if report.invalid_ids:
            warnings.warn(report.warning_text(), MetadataWarning, stacklevel=2)
        return out, report


def _path_list(path: Any) -> list[str]:
    if isinstance(path, str):
        return [path] if path.strip() else []
    return [str(p) for p in path or ()]
