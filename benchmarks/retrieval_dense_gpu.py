"""GPU half of the dense benchmark: embed the 100k benchmark chunks (and the queries) with ragkit's
``SentenceTransformerEmbedder`` on CUDA (fp16), time it, and write the vectors for the CPU half.

Runs on the device machine (no network): the MiniLM folder travels as an fp16 copy, the chunk texts
as gzipped JSON lines (``retrieval_corpus.py --texts-out``), pydantic as wheels. The vectors come
back int8-quantised per dimension (the transfer limit is 64 MiB; 100k x 384 fp16 would be 77 MB).

    python benchmarks/retrieval_dense_gpu.py --model DIR --texts texts.jsonl.gz --queries questions.json --out DIR
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder
from ragkit.usage import usage_scope


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low = vectors.min(axis=0)
    high = vectors.max(axis=0)
    scale = np.where(high > low, (high - low) / 255.0, 1.0)
    codes = np.clip(np.rint((vectors - low) / scale) - 128, -128, 127).astype(np.int8)
    return codes, low.astype(np.float32), scale.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.texts, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    texts = [r["t"] if isinstance(r, dict) else r for r in records]
    queries = json.loads(Path(args.queries).read_text())

    embedder = SentenceTransformerEmbedder(model=args.model, device="auto", batch_size=args.batch_size,
                                           cache=False, show_progress=False)
    t0 = time.perf_counter()
    embedder.warm_up()
    load_s = time.perf_counter() - t0
    import torch

    info = {"device": embedder.resolved_device(), "precision": embedder.precision,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "load_s": load_s, "n": len(texts)}
    embedder.embed_documents(texts[:2048])  # warm-up (kernels, allocator)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    with usage_scope() as usage:
        t0 = time.perf_counter()
        vectors = embedder.embed_documents(texts)
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        info["embed_s"] = time.perf_counter() - t0
    info["texts_per_s"] = len(texts) / info["embed_s"]
    info["embedding_calls"] = usage.embedding_calls
    qvec = embedder.embed_documents(queries)
    codes, low, scale = quantise(vectors)
    restored = codes.astype(np.float32) + 128
    restored = restored * scale + low
    restored /= np.linalg.norm(restored, axis=1, keepdims=True)
    info["quantisation_max_cos_error"] = float(np.max(1 - np.sum(restored * vectors, axis=1)))
    for part, rows in enumerate(np.array_split(np.arange(len(codes)), 3)):
        np.save(out / f"codes{part}.npy", codes[rows])
    np.save(out / "low.npy", low)
    np.save(out / "scale.npy", scale)
    np.save(out / "queries.npy", qvec.astype(np.float16))
    (out / "info.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
