"""Start and stop llama.cpp's OpenAI-compatible server (``llama_cpp.server``) on loopback.

Used by the test suite (the ``openai`` backend and embedder are tested against this real server)
and by users who want a local OpenAI-compatible endpoint for ``configs/openai-compatible.yaml``.
Needs ``llama-cpp-python[server]``: run ``scripts/build_llama_cpp.sh`` (builds it with flags that
avoid the AMX SIGILL on some VMs, see OFFLINE.md) or ``pip install 'ragkit[llama]'``.

One model instance serves either chat or embeddings, so embeddings get their own instance
(``embedding=True``, mean pooling forced with a GGUF key override because SmolLM2 declares none).
llama.cpp's server handles one request at a time per process; ``workers > 1`` runs several server
processes on one port (one SO_REUSEPORT socket each), so concurrent requests really run in parallel.

Command line (serves the packaged SmolLM2 GGUF by default)::

    python -m ragkit.llm.llama_server --port 8765                 # chat/completions
    python -m ragkit.llm.llama_server --port 8766 --embedding     # embeddings

Example:
    >>> server = LlamaServer(port=8765)                             # doctest: +SKIP
    >>> server.start().base_url                                     # doctest: +SKIP
    'http://127.0.0.1:8765/v1'
    >>> server.stop()                                               # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ragkit.errors import BackendError, MissingDependencyError

SERVED_NAME = "smollm2-135m-instruct"
BUILD_HINT = ("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh (it builds the wheel "
              "once with CPU flags that avoid the AMX 'Illegal instruction' crash and caches it in "
              "RAGKIT_HOME/wheels)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_llama_server() -> None:
    """Raise :class:`MissingDependencyError` with the build instructions when the server is missing."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        raise MissingDependencyError("llama-cpp-python", "llama", BUILD_HINT)
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "llama", BUILD_HINT)


