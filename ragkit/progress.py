"""One progress policy for every long phase (index: load/chunk/enrich/embed; answering; eval variants).

- on a terminal: a tqdm bar on stderr;
- otherwise (logs, CI, pipes): one line per phase every few seconds (``interval``, default 5 s), the
  first only once the phase has run that long, and a closing line when it printed any; short phases
  stay silent;
- ``ragkit --quiet COMMAND`` (:func:`configure` ``quiet=True``): nothing;
- third-party bars (transformers' "Loading weights", Hugging Face downloads) are off unless
  ``configure(third_party=True)``: :func:`silence_third_party` runs where ragkit loads those libraries.

Stage code asks for a bar with :func:`progress` (or :func:`track` over an iterable) and never decides
the policy itself.

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> configure(interval=0)
    >>> with progress(3, "chunking", "doc", stream=stream) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> configure(interval=5.0)
    >>> print(stream.getvalue().splitlines()[-1].split(" (")[0])
    chunking: 3/3 doc
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

_STATE: dict[str, Any] = {"quiet": False, "interval": 5.0, "third_party": False}


def configure(*, quiet: bool | None = None, interval: float | None = None, third_party: bool | None = None) -> None:
    """Set the process-wide progress policy.

    ``quiet`` silences every bar and line; ``interval`` is the seconds between lines when stderr is not
    a terminal; ``third_party`` lets libraries' own bars through.

    Example:
        >>> configure(quiet=True); is_quiet()
        True
        >>> configure(quiet=False); is_quiet()
        False
    """
    if quiet is not None:
        _STATE["quiet"] = bool(quiet)
    if interval is not None:
        if interval < 0:
            raise ValueError(f"progress interval {interval!r}: must be >= 0 seconds")
        _STATE["interval"] = float(interval)
    if third_party is not None:
        _STATE["third_party"] = bool(third_party)


def is_quiet() -> bool:
    """Whether ``--quiet`` (or ``configure(quiet=True)``) is in effect."""
    return bool(_STATE["quiet"])


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class _Silent:
    """A bar that shows nothing (quiet, disabled, or a single item)."""

    disable = True

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        del text

    def close(self) -> None:
        return None

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineProgress(_Silent):
    """Progress as plain lines (``desc: n/total unit (pct %) elapsed, ETA``) every ``interval`` seconds.

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> bar = LineProgress(4, "embedding", "text", stream, interval=0, clock=iter([0, 10, 20, 30]).__next__)
        >>> bar.update(2); bar.close()
        >>> print(stream.getvalue(), end="")
        embedding: 2/4 text (50 %) 0:10 elapsed, ETA 0:10
        embedding: 2/4 text (50 %) done in 0:20
    """

    disable = False

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO, interval: float,
                 clock: Any = time.monotonic) -> None:
        super().__init__(total)
        self.desc, self.unit, self.stream, self.interval, self.clock = desc, unit, stream, interval, clock
        self.started = clock()
        self.last_line: float | None = None
        self.postfix = ""

    def _line(self, now: float, done: bool = False) -> str:
        elapsed = now - self.started
        counted = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n // self.total} %)" if self.total else ""
        if done:
            tail = f"done in {_duration(elapsed)}"
        else:
            eta = (elapsed / self.n * (self.total - self.n)) if self.total and self.n else None
            tail = f"{_duration(elapsed)} elapsed" + (f", ETA {_duration(eta)}" if eta is not None else "")
        extra = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc}: {counted} {self.unit}{pct} {tail}{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        since = now - (self.last_line if self.last_line is not None else self.started)
        if since >= self.interval and (self.interval > 0 or self.last_line is None or self.n == self.total):
            self._emit(self._line(now))
            self.last_line = now

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _emit(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.last_line is not None:
            self._emit(self._line(self.clock(), done=True))
            self.last_line = None


def progress(total: int | None, desc: str, unit: str = "it", *, show: bool | None = None,
             stream: TextIO | None = None, leave: bool = False) -> Any:
    """A progress reporter for one phase, following the policy in the module docstring.

    Args:
        total: the number of items (``None``: unknown).
        desc: the phase, e.g. ``"chunking"``, ``"answering"``, ``"eval chroma-chunkers"``.
        unit: what is counted (``doc``, ``text``, ``question``, ``variant``).
        show: ``None`` reports when there is more than one item; ``False`` never; ``True`` always
            (``--quiet`` wins over all three).
        stream: where to write (default: stderr); a terminal gets a tqdm bar, anything else lines.
        leave: keep a terminal bar on screen when it closes.

    Example:
        >>> with progress(10, "answering", "question", show=False) as bar:
        ...     bar.disable
        True
    """
    if _STATE["quiet"] or show is False or (show is None and (total is not None and total < 2)):
        return _Silent(total)
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=leave)
    return LineProgress(total, desc, unit, stream, _STATE["interval"])


def track(items: Iterable[T], desc: str, unit: str = "it", *, total: int | None = None, show: bool | None = None,
          stream: TextIO | None = None) -> Iterator[T]:
    """Iterate ``items`` while reporting progress (:func:`progress` over ``len(items)`` when known).

    Example:
        >>> list(track([1, 2, 3], "demo", show=False))
        [1, 2, 3]
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(total, desc, unit, show=show, stream=stream) as bar:
        for item in items:
            yield item
            bar.update(1)


def silence_third_party() -> None:
    """Turn off libraries' own bars (transformers "Loading weights", Hugging Face hub downloads).

    Called where ragkit imports those libraries; does nothing after ``configure(third_party=True)``.
    Only libraries already imported are touched (this never imports one).

    Example:
        >>> silence_third_party()
    """
    if _STATE["third_party"]:
        return
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        except Exception:  # an old or partial transformers: keep its bars rather than fail
            pass
    if "huggingface_hub" in sys.modules:
        try:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        except Exception:
            pass
