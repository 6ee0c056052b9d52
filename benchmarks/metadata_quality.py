"""Does LLM-generated chunk metadata help retrieval? The metadata study's 3 x 3 grid through ``ragkit eval``.

Grid (METHODS.md §6): chunking {recursive, semantic, paragraph (the study's "naive")} x embedding view
{content, prefix_fusion, tfidf_weighted}; MiniLM embeddings, dense (FAISS exact) retrieval; the chroma
protocol (k = 5, Chroma's arithmetic), the budget protocol (B = 1,000 tokens) and hit@10; on Chroma's
state_of_the_union + chatlogs + wikitexts (pooled, 221 dev questions) and the four shortest L-Eval
Natural Questions dev pages (natural_question:13, 14, 9, 12; 17 questions). Metadata: SmolLM2-135M-Instruct,
compact schema (6 short fields, <= 96 output tokens), constrained JSON decoding, greedy.

The metadata is generated once and committed as a JSONL artifact, so the grid can be re-scored
without regenerating (the enricher's ``precomputed=`` takes it by prompt key):

    python benchmarks/metadata_quality.py export                       # chunk, write the chunks to enrich
    python benchmarks/metadata_quality.py generate --device cpu        # SmolLM2 on them (or --device cuda)
    python benchmarks/metadata_quality.py artifact RUN/rows*.jsonl     # -> benchmarks/artifacts/...jsonl
    python benchmarks/metadata_quality.py score                        # the 3 x 3 tables (no LLM call)

``generate`` resumes (rows already written are skipped) and stops cleanly at ``--time-budget``
seconds, so it can run in slices (the figures in RESULTS.md were generated on the GPU machine this
way, from the same GGUF weights, converted by ragkit's own ``prepare_model``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "configs" / "eval" / "metadata-grid.yaml"
ARTIFACT = REPO / "benchmarks" / "artifacts" / "metadata-smollm2-compact.jsonl"
RUN_DIR = REPO / "runs" / "metadata-grid"
NQ_PAGES = ("natural_question:13", "natural_question:14", "natural_question:9", "natural_question:12")
NQ_NAME = "leval_nq4"


# ---------------------------------------------------------------------------------------------- datasets
def write_nq_folder(out: Path) -> Path:
    """The four L-Eval NQ pages and their questions as a generic-format dataset folder (as loaded by ragkit)."""
    from ragkit.datasets import load_dataset

    ds = load_dataset("leval_longdoc", subset="natural_question")
    docs = {str(d.metadata["source_id"]): d for d in ds.documents}
    folder = out / NQ_NAME
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as handle:
        for source in NQ_PAGES:
            doc = docs[source]
            meta = {k: v for k, v in doc.to_dict()["metadata"].items() if k not in ("source_id", "corpus")}
            handle.write(json.dumps({"id": source, "text": doc.text, "corpus": "natural_question",
                                     "metadata": meta}, ensure_ascii=False) + "\n")
    by_doc = {docs[s].id: s for s in NQ_PAGES}
    with open(folder / "questions.jsonl", "w", encoding="utf-8") as handle:
        for q in ds.questions:
            spans = [s for s in q.gold_spans if s.doc_id in by_doc]
            if not spans:
                continue
            handle.write(json.dumps({"id": q.id, "question": q.text, "answers": list(q.answers),
                                     "corpus": "natural_question",
                                     "gold_spans": [{"doc": by_doc[s.doc_id], "start": s.start, "end": s.end}
                                                    for s in spans]}, ensure_ascii=False) + "\n")
    (folder / "dataset.json").write_text(json.dumps({"name": NQ_NAME, "pooled": True, "hit_rule": "contain"}))
    return folder


def experiment(artifact: Path = ARTIFACT, with_nq: bool = True) -> Any:
    """The grid experiment (configs/eval/metadata-grid.yaml) with the artifact path and the NQ pages."""
    from ragkit.eval.runner import load_experiment

    exp = load_experiment(EXPERIMENT, overrides=[f"index.enrichers.0.precomputed={artifact}"])
    if with_nq:
        folder = write_nq_folder(RUN_DIR / "data")
        exp.datasets.append({"name": str(folder), "subset": None, "limit": None})
    return exp


# ---------------------------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> None:
    """Chunk every dataset with the three chunkers; write one JSONL row per unique prompt key."""
    from ragkit.config.load import load_config
    from ragkit.datasets import load_dataset
    from ragkit.pipeline import Pipeline

    exp = experiment()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    chunkers = {}
    for variant in exp.variants:  # one chunker per base variant name (the view does not change chunks)
        chunkers.setdefault(variant.name.split("@")[0], variant)
    written_docs: set[str] = set()
    with open(out, "w", encoding="utf-8") as handle:
        for spec in exp.datasets:
            dataset = load_dataset(spec["name"], subset=spec["subset"])
            for doc in dataset.documents:
                if doc.id not in written_docs:
                    written_docs.add(doc.id)
                    handle.write(json.dumps({"doc": doc.to_dict()}, ensure_ascii=False) + "\n")
            for name, variant in chunkers.items():
                pipe = Pipeline.from_config(load_config(exp.variant_config(variant)))
                enricher = pipe.enrichers[0]
                for doc in dataset.documents:
                    for chunk in pipe.chunker.chunk(doc):
                        key = enricher.prompt_key(chunk, doc)
                        counts[name] = counts.get(name, 0) + 1
                        if key in seen:
                            continue
                        seen.add(key)
                        handle.write(json.dumps({"key": key, "chunker": name, "chunk": chunk.to_dict()},
                                                ensure_ascii=False) + "\n")
    print(json.dumps({"unique_prompts": len(seen), "chunks_per_chunker": counts, "out": str(out)}))


# ---------------------------------------------------------------------------------------------- generate
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def cmd_generate(args: argparse.Namespace) -> None:
    """SmolLM2 metadata for exported chunks, in slices, appending artifact rows; resumable."""
    from ragkit.cache import CacheStore
    from ragkit.enrichers.llm_metadata import LLMMetadataEnricher, artifact_rows
    from ragkit.llm.cached import wrap_llm
    from ragkit.llm.transformers_backend import TransformersLLM
    from ragkit.types import Chunk, Document

    start = time.perf_counter()
    records = _read_jsonl(Path(args.input))
    all_docs = {r["doc"]["id"]: Document.from_dict(r["doc"]) for r in records if "doc" in r}
    rows = [r for r in records if "key" in r]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    for path in [out, *map(Path, args.done or [])]:
        if path.is_file():
            done |= {r["key"] for r in _read_jsonl(path)}
    keyer = LLMMetadataEnricher(llm="unused", profile="compact")
    unique: dict[str, dict[str, Any]] = {}
    for r in rows:  # keys are recomputed: an edited prompt template gives new keys for the same chunks
        chunk = Chunk.from_dict(r["chunk"])
        unique.setdefault(keyer.prompt_key(chunk, all_docs[chunk.doc_id]), r)
    todo = [{**r, "key": key} for key, r in unique.items() if key not in done]
    if args.shard:
        index, count = (int(x) for x in args.shard.split("/"))
        todo = [r for r in todo if int(r["key"][:8], 16) % count == index]  # by key: stable as rows land
    if args.limit:
        todo = todo[: args.limit]
    print(f"{len(rows)} exported, {len(done)} done, {len(todo)} to generate", file=sys.stderr, flush=True)
    llm = wrap_llm(TransformersLLM(device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                   max_batch_tokens=args.max_batch_tokens),
                   store=CacheStore(out.parent / "generate-cache.sqlite"))
    llm.warm_up()
    load_s = time.perf_counter() - start
    enricher = LLMMetadataEnricher(llm=llm, profile="compact", batch_size=args.slice, show_progress=False)
    stats = {"chunks": 0, "valid": 0, "seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0}
    for i in range(0, len(todo), args.slice):
        if time.perf_counter() - start > args.time_budget:
            print("time budget reached; rerun to continue", file=sys.stderr)
            break
        part = todo[i: i + args.slice]
        chunks = [Chunk.from_dict(r["chunk"]) for r in part]
        docs = {c.doc_id: all_docs[c.doc_id] for c in chunks}
        t0 = time.perf_counter()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enriched, report = enricher.enrich_with_report(chunks, docs)
        stats["seconds"] += time.perf_counter() - t0
        for key in ("chunks", "valid", "prompt_tokens", "completion_tokens"):
            stats[key] += getattr(report, key)
        new = artifact_rows(enricher, enriched, docs)
        for row, src in zip(new, part):
            if row["key"] != src["key"]:
                raise RuntimeError(f"prompt key changed between export and generation: {src['key']} vs {row['key']}")
            row["chunker"] = src["chunker"]
        with open(out, "a", encoding="utf-8") as handle:
            for row in new:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        print(f"{i + len(part)}/{len(todo)} valid {stats['valid']}/{stats['chunks']} "
              f"{stats['chunks'] / max(stats['seconds'], 1e-9):.2f} chunks/s", file=sys.stderr, flush=True)
    stats.update(load_seconds=load_s, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                 remaining=len(todo) - stats["chunks"], model=llm.inner.describe())
    print(json.dumps(stats, default=str))
    (out.parent / f"{out.stem}.stats.json").write_text(json.dumps(stats, indent=2, default=str))


# ---------------------------------------------------------------------------------------------- artifact
def gguf_sha256() -> tuple[str, str]:
    """``(file name, sha256)`` of the packaged SmolLM2 GGUF the metadata was generated from."""
    from ragkit.llm.models import gguf_path

    path = Path(gguf_path("smollm2-135m-instruct"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path.name, digest


def cmd_artifact(args: argparse.Namespace) -> None:
    """Merge generated rows into the committed artifact with the header that says how they were made."""
    from ragkit.enrichers.llm_metadata import METADATA_PROMPT, write_metadata_artifact
    from ragkit.enrichers.schema import MetadataSchema
    from ragkit.llm.models import model_revision

    rows = [r for path in args.rows for r in _read_jsonl(Path(path))]
    name, digest = gguf_sha256()
    valid = sum(1 for r in rows if r["valid"])
    header = {
        "command": args.command or "python benchmarks/metadata_quality.py export && "
                                   "python benchmarks/metadata_quality.py generate ... && "
                                   "python benchmarks/metadata_quality.py artifact ...",
        "model": "smollm2-135m-instruct", "model_file": name, "model_sha256": digest,
        "model_revision": model_revision("smollm2-135m-instruct"),
        "generated_on": args.generated_on, "decoding": "greedy, JSON-schema constrained (lm-format-enforcer)",
        "schema": "compact", "schema_fingerprint": MetadataSchema.profile("compact").fingerprint(),
        "prompt_template": METADATA_PROMPT.key, "rows": len(rows), "valid": valid,
        "valid_rate": round(valid / max(len(rows), 1), 4), "created": time.strftime("%Y-%m-%d"),
    }
    written = write_metadata_artifact(Path(args.out), rows, header)
    print(json.dumps({**header, "written": written, "out": str(args.out)}, indent=2))


# ---------------------------------------------------------------------------------------------- score
def _cell(record: dict[str, Any], protocol: str, metric: str) -> float | None:
    try:
        return record["protocols"][protocol]["overall"][metric]["mean"]
    except KeyError:
        return None


def summary_tables(records: list[dict[str, Any]]) -> str:
    """Compact 3 x 3 tables per dataset: rows chunker, columns view, one table per protocol metric."""
    views = ["content", "prefix_fusion", "tfidf_weighted"]
    metrics = [("chroma", "recall", "chroma recall (k=5)"), ("chroma", "iou", "chroma IoU (k=5)"),
               ("budget", "recall", "budget recall (B=1000)"), ("evidence", "hit@10", "hit@10")]
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    for dataset in datasets:
        rows = [r for r in records if r["dataset"] == dataset]
        chunkers = list(dict.fromkeys(r["variant"].split("@")[0] for r in rows))
        sizes = {r["variant"].split("@")[0]: (r["cost"]["mean_tokens"], r["cost"]["std_tokens"], r["cost"]["chunks"])
                 for r in rows}
        out.append(f"dataset: {dataset} ({rows[0]['questions']} questions; chunk tokens mean ± std, chunks: "
                   + ", ".join(f"{c} {m:.0f} ± {s:.0f}, {n}" for c, (m, s, n) in sizes.items()) + ")\n")
        for protocol, metric, label in metrics:
            out.append(f"protocol: {protocol} — {label}\n")
            out.append("| chunker | " + " | ".join(views) + " |")
            out.append("|---|" + "---|" * len(views))
            for chunker in chunkers:
                cells = []
                for view in views:
                    match = [r for r in rows if r["variant"] == f"{chunker}@view={view}"]
                    value = _cell(match[0], protocol, metric) if match else None
                    cells.append("—" if value is None else f"{value:.3f}")
                out.append(f"| {chunker} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def cmd_score(args: argparse.Namespace) -> None:
    """Run the grid with the artifact (no LLM call when it covers every chunk) and print the tables."""
    from ragkit.eval.runner import run_experiment

    artifact = Path(args.artifact)
    if not artifact.is_file():
        raise SystemExit(f"{artifact} does not exist: run export, generate and artifact first")
    exp = experiment(artifact)
    result = run_experiment(exp, out=args.out, echo=None, plots=False, force=args.force)
    tables = summary_tables(result.records)
    (Path(args.out) / "metadata-summary.md").write_text(tables, encoding="utf-8")
    llm_calls = sum(r["cost"]["usage"].get("llm_calls", 0) for r in result.records if not r["cost"].get("reused"))
    print(tables)
    print(f"index-phase LLM calls in this run: {llm_calls} (0 = everything came from the artifact)")
    print(f"output: {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help=cmd_export.__doc__)
    p.add_argument("--out", default=str(RUN_DIR / "export.jsonl"))
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("generate", help=cmd_generate.__doc__)
    p.add_argument("--input", default=str(RUN_DIR / "export.jsonl"))
    p.add_argument("--out", default=str(RUN_DIR / "rows.jsonl"))
    p.add_argument("--done", nargs="*", help="row files whose keys are already generated")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--slice", type=int, default=256, help="chunks per enrich call (and per progress line)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--shard", default=None, help="K/N: generate every N-th remaining chunk from K (parallel runs "
                                               "with different --out files; pass each other's rows as --done)")
    p.add_argument("--time-budget", type=float, default=float("inf"))
    p.set_defaults(fn=cmd_generate)
    p = sub.add_parser("artifact", help=cmd_artifact.__doc__)
    p.add_argument("rows", nargs="+")
    p.add_argument("--out", default=str(ARTIFACT))
    p.add_argument("--generated-on", default=f"{os.uname().machine} CPU")
    p.add_argument("--command", default=None)
    p.set_defaults(fn=cmd_artifact)
    p = sub.add_parser("score", help=cmd_score.__doc__)
    p.add_argument("--artifact", default=str(ARTIFACT))
    p.add_argument("--out", default=str(RUN_DIR / "eval"))
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=cmd_score)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
