"""Invalid 200 responses from an OpenAI-compatible server (issue 13.12), against a real loopback HTTP server.

Non-JSON bodies, missing or empty ``choices``, ``null`` content and answers far longer than
``max_tokens`` are retried (bounded), then reported with a BackendError naming the server; they are
never returned and never cached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragkit.errors import BackendError
from ragkit.llm.base import GenerationRequest
from ragkit.llm.cached import CachedLLM
from ragkit.llm.openai_backend import OpenAILLM


def completion(content: object) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


FAULTS: dict[str, tuple[str, bytes]] = {
    "not_json": ("text/html", b"<html>502 from a proxy, with status 200</html>"),
    "json_not_completion": ("application/json", b'"hello"'),
    "no_choices": ("application/json", json.dumps({"id": "x", "object": "chat.completion"}).encode()),
    "empty_choices": ("application/json", json.dumps({**completion("x"), "choices": []}).encode()),
    "null_content": ("application/json", json.dumps(completion(None)).encode()),
    "huge_answer": ("application/json", json.dumps(completion("a" * 5_000_000)).encode()),
    "truncated_json": ("application/json", json.dumps(completion("Paris.")).encode()[:40]),
    "empty_body": ("application/json", b""),
}
GOOD = ("application/json", json.dumps(completion("Paris.")).encode())


class Script:
    """What the loopback server answers, request by request (the last entry repeats)."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, bytes]] = [GOOD]
        self.requests = 0


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("content-length", 0)))
            reply = script.replies[min(script.requests, len(script.replies) - 1)]
            script.requests += 1
            self.send_response(200)
            self.send_header("content-type", reply[0])
            self.send_header("content-length", str(len(reply[1])))
            self.end_headers()
            self.wfile.write(reply[1])

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def backend(base_url: str, max_retries: int = 2) -> OpenAILLM:
    return OpenAILLM(base_url=base_url, model="m", api_key_env=None, max_retries=max_retries, backoff_s=0.0,
                     timeout=10, output_logprobs=False)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_invalid_answer_is_retried_then_accepted_when_valid(server, fault):
    base_url, script = server
    script.replies = [FAULTS[fault], GOOD]
    out = backend(base_url).generate([GenerationRequest.chat("Capital of France?", max_tokens=256)])
    assert out[0].text == "Paris." and script.requests == 2


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_server_that_keeps_answering_garbage_gets_a_clear_error_and_nothing_is_cached(server, fault):
    base_url, script = server
    script.replies = [FAULTS[fault]]
    cached = CachedLLM(inner=backend(base_url, max_retries=2), mode="read_write")
    request = GenerationRequest.chat("Capital of France?", max_tokens=256)
    with pytest.raises(BackendError, match=rf"server at {base_url}.*3 attempts") as info:
        cached.generate([request])
    assert "Traceback" not in str(info.value) and script.requests == 3
    script.replies, script.requests = [GOOD], 0
    assert cached.generate([request])[0].text == "Paris." and script.requests == 1  # the failure was not cached
