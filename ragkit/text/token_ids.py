"""Token ids that travel from the chunker to the embedder: a side channel, never part of a ``Chunk``.

A chunker that counts with the embedding model's tokenizer (the default: both are MiniLM's WordPiece)
has already tokenised every chunk to hold its cap. Inside :func:`using`, it hands those ids over with
:func:`record`, keyed by the tokenizer's :func:`tokenizer_fingerprint` and the chunk text; the embedder
looks each text up in the :func:`active` table and tokenises only what it does not find (or everything,
when its own tokenizer's fingerprint differs). Views that embed ``"<prefix> " + chunk.text``
(``prefix_fusion``) declare that join with :meth:`TokenIds.add_joined`, so only the prefix is tokenised.

The ids are never persisted, never part of a chunk's identity and never cached: a chunk read back
from the store, the journal or the chunk cache simply has none, and the embedder tokenises its text.
Ids are content ids without special tokens and untruncated; the embedder adds its own special
tokens and truncates to its model's window. The table lives in a context variable, so concurrent
index runs each see only their own.

Example:
    >>> import numpy as np
    >>> table = TokenIds()
    >>> with using(table):
    ...     record("fp1", "hello world", np.array([7592, 2088]))
    ...     table.add_joined("[Intent:Greet] hello world", "[Intent:Greet]", "hello world")
    ...     active() is table
    True
    >>> table.lookup("fp1", "hello world")
    (None, array([7592, 2088], dtype=int32))
    >>> table.lookup("fp1", "[Intent:Greet] hello world", joinable=True)[0]
    '[Intent:Greet]'
    >>> table.lookup("another tokenizer", "hello world") is None
    True
    >>> record("fp1", "not recorded", np.array([1]))  # outside ``using``: ignored
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

#: The parts of a ``tokenizer.json`` that decide a text's ids (truncation, padding and special-token
#: templates do not: the embedder applies its own).
FINGERPRINT_KEYS = ("normalizer", "pre_tokenizer", "model", "added_tokens")
#: Pipelines where ``ids(a + " " + b) == ids(a) + ids(b)`` (per-character normalisation, whitespace
#: always separates pre-tokens, per-word model).
_JOINABLE = {("BertNormalizer", "BertPreTokenizer", "WordPiece")}


def _spec(tokenizer: Any) -> dict[str, Any]:
    text = tokenizer if isinstance(tokenizer, str) else tokenizer.to_str()
    return json.loads(text)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides a ``tokenizers.Tokenizer``'s ids (or of its JSON string).

    Two tokenizers with the same fingerprint give the same ids for every text (special tokens aside).

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> tok = get_tokenizer("minilm")
        >>> tokenizer_fingerprint(tok._tok) == tok.fingerprint
        True
    """
    spec = _spec(tokenizer)
    kept = {key: spec.get(key) for key in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def joins_at_whitespace(tokenizer: Any) -> bool:
    """Whether ``ids(a + " " + b) == ids(a) + ids(b)`` for this tokenizer (BERT WordPiece: yes; BPE: no).

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> joins_at_whitespace(get_tokenizer("minilm")._tok)
        True
    """
    spec = _spec(tokenizer)
    kinds = tuple((spec.get(key) or {}).get("type") for key in ("normalizer", "pre_tokenizer", "model"))
    return kinds in _JOINABLE


class TokenIds:
    """Content token ids by tokenizer fingerprint and text, plus texts that join a prefix to a chunk text.

    Example:
        >>> t = TokenIds()
        >>> t.add("fp", "a b", [1037, 1038])
        >>> len(t), t.lookup("fp", "a b")[1].tolist()
        (1, [1037, 1038])
    """

    def __init__(self) -> None:
        self._by_fingerprint: dict[str, dict[str, np.ndarray]] = {}
        self._joined: dict[str, tuple[str, str]] = {}
        #: Texts answered from this table so far (how many tokenisations it saved).
        self.served = 0

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_fingerprint.values())

    def add(self, fingerprint: str, text: str, ids: Any) -> None:
        """Record the content ids (no special tokens, untruncated) of ``text`` under ``fingerprint``."""
        self._by_fingerprint.setdefault(fingerprint, {})[text] = np.asarray(ids, dtype=np.int32)

    def add_joined(self, text: str, head: str, tail: str) -> None:
        """Declare ``text == head + " " + tail`` (a prefixed view of a chunk text ``tail``)."""
        if len(text) != len(head) + 1 + len(tail) or not text.endswith(tail) or not text.startswith(head):
            raise ValueError(f"add_joined: {text[:40]!r}... is not head + ' ' + tail (head {head[:40]!r}, "
                             f"tail {tail[:40]!r}); pass the exact parts the text was built from")
        self._joined[text] = (head, tail)

    def lookup(self, fingerprint: str, text: str, *, joinable: bool = False) -> tuple[str | None, np.ndarray] | None:
        """``(None, ids)`` for a recorded text, ``(head, tail_ids)`` for a joined one (only when ``joinable``), else ``None``."""
        table = self._by_fingerprint.get(fingerprint)
        if not table:
            return None
        ids = table.get(text)
        if ids is not None:
            return None, ids
        if joinable:
            parts = self._joined.get(text)
            if parts is not None:
                ids = table.get(parts[1])
                if ids is not None:
                    return parts[0], ids
        return None

    def export(self) -> dict[str, dict[str, np.ndarray]]:
        """The recorded ids as plain dicts (what a chunking worker process sends back)."""
        return self._by_fingerprint

    def merge(self, exported: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Add what another table's :meth:`export` returned."""
        for fingerprint, entries in exported.items():
            self._by_fingerprint.setdefault(fingerprint, {}).update(entries)


_ACTIVE: ContextVar[TokenIds | None] = ContextVar("ragkit_token_ids", default=None)


@contextmanager
def using(table: TokenIds) -> Iterator[TokenIds]:
    """Make ``table`` the active one: chunkers record into it, embedders read from it."""
    token = _ACTIVE.set(table)
    try:
        yield table
    finally:
        _ACTIVE.reset(token)


def active() -> TokenIds | None:
    """The table of the enclosing :func:`using` block (``None`` outside one)."""
    return _ACTIVE.get()


def record(fingerprint: str | None, text: str, ids: Any) -> None:
    """Hand one chunk's content ids to the active table (no-op outside :func:`using` or without a fingerprint)."""
    table = _ACTIVE.get()
    if table is not None and fingerprint:
        table.add(fingerprint, text, ids)
