"""Report formatting without models or data: tables, the Markdown report, the files written."""

from __future__ import annotations

import json
from pathlib import Path

from ragkit.eval.experiment import load_experiment
from ragkit.eval.report import (
    markdown_table,
    protocol_sections,
    render_markdown,
    render_tables,
    slug,
    write_report,
)


def _stat(mean: float, std: float = 0.0) -> dict:
    return {"mean": mean, "std": std, "n": 3}


def _record(variant: str, partition: str = "all", ok: bool | None = True) -> dict:
    return {
        "variant": variant, "chunker": {"type": "token"}, "dataset": "ds", "partition": partition,
        "match": None if ok is None else {"ok": ok},
        "cost": {"chunks": 12, "mean_tokens": 199.6, "std_tokens": 3.2, "index_seconds": 2.0, "latency_p50_ms": 1.25,
                 "query_usage": {"llm_calls": 3}},
        "protocols": {
            "chroma": {"overall": {"recall": _stat(0.5, 0.25), "precision": _stat(0.1), "iou": _stat(0.05)}},
            "budget": {"overall": {"selected_chunks": _stat(4.0), "selected_tokens": _stat(812.4),
                                   "recall": _stat(0.9), "precision": _stat(0.2), "iou": _stat(0.18),
                                   "all_gold": _stat(2 / 3)}},
            "evidence": {"overall": {"recall@2": _stat(0.5), "all@2": _stat(1 / 3), "recall@5": _stat(1.0),
                                     "all@5": _stat(1.0), "mrr": _stat(0.75), "ndcg@5": _stat(0.8)}},
            "answer": {"overall": {"em": _stat(1 / 3), "f1": _stat(0.5)}},
        },
    }


EXP = {"name": "report", "dataset": "chroma_chunking_eval",
       "protocols": {"chroma": {}, "budget": {}, "evidence": {"k": [2, 5]}, "answer": {}}}


def test_markdown_table_pads_columns() -> None:
    assert markdown_table(["a", "bb"], [["xxx", "y"]]) == "| a   | bb |\n|-----|----|\n| xxx | y  |"
    assert markdown_table(["a"], []) == "| a |\n|---|"


def test_one_table_per_protocol_and_partition_with_sizes_and_flags() -> None:
    tables = render_tables(load_experiment(EXP), [_record("tok"), _record("off", ok=False),
                                                  _record("tok", partition="p2", ok=None)])
    assert list(tables) == ["chroma ds", "chroma ds/p2", "budget ds", "budget ds/p2", "evidence ds", "evidence ds/p2",
                            "answer ds", "answer ds/p2"]
    chroma = tables["chroma ds"].splitlines()
    assert chroma[0] == "dataset: ds"
    assert [c.strip() for c in chroma[1].split("|")[1:-1]] == [
        "variant", "chunker", "chunks", "tokens mean ± std", "recall % [95% CI]", "precision % [95% CI]",
        "IoU % [95% CI]", "precision Ω % [95% CI]", "index s"]
    # records without intervals fall back to mean ± std; a missing metric is –
    assert [c.strip() for c in chroma[3].split("|")[1:-1]] == [
        "tok", "token", "12", "200 ± 3", "50.00 ± 25.00", "10.00 ± 0.00", "5.00 ± 0.00", "–", "2.0"]
    assert "200 ± 3 ⚠" in tables["chroma ds"] and "⚠" not in tables["chroma ds/p2"]
    budget = tables["budget ds"]
    assert "sel. tokens" in budget and "812" in budget and "66.7" in budget and "answer-in-ctx %" in budget
    assert "–" in budget  # answer-in-context is missing in these records
    evidence = tables["evidence ds"]
    assert "recall@2 %" in evidence and "all@5 %" in evidence and "nDCG@5" in evidence and "0.750" in evidence
    answer = tables["answer ds"]
    assert "EM %" in answer and "33.3" in answer and "| 3 " in answer


def test_markdown_report_and_printed_sections() -> None:
    exp = load_experiment(EXP)
    tables = render_tables(exp, [_record("tok")])
    summary = {"ds": {"questions": 3, "questions_with_gold_spans": 2, "documents": 1, "characters": 12345,
                      "excluded": {"no_span": 1}}}
    md = render_markdown(exp, tables, summary, None)
    assert md.startswith("# report\n\n- dataset `ds`: 3 questions (2 with gold spans), 1 documents, 12,345 characters"
                         '; excluded: {"no_span": 1}')
    assert "reduced run" not in md and "matched at 200 ± 10 %" in md
    assert md.count("protocol: ") == 4 and "protocol: budget\n\ndataset: ds\n| variant" in md
    assert "protocol: chroma (positions: exact)\n\ndataset: ds" in md and "95 % bootstrap interval" in md
    lines = protocol_sections(tables, exp.protocols)
    assert lines[0::3] == ["protocol: chroma (positions: exact)", "protocol: budget", "protocol: evidence",
                           "protocol: answer"]
    assert all(line == "" for line in lines[2::3])


