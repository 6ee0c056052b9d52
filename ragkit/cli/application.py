"""The ``ragkit`` Typer app: every command group registered in ``ragkit --help`` order, and ``main``.

Logs, progress bars and errors go to stderr; results to stdout. Exit codes: 2 config error,
3 missing dependency, 1 runtime error (:mod:`ragkit.cli.boundary`).
"""

from __future__ import annotations

import sys
import warnings

from ragkit.cli.boundary import CommandGroup, report, show_warning
from ragkit.cli.chunk import chunk_command
from ragkit.cli.components import components_command
from ragkit.cli.corag import corag_app
from ragkit.cli.datasets import datasets_app
from ragkit.cli.eval import eval_command
from ragkit.cli.models import models_app
from ragkit.cli.pipeline_commands import index, query, run
from ragkit.cli.serve import serve_command
from ragkit.cli.tree import tree_command
from ragkit.cli.validate import validate_command
from ragkit.cli.viz import viz_command
from ragkit.errors import RagkitError

app = CommandGroup(
    name="ragkit",
    help="RAG toolkit whose edge is chunking and selection. See `ragkit COMMAND --help`.",
    no_args_is_help=True,
)
app.command("chunk")(chunk_command)
app.command("tree")(tree_command)
app.command("viz")(viz_command)
app.command("validate")(validate_command)
app.command("components")(components_command)
app.command("run")(run)
app.command("index")(index)
app.command("query")(query)
app.command("serve")(serve_command)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
app.command("eval")(eval_command)
app.add_typer(corag_app, name="corag")


def main() -> None:
    """Console-script entry point (``ragkit``): warnings as ``warning:`` lines, errors as exit codes.

    Example:
        >>> from unittest import mock
        >>> with mock.patch("sys.argv", ["ragkit", "validate", "no-such-config.yaml"]):
        ...     main()
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    warnings.showwarning = show_warning
    try:
        app()
    except RagkitError as exc:  # raised outside a command (e.g. while building the app)
        sys.exit(report(exc))
