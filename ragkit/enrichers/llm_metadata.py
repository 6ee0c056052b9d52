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

import json
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
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
from ragkit.errors import ConfigError
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import LLMRef
from ragkit.types import Chunk, Document, sha256_hex

#: The metadata prompt. Bump the version whenever the wording changes (it is part of the cache key).
METADATA_PROMPT = PromptTemplate(
    "llm_metadata",
    3,
    system="You label passages of documents with metadata. Answer with one JSON object only.",
    text="{context}Passage:\n\"\"\"\n{text}\n\"\"\"\n\nDescribe this passage. Fields:\n{fields}",
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
        precomputed: a metadata artifact (JSONL written by :func:`write_metadata_artifact`): chunks whose
            prompt key is in it take the stored metadata without an LLM call (re-scoring without
            regenerating); the others are generated.
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
        precomputed: str | None = None,
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
        self.precomputed = precomputed
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
            ('llm_metadata@3', 96, True)
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
            json_schema=self.schema_.json_schema(),
            max_tokens=self.output_tokens,
            temperature=self.temperature,
            **({"response_model": self.schema_.model} if self.schema_.model is not None else {}),
        )

    def prompt_key(self, chunk: Chunk, doc: Document | None) -> str:
        """What determines this chunk's request apart from the model: template, schema, context, text."""
        request = self.request_for(chunk, doc)
        return sha256_hex(request.template_version, self.schema_.fingerprint(), request.messages, request.max_tokens,
                          request.temperature)[:32]

    def _precomputed(self) -> dict[str, dict[str, Any]]:
        if self.precomputed is None:
            return {}
        cached = self.__dict__.get("_precomputed_rows")
        if cached is None:
            _, rows = read_metadata_artifact(self.precomputed)
            cached = {row["key"]: row for row in rows}
            self.__dict__["_precomputed_rows"] = cached
        return cached

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
        stored = self._precomputed()
        known: dict[int, tuple[Any, str | None]] = {}
        if stored:
            for i, chunk in enumerate(chunks):
                row = stored.get(self.prompt_key(chunk, by_id.get(chunk.doc_id)))
                if row is not None:
                    known[i] = (row["metadata"], None) if row.get("valid") else \
                        (None, f"invalid when the artifact was generated: {row.get('error') or ''}".rstrip(": "))
            report.precomputed = len(known)
        # longest prompts first: similar lengths share device batches, the bar's rate settles early
        order = sorted((i for i in range(len(chunks)) if i not in known), key=lambda i: -len(chunks[i].text))
        requests = [self.request_for(chunks[i], by_id.get(chunks[i].doc_id)) for i in order]
        if requests and hasattr(self.llm, "warm_up"):
            self.llm.warm_up()  # loads a local model only when something is left to generate
        bar = progress(len(order), "llm metadata", self.show_progress)
        try:
            answers = generate_validated(self.llm, requests, self._parse, retry=self._retry,
                                         max_retries=self.max_retries, batch_size=self.batch_size,
                                         report=report, bar=bar) if requests else []
        finally:
            bar.close()
        out: list[Chunk] = list(chunks)
        pairs = [*zip(order, answers), *known.items()]
        for position, (value, error) in pairs:
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


# ---------------------------------------------------------------------------------------------------
# metadata artifacts: generated metadata saved once, re-used to re-score without the LLM

ARTIFACT_FORMAT = 1


def artifact_rows(enricher: LLMMetadataEnricher, chunks: Iterable[Chunk],
                  docs: Mapping[str, Document]) -> list[dict[str, Any]]:
    """One artifact row per enriched chunk: prompt key, where the chunk is, validity and the metadata.

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> doc = Document.from_text("Cats purr.", {"source_id": "cats.md"})
        >>> e = LLMMetadataEnricher(llm=FakeLLM(), profile="compact")
        >>> rows = artifact_rows(e, e.enrich([Chunk.from_span(doc, 0, 10, 3)], {doc.id: doc}), {doc.id: doc})
        >>> rows[0]["doc"], rows[0]["valid"], sorted(rows[0]["metadata"])[:2]
        ('cats.md', True, ['content_type', 'entities'])
    """
    report = enricher.last_report_
    errors = report.errors if report is not None else {}
    rows = []
    for chunk in chunks:
        doc = docs.get(chunk.doc_id)
        metadata = chunk.metadata.get(enricher.key)
        valid = bool(metadata) and chunk.id not in errors
        rows.append({"key": enricher.prompt_key(chunk, doc), "chunk_id": chunk.id,
                     "doc": (doc.metadata.get("source_id") if doc is not None else None) or chunk.doc_id,
                     "start": chunk.start, "end": chunk.end, "valid": valid,
                     "metadata": dict(metadata) if valid and isinstance(metadata, Mapping) else {},
                     **({} if valid else {"error": errors.get(chunk.id, "no metadata")})})
    return rows


def write_metadata_artifact(path: str | Path, rows: Iterable[Mapping[str, Any]], header: Mapping[str, Any]) -> int:
    """Write a JSONL artifact: a ``{"_meta": header}`` line, then one row per unique prompt key (sorted).

    ``header`` should say how the rows were produced (command, model and its hash, schema, template).
    Returns the number of rows written.
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(str(row["key"]), row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"_meta": {"format": ARTIFACT_FORMAT, **header}}, ensure_ascii=False) + "\n")
        for key in sorted(unique):
            handle.write(json.dumps(unique[key], ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(path)
    return len(unique)


def read_metadata_artifact(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, rows)`` of an artifact written by :func:`write_metadata_artifact`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"llm_metadata precomputed: {str(path)!r} does not exist; give the path of a metadata "
                          "artifact (JSONL) such as benchmarks/artifacts/metadata-smollm2-compact.jsonl")
    header: dict[str, Any] = {}
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}, line {number}: not JSON ({exc.msg}); the artifact is damaged") from exc
            if "_meta" in record:
                header = record["_meta"]
                continue
            if "key" not in record or "metadata" not in record:
                raise ConfigError(f"{path}, line {number}: a row needs 'key' and 'metadata', got keys {sorted(record)}")
            rows.append(record)
    if header.get("format", ARTIFACT_FORMAT) != ARTIFACT_FORMAT:
        raise ConfigError(f"{path}: artifact format {header.get('format')!r} is not supported (expected {ARTIFACT_FORMAT})")
    return header, rows
