"""``ragkit models``: list local models and prepare the packaged default.

Mounted by :mod:`ragkit.cli.application` as ``app.add_typer(models_app, name="models")``; its commands run
inside the CLI's error boundary (:class:`ragkit.cli.boundary.CommandGroup`).

Example:
    $ ragkit models list
    $ ragkit models prepare                      # the default: smollm2-135m-instruct
    $ ragkit models prepare smollm2-135m-instruct --force
    $ ragkit models prepare qwen2.5-coder-0.5b   # after pip install 'ragkit[qwen05]'
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ragkit.cli.boundary import CommandGroup

models_app = CommandGroup(
    help="Local models: list them, prepare the packaged default (find, convert, verify).",
    no_args_is_help=True,
)


@models_app.command("list")
def list_command(
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Packaged LLM aliases (prepared or not), other model folders under RAGKIT_HOME/models, embedding models.

    \f
    Example:
        >>> import json
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(models_app, ["list", "--format", "json"])
        >>> result.exit_code, json.loads(result.stdout)[0]["name"]
        (0, 'smollm2-135m-instruct')
    """
    from ragkit.embeddings.sentence_transformers import list_embedding_models
    from ragkit.llm.models import list_models
    from ragkit.paths import models_dir

    if format not in ("table", "json"):
        raise typer.BadParameter(f"got {format!r}; use table or json", param_hint="--format")
    rows = list_models() + list_embedding_models()
    if format == "json":
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    typer.echo(f"models directory: {models_dir()}")
    typer.echo(f"{'name':<24} {'kind':<9} {'status':<62} {'gguf':>8} {'size':>9}  {'licence':<11} path")
    for r in rows:
        size = f"{r.size_mb:.0f} MB" if r.size_mb is not None else "-"
        gguf = f"{r.gguf_mb:.0f} MB" if r.gguf_mb is not None else "-"
        typer.echo(f"{r.name:<24} {r.kind:<9} {r.status:<62} {gguf:>8} {size:>9}  {r.licence or '-':<11} "
                   f"{r.path or '-'}")


@models_app.command("prepare")
def prepare_command(
    name: Annotated[str, typer.Argument(help="Model alias to prepare.")] = "smollm2-135m-instruct",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when already prepared.")] = False,
) -> None:
    """Find the packaged model, convert it once into RAGKIT_HOME/models/NAME, verify it by reloading.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(models_app, ["prepare", "nope"])
        >>> result.exit_code, result.stderr
        (1, "error: backend models: unknown model alias 'nope'; aliases: smollm2-135m-instruct, qwen2.5-coder-0.5b\\n")
    """
    from ragkit.llm.models import is_prepared, prepare_model

    if is_prepared(name) and not force:
        from ragkit.llm.models import prepared_path

        typer.echo(f"{name}: already prepared at {prepared_path(name)}")
        return
    path = prepare_model(name, force=force)
    typer.echo(f"{name}: prepared at {path}")
