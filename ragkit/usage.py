"""Usage accounting: backends record what they spend; the pipeline opens scopes per stage and per run.

Example:
    >>> from ragkit.usage import usage_scope, record_usage
    >>> with usage_scope() as run:
    ...     with usage_scope() as stage:
    ...         record_usage(llm_calls=1, prompt_tokens=10)
    >>> run.llm_calls, stage.prompt_tokens
    (1, 10)
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ragkit.types import Usage

_ACTIVE: contextvars.ContextVar[tuple[Usage, ...]] = contextvars.ContextVar("ragkit_usage", default=())
_LOCK = threading.Lock()


@contextmanager
def usage_scope(timed: bool = True) -> Iterator[Usage]:
    """Collect every :func:`record_usage` made inside the block (nested scopes all receive it)."""
    usage = Usage()
    token = _ACTIVE.set((*_ACTIVE.get(), usage))
    start = time.perf_counter()
    try:
        yield usage
    finally:
        if timed:
            usage.wall_time_s += time.perf_counter() - start
        _ACTIVE.reset(token)


def active_scopes() -> tuple[Usage, ...]:
    """The scopes open in this context (pass them to worker threads with :func:`record_into`)."""
    return _ACTIVE.get()


def record_usage(scopes: tuple[Usage, ...] | None = None, **amounts: float) -> None:
    """Add ``amounts`` (Usage field names) to every open scope (thread-safe)."""
    targets = _ACTIVE.get() if scopes is None else scopes
    with _LOCK:
        for usage in targets:
            for name, value in amounts.items():
                setattr(usage, name, getattr(usage, name) + value)


class UsageBook:
    """Usage per slot (``"index.chunker"``, ``"query.selector"``, ...), optionally mirrored into a parent book.

    Example:
        >>> run, total = UsageBook(), UsageBook()
        >>> run.parent = total
        >>> with run.timed("query.aggregator"):
        ...     record_usage(llm_calls=1)
        >>> run.slots["query.aggregator"].llm_calls, total.total().llm_calls
        (1, 1)
    """

    def __init__(self, parent: UsageBook | None = None) -> None:
        self.slots: dict[str, Usage] = {}
        self.parent = parent

    def add(self, slot: str, usage: Usage) -> None:
        self.slots[slot] = self.slots.get(slot, Usage()) + usage
        if self.parent is not None:
            self.parent.add(slot, usage)

    @contextmanager
    def timed(self, slot: str) -> Iterator[Usage]:
        """Collect the usage recorded inside the block under ``slot`` (wall time included)."""
        scope = usage_scope()
        usage = scope.__enter__()
        try:
            yield usage
        finally:
            scope.__exit__(None, None, None)
            self.add(slot, usage)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.slots.values():
            total = total + usage
        return total
