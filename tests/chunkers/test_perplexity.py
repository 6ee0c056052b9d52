"""PPL Chunking: per-sentence means, the boundary-rule table, assembly, windowing, batching, real model."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pytest

from ragkit.chunkers.perplexity import (
    FULL_CONTEXT,
    DynamicThreshold,
    PerplexityChunker,
    assemble_groups,
    find_minima,
    sentence_nll,
)
from ragkit.errors import CapabilityError, ConfigError
from ragkit.llm.base import TOKEN_LOGPROBS, LLMBackend, plan_windows
from ragkit.testing import FakeLLM
from ragkit.types import Document

NAN = float("nan")


# ---------------------------------------------------------------- per-sentence means
def test_first_sentence_skips_the_documents_first_token_only():
    nll = [NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # per-token NLL, token 0 unscored
    lengths = [3, 2, 2]
    cuts = np.cumsum([0, *lengths])
    logprobs = [-np.asarray(nll[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert sentence_nll(logprobs).tolist() == [1.5, 3.5, 5.5]


def test_first_token_is_skipped_even_if_the_backend_scored_it():
    assert sentence_nll([np.array([-9.0, -1.0]), np.array([-2.0])]).tolist() == [1.0, 2.0]


def test_one_token_first_sentence_and_empty_sentences_are_nan():
    values = sentence_nll([np.array([NAN]), np.array([-1.0, -3.0]), np.array([]), np.array([-4.0])])
    assert math.isnan(values[0]) and math.isnan(values[2])
    assert values[1] == 2.0 and values[3] == 4.0


def test_values_are_mean_nll_in_nats_not_exponentiated():
    lp = np.log(np.array([0.5, 0.25]))
    assert sentence_nll([np.array([NAN]), lp])[1] == pytest.approx(-np.mean(lp))


# ---------------------------------------------------------------- boundary rule table
RULE_TABLE = [
    # (values, θ, expected under "either" (code), expected under "both" (paper))
    ([2.0, 1.0, 1.3], 0.5, [1], []),  # strict minimum, one side ≥ θ, the other < θ
    ([2.0, 1.0, 2.0], 1.0, [1], []),  # drops exactly θ: code is non-strict, paper strict
    ([2.0, 1.0, 3.0], 0.5, [1], [1]),  # both sides clear θ
    ([2.0, 1.0, 1.0, 3.0], 0.5, [1], []),  # plateau to the right: code boundary at its left end
    ([2.0, 1.0, 1.0, 3.0], 1.5, [], []),  # plateau right, left drop below θ
    ([1.0, 1.0, 2.0], 0.0, [], []),  # plateau to the left (d_L == 0): never
    ([1.0, 1.0, 1.0, 1.0], 0.0, [], []),  # equal values
    ([], 0.0, [], []),
    ([1.0], 0.0, [], []),
    ([2.0, 1.0], 0.0, [], []),  # n ≤ 2: no boundary
    ([1.0, 1.0 - 1e-9, 1.0], 0.0, [1], [1]),  # θ = 0: tiny dips count
    ([1.0, 0.5, 0.5, 1.0], 0.0, [1], []),  # θ = 0: the rules differ only at ties
    ([3.0, 1.0, 3.0, 2.9, 3.5], 0.5, [1, 3], [1]),
    ([2.0, NAN, 2.0, 1.0, 2.0], 0.0, [3], [3]),  # nan never makes (or neighbours) a boundary
    ([3.0, 2.0, 1.0, 2.0, 3.0], 0.0, [2], [2]),  # first and last sentence are never boundaries
]


@pytest.mark.parametrize(("values", "theta", "either", "both"), RULE_TABLE)
def test_boundary_rule_table(values, theta, either, both):
    assert find_minima(values, theta, "either") == either
    assert find_minima(values, theta, "both") == both
    # the scalar rule used by the dynamic variant agrees with the vectorised one
    assert DynamicThreshold(theta, warmup=10**9, rule="either").find(values) == either
    assert DynamicThreshold(theta, warmup=10**9, rule="both").find(values) == both


def test_first_and_last_sentence_never_boundaries():
    assert find_minima([0.0, 5.0, 0.0], 0.0) == []


def test_dynamic_threshold_is_min_of_recorded_drops_after_warmup_and_persists():
    dyn = DynamicThreshold(threshold=1.0, warmup=3)
    # minima at 1 (drops 2, 2 → records 2) and 3 (d_L 1.5, d_R 0.4 → records 0.4)
    assert dyn.find([3.0, 1.0, 3.0, 1.5, 1.9]) == [1, 3]
    assert dyn.drops == [2.0, pytest.approx(0.4)] and dyn.threshold == 1.0
    # next document: its first minimum is the third drop, so θ = min(drops) = 0.4 from there on,
    # and the dip at index 3 (drops 0.5, below the initial θ of 1.0) becomes a boundary
    assert dyn.find([2.0, 1.0, 3.0, 2.5, 3.0]) == [1, 3]
    assert dyn.threshold == pytest.approx(0.4)
    dyn.reset()
    assert dyn.threshold == 1.0 and dyn.drops == []


def test_dynamic_threshold_plateau_records_left_drop():
    dyn = DynamicThreshold(threshold=0.0, warmup=1)
    dyn.find([2.0, 1.25, 1.25, 3.0])
    assert dyn.drops == [0.75] and dyn.threshold == 0.75


# ---------------------------------------------------------------- assembly
def test_minimum_sentence_ends_its_chunk():
    assert assemble_groups(5, [1, 3]) == [(0, 1), (2, 3), (4, 4)]
    assert assemble_groups(5, []) == [(0, 4)]
    assert assemble_groups(1, []) == [(0, 0)]
    assert assemble_groups(0, []) == []


def test_overlap_variant_duplicates_the_minimum_sentence():
    assert assemble_groups(5, [1, 3], overlap=True) == [(0, 1), (1, 3), (3, 4)]


def test_bad_minima_are_rejected():
    with pytest.raises(ValueError, match="out of order"):
        assemble_groups(5, [3, 1])
    with pytest.raises(ValueError, match="out of range"):
        assemble_groups(5, [4])


# ---------------------------------------------------------------- the stage with scripted scorers
class ScriptedNLL(LLMBackend):
    """Fake ``token_logprobs``: whitespace tokens; each token of a sentence gets ``-nll(sentence)``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({TOKEN_LOGPROBS})

    def __init__(self, *, nll: Callable[[str], float]) -> None:
        self.nll = nll
        self.calls: list[tuple[int, int | None]] = []

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        return self.token_logprobs_batch([segments], max_context)[0]

    def token_logprobs_batch(self, documents, max_context=None):
        self.calls.append((len(documents), max_context))
        out = []
        for segments in documents:
            arrays = [np.full(len(s.split()), -self.nll(s)) for s in segments]
            arrays[0][0] = np.nan
            out.append(arrays)
        return out


