"""Meta-Chunking (PPL Chunking) speed: ragkit's chunker vs the authors' procedure, and its overhead.

Three numbers, all measured in one process on the same model object and the same text:

1. **ratio** = authors' time / ragkit's time. The authors' procedure is re-implemented here from
   METHODS.md §1.3 (our code, not theirs): sentences tokenised one by one and concatenated, one forward
   pass with full logits for documents up to 4,096 words, else 4,096-token windows over a growing KV
   cache, each window prefixed with a space token, the oldest ``window + 2`` cached positions evicted
   once cache + window exceed 9,000 tokens (positions not re-based), per-sentence mean NLL, the code's
   minima rule, one document at a time. Both sides use the same sentence splitter (NLTK's data, which
   the authors used, is not available offline), so the comparison isolates scoring and bookkeeping.
2. **overhead** = ragkit chunker throughput / raw model throughput on the same tokens (target >= 0.85).
   "Raw" runs only the model work ragkit's backend does for those scores: the decoder over the same
   windows in the same batches, then the LM head and log-softmax on the scored positions. The rest
   (sentence splitting, tokenisation, window planning, mapping tokens to sentences, the boundary rule,
   chunk records with MiniLM token counts) is the overhead.
3. On a GPU (``--device cuda --shape qwen2-0.5b --random-weights``): tokens/s, the overhead ratio and
   documents/s through ragkit's ``PerplexityChunker`` and ``TransformersLLM`` for each batch size, on
   the chroma corpora, with a Qwen2 model of that shape built from a hand-written config with random
   weights (speed does not depend on the weights) and the packaged SmolLM2 tokenizer. Nothing is
   downloaded; ``--prepare-assets DIR`` copies the tokenizers and corpora into DIR beforehand.

Commands (see benchmarks/RESULTS.md, "## meta-chunking"):

    python benchmarks/metachunking_speed.py --corpora chatlogs,state_of_the_union
    python benchmarks/metachunking_speed.py --prepare-assets runs/metachunking_assets
    python3 benchmarks/metachunking_speed.py --device cuda --shape qwen2-0.5b --random-weights \\
        --batch-sizes 1,2,4,8,16,32,64 --assets runs/metachunking_assets
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ragkit.chunkers.perplexity import PerplexityChunker, find_minima  # noqa: E402
from ragkit.llm.base import plan_windows  # noqa: E402
from ragkit.text.sentences import split_sentences  # noqa: E402
from ragkit.types import Document  # noqa: E402

CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]

#: Qwen2 shapes (public model configs, written out by hand; weights are random).
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
    "qwen2-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
    # a toy shape to smoke-test the GPU path anywhere
    "tiny-test": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=49152, max_position_embeddings=32768,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------- the authors' procedure
def authors_scores(model: Any, tokenizer: Any, sentences: list[str], n_words: int, device: str,
                   window: int = 4096, max_txt_size: int = 9000, single_pass_words: int = 4096) -> np.ndarray:
    """Per-sentence mean NLL the way the authors' tools compute it (see the module docstring)."""
    import torch

    input_ids = torch.zeros((1, 0), dtype=torch.long, device=device)
    lengths = []
    for sentence in sentences:  # tokenised one by one, concatenated one by one (as they do)
        ids = tokenizer(sentence, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
        input_ids = torch.cat([input_ids, ids], dim=-1)
        lengths.append(ids.shape[1])
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    with torch.no_grad():
        if n_words <= single_pass_words:
            logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True).logits
            loss = loss_fn(logits[0, :-1].float(), input_ids[0, 1:])
            values, index = [], 0
            for i, n in enumerate(lengths):
                take = n - 1 if i == 0 else n
                values.append(loss[index:index + take].mean().item())
                index += take
            return np.asarray(values)
        space = tokenizer(" ", return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
        total = input_ids.shape[1]
        cache = None
        cached = 0
        losses = []
        for i in range(math.ceil(total / window)):
            chunk = torch.cat([space, input_ids[:, i * window:(i + 1) * window]], dim=-1)
            size = chunk.shape[1]
            # their test: the attention mask of every token seen so far (evicted ones included) plus
            # this window's space tokens exceeds max_txt_size
            seen = min(total, (i + 1) * window) + i + 1
            if seen > max_txt_size and cache is not None:
                for layer in cache.layers:  # evict the oldest size + 1 positions; positions not re-based
                    layer.keys = layer.keys[:, :, size + 1:, :]
                    layer.values = layer.values[:, :, size + 1:, :]
                cached = cache.layers[0].keys.shape[-2]
            mask = torch.ones((1, cached + size), dtype=torch.long, device=device)
            out = model(input_ids=chunk, attention_mask=mask, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            cached = cache.layers[0].keys.shape[-2]
            losses.append(loss_fn(out.logits[0, :-1].float(), chunk[0, 1:]))
        loss = torch.cat(losses)
        values, index = [], 0
        for i, n in enumerate(lengths):
            values.append((loss[1:n] if i == 0 else loss[index:index + n]).mean().item())
            index += n
        return np.asarray(values)


def authors_chunk(model: Any, tokenizer: Any, text: str, device: str, splitter: str) -> list[str]:
    spans = split_sentences(text, splitter)
    sentences = [text[a:b] for a, b in spans]
    nll = authors_scores(model, tokenizer, sentences, len(text.split()), device)
    minima = find_minima(nll, 0.0, "either")
    bounds = [-1, *minima, len(sentences) - 1]
    return ["".join(sentences[a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])]


# --------------------------------------------------------------------------- raw model work
def plan_raw(llm: Any, docs: list[Document], chunker: PerplexityChunker) -> tuple[list[tuple[list[int], int]], int]:
    """The windows ragkit's backend scores for ``docs`` (same tokens, same planning), with the offset
    from which each window's scores are kept, and the number of tokens scored."""
    windows: list[list[int]] = []
    keep_from: list[int] = []
    scored = 0
    for doc in docs:
        spans = chunker.sentences(doc.text)
        ids = [t for a, b in spans for t in llm._encode_segment(doc.text[a:b])]
        scored += len(ids)
        context = llm.effective_context(chunker.context_for(doc.text))
        for w in plan_windows(len(ids), context, llm.window_stride):
            windows.append(ids[w.start:w.end])
            keep_from.append(w.score_from - w.start)
    return list(zip(windows, keep_from)), scored


def raw_forward(llm: Any, jobs: list[tuple[list[int], int]]) -> float:
    """Seconds for the decoder over the windows (same batches) + LM head and log-softmax on scored positions."""
    import torch

    device = llm.device_
    model = llm.model_
    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    batches = llm._batches([len(w) for w, _ in jobs])
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            width = max(len(jobs[i][0]) for i in batch)
            ids = torch.full((len(batch), width), llm.pad_id_, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                ids[r, :len(jobs[i][0])] = torch.as_tensor(jobs[i][0])
                mask[r, :len(jobs[i][0])] = 1
            padded = bool((mask == 0).any())
            ids = ids.to(device)
            hidden = decoder(input_ids=ids, attention_mask=mask.to(device) if padded else None,
                             use_cache=False).last_hidden_state
            rows = torch.cat([torch.full((len(jobs[i][0]) - max(1, jobs[i][1]),), r, dtype=torch.long)
                              for r, i in enumerate(batch)]).to(device)
            cols = torch.cat([torch.arange(max(1, jobs[i][1]) - 1, len(jobs[i][0]) - 1) for i in batch]).to(device)
            tgt = torch.cat([torch.as_tensor(jobs[i][0][max(1, jobs[i][1]):]) for i in batch]).to(device)
            selected = hidden[rows, cols]
            step = max(1, (1 << 26) // head.weight.shape[0])
            for s in range(0, selected.shape[0], step):
                logits = head(selected[s:s + step]).float()
                _ = logits.gather(1, tgt[s:s + step, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    synchronize(device)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- runs
def load_corpora(names: list[str], root: Path) -> list[Document]:
    return [Document.from_text((root / f"{n}.md").read_text(encoding="utf-8"), source_id=n) for n in names]


def data_root(args: argparse.Namespace) -> Path:
    if args.assets:
        return Path(args.assets) / "chroma"
    return Path(args.data_root or os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets") / \
        "chroma_chunking_eval"


def cpu_run(args: argparse.Namespace) -> dict[str, Any]:
    """Ratio vs the authors' procedure and overhead, on the local default model."""
    from ragkit.llm.transformers_backend import TransformersLLM

    docs = load_corpora(args.corpora, data_root(args))
    llm = TransformersLLM(model=args.model, device=args.device)
    llm.warm_up()
    chunker = PerplexityChunker(llm=llm, max_tokens=None, splitter=args.splitter, show_progress=False)
    chunker.warm_up()
    chunker.chunk(Document.from_text("Warm up the model. It runs once. Then we time it."))
    result: dict[str, Any] = {"mode": "cpu-vs-authors", "model": args.model, "device": llm.device_,
                              "dtype": llm.dtype_, "corpora": args.corpora, "repeats": args.repeats}
    times: dict[str, list[float]] = {"authors": [], "ragkit": [], "raw": []}
    jobs, scored = plan_raw(llm, docs, chunker)
    result["tokens_scored"] = scored
    result["tokens_processed_ragkit"] = sum(len(w) for w, _ in jobs)
    for rep in range(args.repeats):  # interleaved, so machine load hits all three alike
        if not args.skip_authors:
            start = time.perf_counter()
            authors = [authors_chunk(llm.model_, llm.tokenizer_, d.text, llm.device_, args.splitter) for d in docs]
            times["authors"].append(time.perf_counter() - start)
            log(f"[{rep}] authors {times['authors'][-1]:.1f} s, {sum(map(len, authors))} chunks")
        start = time.perf_counter()
        ours = chunker.chunk_many(docs)
        times["ragkit"].append(time.perf_counter() - start)
        log(f"[{rep}] ragkit  {times['ragkit'][-1]:.1f} s, {sum(map(len, ours))} chunks")
        times["raw"].append(raw_forward(llm, jobs))
        log(f"[{rep}] raw     {times['raw'][-1]:.1f} s")
        gc.collect()
    best = {k: min(v) for k, v in times.items() if v}
    result["seconds"] = {k: [round(x, 2) for x in v] for k, v in times.items() if v}
    if "authors" in best:
        result["speedup_vs_authors"] = round(best["authors"] / best["ragkit"], 3)
    result["ragkit_tokens_per_s"] = round(scored / best["ragkit"], 1)
    result["raw_tokens_per_s"] = round(scored / best["raw"], 1)
    result["overhead_ratio"] = round(best["raw"] / best["ragkit"], 3)
    return result


def build_random_model(shape: str, folder: Path, tokenizer_dir: Path, device: str) -> None:
    """A Qwen2 model of ``shape`` with random weights, saved with the SmolLM2 tokenizer (ids < 49,152)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def gpu_run(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput by batch size through ragkit's chunker and backend on a random-weight model."""
    import torch

    from ragkit.llm.transformers_backend import TransformersLLM
    from ragkit.text.tokenizers import WordPieceTokenizer, get_tokenizer

    assets = Path(args.assets) if args.assets else None
    docs = load_corpora(args.corpora, data_root(args))
    minilm = (WordPieceTokenizer("minilm", assets / "minilm" / "tokenizer.json") if assets
              else get_tokenizer("minilm"))
    tok_dir = assets / "smollm2" if assets else Path(os.environ.get("RAGKIT_HOME", Path.home() / ".cache/ragkit")) \
        / "models" / "smollm2-135m-instruct"
    folder = Path(tempfile.mkdtemp(prefix=f"ragkit-{args.shape}-"))
    start = time.perf_counter()
    build_random_model(args.shape, folder, tok_dir, args.device)
    log(f"built {args.shape} in {time.perf_counter() - start:.1f} s")
    llm = TransformersLLM(model=str(folder), device=args.device, dtype="bfloat16", max_context=args.max_context,
                          show_progress=False)
    llm.warm_up()
    result: dict[str, Any] = {"mode": "gpu-batch-sizes", "shape": args.shape, "device": llm.device_,
                              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
                              "dtype": llm.dtype_, "max_context_tokens": args.max_context,
                              "window_stride": llm.window_stride, "corpora": args.corpora, "rows": []}
    chunker = PerplexityChunker(llm=llm, max_context_tokens=args.max_context, max_tokens=256, show_progress=False)
    chunker.tokenizer = minilm  # the MiniLM tokenizer carried as a file (no packaged model on that machine)
    chunker.warm_up()
    jobs, scored = plan_raw(llm, docs, chunker)
    processed = sum(len(w) for w, _ in jobs)
    result["tokens_scored"], result["tokens_processed"], result["windows"] = scored, processed, len(jobs)
    if args.authors:  # the authors' procedure on the same model, one document at a time
        try:
            authors_chunk(llm.model_, llm.tokenizer_, docs[0].text[:20000], args.device, args.splitter)  # warm-up
            synchronize(args.device)
            start = time.perf_counter()
            n_chunks = sum(len(authors_chunk(llm.model_, llm.tokenizer_, d.text, args.device, args.splitter))
                           for d in docs)
            synchronize(args.device)
            result["authors_s"] = round(time.perf_counter() - start, 3)
            result["authors_chunks"] = n_chunks
            log(f"authors' procedure: {result['authors_s']} s, {n_chunks} chunks")
        except Exception as exc:  # report and go on with the batch sizes
            result["authors_error"] = repr(exc)[:500]
            log(f"authors' procedure failed: {exc!r}")
    for batch_size in args.batch_sizes:
        # one backend, its batch limits changed between runs (the model stays loaded)
        llm.batch_size = batch_size
        llm.max_batch_tokens = batch_size * (args.max_context + 1)
        chunker.chunk_many(docs[:1])  # warm-up at this batch size
        best_chunker, best_raw = math.inf, math.inf
        for _ in range(args.repeats):
            synchronize(args.device)
            start = time.perf_counter()
            chunks = chunker.chunk_many(docs)
            synchronize(args.device)
            best_chunker = min(best_chunker, time.perf_counter() - start)
            best_raw = min(best_raw, raw_forward(llm, jobs))
        row = {"batch_size": batch_size, "chunker_s": round(best_chunker, 3), "raw_s": round(best_raw, 3),
               "tokens_per_s": round(scored / best_chunker), "processed_tokens_per_s": round(processed / best_chunker),
               "raw_tokens_per_s": round(scored / best_raw), "overhead_ratio": round(best_raw / best_chunker, 3),
               "docs_per_s": round(len(docs) / best_chunker, 3), "chunks": sum(map(len, chunks))}
        if "authors_s" in result:
            row["speedup_vs_authors"] = round(result["authors_s"] / best_chunker, 2)
        if args.device.startswith("cuda"):
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            torch.cuda.reset_peak_memory_stats()
        log(json.dumps(row))
        result["rows"].append(row)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def prepare_assets(target: Path, data: Path) -> None:
    """Copy what the GPU run needs (tokenizers, chroma corpora) into ``target`` (carry it to the machine)."""
    from ragkit.llm.models import prepared_path
    from ragkit.text.tokenizers import minilm_tokenizer_path

    (target / "smollm2").mkdir(parents=True, exist_ok=True)
    (target / "minilm").mkdir(parents=True, exist_ok=True)
    (target / "chroma").mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(prepared_path() / name, target / "smollm2" / name)
    shutil.copy(minilm_tokenizer_path(), target / "minilm" / "tokenizer.json")
    for name in CORPORA:
        shutil.copy(data / "chroma_chunking_eval" / f"{name}.md", target / "chroma" / f"{name}.md")
    log(f"assets in {target}: {sum(f.stat().st_size for f in target.rglob('*') if f.is_file()) / 2**20:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpora", default="chatlogs,state_of_the_union",
                        help=f"comma-separated chroma corpora or 'all' ({', '.join(CORPORA)})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="CPU mode: backend model")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="GPU mode: Qwen2 shape with random weights")
    parser.add_argument("--random-weights", action="store_true", help="GPU mode (required with --shape)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--max-context", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--splitter", default="nupunkt")
    parser.add_argument("--skip-authors", action="store_true", help="CPU mode: skip the authors' procedure")
    parser.add_argument("--authors", action="store_true", help="GPU mode: also time the authors' procedure")
    parser.add_argument("--data-root")
    parser.add_argument("--assets", help="folder made by --prepare-assets (GPU machine)")
    parser.add_argument("--prepare-assets", metavar="DIR")
    parser.add_argument("--out", help="also write the JSON result here")
    args = parser.parse_args(argv)
    args.corpora = CORPORA if args.corpora == "all" else args.corpora.split(",")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.prepare_assets:
        root = Path(args.data_root or os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets")
        prepare_assets(Path(args.prepare_assets), root)
        return 0
    if args.shape and not args.random_weights:
        parser.error("--shape builds a model with random weights: pass --random-weights to confirm")
    result = gpu_run(args) if args.shape else cpu_run(args)
    result["machine"] = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                         "platform": platform.platform()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
