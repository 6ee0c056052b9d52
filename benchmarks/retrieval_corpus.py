"""The 100k-chunk retrieval benchmark corpus, built deterministically from the shared datasets.

Every document of the four shared datasets (``chroma_chunking_eval``, ``hipporag_multihop``,
``leval_longdoc``, ``qasper_sample``; 2,945 documents, 1.09 M words) is cut into windows of
``WINDOW`` whitespace-separated words every ``STRIDE`` words (overlapping windows, like a chunker
with overlap); the windows are verbatim ``Chunk``s (exact offsets). When there are more than
``N_CHUNKS`` windows, ``N_CHUNKS`` of them are taken at evenly spaced positions. Queries are the
datasets' real questions (879), in dataset order.

    python benchmarks/retrieval_corpus.py --texts-out texts.jsonl.gz --questions-out questions.json   # for machines without the datasets

The ``--texts-out`` file (one ``{"t": text, "d": dataset}`` per line) rebuilds the same chunk texts
where the datasets are absent (the device machine): :func:`from_texts`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from ragkit.types import Chunk, Document

DATASETS = ("chroma_chunking_eval", "hipporag_multihop", "leval_longdoc", "qasper_sample")
WINDOW = 40
STRIDE = 9
N_CHUNKS = 100_000
_WORD = re.compile(r"\S+")


def windows(doc: Document, window: int = WINDOW, stride: int = STRIDE) -> list[Chunk]:
    spans = [(m.start(), m.end()) for m in _WORD.finditer(doc.text)]
    out = []
    for start in range(0, max(len(spans) - window, 0) + 1, stride):
        piece = spans[start:start + window]
        if piece:
            out.append(Chunk.from_span(doc, piece[0][0], piece[-1][1], len(piece),
                                       {"dataset": doc.metadata.get("dataset", ""), "window": start}))
    return out


def load_documents(data_root: str | None = None) -> tuple[list[Document], list[str]]:
    from ragkit.datasets import load_dataset

    docs: list[Document] = []
    questions: list[str] = []
    for name in DATASETS:
        ds = load_dataset(name, data_root=data_root)
        docs += [Document(d.id, d.text, {**d.metadata, "dataset": name}) for d in ds.documents]
        questions += [q.text for q in ds.questions]
    return docs, questions


def build(n_chunks: int = N_CHUNKS, data_root: str | None = None) -> tuple[list[Chunk], list[str]]:
    """``(chunks, questions)``: exactly ``n_chunks`` chunks when the corpora allow it."""
    docs, questions = load_documents(data_root)
    every = [c for d in docs for c in windows(d)]
    if len(every) > n_chunks:
        every = [every[(i * len(every)) // n_chunks] for i in range(n_chunks)]
    return every, questions


def from_texts(path: str | Path, questions_path: str | Path | None = None) -> tuple[list[Chunk], list[str]]:
    """The benchmark chunks from a ``--texts-out`` file (each chunk a whole one-window document)."""
    chunks = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            doc = Document.from_text(record["t"], metadata={"dataset": record["d"]})
            chunks.append(Chunk.from_span(doc, 0, len(doc.text), len(doc.text.split()), {"dataset": record["d"]}))
    questions = json.loads(Path(questions_path).read_text()) if questions_path else []
    return chunks, questions


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=N_CHUNKS)
    parser.add_argument("--texts-out", type=Path, help="write chunk texts as gzipped JSON lines")
    parser.add_argument("--questions-out", type=Path, help="write the questions as a JSON list")
    args = parser.parse_args()
    chunks, questions = build(args.n)
    words = [c.token_count for c in chunks]
    print(f"{len(chunks)} chunks, {sum(words) / len(words):.1f} words each, {len(questions)} questions")
    if args.texts_out:
        with gzip.open(args.texts_out, "wt", encoding="utf-8") as handle:
            for c in chunks:
                handle.write(json.dumps({"t": c.text, "d": c.metadata["dataset"]}, ensure_ascii=False) + "\n")
        print(f"wrote {args.texts_out}")
    if args.questions_out:
        args.questions_out.write_text(json.dumps(questions, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.questions_out}")
