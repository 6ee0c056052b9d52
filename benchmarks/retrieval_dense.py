"""Dense retrieval at 100k x 384: FAISS exact (flat) vs HNSW (and IVF) through ragkit's ``DenseRetriever``.

Vectors: MiniLM (fp16, CUDA) embeddings of the 100k benchmark chunks (``retrieval_corpus.py``) and
of the 879 real questions, computed by ``retrieval_dense_gpu.py`` on the device machine and shipped
back int8-quantised per dimension (max cosine error 5e-5), then dequantised and re-normalised here.
Prints build time, single-query queries/s through ``retrieve`` (what a pipeline does), batched raw
FAISS queries/s, recall@10 of each approximate index against the exact one, and filtered queries/s.

    python benchmarks/retrieval_dense.py --vectors .bench_retrieval/gpu_vectors
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from retrieval_corpus import build, from_texts, load_documents  # same folder (run as a script)

from ragkit.embeddings.base import Embedder
from ragkit.retrievers.dense import DenseRetriever
from ragkit.types import Query


class Precomputed(Embedder):
    """Looks up vectors computed elsewhere (the benchmark measures the index, not the model)."""

    def __init__(self, *, table: dict[str, np.ndarray] | None = None) -> None:
        self.table = table

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def load_vectors(folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    codes = np.concatenate([np.load(folder / f"codes{i}.npy") for i in range(3)])
    low, scale = np.load(folder / "low.npy"), np.load(folder / "scale.npy")
    vectors = (codes.astype(np.float32) + 128) * scale + low
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = np.load(folder / "queries.npy").astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, queries, json.loads((folder / "info.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=Path, default=Path(".bench_retrieval/gpu_vectors"))
    parser.add_argument("--texts", help="chunk texts from retrieval_corpus.py --texts-out (no datasets needed)")
    parser.add_argument("--questions", help="questions JSON list (with --texts)")
    args = parser.parse_args()
    vectors, qvecs, info = load_vectors(args.vectors)
    if args.texts:
        chunks, questions = from_texts(args.texts, args.questions)
    else:
        chunks, _ = build(len(vectors))
        _, questions = load_documents()
    texts = [c.text for c in chunks]
    table = dict(zip(texts, vectors))
    table.update(zip(questions, qvecs))
    embedder = Precomputed(table=table)
    queries = [Query.from_text(q) for q in questions]
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (OMP_NUM_THREADS={threads}), "
          f"Python {platform.python_version()}, faiss {__import__('faiss').__version__}; "
          f"vectors: {vectors.shape} from MiniLM {info['precision']} on {info['gpu']} "
          f"({info['texts_per_s']:.0f} texts/s through SentenceTransformerEmbedder)")
    print(f"queries: {len(queries)} real questions, k = 10")

    # (index type, build parameters, query-time settings to try on that one index)
    variants = [("flat", {}, [{}]),
                ("hnsw", {"hnsw_m": 32, "ef_construction": 200}, [{"ef_search": 64}, {"ef_search": 128}, {"ef_search": 256}]),
                ("ivf", {}, [{"ivf_nprobe": 16}, {"ivf_nprobe": 64}])]
    exact_ids: list[list[int]] | None = None
    flat_qps = None
    position = {id(c): i for i, c in enumerate(chunks)}  # by object: duplicate texts share a chunk id
    for index_type, build_params, settings in variants:
        r = DenseRetriever(embedder=embedder, index_type=index_type, **build_params)
        t0 = time.perf_counter()
        r.index(chunks)
        build_s = time.perf_counter() - t0
        print(f"{index_type:<5} {build_params or ''} built in {build_s:.1f} s")
        for setting in settings:
            for key, value in setting.items():
                setattr(r, key, value)  # query-time parameters (read on every search)
            t0 = time.perf_counter()
            got = [[position[id(h.chunk)] for h in r.retrieve(q, k=10)] for q in queries]
            qps = len(queries) / (time.perf_counter() - t0)
            search_params = r._search_params(10, None)
            t0 = time.perf_counter()
            if search_params is None:
                r.index_.search(qvecs, 10)
            else:
                r.index_.search(qvecs, 10, params=search_params)
            batch_qps = len(queries) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            filtered = [r.retrieve(q, k=10, filter={"dataset": "hipporag_multihop"}) for q in queries[:200]]
            filtered_qps = 200 / (time.perf_counter() - t0)
            assert all(len(hits) == 10 and all(h.chunk.metadata["dataset"] == "hipporag_multihop" for h in hits)
                       for hits in filtered)
            if exact_ids is None:
                exact_ids, flat_qps = got, qps
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact_ids)]))
            label = index_type + "".join(f" {k}={v}" for k, v in setting.items())
            print(f"  {label:<20} retrieve {qps:7.1f} q/s ({qps / flat_qps:5.1f}x flat) | batched FAISS "
                  f"{batch_qps:8.0f} q/s | filtered {filtered_qps:6.1f} q/s | recall@10 {recall:.4f}")
    share = np.mean([c.metadata["dataset"] == "hipporag_multihop" for c in chunks])
    print(f"filter: dataset == hipporag_multihop ({share:.1%} of chunks), applied before top-k; every query returned 10")


if __name__ == "__main__":
    main()
