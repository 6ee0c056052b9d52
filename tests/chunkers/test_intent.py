"""IDC (``intent`` chunker): intents, de-duplication, objective wiring, invariants; real models end to end."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ragkit.chunkers.intent import (
    IntentChunker,
    adaptive_intent_count,
    dedup_intents,
    intent_schema,
    parse_intents,
    plan_windows,
)
from ragkit.embeddings.base import Embedder
from ragkit.errors import ConfigError, DocumentError, RagkitError
from ragkit.llm.base import GenerationRequest
from ragkit.testing import FakeEmbedder, FakeLLM
from ragkit.testing.checks import build_with_fakes, no_network, stored_params_match
from ragkit.types import Document

TOPICS = (
    "Cats purr when they are content. Cats sleep for most of the day. A cat grooms its fur with its tongue. "
    "Dogs bark at strangers near the house. Dogs love to fetch sticks in the park. A dog wags its tail when happy. "
    "Stocks fell sharply on Monday morning. Bond yields rose after the central bank spoke. Investors sold shares."
)


class TopicEmbedder(Embedder):
    """One-hot topic vectors by keyword (cats / dogs / markets): the one-hot toy with real text."""

    KEYWORDS = (("cat",), ("dog",), ("stock", "bond", "invest"))

    def embed_documents(self, texts):
        rows = []
        for text in texts:
            low = text.lower()
            rows.append([float(any(k in low for k in group)) for group in self.KEYWORDS] + [1e-3])
        return np.asarray(rows, dtype=np.float32)


def questions_llm(questions: list[str]) -> FakeLLM:
    return FakeLLM(mode="function", function=lambda req: json.dumps({"questions": questions}))


def check_invariants(doc: Document, chunks, max_tokens: int) -> None:
    from ragkit.text.tokenizers import get_tokenizer

    tok = get_tokenizer("minilm")
    assert chunks, "no chunks"
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == len(tok.encode(chunk.text)) <= max_tokens
        assert chunk.text == chunk.text.strip()
        assert chunk.metadata["intents"] and "heading_path" in chunk.metadata
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))
    covered = "".join(doc.text[c.start : c.end] for c in chunks)
    assert "".join(covered.split()) == "".join(doc.text.split())  # nothing but whitespace is lost


# ----------------------------------------------------------------------------------- pieces


def test_parse_intents_accepts_both_shapes_and_cleans():
    assert parse_intents('["What  is X?", "what is x?", "", "Why?", 3]') == ["What is X?"]
    assert parse_intents('{"questions": ["Who wrote the report?"]}') == ["Who wrote the report?"]
    with pytest.raises(ValueError, match="expected a JSON list"):
        parse_intents('{"answer": 1}')
    with pytest.raises(json.JSONDecodeError):
        parse_intents("not json")


def test_dedup_threshold_is_strictly_greater_than():
    def pair(cos: float) -> np.ndarray:
        return np.array([[1.0, 0.0], [cos, np.sqrt(1 - cos**2)]])

    assert dedup_intents(pair(0.8499), 0.85) == [0, 1]  # just below: both kept
    assert dedup_intents(pair(0.8501), 0.85) == [0]  # above 0.85: the later one goes
    assert dedup_intents(pair(0.8501), 0.9) == [0, 1]
    chain = np.array([[1.0, 0.0], [0.95, 0.312], [0.81, 0.586]])  # 0~1 and 1~2 similar, 0 vs 2 not
    assert dedup_intents(chain, 0.85) == [0, 2]  # compared with *kept* intents only
    assert dedup_intents(np.zeros((0, 3))) == []


def test_windows_and_adaptive_counts():
    units = [(i * 100, i * 100 + 90) for i in range(300)]  # 300 sentences over 30,000 characters
    windows = plan_windows(units, 12000)
    assert [b - a for a, b in windows] == [120, 120, 60]
    assert all(units[b - 1][1] - units[a][0] <= 12000 for a, b in windows)
    assert [adaptive_intent_count(b - a, 12) for a, b in windows] == [12, 12, 6]
    assert adaptive_intent_count(5, 12) == 3 and adaptive_intent_count(1000, 40) == 40


def test_requests_are_schema_constrained_versioned_and_capped_per_window():
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(600))
    chunker = IntentChunker(llm=FakeLLM(), embedder=FakeEmbedder(), max_intents_per_window=9)
    units, _ = chunker.units(text)
    requests = chunker._windows_requests(text, units)
    assert len(requests) == int(np.ceil(len(text) / 12000)) or len(requests) == int(np.ceil(len(text) / 12000)) + 1
    for request in requests:
        assert isinstance(request, GenerationRequest)
        assert request.json_schema == intent_schema(request.json_schema["properties"]["questions"]["maxItems"])
        assert request.json_schema["properties"]["questions"]["maxItems"] <= 9
        body = request.messages[-1]["content"].split("<document>\n", 1)[1].split("\n</document>", 1)[0]
        assert len(body) <= 12000 and body in text
        assert getattr(request, "template_version", "idc-intents@2") == "idc-intents@2"


# ----------------------------------------------------------------------------------- behaviour


def test_chunks_follow_given_intents():
    intents = ["Why do cats purr and sleep?", "What do dogs do in the park?", "Why did stocks and bonds move?"]
    chunker = IntentChunker(embedder=TopicEmbedder(), intent_source="given", intents=intents,
                            boundary_penalty=1.05, max_tokens=200)  # β just above R = 1 of a pure chunk
    doc = Document.from_text(TOPICS)
    run = chunker.analyse(doc)
    assert [c.text.split()[0] for c in run.chunks] == ["Cats", "Dogs", "Stocks"]
    assert [c.metadata["intents"] for c in run.chunks] == [[q] for q in intents]
    assert [c.metadata["intent_similarity"] for c in run.chunks] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    check_invariants(doc, run.chunks, 200)


def test_llm_intents_are_generated_deduplicated_and_kept_in_metadata():
    llm = questions_llm(["Why do cats purr?", "Why do cats purr?", "Why do the cats purr?",
                         "What do dogs fetch?", "Why did stocks fall?"])
    chunker = IntentChunker(llm=llm, embedder=FakeEmbedder(dimension=256), max_tokens=120, metadata_intents=2)
    doc = Document.from_text(TOPICS)
    run = chunker.analyse(doc)
    assert run.generated == ["Why do cats purr?", "Why do the cats purr?", "What do dogs fetch?", "Why did stocks fall?"]
    assert len(run.intents) < len(run.generated) and run.intents[0] == "Why do cats purr?"
    assert run.windows == 1 and run.failed_windows == 0 and llm.calls == 1
    assert all(len(c.metadata["intents"]) == 2 for c in run.chunks)
    assert all(set(c.metadata["intents"]) <= set(run.intents) for c in run.chunks)
    check_invariants(doc, run.chunks, 120)


def test_random_intents_are_document_sentences_and_reproducible():
    chunker = IntentChunker(embedder=FakeEmbedder(), intent_source="random", seed=3)
    doc = Document.from_text(TOPICS)
    first, second = chunker.analyse(doc), chunker.analyse(doc)
    assert first.generated == second.generated and 1 <= len(first.generated) <= 9
    assert all(q in TOPICS for q in first.generated)
    assert IntentChunker(embedder=FakeEmbedder(), intent_source="random", seed=4).analyse(doc).generated != []


def test_given_mapping_by_source_id_and_file(tmp_path):
    doc = Document.from_text(TOPICS, source_id="animals.md")
    mapping = {"animals": ["What do cats do?"], "other": ["Unrelated?"]}
    run = IntentChunker(embedder=FakeEmbedder(), intent_source="given", intents=mapping).analyse(doc)
    assert run.intents == ["What do cats do?"]
    path = tmp_path / "intents.json"
    path.write_text(json.dumps(mapping))
    chunker = IntentChunker(embedder=FakeEmbedder(), intent_source="given", intents_path=str(path))
    assert chunker.analyse(doc).intents == ["What do cats do?"]
    with pytest.raises(DocumentError, match="no given intents for document"):
        chunker.chunk(Document.from_text("Something else entirely. Yes.", source_id="nope"))


def test_beta_calibration_hits_target_and_fixed_beta_is_used_as_given():
    text = " ".join(f"Item {i} concerns {['cats', 'dogs', 'stocks', 'ships'][i // 10 % 4]} and more words here."
                    for i in range(200))
    doc = Document.from_text(text)
    calibrated = IntentChunker(embedder=FakeEmbedder(), intent_source="random", max_tokens=300, target_tokens=120)
    run = calibrated.analyse(doc)
    mean = np.mean([c.token_count for c in run.chunks])
    assert abs(mean - 120) / 120 < 0.1
    fixed = IntentChunker(embedder=FakeEmbedder(), intent_source="random", max_tokens=300, boundary_penalty=50.0)
    run = fixed.analyse(doc)
    assert run.boundary_penalty == 50.0
    assert all(c.metadata["sentences"] <= 15 for c in run.chunks)  # paper L
    assert len(run.chunks) == int(np.ceil(len(run.units) / 15)) or max(c.token_count for c in run.chunks) > 250


def test_profiles_and_opt_in_terms():
    code = IntentChunker(profile="reference_code")
    assert [code.setting(k) for k in ("length_weight", "length_penalty", "boundary_penalty", "max_sentences",
                                      "min_sentences", "coherence_weight", "boundary_heuristics")] == [
        0.1, "linear", 1.2, 20, 3, 0.3, True]
    assert IntentChunker(profile="reference_code", coherence_weight=0.0).setting("coherence_weight") == 0.0
    doc = Document.from_text(TOPICS + "\n\nHowever, it recovered. This was expected:\n- one\n- two")
    run = IntentChunker(embedder=FakeEmbedder(), intent_source="random", profile="reference_code").analyse(doc)
    assert min(c.metadata["sentences"] for c in run.chunks) >= 3 or len(run.chunks) == 1
    check_invariants(doc, run.chunks, 256)


def test_boundary_heuristics_signs():
    text = "Intro line here.\n\nNew paragraph starts. However, it continues. List follows:\n- first item"
    chunker = IntentChunker(embedder=FakeEmbedder())
    chunker.warm_up()
    units, _ = chunker.units(text)
    vectors = np.tile(np.eye(4)[0], (len(units), 1))  # identical sentences: no similarity valleys
    costs = chunker.boundary_costs(text, units, vectors)
    texts = [text[s:e] for s, e in units]
    assert costs[0] == 0.0
    assert costs[texts.index("New paragraph starts.")] < 0  # paragraph break + sentence end
    assert costs[texts.index("However, it continues.")] > 0  # referring connective


def test_post_processing_merge_and_split():
    doc = Document.from_text(TOPICS.replace(" Dogs", "\n\nDogs"))
    base = dict(embedder=FakeEmbedder(dimension=256), intent_source="given", intents=["What about animals and money?"])
    singletons = IntentChunker(**base, boundary_penalty=-5.0).analyse(doc)
    assert all(c.metadata["sentences"] == 1 for c in singletons.chunks)
    merged = IntentChunker(**base, boundary_penalty=-5.0, merge_short_sentences=2).analyse(doc)
    assert len(merged.chunks) < len(singletons.chunks)  # one intent: every neighbour shares it
    split = IntentChunker(**base, boundary_penalty=50.0, max_tokens=256, split_over_tokens=40).analyse(doc)
    assert all(c.token_count <= 40 or c.metadata["sentences"] == 1 for c in split.chunks)
    check_invariants(doc, split.chunks, 256)


def test_long_sentences_are_cut_to_the_cap():
    doc = Document.from_text("word " * 700 + "end. Short one. " + "x" * 3000)
    chunks = IntentChunker(embedder=FakeEmbedder(), intent_source="random", max_tokens=64).chunk(doc)
    check_invariants(doc, chunks, 64)


def test_invariants_on_all_chroma_corpora_with_fakes(chroma_texts):
    """Offsets and the hard cap on every corpus (LLM-driven: fakes here; one real-model test below)."""
    chunker = IntentChunker(llm=FakeLLM(), embedder=FakeEmbedder(mode="hash"), max_tokens=200)
    for name, text in chroma_texts.items():
        doc = Document.from_text(text, source_id=name)
        check_invariants(doc, chunker.chunk(doc), 200)


def test_config_errors_are_specific():
    with pytest.raises(ConfigError, match="needs exactly one of intents, intents_path, intents_dataset"):
        IntentChunker(intent_source="given")
    with pytest.raises(ConfigError, match="intents is only used with intent_source='given'"):
        IntentChunker(intents=["q?"])
    with pytest.raises(ConfigError, match=r"target_tokens \(300\) must not exceed max_tokens \(254\)"):
        IntentChunker(target_tokens=300)
    failing = FakeLLM(mode="fixed", responses=["not json at all"])
    with pytest.raises(RagkitError, match="produced no usable intents"):
        IntentChunker(llm=failing, embedder=FakeEmbedder()).chunk(Document.from_text(TOPICS))


def test_conformance_no_io_in_constructor_and_params_stored():
    with no_network():
        chunker = build_with_fakes("chunker", "intent", max_tokens=128)
    assert stored_params_match(chunker) == []
    assert chunker.get_params()["max_tokens"] == 128


# ----------------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def real_backends(smollm, minilm):
    """The session's SmolLM2 and MiniLM (tests/conftest.py) in the cache wrappers a pipeline gives them."""
    from ragkit.backends import wrap_backend

    return wrap_backend("llm", smollm), wrap_backend("embedder", minilm)


