"""Every registered component passes the same checks (scikit-learn's common-tests idea).

Constructible with fake collaborators and no network, parameters stored on same-named attributes,
normalised parameters round-trip, and deterministic output for fixed input.
"""

from __future__ import annotations

import pytest

from ragkit.context import QueryContext, context_needs
from ragkit.protocols import PROTOCOL_BY_KIND
from ragkit.registry import default_registry
from ragkit.stage import collaborator_params
from ragkit.testing.checks import build_with_fakes, no_network, normalised_params, stored_params_match
from ragkit.types import Chunk, Document, Query, ScoredChunk

ALL = [(e.kind, e.name) for e in default_registry().entries()]
#: Components whose default model exists only on a hub (offline they need a local folder).
NEEDS_A_MODEL_FOLDER = {"cross_encoder"}
SAMPLE = Document.from_text(
    "# Intro\n\nParis is the capital of France. It is known for the Eiffel Tower.\n\n"
    "# Rome\n\nRome is the capital of Italy. The Colosseum is there. Pasta is popular.\n\n"
    "# Tokyo\n\nTokyo is in Japan. Sushi is common. Trains are punctual and fast.\n",
    metadata={"headings": [(0, 7, 1, "Intro"), (78, 84, 1, "Rome"), (156, 163, 1, "Tokyo")]},
)


def _chunks() -> list[Chunk]:
    spans = [(9, 76), (86, 154), (165, len(SAMPLE.text) - 1)]
    return [Chunk.from_span(SAMPLE, s, e, token_count=len(SAMPLE.text[s:e].split()),
                            metadata={"topic": t}) for (s, e), t in zip(spans, ["fr", "it", "jp"])]


def test_registry_lists_every_kind():
    kinds = {kind for kind, _ in ALL}
    assert kinds >= {"chunker", "enricher", "embedder", "retriever", "reranker", "selector", "aggregator", "llm",
                     "engine"}
    assert kinds <= set(PROTOCOL_BY_KIND) | {"engine"}


@pytest.mark.parametrize(("kind", "name"), ALL, ids=[f"{k}:{n}" for k, n in ALL])
def test_component_conformance(kind: str, name: str) -> None:
    registry = default_registry()
    cls = registry.get(kind, name)
    with no_network():
        component = build_with_fakes(kind, name)
    assert stored_params_match(component) == [], "every constructor parameter must be stored on self"
    params = normalised_params(kind, name)
    rebuilt = build_with_fakes(kind, name, **params)
    refs = collaborator_params(cls)
    strip = lambda p: {k: v for k, v in p.items() if k not in refs}  # noqa: E731
    assert normalised_params(kind, name, **strip(rebuilt.get_params())) == params

    if kind in PROTOCOL_BY_KIND:
        assert isinstance(component, PROTOCOL_BY_KIND[kind]), f"{kind} {name!r} does not satisfy the {kind} protocol"

    if kind == "chunker":
        first = build_with_fakes(kind, name, max_tokens=64).chunk(SAMPLE)
        second = build_with_fakes(kind, name, max_tokens=64).chunk(SAMPLE)
        assert first == second and first, "chunkers must be deterministic and produce chunks"
        for c in first:
            assert SAMPLE.text[c.start:c.end] == c.text
            assert "heading_path" in c.metadata
    elif kind == "retriever":
        outs = []
        for _ in range(2):
            r = build_with_fakes(kind, name)
            r.index(_chunks())
            outs.append([(s.chunk.id, round(s.score, 6)) for s in r.retrieve(Query.from_text("capital of Italy"), k=2)])
        assert outs[0] == outs[1] and len(outs[0]) == 2
    elif kind in ("selector", "reranker"):
        candidates = [ScoredChunk(c, 1.0 / (i + 1), "test") for i, c in enumerate(_chunks())]
        method = "select" if kind == "selector" else "rerank"
        extra = {"context": QueryContext(_chunks())} if kind == "selector" and context_needs(cls) else {}
        a = getattr(build_with_fakes(kind, name), method)(Query.from_text("Rome"), candidates, **extra)
        b = getattr(build_with_fakes(kind, name), method)(Query.from_text("Rome"), candidates, **extra)
        assert a == b and a
        assert {s.chunk.id for s in a} <= {c.chunk.id for c in candidates}
    elif kind == "aggregator":
        selected = [ScoredChunk(c, 1.0, "test") for c in _chunks()]
        a = build_with_fakes(kind, name).aggregate(Query.from_text("Where is Rome?"), selected)
        b = build_with_fakes(kind, name).aggregate(Query.from_text("Where is Rome?"), selected)
        assert a.text == b.text and a.text
    elif kind == "scorer" and name in NEEDS_A_MODEL_FOLDER:
        pass  # its default is a hub model; tests/scorers/test_cross_encoder.py scores with a locally built one
    elif kind == "scorer":
        texts = [c.text for c in _chunks()]
        a = build_with_fakes(kind, name).score(Query.from_text("Where is Rome?"), texts)
        b = build_with_fakes(kind, name).score(Query.from_text("Where is Rome?"), texts)
        assert a.shape == (len(texts),) and (a == b).all(), "scorers give one deterministic float per text"
    elif kind == "tree":
        tree = build_with_fakes(kind, name).build(SAMPLE, _chunks())
        assert tree.doc_id == SAMPLE.id and tree.root in tree.nodes
        for leaf in tree.leaves():
            assert 0 <= leaf.start <= leaf.end <= len(SAMPLE.text), "tree leaves are spans of the document"
    elif kind == "engine":
        engine = build_with_fakes(kind, name)
        batches = list(engine.chunk_documents([SAMPLE], lambda docs: [[] for _ in docs]))
        assert [d for batch, _ in batches for d in batch] == [SAMPLE]
    elif kind == "enricher":
        docs = {SAMPLE.id: SAMPLE}
        a = build_with_fakes(kind, name).enrich(_chunks(), docs)
        b = build_with_fakes(kind, name).enrich(_chunks(), docs)
        assert a == b
        assert [c.text for c in a] == [c.text for c in _chunks()]