def test_write_report_files(tmp_path: Path) -> None:
    exp = load_experiment(EXP)
    records = [_record("tok")]
    tables = render_tables(exp, records)
    printed: list[str] = []
    write_report(tmp_path, exp, records, tables, {"ds": {"questions": 3, "questions_with_gold_spans": 3,
                                                         "documents": 1, "characters": 10}}, 3, plots=False,
                 echo=printed.append)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["experiment"] == "report" and data["limit"] == 3 and data["records"][0]["variant"] == "tok"
    assert set(data["machine"]) == {"platform", "python", "cpus", "processor"}
    assert "reduced run: at most 3 questions per corpus" in (tmp_path / "results.md").read_text()
    assert printed == protocol_sections(tables, exp.protocols) and not list(tmp_path.glob("*.png"))
    assert data["bootstrap"]["seed"] == 0 and data["baseline"] is None and data["paired"] == {}


def test_slug() -> None:
    assert slug("a b/c") == "a_b_c" and slug("///") == "variant" and len(slug("x" * 200)) == 80


def _with_questions(record: dict, values: list[float]) -> dict:
    """``record`` with per-question chroma rows (questions q0..qn) and intervals, as the runner writes them."""
    from ragkit.eval.protocols import summarise

    rows = [{"corpus": "c", "question": f"q{i}", "recall": v, "precision": v / 10, "iou": v / 10,
             "precision_omega": 0.05} for i, v in enumerate(values)]
    return {**record, "protocols": {"chroma": summarise(rows)}}


def test_cells_show_intervals_and_baseline_adds_paired_tables() -> None:
    exp = load_experiment({**EXP, "protocols": ["chroma"], "baseline": "base",
                           "variants": [{"name": "base"}, {"name": "better"}, {"name": "same"}]})
    base = [0.5 + 0.1 * (i % 3) for i in range(60)]
    records = [_with_questions(_record("base"), base),
               _with_questions(_record("better"), [min(1.0, v + 0.1) for v in base]),
               _with_questions(_record("same"), list(base))]
    tables = render_tables(exp, records)
    assert list(tables) == ["chroma ds", "chroma ds vs base"]
    row = [c.strip() for c in tables["chroma ds"].splitlines()[2 + 1].split("|")[1:-1]]
    assert row[4].startswith("60.00 [") and row[7].startswith("5.00 [5.00, 5.00]")
    paired = tables["chroma ds vs base"].splitlines()
    assert paired[0].startswith("dataset: ds — paired vs baseline base")
    assert [c.strip() for c in paired[1].split("|")[1:-1]] == [
        "variant", "Δ recall", "p", "Δ precision", "p", "Δ IoU", "p", "Δ precision Ω", "p"]
    better = [c.strip() for c in paired[3].split("|")[1:-1]]
    same = [c.strip() for c in paired[4].split("|")[1:-1]]
    assert better[0] == "better" and better[1].startswith("+10.00 [+10.00, +10.00]") and float(better[2]) < 0.001
    assert same[0] == "same" and same[1] == "+0.00 [+0.00, +0.00]" and same[2] == "1.0000"
    lines = protocol_sections(tables, exp.protocols)
    assert lines[0::3] == ["protocol: chroma (positions: exact)", "protocol: chroma (positions: exact)"]
    assert render_tables(exp, records) == tables  # seeded: the same tables every time


def test_duplicates_are_reported(tmp_path: Path) -> None:
    exp = load_experiment({**EXP, "protocols": ["chroma"]})
    record = _record("tok")
    record["cost"]["duplicates"] = {"finance": {"copies": 8, "texts": 8}}
    printed: list[str] = []
    write_report(tmp_path, exp, [record], render_tables(exp, [record]), {}, None, plots=False, echo=printed.append)
    assert printed[-2:] == ["duplicate chunks (byte-identical; copies beyond the first, per corpus):",
                            "- tok: finance 8 (8 texts)"]
    assert "- tok: finance 8 (8 texts)" in (tmp_path / "results.md").read_text()