@pytest.mark.slow
def test_real_models_end_to_end_on_chatlogs(real_backends, chroma_texts):
    """SmolLM2 intents + MiniLM on the chat logs' first 10k characters in four 3,000-character windows:
    machinery and invariants, not quality (intent quality from a 135M model is reported by
    benchmarks/dp_anticollapse.py). Size is not the point: the whole 40k characters in the default
    12,000-character windows (also four) cost SmolLM2 about 4x the prompt tokens on CPU."""
    llm, embedder = real_backends
    doc = Document.from_text(chroma_texts["chatlogs"][:10_000], source_id="chatlogs")
    chunker = IntentChunker(llm=llm, embedder=embedder, max_tokens=256, target_tokens=160, intents_per_window=3,
                            window_chars=3000)
    start = time.perf_counter()
    run = chunker.analyse(doc)
    elapsed = time.perf_counter() - start
    assert run.windows == 4 and run.failed_windows < 4
    assert 1 <= len(run.intents) <= len(run.generated) <= 12
    check_invariants(doc, run.chunks, 256)
    assert all(c.metadata["intents"][0] in run.intents for c in run.chunks)
    assert 0.8 * 160 <= np.mean([c.token_count for c in run.chunks]) <= 1.2 * 160
    print(f"chatlogs: {len(run.units)} sentences, {len(run.generated)} intents -> {len(run.intents)} kept, "
          f"{len(run.chunks)} chunks, {elapsed:.1f}s")


@pytest.mark.slow
def test_real_models_end_to_end_on_a_qasper_paper(real_backends):
    from ragkit.datasets import load_dataset

    llm, embedder = real_backends
    dataset = load_dataset("qasper_sample", subset=["1810.04528"])  # the shortest paper: one window
    doc = dataset.documents[0]
    run = IntentChunker(llm=llm, embedder=embedder, max_tokens=256, intents_per_window=3).analyse(doc)
    check_invariants(doc, run.chunks, 256)
    assert run.windows == 1 and run.intents
    assert any(c.metadata["heading_path"] for c in run.chunks)