def scripted(values: Sequence[float]) -> ScriptedNLL:
    """Sentence ``S<i> ...`` gets NLL ``values[i]``."""
    return ScriptedNLL(nll=lambda s: values[int(re.match(r"S(\d+)", s).group(1))])


def sentences_doc(n: int, sep: str = " ") -> Document:
    return Document.from_text(sep.join(f"S{i} says word {i}." for i in range(n)))


def test_chunks_end_at_minima_with_verbatim_offsets():
    values = [3.0, 1.0, 3.0, 2.0, 2.5, 0.5, 4.0]
    doc = sentences_doc(len(values), sep="\n  ")
    chunks = PerplexityChunker(llm=scripted(values), splitter="regex", max_tokens=None).chunk(doc)
    firsts = [int(re.match(r"S(\d+)", c.text).group(1)) for c in chunks]
    assert firsts == [0, 2, 4, 6]  # minima 1, 3, 5 end their chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
    assert "\n  " in chunks[0].text  # original whitespace kept (the authors joined without it)


def test_overlap_chunks_share_the_minimum():
    values = [3.0, 1.0, 3.0, 2.0, 2.5]
    doc = sentences_doc(len(values))
    chunks = PerplexityChunker(llm=scripted(values), splitter="regex", max_tokens=None,
                               boundary_overlap=True).chunk(doc)
    assert [c.text.count("says") for c in chunks] == [2, 3, 2]
    assert chunks[0].text.endswith("S1 says word 1.") and chunks[1].text.startswith("S1 says")


