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
