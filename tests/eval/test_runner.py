"""``ragkit eval`` end to end on reduced experiments: tables, files, resumability, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ragkit.errors import ConfigError
from ragkit.eval.runner import load_experiment, parse_grid, run_experiment

SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets")
FAKE = {"backends": {"embeddings": {"default": {"type": "fake", "dimension": 64}}},
        "index": {"retriever": {"type": "dense"}}}


def _experiment(**extra: object) -> dict:
    exp = {"name": "tiny", "dataset": {"name": "chroma_chunking_eval", "subset": ["chatlogs"]}, "base": FAKE,
           "protocols": ["chroma", "budget", "evidence"],
           "variants": [{"name": "token", "set": {"index.chunker": {"type": "token", "max_tokens": 200}}},
                        {"name": "sentence", "set": ["index.chunker={type: sentence, max_tokens: 120}"]}]}
    exp.update(extra)
    return exp


def test_run_writes_results_and_prints_protocol_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_experiment(_experiment(), out=tmp_path / "out", data_root=SHARED_DATASETS, limit=4, echo=lines.append)
    text = "\n".join(lines)
    for protocol in ("chroma (positions: exact)", "budget", "evidence"):
        assert f"protocol: {protocol}\ndataset: chroma_chunking_eval\n| variant" in text
    assert "tokens mean ± std" in text and "recall %" in text and "IoU %" in text
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["variant"] for r in data["records"]] == ["token", "sentence"]
    token = data["records"][0]
    assert token["cost"]["chunks"] > 0 and token["cost"]["mean_tokens"] <= 200
    assert token["match"]["ok"] is True  # token windows of 200 are at the default 200 ± 10 % target
    assert data["records"][1]["match"]["ok"] is False  # 120-token sentences are flagged
    chroma = token["protocols"]["chroma"]
    assert chroma["scored"] == 4 and 0 <= chroma["overall"]["iou"]["mean"] <= 1
    assert set(chroma["per_corpus"]) == {"chatlogs"}
    assert token["protocols"]["budget"]["overall"]["selected_tokens"]["mean"] <= 1000
    assert "all@10" in token["protocols"]["evidence"]["overall"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert md.count("protocol: ") == 3 and "⚠" in md
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "chroma_chunking_eval-budget.png", "chroma_chunking_eval-chroma.png", "chroma_chunking_eval-evidence.png"]
    assert len(list((tmp_path / "out" / "variants").glob("*.json"))) == 2
    assert result.tables


def test_rerun_resumes_from_variant_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_experiment(_experiment(), out=tmp_path, data_root=SHARED_DATASETS, limit=2, echo=None, plots=False)
    import ragkit.eval.runner as runner

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished variant was indexed again")

    monkeypatch.setattr(runner, "_index_variant", boom)
    again = run_experiment(_experiment(), out=tmp_path, data_root=SHARED_DATASETS, limit=2, echo=None, plots=False)
    assert [r["variant"] for r in again.records] == ["token", "sentence"]
    # a different question set is a different result key: it runs (and would index) again
    with pytest.raises(AssertionError, match="indexed again"):
        run_experiment(_experiment(), out=tmp_path, data_root=SHARED_DATASETS, limit=3, echo=None, plots=False)


def test_index_reuse_and_cost_of_first_build(tmp_path: Path) -> None:
    first = run_experiment(_experiment(), out=tmp_path / "a", data_root=SHARED_DATASETS, limit=2, echo=None,
                           plots=False)
    second = run_experiment(_experiment(), out=tmp_path / "b", data_root=SHARED_DATASETS, limit=3, echo=None,
                            plots=False)
    for a, b in zip(first.records, second.records):
        assert b["cost"]["reused"] is True
        assert b["cost"]["index_seconds"] == a["cost"]["index_seconds"]
        assert b["cost"]["chunks"] == a["cost"]["chunks"]


def test_partitions_for_unpooled_dataset_and_answer_protocol(tmp_path: Path) -> None:
    exp = {"dataset": {"name": "hipporag_multihop"}, "match": False,
           "base": {"index": {"retriever": {"type": "bm25"}}},  # no embedding work on 2,884 passages
           "protocols": {"evidence": {"k": [2, 5]}, "answer": {}},
           "variants": [{"name": "rec", "set": {"index.chunker": {"type": "recursive", "max_tokens": 254},
                                                "query.aggregator": {"type": "stuff", "llm": "default"}}}]}
    lines: list[str] = []
    result = run_experiment(exp, out=tmp_path, data_root=SHARED_DATASETS, limit=3, echo=lines.append, plots=False)
    assert {r["partition"] for r in result.records} == {"hotpotqa", "musique"}
    text = "\n".join(lines)
    assert "dataset: hipporag_multihop/hotpotqa" in text and "dataset: hipporag_multihop/musique" in text
    assert "protocol: answer" in text
    rec = result.records[0]
    assert rec["protocols"]["answer"]["overall"]["llm_calls"]["mean"] == 1.0
    assert 0 <= rec["protocols"]["evidence"]["overall"]["all@5"]["mean"] <= 1


def test_experiment_errors() -> None:
    with pytest.raises(ConfigError, match="unknown protocol 'chorma'"):
        load_experiment(_experiment(protocols=["chorma"]))
    with pytest.raises(ConfigError, match=r"unknown keys \['varients'\]"):
        load_experiment({**_experiment(), "varients": []})
    with pytest.raises(ConfigError, match="chroma's k = 5 is fixed"):
        load_experiment(_experiment(protocols={"chroma": {"k": 10}}))
    with pytest.raises(ConfigError, match="protocols.chroma.positions: got 'fuzzy'; allowed: exact, reference"):
        load_experiment(_experiment(), overrides=["protocols.chroma.positions=fuzzy"])
    with pytest.raises(ConfigError, match="baseline: 'nope' is not a variant; variants are token, sentence"):
        load_experiment(_experiment(baseline="nope"))
    with pytest.raises(ConfigError, match="bootstrap.resamples: expected a positive integer"):
        load_experiment(_experiment(bootstrap={"resamples": 0}))
    bad = _experiment(variants=[{"name": "typo", "set": {"index.chunker": {"type": "sentense"}}}])
    with pytest.raises(ConfigError, match="(?s)variant 'typo'.*index.chunker.type.*Did you mean 'sentence'"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="names must be unique"):
        load_experiment(_experiment(variants=[{"name": "a"}, {"name": "a"}]))
    with pytest.raises(ConfigError, match="--grid"):
        parse_grid(["index.chunker.max_tokens"])


def test_grid_expansion_and_set() -> None:
    exp = load_experiment(_experiment(), grid=["index.chunker.max_tokens=64,128"], overrides=["cache.mode=read_only"])
    assert [v.name for v in exp.variants] == ["token@max_tokens=64", "token@max_tokens=128",
                                              "sentence@max_tokens=64", "sentence@max_tokens=128"]
    cfg = exp.variant_config(exp.variants[3])
    assert cfg["index"]["chunker"] == {"type": "sentence", "max_tokens": 128} and cfg["cache"]["mode"] == "read_only"


def test_pipeline_config_is_accepted_as_a_one_variant_experiment(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump({**FAKE, "corpus": {"dataset": "chroma_chunking_eval", "subset": ["chatlogs"]}}))
    exp = load_experiment(path)
    assert [v.name for v in exp.variants] == ["pipe"] and exp.datasets[0]["subset"] == ["chatlogs"]


@pytest.mark.slow
def test_cli_eval_with_real_minilm_and_a_peer(tmp_path: Path) -> None:
    """The reduced acceptance run: real MiniLM embedder, a ragkit chunker and a peer, both protocols."""
    from ragkit.cli import app

    exp = {"name": "reduced", "dataset": {"name": "chroma_chunking_eval", "subset": ["chatlogs"]},
           "base": {"index": {"retriever": {"type": "dense"}}}, "protocols": ["chroma", "budget"],
           "variants": [{"name": "recursive", "set": {"index.chunker": {"type": "recursive", "max_tokens": 254,
                                                                        "target_tokens": 235}}},
                        {"name": "langchain", "set": {"index.chunker": {"type": "langchain_recursive",
                                                                        "max_tokens": 254}}}]}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    result = CliRunner().invoke(app, ["eval", str(path), "--out", str(tmp_path / "out"), "--limit", "5",
                                      "--data-root", str(SHARED_DATASETS)])
    assert result.exit_code == 0, result.output
    assert "protocol: chroma" in result.output and "protocol: budget" in result.output
    assert "langchain_recursive" in result.output and result.output.rstrip().endswith(f"output: {tmp_path / 'out'}")
    bad = CliRunner().invoke(app, ["eval", str(path), "--out", str(tmp_path / "bad"),
                                   "--data-root", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "does not exist" in bad.output
    assert not (tmp_path / "bad").exists()   # a run that fails before any result leaves no output folder


def test_variants_can_be_whole_config_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"index": {"chunker": {"type": "paragraph", "max_tokens": 99},
                                                               "retriever": {"type": "bm25"}}}))
    exp_path = tmp_path / "exp.yaml"
    exp_path.write_text(yaml.safe_dump({"dataset": "chroma_chunking_eval", "protocols": ["chroma"],
                                        "variants": [{"name": "from-file", "config": "a.yaml",
                                                      "set": {"index.chunker.max_tokens": 77}}]}))
    exp = load_experiment(exp_path)
    cfg = exp.variant_config(exp.variants[0])
    assert cfg["index"]["chunker"] == {"type": "paragraph", "max_tokens": 77}
    assert cfg["index"]["retriever"] == {"type": "bm25"}
    assert cfg["backends"]["llm"]["default"] == {"type": "fake"}  # no LLM is built unless a protocol needs one


def test_data_root_reaches_stages_that_load_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # intent's oracle control loads the dataset's questions itself; --data-root must reach it too
    monkeypatch.setenv("RAGKIT_DATA", str(tmp_path / "nowhere"))
    exp = _experiment(protocols=["chroma"], variants=[{"name": "oracle", "set": {"index.chunker": {
        "type": "intent", "embedder": "default", "max_tokens": 200, "target_tokens": 150,
        "intent_source": "given", "intents_dataset": "chroma_chunking_eval"}}}])
    result = run_experiment(exp, out=tmp_path / "out", data_root=SHARED_DATASETS, limit=2, echo=None, plots=False)
    assert result.tables and os.environ["RAGKIT_DATA"] == str(tmp_path / "nowhere")


def _generic_dataset(root: Path) -> Path:
    folder = root / "tiny"
    folder.mkdir(parents=True)
    docs = [{"id": "a", "text": "Ada Lovelace wrote the first program.\n\nShe worked with Babbage."},
            {"id": "b", "text": "Bees make honey.\n\nHoney keeps for years."}]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    questions = [{"question": "Who wrote the first program?", "answer": "Ada Lovelace", "gold_passages": ["a"]},
                 {"question": "What do bees make?", "answer": "honey", "gold_passages": ["b"]}]
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return folder


def test_data_root_goes_to_each_variants_pipeline_not_the_environment(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared data: a generic dataset under --data-root, bm25, every retrieval protocol."""
    import ragkit.eval.runner as runner

    _generic_dataset(tmp_path / "data")
    monkeypatch.setenv("RAGKIT_DATA", str(tmp_path / "nowhere"))
    seen: list[object] = []
    score = runner.score_variant

    def spy(pipe, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(pipe.data_root)
        assert os.environ["RAGKIT_DATA"] == str(tmp_path / "nowhere")
        return score(pipe, *args, **kwargs)

    monkeypatch.setattr(runner, "score_variant", spy)
    exp = {"dataset": "tiny", "protocols": ["chroma", "budget", "evidence"], "match": False,
           "base": {"index": {"retriever": {"type": "bm25"}}},
           "variants": [{"name": "para", "set": {"index.chunker": {"type": "paragraph", "max_tokens": 64}}},
                        {"name": "tok", "set": {"index.chunker": {"type": "token", "max_tokens": 8}}}]}
    result = run_experiment(exp, out=tmp_path / "out", data_root=tmp_path / "data", echo=None, plots=False)
    assert seen == [tmp_path / "data", tmp_path / "data"]
    para = result.records[0]
    assert para["cost"]["chunks"] == 2 and para["match"] is None  # one chunk per (short) document
    budget = para["protocols"]["budget"]["overall"]  # 1,000 tokens hold the whole tiny corpus
    assert budget["all_gold"]["mean"] == 1.0 and budget["answer_in_context"]["mean"] == 1.0
    assert para["protocols"]["evidence"]["overall"]["passage_recall@1"]["mean"] == 1.0
    assert result.records[1]["cost"]["max_tokens"] <= 8


def test_set_reaches_the_experiment_protocols_and_baseline() -> None:
    exp = load_experiment(_experiment(), overrides=["protocols.chroma.positions=reference", "baseline=sentence",
                                                    "bootstrap.seed=3", "index.chunker.max_tokens=99"])
    assert exp.protocols["chroma"] == {"k": 5, "positions": "reference"} and exp.baseline == "sentence"
    assert exp.bootstrap["seed"] == 3 and list(exp.protocols) == ["chroma", "budget", "evidence"]
    assert exp.overrides == [("index.chunker.max_tokens", 99)]  # pipeline keys still go to every variant
    assert exp.variant_config(exp.variants[0])["index"]["chunker"]["max_tokens"] == 99


def test_reruns_are_bit_identical_and_report_duplicates_and_paired_tests(tmp_path: Path) -> None:
    """A small real experiment twice from scratch: byte-identical tables and results (timings aside)."""
    exp = _experiment(protocols={"chroma": {"positions": "reference"}, "budget": {}}, baseline="token",
                      dataset={"name": "chroma_chunking_eval", "subset": ["chatlogs", "finance"]})
    runs = []
    for i in range(2):
        lines: list[str] = []
        result = run_experiment(exp, out=tmp_path / f"run{i}", data_root=SHARED_DATASETS, limit=6,
                                echo=lines.append, plots=False, force=True)
        runs.append((result, lines))
    (first, printed), (second, printed_again) = runs

    def untimed(lines: list[str]) -> list[str]:  # the last column is a timing (index s / p50 ms latency)
        return [line.rsplit("|", 2)[0] for line in "\n".join(lines).splitlines()]

    assert untimed(printed) == untimed(printed_again)
    timed = "budget chroma_chunking_eval"  # its p50 ms column is measured; every other table is compared whole
    assert {k: v for k, v in first.tables.items() if k != timed} == {k: v for k, v in second.tables.items() if k != timed}
    assert len(first.tables) == 4  # chroma, its paired table, budget, its paired table
    for a, b in zip(first.records, second.records):
        assert a["protocols"] == b["protocols"]  # every mean, interval and per-question value
    text = "\n".join(printed)
    assert "protocol: chroma (positions: reference)" in text and "precision Ω % [95% CI]" in text
    assert "dataset: chroma_chunking_eval — paired vs baseline token" in text
    chroma = first.records[0]["protocols"]["chroma"]
    assert chroma["overall"]["recall"]["ci"][0] <= chroma["overall"]["recall"]["mean"] <= chroma["overall"]["recall"]["ci"][1]
    assert 0 < chroma["overall"]["precision_omega"]["mean"] <= 1
    assert len(chroma["per_question"]["question"]) == 12
    # finance.md repeats passages: its token windows include byte-identical chunks, and the report says so
    dups = [r["cost"]["duplicates"] for r in first.records]
    assert any("finance" in d for d in dups)
    assert "duplicate chunks (byte-identical; copies beyond the first, per corpus):" in text
    data = json.loads((tmp_path / "run0" / "results.json").read_text())
    assert set(data["paired"]) == {"chroma chroma_chunking_eval", "budget chroma_chunking_eval"}
    assert set(data["paired"]["chroma chroma_chunking_eval"]["sentence"]) == {"recall", "precision", "iou",
                                                                             "precision_omega"}
