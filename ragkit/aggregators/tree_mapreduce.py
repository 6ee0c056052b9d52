"""``tree_mapreduce``: ToM's recursive MapReduce over document trees (METHODS.md §2.3).

Which trees: the documents of the selected chunks, in the order they first appear. With
``scope: selected`` each tree is pruned to the paths that lead to a selected chunk; with
``scope: document`` the whole tree runs. The trees come from the index (``index.tree``) through the
query context; without a context (or a tree) a document's selected chunks form a flat tree.

Post-order, one level of the tree at a time (all nodes of the same height are independent, so their
Map or Reduce requests go to the backend as one batched ``generate``):

- **leaf**: Map with its content (title, keywords, summary, original text) and no prior result;
- **internal node**: its children's results are collected; ≥ 2 → one **Reduce** call, exactly 1 →
  passed through, 0 → the node is **skipped**; then **Map** again with the node's own content plus the
  reduced child result (a node without any content of its own passes the result up without a call);
- several documents: their root results are reduced into one;
- the root's output is the answer: ``Answer.text`` is its answer, ``rationale`` its reasoning, the
  confidence is kept raw (0–10) and normalised (0–1) in the trace.

Budget: ``max_llm_calls`` requests per question (cache hits included, so the schedule does not depend
on the cache). When the planned calls exceed it, the deepest internal level is collapsed first (its
leaves' texts are concatenated into one leaf) until the plan fits; retries also count, and a node
reached with no budget left passes its child result through. ``Answer.trace["tree"]`` records every
visited node (operation, answer, confidence, calls, tokens, cache hits, errors) in execution order,
the calls used and the budget, collapsed levels and failures.

Output format: ``output: auto`` asks for JSON (``json_schema``) when the backend constrains output
(``structured_output``), else for the marker format; both are parsed leniently (:mod:`._tom`). An
output that cannot be parsed is retried up to ``max_retries`` times, then counted as failed.

Example:
    >>> from ragkit.testing.fakes import FakeLLM
    >>> from ragkit.types import Chunk, Document, Query, ScoredChunk
    >>> doc = Document.from_text("Rome is in Italy. Paris is in France.")
    >>> selected = [ScoredChunk(Chunk.from_span(doc, 0, 17, 4), 1.0), ScoredChunk(Chunk.from_span(doc, 18, 37, 4), 0.5)]
    >>> llm = FakeLLM(mode="fixed", responses=["Key information: Rome is in Italy.\\nReasoning: stated.\\nAnswer: Italy\\nConfidence: 9"])
    >>> answer = TreeMapReduceAggregator(llm=llm, output="markers").aggregate(Query.from_text("Where is Rome?"), selected)
    >>> answer.text, answer.trace["tree"]["calls_used"], [n["op"] for n in answer.trace["tree"]["visited"]]
    ('Italy', 3, ['map', 'map', 'reduce'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ragkit.aggregators._tom import (
    MAP_PROMPT,
    MAP_PROMPT_JSON,
    REDUCE_PROMPT,
    REDUCE_PROMPT_JSON,
    RETRY_TEXT,
    Rationale,
    RationaleJSON,
    parse_json_rationale,
    parse_rationale,
)
from ragkit.aggregators.base import Aggregator
from ragkit.errors import StructuredOutputError
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.stage import LLMRef
from ragkit.types import Answer, Chunk, DocTree, Query, ScoredChunk, Usage

NO_ANSWER = "I could not find an answer to this question in the documents."


@dataclass
class _Node:
    """A node of the pruned execution tree."""

    key: str
    doc_id: str
    title: str = ""
    keywords: tuple[str, ...] = ()
    summary: str = ""
    text: str = ""
    level: int = 0
    children: list[_Node] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    collapsed: bool = False
    result: Rationale | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def has_content(self) -> bool:
        return bool(self.title or self.summary or self.keywords or self.text)

    def height(self) -> int:
        return 0 if self.is_leaf else 1 + max(c.height() for c in self.children)

    def walk(self) -> list[_Node]:
        return [self, *[n for c in self.children for n in c.walk()]]


def _first_sentence(text: str, words: int = 12) -> str:
    """The first sentence of free text, at most ``words`` words (the fallback answer of an unparsable output).

    Example:
        >>> _first_sentence("  The answer is Rome. It is in Italy.")
        'The answer is Rome'
    """
    import re

    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]
    if not re.search(r"\w", first):
        return ""
    return " ".join(first.split()[:words]).strip(" .\"'*")


def planned_calls(node: _Node) -> int:
    """LLM calls the schedule needs for ``node``'s subtree without failures or retries.

    Example:
        >>> leaf = lambda: _Node("l", "d", text="x")
        >>> planned_calls(_Node("r", "d", title="root", children=[leaf(), leaf(), leaf()]))
        5
    """
    if node.is_leaf:
        return 1
    own = (1 if len(node.children) >= 2 else 0) + (1 if node.has_content else 0)
    return own + sum(planned_calls(c) for c in node.children)


class TreeMapReduceAggregator(Aggregator):
    """ToM's tree MapReduce: Map at leaves, Reduce siblings, Map again at internal nodes, root answers.

    Parameters:
        llm: the LLM backend (a name under ``backends.llm`` in YAML, an instance in Python).
        scope: ``selected`` (paths to the selected chunks) or ``document`` (whole trees).
        max_llm_calls: request budget per question (deepest levels collapsed first when exceeded).
        max_node_tokens: a node's original text is clipped to this many tokens in its Map prompt.
        max_child_chars: each child result is clipped to this many characters in a Reduce prompt.
        max_new_tokens: output budget per Map/Reduce call.
        temperature: sampling temperature (0: greedy and cacheable; the authors used 0.5).
        output: ``auto`` (JSON when the backend constrains output, else markers), ``markers`` or ``json``.
        max_retries: re-asks per node when its output cannot be parsed.
        free_text_fallback: a node whose output stays unparsable but is not empty is still counted as
            failed, and its first sentence is kept as a low-confidence answer (confidence unknown) instead
            of nothing: small models often answer without the format.

    Example:
        >>> from ragkit.testing.fakes import FakeLLM
        >>> TreeMapReduceAggregator(llm=FakeLLM(), scope="document").needs_context
        frozenset({'trees'})
    """

    needs_context: ClassVar[frozenset[str]] = frozenset({"trees"})
    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({"generate"})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        scope: Literal["selected", "document"] = "selected",
        max_llm_calls: Annotated[int, Field(ge=1)] = 48,
        max_node_tokens: Annotated[int, Field(ge=16)] = 768,
        max_child_chars: Annotated[int, Field(ge=100)] = 1200,
        max_new_tokens: Annotated[int, Field(gt=0)] = 192,
        temperature: Annotated[float, Field(ge=0)] = 0.0,
        output: Literal["auto", "markers", "json"] = "auto",
        max_retries: Annotated[int, Field(ge=0, le=5)] = 1,
        free_text_fallback: bool = True,
    ) -> None:
        self.llm = llm
        self.scope = scope
        self.max_llm_calls = max_llm_calls
        self.max_node_tokens = max_node_tokens
        self.max_child_chars = max_child_chars
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.output = output
        self.max_retries = max_retries
        self.free_text_fallback = free_text_fallback

    def _load(self) -> None:
        from ragkit.backends import resolve_backend

        self.llm = resolve_backend(self.llm, "llm")
        structured = getattr(self.llm, "supports", lambda _c: False)("structured_output")
        self.json_ = self.output == "json" or (self.output == "auto" and structured)

    # ----------------------------------------------------------------- building the execution tree
    def _tokens(self, context: Any, text: str) -> int:
        if context is not None and hasattr(context, "count_tokens"):
            return int(context.count_tokens(text))
        return max(1, len(text) // 4)

    def _clip(self, context: Any, text: str) -> str:
        count = self._tokens(context, text)
        if count <= self.max_node_tokens:
            return text
        cut = text[: max(1, int(len(text) * self.max_node_tokens / count))]
        space = cut.rfind(" ")
        return (cut[:space] if space > len(cut) // 2 else cut).rstrip() + " …"

    def _document_tree(self, doc_id: str, selected: list[ScoredChunk], context: Any) -> tuple[DocTree | None, list[Chunk]]:
        tree = None
        chunks: list[Chunk] = []
        if context is not None:
            if getattr(context, "has_trees", False):
                tree = context.document_tree(doc_id)
            if hasattr(context, "chunks_of"):
                chunks = list(context.chunks_of(doc_id))
        if not chunks:
            chunks = sorted({s.chunk.id: s.chunk for s in selected if s.chunk.doc_id == doc_id}.values(),
                            key=lambda c: (c.start, c.end))
        return tree, chunks

    def _flat(self, doc_id: str, chunks: list[Chunk], wanted: set[str]) -> _Node:
        keep = [c for c in chunks if self.scope == "document" or c.id in wanted]
        leaves = [_Node(c.id, doc_id, text=c.text, level=1, chunks=[c]) for c in keep]
        return _Node(f"{doc_id}:flat", doc_id, children=leaves)

    def _from_tree(self, tree: DocTree, chunks: list[Chunk], wanted: set[str], context: Any) -> _Node | None:
        by_id = {c.id: c for c in chunks}

        def visit(node_id: str) -> _Node | None:
            node = tree.node(node_id)
            if self.scope == "selected" and not wanted.intersection(node.chunk_ids):
                return None
            item = _Node(node.id, tree.doc_id, title=node.title, keywords=tuple(node.keywords), summary=node.summary,
                         level=node.level)
            if node.is_leaf:
                inside = [by_id[c] for c in node.chunk_ids if c in by_id]
                item.chunks = inside
                from ragkit.trees._common import span_text

                text = span_text(inside, node.start, node.end)
                if self.scope == "selected" and self._tokens(context, text) > self.max_node_tokens:
                    picked = [c for c in inside if c.id in wanted]
                    text = "\n".join(c.text.strip() for c in picked) or text
                    item.chunks = picked or inside
                item.text = self._clip(context, text)
                return item
            item.children = [n for n in (visit(c) for c in node.children) if n is not None]
            if not item.children:
                return None if self.scope == "selected" else item
            return item

        return visit(tree.root)

    def _collapse_deepest(self, root: _Node, context: Any) -> bool:
        """Collapse the internal nodes whose children are all leaves, at the deepest such level; False if none.

        A collapsed node becomes a leaf whose text is its leaves' texts, concatenated and clipped.
        """
        candidates = [n for n in root.walk() if not n.is_leaf and all(c.is_leaf for c in n.children)]
        if not candidates:
            return False
        deepest = max(n.level for n in candidates)
        for node in candidates:
            if node.level == deepest:
                node.text = self._clip(context, "\n".join(c.text for c in node.children if c.text))
                node.chunks = [ch for c in node.children for ch in c.chunks]
                node.children = []
                node.collapsed = True
        return True

    # ----------------------------------------------------------------- prompts
    def _content(self, node: _Node) -> str:
        parts = [f"Title: {node.title}" if node.title else "",
                 f"Keywords: {'; '.join(node.keywords)}" if node.keywords else "",
                 f"Summary: {node.summary}" if node.summary else "",
                 f"Original text:\n{node.text}" if node.text else ""]
        return "\n".join(p for p in parts if p)

    def _map_request(self, query: Query, node: _Node, previous: Rationale | None) -> GenerationRequest:
        prior = ("\nWhat its subsections say about the question:\n" + previous.render()[: self.max_child_chars] + "\n"
                 if previous is not None else "")
        template = MAP_PROMPT_JSON if self.json_ else MAP_PROMPT
        extra = {"json_schema": RationaleJSON} if self.json_ else {}
        return template.request(question=query.text, content=self._content(node), previous=prior,
                                max_tokens=self.max_new_tokens, temperature=self.temperature, **extra)

    def _reduce_request(self, query: Query, results: list[Rationale]) -> GenerationRequest:
        findings = ";\n".join(f"chunk[{i}]: {r.render()[: self.max_child_chars]}" for i, r in enumerate(results, 1))
        template = REDUCE_PROMPT_JSON if self.json_ else REDUCE_PROMPT
        extra = {"json_schema": RationaleJSON} if self.json_ else {}
        return template.request(question=query.text, findings=findings, max_tokens=self.max_new_tokens,
                                temperature=self.temperature, **extra)

    # ----------------------------------------------------------------- calling the LLM
    def _generate(self, requests: list[GenerationRequest]) -> list[Completion | str]:
        outcomes_fn = getattr(type(self.llm), "generate_outcomes", None)
        if outcomes_fn is not None:
            raw: list[Any] = list(self.llm.generate_outcomes(requests))
        else:
            try:
                raw = list(self.llm.generate(requests))
            except StructuredOutputError:
                raw = []
                for request in requests:
                    try:
                        raw.extend(self.llm.generate([request]))
                    except StructuredOutputError as exc:
                        raw.append(exc)
        return [f"structured output failed: {r}" if isinstance(r, StructuredOutputError) else r for r in raw]

    def _run(self, jobs: list[tuple[_Node, GenerationRequest]], state: dict[str, Any]) -> dict[str, Rationale | None]:
        """Run one batch of requests (one per node), retrying unparsable outputs within the budget."""
        out: dict[str, Rationale | None] = {}
        pending = list(jobs)
        parse = parse_json_rationale if self.json_ else parse_rationale
        for attempt in range(self.max_retries + 1):
            room = self.max_llm_calls - state["calls"]
            if not pending or room <= 0:
                break
            runnable, pending_over = pending[:room], pending[room:]
            for node, _ in pending_over:
                node.record.setdefault("error", "LLM call budget exhausted")
            completions = self._generate([r for _, r in runnable])
            state["calls"] += len(runnable)
            retry: list[tuple[_Node, GenerationRequest]] = []
            for (node, request), completion in zip(runnable, completions):
                rec = node.record
                rec["calls"] = rec.get("calls", 0) + 1
                if isinstance(completion, str):
                    rec["error"] = completion
                    out[node.key] = None
                    continue
                rec["prompt_tokens"] = rec.get("prompt_tokens", 0) + completion.prompt_tokens
                rec["completion_tokens"] = rec.get("completion_tokens", 0) + completion.completion_tokens
                rec["cached"] = rec.get("cached", 0) + int(completion.cached)
                state["prompt_tokens"] += completion.prompt_tokens
                state["completion_tokens"] += completion.completion_tokens
                state["cached"] += int(completion.cached)
                parsed = parse(completion.text)
                if parsed is not None:
                    out[node.key] = parsed
                    rec.pop("error", None)
                    continue
                out[node.key] = None
                rec["error"] = f"unparsable output: {completion.text[:160]!r}"
                rec["last_text"] = completion.text
                if attempt < self.max_retries:
                    rec["retries"] = rec.get("retries", 0) + 1
                    state["retries"] += 1
                    messages = [*(request.messages or ()), {"role": "assistant", "content": completion.text[:1000]},
                                {"role": "user", "content": RETRY_TEXT}]
                    retry.append((node, request.with_messages(messages)))
            pending = retry
        for node, _ in jobs:
            out.setdefault(node.key, None)
            last = node.record.pop("last_text", None)
            if out[node.key] is None and last and self.free_text_fallback:
                sentence = _first_sentence(last)
                if sentence:
                    node.record["free_text"] = True
                    state["free_text"] += 1
                    out[node.key] = Rationale(key_info="", reasoning=" ".join(last.split())[:600], answer=sentence,
                                              confidence=None, raw=last)
                    node.record["failed_parse"] = True
        return out

    # ----------------------------------------------------------------- the schedule
    def _schedule(self, query: Query, root: _Node, state: dict[str, Any]) -> None:
        nodes = root.walk()
        heights = {id(n): n.height() for n in nodes}
        for h in range(max(heights.values()) + 1):
            layer = [n for n in nodes if heights[id(n)] == h]
            reduce_jobs: list[tuple[_Node, GenerationRequest]] = []
            previous: dict[str, Rationale | None] = {}
            for node in layer:
                node.record.update(id=node.key, doc_id=node.doc_id, title=node.title, level=node.level, height=h,
                                   leaf=node.is_leaf, collapsed=node.collapsed)
                if node.is_leaf:
                    previous[node.key] = None
                    continue
                answered = [c.result for c in node.children if c.result is not None]
                node.record["children_answered"] = len(answered)
                if not answered:
                    node.record["op"] = "skip"
                elif len(answered) == 1:
                    previous[node.key] = answered[0]
                    node.record["op"] = "pass"
                else:
                    reduce_jobs.append((node, self._reduce_request(query, answered)))
                    node.record["op"] = "reduce"
            if reduce_jobs:
                reduced = self._run(reduce_jobs, state)
                for node, _ in reduce_jobs:
                    if node.record.pop("free_text", False):  # a free-text Reduce: the best child goes on
                        state["free_text"] -= 1
                        reduced[node.key] = None
                        node.record["failed_parse"] = True
                    if reduced[node.key] is None:  # a failed Reduce: the most confident child goes on
                        node.record["reduce_failed"] = True
                        state["failed"] += 1
                        best = max((c.result for c in node.children if c.result is not None),
                                   key=lambda r: r.confidence if r.confidence is not None else -1.0)
                        previous[node.key] = best
                    else:
                        previous[node.key] = reduced[node.key]
            map_jobs = []
            for node in layer:
                if node.record.get("op") == "skip":
                    continue
                if not node.is_leaf and not node.has_content:
                    node.result = previous.get(node.key)
                    continue
                map_jobs.append((node, self._map_request(query, node, previous.get(node.key))))
            mapped = self._run(map_jobs, state) if map_jobs else {}
            for node, _ in map_jobs:
                op = node.record.get("op")
                node.record["op"] = "map" if node.is_leaf else f"{op}+map"
                result = mapped.get(node.key)
                if node.record.get("free_text"):
                    state["failed"] += 1
                    node.record["failed"] = True
                if result is None:
                    state["failed"] += 1
                    node.record["failed"] = True
                    node.result = previous.get(node.key)  # fall back to the children's result, if any
                else:
                    node.result = result
            for node in layer:
                if node.result is not None:
                    node.record.update(answer=node.result.answer, confidence=node.result.confidence,
                                       confidence_norm=node.result.confidence_norm)
                state["visited"].append(node.record)

    def aggregate(self, query: Query, selected: Sequence[ScoredChunk], context: Any = None) -> Answer:
        """Answer ``query`` by MapReduce over the trees of the selected chunks' documents."""
        self.warm_up()
        wanted = {s.chunk.id for s in selected}
        doc_ids = list(dict.fromkeys(s.chunk.doc_id for s in selected))
        roots: list[_Node] = []
        for doc_id in doc_ids:
            tree, chunks = self._document_tree(doc_id, list(selected), context)
            node = self._from_tree(tree, chunks, wanted, context) if tree is not None else None
            roots.append(node if node is not None else self._flat(doc_id, chunks, wanted))
        state: dict[str, Any] = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached": 0, "retries": 0,
                                 "failed": 0, "free_text": 0, "visited": []}
        trace: dict[str, Any] = {"scope": self.scope, "calls_budget": self.max_llm_calls, "documents": doc_ids,
                                 "output": "json" if self.json_ else "markers"}
        if not roots:
            return Answer(text=NO_ANSWER, trace={"tree": {**trace, "calls_used": 0, "visited": [], "no_context": True}})
        root = roots[0] if len(roots) == 1 else _Node("question", "", children=roots, level=-1)
        planned = planned_calls(root)
        collapsed = 0
        while planned > self.max_llm_calls and self._collapse_deepest(root, context):
            collapsed += 1
            planned = planned_calls(root)
        self._schedule(query, root, state)
        result = root.result
        leaves = [n for n in root.walk() if n.is_leaf and n.record.get("op") == "map"]
        by_id = {s.chunk.id: s for s in selected}
        chunks: list[ScoredChunk] = []
        for leaf in leaves:
            for chunk in leaf.chunks:
                if chunk.id not in {c.chunk.id for c in chunks}:
                    chunks.append(by_id.get(chunk.id) or ScoredChunk(chunk, 0.0, "tree"))
        trace["tree"] = {**{k: v for k, v in trace.items()}, "planned_calls": planned, "collapsed_levels": collapsed,
                         "degraded": collapsed > 0, "calls_used": state["calls"], "cached_calls": state["cached"],
                         "retries": state["retries"], "failed": state["failed"], "free_text_answers": state["free_text"],
                         "failed_nodes": [r["id"] for r in state["visited"] if r.get("failed")],
                         "confidence": result.confidence if result else None,
                         "confidence_norm": result.confidence_norm if result else None,
                         "nodes": len(state["visited"]), "visited": state["visited"]}
        for key in ("scope", "calls_budget", "documents", "output"):
            trace.pop(key)
        usage = Usage(llm_calls=state["calls"] - state["cached"], prompt_tokens=state["prompt_tokens"],
                      completion_tokens=state["completion_tokens"], cached_calls=state["cached"])
        if result is None:
            return Answer(text=NO_ANSWER, chunks=tuple(chunks), usage=usage, trace=trace)
        return Answer(text=result.answer, chunks=tuple(chunks), rationale=result.reasoning or None, usage=usage,
                      trace=trace)
