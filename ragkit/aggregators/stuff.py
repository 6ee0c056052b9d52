"""``stuff``: put the selected chunks into one prompt, in order, and make one ``generate`` call.

Chunks are taken in the order the selector returned them while the running total of their
size stays within ``max_context_tokens`` (the first chunk is always included); the rest
are dropped and counted in ``Answer.trace["dropped_chunks"]``. Each passage is numbered and headed
by its source and heading path, so the model can cite ``[n]``. ``Answer.chunks`` are exactly the
chunks that went into the prompt, in prompt order.

The prompt comes from a versioned template next to this module (``stuff_prompt_v1.txt``; sections
``[system]`` and ``[user]``, placeholders ``{context}`` and ``{question}``), or from ``template``
(a path to a file in the same format). The template name and version go into ``Answer.trace``.

The answer budget ``max_new_tokens`` defaults to the LLM's per-model value (``null``:
``ragkit.llm.generation``, 192 tokens for SmolLM2-135M, else 256). ``loop_guard`` (on by default) cuts
an answer just before the first verbatim repeat of one of its sentences (``ragkit.text.repetition``):
what was cut goes to ``Answer.trace["loop_guard"]`` (``cut``, ``repeated_sentence``,
``removed_chars``), next to the backend's ``finish_reason``; the cached completion is left as it was.

A chunk's size is ``max(token_count, ceil(len(text) / 20))``: text the tokenizer maps to a few
``[UNK]`` tokens (Thai, base64) counts by its characters too, and the passages together never
exceed ``max_context_tokens * 20`` characters (the one always-included chunk is cut to that), so a
tiny token count can never smuggle a huge prompt past the cap.

Example:
    >>> from ragkit.testing.fakes import FakeLLM
    >>> from ragkit.types import Document, Chunk, Query, ScoredChunk
    >>> doc = Document.from_text("Rome is in Italy.")
    >>> agg = StuffAggregator(llm=FakeLLM(mode="fixed", responses=["Italy [1]."]))
    >>> answer = agg.aggregate(Query.from_text("Where is Rome?"), [ScoredChunk(Chunk.from_span(doc, 0, 17, 5), 1.0)])
    >>> answer.text, len(answer.chunks)
    ('Italy [1].', 1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ragkit.aggregators.base import Aggregator
from ragkit.errors import ConfigError
from ragkit.llm.base import GenerationRequest
from ragkit.llm.generation import FALLBACK_MAX_NEW_TOKENS
from ragkit.stage import LLMRef
from ragkit.text.repetition import cut_at_repeat
from ragkit.types import Answer, Chunk, Query, ScoredChunk, Usage

TEMPLATE_NAME = "stuff"
TEMPLATE_VERSION = 1
BUILTIN_TEMPLATE = Path(__file__).with_name(f"stuff_prompt_v{TEMPLATE_VERSION}.txt")
_PLACEHOLDER = re.compile(r"\{(context|question)\}")
#: Characters one token may stand for when the context is bounded by characters too (as the chunkers do).
CHARS_PER_TOKEN = 20
NO_CONTEXT_ANSWER = "I could not find any passage to answer this question from."


def parse_template(text: str, origin: str) -> dict[str, str]:
    """Split a template into its ``[system]`` and ``[user]`` sections (``#`` lines before them are comments)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in ("[system]", "[user]"):
            current = stripped[1:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
        elif stripped and not stripped.startswith("#"):
            raise ConfigError(f"{origin}: text before the first [system] or [user] section: {stripped[:60]!r}")
    if "user" not in sections:
        raise ConfigError(f"{origin}: a prompt template needs a [user] section containing {{context}} and {{question}}")
    parsed = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    for placeholder in ("{context}", "{question}"):
        if placeholder not in parsed["user"]:
            raise ConfigError(f"{origin}: the [user] section must contain {placeholder}")
    return parsed


def passage_header(chunk: Chunk) -> str:
    """``source > heading > subheading`` for a passage (empty when nothing is known)."""
    meta = chunk.metadata
    source = meta.get("source_id") or meta.get("path") or meta.get("source") or ""
    headings = [h for h in (meta.get("heading_path") or []) if h]
    return " > ".join([str(source), *map(str, headings)] if source else list(map(str, headings)))


class StuffAggregator(Aggregator):
    """Selected chunks in prompt order (up to ``max_context_tokens``), then one LLM ``generate``.

    Example:
        >>> from ragkit.testing.fakes import FakeLLM
        >>> StuffAggregator(llm=FakeLLM(), max_context_tokens=512).max_context_tokens
        512
    """

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        max_context_tokens: Annotated[int, Field(gt=0)] = 1536,
        max_new_tokens: Annotated[int, Field(gt=0)] | None = None,
        temperature: Annotated[float, Field(ge=0)] = 0.0,
        template: str | None = None,
        loop_guard: bool = True,
    ) -> None:
        self.llm = llm
        self.max_context_tokens = max_context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.template = template
        self.loop_guard = loop_guard

    def _load(self) -> None:
        path = Path(self.template).expanduser() if self.template else BUILTIN_TEMPLATE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"query.aggregator.template: cannot read {str(path)!r} ({exc}); give a readable "
                              "template file or leave template unset for the built-in one") from exc
        self.template_ = parse_template(text, str(path))
        self.template_id_ = f"{TEMPLATE_NAME}-v{TEMPLATE_VERSION}" if not self.template else f"file:{path.name}"

    def fit_context(self, selected: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The prefix of ``selected`` whose sizes fit ``max_context_tokens`` (at least one).

        Example:
            >>> from ragkit.testing.fakes import FakeLLM
            >>> from ragkit.types import Chunk, Document, ScoredChunk
            >>> doc = Document.from_text("\u0e01" * 5000)
            >>> big = [ScoredChunk(Chunk.from_span(doc, i, i + 1000, 1), 1.0) for i in range(0, 5000, 1000)]
            >>> len(StuffAggregator(llm=FakeLLM(), max_context_tokens=100).fit_context(big))
            2
        """
        kept: list[ScoredChunk] = []
        used = 0
        for scored in selected:
            size = max(int(scored.chunk.token_count), -(-len(scored.chunk.text) // CHARS_PER_TOKEN))
            if kept and used + size > self.max_context_tokens:
                break
            kept.append(scored)
            used += size
        return kept

    def build_request(self, query: Query, passages: Sequence[ScoredChunk]) -> GenerationRequest:
        """The chat request for ``query`` with ``passages`` numbered from 1."""
        self.warm_up()
        blocks = []
        room = self.max_context_tokens * CHARS_PER_TOKEN
        for number, scored in enumerate(passages, 1):
            header = passage_header(scored.chunk)
            body = scored.chunk.text.strip()[:max(room, 0)]
            room -= len(body)
            blocks.append(f"[{number}]" + (f" {header}" if header else "") + "\n" + body)
        values = {"context": "\n\n".join(blocks), "question": query.text}
        user = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template_["user"])
        return GenerationRequest.chat(user, system=self.template_.get("system") or None,
                                      max_tokens=self.answer_budget(), temperature=self.temperature)

    def answer_budget(self) -> int:
        """``max_new_tokens``, or the LLM's per-model answer budget when it is ``None``.

        Example:
            >>> from ragkit.testing.fakes import FakeLLM
            >>> StuffAggregator(llm=FakeLLM()).answer_budget()
            256
            >>> StuffAggregator(llm=FakeLLM(), max_new_tokens=64).answer_budget()
            64
        """
        if self.max_new_tokens is not None:
            return int(self.max_new_tokens)
        defaults = getattr(self.llm, "default_generation", None)
        return int(defaults().max_new_tokens) if callable(defaults) else FALLBACK_MAX_NEW_TOKENS

    def aggregate(self, query: Query, selected: Sequence[ScoredChunk], context: Any = None) -> Answer:
        """Answer ``query`` from ``selected`` with one generation call."""
        self.warm_up()
        passages = self.fit_context(selected)
        trace = {"prompt_template": self.template_id_, "dropped_chunks": len(selected) - len(passages),
                 "context_tokens": sum(int(s.chunk.token_count) for s in passages)}
        if not passages:
            return Answer(text=NO_CONTEXT_ANSWER, chunks=(), trace={**trace, "no_context": True})
        completion = self.llm.generate([self.build_request(query, passages)])[0]
        usage = Usage(llm_calls=1, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens)
        text = completion.text.strip()
        trace["finish_reason"] = completion.finish_reason
        trace["completion_tokens"] = completion.completion_tokens  # kept when the answer comes from the cache
        if self.loop_guard:
            cut = cut_at_repeat(text)
            trace["loop_guard"] = cut.to_trace()
            text = cut.text
        return Answer(text=text, chunks=tuple(passages), usage=usage, trace=trace)
