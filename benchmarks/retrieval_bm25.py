"""BM25 engines at 100k chunks: ``bm25s`` vs ``rank_bm25`` behind ragkit's ``BM25Retriever``.

Corpus: 100,000 overlapping 40-word windows cut from the shared datasets (see
``retrieval_corpus.py``); queries: the first ``--queries`` real questions of those datasets. Both
engines see the same tokens and compute the same formula (Okapi, k1 1.5, b 0.75, Lucene IDF).
Prints index time, queries/s, mean top-10 overlap, max score difference, and the ratios
(rank_bm25 is the reference run, in the same process).

    python benchmarks/retrieval_bm25.py --queries 200
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
from retrieval_corpus import build, from_texts  # same folder (run as a script)

from ragkit.retrievers.bm25 import BM25Retriever, Tokenizer, _BM25SEngine


def time_builders(chunks: list) -> None:
    """Index build from identical token ids, min of 3 (robust to a shared machine's noise)."""
    from ragkit.retrievers.bm25 import _RankBM25Engine, score_matrix

    r = BM25Retriever(engine="bm25s", show_progress=False).index(chunks)
    docs = r.doc_terms()
    timings = {}
    for name, builder in (
        ("ragkit vectorised (scipy sparse) -> bm25s matrix",
         lambda: score_matrix(r.terms_, r.offsets_, len(r.vocab_), r.k1, r.b)),
        ("bm25s's own builder", lambda: _BM25SEngine.build_native(docs, len(r.vocab_), r.k1, r.b)),
        ("rank_bm25 (reference)", lambda: _RankBM25Engine(docs, r.k1, r.b)),
    ):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            builder()
            runs.append(time.perf_counter() - t0)
        timings[name] = min(runs)
        print(f"build from token ids, {name:<48} {min(runs):6.2f} s (min of 3)")
    base = timings["rank_bm25 (reference)"]
    for name, seconds in timings.items():
        print(f"  {name:<48} {base / seconds:5.1f}x rank_bm25")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--texts", help="chunk texts from retrieval_corpus.py --texts-out (no datasets needed)")
    parser.add_argument("--questions", help="questions JSON list (with --texts)")
    parser.add_argument("--builders", action="store_true",
                        help="only time the three index builders on the same token ids (min of 3 runs)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    chunks, questions = from_texts(args.texts, args.questions) if args.texts else build(args.n)
    questions = questions[: args.queries]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"corpus: {len(chunks)} chunks ({np.mean([c.token_count for c in chunks]):.1f} words), "
          f"{len(questions)} queries; built in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    tokenizer = Tokenizer()
    for c in chunks:
        tokenizer(c.text)
    tokenise_s = time.perf_counter() - t0
    print(f"tokenising alone (shared by both engines): {tokenise_s:.2f} s")

    if args.builders:
        time_builders(chunks)
        return
    for module in ("rank_bm25", "bm25s"):  # imports are not index work (bm25s imports JAX where installed)
        t0 = time.perf_counter()
        __import__(module)
        print(f"import {module}: {time.perf_counter() - t0:.2f} s (not counted below)")
    results = {}
    position = {id(c): i for i, c in enumerate(chunks)}  # by object: duplicate texts share a chunk id
    for engine in ("rank_bm25", "bm25s"):
        r = BM25Retriever(engine=engine, show_progress=False)
        t0 = time.perf_counter()
        r.index(chunks)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tops = [[position[id(h.chunk)] for h in r.retrieve(q, k=10)] for q in questions]
        query_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        filtered = [r.retrieve(q, k=10, filter={"dataset": "leval_longdoc"}) for q in questions]
        filter_s = time.perf_counter() - t0
        assert all(h.chunk.metadata["dataset"] == "leval_longdoc" for hits in filtered for h in hits)
        if engine == "bm25s":
            t0 = time.perf_counter()
            _BM25SEngine.build_native(r.doc_terms(), len(r.vocab_), r.k1, r.b)
            print(f"    (bm25s's own index builder on the same token ids: {time.perf_counter() - t0:.2f} s; "
                  "ragkit fills the same matrix vectorised)")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r.save(tmp)
            save_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            BM25Retriever(engine=engine).load(tmp)
            load_s = time.perf_counter() - t0
        scores = [r.scores(q) for q in questions[:50]]
        results[engine] = dict(index_s=index_s, qps=len(questions) / query_s, filtered_qps=len(questions) / filter_s,
                               save_s=save_s, load_s=load_s, tops=tops, scores=scores)
        print(f"{engine:>9}: index {index_s:6.2f} s (tokenising included) | {len(questions) / query_s:8.1f} queries/s | "
              f"filtered {len(questions) / filter_s:8.1f} queries/s | save {save_s:.2f} s | load {load_s:.2f} s")

    a, b = results["bm25s"], results["rank_bm25"]
    overlap = np.mean([len(set(x) & set(y)) / max(len(x), len(y), 1) for x, y in zip(a["tops"], b["tops"])])
    identical = np.mean([x == y for x, y in zip(a["tops"], b["tops"])])
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a["scores"], b["scores"]))
    print(f"mean top-10 overlap bm25s vs rank_bm25: {overlap:.4f} (identical ranked lists: {identical:.1%}); "
          f"max |score difference| {diff:.2e}")
    print(f"ratios bm25s / rank_bm25: index {b['index_s'] / a['index_s']:.1f}x faster, "
          f"queries {a['qps'] / b['qps']:.0f}x faster, filtered queries {a['filtered_qps'] / b['filtered_qps']:.0f}x faster")


if __name__ == "__main__":
    main()
