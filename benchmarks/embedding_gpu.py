"""Embedding throughput through ragkit against the raw model forward, in one process (CPU or CUDA).

Texts are 40-word windows (stride ``--stride`` words) cut from the given text files (the Chroma corpora),
so lengths are real (~58 MiniLM tokens). Timings, each over the same texts:

- ``raw``: the reference: the model's forward (fp16 on CUDA), mean pooling and normalisation on
  length-sorted batches of ``--rows`` texts **already tokenised and already on the device**;
- ``raw_bucketed``: the same forward on batches cut and padded as ragkit does (``PAD_TO``-token buckets, a
  batch also ends where the bucket drops), the stricter ceiling;
- ``ragkit_strings``: ``SentenceTransformerEmbedder.embed_documents(texts)`` (tokenise once, buckets,
  device pooling: :mod:`ragkit.embeddings._fast_path`);
- ``ragkit_chunker_ids``: the same call inside the index phase's token-id channel
  (:mod:`ragkit.text.token_ids`): each window went through ragkit's ``recursive`` chunker (one chunk
  per window, outside the timing), which handed its ids over; the embedder looks every text up,
  adds ``[CLS]``/``[SEP]`` and embeds without tokenising — what ``Pipeline.index`` does;
- ``ragkit_ids``: :func:`~ragkit.embeddings._fast_path.embed_ids` on ready model-input rows (the
  lower-level entry point, kept for comparison with earlier runs);
- ``library``: the previous implementation (``SentenceTransformer.encode`` on length-sorted batches of
  ``--library-batch``, texts tokenised twice), for the before/after ratio.

Each ragkit figure is printed as a ratio to ``raw``; vectors are compared with the library's (min cosine)
and the chunker-ids vectors with the from-strings ones. ``--sweep`` also times the two ragkit paths
with other settings (tokenizer threads ahead of the device, rows per GPU batch, bucket width), each as
a ratio to ``raw``, to choose the defaults from measurements. ``--tokenizer-workers 2,4`` times the strings
path with that many tokenizer processes (a pool started once per process, outside the timing);
``--profile`` runs each path once under ``torch.profiler`` and reports the GPU's busy share (summed kernel
time over wall time) and the host operations that cost most.

    python benchmarks/embedding_gpu.py --model minilm --texts "$RAGKIT_DATA"/chroma_chunking_eval/*.md \\
        --n 100000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def windows(paths: list[str], n: int, width: int = 40, stride: int = 3) -> list[str]:
    """``n`` windows of ``width`` words, moving ``stride`` words, cycling over the files."""
    words = [w for p in paths for w in Path(p).read_text(encoding="utf-8").split()]
    out = []
    start = 0
    while len(out) < n:
        if start + width > len(words):
            start = (start % stride) + 1
        out.append(" ".join(words[start:start + width]))
        start += stride
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(device: str, fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs of ``fn`` (and its last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, result


def profile_paths(device: str, paths: dict[str, object]) -> dict[str, object]:
    """One profiled run of each path: wall time, summed GPU kernel time (busy share) and top host operations."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    out: dict[str, object] = {}
    for name, fn in paths.items():
        sync(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            fn()
            sync(device)
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        kernel_us = sum(getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0) for e in events)
        top_host = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
        top_gpu = sorted(events, key=lambda e: getattr(e, "self_device_time_total", 0) or 0, reverse=True)[:8]
        out[name] = {"wall_s": round(wall, 3), "gpu_kernel_s": round(kernel_us / 1e6, 3),
                     "gpu_busy": round(kernel_us / 1e6 / wall, 3),
                     "top_host_ms": {e.key: round(e.self_cpu_time_total / 1e3, 1) for e in top_host},
                     "top_gpu_ms": {e.key[:60]: round((getattr(e, "self_device_time_total", 0) or 0) / 1e3, 1)
                                    for e in top_gpu}}
        print(f"profile {name}: wall {wall:.3f} s, GPU kernels {kernel_us / 1e6:.3f} s", flush=True)
    torch.cuda.synchronize()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", nargs="+", required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rows", type=int, default=0, help="raw reference batch rows (default: 2048 GPU, 64 CPU)")
    parser.add_argument("--library-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-library", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also time other tokenizer threads / rows / bucket widths")
    parser.add_argument("--tokenizer-workers", default="",
                        help="also time the strings path with these tokenizer process counts (comma-separated, e.g. 2,4)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile raw / strings / chunker ids once each (torch.profiler): GPU kernel time "
                             "against wall time, and the top host operations")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()

    import torch
    from index_phase import install_stand_ins

    stand_ins = install_stand_ins(args.model)  # where the packaged MiniLM is missing: --model's tokenizer.json
    from ragkit.chunkers.recursive import RecursiveChunker
    from ragkit.embeddings import _fast_path, sentence_transformers
    from ragkit.embeddings._fast_path import batch_bounds, embed_ids, tokenize
    from ragkit.embeddings.sentence_transformers import GPU_ROWS, SentenceTransformerEmbedder
    from ragkit.text import token_ids
    from ragkit.types import Document

    texts = windows(args.texts, args.n)
    embedder = SentenceTransformerEmbedder(model=args.model, device=args.device, cache=False, show_progress=False)
    embedder.warm_up()
    device = embedder.resolved_device()
    on_gpu = device.startswith("cuda")
    rows = args.rows or (GPU_ROWS if on_gpu else embedder.batch_size)
    plan = embedder.plan_
    info: dict[str, object] = {"device": device, "gpu": torch.cuda.get_device_name(0) if on_gpu else None,
                               "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "n": len(texts), "rows": rows,
                               "stand_ins": stand_ins}
    ids, lengths = tokenize(plan, texts)
    info["mean_tokens"] = round(float(np.mean(lengths)), 1)
    embedder.embed_documents(texts[:4096])  # kernels, allocator
    t0 = time.perf_counter()  # the first call large enough for the tokenizer processes starts them (once)
    embedder.embed_documents(texts[: sentence_transformers.POOL_MIN_TEXTS])
    info["first_pool_sized_call_s"] = round(time.perf_counter() - t0, 2)
    info["tokenizer_workers"] = embedder._tokenizer_workers(len(texts), on_gpu)

    # raw reference: tokenised, length-sorted, padded to 16 (GPU) and resident on the device before timing
    order = np.argsort(-np.asarray(lengths), kind="stable")

    def device_batches(bounds: list[tuple[int, int]], pad: int) -> list[tuple[object, object]]:
        out = []
        for start, end in bounds:
            idx = order[start:end]
            width = -(-len(ids[idx[0]]) // pad) * pad
            batch = torch.full((len(idx), width), plan.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                batch[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1
            out.append((batch.to(device), mask.to(device)))
        return out

    # a second reference cut and padded as ragkit does (PAD_TO-token buckets; a batch also ends where the
    # bucket drops), the stricter ceiling when PAD_TO is below the reference's 16
    ragkit_pad = sentence_transformers.PAD_TO if on_gpu else 1
    bucketed = device_batches(batch_bounds(np.asarray(lengths)[order], rows, ragkit_pad), ragkit_pad)
    batches = device_batches([(s, min(s + rows, len(ids))) for s in range(0, len(ids), rows)], 16 if on_gpu else 1)

    def raw(batches: list[tuple[object, object]] = batches) -> None:
        with torch.inference_mode():
            for batch, mask in batches:
                hidden = plan.transformer(input_ids=batch, attention_mask=mask,
                                          token_type_ids=torch.zeros_like(batch)).last_hidden_state.float()
                w = mask.unsqueeze(-1).to(hidden.dtype)
                torch.nn.functional.normalize((hidden * w).sum(1) / w.sum(1), dim=1)

    # the chunker's ids: every window chunked by ragkit's recursive chunker (one chunk each), ids recorded
    table = token_ids.TokenIds()
    t0 = time.perf_counter()
    with token_ids.using(table):
        chunked = RecursiveChunker(max_tokens=256).chunk_many([Document.from_text(t) for t in texts])
    info["chunking_s"] = round(time.perf_counter() - t0, 2)
    assert all(len(c) == 1 and c[0].text == t for c, t in zip(chunked, texts)), "one chunk per window"

    def from_chunker_ids() -> np.ndarray:
        table.served = 0
        with token_ids.using(table):
            vectors = embedder.embed_documents(texts)
        assert table.served == len(texts), f"only {table.served} of {len(texts)} texts took the chunker's ids"
        return vectors

    results = {}
    results["raw"], _ = timed(device, raw, args.repeats)
    results["raw_bucketed"], _ = timed(device, lambda: raw(bucketed), args.repeats)
    results["ragkit_strings"], fast = timed(device, lambda: embedder.embed_documents(texts), args.repeats)
    results["ragkit_chunker_ids"], via_ids = timed(device, from_chunker_ids, args.repeats)
    info["min_cosine_chunker_ids_vs_strings"] = float(np.min(np.sum(np.asarray(fast) * np.asarray(via_ids), axis=1)))
    results["ragkit_ids"], _ = timed(device, lambda: embed_ids(plan, ids, device=device, rows=rows,
                                                                 pad_to=ragkit_pad, normalize=True),
                                     args.repeats)
    if not args.skip_library:
        embedder.batch_size = args.library_batch
        results["library"], lib = timed(device, lambda: embedder._encode_with_library(texts), 1)
        info["min_cosine_fast_vs_library"] = float(np.min(np.sum(np.asarray(fast) * np.asarray(lib), axis=1)))
    for workers in [int(w) for w in args.tokenizer_workers.split(",") if w.strip()]:
        saved_workers = sentence_transformers.TOKENIZER_WORKERS
        sentence_transformers.TOKENIZER_WORKERS = workers
        try:
            embedder.embed_documents(texts[: 4 * _fast_path.BLOCK])  # starts the pool (once per process)
            key = f"ragkit_strings_workers{workers}"
            results[key], pooled = timed(device, lambda: embedder.embed_documents(texts), args.repeats)
            info[f"min_cosine_{key}_vs_strings"] = float(np.min(np.sum(np.asarray(fast) * np.asarray(pooled), axis=1)))
        finally:
            sentence_transformers.TOKENIZER_WORKERS = saved_workers
    if args.profile and on_gpu:
        info["profile"] = profile_paths(device, {"raw": raw, "ragkit_strings": lambda: embedder.embed_documents(texts),
                                                 "ragkit_chunker_ids": from_chunker_ids})
    if args.sweep:
        saved = (_fast_path.TOKENIZER_THREADS, sentence_transformers.GPU_ROWS, sentence_transformers.PAD_TO)
        settings = [("threads", 2, GPU_ROWS, saved[2]), ("threads", 3, GPU_ROWS, saved[2]),
                    ("rows", saved[0], 1024, saved[2]), ("rows", saved[0], 4096, saved[2]),
                    ("rows", saved[0], 8192, saved[2]), ("pad_to", saved[0], GPU_ROWS, 16),
                    ("pad_to", saved[0], GPU_ROWS, 32), ("pad_to", saved[0], GPU_ROWS, 64)]
        try:
            for _, threads, gpu_rows, pad in settings:
                _fast_path.TOKENIZER_THREADS = threads
                sentence_transformers.GPU_ROWS = gpu_rows
                sentence_transformers.PAD_TO = pad
                tag = f"threads{threads}_rows{gpu_rows}_pad{pad}"
                results[f"sweep_strings_{tag}"], _ = timed(device, lambda: embedder.embed_documents(texts), args.repeats)
                results[f"sweep_chunker_ids_{tag}"], _ = timed(device, from_chunker_ids, args.repeats)
        finally:
            _fast_path.TOKENIZER_THREADS, sentence_transformers.GPU_ROWS, sentence_transformers.PAD_TO = saved
    info["texts_per_s"] = {k: round(len(texts) / v) for k, v in results.items()}
    info["ratio_to_raw"] = {k: round(results["raw"] / v, 3) for k, v in results.items()}
    info["ratio_to_raw_bucketed"] = {k: round(results["raw_bucketed"] / v, 3) for k, v in results.items()}
    if "library" in results:
        info["speedup_vs_library"] = round(results["library"] / results["ragkit_strings"], 2)
    print(json.dumps(info, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