def test_threshold_and_rule_are_applied():
    values = [3.0, 1.0, 1.3, 1.0, 3.0]
    doc = sentences_doc(len(values))
    kw = dict(splitter="regex", max_tokens=None)
    assert len(PerplexityChunker(llm=scripted(values), threshold=0.5, **kw).chunk(doc)) == 3
    assert len(PerplexityChunker(llm=scripted(values), threshold=0.5, minima_rule="both", **kw).chunk(doc)) == 1


def test_merge_packs_meta_chunks_to_target():
    values = [3.0, 1.0] * 10
    doc = sentences_doc(len(values))  # 10 meta-chunks of 2 sentences (8 words each)
    chunker = PerplexityChunker(llm=scripted(values), splitter="regex", max_tokens=None,
                                target_length=24, length_unit="words")
    chunks = chunker.chunk(doc)
    assert [len(c.text.split()) for c in chunks] == [24, 24, 24, 8]
    capped = PerplexityChunker(llm=scripted(values), splitter="regex", max_tokens=20,
                               target_length=100, length_unit="words").chunk(doc)
    assert all(c.token_count <= 20 for c in capped)


def test_two_sentences_skip_the_model():
    llm = scripted([1.0, 2.0])
    chunks = PerplexityChunker(llm=llm, splitter="regex").chunk(sentences_doc(2))
    assert len(chunks) == 1 and llm.calls == []


def test_long_documents_take_the_window_path():
    llm = scripted([float(i % 3) for i in range(40)])
    doc = sentences_doc(40)  # 160 words
    PerplexityChunker(llm=llm, splitter="regex", single_pass_max_words=200).chunk(doc)
    PerplexityChunker(llm=llm, splitter="regex", single_pass_max_words=100, max_context_tokens=64).chunk(doc)
    PerplexityChunker(llm=llm, splitter="regex", single_pass_max_words=None).chunk(doc)
    assert [c[1] for c in llm.calls] == [FULL_CONTEXT, 64, FULL_CONTEXT]


def test_chunk_many_batches_and_equals_one_by_one():
    docs = [sentences_doc(n) for n in (5, 9, 2, 7)] + [Document.from_text("   ")]
    values = [3.0, 1.0, 2.0, 4.0, 0.5, 2.0, 1.0, 3.0, 2.5]
    llm = scripted(values)
    many = PerplexityChunker(llm=llm, splitter="regex", batch_documents=2).chunk_many(docs)
    single = [PerplexityChunker(llm=scripted(values), splitter="regex").chunk(d) for d in docs]
    assert many == single and many[-1] == []
    assert [c[0] for c in llm.calls] == [2, 1]  # three scorable docs in two calls (doc of 2 sentences skipped)


def test_dynamic_state_carries_across_documents_in_order():
    values = [3.0, 1.0, 3.0, 2.0, 2.3, 2.1, 2.4]
    docs = [sentences_doc(len(values)) for _ in range(3)]
    chunker = PerplexityChunker(llm=scripted(values), splitter="regex", threshold=0.5,
                                dynamic_threshold=True, dynamic_warmup=3)
    first, second, third = chunker.chunk_many(docs)
    # doc 1 records drops 2 and 0.3 (θ still 0.5: the dip at 5 is missed); doc 2's first minimum is
    # the third drop, θ becomes 0.3 and the dip at 5 (larger drop 0.3) is a boundary
    assert (len(first), len(second), len(third)) == (3, 4, 4)
    chunker.reset_dynamic_threshold()
    assert len(chunker.chunk(docs[0])) == 3


