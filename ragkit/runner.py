"""``ragkit run`` as a library call: index phase, then answer every question, then write the outputs.

Outputs (in ``--out``, else ``output.dir``, else ``runs/<config stem>/``):

- ``answers.jsonl``: one object per question: ``id``, ``question``, ``answer``, ``chunks`` (the cited
  chunks in prompt order: ``rank``, ``id``, ``doc_id``, ``source``, ``start``, ``end``, ``score``,
  ``retriever``, ``text``, ``metadata``), ``usage`` and ``trace``;
- ``summary.json``: the resolved config, the index report, usage per stage and in total, timings
  and counts.

Questions come from ``query.questions`` (JSONL, one ``{"id": ..., "question": ...}`` per line), or
from the dataset when the corpus is ``{dataset: ...}`` and no questions file is given.

Example:
    >>> from ragkit.runner import read_questions
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
    >>> _ = path.write_text('{"id": "q1", "question": "What is BM25?"}\\n')
    >>> [q.id for q in read_questions(path)]
    ['q1']
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, DatasetError
from ragkit.progress import progress
from ragkit.store.atomic import atomic_open, atomic_write_json
from ragkit.types import Answer, Document, Query, Usage


@dataclass
class RunResult:
    """What :func:`run_config` produced."""

    output_dir: Path
    answers: list[dict[str, Any]]
    summary: dict[str, Any]
    usage: Usage
    index_report: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_questions(path: str | Path) -> list[Query]:
    """Questions from a JSONL file of ``{"id", "question"}`` objects (``id`` optional: line number)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"query.questions: file {str(path)!r} does not exist; give a JSONL file with one "
                          '{"id": ..., "question": ...} object per line (or --questions FILE)')
    queries: list[Query] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path}, line {number}: not valid JSON ({exc}); each line must be an object "
                                   'like {"id": "q1", "question": "..."}') from exc
            text = record.get("question") if isinstance(record, Mapping) else None
            if not isinstance(text, str) or not text.strip():
                raise DatasetError(f"{path}, line {number}: missing a non-empty \"question\" string (got {record!r:.120})")
            qid = str(record.get("id", f"q{number}"))
            if qid in seen:
                raise DatasetError(f"{path}, line {number}: duplicate question id {qid!r}; ids must be unique")
            seen.add(qid)
            metadata = {k: v for k, v in record.items() if k not in ("id", "question")}
            queries.append(Query(id=qid, text=text, metadata=metadata))
    return queries


def build_pipeline(config: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), *, no_cache: bool = False,
                   questions: str | Path | None = None, registry: Any = None) -> Any:
    """A :class:`~ragkit.pipeline.Pipeline` with CLI-style overrides applied (``--no-cache`` → ``cache.mode=off``)."""
    from ragkit.pipeline import Pipeline

    extra: list = list(overrides)
    if no_cache:
        extra.append(("cache.mode", "off"))  # a tuple: YAML would read the string "off" as false
    if questions is not None:
        extra.append(("query.questions", str(questions)))
    if isinstance(config, Mapping):
        return Pipeline.from_config(config, extra, registry=registry)
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    return Pipeline.from_yaml(path, extra, registry=registry)


def _find(path_text: str, config_path: Path | None) -> Path:
    path = Path(path_text).expanduser()
    if path.is_absolute() or path.exists() or config_path is None:
        return path
    beside = config_path.parent / path
    return beside if beside.exists() else path


def load_inputs(pipeline: Any, data_root: str | Path | None = None, config_path: Path | None = None,
                with_questions: bool = True) -> tuple[list[Document], list[Query]]:
    """The corpus documents and (unless ``with_questions=False``) the questions of a run.

    Documents come from the config's ``corpus`` section through :func:`ragkit.corpus.corpus_from_spec`;
    questions from ``query.questions`` when set, else from the dataset of a dataset corpus.
    """
    from ragkit.corpus import corpus_from_spec

    spec = pipeline.config["corpus"]
    questions_file = pipeline.config["query"].get("questions")
    if not (spec.get("dataset") or spec.get("paths")):
        raise ConfigError("corpus: give corpus.paths (files, directories or globs) or corpus.dataset (a dataset "
                          "name); the config has neither")
    with pipeline._timed("index.load"):
        corpus = corpus_from_spec(spec, base_dir=pipeline.base_dir, data_root=data_root,
                                  config_data_root=pipeline.config.get("data_root"))
    if not with_questions:
        questions = []
    elif questions_file:
        questions = read_questions(_find(str(questions_file), config_path))
    else:
        questions = corpus.questions or []
    return list(corpus.documents), questions


