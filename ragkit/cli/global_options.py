"""Options of ``ragkit`` itself, before the command: ``ragkit --quiet COMMAND ...``.

The progress policy (:mod:`ragkit.progress`): bars on a terminal, one line per phase every few
seconds otherwise, nothing with ``--quiet``; results on stdout are unchanged.
"""

from __future__ import annotations

from typing import Annotated

import typer


def global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress lines (results, "
                                        "warnings and errors still print).")] = False,
    progress_interval: Annotated[float, typer.Option("--progress-interval", min=0.0, help="Seconds between progress "
                                                     "lines when stderr is not a terminal (logs, CI).")] = 5.0,
    library_bars: Annotated[bool, typer.Option("--library-bars", help="Let transformers / Hugging Face show their "
                                               "own bars (off by default).")] = False,
) -> None:
    """RAG toolkit whose edge is chunking and selection. See `ragkit COMMAND --help`.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> from ragkit.progress import is_quiet
        >>> _ = CliRunner().invoke(app, ["--quiet", "components", "--kind", "chunker"])
        >>> is_quiet()
        True
        >>> _ = CliRunner().invoke(app, ["components", "--kind", "chunker"])
        >>> is_quiet()
        False
    """
    from ragkit.progress import configure

    configure(quiet=quiet, interval=progress_interval, third_party=library_bars)