def test_errors_are_specific():
    with pytest.raises(ConfigError, match=r"chunker.perplexity.threshold: .*greater than or equal to 0.*-1.0"):
        PerplexityChunker(threshold=-1.0)
    with pytest.raises(ConfigError, match=r"chunker.perplexity.minima_rule: .*'either' or 'both'.*'min'"):
        PerplexityChunker(minima_rule="min")
    with pytest.raises(ConfigError, match=r"length_unit"):
        PerplexityChunker(target_length=100, length_unit="sentences")

    class NoLogprobs(LLMBackend):
        def generate(self, requests):
            return []

    with pytest.raises(CapabilityError, match="token_logprobs"):
        PerplexityChunker(llm=NoLogprobs(), splitter="regex").chunk(sentences_doc(4))

    class Short(ScriptedNLL):
        def token_logprobs_batch(self, documents, max_context=None):
            return [[np.zeros(1)] for _ in documents]

    with pytest.raises(CapabilityError, match="returned 1 segments for 4 sentences"):
        PerplexityChunker(llm=Short(nll=lambda s: 1.0), splitter="regex").chunk(sentences_doc(4))


def test_named_backend_outside_a_pipeline_is_a_config_error():
    with pytest.raises(ConfigError, match="only a pipeline config can resolve"):
        PerplexityChunker(llm="big", splitter="regex").chunk(sentences_doc(4))


