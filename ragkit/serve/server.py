"""Run the app with uvicorn: in the foreground (``ragkit serve``) or on a loopback port in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ragkit._lazy import require


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL (``port=0``: a free port) and stops it after.

    Example:
        >>> import httpx
        >>> from ragkit.serve import create_app
        >>> app = create_app({"backends": {"llm": {"default": {"type": "fake"}},
        ...                                "embeddings": {"default": {"type": "fake"}}},
        ...                   "index": {"store": ":memory:", "retriever": {"type": "bm25"}}})
        >>> with serve_in_thread(app) as url:
        ...     httpx.get(f"{url}/healthz").json()["status"]
        'ok'
    """
    uvicorn = require("uvicorn", "serve", "ragkit serve")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=bound_port, log_level="warning",
                                           backlog=2048, timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="ragkit-serve")
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{bound_port} within {timeout_s:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


def run(app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` in the foreground until interrupted (what ``ragkit serve`` does)."""
    uvicorn = require("uvicorn", "serve", "ragkit serve")
    uvicorn.run(app, host=host, port=port, log_level="info", backlog=2048)
