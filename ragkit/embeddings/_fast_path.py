"""The fast path for local transformer embedders: tokenise once, length-bucketed batches, pooling on device.

``SentenceTransformer.encode`` tokenises every batch in Python and pads each batch to its own exact
length; ragkit also tokenised every text a second time to sort by length. This path instead:

- tokenises all texts in one call of the Rust tokenizer (``encode_batch_fast``, parallel), with
  truncation done on the ids (first ``limit - 1`` tokens plus the closing special token, as the
  model's own truncation does), so lengths for sorting and for the truncation warning are free;
- sorts by length and cuts batches of ``rows`` texts (large on a GPU, ``batch_size`` on CPU), padding
  each to a multiple of ``pad_to`` tokens on a GPU (few distinct shapes) and exactly on CPU;
- tokenises the next blocks in a thread (or, on a GPU, in worker processes) while the device runs the
  current one;
- moves each block's ids to the device in one copy, pads every batch there, and copies the vectors
  back once per block (no synchronisation per batch);
- runs the transformer with SDPA attention (the default in current transformers), then mean or CLS
  pooling and L2 normalisation on the device, copying one float32 block back per batch.

It applies to models made of a transformer, a mean/CLS ``Pooling`` and optionally ``Normalize``
(MiniLM and most sentence-transformers models); anything else falls back to ``model.encode``.

Example:
    >>> plan_for(object()) is None
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Texts tokenised per block (the next block is tokenised while the device runs this one).
BLOCK = 8192


@dataclass
class FastPlan:
    """What the fast path needs from a loaded SentenceTransformer."""

    transformer: Any
    pooling: str
    tokenizer: Any  # a tokenizers.Tokenizer with truncation and padding off
    pad_id: int
    limit: int
    special_ids: frozenset[int]


def plan_for(model: Any) -> FastPlan | None:
    """A :class:`FastPlan` when ``model`` is transformer + mean/CLS pooling (+ normalize), else ``None``."""
    try:
        modules = list(model)
    except TypeError:
        return None
    if len(modules) not in (2, 3):
        return None
    first, pooling = modules[0], modules[1]
    names = [type(m).__name__ for m in modules]
    if names[1] != "Pooling" or (len(names) == 3 and names[2] != "Normalize"):
        return None
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:
        config = pooling.get_config_dict() if hasattr(pooling, "get_config_dict") else {}
        mode = config.get("pooling_mode") or ("mean" if config.get("pooling_mode_mean_tokens") else
                                               "cls" if config.get("pooling_mode_cls_token") else None)
    if mode not in ("mean", "cls"):
        return None
    transformer = getattr(first, "auto_model", None) or getattr(first, "model", None)
    hf_tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(hf_tokenizer, "_tokenizer", None) or getattr(hf_tokenizer, "backend_tokenizer", None)
    if transformer is None or backend is None:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())  # a private copy: no truncation, no padding
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pad_id = getattr(hf_tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    specials = frozenset(int(i) for i in getattr(hf_tokenizer, "all_special_ids", []) or [])
    limit = int(getattr(model, "max_seq_length", 0) or 512)
    return FastPlan(transformer, mode, tokenizer, pad_id, limit, specials)


def _truncate(plan: FastPlan, row: list[int]) -> list[int]:
    if len(row) <= plan.limit:
        return row
    return row[: plan.limit - 1] + row[-1:] if row[-1] in plan.special_ids else row[: plan.limit]


def tokenize(plan: FastPlan, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
    """Token ids (special tokens included, truncated to the model's limit) and the untruncated lengths."""
    encode = getattr(plan.tokenizer, "encode_batch_fast", None) or plan.tokenizer.encode_batch
    encodings = encode(list(texts), add_special_tokens=True)
    ids, lengths = [], []
    for encoding in encodings:
        row = encoding.ids
        lengths.append(len(row))
        ids.append(_truncate(plan, row))
    return ids, lengths


def flatten(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids as one flat int64 array and the row lengths."""
    lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths


_WORKER_PLAN: list[Any] = []


def _worker_init(tokenizer_json: str, limit: int, special_ids: frozenset[int]) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    _WORKER_PLAN[:] = [FastPlan(None, "mean", tokenizer, 0, limit, special_ids)]


def _worker_tokenize(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    ids, raw = tokenize(_WORKER_PLAN[0], texts)
    flat, lengths = flatten(ids)
    return flat, lengths, raw


def embed_ids(plan: FastPlan, ids: Sequence[Sequence[int]], *, device: str, rows: int, pad_to: int,
              normalize: bool, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors for token-id rows (input order out), float32."""
    flat, lengths = flatten(ids)
    return embed_flat(plan, flat, lengths, device=device, rows=rows, pad_to=pad_to, normalize=normalize,
                      on_batch=on_batch)


def embed_flat(plan: FastPlan, flat: np.ndarray, lengths: np.ndarray, *, device: str, rows: int, pad_to: int,
               normalize: bool, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors for rows given as one flat id array and their lengths (input order out), float32.

    The rows are reordered by length once, moved to the device in one copy, and every batch is padded
    there; results stay on the device until one copy back at the end (no per-batch synchronisation).
    """
    import torch

    n = len(lengths)
    dim = int(plan.transformer.config.hidden_size)
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    sorted_starts = np.concatenate(([0], np.cumsum(sorted_lengths)[:-1]))
    within = np.arange(int(sorted_lengths.sum())) - np.repeat(sorted_starts, sorted_lengths)
    gathered = flat[np.repeat(starts[order], sorted_lengths) + within]
    on_gpu = device.startswith("cuda")
    ids_all = torch.from_numpy(gathered)
    lens_all = torch.from_numpy(sorted_lengths)
    if on_gpu:
        ids_all = ids_all.pin_memory().to(device, non_blocking=True)
        lens_all = lens_all.to(device, non_blocking=True)
    out = torch.empty((n, dim), dtype=torch.float32, device=device)
    with torch.inference_mode():
        for start in range(0, n, rows):
            end = min(start + rows, n)
            width = int(sorted_lengths[start])
            if pad_to > 1:
                width = min(-(-width // pad_to) * pad_to, max(plan.limit, width))
            lens = lens_all[start:end]
            attention = torch.arange(width, device=device).unsqueeze(0) < lens.unsqueeze(1)
            batch = torch.full((end - start, width), plan.pad_id, dtype=torch.long, device=device)
            batch[attention] = ids_all[int(sorted_starts[start]): int(sorted_starts[end - 1] + sorted_lengths[end - 1])]
            mask = attention.to(torch.long)
            hidden = plan.transformer(input_ids=batch, attention_mask=mask,
                                      token_type_ids=torch.zeros_like(batch)).last_hidden_state.float()
            if plan.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[start:end] = pooled
            if on_batch is not None:
                on_batch(end - start)
    result = np.empty((n, dim), dtype=np.float32)
    result[order] = out.cpu().numpy()
    return result


def embed_texts(plan: FastPlan, texts: Sequence[str], *, device: str, rows: int, pad_to: int, normalize: bool,
                workers: int = 0, on_lengths: Callable[[list[int]], None] | None = None,
                on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Tokenise ``texts`` once, ahead of the device, and embed them.

    Blocks of :data:`BLOCK` texts are tokenised while the device runs the previous block: in a thread,
    or in ``workers`` processes (worth it on a GPU, where tokenising is the bottleneck).
    """
    n = len(texts)
    blocks = [(s, min(s + BLOCK, n)) for s in range(0, n, BLOCK)]
    out: np.ndarray | None = None
    if workers > 1 and len(blocks) > 1:
        import multiprocessing

        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool: Any = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                        initargs=(plan.tokenizer.to_str(), plan.limit, plan.special_ids))
        submit = lambda block: pool.submit(_worker_tokenize, texts[block[0]:block[1]])  # noqa: E731
    else:
        pool = ThreadPoolExecutor(max_workers=1)

        def submit(block: tuple[int, int]) -> Any:
            def job() -> tuple[np.ndarray, np.ndarray, list[int]]:
                ids, raw = tokenize(plan, texts[block[0]:block[1]])
                return (*flatten(ids), raw)

            return pool.submit(job)
    with pool:
        ahead = max(1, workers)
        pending = [submit(b) for b in blocks[:ahead]]
        for number, (start, end) in enumerate(blocks):
            flat, lengths, raw = pending.pop(0).result()
            if number + ahead < len(blocks):
                pending.append(submit(blocks[number + ahead]))
            if on_lengths is not None:
                on_lengths(raw)
            vectors = embed_flat(plan, flat, lengths, device=device, rows=rows, pad_to=pad_to, normalize=normalize,
                                 on_batch=on_batch)
            if out is None:
                out = np.empty((n, vectors.shape[1]), dtype=np.float32)
            out[start:end] = vectors
    assert out is not None
    return out
