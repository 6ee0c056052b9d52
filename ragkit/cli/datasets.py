"""``ragkit datasets``: list the built-in evaluation benchmarks and download them from their pinned upstream.

Mounted by :mod:`ragkit.cli.application` as ``app.add_typer(datasets_app, name="datasets")``; its commands
run inside the CLI's error boundary (:class:`ragkit.cli.boundary.CommandGroup`).

Example:
    $ ragkit datasets list
    $ ragkit datasets download chroma_chunking_eval            # into RAGKIT_HOME/datasets
    $ ragkit datasets download all --root data --mirror https://mirror.example.org/github-raw
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ragkit.cli.boundary import CommandGroup

datasets_app = CommandGroup(
    help="Evaluation datasets: list them, download them from their pinned upstream (resumable, checked).",
    no_args_is_help=True,
)


@datasets_app.command("list")
def list_command(
    root: Annotated[Path | None, typer.Option(
        "--root", help="Data root to check for presence (default: the data-root precedence, else RAGKIT_HOME/datasets).")] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Built-in datasets: name, download size, licence, upstream repository@commit, present under the root.

    \f
    Example:
        >>> import json, tempfile
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(datasets_app, ["list", "--root", tempfile.mkdtemp(), "--format", "json"])
        >>> result.exit_code, json.loads(result.stdout)[0]["name"], json.loads(result.stdout)[0]["present"]
        (0, 'chroma_chunking_eval', False)
    """
    from ragkit.datasets import DATASETS, SOURCES, is_present
    from ragkit.datasets.root import default_data_root, resolve_data_root
    from ragkit.errors import DatasetError

    if root is None:
        try:
            root = resolve_data_root()
        except DatasetError:
            root = default_data_root()
    rows = [{"name": name, "size": src.size, "questions": src.questions, "license": src.license,
             "upstream": src.upstream, "present": is_present(name, root), "description": DATASETS[name].description}
            for name, src in SOURCES.items()]
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"data root: {root}")
    typer.echo(f"{'name':<22} {'size':>7}  {'present':<7}  {'upstream':<45} licence")
    for r in rows:
        typer.echo(f"{r['name']:<22} {r['size']:>7}  {'yes' if r['present'] else 'no':<7}  "
                   f"{r['upstream']:<45} {r['license']}")


@datasets_app.command("download")
def download_command(
    name: Annotated[str, typer.Argument(help="Dataset name (see `ragkit datasets list`) or 'all'.")],
    root: Annotated[Path | None, typer.Option(
        "--root", help="Folder to download into (default RAGKIT_HOME/datasets).")] = None,
    mirror: Annotated[str | None, typer.Option(
        "--mirror", help="Base URL replacing https://raw.githubusercontent.com (else $RAGKIT_DATASETS_MIRROR).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even when present.")] = False,
) -> None:
    """Fetch the dataset's pinned upstream files (sha256-checked, resumable, atomic) into ROOT/NAME.

    \f
    Example:
        >>> import tempfile
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(datasets_app, ["download", "nope", "--root", tempfile.mkdtemp()])
        >>> result.exit_code, "downloadable: chroma_chunking_eval" in result.stderr
        (1, True)
    """
    from ragkit.datasets import SOURCES, download

    names = list(SOURCES) if name == "all" else [name]
    for each in names:
        folder = download(each, root, mirror=mirror, force=force)
        typer.echo(f"{each}: {folder}")
