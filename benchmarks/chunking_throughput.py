"""Chunking throughput (MB/s) of ragkit's baseline chunkers against Chonkie and LangChain.

Every library gets the same local MiniLM WordPiece tokenizer (peers' default tokenizers download
files), the same chunk size (256 tokens, no overlap) and the same five Chroma corpora, in the same
process. Runs are interleaved and repeated; the best of the repeats is reported (the machine is
shared, so the minimum is the least noisy estimate). ``cold`` ragkit runs clear the tokenizer's
per-word cache first; ``warm`` runs keep it (the steady state of a long indexing job).

After timing, every chunk is re-encoded with the real tokenizer to report the largest chunk
(``max tok``) and whether text is verbatim (``doc.text[start:end] == text``).

Usage:
    python benchmarks/chunking_throughput.py               # all corpora, 3 repeats
    python benchmarks/chunking_throughput.py --repeats 1 --corpora chatlogs wikitexts
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]


def data_dir() -> Path:
    root = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets")
    return root / "chroma_chunking_eval"


def hf_tokenizer() -> Any:
    from tokenizers import Tokenizer

    from ragkit.text.tokenizers import minilm_tokenizer_path

    tok = Tokenizer.from_file(str(minilm_tokenizer_path()))
    tok.no_truncation()
    tok.no_padding()
    return tok


def build_methods(size: int) -> dict[str, tuple[Callable[[str], list[Any]], str]]:
    """name → (chunk function returning chunk texts or chunks, family)."""
    from chonkie import RecursiveChunker as ChonkieRecursive
    from chonkie import SentenceChunker as ChonkieSentence
    from chonkie import TokenChunker as ChonkieToken
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from langchain_text_splitters.base import Tokenizer as LCTokenizer
    from langchain_text_splitters.base import split_text_on_tokens

    from ragkit.chunkers.recursive import RecursiveChunker
    from ragkit.chunkers.sentence import SentenceChunker
    from ragkit.chunkers.token import TokenChunker
    from ragkit.types import Document

    hf = hf_tokenizer()

    def count(text: str) -> int:
        return len(hf.encode(text, add_special_tokens=False))

    def ragkit(chunker: Any) -> Callable[[str], list[Any]]:
        chunker.warm_up()

        def run(text: str) -> list[Any]:
            return chunker.chunk(Document.from_text(text))

        return run

    lc_recursive = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=0, length_function=count)
    lc_tok = LCTokenizer(
        chunk_overlap=0,
        tokens_per_chunk=size,
        decode=hf.decode,
        encode=lambda t: hf.encode(t, add_special_tokens=False).ids,
    )
    c_token = ChonkieToken(tokenizer=hf, chunk_size=size, chunk_overlap=0)
    c_sentence = ChonkieSentence(tokenizer=hf, chunk_size=size, chunk_overlap=0)
    c_recursive = ChonkieRecursive(tokenizer=hf, chunk_size=size)
    return {
        "ragkit token": (ragkit(TokenChunker(max_tokens=size)), "token"),
        "chonkie TokenChunker": (lambda t: [c.text for c in c_token.chunk(t)], "token"),
        "langchain split_text_on_tokens": (lambda t: split_text_on_tokens(text=t, tokenizer=lc_tok), "token"),
        "ragkit sentence": (ragkit(SentenceChunker(max_tokens=size)), "sentence"),
        "chonkie SentenceChunker": (lambda t: [c.text for c in c_sentence.chunk(t)], "sentence"),
        "ragkit recursive": (ragkit(RecursiveChunker(max_tokens=size)), "recursive"),
        "chonkie RecursiveChunker": (lambda t: [c.text for c in c_recursive.chunk(t)], "recursive"),
        "langchain RecursiveCharacterTextSplitter": (lc_recursive.split_text, "recursive"),
    }


def clear_word_cache() -> None:
    from ragkit.text.tokenizers import get_tokenizer

    get_tokenizer("minilm").clear_cache()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=CORPORA, choices=CORPORA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    texts = [(data_dir() / f"{name}.md").read_text(encoding="utf-8") for name in args.corpora]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    methods = build_methods(args.size)
    hf = hf_tokenizer()
    raw = {
        "tokenizer alone, one core (encode)": lambda t: hf.encode(t, add_special_tokens=False),
        "tokenizer alone, batched (encode_batch of lines)": lambda t: hf.encode_batch(
            t.split("\n"), add_special_tokens=False),
    }
    timings: dict[str, list[float]] = {name: [] for name in [*raw, "ragkit token (cold)", "ragkit sentence (cold)",
                                                              "ragkit recursive (cold)", *methods]}
    outputs: dict[str, list[list[Any]]] = {}
    print(f"{megabytes:.2f} MB over {len(texts)} corpora, size {args.size}, {args.repeats} repeats", file=sys.stderr)
    for rep in range(args.repeats):
        for name, fn in raw.items():
            start = time.perf_counter()
            for t in texts:
                fn(t)
            timings[name].append(time.perf_counter() - start)
        for name, (fn, _family) in methods.items():
            cold = name.startswith("ragkit")
            for label in ([f"{name} (cold)", name] if cold else [name]):
                if label.endswith("(cold)"):
                    clear_word_cache()
                start = time.perf_counter()
                result = [fn(t) for t in texts]
                timings[label].append(time.perf_counter() - start)
                outputs[name] = result
        print(f"repeat {rep + 1}/{args.repeats} done", file=sys.stderr)

    best = {name: min(values) for name, values in timings.items()}
    mbps = {name: megabytes / seconds for name, seconds in best.items()}

    count = lambda s: len(hf.encode(s, add_special_tokens=False))  # noqa: E731
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"corpora: {', '.join(args.corpora)} ({megabytes:.2f} MB UTF-8); chunk size {args.size} MiniLM tokens; "
          f"best of {args.repeats}")
    print()
    print("| method | MB/s | chunks | mean tok | max tok | verbatim |")
    print("|---|---:|---:|---:|---:|---|")
    for name in timings:
        base = name.replace(" (cold)", "")
        if base in outputs:
            chunk_lists = outputs[base]
            texts_out = [c.text if hasattr(c, "text") else c for chunks in chunk_lists for c in chunks]
            counts = [count(s) for s in texts_out]
            verbatim = all(
                (not hasattr(c, "text")) or doc[c.start:c.end] == c.text
                for doc, chunks in zip(texts, chunk_lists) for c in chunks
            ) if base.startswith("ragkit") else all(s in doc for doc, chunks in zip(texts, chunk_lists)
                                                   for s in chunks)
            print(f"| {name} | {mbps[name]:.2f} | {len(counts)} | {statistics.mean(counts):.0f} | {max(counts)} | "
                  f"{'yes' if verbatim else 'no'} |")
        else:
            print(f"| {name} | {mbps[name]:.2f} | | | | |")
    print()
    pairs = [
        ("ragkit token", "chonkie TokenChunker"),
        ("ragkit token", "langchain split_text_on_tokens"),
        ("ragkit sentence", "chonkie SentenceChunker"),
        ("ragkit recursive", "chonkie RecursiveChunker"),
        ("ragkit recursive", "langchain RecursiveCharacterTextSplitter"),
    ]
    print("| ratio | warm | cold |")
    print("|---|---:|---:|")
    for ours, theirs in pairs:
        print(f"| {ours} / {theirs} | {mbps[ours] / mbps[theirs]:.2f}x | "
              f"{mbps[ours + ' (cold)'] / mbps[theirs]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
