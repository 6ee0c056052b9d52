"""``ragkit components``: every registered component with the extra it needs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ragkit.errors import ConfigError


def components_command(
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this kind (chunker, retriever, ...).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List every registered component with the extra it needs (imports nothing heavy).

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["components", "--kind", "selector"])
        >>> result.exit_code, "token_budget" in result.stdout, "recursive" in result.stdout
        (0, True, False)
        >>> "prefix_fusion" in CliRunner().invoke(app, ["components", "--kind", "view"]).stdout
        True
    """
    from ragkit._builtins import ALL_KINDS
    from ragkit.registry import default_registry

    if kind is not None and kind not in ALL_KINDS:
        raise ConfigError(f"--kind {kind!r} is not a component kind; kinds: {', '.join(ALL_KINDS)}")
    entries = list(default_registry().entries(kind, plugins=True))
    if format == "json":
        typer.echo(json.dumps([{"kind": e.kind, "name": e.name, "extra": e.extra, "description": e.description,
                                "import_path": e.import_path} for e in entries], indent=2))
        return
    typer.echo(f"{'kind':<11} {'name':<22} {'extra':<13} description")
    for e in entries:
        typer.echo(f"{e.kind:<11} {e.name:<22} {e.extra or '-':<13} {e.description}")
