"""Reliability under hostile input, kills and races (issue 13). Loopback only, bounded (< 5 min on 2 cores).

Reports: configs fuzzed through ``ragkit validate`` and how many ended in a traceback (goal 0);
``kill -9`` trials during commits with torn reads and leftovers after the next open (goal 0);
reader/writer races (opens while another process commits; goal 0 failures); LLM fault modes of an
OpenAI-compatible loopback server with answers that were lost or silently empty (goal 0).

    nice -n 10 python benchmarks/reliability.py [--configs 320] [--kills 20] [--opens 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r'''
import sys, time
from ragkit.retrievers.bm25 import BM25Retriever
from ragkit.store.store import IndexStore
from ragkit.types import Chunk, Document, sha256_hex
path, seconds = sys.argv[1], float(sys.argv[2])
config = {"index": "reliability"}
end, i = time.time() + seconds, 0
print("ready", flush=True)
while time.time() < end:
    docs = [Document.from_text(f"document {j} round {i} words w{j % 7}") for j in range(300)]
    r = BM25Retriever().index([Chunk.from_span(d, 0, len(d.text), 5) for d in docs])
    IndexStore(path).commit(r, [{"id": d.id, "fingerprint": d.id, "chunks": 1} for d in docs], config,
                            sha256_hex(config)[:16])
    i += 1
print(i, flush=True)
'''


def fuzz_configs(n: int, rng: random.Random) -> tuple[int, int, list[str]]:
    from typer.testing import CliRunner

    from ragkit.cli import app

    base = [p.read_text() for p in sorted((ROOT / "configs").glob("*.yaml"))][:12]
    hostile = [
        "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        "a: &a [*a]\n", "x: " + "[" * 1200 + "]" * 1200 + "\n", "version: 1\nindex: {chunker: {max_tokens: " + "9" * 5000 + "}}\n",
        'version: 1\noutput: {dir: "x\\udc80"}\n', "version: 1\nindex: !!binary aGVsbG8=\n", "version: 1\nversion: 1\n",
        "version: 1\nindex: {chunker: {type: recursive, max_tokens: 10, overlap_tokens: 10}}\n",
        "version: 1\nquery: {retrieve: {filter: {year: {near: 3}}}}\n",
        "version: 1\nbackends: {llm: {default: {type: openai, api_key: sk-SECRETSECRET}}}\n", "\x00\x01\x02", "- - -\n", "",
    ]
    overrides = ["index.enrichers.0.type=llm_metadata", "index.enrichers.7.type=x", "index.enrichers.x.type=x",
                 "index.chunker.max_tokens=-1", "index.chunker.max_tokens=[", "output.dir=\udc80", "query..k=3",
                 "index.chunker.max_tokens.0=1", "backends.llm.default.api_key=sk-SECRETSECRET", "=3", "cache.mode=off"]
    tracebacks, leaked, examples = 0, 0, []
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            kind = i % 3
            if kind == 0 or i < len(hostile):
                text = hostile[i % len(hostile)] if i < 3 * len(hostile) else rng.choice(base)
            else:
                lines = rng.choice(base).splitlines()
                for _ in range(rng.randint(1, 3)):  # mutate: drop, duplicate, or garble a line
                    if not lines:
                        break
                    j = rng.randrange(len(lines))
                    op = rng.randrange(4)
                    if op == 0:
                        del lines[j]
                    elif op == 1:
                        lines.insert(j, lines[j])
                    elif op == 2:
                        lines[j] = lines[j].replace(":", ": -1 #", 1)
                    else:
                        lines[j] = lines[j][: rng.randrange(len(lines[j]) + 1)]
                text = "\n".join(lines) + "\n"
            path = Path(tmp) / f"c{i}.yaml"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            args = ["validate", str(path)]
            if kind == 2:
                args += ["--set", rng.choice(overrides)]
            result = runner.invoke(app, args)
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                tracebacks += 1
                examples.append(f"{type(result.exception).__name__}: {str(result.exception)[:100]} ({args[2:]})")
            if "SECRETSECRET" in (result.output or "") + (result.stderr if result.stderr_bytes is not None else ""):
                leaked += 1
    return n, tracebacks, examples[:5] + ([f"api keys echoed: {leaked}"] if leaked else [])


def leftovers(store: Path) -> list[str]:
    from ragkit.store.store import IndexStore

    current = IndexStore(store).current_version()
    return [p.name for p in store.iterdir() if (p.name.startswith("v") and p.name != current)
            or p.name.endswith(".tmp") or ".tmp-" in p.name or p.name == "journal"]


def open_store(store: Path) -> None:
    from ragkit.retrievers.bm25 import BM25Retriever
    from ragkit.store.store import IndexStore
    from ragkit.types import sha256_hex

    reader = IndexStore(store)
    with reader.reading():
        reader.verify(sha256_hex({"index": "reliability"})[:16])
        BM25Retriever().load(reader.retriever_dir())


def kill_trials(n: int, rng: random.Random) -> dict[str, int]:
    from ragkit.store.store import IndexStore

    torn = left = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s"
        subprocess.run([sys.executable, "-c", CHILD, str(store), "0.01"], check=True, capture_output=True)
        for _ in range(n):
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), "30"], stdout=subprocess.PIPE, text=True)
            child.stdout.readline()  # imports done
            time.sleep(rng.uniform(0.05, 0.6))
            child.kill()
            child.wait()
            try:
                open_store(store)
            except Exception:  # noqa: BLE001 - counted
                torn += 1
            IndexStore(store).clean_leftovers("none")
            left += len(leftovers(store))
    return {"trials": n, "torn_reads": torn, "leftovers_after_open": left}


def races(opens: int) -> dict[str, int]:
    failures = done = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s"
        subprocess.run([sys.executable, "-c", CHILD, str(store), "0.01"], check=True, capture_output=True)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), "600"], stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        try:
            while done < opens:
                try:
                    open_store(store)
                except Exception:  # noqa: BLE001 - counted
                    failures += 1
                done += 1
        finally:
            child.kill()
            child.wait()
    return {"opens": done, "failures": failures}


def completion(content: object, **extra: object) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}], **extra}).encode()


FAULTS: dict[str, tuple[int, str, bytes]] = {
    "not_json": (200, "text/html", b"<html>proxy page</html>"),
    "json_string": (200, "application/json", b'"hello"'),
    "no_choices": (200, "application/json", b'{"id": "x"}'),
    "empty_choices": (200, "application/json", b'{"id": "x", "choices": []}'),
    "null_choice": (200, "application/json", b'{"id": "x", "choices": [null]}'),
    "null_content": (200, "application/json", completion(None)),
    "number_content": (200, "application/json", completion(42)),
    "huge_answer": (200, "application/json", completion("a" * 3_000_000)),
    "truncated_json": (200, "application/json", completion("ok")[:40]),
    "http_500": (500, "application/json", b'{"error": {"message": "boom"}}'),
    "http_429": (429, "application/json", b'{"error": {"message": "slow down"}}'),
    "http_400": (400, "application/json", b'{"error": {"message": "bad model"}}'),
    "http_404_html": (404, "text/html", b"<html>not found</html>"),
    "empty_body": (200, "application/json", b""),
    "closed": (0, "", b""),
    "slow": (-1, "", b""),
}
GOOD = (200, "application/json", completion("Paris."))


def llm_faults() -> dict[str, object]:
    from ragkit.errors import RagkitError
    from ragkit.llm.base import GenerationRequest
    from ragkit.llm.cached import CachedLLM
    from ragkit.llm.openai_backend import OpenAILLM

    state = {"reply": GOOD}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            status, ctype, body = state["reply"]
            if status == 0:
                self.connection.close()
                return
            if status == -1:
                time.sleep(1.5)
                status, ctype, body = GOOD
            try:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout): expected for the slow mode
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    lost = empty = 0
    outcomes = {}
    try:
        for i, (name, reply) in enumerate(FAULTS.items()):
            state["reply"] = reply
            llm = CachedLLM(inner=OpenAILLM(base_url=base, model=f"m{i}", max_retries=1, backoff_s=0.0, timeout=0.5,
                                            output_logprobs=False), mode="read_write")
            request = GenerationRequest.chat(f"question {i}", max_tokens=64)
            try:
                text = llm.generate([request])[0].text
                outcomes[name] = "answer"
                empty += int(not text.strip())
            except RagkitError as exc:
                outcomes[name] = f"error {type(exc).__name__}"
            except Exception as exc:  # noqa: BLE001 - a traceback: counted as lost
                outcomes[name] = f"TRACEBACK {type(exc).__name__}"
                lost += 1
            state["reply"] = GOOD  # the server recovers: nothing bad may come back from the cache
            again = llm.generate([request])[0].text
            if again != "Paris.":
                lost += 1
                outcomes[name] += f" / then {again[:20]!r}"
    finally:
        httpd.shutdown()
    return {"modes": len(FAULTS), "lost": lost, "silently_empty": empty, "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=320)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--opens", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(13)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores; load: {load}")
    start = time.perf_counter()
    fuzzed, tracebacks, examples = fuzz_configs(args.configs, rng)
    print(f"configs fuzzed: {fuzzed}, tracebacks: {tracebacks} ({time.perf_counter() - start:.0f} s)")
    for example in examples:
        print(f"  {example}")
    t = time.perf_counter()
    print(f"kill -9 during commit: {kill_trials(args.kills, rng)} ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    print(f"reader/writer races: {races(args.opens)} ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    faults = llm_faults()
    print(f"LLM fault modes: {faults['modes']}, lost: {faults['lost']}, silently empty: {faults['silently_empty']} "
          f"({time.perf_counter() - t:.0f} s)")
    for name, outcome in faults["outcomes"].items():
        print(f"  {name}: {outcome}")
    print(f"total: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
