"""``ragkit serve`` over real HTTP on loopback (uvicorn in a thread, httpx): every endpoint, 422 paths,
one writer while readers keep the committed index, and 200 concurrent queries on a stored MiniLM index."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from _shared_data import CHROMA  # noqa: E402

from ragkit import Pipeline  # noqa: E402
from ragkit.chunkers.sentence import SentenceChunker  # noqa: E402
from ragkit.integrations import as_document, build_chunker  # noqa: E402
from ragkit.registry import Registry  # noqa: E402
from ragkit.serve import create_app, serve_in_thread  # noqa: E402
from ragkit.types import Document  # noqa: E402

FAKES = {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}
DOCS_A = ["Paris is the capital of France. The Seine flows through Paris.",
          "Rome is the capital of Italy. The Tiber flows through Rome."]
DOCS_B = ["Berlin is the capital of Germany. The Spree flows through Berlin."]


def _text(name: str) -> str:
    path = CHROMA / f"{name}.md"
    if not path.is_file():
        pytest.skip(f"real corpus {path} absent (set RAGKIT_DATA)")
    return path.read_text(encoding="utf-8")


def _config(tmp_path: Path, chunker: str = "sentence") -> dict:
    return {"backends": FAKES, "index": {"chunker": {"type": chunker, "max_tokens": 12}, "retriever": {"type": "hybrid"},
                                         "store": str(tmp_path / "store")},
            "query": {"retrieve": {"k": 4}, "selector": {"type": "top_k", "k": 2}}}


def test_endpoints_over_http(tmp_path: Path) -> None:
    with serve_in_thread(create_app(_config(tmp_path))) as url, httpx.Client(base_url=url, timeout=60) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["index_version"] == 0 and not health["indexing"]
        no_index = client.post("/query", json={"question": "Capital of Italy?"})
        assert no_index.status_code == 409 and "POST /index" in no_index.json()["detail"]

        indexed = client.post("/index", json={"documents": [{"text": t, "id": f"d{i}", "metadata": {"n": i}}
                                                            for i, t in enumerate(DOCS_A)]})
        assert indexed.status_code == 200, indexed.text
        assert indexed.json()["documents"] == 2 and indexed.json()["index_version"] == 1
        chunker = build_chunker("sentence", {"max_tokens": 12})
        expected_chunks = sum(len(chunker.chunk(Document.from_text(t))) for t in DOCS_A)
        assert client.get("/healthz").json()["chunks"] == indexed.json()["chunks"] == expected_chunks > 2

        body = client.post("/query", json={"question": "Which river flows through Rome?"}).json()
        assert body["index_version"] == 1 and body["answer"]
        assert body["chunks"] and body["chunks"][0]["text"].startswith(("The Tiber", "Rome"))
        for c in body["chunks"]:
            source = next(t for t in DOCS_A if Document.from_text(t).id == c["doc_id"])
            assert source[c["start"]:c["end"]] == c["text"]
        assert body["usage"]["llm_calls"] >= 1 and [s["slot"] for s in body["trace"]["stages"]] == [
            "query.retrieve", "query.selector", "query.aggregator"]
        filtered = client.post("/query", json={"question": "capital", "k": 10, "filter": {"n": 0}}).json()
        assert {c["metadata"]["source_id"] for c in filtered["chunks"]} == {"d0"}

        text = _text("wikitexts")[:20_000]
        chunked = client.post("/chunk", json={"text": text, "chunker": "recursive", "params": {"max_tokens": 128}})
        assert chunked.status_code == 200, chunked.text
        expected = build_chunker("recursive", {"max_tokens": 128}).chunk(as_document(text))
        got = chunked.json()["chunks"]
        assert [(c["id"], c["start"], c["end"], c["text"], c["token_count"]) for c in got] == [
            (c.id, c.start, c.end, c.text, c.token_count) for c in expected]
        assert [c["metadata"]["heading_path"] for c in got] == [list(c.metadata["heading_path"]) for c in expected]
        assert chunked.json()["chunker"]["max_tokens"] == 128

        kinds = {row["kind"] for row in client.get("/components").json()}
        assert {"chunker", "selector", "aggregator"} <= kinds
        assert {r["name"] for r in client.get("/components", params={"kind": "selector"}).json()} >= {"top_k", "meteora"}
        assert client.get("/docs").status_code == 200
        assert {"/query", "/chunk", "/index", "/healthz", "/components"} <= set(client.get("/openapi.json").json()["paths"])


@pytest.mark.parametrize(("path", "payload", "dotted"), [
    ("/query", {}, "body.question"),
    ("/query", {"question": "x", "k": 0}, "body.k"),
    ("/query", {"question": "x", "surprise": 1}, "body.surprise"),
    ("/query", {"question": "x", "filter": {"n": {"near": 3}}}, "body.filter"),
    ("/chunk", {"text": "abc", "chunker": "recursive", "params": {"max_tokens": -1}}, "body.chunker.max_tokens"),
    ("/chunk", {"text": "abc", "chunker": "no_such_chunker"}, "body.chunker.type"),
    ("/chunk", {"text": ""}, "body.text"),
    ("/index", {"documents": [{"metadata": {}}]}, "body.documents.0.text"),
    ("/components?kind=nope", None, "kind"),
])
def test_invalid_requests_are_422_with_the_dotted_path(tmp_path: Path, path: str, payload, dotted: str) -> None:
    app = create_app(_config(tmp_path))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.post("/index", json={"documents": [{"text": t} for t in DOCS_A]})
        response = client.get(path) if payload is None else client.post(path, json=payload)
        assert response.status_code == 422, response.text
        paths = [d["path"] for d in response.json()["detail"]]
        assert any(p == dotted or p.startswith(dotted + ".") for p in paths), paths


class _GatedChunker(SentenceChunker):
    """A sentence chunker that waits for ``GATE`` (holds a writer mid-index for the test)."""

    GATE = threading.Event()

    def _chunk(self, doc):
        assert self.GATE.wait(60), "the test never opened the gate"
        return super()._chunk(doc)


def test_one_writer_and_readers_keep_the_committed_index(tmp_path: Path) -> None:
    registry = Registry()
    registry.add("chunker", "gated", _GatedChunker)
    pipe = Pipeline.from_config(_config(tmp_path, chunker="gated"), registry=registry)
    _GatedChunker.GATE.set()
    with serve_in_thread(create_app(pipe)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/index", json={"documents": [{"text": t} for t in DOCS_A]}).status_code == 200
        ids_a = {Document.from_text(t).id for t in DOCS_A}
        _GatedChunker.GATE.clear()
        writer_result: dict = {}
        writer = threading.Thread(target=lambda: writer_result.update(
            r=client.post("/index", json={"documents": [{"text": t} for t in DOCS_B]})))
        writer.start()
        deadline = time.monotonic() + 30
        while not client.get("/healthz").json()["indexing"]:
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.02)
        second = client.post("/index", json={"documents": [{"text": "Another writer."}]})
        assert second.status_code == 409 and "one writer at a time" in second.json()["detail"]
        for _ in range(10):  # readers during the write: the committed version, whole
            body = client.post("/query", json={"question": "capital river"}).json()
            assert body["index_version"] == 1 and {c["doc_id"] for c in body["chunks"]} <= ids_a
        _GatedChunker.GATE.set()
        writer.join(60)
        assert writer_result["r"].status_code == 200 and writer_result["r"].json()["index_version"] == 2
        body = client.post("/query", json={"question": "Which river flows through Berlin?"}).json()
        assert body["index_version"] == 2 and {c["doc_id"] for c in body["chunks"]} == {Document.from_text(DOCS_B[0]).id}


@pytest.mark.slow
def test_200_concurrent_queries_on_a_stored_minilm_index(tmp_path: Path) -> None:
    text = _text("state_of_the_union")[:30_000]
    config = {"backends": {"llm": {"default": {"type": "fake"}},
                           "embeddings": {"default": {"type": "sentence_transformers", "model": "minilm"}}},
              "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "hybrid"},
                        "store": str(tmp_path / "store")},
              "query": {"retrieve": {"k": 10}, "selector": {"type": "top_k", "k": 3}}}
    Pipeline.from_config(config).index_documents([Document.from_text(text)])  # the stored index
    questions = [f"What did the president say about topic {i}: {w}?" for i, w in
                 enumerate(["jobs", "Ukraine", "inflation", "health care", "taxes"] * 40)]

    async def fire(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            return await asyncio.wait_for(asyncio.gather(
                *(client.post("/query", json={"question": q}) for q in questions)), timeout=240)

    with serve_in_thread(create_app(config, concurrency=4)) as url:
        assert httpx.get(f"{url}/healthz").json()["index_version"] == 1  # opened at start-up, no re-index
        responses = asyncio.run(fire(url))
    failures = [r.text[:200] for r in responses if r.status_code != 200]
    assert not failures, f"{len(failures)} of 200 failed: {failures[:3]}"
    reference = Pipeline.from_config(config)
    for question, response in list(zip(questions, responses))[:5]:
        body = response.json()
        assert len(body["chunks"]) == 3
        assert [c["id"] for c in body["chunks"]] == [s.chunk.id for s in reference.select(question)]
        assert all(text[c["start"]:c["end"]] == c["text"] for c in body["chunks"])
