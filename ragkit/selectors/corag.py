"""``corag``: CORAG / CARROT, Monte Carlo tree search for the best ordered chunk combination under a hard budget.

Chunk utility is correlated and non-monotonic (a chunk can lower a set's score), so filling the budget
greedily in rank order can miss the best context. ``corag`` searches ordered combinations of the
first ``max_candidates`` candidates with a policy tree (METHODS.md §3; the search itself is in
:mod:`ragkit.selectors._mcts`), scoring each combination's concatenated text (chunks joined by a
blank line) with a **scorer** (``query_likelihood`` by default; ``embedding``, ``llm_yes``,
``cross_encoder``), and returns the combination it picks, in its order.

**The budget is always hard**: no node over ``budget`` tokens is descended into, backed up or
returned, in any profile (the authors' code enforces it only for one reranker). Tokens are the
configured tokenizer's (``context.count_tokens``, MiniLM WordPiece by default) when the pipeline
gives a context, else each chunk's stored ``token_count``; a combination costs the sum of its chunks
(the blank-line separator adds no WordPiece tokens). When no single candidate fits, nothing is selected.

Profiles (METHODS.md §3.3/§3.9) and the switches they set:

=============  ==============================  ================================
profile        ``backprop``                    ``final_select``
=============  ==============================  ================================
``paper``      ``best_child``: only the best   ``avg``: highest average reward
(default)      new child's reward goes up      (mixes a node's descendants)
``code``       ``all_children``                ``own``: highest own score
=============  ==============================  ================================

``backprop`` / ``final_select`` override the profile one by one. Note that ``avg`` ranks a node by
its subtree's mean reward, so even a fully explored tree may not return the best-scoring
combination; ``own`` does (the brute-force equality test uses it).

Defaults (METHODS.md §3.5 lists several values per parameter; the choice is the authors' demo
configuration, the one they ran end to end): ``c = 2.4``, ``lambda_ = 0.1``, ``iterations = 10``;
``budget = 1024`` (their training-data value: the demo's 8,192 exceeds what the default generator
reads) and ``max_candidates = 20`` (the demo's 60 times 10 iterations is 600 scorer passes per query;
ragkit retrieves 20 by default).

Cost (beyond the authors): every expansion is **one** scorer call (``batch``); children that cannot
fit are never created or scored (``prune``; the authors' code scores them); scores are cached by
(question, ordered chunk ids) on the selector (``cache_scores``), so a repeated question or a second
search with other ``c`` / ``lambda_`` / ``iterations`` re-scores nothing it has seen; the search
stops when the whole in-budget tree is explored. ``prune=False, cache_scores=False, batch=False``
is the authors' cost profile (same picks, more scoring), used by ``benchmarks/selection_cost.py``.
With the transformers backend, the children of one expansion all extend the same parent text, so
the backend runs that shared prefix once and reuses its KV cache (``prefix_reuse``);
``benchmarks/selection_cost.py`` measures each lever. :meth:`trace` (``Answer.trace``) reports
iterations, nodes expanded, scorer calls, scored texts, ``scored_tokens`` (configured-tokenizer size
of the scored combinations), ``lm_tokens`` (tokens the scorer's model actually ran: a reused
prefix counts once, cache hits count nothing), cache hits, the picked path and its own and average
score.

**Configuration agent** (``agent: PATH``): a model trained by ``ragkit corag train`` (see
:mod:`ragkit.selectors.corag_agent`) picks ``scorer``, ``c``, ``lambda_`` and ``iterations`` per
query from the question's embedding (the pipeline's embedder); the parameters given here are then
only the fallback for what the agent does not set. An agent's scorer spec with ``llm: default`` /
``embedder: default`` gets the canonical default backend (packaged SmolLM2 / the pipeline's
embedder); when its type is the configured ``scorer``'s, the configured instance is reused.

Example:
    >>> from ragkit.types import Chunk, Query, ScoredChunk
    >>> class Table:   # a scorer from a table: {c1, c2} together beat c0, the best single chunk
    ...     def score(self, query, texts):
    ...         table = {"c0": 0.9, "c1": 0.5, "c2": 0.5, "c1\\n\\nc2": 1.0, "c2\\n\\nc1": 0.95}
    ...         return [table.get(t, 0.1) for t in texts]
    >>> cands = [ScoredChunk(Chunk(f"id{i}", "d", f"c{i}", 0, 2, 100), 1.0) for i in range(3)]
    >>> picked = CoragSelector(budget=200, iterations=30, scorer=Table()).select(Query.from_text("q"), cands)
    >>> [s.chunk.id for s in picked]
    ['id1', 'id2']
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ragkit.scorers._build import UsesBackends, build_scorer, check_scorer_spec, scorer_type
from ragkit.selectors._mcts import SearchConfig, SearchResult, search
from ragkit.selectors.base import Selector
from ragkit.stage import ScorerRef
from ragkit.types import Chunk, Query, ScoredChunk
from ragkit.usage import usage_scope

SEPARATOR = "\n\n"
PROFILES: dict[str, tuple[str, str]] = {"paper": ("best_child", "avg"), "code": ("all_children", "own")}
_CACHE_ENTRIES = 200_000


class CoragSelector(UsesBackends, Selector):
    """MCTS over ordered chunk combinations; returns the picked combination (never over ``budget`` tokens).

    Args:
        budget: hard token budget of the returned combination.
        iterations: MCTS iterations (each expands one node and makes at most one scorer call).
        c: UCB exploration constant.
        lambda_: weight of the cost term ``λ·cost/B`` in UCB.
        max_candidates: only the first ``max_candidates`` candidates (rank order) are searched.
        scorer: a scorer type name, a ``{type: ..., **params}`` mapping, or a scorer instance.
        seed: seeds random tie-breaking between equal UCB values (``None``: the first child wins).
        profile: ``paper`` or ``code`` (see the module docs); ``backprop`` / ``final_select`` override it.
        prune, cache_scores, batch: the cost optimisations (on by default; off = the authors' cost).
        agent: path of a configuration-agent artifact (``ragkit corag train``), or ``None``.

    Example:
        >>> sel = CoragSelector(profile="code")
        >>> sel.resolved_backprop, sel.resolved_final_select, sel.budget
        ('all_children', 'own', 1024)
    """

    needs_context: ClassVar[frozenset[str]] = frozenset({"tokenizer", "embedder"})

    def __init__(
        self,
        *,
        budget: Annotated[int, Field(gt=0)] = 1024,
        iterations: Annotated[int, Field(gt=0)] = 10,
        c: Annotated[float, Field(ge=0)] = 2.4,
        lambda_: Annotated[float, Field(ge=0)] = 0.1,
        max_candidates: Annotated[int, Field(gt=0)] = 20,
        scorer: ScorerRef = "query_likelihood",
        seed: int | None = 0,
        profile: Literal["paper", "code"] = "paper",
        backprop: Literal["best_child", "all_children"] | None = None,
        final_select: Literal["avg", "own"] | None = None,
        prune: bool = True,
        cache_scores: bool = True,
        batch: bool = True,
        agent: str | None = None,
    ) -> None:
        check_scorer_spec(scorer, "selector.corag.scorer")
        self.budget = budget
        self.iterations = iterations
        self.c = c
        self.lambda_ = lambda_
        self.max_candidates = max_candidates
        self.scorer = scorer
        self.seed = seed
        self.profile = profile
        self.backprop = backprop
        self.final_select = final_select
        self.prune = prune
        self.cache_scores = cache_scores
        self.batch = batch
        self.agent = agent
        self._agent: Any = None
        self._scorers: dict[str, Any] = {}
        self._scores: OrderedDict[tuple[str, str, tuple[str, ...]], float] = OrderedDict()
        self._scorer: Any = None
        self._trace: dict[str, Any] = {}

    @property
    def resolved_backprop(self) -> str:
        return self.backprop or PROFILES[self.profile][0]

    @property
    def resolved_final_select(self) -> str:
        return self.final_select or PROFILES[self.profile][1]

    def search_config(self, **overrides: Any) -> SearchConfig:
        """The search settings (``c``, ``lambda_``, ``iterations`` may be overridden per query by the agent)."""
        return SearchConfig(budget=self.budget, iterations=int(overrides.get("iterations", self.iterations)),
                            c=float(overrides.get("c", self.c)), lambda_=float(overrides.get("lambda_", self.lambda_)),
                            backprop=self.resolved_backprop, final_select=self.resolved_final_select,  # type: ignore[arg-type]
                            prune=self.prune, seed=self.seed)

    def agent_choice(self, query: Query, context: Any = None) -> dict[str, Any]:
        """The agent's configuration for ``query`` (``{}`` without an agent)."""
        if not self.agent:
            return {}
        if self._agent is None:
            from ragkit.selectors.corag_agent import CoragAgent

            self._agent = CoragAgent.load(self.agent)
        embedder = getattr(context, "embedder", None) if context is not None else None
        if embedder is None:
            from ragkit.scorers._build import resolve_collaborator

            embedder = resolve_collaborator("default", "embedder")
        vector = embedder.embed_query(query.text)
        index = self._agent.predict_index(vector)
        return {**self._agent.configs[index], "index": index}

    def _scorer_of(self, spec: Any, context: Any) -> Any:
        """A scorer for an agent's spec, built once (the configured scorer when the type is the same)."""
        if spec is None or scorer_type(spec) == scorer_type(self.scorer):
            return self.scorer_for(context)
        key = repr(sorted(spec.items())) if isinstance(spec, Mapping) else repr(spec)
        if key not in self._scorers:
            embedder = getattr(context, "embedder", None) if context is not None else None
            self._scorers[key] = build_scorer(spec, runtime=self.runtime_, embedder=embedder,
                                              path="query.selector.agent")
        return self._scorers[key]

    # ------------------------------------------------------------------ collaborators
    def scorer_for(self, context: Any = None) -> Any:
        """The scorer instance (built once from ``scorer``; a spec's ``embedder: default`` is the context's)."""
        if self._scorer is None:
            embedder = None
            if context is not None and not callable(getattr(self.scorer, "score", None)):
                try:
                    embedder = context.embedder
                except Exception:  # a context without an embedder: the scorer resolves "default" itself
                    embedder = None
            self._scorer = build_scorer(self.scorer, runtime=self.runtime_, embedder=embedder,
                                        path="query.selector.scorer")
        return self._scorer

    @staticmethod
    def tokens(chunk: Chunk, context: Any = None) -> int:
        """A chunk's cost: the configured tokenizer's count (with a context), else its stored ``token_count``."""
        if context is not None and callable(getattr(context, "count_tokens", None)):
            return int(context.count_tokens(chunk.text))
        return int(chunk.token_count)

    # ------------------------------------------------------------------ selection
    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        """The combination the search picks, in its order (empty when no candidate fits the budget)."""
        start = time.perf_counter()
        cands = list(candidates[: self.max_candidates])
        stats = {"scorer_calls": 0, "scored_texts": 0, "scored_tokens": 0, "lm_tokens": 0, "cache_hits": 0}
        if not cands:
            self._trace = self._trace_of(None, [], [], stats, start)
            return []
        costs = [self.tokens(s.chunk, context) for s in cands]
        ids = [s.chunk.id for s in cands]
        texts = [s.chunk.text for s in cands]
        choice = self.agent_choice(query, context)
        scorer = self._scorer_of(choice.get("scorer"), context) if choice else self.scorer_for(context)
        scorer_name = scorer_type(choice["scorer"]) if choice.get("scorer") else scorer_type(self.scorer)

        def evaluate(seqs: list[tuple[int, ...]]) -> list[float]:
            keys = [(scorer_name, query.text, tuple(ids[i] for i in seq)) for seq in seqs]
            out: list[float | None] = [None] * len(seqs)
            if self.cache_scores:
                for j, key in enumerate(keys):
                    if key in self._scores:
                        self._scores.move_to_end(key)
                        out[j] = self._scores[key]
                        stats["cache_hits"] += 1
            todo = [j for j, v in enumerate(out) if v is None]
            groups = [todo] if self.batch else [[j] for j in todo]
            for group in groups:
                if not group:
                    continue
                batch_texts = [SEPARATOR.join(texts[i] for i in seqs[j]) for j in group]
                with usage_scope(timed=False) as spent:
                    values = [float(v) for v in scorer.score(query, batch_texts)]
                stats["lm_tokens"] += int(spent.prompt_tokens)
                if len(values) != len(group):
                    raise ValueError(f"scorer {scorer_name!r} returned {len(values)} scores for "
                                     f"{len(group)} texts")
                stats["scorer_calls"] += 1
                stats["scored_texts"] += len(group)
                stats["scored_tokens"] += sum(sum(costs[i] for i in seqs[j]) for j in group)
                for j, value in zip(group, values):
                    out[j] = value
                    if self.cache_scores:
                        self._scores[keys[j]] = value
            while len(self._scores) > _CACHE_ENTRIES:
                self._scores.popitem(last=False)
            return [float(v) for v in out]  # type: ignore[arg-type]

        result = search(costs, evaluate, self.search_config(**choice))
        picked = [] if result.best is None else [cands[i] for i in result.best.seq]
        self._trace = self._trace_of(result, ids, costs, stats, start)
        if choice:
            self._trace["scorer"] = scorer_name
            self._trace["agent"] = {"config": int(choice["index"]), "scorer": scorer_name, "c": float(choice["c"]),
                                    "lambda_": float(choice["lambda_"]), "iterations": int(choice["iterations"])}
        return picked

    def _trace_of(self, result: SearchResult | None, ids: list[str], costs: list[int], stats: Mapping[str, int],
                  start: float) -> dict[str, Any]:
        best = result.best if result is not None else None
        return {
            "scorer": scorer_type(self.scorer),
            "profile": self.profile, "backprop": self.resolved_backprop, "final_select": self.resolved_final_select,
            "budget": self.budget, "candidates": len(ids),
            "iterations": result.iterations if result else 0,
            "stopped": result.stopped if result else "no_candidates",
            "nodes_expanded": result.expansions if result else 0,
            "nodes": result.nodes if result else 0,
            **{k: int(v) for k, v in stats.items()},
            "best_path": [ids[i] for i in best.seq] if best else [],
            "best_tokens": int(best.cost) if best else 0,
            "own_score": float(best.own) if best else None,
            "avg_score": float(best.average) if best else None,
            "visits": int(best.visits) if best else 0,
            "seconds": time.perf_counter() - start,
        }

    def trace(self) -> Mapping[str, Any]:
        """The last :meth:`select`'s search statistics (JSON-serialisable)."""
        return dict(self._trace)
