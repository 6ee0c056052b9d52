"""Secrets (issue 13.10): keys are redacted in every echo, sent only where configured, and messages name
the endpoint (and proxy) the client really uses."""

from __future__ import annotations

from pathlib import Path

from test_openai_responses import GOOD, server  # noqa: F401 - the loopback server fixture
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.llm.base import GenerationRequest
from ragkit.llm.openai_backend import NO_KEY, OpenAIConnection, OpenAILLM

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-live-SECRET0123456789"


def connection(base_url=None, api_key_env=None) -> OpenAIConnection:
    return OpenAIConnection("openai", base_url=base_url, api_key_env=api_key_env, timeout=1.0, max_retries=0)


def test_validate_never_echoes_an_api_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\nbackends:\n  llm:\n    default: {{type: openai, api_key: {SECRET}}}\n")
    for extra in ([], ["--set", f"backends.llm.default.api_key={SECRET}"], ["--set", f"backends.llm.default.api_key=[{SECRET}"]):
        result = CliRunner().invoke(app, ["validate", str(config), *extra])
        assert result.exit_code == 2 and "api_key" in result.stderr
        assert "SECRET" not in result.stderr + result.stdout


def test_openai_api_key_goes_to_openai_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert connection().api_key() == SECRET and connection().official()
    assert connection("http://127.0.0.1:8765/v1").api_key() == NO_KEY  # never forwarded implicitly
    assert connection("http://127.0.0.1:8765/v1", "OPENAI_API_KEY").api_key() == SECRET  # named explicitly: sent
    monkeypatch.setenv("OPENAI_BASE_URL", "https://llm.example.net/v1")  # the client would send there
    assert connection().endpoint == "https://llm.example.net/v1" and connection().api_key() == NO_KEY
    assert connection().base_label.startswith("https://llm.example.net/v1")


def test_messages_name_the_proxy_the_client_uses(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.setenv("http_proxy", "http://user:pw@proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    label = connection("http://llm.example.net/v1").base_label
    assert "through the proxy http://***@proxy.internal:3128" in label and "pw" not in label


def test_the_shipped_openai_compatible_config_forwards_no_key():
    from ragkit.config.load import load_config

    config = load_config(ROOT / "configs" / "openai-compatible.yaml")
    spec = config["backends"]["llm"]["default"]
    assert spec["base_url"].startswith("http://127.0.0.1") and spec.get("api_key_env") is None


def test_a_loopback_server_never_receives_openai_api_key(server, monkeypatch):  # noqa: F811
    base_url, script = server
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    seen: list[str] = []
    script.replies = [GOOD]
    llm = OpenAILLM(base_url=base_url, model="m", max_retries=0, output_logprobs=False)
    import http.server

    handler_get = http.server.BaseHTTPRequestHandler.parse_request

    def parse(self):
        ok = handler_get(self)
        seen.append(self.headers.get("authorization", ""))
        return ok

    monkeypatch.setattr(http.server.BaseHTTPRequestHandler, "parse_request", parse)
    assert llm.generate([GenerationRequest.chat("hi", max_tokens=8)])[0].text == "Paris."
    assert seen and all(SECRET not in header for header in seen)
