"""Margin Sampling Chunking: running threshold, decisions, both context modes, batching, real model."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pytest

from ragkit.chunkers.margin import (
    KEEP,
    PROMPT_VERSION,
    SPLIT,
    MarginChunker,
    RunningThreshold,
    decide_all,
    groups_from_decisions,
)
from ragkit.llm.base import NEXT_TOKEN_PROBS, GenerationRequest, LLMBackend
from ragkit.types import Document


class ScriptedMargins(LLMBackend):
    """Fake ``next_token_probs``: ``script(left, right) -> (p_split, p_keep)`` from the prompt's parts."""

    capabilities: ClassVar[frozenset[str]] = frozenset({NEXT_TOKEN_PROBS})
    PARTS = re.compile(r'into the two parts "(.*)" and "(.*)";\n2\.', re.S)

    def __init__(self, *, script: Callable[[str, str], tuple[float, float]]) -> None:
        self.script = script
        self.calls = 0
        self.prompts = 0
        self.batch_sizes: list[int] = []

    def next_token_probs(self, prompts: Sequence[GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        assert list(candidates) == [SPLIT, KEEP]
        self.calls += 1
        self.prompts += len(prompts)
        self.batch_sizes.append(len(prompts))
        rows = []
        for p in prompts:
            assert p.template_version == PROMPT_VERSION
            left, right = self.PARTS.search(p.messages[-1]["content"]).groups()
            rows.append(self.script(left, right))
        return np.asarray(rows, dtype=np.float64)


def numbered(n: int) -> Document:
    return Document.from_text(" ".join(f"Sentence number {i} is here." for i in range(n)))


def index_of(sentence: str) -> int:
    return int(re.findall(r"number (\d+)", sentence)[-1])


def by_boundary(margins: Sequence[float]) -> Callable[[str, str], tuple[float, float]]:
    """Margin of boundary i (sentence i joining) = margins[i - 1], whatever the left context."""

    def script(left: str, right: str) -> tuple[float, float]:
        m = margins[index_of(right) - 1]
        return (0.5 - m / 2, 0.5 + m / 2)

    return script


# ---------------------------------------------------------------- pure rule
def test_running_threshold_first_five_use_zero_then_mean_of_last_five():
    margins = [0.1, -0.2, 0.3, 0.4, 0.5, 0.21, 0.23, -0.9]
    rt = RunningThreshold()
    seen = []
    for m in margins:
        seen.append(rt.threshold)
        rt.decide(m)
    assert seen[:5] == [0.0] * 5
    assert seen[5] == pytest.approx(np.mean(margins[0:5]))  # decision 6 uses margins 1-5
    assert seen[6] == pytest.approx(np.mean(margins[1:6]))
    assert seen[7] == pytest.approx(np.mean(margins[2:7]))
    # 0.21 vs θ=0.22 -> split; 0.23 vs mean(-0.2, .3, .4, .5, .21)=0.242 -> split
    assert decide_all(margins) == [True, False, True, True, True, False, False, False]


def test_margin_equal_to_threshold_splits():
    assert decide_all([0.0, 0.0]) == [False, False]
    assert decide_all([1e-12]) == [True]


def test_groups_from_decisions():
    assert groups_from_decisions(1, []) == [(0, 0)]
    assert groups_from_decisions(4, [True, True, True]) == [(0, 3)]
    assert groups_from_decisions(4, [False, False, False]) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError, match="need 3 decisions"):
        groups_from_decisions(4, [True])


# ---------------------------------------------------------------- the stage with a scripted scorer
MARGINS = [0.3, 0.2, -0.4, 0.6, 0.1, 0.05, 0.5, -0.2, 0.4, 0.35, -0.1]


@pytest.mark.parametrize("context", ["sentence", "chunk"])
def test_decisions_follow_the_script(context: str):
    doc = numbered(len(MARGINS) + 1)
    llm = ScriptedMargins(script=by_boundary(MARGINS))
    chunks = MarginChunker(llm=llm, context=context, splitter="regex", max_tokens=None).chunk(doc)
    expected = groups_from_decisions(len(MARGINS) + 1, decide_all(MARGINS))
    assert [(index_of(c.text.split(".")[0]), index_of(c.text)) for c in chunks] == expected
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text


def test_sentence_mode_batches_every_boundary():
    doc = numbered(40)
    llm = ScriptedMargins(script=by_boundary([0.1] * 39))
    MarginChunker(llm=llm, context="sentence", splitter="regex", batch_prompts=16, max_tokens=None).chunk(doc)
    assert llm.prompts == 39 and llm.batch_sizes == [16, 16, 7]


def chunk_dependent(left: str, right: str) -> tuple[float, float]:
    """Keep while the current chunk holds fewer than 3 sentences (depends on the chunk's start)."""
    size = left.count("Sentence")
    m = 0.9 if size < 3 else -0.9
    return (0.5 - m / 2, 0.5 + m / 2)


def test_chunk_mode_left_side_is_the_current_chunk():
    doc = numbered(10)
    chunks = MarginChunker(llm=ScriptedMargins(script=chunk_dependent), context="chunk", splitter="regex",
                           max_tokens=None, threshold_window=1000).chunk(doc)
    assert [c.text.count("Sentence") for c in chunks] == [3, 3, 3, 1]


@pytest.mark.parametrize("lookahead", [2, 4, 8])
def test_chunk_mode_lookahead_is_exact_and_saves_calls(lookahead: int):
    doc = numbered(30)
    base_llm = ScriptedMargins(script=chunk_dependent)
    base = MarginChunker(llm=base_llm, context="chunk", splitter="regex", max_tokens=None).chunk(doc)
    spec_llm = ScriptedMargins(script=chunk_dependent)
    spec = MarginChunker(llm=spec_llm, context="chunk", splitter="regex", max_tokens=None,
                         lookahead=lookahead, batch_prompts=64).chunk(doc)
    assert spec == base
    assert base_llm.calls == 29
    assert spec_llm.calls < base_llm.calls


def test_chunk_mode_batches_across_documents():
    docs = [numbered(12), Document.from_text("Another text here. " * 5 + "Sentence number 3 ends it.")]
    llm = ScriptedMargins(script=lambda left, right: (0.4, 0.6))
    chunker = MarginChunker(llm=llm, context="chunk", splitter="regex", max_tokens=None)
    together = chunker.chunk_many(docs)
    assert together == [MarginChunker(llm=ScriptedMargins(script=lambda a, b: (0.4, 0.6)), context="chunk",
                                      splitter="regex", max_tokens=None).chunk(d) for d in docs]
    assert max(llm.batch_sizes) == 2  # one current question per document per call
    assert llm.calls == 11


def test_long_sides_are_bounded():
    doc = Document.from_text("Word " * 3000 + "end. Short one here. " + "More " * 3000 + "stop.")
    seen: list[tuple[int, int]] = []

    def script(left: str, right: str) -> tuple[float, float]:
        seen.append((len(left), len(right)))
        return (0.5, 0.5)

    MarginChunker(llm=ScriptedMargins(script=script), context="chunk", splitter="regex", max_tokens=None,
                  context_max_chars=500).chunk(doc)
    assert seen and all(a <= 500 and b <= 500 for a, b in seen)


def test_bad_backend_shape_is_reported():
    class Broken(ScriptedMargins):
        def next_token_probs(self, prompts, candidates):
            return np.zeros((1, 3))

    chunker = MarginChunker(llm=Broken(script=by_boundary([0.0] * 5)), context="sentence", splitter="regex")
    with pytest.raises(Exception, match="breaks the next_token_probs contract"):
        chunker.chunk(numbered(4))


def test_parameters_are_validated():
    from ragkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"chunker.margin.context: .*'chunk' or 'sentence'.*'paragraph'"):
        MarginChunker(context="paragraph")
    with pytest.raises(ConfigError, match=r"chunker.margin.threshold_window: .*greater than 0"):
        MarginChunker(threshold_window=0)


