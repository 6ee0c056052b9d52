"""``ragkit serve`` under load: latency p50/p95/p99 and throughput for N concurrent HTTP queries.

A stored index (MiniLM embeddings, hybrid retrieval, recursive chunks of 128 tokens) is built once over
Chroma corpora (``chatlogs``, ``state_of_the_union``, ``wikitexts``); then the app (``create_app``) is
served by uvicorn on loopback and N queries (the corpora's real questions, cycled) are sent at once
from an ``httpx.AsyncClient`` with N connections. Every row also runs a **reference** in the same
process: the same pipeline's ``query`` called sequentially, without HTTP, on the first ``--ref``
questions; ratios are HTTP p50 over the reference mean latency and HTTP throughput over the
reference's (1 / mean latency). The LLM/embedding cache is off, so every query does its work.

Rows: ``fake`` (the deterministic fake LLM: retrieval + HTTP cost) and ``smollm2`` (the packaged
SmolLM2-135M via the default local ``transformers`` backend, short answers; skipped with ``--rows fake``).

    RAGKIT_DATA=/work/shared/datasets python benchmarks/serving.py --queries 200 --concurrency 4
    RAGKIT_DATA=/work/shared/datasets python benchmarks/serving.py --rows smollm2 --queries 200 --concurrency 2

Prints the load (``uptime``) before and after, a table and one ``RESULT {...}`` JSON line per row.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ragkit import Pipeline
from ragkit.serve import create_app, serve_in_thread
from ragkit.types import Document

CORPORA = ("chatlogs", "state_of_the_union", "wikitexts")


def data_dir() -> Path:
    root = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    return root / "chroma_chunking_eval"


def load() -> tuple[list[Document], list[str]]:
    base = data_dir()
    docs = [Document.from_text((base / f"{name}.md").read_text(encoding="utf-8"), source_id=name) for name in CORPORA]
    with (base / "questions_dev.csv").open(encoding="utf-8") as fh:
        questions = [row["question"] for row in csv.DictReader(fh) if row["corpus_id"] in CORPORA]
    return docs, questions


def config(store: Path, llm: str, concurrency_note: str = "") -> dict:
    llm_spec = {"type": "fake"} if llm == "fake" else {"type": "transformers", "model": "smollm2-135m-instruct"}
    return {"backends": {"llm": {"default": llm_spec},
                         "embeddings": {"default": {"type": "sentence_transformers", "model": "minilm"}}},
            "cache": {"mode": "off"},
            "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "hybrid"},
                      "store": str(store)},
            "query": {"retrieve": {"k": 10}, "selector": {"type": "top_k", "k": 3},
                      "aggregator": {"type": "stuff", "llm": "default", "max_context_tokens": 512,
                                     "max_new_tokens": 24}}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def fire(url: str, questions: list[str], timeout: float) -> tuple[list[float], list[int], float]:
    limits = httpx.Limits(max_connections=len(questions), max_keepalive_connections=len(questions))
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def one(q: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            response = await client.post("/query", json={"question": q})
            return time.perf_counter() - t0, response.status_code

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(q) for q in questions))
        wall = time.perf_counter() - t0
    return [r[0] for r in results], [r[1] for r in results], wall


def run_row(llm: str, store: Path, questions: list[str], concurrency: int, ref_n: int, timeout: float) -> dict:
    cfg = config(store, llm)
    pipe = Pipeline.from_config(cfg)
    pipe.open_index()
    for q in questions[:2]:
        pipe.query(q)  # warm
    ref = []
    for q in questions[:ref_n]:
        t0 = time.perf_counter()
        pipe.query(q)
        ref.append(time.perf_counter() - t0)
    ref_mean = statistics.fmean(ref)
    t0 = time.perf_counter()
    app = create_app(cfg, concurrency=concurrency)
    startup = time.perf_counter() - t0
    with serve_in_thread(app) as url:
        latencies, codes, wall = asyncio.run(fire(url, questions, timeout))
    ok = sum(1 for c in codes if c == 200)
    row = {"row": llm, "queries": len(questions), "concurrency": concurrency, "ok": ok,
           "failed": len(codes) - ok, "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
           "p99_s": percentile(latencies, 99), "wall_s": wall, "throughput_qps": len(questions) / wall,
           "ref_mean_s": ref_mean, "ref_qps": 1 / ref_mean, "startup_s": startup}
    row["p50_over_ref"] = row["p50_s"] / ref_mean
    row["qps_over_ref"] = row["throughput_qps"] / row["ref_qps"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4, help="the server's --concurrency")
    parser.add_argument("--rows", default="fake,smollm2", help="comma-separated: fake, smollm2")
    parser.add_argument("--ref", type=int, default=20, help="sequential in-process reference queries")
    parser.add_argument("--timeout", type=float, default=900.0, help="per-request client timeout (s)")
    args = parser.parse_args()

    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"load before: {uptime_before}")
    docs, pool = load()
    questions = [pool[i % len(pool)] for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        t0 = time.perf_counter()
        report = Pipeline.from_config(config(store, "fake")).index_documents(docs)
        print(f"index: {report.documents} documents, {report.chunks} chunks in {time.perf_counter() - t0:.1f} s")
        rows = [run_row(llm, store, questions, args.concurrency, min(args.ref, args.queries), args.timeout)
                for llm in args.rows.split(",")]
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'row':<8} {'N':>4} {'conc':>4} {'ok':>4} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'q/s':>7} "
          f"{'ref s':>7} {'p50/ref':>7} {'qps/ref':>7}")
    for r in rows:
        print(f"{r['row']:<8} {r['queries']:>4} {r['concurrency']:>4} {r['ok']:>4} {r['p50_s']:>7.3f} {r['p95_s']:>7.3f} "
              f"{r['p99_s']:>7.3f} {r['throughput_qps']:>7.2f} {r['ref_mean_s']:>7.3f} {r['p50_over_ref']:>7.2f} "
              f"{r['qps_over_ref']:>7.2f}")
    for r in rows:
        print("RESULT " + json.dumps(r))


if __name__ == "__main__":
    main()
