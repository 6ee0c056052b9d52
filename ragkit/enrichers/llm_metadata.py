"""``llm_metadata``: one LLM call per chunk returning schema-validated JSON metadata.

The metadata goes to ``chunk.metadata["llm"]`` (``key``), so filters read it with dotted keys
(``filter: {llm.content_type: Procedural}``) and the ``prefix_fusion`` / ``tfidf_weighted`` /
``tfidf_concat`` embedding views use it. ``chunk.text`` is never changed, and the chunk-size limits
apply to the text alone: metadata lives beside the text, not in it.

How a call goes:

1. The prompt (:data:`METADATA_PROMPT`, versioned, so editing it invalidates cached answers) gives
   the document title and heading path, the chunk text (clipped to ``max_input_chars`` for the
   prompt only) and one line per schema field.
2. The request carries the schema's JSON schema, so backends with constrained decoding
   (``transformers`` via a logits processor, ``llama_cpp`` grammars, ``openai`` ``response_format``)
   can only produce valid JSON. Requests go to the backend ``batch_size`` at a time: the local
   backend batches them on the device, the ``openai`` backend runs them with bounded concurrency,
   and the pipeline's caching wrapper answers repeated calls from the cache.
3. Every answer is parsed and validated (and lightly normalised: whitespace, duplicate and excess
   list items). Invalid answers are retried up to ``max_retries`` times with the validation error
   in the conversation. A chunk whose output stays invalid keeps empty metadata (``{}``) and is
   reported (a :class:`~ragkit.enrichers._common.MetadataWarning` with the count and ids, and
   :attr:`LLMMetadataEnricher.last_report_`); it is never dropped.

Schemas: ``profile: default`` (content type, keywords, entities, summary, intents, potential
questions), ``profile: compact`` (six short fields within 96 output tokens), a YAML field list in
``fields`` or, from Python, a pydantic model class in ``model`` (see :mod:`ragkit.enrichers.schema`).

Example:
    >>> import json
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.types import Document, Chunk
    >>> answer = {"content_type": "Procedural", "intent": "How-To", "topic": "oil change",
    ...           "keywords": ["oil", "filter"], "entities": [], "question": "How do I change the oil?"}
    >>> enricher = LLMMetadataEnricher(llm=FakeLLM(mode="fixed", responses=[json.dumps(answer)]), profile="compact")
    >>> doc = Document.from_text("Drain the oil, then replace the filter.")
    >>> chunk = enricher.enrich([Chunk.from_span(doc, 0, 39, 9)], {doc.id: doc})[0]
    >>> chunk.metadata["llm"]["content_type"], chunk.text == doc.text
    ('Procedural', True)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field

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
from ragkit.enrichers.schema import FieldDict, MetadataSchema, check_field_list
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import LLMRef
from ragkit.types import Chunk, Document

#: The metadata prompt. Bump the version whenever the wording changes (it is part of the cache key).
METADATA_PROMPT = PromptTemplate(
    "llm_metadata",
    1,
    system="You write metadata for passages of documents. Answer with one JSON object and nothing else.",
    text=(
        "{context}Passage:\n\"\"\"\n{text}\n\"\"\"\n\n"
        "Describe the passage with these fields:\n{fields}\n\n"
        "Use words from the passage. Answer with one JSON object with exactly these keys: {keys}."
    ),
)

#: Follow-up turn used when an answer was invalid (same template family, versioned with it).
RETRY_PROMPT = PromptTemplate(
    "llm_metadata_retry",
    1,
    text="That answer is not valid: {error}. Answer again with one JSON object with exactly these keys: {keys}.",
)


class LLMMetadataEnricher(Enricher):
    """One LLM call per chunk returning JSON metadata validated against a schema.

    Parameters:
        llm: the LLM backend (a name under ``backends.llm`` in YAML, an instance in Python).
        profile: built-in schema, ``"default"`` or ``"compact"``.
        fields: a field list that replaces the profile (YAML form, see :mod:`ragkit.enrichers.schema`).
        model: (Python API) a pydantic model class that replaces the profile; it validates the output.
        key: the metadata key the fields go under (filters read ``KEY.field``).
        max_tokens: output-token budget per call (default: the schema's, 96 for ``compact``).
        max_input_chars: the chunk text is clipped to this many characters *in the prompt only*.
        include_context: put the document title and heading path in the prompt.
        max_retries: re-asks (with the validation error) for invalid answers before giving up.
        batch_size: requests handed to the backend per ``generate`` call (its unit of batching or
            concurrency; the progress bar advances per group).
        temperature: sampling temperature (0 = greedy, reproducible and cacheable).
        show_progress: tqdm bar on stderr (``None``: when ragkit logs at INFO).

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> enricher = LLMMetadataEnricher(llm=FakeLLM(), fields=[
        ...     {"name": "content_type", "type": "enum", "values": ["Procedural", "Conceptual"]},
        ...     {"name": "keywords", "type": "list", "max_items": 3}])
        >>> enricher.schema_.names
        ['content_type', 'keywords']
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({"generate"})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        profile: Literal["default", "compact"] = "default",
        fields: Annotated[list[FieldDict], AfterValidator(check_field_list)] | None = None,
        model: type[BaseModel] | None = None,
        key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "llm",
        max_tokens: Annotated[int, Field(gt=0, le=4096)] | None = None,
        max_input_chars: Annotated[int, Field(ge=100)] = 2000,
        include_context: bool = True,
        max_retries: Annotated[int, Field(ge=0, le=5)] = 1,
        batch_size: Annotated[int, Field(gt=0)] = 32,
        temperature: Annotated[float, Field(ge=0)] = 0.0,
        show_progress: bool | None = None,
    ) -> None:
        self.llm = llm
        self.profile = profile
        self.fields = fields
        self.model = model
        self.key = key
        self.max_tokens = max_tokens
        self.max_input_chars = max_input_chars
        self.include_context = include_context
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.temperature = temperature
        self.show_progress = show_progress
        self.schema_ = MetadataSchema.resolve(profile, fields, model)
        self.last_report_: EnrichmentReport | None = None

    # ------------------------------------------------------------------ requests
    @property
    def output_tokens(self) -> int:
        """The output-token budget of one call."""
        return self.max_tokens or self.schema_.max_tokens

    def request_for(self, chunk: Chunk, doc: Document | None) -> GenerationRequest:
        """The generation request for one chunk.

        Example:
            >>> from ragkit.testing import FakeLLM
            >>> from ragkit.types import Document, Chunk
            >>> doc = Document.from_text("Cats purr.", {"title": "Cats"})
            >>> req = LLMMetadataEnricher(llm=FakeLLM(), profile="compact").request_for(Chunk.from_span(doc, 0, 10, 3), doc)
            >>> req.template_version, req.max_tokens, "Document: Cats" in req.messages[-1]["content"]
            ('llm_metadata@1', 96, True)
        """
        context = ""
        if self.include_context:
            title = document_title(doc)
            section = heading_path_text(chunk.metadata.get("heading_path"))
            lines = ([f"Document: {title}"] if title else []) + ([f"Section: {section}"] if section else [])
            context = "\n".join(lines) + "\n\n" if lines else ""
        return METADATA_PROMPT.request(
            context=context,
            text=clip(chunk.text.strip(), self.max_input_chars),
            fields=self.schema_.prompt_fields(),
            keys=", ".join(self.schema_.names),
            json_schema=self.schema_.json_schema(),
            max_tokens=self.output_tokens,
            temperature=self.temperature,
            **({"response_model": self.schema_.model} if self.schema_.model is not None else {}),
        )

    def _retry(self, request: GenerationRequest, previous: Completion | None, error: str) -> GenerationRequest:
        messages = list(request.messages or ())
        base = messages[: _first_user(messages) + 1]
        if previous is not None and previous.text.strip():
            base.append({"role": "assistant", "content": previous.text[:1500]})
        base.append({"role": "user", "content": RETRY_PROMPT.render(error=error[:300], keys=", ".join(self.schema_.names))})
        return request.with_messages(base)

    def _parse(self, completion: Completion) -> dict[str, Any]:
        return self.schema_.parse(completion.text)

    # ------------------------------------------------------------------ enrich
    def enrich(self, chunks: Sequence[Chunk], docs: Mapping[str, Document] | None = None) -> list[Chunk]:
        """Return ``chunks`` (same order, text and offsets) with ``metadata[key]`` set.

        Chunks whose output stayed invalid get ``metadata[key] = {}`` and are listed in
        :attr:`last_report_` and in a :class:`MetadataWarning`.
        """
        enriched, _ = self.enrich_with_report(chunks, docs)
        return enriched

    def enrich_with_report(self, chunks: Sequence[Chunk],
                           docs: Mapping[str, Document] | None = None) -> tuple[list[Chunk], EnrichmentReport]:
        """Like :meth:`enrich`, also returning the :class:`EnrichmentReport` (validity, retries, tokens, time)."""
        start = time.perf_counter()
        chunks = list(chunks)
        by_id = docs_for(chunks, docs)
        report = EnrichmentReport("llm_metadata", chunks=len(chunks))
        if not chunks:
            self.last_report_ = report
            return [], report
        if hasattr(self.llm, "warm_up"):
            self.llm.warm_up()
        # longest prompts first: similar lengths share device batches, the bar's rate settles early
        order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].text))
        requests = [self.request_for(chunks[i], by_id.get(chunks[i].doc_id)) for i in order]
        bar = progress(len(chunks), "llm metadata", self.show_progress)
        try:
            answers = generate_validated(self.llm, requests, self._parse, retry=self._retry,
                                         max_retries=self.max_retries, batch_size=self.batch_size,
                                         report=report, bar=bar)
        finally:
            bar.close()
        out: list[Chunk] = list(chunks)
        for position, (value, error) in zip(order, answers):
            chunk = chunks[position]
            if error is None:
                report.valid += 1
                out[position] = chunk.with_metadata(**{self.key: value})
            else:
                report.invalid_ids.append(chunk.id)
                report.errors[chunk.id] = error
                out[position] = chunk.with_metadata(**{self.key: {}})
        rank = {c.id: i for i, c in enumerate(chunks)}
        report.invalid_ids.sort(key=rank.__getitem__)
        report.seconds = time.perf_counter() - start
        self.last_report_ = report
        if report.invalid_ids:
            warnings.warn(report.warning_text(), MetadataWarning, stacklevel=2)
        return out, report


def _first_user(messages: Sequence[Mapping[str, str]]) -> int:
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            return i
    return len(messages) - 1