def resolve_output_dir(pipeline: Any, out: str | Path | None) -> Path:
    """``--out`` > ``output.dir`` > ``runs/<config stem>/`` (relative to the working directory)."""
    if out is not None:
        return Path(out)
    configured = pipeline.config.get("output", {}).get("dir")
    if configured:
        return Path(configured)
    return Path("runs") / pipeline.name


def answer_record(query: Query, answer: Answer) -> dict[str, Any]:
    """The ``answers.jsonl`` object for one question."""
    data = answer.to_dict()
    chunks = []
    for rank, (scored, plain) in enumerate(zip(answer.chunks, data["chunks"]), 1):
        meta = plain["metadata"]
        chunks.append({
            "rank": rank, "id": scored.chunk.id, "doc_id": scored.chunk.doc_id,
            "source": meta.get("source_id") or meta.get("path"), "start": scored.chunk.start,
            "end": scored.chunk.end, "score": scored.score, "retriever": scored.source,
            "text": scored.chunk.text, "metadata": meta,
        })
    return {"id": query.id, "question": query.text, "answer": answer.text, "chunks": chunks,
            "usage": data["usage"], "trace": data["trace"]}


def run_config(
    config: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    out: str | Path | None = None,
    rebuild: bool = False,
    no_cache: bool = False,
    data_root: str | Path | None = None,
    questions: str | Path | None = None,
    on_answer: Callable[[Query, Answer], None] | None = None,
    on_index: Callable[[Any], None] | None = None,
    registry: Any = None,
) -> RunResult:
    """Index the corpus, answer every question, write ``answers.jsonl`` and ``summary.json``."""
    from ragkit import __version__

    started = time.perf_counter()
    pipeline = build_pipeline(config, overrides, no_cache=no_cache, questions=questions, registry=registry)
    pipeline.data_root = data_root
    config_path = None if isinstance(config, Mapping) else Path(config)
    output_dir = resolve_output_dir(pipeline, out)
    docs, queries = load_inputs(pipeline, data_root, config_path)
    if not queries:
        raise ConfigError("query.questions: no questions to answer; set query.questions to a JSONL file of "
                          '{"id", "question"} objects, or pass --questions FILE (use `ragkit index` to only index)')
    t0 = time.perf_counter()
    report = pipeline.index_documents(docs, rebuild=rebuild)
    index_s = time.perf_counter() - t0 + pipeline.stage_usage.get("index.load", Usage()).wall_time_s
    report.seconds = index_s
    if on_index is not None:
        on_index(report)

    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    with progress(len(queries), "answering", "question") as bar:
        for query in queries:
            answer = pipeline.query(query)
            records.append(answer_record(query, answer))
            if on_answer is not None:
                on_answer(query, answer)
            bar.update(1)
    query_s = time.perf_counter() - t0

    with atomic_open(output_dir / "answers.jsonl", "w") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    total = pipeline.run_usage()
    summary = {
        "ragkit_version": __version__,
        "config": str(config_path) if config_path else None,
        "name": pipeline.name,
        "output_dir": str(output_dir),
        "cache_mode": pipeline.config["cache"]["mode"],
        "index_hash": pipeline.index_hash(),
        "index": {"documents": report.documents, "chunks": report.chunks,
                  "documents_processed": report.documents_processed,
                  "documents_removed": report.documents_removed, "reused": report.reused,
                  "store": report.store, "seconds": round(index_s, 4)},
        "questions": len(queries),
        "usage": {"per_stage": {slot: u.to_dict() for slot, u in sorted(pipeline.stage_usage.items())},
                  "total": total.to_dict()},
        "timings": {"index_s": round(index_s, 4), "query_s": round(query_s, 4),
                    "per_question_s": round(query_s / len(queries), 4),
                    "total_s": round(time.perf_counter() - started, 4)},
        "resolved_config": pipeline.to_config(),
    }
    atomic_write_json(output_dir / "summary.json", summary)
    return RunResult(output_dir=output_dir, answers=records, summary=summary, usage=total, index_report=report)


def index_config(
    config: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    rebuild: bool = False,
    no_cache: bool = False,
    data_root: str | Path | None = None,
    registry: Any = None,
) -> tuple[Any, Any]:
    """Run only the index phase; returns ``(pipeline, IndexReport)``."""
    pipeline = build_pipeline(config, overrides, no_cache=no_cache, registry=registry)
    pipeline.data_root = data_root
    config_path = None if isinstance(config, Mapping) else Path(config)
    t0 = time.perf_counter()
    docs, _ = load_inputs(pipeline, data_root, config_path, with_questions=False)
    report = pipeline.index_documents(docs, rebuild=rebuild)
    report.seconds = time.perf_counter() - t0
    return pipeline, report

