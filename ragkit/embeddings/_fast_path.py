"""The fast path for local transformer embedders: tokenise once, length-bucketed batches, pooling on device.

``SentenceTransformer.encode`` tokenises every batch in Python and pads each batch to its own exact
length; ragkit also tokenised every text a second time to sort by length. This path instead:

- takes the chunker's token ids where it handed them over (:mod:`ragkit.text.token_ids`; same
  tokenizer fingerprint), tokenising only the other texts and the prefixes of prefixed views;
- tokenises the rest in one call of the Rust tokenizer (``encode_batch_fast``, parallel) without
  special tokens, then adds the model's special tokens (``[CLS]``/``[SEP]``, found by probing its
  tokenizer) and cuts each row to the model's window as its own truncation does, vectorised, so
  lengths for sorting and for the truncation warning are free;
- sorts by length and cuts batches of ``rows`` texts (large on a GPU, ``batch_size`` on CPU), padding
  each to a multiple of ``pad_to`` tokens on a GPU (few distinct shapes) and exactly on CPU;
- prepares the next blocks in a thread (or in worker processes) while the device runs the current one;
- moves each block's ids to the device in one int32 copy, gathers and pads every batch there and
  hands SDPA a ready boolean mask, so nothing reads back to the host per batch (no synchronisation);
- runs the transformer with SDPA attention (the default in current transformers), then mean or CLS
  pooling and L2 normalisation on the device; on a GPU the vectors of a whole call stay on the
  device (in input order) and are copied back once.

It applies to models made of a transformer, a mean/CLS ``Pooling`` and optionally ``Normalize``
(MiniLM and most sentence-transformers models); anything else falls back to ``model.encode``.

Example:
    >>> plan_for(object()) is None
    True
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import itertools
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Texts tokenised per block (the next block is tokenised while the device runs this one).
BLOCK = 8192


@dataclass
class FastPlan:
    """What the fast path needs from a loaded SentenceTransformer.

    ``head``/``tail`` are the special ids the model's tokenizer puts around a text (``[CLS]``/``[SEP]``
    for BERT; ``None`` when they are not a fixed wrap, then texts are tokenised with special tokens and
    chunker ids are not used); ``fingerprint`` identifies its ids (:func:`ragkit.text.token_ids.tokenizer_fingerprint`);
    ``joinable``: ``ids(a + " " + b) == ids(a) + ids(b)``; ``mask_4d``: the transformer takes a ready
    ``(B, 1, 1, W)`` boolean mask (SDPA in transformers with ``masking_utils``), so building its own
    mask never reads the mask back to the host (a synchronisation per batch on a GPU).
    """

    transformer: Any
    pooling: str
    tokenizer: Any  # a tokenizers.Tokenizer with truncation and padding off
    pad_id: int
    limit: int
    special_ids: frozenset[int]
    head: tuple[int, ...] | None = None
    tail: tuple[int, ...] | None = None
    fingerprint: str = ""
    joinable: bool = False
    mask_4d: bool = False


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

    from ragkit.text.token_ids import joins_at_whitespace, tokenizer_fingerprint

    spec = backend.to_str()
    tokenizer = Tokenizer.from_str(spec)  # a private copy: no truncation, no padding
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pad_id = getattr(hf_tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    specials = frozenset(int(i) for i in getattr(hf_tokenizer, "all_special_ids", []) or [])
    limit = int(getattr(model, "max_seq_length", 0) or 512)
    wrap = special_wrap(tokenizer)
    return FastPlan(transformer, mode, tokenizer, pad_id, limit, specials,
                    head=wrap[0] if wrap else None, tail=wrap[1] if wrap else None,
                    fingerprint=tokenizer_fingerprint(spec), joinable=joins_at_whitespace(spec),
                    mask_4d=_takes_4d_mask(transformer))


def special_wrap(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The fixed special ids before and after a text's ids (``([CLS], [SEP])`` for BERT), or ``None``.

    Found by encoding probes with and without special tokens; ``None`` unless every probe shows the
    same wrap around its plain ids.
    """
    found: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    for probe in ("a", "hello world", "1 , 2 ."):
        full = list(tokenizer.encode(probe, add_special_tokens=True).ids)
        plain = list(tokenizer.encode(probe, add_special_tokens=False).ids)
        spots = [i for i in range(len(full) - len(plain) + 1) if plain and full[i:i + len(plain)] == plain]
        if len(spots) != 1:
            return None
        found.add((tuple(full[:spots[0]]), tuple(full[spots[0] + len(plain):])))
    if len(found) != 1:
        return None
    head, tail = found.pop()
    empty = list(tokenizer.encode("", add_special_tokens=True).ids)
    return (head, tail) if empty == [*head, *tail] else None