def test_capability_is_checked():
    from ragkit.errors import CapabilityError

    class NoProbs(LLMBackend):
        def generate(self, requests):
            return []

    with pytest.raises(CapabilityError, match="next_token_probs"):
        MarginChunker(llm=NoProbs(), splitter="regex").chunk(numbered(3))


def test_fake_llm_offsets_and_cap():
    from ragkit.testing import FakeLLM

    text = ("Paris is in France. It has the Eiffel Tower. Rome is in Italy. The Colosseum is there. "
            "Tokyo is in Japan. Sushi is common. ") * 6
    doc = Document.from_text(text)
    for context in ("chunk", "sentence"):
        chunks = MarginChunker(llm=FakeLLM(), context=context, max_tokens=20).chunk(doc)
        assert chunks and all(doc.text[c.start:c.end] == c.text for c in chunks)
        assert all(c.token_count <= 20 for c in chunks)


# ------------------------- real model (SmolLM2-135M via transformers: the session-wide ``smollm`` of tests/conftest.py)
@pytest.mark.slow
def test_real_model_both_modes_on_chatlogs(smollm, chroma_texts):
    text = chroma_texts["chatlogs"]
    head = Document.from_text(text[:4000])
    doc = Document.from_text(text[: chunker_sentences(head)[8][1]])  # 9 sentences keep it cheap on CPU
    sentences = chunker_sentences(doc)
    assert len(sentences) == 9
    chunker = MarginChunker(llm=smollm, context="sentence", max_tokens=128)
    prompts = [chunker.prompt_for(doc, sentences, i - 1, i) for i in (1, 2)]
    probs = smollm.next_token_probs(prompts, [SPLIT, KEEP])
    assert probs.shape == (2, 2) and np.all(probs > 0) and np.all(probs.sum(axis=1) <= 1 + 1e-9)
    results = {}
    for context in ("sentence", "chunk"):
        kw = dict(llm=smollm, context=context, max_tokens=128, context_max_chars=400)
        first = MarginChunker(lookahead=2, **kw).chunk(doc)
        again = MarginChunker(**kw).chunk_many([doc])[0]
        assert first == again  # deterministic, and speculation does not change decisions
        assert first and all(doc.text[c.start:c.end] == c.text and c.token_count <= 128 for c in first)
        results[context] = first
    assert len(results["sentence"]) >= 1 and len(results["chunk"]) >= 1


def chunker_sentences(doc: Document) -> list[tuple[int, int]]:
    from ragkit.chunkers.perplexity import split_into_sentences

    return split_into_sentences(doc.text)


def test_prompt_keeps_braces_in_text_verbatim():
    from ragkit.chunkers.margin import margin_prompt

    req = margin_prompt('Use {"a": 1}.', "Then {left} stays.", 'Use {"a": 1}. Then {left} stays.')
    user = req.messages[-1]["content"]
    assert 'parts "Use {"a": 1}." and "Then {left} stays."' in user
    assert req.max_tokens == 1 and req.messages[0]["content"] == "You are a helpful assistant."
