"""The index phase on the local engine vs the Ray engine at 1, 2, 4, ... CPU workers (+ the embedder actor pool).

The corpus is built at run time from the given text files (the shared datasets): their text is cut into
documents of ``--doc-chars`` characters, repeated until it holds ``--mb`` megabytes (``--mb 0``: the files
as they are, one document each); each copy has a distinct first line and its number before every 60th
word, so chunks do not repeat across copies (the embedder embeds each distinct text once). The pipeline is the
quickstart's index section: ``recursive`` chunker (200 tokens), ``hybrid`` retriever (BM25 + MiniLM),
the embedding and chunk caches off, a fresh store on disk per run, so every run chunks and embeds all.

Each run reports wall time, MB/s, its ratio to each local reference run (same corpus): ``--local-workers``
lists them, ``auto`` (the default engine: chunking in one process per core) and/or a number of chunking
processes (``1``: the single-core engine), and the phase that bounds it: ``chunk`` (documents → chunk
records, on the Ray CPU workers for ray), ``embed+index`` (the retriever's ``index``: the embedder actor
pool for ray, BM25, FAISS) and ``store`` (the one commit).
With a GPU, ``nvidia-smi`` is sampled every 200 ms: first during 3 s of back-to-back matrix products (the
counter's check: it should read ~100 %), then per run the mean during ``embed+index`` and over the whole run
and the peak; for ray also the embedder actors' busy share of the embedding (time inside their embed calls
over the driver's embedding wall time, from ``IndexReport.engine_stats``).
The rows are written to ``--out`` after each run (a run cut short keeps the rows done); ``--merge`` adds the
rows of an earlier ``--out`` on the same corpus (e.g. the rest of the worker counts, run in another process).

    # 2-core VM: what Ray costs at small scale (the chroma corpora, one document per file)
    python benchmarks/index_scale.py --texts "$RAGKIT_DATA"/chroma_chunking_eval/*.md --mb 0 --workers 2
    # GPU machine: >= 100 MB of text, 1..16 CPU workers + one GPU embedder actor
    python benchmarks/index_scale.py --texts DIR/*.md --mb 100 --workers 1,2,4,8,16 --embed-actors 1 \
        --local-workers auto,1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def build_corpus(paths: list[str], mb: float, doc_chars: int) -> list[Any]:
    """Documents cut from ``paths`` (``doc_chars`` each), repeated with distinct first lines up to ``mb`` MB."""
    from ragkit.types import Document

    texts = [Path(p).read_text(encoding="utf-8", errors="replace") for p in paths]
    if mb <= 0:
        return [Document.from_text(t, metadata={"source_id": Path(p).name}) for p, t in zip(paths, texts)]
    text = "\n\n".join(texts)
    parts = [text[i:i + doc_chars] for i in range(0, len(text), doc_chars)]
    docs, size, copy = [], 0, 0
    while size < mb * 1e6:
        for j, part in enumerate(parts):
            # every 60th word of a copy carries the copy's number, so (almost) no chunk repeats another copy's:
            # the embedder de-duplicates texts, and plain copies left it ~5 % of the chunks to embed
            words = part.split(" ")
            words[::60] = [f"({copy}) {w}" for w in words[::60]]
            body = f"Copy {copy} of part {j}.\n" + " ".join(words)
            docs.append(Document.from_text(body, metadata={"source_id": f"c{copy}-p{j}"}))
            size += len(body.encode("utf-8"))
            if size >= mb * 1e6:
                break
        copy += 1
    return docs


def config(store: Path, engine: dict[str, Any], model: str, device: str) -> dict[str, Any]:
    return {
        "backends": {"embeddings": {"default": {"type": "sentence_transformers", "model": model, "device": device,
                                                "show_progress": False}},
                     "llm": {"default": {"type": "fake"}}},
        "cache": {"mode": "off"},
        "index": {"store": str(store), "chunker": {"type": "recursive", "max_tokens": 200},
                  "retriever": {"type": "hybrid", "view": "content", "fusion": "rrf"}},
        "engine": engine,
    }


class GpuSampler:
    """``nvidia-smi`` utilisation samples (every 200 ms) with their times; empty without a GPU."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "200"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.strip().split(",")[0])))
            except ValueError:
                continue

    def mean(self, start: float, end: float) -> float | None:
        window = [u for t, u in self.samples if start <= t <= end]
        return sum(window) / len(window) if window else None

    def peak(self, start: float, end: float) -> float | None:
        window = [u for t, u in self.samples if start <= t <= end]
        return max(window) if window else None

    def calibrate(self, seconds: float = 3.0) -> float | None:
        """The mean utilisation read during ``seconds`` of back-to-back matrix products (should be ~100 %).

        Tells whether the counter works on this machine before any row is read from it.
        """
        if self.proc is None:
            return None
        import torch

        if not torch.cuda.is_available():
            return None
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
        torch.cuda.synchronize()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(8):
                a @ a
            torch.cuda.synchronize()
        end = time.perf_counter()
        time.sleep(0.5)  # the last samples arrive
        del a
        torch.cuda.empty_cache()
        return self.mean(start + 0.5, end)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()


