"""``ragkit validate CONFIG...``: every problem of every config, not only the first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragkit.errors import RagkitError


def validate_command(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override KEY=VALUE (dotted key).")] = None,
) -> None:
    """Check config files; report every problem (dotted path, value, line), not only the first.

    \f
    Exits with the worst problem's code (2 for config errors) after checking every file.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "c.yaml"
        ...     _ = path.write_text("version: 1\\nindex:\\n  chunker: {type: token, max_tokens: 64}\\n")
        ...     ok = CliRunner().invoke(app, ["validate", str(path)])
        ...     bad = CliRunner().invoke(app, ["validate", str(path), "--set", "index.chunker.max_tokens=0"])
        >>> ok.exit_code, ok.stdout.startswith("ok: ")
        (0, True)
        >>> bad.exit_code, "index.chunker.max_tokens" in bad.stderr
        (2, True)
    """
    from ragkit.config.load import load_config

    worst = 0
    for path in configs:
        try:
            load_config(path, set_ or [])
        except RagkitError as exc:
            typer.echo(str(exc), err=True)
            worst = max(worst, exc.exit_code)
        else:
            typer.echo(f"ok: {path}")
    if worst:
        raise typer.Exit(worst)