class LlamaServer:
    """One llama.cpp OpenAI-compatible server process (or ``workers`` processes on one port).

    Example:
        >>> s = LlamaServer(port=8765, embedding=False, workers=1)
        >>> s.base_url
        'http://127.0.0.1:8765/v1'
    """

    def __init__(self, *, model_path: str | Path | None = None, port: int | None = None, embedding: bool = False,
                 workers: int = 1, n_threads: int = 1, n_ctx: int = 2048, model_alias: str = SERVED_NAME,
                 log_path: str | Path | None = None) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.port = port or free_port()
        self.embedding = embedding
        self.workers = workers
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.model_alias = model_alias
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._config: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _config_file(self) -> Path:
        from ragkit.llm.models import gguf_path

        model = self.model_path or gguf_path()
        settings: dict[str, Any] = {
            "model": str(model), "model_alias": self.model_alias, "n_ctx": self.n_ctx,
            "n_threads": self.n_threads, "n_threads_batch": self.n_threads, "verbose": False,
            "embedding": self.embedding,
        }
        if self.embedding:
            settings["kv_overrides"] = ["llama.pooling_type=int:1"]  # mean pooling: one vector per input
        config = {"host": "127.0.0.1", "port": self.port, "models": [settings]}
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ragkit-llama-", delete=False)
        with handle:
            json.dump(config, handle)
        return Path(handle.name)

    def start(self, timeout_s: float = 300.0) -> LlamaServer:
        """Start the process(es) and wait until ``/v1/models`` answers (raises with the log tail if not)."""
        require_llama_server()
        if self.process is not None and self.process.poll() is None:
            return self
        self._config = self._config_file()
        env = dict(os.environ, CONFIG_FILE=str(self._config))
        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="ragkit-llama-", suffix=".log")[1])
        log = self.log_path.open("wb")
        _STARTED.append(self)
        try:
            if self.workers > 1:
                self._start_workers(env, log)
            else:
                command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(self._config)]
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                start_new_session=True)
        except BaseException:
            self.stop()
            raise
        finally:
            log.close()
        self._wait_ready(timeout_s)
        return self

    def _start_workers(self, env: dict[str, str], log: Any) -> None:
        """``workers`` independent server processes, each with its own SO_REUSEPORT socket on the port.

        The kernel spreads new connections over the sockets, so concurrent requests reach different
        processes (uvicorn's own ``--workers`` share one socket, and one busy process can accept them all).
        """
        for index in range(self.workers):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            command = [sys.executable, "-m", "uvicorn", "--factory", "llama_cpp.server.app:create_app",
                       "--fd", str(sock.fileno()), "--log-level", "warning"]
            group: dict[str, Any] = ({"process_group": 0} if index == 0
                                     else {"process_group": self.process.pid})  # type: ignore[union-attr]
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     pass_fds=(sock.fileno(),), **group)
            sock.close()
            if index == 0:
                self.process = child
            self._children.append(child)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BackendError("llama_server", f"the llama.cpp server exited with code {self.process.returncode} "
                                                   f"before becoming ready; log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise BackendError("llama_server", f"the llama.cpp server on port {self.port} was not ready after "
                                           f"{timeout_s:.0f} s; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (its whole process group: every worker process included)."""
        process, self.process = self.process, None
        children, self._children = self._children, []
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for child in children or [process]:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(timeout=10)
        if self._config is not None:
            self._config.unlink(missing_ok=True)
            self._config = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_SHARED: dict[str, LlamaServer] = {}
_STARTED: list[LlamaServer] = []  # every server started in this process, stopped at exit
_SHARED_LOCK = threading.Lock()


def shared_server(kind: str) -> LlamaServer:
    """A process-wide loopback server: ``"chat"`` (2 workers) or ``"embedding"``, started on first use.

    ``RAGKIT_LLAMA_CHAT_PORT`` / ``RAGKIT_LLAMA_EMBED_PORT`` point at servers started beforehand
    (e.g. by CI's set-up step) instead. Servers started here stop at interpreter exit or :func:`stop_shared`.
    """
    if kind not in ("chat", "embedding"):
        raise ValueError(f"kind must be 'chat' or 'embedding', got {kind!r}")
    with _SHARED_LOCK:
        if kind not in _SHARED:
            preset = os.environ.get("RAGKIT_LLAMA_CHAT_PORT" if kind == "chat" else "RAGKIT_LLAMA_EMBED_PORT")
            if preset:
                server = LlamaServer(port=int(preset), embedding=kind == "embedding")
                server._wait_ready(60.0)
            else:
                server = LlamaServer(embedding=kind == "embedding", workers=2 if kind == "chat" else 1).start()
            _SHARED[kind] = server
        return _SHARED[kind]


def stop_shared() -> None:
    """Stop the shared servers (and any other server this process started and did not stop)."""
    with _SHARED_LOCK:
        for server in [*_SHARED.values(), *_STARTED]:
            server.stop()
        _SHARED.clear()
        _STARTED.clear()


atexit.register(stop_shared)


def main(argv: list[str] | None = None) -> None:
    """``python -m ragkit.llm.llama_server``: serve a GGUF model on loopback (for tests and benchmarks)."""
    parser = argparse.ArgumentParser(description="Serve a GGUF model with llama.cpp's OpenAI-compatible server.")
    parser.add_argument("--model", help="GGUF file (default: the packaged SmolLM2-135M-Instruct)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--embedding", action="store_true", help="serve /v1/embeddings instead of chat")
    parser.add_argument("--workers", type=int, default=1, help="server processes on the port (parallel requests)")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args(argv)
    server = LlamaServer(model_path=args.model, port=args.port, embedding=args.embedding, workers=args.workers,
                         n_threads=args.threads, n_ctx=args.n_ctx)
    server.start()
    print(f"serving {server.model_alias} at {server.base_url} (log: {server.log_path}); Ctrl-C to stop",
          file=sys.stderr)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
