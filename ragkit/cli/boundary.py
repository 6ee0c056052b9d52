"""The CLI's one error boundary: ragkit errors become one ``error:`` line and an exit code.

Every command of every group runs inside :func:`boundary`, applied once, when the command is
registered on a :class:`CommandGroup`. A :class:`~ragkit.errors.RagkitError` becomes ``error: MESSAGE``
on stderr and the error's exit code (2 config, 3 missing dependency, 1 runtime); no traceback. ragkit's
own warnings print as one ``warning: MESSAGE`` line on stderr (:func:`show_warning`, installed by
:func:`ragkit.cli.main`). Results go to stdout.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ragkit.errors import RagkitError, RagkitWarning, redact

F = TypeVar("F", bound=Callable[..., Any])


def report(exc: RagkitError) -> int:
    """Print ``error: MESSAGE`` on stderr and return the exit code that ``exc`` asks for.

    Example:
        >>> from ragkit.errors import ConfigError, MissingDependencyError
        >>> report(ConfigError("index.chunker.max_tokens: must be > 0 (got 0)"))
        2
        >>> report(MissingDependencyError("faiss", "faiss"))
        3
    """
    typer.echo(f"error: {redact(str(exc))}", err=True)
    return exc.exit_code


def boundary(fn: F) -> F:
    """Run a command so that a ragkit error ends it with :func:`report` and ``typer.Exit(code)``.

    Example:
        >>> from ragkit.errors import StageError
        >>> @boundary
        ... def broken() -> None:
        ...     raise StageError("index.chunker", "intent", "the LLM timed out")
        >>> try:
        ...     broken()
        ... except typer.Exit as stop:
        ...     print(stop.exit_code)
        1
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagkitError as exc:
            raise typer.Exit(report(exc)) from None

    wrapper.__ragkit_boundary__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class CommandGroup(typer.Typer):
    """A Typer app whose every command runs inside :func:`boundary` (applied at registration).

    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.errors import ConfigError
        >>> demo = CommandGroup()
        >>> @demo.command("fail")
        ... def fail_command() -> None:
        ...     raise ConfigError("--format 'csv' is not supported; use table or jsonl")
        >>> result = CliRunner().invoke(demo, [])
        >>> result.exit_code, result.stderr
        (2, "error: --format 'csv' is not supported; use table or jsonl\\n")
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        """Typer's ``command`` decorator, registering the function wrapped in :func:`boundary`.

        As in Click, the help text is the docstring up to a ``\\f`` line: what follows (examples for
        the API documentation) stays out of ``--help`` and the command list.
        """

        def decorator(fn: F) -> F:
            options = dict(kwargs)
            if options.get("help") is None and fn.__doc__ and "\f" in fn.__doc__:
                options["help"] = inspect.cleandoc(fn.__doc__.partition("\f")[0])
            super(CommandGroup, self).command(*args, **options)(boundary(fn))
            return fn

        return decorator


_default_show_warning = warnings.showwarning


def show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """Ragkit's own warnings as one ``warning: ...`` line on stderr; others as Python prints them.

    Example:
        >>> import contextlib, io
        >>> err = io.StringIO()
        >>> with contextlib.redirect_stderr(err):
        ...     show_warning(RagkitWarning("x.txt: decoded as cp1252"), RagkitWarning, "f.py", 1)
        >>> err.getvalue()
        'warning: x.txt: decoded as cp1252\\n'
    """
    if issubclass(category, RagkitWarning):
        typer.echo(f"warning: {redact(str(message))}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)