# ---------------------------------------------------------------- windowed vs single pass mapping
class PositionModel(LLMBackend):
    """A fake "model" whose NLL depends only on the absolute position of the token.

    It windows like a real backend (``plan_windows``): each window sees its tokens with positions
    re-based to ``window.start + k``; a correct implementation gives every token the same value on
    the single-pass and the windowed path.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({TOKEN_LOGPROBS})

    def __init__(self) -> None:
        self.windows_seen = 0

    @staticmethod
    def nll_at(position: int) -> float:
        return 1.0 + math.sin(position * 0.37) + 0.01 * (position % 7)

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        lengths = [len(s.split()) for s in segments]
        total = sum(lengths)
        flat = np.full(total, np.nan)
        for w in plan_windows(total, min(max_context or 10**9, 10**9)):
            self.windows_seen += 1
            positions = np.arange(w.start, w.end)  # absolute positions, as a correct backend keeps them
            scored = -np.array([self.nll_at(int(p)) for p in positions])
            flat[w.score_from:w.end] = scored[w.score_from - w.start:]
        flat[0] = np.nan
        return np.split(flat, np.cumsum(lengths)[:-1])


def test_window_mapping_equals_single_pass():
    doc = Document.from_text(" ".join(f"Sentence {i} has {'many ' * (i % 5)}words." for i in range(60)))
    single_llm, windowed_llm = PositionModel(), PositionModel()
    single = PerplexityChunker(llm=single_llm, splitter="regex", single_pass_max_words=None, max_tokens=None)
    windowed = PerplexityChunker(llm=windowed_llm, splitter="regex", single_pass_max_words=0,
                                 max_context_tokens=16, max_tokens=None)
    spans = single.sentences(doc.text)
    texts = [doc.text[a:b] for a, b in spans]
    a = sentence_nll(single_llm.token_logprobs(texts))
    b = sentence_nll(windowed_llm.token_logprobs(texts, 16))
    np.testing.assert_allclose(a, b)
    assert windowed_llm.windows_seen > 10 and single_llm.windows_seen == 1
    assert single.chunk(doc) == windowed.chunk(doc)


# ---------------------------------------------------------------- FakeLLM (the shipped fake) end to end
def test_fake_llm_deterministic_with_exact_offsets_and_cap(chroma_texts):
    doc = Document.from_text(chroma_texts["chatlogs"][:6000])
    a = PerplexityChunker(llm=FakeLLM(), max_tokens=64).chunk(doc)
    b = PerplexityChunker(llm=FakeLLM(), max_tokens=64).chunk(doc)
    assert a == b and len(a) > 3
    assert all(doc.text[c.start:c.end] == c.text and c.token_count <= 64 for c in a)
    assert [c.start for c in a] == sorted(c.start for c in a)


# ------------------------- real model (SmolLM2-135M via transformers: the session-wide ``smollm`` of tests/conftest.py)
def _check_chunks(doc: Document, chunks, max_tokens: int) -> None:
    assert chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text and c.text.strip() == c.text
        assert 0 < c.token_count <= max_tokens
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))


@pytest.mark.slow
def test_real_model_chatlogs_window_covering_the_document_equals_single_pass(smollm, chroma_texts):
    # The chat logs' first 16k characters (~2,400 words, ~3,200 tokens) with the thresholds scaled down with
    # them: more than single_pass_max_words takes the window path, and one 4,096-token window covers it all.
    # The whole 40k characters (7,968 tokens under the default 4,096 words / 8,192 tokens) check the same
    # path at about four times the CPU (attention grows with the square of the length).
    doc = Document.from_text(chroma_texts["chatlogs"][:16_000])
    windowed = PerplexityChunker(llm=smollm, max_tokens=256, single_pass_max_words=2000, max_context_tokens=4096)
    sentences = windowed.sentences(doc.text)
    texts = [doc.text[a:b] for a, b in sentences]
    assert len(doc.text.split()) > 2000 and windowed.context_for(doc.text) == windowed.max_context_tokens
    via_window = sentence_nll(smollm.token_logprobs(texts, windowed.max_context_tokens))
    assert smollm.last_scoring_stats["windows"] == 1  # one 4,096-token window covers the ~3,200 tokens
    single = PerplexityChunker(llm=smollm, max_tokens=256, single_pass_max_words=None)
    assert single.context_for(doc.text) == FULL_CONTEXT
    single_pass = sentence_nll(smollm.token_logprobs(texts, FULL_CONTEXT))
    np.testing.assert_array_equal(via_window, single_pass)  # deterministic across runs, bit for bit
    finite = via_window[np.isfinite(via_window)]
    assert len(finite) >= len(texts) - 1 and 0 < finite.mean() < 15  # mean NLL in nats

    minima = find_minima(via_window)
    groups = assemble_groups(len(sentences), minima)
    chunks = windowed.spans_from_scores(doc, sentences, via_window)
    _check_chunks(doc, chunks, 256)
    assert len(chunks) >= len(groups)  # the cap only ever splits meta-chunks
    assert single.spans_from_scores(doc, sentences, single_pass) == chunks


@pytest.mark.slow
def test_real_model_long_leval_document_window_path(smollm):
    import json
    import os
    from pathlib import Path

    data = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets")
    lines = (data / "leval_longdoc" / "natural_question.dev.jsonl").read_text(encoding="utf-8")
    docs = [json.loads(line)["input"] for line in lines.splitlines() if line.strip()]
    # the first 2,500 words (~3.7k tokens) of the shortest long document, in 1,024-token windows (stride
    # 512): still scored in several windows (the window logic does not depend on the window size; 2,048-token
    # windows over the whole 6.7k-token document checked the same at about twice the CPU)
    text = min((d for d in docs if len(d.split()) > 4096), key=lambda d: len(d.split()))
    words = list(re.finditer(r"\S+", text))
    doc = Document.from_text(text[: words[2500].start()])
    chunker = PerplexityChunker(llm=smollm, max_tokens=256, target_length=200, length_unit="tokens",
                                max_context_tokens=1024, single_pass_max_words=1024)
    assert chunker.context_for(doc.text) == 1024
    chunks = chunker.chunk(doc)
    stats = smollm.last_scoring_stats
    assert stats["windows"] >= 5 and stats["tokens_processed"] > stats["tokens_scored"]
    _check_chunks(doc, chunks, 256)
    assert all("heading_path" in c.metadata for c in chunks)
    assert 60 < np.mean([c.token_count for c in chunks]) <= 200  # merged towards the 200-token target


def test_usage_reaches_the_callers_scope_from_the_scoring_thread():
    from ragkit.usage import usage_scope

    docs = [sentences_doc(6), sentences_doc(8)]
    with usage_scope() as usage:
        PerplexityChunker(llm=FakeLLM(), splitter="regex", batch_documents=1).chunk_many(docs)
    assert usage.llm_calls == 2 and usage.prompt_tokens > 0


def test_backend_errors_propagate_from_the_scoring_thread():
    class Boom(ScriptedNLL):
        def token_logprobs_batch(self, documents, max_context=None):
            raise RuntimeError("device on fire")

    with pytest.raises(RuntimeError, match="device on fire"):
        PerplexityChunker(llm=Boom(nll=lambda s: 1.0), splitter="regex", batch_documents=1).chunk_many(
            [sentences_doc(5), sentences_doc(6), sentences_doc(7)])
