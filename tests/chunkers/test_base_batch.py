"""The chunker base owns the batch path; shared sentence units; stages resolve backends through one policy."""

from __future__ import annotations

import ast
from pathlib import Path

from ragkit.chunkers._units import sentence_spans, sentence_units
from ragkit.chunkers.base import Chunker
from ragkit.chunkers.intent import IntentChunker
from ragkit.testing import FakeEmbedder
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Chunk, Document

CHUNKERS = Path(__file__).resolve().parents[2] / "ragkit" / "chunkers"


class CountingChunker(Chunker):
    def __init__(self) -> None:
        self.loads = 0
        self.batches: list[int] = []

    def _load(self) -> None:
        self.loads += 1

    def _chunk_batch(self, docs):
        self.batches.append(len(docs))
        return [[Chunk.from_span(d, 0, len(d.text), token_count=1)] for d in docs]


def test_chunk_many_skips_empty_warms_once_batches_and_adds_heading_paths():
    c = CountingChunker()
    doc = Document.from_text("# A\n\nbody", metadata={"headings": [(0, 3, 1, "A")]})
    out = c.chunk_many([Document.from_text("  "), doc, Document.from_text("x y")])
    assert [len(x) for x in out] == [0, 1, 1]
    assert c.loads == 1 and c.batches == [2]
    assert out[1][0].metadata["heading_path"] == ["A"]
    assert c.chunk(Document.from_text("\n")) == [] and c.batches == [2]


def test_sentence_units_cut_long_sentences_at_tokens():
    text = "One two three four five six. Seven."
    spans, counts = sentence_units(text, "nupunkt", get_tokenizer("minilm"), 4)
    assert [text[s:e] for s, e in spans] == ["One two three four", "five six.", "Seven."] and counts == [4, 3, 2]
    assert sentence_spans("  no stop  ", "regex") == [(2, 9)]


def test_model_chunkers_do_not_import_each_other():
    for name, banned in (("margin.py", "ragkit.chunkers.perplexity"), ("cluster.py", "ragkit.chunkers.intent")):
        tree = ast.parse((CHUNKERS / name).read_text(encoding="utf-8"))
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert banned not in modules, name


def test_intent_effective_params_resolve_the_profile_without_changing_the_config():
    chunker = IntentChunker(embedder=FakeEmbedder(), profile="reference_code", max_sentences=12)
    params = chunker.effective_params()
    assert params["max_sentences"] == 12 and params["length_weight"] == 0.1 and params["boundary_penalty"] == 1.2
    assert chunker.get_params()["length_weight"] is None
    calibrated = IntentChunker(embedder=FakeEmbedder(), max_tokens=100).effective_params()
    assert calibrated["boundary_penalty"] is None and calibrated["target_tokens"] == 50
