"""LM scoring throughput through ragkit's LLM backends, against the raw model forward pass on the same tokens.

What is timed is ``token_logprobs_batch`` (text → token log-probabilities: tokenising, windowing,
padded batches, forward, log-softmax over the vocabulary, per-segment split), the call the perplexity
chunker makes. The reference is a bare ``model(input_ids).logits`` + ``log_softmax`` + gather on the
same windows in the same batches (tokens prepared beforehand). Both run in the same process, rounds
alternating, and the median of the rounds is reported.

CPU (packaged SmolLM2-135M; also llama.cpp in-process when ``llama-cpp-python`` is installed)::

    python benchmarks/llm_scoring.py --docs 8 --seq-len 512 --batch-sizes 1,4 --rounds 3

GPU, self-contained (no downloads: a Qwen2 shape built from a hand-written config, random weights, bf16;
a word-level tokenizer built in-process; the vocabulary projection is the full 151,936 rows). ``--shape
smollm2-135m --random-weights --device cpu`` gives the CPU figure on machines without the packaged model::

    python benchmarks/llm_scoring.py --shape qwen2-0.5b --random-weights --seq-len 2048 --batch-sizes 1,4,8,16
    python benchmarks/llm_scoring.py --shape qwen2-1.5b --random-weights --seq-len 2048 --batch-sizes 1,4,8,16

Valid-JSON rate of constrained decoding (metadata extraction over chroma chunks, SmolLM2-135M; ``--model``
picks another alias)::

    python benchmarks/llm_scoring.py json --n 100
    python benchmarks/llm_scoring.py json --n 100 --model qwen2.5-coder-0.5b
    python benchmarks/llm_scoring.py json --n 30 --model smollm2-135m-instruct,qwen2.5-coder-0.5b \
        --constrained-only --threads 1 --cache read_write --out /tmp/runs/json.jsonl

Packaged models against each other in one process (CPU scoring tok/s through ``token_logprobs_batch`` and
greedy generation tok/s, ratios to the first model)::

    python benchmarks/llm_scoring.py models --models smollm2-135m-instruct,qwen2.5-coder-0.5b --docs 4

Each mode prints a table and one ``RESULT {...}`` JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Hand-written shapes (from the published configs), so nothing is downloaded.
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(architecture="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=True),
    "qwen2-0.5b": dict(architecture="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
    "qwen2-1.5b": dict(architecture="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- inputs
def chroma_documents(n_docs: int, seq_len: int, tokenizer: Any) -> list[list[str]]:
    """``n_docs`` documents of sentences from the chroma corpora, each at most ``seq_len`` model tokens."""
    root = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets") / "chroma_chunking_eval"
    text = " ".join((root / f"{name}.md").read_text(encoding="utf-8")
                    for name in ("state_of_the_union", "wikitexts", "pubmed", "finance", "chatlogs"))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if 20 < len(s) < 400]
    docs, current, used, cursor = [], [], 0, 0
    while len(docs) < n_docs and cursor < len(sentences):
        sentence = (" " if current else "") + sentences[cursor]
        n = len(tokenizer.encode(sentence, add_special_tokens=False))
        if used + n > seq_len:
            if current:
                docs.append(current)
            current, used = [], 0
            continue
        current.append(sentence)
        used += n
        cursor += 1
    return docs


def synthetic_tokenizer(vocab_words: int = 32000) -> Any:
    """A word-level fast tokenizer over made-up words (one word = one token), built without downloads."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2}
    for i in range(vocab_words):
        vocab[f"w{i}"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def synthetic_documents(n_docs: int, seq_len: int, vocab_words: int = 32000, seed: int = 0) -> list[list[str]]:
    """Documents of exactly ``seq_len`` tokens, as sentences of 24 made-up words."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        words = rng.integers(3, vocab_words, size=seq_len)
        docs.append([" ".join(f"w{w}" for w in words[i: i + 24]) for i in range(0, seq_len, 24)])
    return docs


# --------------------------------------------------------------------------- timing
def raw_reference(llm: Any, documents: list[list[str]], max_context: int) -> tuple[Any, int]:
    """A closure scoring the same windows, same batches, with a bare forward + log_softmax."""
    import torch

    from ragkit.llm.base import plan_windows

    windows: list[list[int]] = []
    for doc in documents:
        ids = [t for s in doc for t in llm._encode_segment(s)]
        windows += [ids[w.start: w.end] for w in plan_windows(len(ids), max_context, llm.window_stride)]
    batches = []
    for batch in llm._batches([len(w) for w in windows]):
        width = max(len(windows[i]) for i in batch)
        ids = torch.full((len(batch), width), llm.pad_id_, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, : len(windows[i])] = torch.as_tensor(windows[i])
            mask[r, : len(windows[i])] = 1
        padded = bool((mask == 0).any())
        batches.append((ids.to(llm.device_), mask.to(llm.device_) if padded else None))
    model = llm.model_

    def run() -> None:
        with torch.inference_mode():
            for ids, mask in batches:
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                lp.gather(-1, ids[:, 1:, None]).squeeze(-1).cpu()

    return run, sum(len(w) for w in windows)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Any) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def compare(llm: Any, documents: list[list[str]], max_context: int, rounds: int,
            others: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median seconds of ragkit vs the raw reference (and ``others``), rounds interleaved."""
    raw, tokens = raw_reference(llm, documents, max_context)
    ours = lambda: llm.token_logprobs_batch(documents, max_context)  # noqa: E731
    candidates = {"raw": raw, "ragkit": ours, **(others or {})}
    for fn in candidates.values():
        fn()                                                         # warm-up (kernels, allocator, caches)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"tokens": tokens, "ragkit_s": medians["ragkit"], "raw_s": medians["raw"],
              "ragkit_tok_s": tokens / medians["ragkit"], "raw_tok_s": tokens / medians["raw"],
              "ratio": medians["raw"] / medians["ragkit"]}
    for name in others or {}:
        result[f"{name}_s"] = medians[name]
        result[f"{name}_tok_s"] = tokens / medians[name]
    return result


