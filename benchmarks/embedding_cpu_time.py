"""CPU cost of the embedder and of chunking, by CPU time (robust on a loaded machine), in one process.

Embeds real chunks (the ``recursive`` chunker at 128 tokens over the first 40k characters of each Chroma
corpus, 400 chunks) three ways, one torch thread, best of 3 by ``time.process_time``:
``SentenceTransformer.encode`` (the reference), ragkit from strings, and ragkit from the chunker's ids
(where this checkout has :mod:`ragkit.text.token_ids`); prints each as a ratio to the reference. Also
times chunking the five corpora whole (cold and warm tokenizer cache, and with ids recorded).

Run it against two checkouts to compare them (before/after), e.g.::

    git archive COMMIT | tar -x -C /tmp/before
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/before python benchmarks/embedding_cpu_time.py
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/embedding_cpu_time.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def cpu(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    import torch

    torch.set_num_threads(1)
    import ragkit
    from ragkit.chunkers.recursive import RecursiveChunker
    from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder
    from ragkit.text.tokenizers import get_tokenizer
    from ragkit.types import Document

    try:
        from ragkit.text import token_ids
    except ImportError:  # a checkout before issue 15's token ids
        token_ids = None
    root = Path(os.environ.get("RAGKIT_DATA", "datasets")) / "chroma_chunking_eval"
    texts_by_file = [p.read_text(encoding="utf-8") for p in sorted(root.glob("*.md"))]
    out: dict = {"ragkit": str(Path(ragkit.__file__).parent), "load": os.getloadavg()[0]}

    whole = [Document.from_text(t) for t in texts_by_file]
    tok = get_tokenizer("minilm")

    def chunk_cold() -> None:
        tok.clear_cache()
        RecursiveChunker(max_tokens=256).chunk_many(whole)

    out["chunk_cold_s"] = cpu(chunk_cold)
    out["chunk_warm_s"] = cpu(lambda: RecursiveChunker(max_tokens=256).chunk_many(whole))
    if token_ids is not None:
        def chunk_recording() -> None:
            with token_ids.using(token_ids.TokenIds()):
                RecursiveChunker(max_tokens=256).chunk_many(whole)

        out["chunk_warm_recording_ids_s"] = cpu(chunk_recording)

    docs = [Document.from_text(t[:40_000]) for t in texts_by_file]
    table = token_ids.TokenIds() if token_ids is not None else None
    if table is not None:
        with token_ids.using(table):
            chunks = [c for r in RecursiveChunker(max_tokens=128).chunk_many(docs) for c in r]
    else:
        chunks = [c for r in RecursiveChunker(max_tokens=128).chunk_many(docs) for c in r]
    texts = [c.text for c in chunks][:400]
    emb = SentenceTransformerEmbedder(model="minilm", cache=False, show_progress=False, batch_size=64)
    emb.warm_up()
    emb.embed_documents(texts[:64])
    out["n"] = len(texts)
    out["library_encode_s"] = cpu(lambda: emb.model_.encode(texts, batch_size=64, normalize_embeddings=True))
    out["ragkit_strings_s"] = cpu(lambda: emb.embed_documents(texts))
    if table is not None:
        def from_ids() -> None:
            with token_ids.using(table):
                emb.embed_documents(texts)

        table.served = 0
        out["ragkit_chunker_ids_s"] = cpu(from_ids)
        out["served_per_run"] = table.served // 3
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    out["speed_vs_library"] = {k: round(out["library_encode_s"] / v, 3) for k, v in out.items()
                               if k.startswith(("library", "ragkit")) and k.endswith("_s")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
