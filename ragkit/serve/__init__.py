"""``ragkit serve``: one pipeline configuration behind HTTP (FastAPI + uvicorn, ``pip install 'ragkit[serve]'``).

``create_app(config)`` builds the application (models load and the stored index opens once, there);
``serve_in_thread(app)`` runs it on a loopback port for tests and benchmarks; ``ragkit serve CONFIG``
runs it in the foreground. Endpoints: ``POST /query``, ``POST /chunk``, ``POST /index``,
``GET /healthz``, ``GET /components``, OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve_in_thread"]


def create_app(config: Any, **kwargs: Any) -> Any:
    """Build the FastAPI app for ``config`` (see :func:`ragkit.serve.app.create_app`)."""
    from ragkit.serve.app import create_app as build

    return build(config, **kwargs)


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Any:
    """Run ``app`` with uvicorn in a background thread (see :func:`ragkit.serve.server.serve_in_thread`)."""
    from ragkit.serve.server import serve_in_thread as run

    return run(app, host, port)