# --------------------------------------------------------------------------- modes
def scoring(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ragkit.llm.transformers_backend import TransformersLLM

    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows: list[dict[str, Any]] = []
    if args.shape:
        if not args.random_weights:
            raise SystemExit("--shape needs --random-weights (real weights are not available offline)")
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        shape = dict(SHAPES[args.shape])
        config_cls, model_cls = ((Qwen2Config, Qwen2ForCausalLM) if shape.pop("architecture") == "qwen2"
                                 else (LlamaConfig, LlamaForCausalLM))
        config = config_cls(**shape)
        torch.manual_seed(0)
        with torch.device(device):
            model = model_cls(config).to(dtype)
        tokenizer = synthetic_tokenizer()
        documents = synthetic_documents(args.docs, args.seq_len)
        label = f"{args.shape} (random weights, {str(dtype).replace('torch.', '')}, {device})"
        params = sum(p.numel() for p in model.parameters())
        for b in batch_sizes:
            llm = TransformersLLM.from_objects(model, tokenizer, model=args.shape, batch_size=b,
                                               max_batch_tokens=b * args.seq_len, max_context=args.seq_len - 1)
            rows.append({"backend": "transformers", "batch_size": b, **compare(llm, documents, args.seq_len - 1,
                                                                                args.rounds)})
        extra = {"parameters": params}
    else:
        llm = TransformersLLM(device=args.device, num_threads=args.threads)
        llm.warm_up()
        documents = chroma_documents(args.docs, args.seq_len, llm.tokenizer_)
        label = f"smollm2-135m-instruct ({llm.dtype_}, {llm.device_})"
        others = llama_cpp_scorer(documents, args)
        for b in batch_sizes:
            llm.batch_size, llm.max_batch_tokens = b, b * args.seq_len
            rows.append({"backend": "transformers", "batch_size": b,
                         **compare(llm, documents, args.seq_len - 1, args.rounds, others)})
        extra = {}
    print(f"\nLM scoring throughput: {label}; {len(documents)} documents of <= {args.seq_len} tokens, "
          f"median of {args.rounds} rounds\n")
    print("| batch | tokens | ragkit tok/s | raw forward tok/s | ragkit / raw |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['tokens']} | {r['ragkit_tok_s']:,.0f} | {r['raw_tok_s']:,.0f} | "
              f"{r['ratio']:.3f} |")
    if rows and "llama_cpp_tok_s" in rows[0]:
        print("\n| batch | llama.cpp in-process tok/s (Q4_1 GGUF, one sequence at a time) | transformers / llama.cpp |"
              "\n|---|---|---|")
        for r in rows:
            print(f"| {r['batch_size']} | {r['llama_cpp_tok_s']:,.0f} | {r['ragkit_tok_s'] / r['llama_cpp_tok_s']:.2f} |")
    return {"mode": "scoring", "model": label, "seq_len": args.seq_len, "docs": len(documents), "rows": rows,
            **extra, "machine": machine()}


def models_mode(args: argparse.Namespace) -> dict[str, Any]:
    """Scoring and generation tokens/s of several packaged models in one process (ratios to the first)."""
    import torch

    from ragkit.llm.base import GenerationRequest
    from ragkit.llm.transformers_backend import TransformersLLM

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    prompts = ["Summarise in two sentences: " + " ".join(p.split()[:80]) for p in chroma_passages(args.gen_prompts)]
    rows = []
    for name in names:
        llm = TransformersLLM(model=name, device=args.device, num_threads=args.threads, batch_size=1,
                              max_batch_tokens=args.seq_len)
        llm.warm_up()
        documents = chroma_documents(args.docs, args.seq_len, llm.tokenizer_)
        tokens = sum(len(llm._encode_segment(s)) for d in documents for s in d)
        llm.token_logprobs_batch(documents[:1], args.seq_len - 1)                         # warm-up
        score = functools.partial(llm.token_logprobs_batch, documents, args.seq_len - 1)
        score_s = statistics.median(timed(score) for _ in range(args.rounds))
        requests = [GenerationRequest.chat(p, max_tokens=args.gen_tokens) for p in prompts]
        llm.generate(requests[:1])                                                        # warm-up
        start = time.perf_counter()
        completions = llm.generate(requests)
        gen_s = time.perf_counter() - start
        generated = sum(c.completion_tokens for c in completions)
        params = sum(p.numel() for p in llm.model_.parameters())
        rows.append({"model": name, "parameters": params, "score_tokens": tokens, "score_s": score_s,
                     "score_tok_s": tokens / score_s, "gen_tokens": generated, "gen_s": gen_s,
                     "gen_tok_s": generated / gen_s, "sample": completions[0].text[:160]})
        print(f"{name}: scoring {tokens / score_s:,.0f} tok/s, generation {generated / gen_s:,.1f} tok/s", flush=True)
        del llm
    ref = rows[0]
    print(f"\nPackaged models, CPU, same process; scoring: {args.docs} chroma documents of <= {args.seq_len} tokens "
          f"(median of {args.rounds}); generation: {len(prompts)} prompts, greedy, <= {args.gen_tokens} new tokens, "
          "batch 1\n")
    print(f"| model | parameters | scoring tok/s | × {ref['model']} | generation tok/s | × {ref['model']} |"
          "\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['parameters'] / 1e6:,.0f} M | {r['score_tok_s']:,.0f} | "
              f"{r['score_tok_s'] / ref['score_tok_s']:.2f} | {r['gen_tok_s']:,.1f} | {r['gen_tok_s'] / ref['gen_tok_s']:.2f} |")
    return {"mode": "models", "rows": rows, "seq_len": args.seq_len, "machine": machine()}


def llama_cpp_scorer(documents: list[list[str]], args: argparse.Namespace) -> dict[str, Any]:
    """``{"llama_cpp": fn}`` scoring the same documents in-process with llama.cpp, when it is installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python not installed: no llama.cpp comparison (run scripts/build_llama_cpp.sh)")
        return {}
    from ragkit.llm.llama_cpp_backend import LlamaCppLLM

    llm = LlamaCppLLM(n_ctx=args.seq_len + 8, n_threads=args.threads or None)
    llm.warm_up()
    return {"llama_cpp": lambda: llm.token_logprobs_batch(documents, args.seq_len - 1)}


def chroma_passages(n: int, chars: int = 600) -> list[str]:
    """``n`` passages of about ``chars`` characters, evenly spread over the five chroma corpora."""
    root = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets") / "chroma_chunking_eval"
    names = ("chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts")
    passages = []
    for k, name in enumerate(names):
        text = (root / f"{name}.md").read_text(encoding="utf-8")
        count = n // len(names) + (1 if k < n % len(names) else 0)
        step = max(1, (len(text) - chars) // max(1, count))
        for i in range(count):
            start = text.find(" ", i * step) + 1
            end = text.rfind(" ", start, start + chars)
            passages.append(text[start: end if end > start else start + chars].strip())
    return passages


def json_validity(args: argparse.Namespace) -> dict[str, Any]:
    """Valid-JSON rate of metadata extraction over chroma passages (one or several models, same prompts).

    Constrained decoding vs free decoding, each through ``CachedLLM`` (``--cache``, off by default): the first-attempt
    rate, and the rate after the wrapper's retries with the validation error (``structured_retries=2``).
    """
    import torch

    from ragkit.errors import StructuredOutputError
    from ragkit.llm.base import GenerationRequest
    from ragkit.llm.cached import CachedLLM
    from ragkit.llm.transformers_backend import TransformersLLM

    if args.threads:
        torch.set_num_threads(args.threads)
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 60},
            "content_type": {"type": "string", "enum": ["narrative", "data", "dialogue", "reference", "other"]},
            "keywords": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 4},
            "year": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["title", "content_type", "keywords", "year"],
    }
    passages = chroma_passages(args.n)
    prompt = ("Extract metadata from this passage as JSON with keys title, content_type (narrative, data, "
              "dialogue, reference or other), keywords (up to 4) and year (or null).\n\nPassage:\n{text}")
    requests = [GenerationRequest.chat(prompt.format(text=p), json_schema=schema, max_tokens=args.max_tokens)
                for p in passages]
    results: dict[str, Any] = {}
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    modes = [True] if args.constrained_only else [True, False]
    samples = []
    for model in models:
        for constrained in modes:
            inner = TransformersLLM(model=model, device=args.device, num_threads=args.threads,
                                    constrained_json=constrained, batch_size=args.batch_size)
            llm = CachedLLM(inner=inner, mode=args.cache, structured_retries=2)
            start = time.perf_counter()
            outcomes = llm.generate_outcomes(requests)
            seconds = time.perf_counter() - start
            first = sum(1 for o in outcomes if not isinstance(o, StructuredOutputError) and "attempts" not in o.extra)
            final = sum(1 for o in outcomes if not isinstance(o, StructuredOutputError))
            name = ("constrained" if constrained else "free") + (f" {model}" if len(models) > 1 else "")
            results[name] = {"n": len(requests), "model": model, "first_attempt_valid": first,
                             "valid_after_retries": final, "seconds": seconds,
                             "backend_requests": llm.backend_requests, "cache_hits": llm.cache_hits,
                             "errors": [str(o)[:200] for o in outcomes if isinstance(o, StructuredOutputError)][:3]}
            samples += [{"model": model, "constrained": constrained, "passage": p,
                         "output": o.text if not isinstance(o, StructuredOutputError) else None,
                         "error": str(o)[:300] if isinstance(o, StructuredOutputError) else None}
                        for p, o in zip(passages, outcomes)]
            print(f"{name:>11}: first attempt {first}/{len(requests)}, after retries {final}/{len(requests)} "
                  f"({llm.backend_requests} requests, {llm.cache_hits} cache hits, {seconds:.0f} s)", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    print("\n| decoding | valid JSON, first attempt | valid after <= 2 retries | requests | seconds |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['first_attempt_valid']}/{r['n']} | {r['valid_after_retries']}/{r['n']} | "
              f"{r['backend_requests']} | {r['seconds']:.0f} |")
    return {"mode": "json", "model": args.model, "max_tokens": args.max_tokens, "schema": schema,
            **results, "machine": machine()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="scoring", choices=["scoring", "json", "models"])
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a model shape with random weights (GPU or CPU)")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--n", type=int, default=100, help="json mode: number of prompts")
    parser.add_argument("--max-tokens", type=int, default=96, help="json mode: output budget per answer")
    parser.add_argument("--batch-size", type=int, default=8, help="json mode: generation batch size")
    parser.add_argument("--constrained-only", action="store_true", help="json mode: skip free decoding")
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="json mode: packaged alias or folder; comma-separated for several in one process")
    parser.add_argument("--cache", default="off", choices=["off", "read_write", "read_only"],
                        help="json mode: LLM cache mode (RAGKIT_HOME's cache; off measures every request)")
    parser.add_argument("--out", help="json mode: write every passage and output as JSON lines here")
    parser.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b",
                        help="models mode: aliases to compare (ratios to the first)")
    parser.add_argument("--gen-prompts", type=int, default=5, help="models mode: generation prompts")
    parser.add_argument("--gen-tokens", type=int, default=48, help="models mode: new tokens per prompt")
    args = parser.parse_args(argv)
    result = {"json": json_validity, "models": models_mode}.get(args.mode, scoring)(args)
    print("RESULT " + json.dumps(result, default=float))


if __name__ == "__main__":
    main()
