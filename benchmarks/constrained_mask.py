"""JSON-constrained decoding: the allowed-token mask from ``np.fromiter`` against ``torch.as_tensor``.

Inside a JSON string value almost every token of the vocabulary is allowed, so each decoding step turns
a Python list of tens of thousands of ids into a tensor per batch row. This benchmark runs the same real
SmolLM2-135M compact-metadata generation (``LLMMetadataEnricher``, JSON-schema constrained, one batch)
twice in one process: with ``JsonSchemaLogitsProcessor.allowed_index`` as shipped and with the naive
``torch.as_tensor(list)`` conversion it replaced. It checks that both give the same metadata and
prints the wall times and their ratio (plus the mask conversion alone, timed over the id lists the run
produced).

    OMP_NUM_THREADS=2 python benchmarks/constrained_mask.py [--chunks 16] [--repeats 2]

Needs the prepared SmolLM2 (``ragkit models prepare``) and the Chroma corpus (``RAGKIT_DATA``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from typing import Any


def naive_allowed_index(allowed: Any, device: Any) -> Any:
    import torch

    return torch.as_tensor(allowed, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=16, help="chatlogs chunks to enrich (one batch)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant (the best is reported)")
    args = parser.parse_args()

    from ragkit.datasets.root import resolve_data_root
    from ragkit.enrichers.llm_metadata import LLMMetadataEnricher
    from ragkit.llm import constrained
    from ragkit.llm.transformers_backend import TransformersLLM
    from ragkit.registry import default_registry
    from ragkit.types import Document

    text = (resolve_data_root() / "chroma_chunking_eval" / "chatlogs.md").read_text(encoding="utf-8")
    doc = Document.from_text(text, source_id="chatlogs.md")
    chunks = default_registry().create("chunker", "recursive", max_tokens=96).chunk(doc)[: args.chunks]
    llm = TransformersLLM(device="cpu", batch_size=args.chunks)
    enricher = LLMMetadataEnricher(llm=llm, profile="compact", batch_size=args.chunks, show_progress=False)
    enricher.enrich_with_report(chunks[:2], {doc.id: doc})  # warm-up: model load, first shapes

    shipped = constrained.JsonSchemaLogitsProcessor.allowed_index
    seen: list[list[int]] = []

    def recording(allowed: Any, device: Any) -> Any:
        seen.append(list(allowed))
        return shipped(allowed, device)

    def run(index_fn: Any) -> tuple[float, list[Any], Any]:
        constrained.JsonSchemaLogitsProcessor.allowed_index = staticmethod(index_fn)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                out, report = enricher.enrich_with_report(chunks, {doc.id: doc})
                return time.perf_counter() - start, [c.metadata.get("llm") for c in out], report
        finally:
            constrained.JsonSchemaLogitsProcessor.allowed_index = staticmethod(shipped)

    results: dict[str, list[float]] = {"naive (torch.as_tensor)": [], "shipped (np.fromiter)": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in (("naive (torch.as_tensor)", naive_allowed_index), ("shipped (np.fromiter)", recording)):
            if name.startswith("shipped"):
                seen.clear()
            seconds, metadata, report = run(fn)
            results[name].append(seconds)
            outputs[name] = (metadata, report.valid, report.completion_tokens)
    same = outputs["naive (torch.as_tensor)"] == outputs["shipped (np.fromiter)"]

    import torch

    def per_call(fn: Any) -> float:
        start = time.perf_counter()
        for ids in seen:
            fn(ids, "cpu")
        return (time.perf_counter() - start) / max(1, len(seen))

    conv_naive, conv_shipped = per_call(naive_allowed_index), per_call(shipped)
    sizes = sorted(len(ids) for ids in seen)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}, torch {torch.__version__}")
    print(f"model: SmolLM2-135M-Instruct (transformers, CPU), compact metadata schema, {len(chunks)} chatlogs "
          f"chunks in one batch; same outputs: {same} "
          f"({outputs['shipped (np.fromiter)'][1]}/{len(chunks)} valid, {outputs['shipped (np.fromiter)'][2]} tokens)")
    print(f"| variant | enrichment s (best of {args.repeats}) | mask conversion ms / call |")
    print("|---|---:|---:|")
    print(f"| naive (torch.as_tensor) | {min(results['naive (torch.as_tensor)']):.1f} | {conv_naive * 1e3:.2f} |")
    print(f"| shipped (np.fromiter) | {min(results['shipped (np.fromiter)']):.1f} | {conv_shipped * 1e3:.2f} |")
    ratio = min(results["shipped (np.fromiter)"]) / min(results["naive (torch.as_tensor)"])
    print(f"shipped / naive: enrichment {ratio:.2f}x, conversion {conv_shipped / conv_naive:.2f}x over "
          f"{len(seen)} calls (allowed ids per call: median {sizes[len(sizes) // 2]}, max {sizes[-1]})")
    if not same:
        raise SystemExit("the two conversions gave different metadata")


if __name__ == "__main__":
    main()
