"""Dataset loaders on the real shared data: counts, gold reproduces its text, exclusions, data root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragkit.errors import DatasetError
from ragkit.eval.datasets import (
    DATA_ENV,
    EvalDataset,
    Span,
    dataset_spec,
    load_dataset,
    render_qasper_paper,
    resolve_data_root,
)

SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets")


def _gold_text(ds: EvalDataset, span: Span) -> str:
    return ds.document(span.doc_id).text[span.start:span.end]


def test_chroma_counts_and_spans_reproduce_references() -> None:
    ds = load_dataset("chroma_chunking_eval", data_root=SHARED_DATASETS)
    assert len(ds.documents) == 5 and len(ds.questions) == 377
    assert sum(len(q.gold_spans) for q in ds.questions) == 621
    per = {c: sum(1 for q in ds.questions if q.corpus == c) for c in ds.corpora()}
    assert per == {"state_of_the_union": 60, "wikitexts": 116, "finance": 77, "chatlogs": 45, "pubmed": 79}
    lengths = {d.metadata["source_id"]: len(d.text) for d in ds.documents}
    assert lengths == {"chatlogs": 40_000, "finance": 737_905, "pubmed": 500_000,
                       "state_of_the_union": 48_051, "wikitexts": 118_372}
    for q in ds.questions:
        assert [_gold_text(ds, s) for s in q.gold_spans] == q.metadata["references"]
    assert ds.pooled and ds.hit_rule == "contain" and ds.partitions()[0][0] == "all"


def test_chroma_doc_ids_match_the_file_text() -> None:
    from ragkit.types import sha256_hex

    ds = load_dataset("chroma_chunking_eval", data_root=SHARED_DATASETS, subset="chatlogs")
    text = (SHARED_DATASETS / "chroma_chunking_eval" / "chatlogs.md").read_text(encoding="utf-8")
    assert [d.id for d in ds.documents] == [sha256_hex(text)]
    assert len(ds.questions) == 45


def test_hipporag_counts_gold_and_partitions() -> None:
    ds = load_dataset("hipporag_multihop", data_root=SHARED_DATASETS)
    assert not ds.pooled
    parts = dict(ds.partitions())
    assert set(parts) == {"hotpotqa", "musique"}
    hot, mus = parts["hotpotqa"], parts["musique"]
    assert (len(hot.documents), len(hot.questions)) == (994, 80)
    assert (len(mus.documents), len(mus.questions)) == (1890, 80)
    corpus = json.loads((SHARED_DATASETS / "hipporag_multihop" / "hotpotqa_train_corpus.json").read_text())
    raw = json.loads((SHARED_DATASETS / "hipporag_multihop" / "hotpotqa_train.dev.json").read_text())
    for q, item in zip(hot.questions, raw):
        facts = list(dict.fromkeys((t, i) for t, i in item["supporting_facts"]))
        assert [_gold_text(hot, s) for s in q.gold_spans] == [corpus[t][i].strip() for t, i in facts]
        assert q.answers == (item["answer"],)
    # document text = sentences joined as stored
    doc = hot.by_source("Demon Dice")
    assert doc.text == "".join(corpus["Demon Dice"])
    raw_m = json.loads((SHARED_DATASETS / "hipporag_multihop" / "musique_train.dev.json").read_text())
    assert sum(len(q.gold_spans) for q in mus.questions) == 189
    for q, item in zip(mus.questions, raw_m):
        supporting = [p["paragraph_text"] for p in item["paragraphs"] if p["is_supporting"]]
        assert [_gold_text(mus, s) for s in q.gold_spans] == supporting
        assert all(s.start == 0 and s.end == len(mus.document(s.doc_id).text) for s in q.gold_spans)
        assert q.answers[0] == item["answer"] and set(item["answer_aliases"]) <= set(q.answers)
    assert sum(len(q.answers) - 1 for q in mus.questions) == 47


def test_hipporag_subset_selection() -> None:
    ds = load_dataset("hipporag_multihop", data_root=SHARED_DATASETS, subset="musique", limit=5)
    assert ds.corpora() == ["musique"] and len(ds.questions) == 5
    with pytest.raises(DatasetError, match="unknown subset.*hotpotqa, musique"):
        load_dataset("hipporag_multihop", data_root=SHARED_DATASETS, subset="2wiki")


def test_qasper_rendering_gold_and_exclusions() -> None:
    ds = load_dataset("qasper_sample", data_root=SHARED_DATASETS)
    assert len(ds.documents) == 8 and len(ds.questions) == 36
    assert ds.metadata["excluded"] == {"qasper: figure/table evidence": 4,
                                       "qasper: evidence not a paragraph of the paper": 1,
                                       "qasper: questions without evidence": 5}
    assert sum(len(q.gold_spans) for q in ds.questions) == 48
    for doc in ds.documents:
        assert doc.text.startswith("# ")
        for start, end, level, title in doc.metadata["headings"]:
            assert doc.text[start:end] == "#" * level + " " + title
    evidence_texts = set()
    for q in ds.questions:
        for s in q.gold_spans:
            text = _gold_text(ds, s)
            evidence_texts.add(text)
            assert text.strip() and "\n\n" not in text
    paper = ds.by_source("1705.09665")
    assert "\n\n## Introduction\n\n" in paper.text


def test_render_qasper_nesting_and_untitled_sections() -> None:
    text, heads, paras = render_qasper_paper({
        "title": "T", "abstract": "",
        "full_text": {"section_name": ["", "A ::: B", "A ::: C", "A ::: C", "D"],
                      "paragraphs": [["p0"], ["p1", ""], ["p2"], ["p3"], ["p4"]]}})
    assert [(lvl, t) for _, _, lvl, t in heads] == [(1, "T"), (2, "A"), (3, "B"), (3, "C"), (3, "C"), (2, "D")]
    assert [text[s:e] if s >= 0 else None for s, e in paras] == ["p0", "p1", None, "p2", "p3", "p4"]


def test_leval_dedup_and_verbatim_gold() -> None:
    ds = load_dataset("leval_longdoc", data_root=SHARED_DATASETS)
    per = {c: sum(1 for q in ds.questions if q.corpus == c) for c in ds.corpora()}
    assert per == {"legal_contract_qa": 102, "natural_question": 84, "scientific_qa": 120}
    assert len(ds.documents) == 48
    excluded = ds.metadata["excluded"]
    assert excluded["natural_question: non-verbatim answers (no span)"] == 2
    assert excluded["scientific_qa: duplicate document-question pairs merged"] == 19
    legal = [q for q in ds.questions if q.corpus == "legal_contract_qa"]
    assert all(len(q.gold_spans) == 1 for q in legal)
    for q in ds.questions:
        for s in q.gold_spans:
            doc = ds.document(s.doc_id)
            text = doc.text[s.start:s.end]
            assert text in [a.strip() for a in q.answers]
            assert doc.text.find(text) == s.start  # first occurrence
    with_span = sum(1 for q in ds.questions if q.gold_spans)
    no_span = sum(v for k, v in excluded.items() if "(no span)" in k)
    assert with_span + no_span == len(ds.questions)


def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root, cfg_root = tmp_path / "env", tmp_path / "cfg"
    env_root.mkdir()
    cfg_root.mkdir()
    monkeypatch.setenv(DATA_ENV, str(env_root))
    assert resolve_data_root(tmp_path, cfg_root) == tmp_path
    assert resolve_data_root(None, cfg_root) == env_root
    monkeypatch.delenv(DATA_ENV)
    assert resolve_data_root(None, cfg_root) == cfg_root
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"shared/datasets.*does not exist.*--data-root"):
        resolve_data_root()
    with pytest.raises(DatasetError, match="dataset folder .*chroma_chunking_eval.* is missing"):
        load_dataset("chroma_chunking_eval", data_root=tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope", data_root=tmp_path)


def test_generic_format(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "documents.jsonl").write_text(
        json.dumps({"id": "a", "text": "Alpha beta gamma. Delta epsilon."}) + "\n"
        + json.dumps({"id": "b", "text": "Zeta eta theta."}) + "\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text(
        json.dumps({"id": "q1", "question": "What follows delta?", "answers": ["epsilon"],
                    "gold_spans": [{"doc": "a", "text": "Delta epsilon."}]}) + "\n"
        + json.dumps({"question": "Which has zeta?", "gold_passages": ["b"]}) + "\n"
        + json.dumps({"question": "Offsets?", "gold_spans": [{"doc": "a", "start": 0, "end": 5}]}) + "\n",
        encoding="utf-8")
    ds = load_dataset("mine", data_root=tmp_path)
    q1, q2, q3 = ds.questions
    assert _gold_text(ds, q1.gold_spans[0]) == "Delta epsilon." and q1.answers == ("epsilon",)
    assert _gold_text(ds, q2.gold_spans[0]) == "Zeta eta theta." and q2.gold_passages == ("b",)
    assert _gold_text(ds, q3.gold_spans[0]) == "Alpha"
    assert load_dataset(str(folder)).fingerprint() == ds.fingerprint()
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "?", "gold_spans": [{"doc": "a", "text": "not there"}]}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="does not occur verbatim"):
        load_dataset("mine", data_root=tmp_path)
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "?", "gold_spans": [{"doc": "zz", "start": 0, "end": 1}]}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="names document 'zz'"):
        load_dataset("mine", data_root=tmp_path)


def test_generic_corpus_folder(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus" / "one.md").write_text("# One\n\nHello there.\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "Greeting?", "gold_spans": [{"doc": "one.md", "text": "Hello there."}]}) + "\n",
        encoding="utf-8")
    ds = load_dataset(str(folder))
    assert ds.documents[0].metadata["source_id"] == "one.md"
    assert _gold_text(ds, ds.questions[0].gold_spans[0]) == "Hello there."


def test_dataset_spec() -> None:
    assert dataset_spec("x") == {"name": "x", "subset": None, "limit": None}
    assert dataset_spec({"name": "x", "subset": "a,b"})["subset"] == ["a", "b"]
    with pytest.raises(DatasetError, match="unknown keys"):
        dataset_spec({"name": "x", "split": "test"})
