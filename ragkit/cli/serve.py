"""``ragkit serve CONFIG``: the pipeline of a config behind HTTP (FastAPI + uvicorn, ``ragkit[serve]``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ragkit.cli.pipeline_commands import AllowHostOpt, ConfigArg, DataRootOpt, SafeOpt, SetOpt, safety
from ragkit.errors import ConfigError


def serve_command(
    config: ConfigArg,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Queries run at the same time; others wait.")] = 4,
    set_: SetOpt = None,
    data_root: DataRootOpt = None,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Serve a config over HTTP: POST /query, /chunk, /index; GET /healthz, /components; docs at /docs.

    Models load and the stored index (`ragkit index CONFIG`) opens once, at start-up; without a stored
    index, POST /index first. Logs go to stderr. Needs the `serve` extra.
    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["serve", "no-such-config.yaml"])
        >>> result.exit_code, result.stderr.startswith("error: ")
        (2, True)
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; use 1-65535 (0: any free port)")
    if concurrency < 1:
        raise ConfigError(f"--concurrency {concurrency} must be at least 1")
    from ragkit.serve.app import create_app
    from ragkit.serve.server import run

    with safety(safe, allow_host, config):  # the config, and POST /chunk's chunker specs, under safe mode
        app = create_app(config, overrides=set_ or [], concurrency=concurrency, data_root=data_root)
        typer.echo(f"ragkit serve: {config} on http://{host}:{port} (docs: http://{host}:{port}/docs)", err=True)
        run(app, host=host, port=port)