def _takes_4d_mask(transformer: Any) -> bool:
    """Whether ``transformer`` takes a prepared ``(B, 1, 1, W)`` boolean mask as is (SDPA, transformers >= 4.53).

    Checked by running a two-row probe both ways (a 2-D mask and the 4-D one) and comparing the
    hidden states of the real tokens; any difference or error keeps the 2-D mask.
    """
    config = getattr(transformer, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or getattr(config, "is_decoder", False):
        return False
    try:
        import torch
        import transformers.masking_utils as masking

        if not hasattr(masking, "create_bidirectional_mask"):
            return False
        device = next(transformer.parameters()).device
        ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]], device=device)
        keep = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], device=device)
        with torch.inference_mode():
            flat = transformer(input_ids=ids, attention_mask=keep, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            ready = transformer(input_ids=ids, attention_mask=keep.bool()[:, None, None, :],
                                token_type_ids=torch.zeros_like(ids)).last_hidden_state
        real = keep.bool()
        return bool(torch.allclose(flat[real].float(), ready[real].float(), atol=2e-3, rtol=1e-3))
    except Exception:  # noqa: BLE001 - any model this probe does not fit keeps the 2-D mask
        return False


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concat(arange(k) for k in lengths)`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)


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


def content_ids(plan: FastPlan, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts' ids without special tokens, untruncated: one flat int32 array and the row lengths."""
    if not texts:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    encode = getattr(plan.tokenizer, "encode_batch_fast", None) or plan.tokenizer.encode_batch
    rows = [encoding.ids for encoding in encode(list(texts), add_special_tokens=False)]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


#: A chunker's ids for one text: ``(None, ids)``, or ``(prefix, ids of the rest)`` for a prefixed view.
Known = tuple[str | None, np.ndarray] | None


def content_ids_with(plan: FastPlan, texts: Sequence[str], known: Sequence[Known]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`content_ids`, taking the ids in ``known`` where given: only the rest and the prefixes are tokenised."""
    rows: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    todo: list[int] = []
    heads: dict[str, list[int]] = {}
    for i, entry in enumerate(known):
        if entry is None:
            todo.append(i)
            continue
        head, ids = entry
        rows[i] = ids
        if head is not None:
            heads.setdefault(head, []).append(i)
    if heads:
        names = list(heads)
        flat, lengths = content_ids(plan, names)
        for name, part in zip(names, np.split(flat, np.cumsum(lengths)[:-1])):
            for i in heads[name]:
                rows[i] = np.concatenate((part, rows[i]))
    if todo:
        flat, lengths = content_ids(plan, [texts[i] for i in todo])
        for i, part in zip(todo, np.split(flat, np.cumsum(lengths)[:-1])):
            rows[i] = part
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.concatenate(rows).astype(np.int32, copy=False) if rows else np.zeros(0, dtype=np.int32)
    return flat, lengths


def wrap(plan: FastPlan, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Content ids → model input: special tokens added, each row cut to the model's window.

    The cut is the model's own truncation (the first ``limit - specials`` content ids). Returns the flat
    ids, the row lengths and the untruncated lengths (for the truncation warning).
    """
    assert plan.head is not None and plan.tail is not None
    head, tail = np.asarray(plan.head, dtype=np.int32), np.asarray(plan.tail, dtype=np.int32)
    extra = len(head) + len(tail)
    keep = np.minimum(lengths, max(plan.limit - extra, 0))
    out_lengths = keep + extra
    out = np.empty(int(out_lengths.sum()), dtype=np.int32)
    out_starts = np.cumsum(out_lengths) - out_lengths
    in_starts = np.cumsum(lengths) - lengths
    for j, token in enumerate(head.tolist()):
        out[out_starts + j] = token
    steps = _ranges(keep)
    out[np.repeat(out_starts + len(head), keep) + steps] = flat[np.repeat(in_starts, keep) + steps]
    for j, token in enumerate(tail.tolist()):
        out[out_starts + len(head) + keep + j] = token
    return out, out_lengths, lengths + extra


def flatten(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids as one flat int64 array and the row lengths."""
    lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths


def model_inputs(plan: FastPlan, texts: Sequence[str], known: Sequence[Known] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat model-input ids, row lengths and untruncated lengths for ``texts`` (``known`` ids used where given)."""
    if plan.head is None or plan.tail is None:  # no fixed wrap: the tokenizer adds special tokens itself
        ids, raw = tokenize(plan, texts)
        flat, lengths = flatten(ids)
        return flat, lengths, np.asarray(raw, dtype=np.int64)
    flat, lengths = content_ids(plan, texts) if known is None else content_ids_with(plan, texts, known)
    return wrap(plan, flat, lengths)


_WORKER_PLAN: list[Any] = []
#: Tokenizer process pools, one per (tokenizer, window, workers): started on first use, kept for the process.
_POOLS: dict[tuple[Any, ...], ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def tokenizer_pool(plan: FastPlan, workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that turn texts into ``plan``'s model inputs, started once and reused.

    Started with ``spawn`` (the parent may hold a CUDA context and tokenizer threads, which ``fork`` would
    copy half-initialised); a pool created per call costs more than it saves (RESULTS ``## embeddings``),
    so pools live until the process exits.
    """
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan) if f.name not in ("transformer", "tokenizer")}
    spec = plan.tokenizer.to_str()
    key = (hashlib.sha256(spec.encode("utf-8")).hexdigest(), tuple(sorted((k, repr(v)) for k, v in fields.items())), workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                       initargs=(spec, fields))
            _POOLS[key] = pool
            atexit.register(pool.shutdown, wait=False, cancel_futures=True)
        return pool


def _worker_init(tokenizer_json: str, fields: dict[str, Any]) -> None:
    from tokenizers import Tokenizer

    _WORKER_PLAN[:] = [FastPlan(transformer=None, tokenizer=Tokenizer.from_str(tokenizer_json), **fields)]


def _worker_inputs(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return model_inputs(_WORKER_PLAN[0], texts)


def embed_ids(plan: FastPlan, ids: Sequence[Sequence[int]], *, device: str, rows: int, pad_to: int,
              normalize: bool, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors for model-input token-id rows (special tokens included; input order out), float32."""
    flat, lengths = flatten(ids)
    return embed_flat(plan, flat, lengths, device=device, rows=rows, pad_to=pad_to, normalize=normalize,
                      on_batch=on_batch)


#: Above this many bytes of output vectors a call copies each block back on its own (else once at the end).
DEVICE_OUTPUT_BYTES = 1 << 30


def embed_flat(plan: FastPlan, flat: np.ndarray, lengths: np.ndarray, *, device: str, rows: int, pad_to: int,
               normalize: bool, on_batch: Callable[[int], None] | None = None, out: Any = None,
               positions: np.ndarray | None = None) -> np.ndarray | None:
    """Vectors for rows given as one flat id array and their lengths (input order out), float32.

    The rows are reordered by length once and moved to the device in one copy (int32); every batch is
    gathered and padded there, with no read-back to the host: nothing synchronises until the vectors
    are copied back. With ``out`` (a float32 tensor on ``device``) rows are written to
    ``out[positions[i]]`` (default ``out[i]``) and nothing is copied back (the caller copies once); else a
    NumPy array is returned.
    """
    import torch

    n = len(lengths)
    dim = int(plan.transformer.config.hidden_size)
    if n == 0:
        return None if out is not None else np.zeros((0, dim), dtype=np.float32)
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    starts = np.cumsum(lengths) - lengths
    sorted_starts = np.cumsum(sorted_lengths) - sorted_lengths
    gathered = np.asarray(flat, dtype=np.int32)[np.repeat(starts[order], sorted_lengths) + _ranges(sorted_lengths)]
    on_gpu = device.startswith("cuda")
    ids_all = torch.from_numpy(gathered)
    starts_all = torch.from_numpy(sorted_starts)
    lens_all = torch.from_numpy(sorted_lengths)
    order_all = torch.from_numpy(order if positions is None else np.asarray(positions, dtype=np.int64)[order])
    if on_gpu:
        ids_all = ids_all.pin_memory().to(device, non_blocking=True)
        starts_all, lens_all, order_all = (t.pin_memory().to(device, non_blocking=True)
                                           for t in (starts_all, lens_all, order_all))
    target = out if out is not None else torch.empty((n, dim), dtype=torch.float32, device=device)
    last = max(len(gathered) - 1, 0)
    with torch.inference_mode():
        for start, end in batch_bounds(sorted_lengths, rows, pad_to):
            width = int(sorted_lengths[start])
            if pad_to > 1:
                width = min(-(-width // pad_to) * pad_to, max(plan.limit, width))
            columns = torch.arange(width, device=device)
            attention = columns.unsqueeze(0) < lens_all[start:end].unsqueeze(1)
            index = (starts_all[start:end].unsqueeze(1) + columns.unsqueeze(0)).clamp_(max=last)
            batch = ids_all[index].long().masked_fill_(~attention, plan.pad_id)
            mask = attention[:, None, None, :] if plan.mask_4d else attention.to(torch.long)
            hidden = plan.transformer(input_ids=batch, attention_mask=mask,
                                      token_type_ids=torch.zeros_like(batch)).last_hidden_state.float()
            if plan.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            target[order_all[start:end]] = pooled
            if on_batch is not None:
                on_batch(end - start)
    if out is not None:
        return None
    return target.cpu().numpy()


def batch_bounds(sorted_lengths: np.ndarray, rows: int, pad_to: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each batch over lengths sorted longest first: at most ``rows`` rows each.

    With ``pad_to > 1`` (a GPU's buckets) a batch also ends where the padded width drops to the next
    bucket, once it holds at least a quarter of ``rows`` (smaller runs ride along, padded a little), so a
    batch's rows are not padded to the bucket of a longer neighbour (H100, 100k 40-word texts: the raw
    forward on these cuts ran 1.02x the one on fixed ``rows`` cuts).

    Example:
        >>> batch_bounds(np.array([40, 33, 20, 18, 17, 3]), rows=4, pad_to=16)
        [(0, 2), (2, 5), (5, 6)]
        >>> batch_bounds(np.array([5, 4, 3]), rows=2, pad_to=1)
        [(0, 2), (2, 3)]
    """
    n = len(sorted_lengths)
    if pad_to <= 1 or n == 0:
        return [(s, min(s + rows, n)) for s in range(0, n, rows)]
    buckets = -(-np.asarray(sorted_lengths, dtype=np.int64) // pad_to)
    cuts = (np.flatnonzero(buckets[1:] != buckets[:-1]) + 1).tolist() + [n]
    edges = [0]
    for cut in cuts:
        while cut - edges[-1] > rows:
            edges.append(edges[-1] + rows)
        if cut == n or cut - edges[-1] >= max(1, rows // 4):
            edges.append(cut)
    return list(zip(edges[:-1], edges[1:]))


#: Blocks tokenised ahead of the device (each in its own thread when there is no worker pool).
TOKENIZER_THREADS = 1


def embed_texts(plan: FastPlan, texts: Sequence[str], *, device: str, rows: int, pad_to: int, normalize: bool,
                workers: int = 0, threads: int | None = None,
                lookup: Callable[[Sequence[str]], Sequence[Known] | None] | None = None,
                on_lengths: Callable[[np.ndarray], None] | None = None,
                on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Tokenise ``texts`` once, ahead of the device, and embed them.

    Blocks of :data:`BLOCK` texts are turned into model inputs while the device runs the previous
    block: in ``threads`` threads (default :data:`TOKENIZER_THREADS`), or in ``workers`` processes.
    ``lookup(block_texts)`` gives the chunker's ids of a block's texts (one :data:`Known` per text, or
    ``None``), called in the thread that prepares the block: those texts are not tokenised (the model's
    special tokens and window are applied here). On a GPU all vectors stay on
    the device until one copy back at the end (below :data:`DEVICE_OUTPUT_BYTES`).
    """
    import torch

    n = len(texts)
    # longest first by characters (a free stand-in for tokens), so each block's batches hold similar lengths,
    # as if the whole call were sorted at once: sorting within blocks only padded ~25 % more tokens on a GPU
    by_length = np.argsort(-np.fromiter(map(len, texts), dtype=np.int64, count=n), kind="stable")
    texts = [texts[i] for i in by_length]
    blocks = [(s, min(s + BLOCK, n)) for s in range(0, n, BLOCK)]
    dim = int(plan.transformer.config.hidden_size)
    on_gpu = device.startswith("cuda")
    whole = on_gpu and n * dim * 4 <= DEVICE_OUTPUT_BYTES
    device_out = torch.empty((n, dim), dtype=torch.float32, device=device) if whole else None
    host_out = np.empty((n, dim) if device_out is None else (0, dim), dtype=np.float32)
    if workers > 1 and len(blocks) > 1 and lookup is None:
        pool: Any = tokenizer_pool(plan, workers)
        submit = lambda block: pool.submit(_worker_inputs, texts[block[0]:block[1]])  # noqa: E731
        ahead = workers
        scope: Any = contextlib.nullcontext()  # the pool outlives the call (started once per tokenizer)
    else:
        ahead = max(1, TOKENIZER_THREADS if threads is None else threads)
        pool = ThreadPoolExecutor(max_workers=ahead)
        scope = pool

        def prepare(part: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return model_inputs(plan, part, None if lookup is None else lookup(part))

        def submit(block: tuple[int, int]) -> Any:
            return pool.submit(prepare, texts[block[0]:block[1]])
    with scope:
        pending = [submit(b) for b in blocks[:ahead]]
        for number, (start, end) in enumerate(blocks):
            flat, lengths, raw = pending.pop(0).result()
            if number + ahead < len(blocks):
                pending.append(submit(blocks[number + ahead]))
            if on_lengths is not None:
                on_lengths(raw)
            if device_out is not None:
                embed_flat(plan, flat, lengths, device=device, rows=rows, pad_to=pad_to, normalize=normalize,
                           on_batch=on_batch, out=device_out, positions=by_length[start:end])
            else:
                host_out[by_length[start:end]] = embed_flat(plan, flat, lengths, device=device, rows=rows,
                                                            pad_to=pad_to, normalize=normalize, on_batch=on_batch)
    if device_out is not None:
        return _to_host(device_out)
    return host_out


def _to_host(vectors: Any) -> np.ndarray:
    """A device tensor as a NumPy array, through page-locked memory (a pageable copy ran at ~1.4 GB/s)."""
    import torch

    try:
        host = torch.empty(vectors.shape, dtype=vectors.dtype, pin_memory=True)
    except RuntimeError:  # no page-locked memory to be had: the plain copy
        return vectors.cpu().numpy()
    host.copy_(vectors)
    return host.numpy()