def run_once(docs: list[Any], engine: dict[str, Any], args: argparse.Namespace, sampler: GpuSampler) -> dict[str, Any]:
    from ragkit import Pipeline

    tmp = Path(tempfile.mkdtemp(prefix="index_scale-"))
    try:
        pipe = Pipeline.from_config(config(tmp / "store", engine, args.model, args.device))
        t0 = time.perf_counter()
        report = pipe.index_documents(docs, rebuild=True)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    usage = pipe.stage_usage
    embed = usage["index.retriever"].wall_time_s
    store = usage["index.store"].wall_time_s
    phases = {"chunk": max(0.0, wall - embed - store), "embed+index": embed, "store": store}
    embed_start = t0 + phases["chunk"]
    time.sleep(0.5)  # the sampler's last readings of this run
    workers = engine.get("num_cpus") if engine["type"] == "ray" else engine.get("workers", "auto")
    stats = dict(report.engine_stats)
    busy = stats.get("embed_actor_busy_s")
    return {"engine": engine["type"], "workers": workers, "wall_s": wall, "chunks": report.chunks,
            "phases_s": phases, "bound_by": max(phases, key=phases.get),
            "chunker_cpu_s": usage["index.chunker"].wall_time_s if "index.chunker" in usage else None,
            "gpu_util_embed": sampler.mean(embed_start, embed_start + embed),
            "gpu_util_run": sampler.mean(t0, t0 + wall), "gpu_util_peak": sampler.peak(t0, t0 + wall),
            "engine_stats": stats, "embedded_texts": usage["index.retriever"].embedded_texts,
            "embed_actor_busy": busy / stats["embed_wall_s"] if busy is not None and stats.get("embed_wall_s") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", nargs="+", required=True)
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size; 0 = the files as they are")
    parser.add_argument("--doc-chars", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4,8,16", help="Ray CPU worker counts, comma-separated")
    parser.add_argument("--embed-actors", type=int, default=1)
    parser.add_argument("--model", default="minilm", help="embedder: minilm (packaged) or a local folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--local-workers", default="auto",
                        help="local reference runs, comma-separated: auto (one chunking process per core) and/or N")
    parser.add_argument("--skip-local", action="store_true", help="no local reference run (ratios then absent)")
    parser.add_argument("--merge", type=Path, default=None, help="add the rows of an earlier --out (same corpus)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here (after each run)")
    args = parser.parse_args()

    import ray

    docs = build_corpus(args.texts, args.mb, args.doc_chars)
    mb = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs; load average {load}; python {platform.python_version()}; "
          f"ray {ray.__version__}", file=sys.stderr)
    print(f"corpus: {len(docs)} documents, {mb:.1f} MB", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        if earlier["documents"] != len(docs) or abs(earlier["corpus_mb"] - mb) > 1e-6:
            sys.exit(f"--merge {args.merge}: another corpus ({earlier['documents']} documents, "
                     f"{earlier['corpus_mb']:.1f} MB)")
        rows.extend(earlier["rows"])

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"corpus_mb": mb, "documents": len(docs), "rows": rows,
                                            "gpu_counter_check": calibration}, indent=2))

    sampler = GpuSampler()
    calibration = sampler.calibrate()
    if calibration is not None:
        print(f"nvidia-smi reads {calibration:.0f} % during back-to-back matrix products (the counter's check)",
              file=sys.stderr, flush=True)
    # warm-up: model files into the page cache, imports done (not reported)
    from ragkit.types import Document

    run_once([Document.from_text(docs[0].text[:4000])], {"type": "local"}, args, sampler)
    local_runs = [] if args.skip_local else [w.strip() for w in args.local_workers.split(",") if w.strip()]
    for workers in local_runs:
        engine = {"type": "local"} if workers == "auto" else {"type": "local", "workers": int(workers)}
        rows.append(run_once(docs, engine, args, sampler))
        print(f"done: local workers={workers} {rows[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
        save()
    for workers in [int(w) for w in args.workers.split(",") if w]:
        if ray.is_initialized():
            ray.shutdown()
        gpus = 1 if sampler.proc is not None else 0
        ray.init(num_cpus=workers + (args.embed_actors if gpus else 0), num_gpus=gpus or None,
                 include_dashboard=False, logging_level="ERROR")
        engine = {"type": "ray", "num_cpus": workers, "embed_actors": args.embed_actors}
        rows.append(run_once(docs, engine, args, sampler))
        print(f"done: ray workers={workers} {rows[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
        save()
    sampler.stop()
    report(rows, mb)
    print(f"load average after: {os.getloadavg() if hasattr(os, 'getloadavg') else None}")
    save()


def report(rows: list[dict[str, Any]], mb: float) -> None:
    """The table: one row per run, a ``× local(W)`` column per local reference run."""
    references = {str(r["workers"]): r["wall_s"] for r in rows if r["engine"] == "local"}
    head = "".join(f" {'x local(' + w + ')':>14}" for w in references)
    print(f"{'engine':<8} {'workers':>7} {'chunks':>7} {'wall s':>8} {'MB/s':>7}{head} {'chunk s':>8} {'embed s':>8} "
          f"{'store s':>8} {'bound by':<12} {'GPU % embed':>11} {'GPU % run':>9} {'peak':>5} {'actor busy':>10}")
    rows.sort(key=lambda r: (r["engine"] != "local", r["engine"] == "ray" and r["workers"]))
    for row in rows:
        row["mb"] = mb
        row["mb_per_s"] = mb / row["wall_s"]
        row["speedup_vs_local"] = {w: wall / row["wall_s"] for w, wall in references.items()}
        p = row["phases_s"]
        def pct(value: float | None) -> str:
            return "" if value is None else f"{value:.0f}"

        gpu = f"{pct(row['gpu_util_embed']):>11} {pct(row.get('gpu_util_run')):>9} {pct(row.get('gpu_util_peak')):>5}"
        busy = "" if row.get("embed_actor_busy") is None else f"{100 * row['embed_actor_busy']:.0f} %"
        ratios = "".join(f" {x:14.2f}" for x in row["speedup_vs_local"].values())
        print(f"{row['engine']:<8} {row['workers'] or '':>7} {row['chunks']:>7} {row['wall_s']:8.1f} {row['mb_per_s']:7.3f}{ratios} "
              f"{p['chunk']:8.1f} {p['embed+index']:8.1f} {p['store']:8.1f} {row['bound_by']:<12} {gpu} {busy:>10}")


if __name__ == "__main__":
    main()
