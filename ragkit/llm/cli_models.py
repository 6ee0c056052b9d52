"""``ragkit models``: list local models and prepare the packaged default.

Mounted by ``ragkit/cli.py`` as ``app.add_typer(models_app, name="models")``.

Example:
    $ ragkit models list
    $ ragkit models prepare                      # the default: smollm2-135m-instruct
    $ ragkit models prepare smollm2-135m-instruct --force
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from ragkit.errors import RagkitError

models_app = typer.Typer(
    help="Local models: list them, prepare the packaged default (find, convert, verify).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagkitError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None

    return wrapper  # type: ignore[return-value]


@models_app.command("list")
@_errors
def list_command(
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Packaged model aliases (prepared or not) and other model folders under RAGKIT_HOME/models."""
    from ragkit.llm.models import list_models
    from ragkit.paths import models_dir

    rows = list_models()
    if format == "json":
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    typer.echo(f"models directory: {models_dir()}")
    typer.echo(f"{'name':<24} {'status':<52} {'size':>8}  path")
    for r in rows:
        size = f"{r.size_mb:.0f} MB" if r.size_mb is not None else "-"
        typer.echo(f"{r.name:<24} {r.status:<52} {size:>8}  {r.path or '-'}")


@models_app.command("prepare")
@_errors
def prepare_command(
    name: Annotated[str, typer.Argument(help="Model alias to prepare.")] = "smollm2-135m-instruct",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when already prepared.")] = False,
) -> None:
    """Find the packaged model, convert it once into RAGKIT_HOME/models/NAME, verify it by reloading."""
    from ragkit.llm.models import is_prepared, prepare_model

    if is_prepared(name) and not force:
        from ragkit.llm.models import prepared_path

        typer.echo(f"{name}: already prepared at {prepared_path(name)}")
        return
    path = prepare_model(name, force=force)
    typer.echo(f"{name}: prepared at {path}")
