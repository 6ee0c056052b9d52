"""Enrichment throughput of ``llm_metadata`` (compact schema): batched local generation and concurrent
requests to a loopback OpenAI-compatible llama.cpp server, each against a sequential reference run in
the same process.

    python benchmarks/metadata_throughput.py local  --chunks 48 --batch-sizes 1,8,16
    python benchmarks/metadata_throughput.py server --chunks 48 --concurrency 1,4 --workers 2
    python benchmarks/metadata_throughput.py labels --chunks 30 --models smollm2-135m-instruct,qwen2.5-coder-0.5b

``local``: the ``transformers`` backend (SmolLM2-135M-Instruct, CPU, JSON-constrained decoding); the
reference is ``batch_size=1`` (one sequence at a time). ``server``: the ``openai`` backend against
``llama_cpp.server`` on 127.0.0.1 serving the same GGUF (grammar-constrained JSON via
``response_format``), ``workers`` server processes; the reference is ``concurrency=1``. The LLM cache is
off (every request is generated). ``labels``: several models on the same chunks, LLM cache on,
schema-valid rate and every label written out for reading. Chunks: the first N of state_of_the_union.md, recursive, 96 tokens.
Prints one JSON line per setting and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets") / "chroma_chunking_eval"


def sample_chunks(n: int) -> tuple[list[Any], dict[str, Any]]:
    from ragkit.registry import default_registry
    from ragkit.types import Document

    doc = Document.from_text((DATA / "state_of_the_union.md").read_text(encoding="utf-8"),
                             source_id="state_of_the_union.md")
    chunks = default_registry().create("chunker", "recursive", max_tokens=96).chunk(doc)[:n]
    return chunks, {doc.id: doc}


def run_once(llm: Any, chunks: list[Any], docs: dict[str, Any], label: str, **extra: Any) -> dict[str, Any]:
    from ragkit.enrichers._common import MetadataWarning
    from ragkit.enrichers.llm_metadata import LLMMetadataEnricher
    from ragkit.usage import usage_scope

    enricher = LLMMetadataEnricher(llm=llm, profile="compact", batch_size=len(chunks), max_retries=0)
    with usage_scope() as usage, warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        start = time.perf_counter()
        enriched, report = enricher.enrich_with_report(chunks, docs)
        seconds = time.perf_counter() - start
    labels = [dict(c.metadata.get("llm") or {}) for c in enriched]
    extra.setdefault("content_types", dict(Counter(str(m.get("content_type")) for m in labels if m)))
    extra.setdefault("topics", len({str(m.get("topic")).lower() for m in labels if m.get("topic")}))
    keep = extra.pop("keep_labels", False)
    row = {"setting": label, **extra, "chunks": len(chunks), "seconds": round(seconds, 2),
           "chunks_per_s": round(len(chunks) / seconds, 3), "valid_rate": round(report.valid_rate, 3),
           "completion_tokens": usage.completion_tokens,
           "completion_tokens_per_s": round(usage.completion_tokens / seconds, 1)}
    print(json.dumps(row), flush=True)
    if keep:
        row["labels"] = labels
    return row


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def cmd_local(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ragkit.cache import CacheStore
    from ragkit.llm.cached import wrap_llm
    from ragkit.llm.transformers_backend import TransformersLLM

    chunks, docs = sample_chunks(args.chunks)
    store = CacheStore(Path("/tmp") / "ragkit-bench-nocache.sqlite", mode="off")
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        llm = wrap_llm(TransformersLLM(model=args.model, device="cpu", batch_size=batch, show_progress=False),
                       store=store)
        llm.warm_up()
        llm.inner._json_tokenizer_data()  # built once per tokenizer; not part of the timing
        rows.append(run_once(llm, chunks, docs, f"transformers {args.model} batch_size={batch}", batch_size=batch))
    reference = rows[0]["chunks_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["chunks_per_s"] / reference, 2)
    print(json.dumps({"machine": machine(), "ratios": {r["setting"]: r["speedup_vs_first"] for r in rows}}))
    return rows


def cmd_labels(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Schema-valid rate and the labels themselves, several models on the same chunks (LLM cache on).

    Example::

        python benchmarks/metadata_throughput.py labels --chunks 30 \\
            --models smollm2-135m-instruct,qwen2.5-coder-0.5b --out /tmp/runs/labels.jsonl
    """
    import torch

    from ragkit.llm.cached import wrap_llm
    from ragkit.llm.transformers_backend import TransformersLLM

    torch.set_num_threads(args.threads)
    chunks, docs = sample_chunks(args.chunks)
    rows, labels = [], []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        llm = wrap_llm(TransformersLLM(model=model, device="cpu", batch_size=args.batch_size,
                                       num_threads=args.threads, show_progress=False), mode=args.cache)
        row = run_once(llm, chunks, docs, f"transformers {model} batch_size={args.batch_size}", model=model,
                       keep_labels=True)
        labels += [{"model": model, "chunk": i, "text": c.text[:300], "labels": m}
                   for i, (c, m) in enumerate(zip(chunks, row.pop("labels")))]
        rows.append(row)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(x) + "\n" for x in labels), encoding="utf-8")
    print(json.dumps({"machine": machine(), "valid_rate": {r["model"]: r["valid_rate"] for r in rows}}))
    return rows


def cmd_server(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ragkit.cache import CacheStore
    from ragkit.llm.cached import wrap_llm
    from ragkit.llm.llama_server import SERVED_NAME, LlamaServer
    from ragkit.llm.openai_backend import OpenAILLM

    chunks, docs = sample_chunks(args.chunks)
    store = CacheStore(Path("/tmp") / "ragkit-bench-nocache.sqlite", mode="off")
    server = LlamaServer(workers=args.workers, n_threads=args.threads).start()
    rows = []
    try:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            llm = wrap_llm(OpenAILLM(model=SERVED_NAME, base_url=server.base_url, api_key_env=None,
                                     concurrency=concurrency, timeout=300.0, json_mode="json_object_schema"),
                           store=store)
            rows.append(run_once(llm, chunks, docs, f"openai concurrency={concurrency}", concurrency=concurrency,
                                 server_workers=args.workers, threads_per_worker=args.threads))
    finally:
        server.stop()
    reference = rows[0]["chunks_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["chunks_per_s"] / reference, 2)
    print(json.dumps({"machine": machine(), "ratios": {r["setting"]: r["speedup_vs_first"] for r in rows}}))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("local")
    p.add_argument("--chunks", type=int, default=48)
    p.add_argument("--batch-sizes", default="1,8,16")
    p.add_argument("--model", default="smollm2-135m-instruct", help="packaged alias or model folder")
    p.set_defaults(fn=cmd_local)
    p = sub.add_parser("labels")
    p.add_argument("--chunks", type=int, default=30)
    p.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="read_write", choices=["read_write", "read_only", "off"])
    p.add_argument("--out", help="write every chunk's labels per model as JSON lines here")
    p.set_defaults(fn=cmd_labels)
    p = sub.add_parser("server")
    p.add_argument("--chunks", type=int, default=48)
    p.add_argument("--concurrency", default="1,4")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=cmd_server)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
