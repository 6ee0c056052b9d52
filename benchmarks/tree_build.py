"""Tree build time per 10k tokens: the headings builder on the long-document sets, the llm builder on one paper.

Chunks come from the recursive chunker (200 MiniLM tokens), as in ``configs/eval/longdoc.yaml``; chunking
is not timed. ``headings`` is timed over every document of leval_longdoc (natural_question,
scientific_qa) and qasper_sample; ``llm`` (ToM's HSP with SmolLM2-135M on CPU, one torch thread; the LLM
cache is written, so the first run is the timed one and the eval's llm tree reuses its calls) on the named
Qasper paper, with the same settings as ``configs/eval/longdoc-llmtree.yaml``
(blocks of 1024 tokens, outputs up to 384 tokens), and its coverage report. The ratio line compares the
llm builder's seconds per 10k tokens with the headings builder's, same process.

    python benchmarks/tree_build.py [--paper 1705.09665] [--chars 8000] [--no-llm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from ragkit.chunkers.recursive import RecursiveChunker
from ragkit.datasets import load_dataset
from ragkit.text.tokenizers import get_tokenizer
from ragkit.trees.headings import HeadingsTreeBuilder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", default="1705.09665")
    parser.add_argument("--no-llm", action="store_true")
    parser.add_argument("--chars", type=int, default=0, help="llm builder: only the paper's first N characters")
    args = parser.parse_args()
    count = get_tokenizer("minilm").count
    chunker = RecursiveChunker(max_tokens=200)
    docs = [*load_dataset("leval_longdoc", subset=["natural_question", "scientific_qa"]).documents,
            *load_dataset("qasper_sample").documents]
    chunked = [(d, chunker.chunk(d)) for d in docs]
    tokens = sum(count(d.text) for d in docs)
    start = time.perf_counter()
    trees = [HeadingsTreeBuilder().build(d, c) for d, c in chunked]
    headings_s = time.perf_counter() - start
    per10k_headings = headings_s / tokens * 10_000
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
           "headings": {"documents": len(docs), "tokens": tokens, "seconds": round(headings_s, 3),
                        "s_per_10k_tokens": round(per10k_headings, 5),
                        "nodes": sum(len(t.nodes) for t in trees)}}
    if not args.no_llm:
        from ragkit.llm.cached import CachedLLM
        from ragkit.llm.transformers_backend import TransformersLLM
        from ragkit.trees.llm import LLMTreeBuilder

        doc, chunks = next((d, c) for d, c in chunked if d.metadata.get("source_id") == args.paper)
        if args.chars:
            from ragkit.types import Document

            doc = Document.from_text(doc.text[: args.chars], dict(doc.metadata))
            chunks = chunker.chunk(doc)
        llm = CachedLLM(inner=TransformersLLM(model="smollm2-135m-instruct", num_threads=1), mode="read_write")
        llm.warm_up()
        builder = LLMTreeBuilder(llm=llm, block_tokens=1024, max_new_tokens=384)
        start = time.perf_counter()
        tree = builder.build(doc, chunks)
        llm_s = time.perf_counter() - start
        n = count(doc.text)
        out["llm"] = {"paper": args.paper, "chars": len(doc.text), "tokens": n, "seconds": round(llm_s, 1),
                      "s_per_10k_tokens": round(llm_s / n * 10_000, 1), "nodes": len(tree.nodes),
                      "report": builder.last_report_}
        out["ratio_llm_vs_headings"] = round(out["llm"]["s_per_10k_tokens"] / max(per10k_headings, 1e-9))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
