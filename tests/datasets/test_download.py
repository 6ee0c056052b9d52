"""``ragkit datasets download``: a real loopback HTTP server (``http.server`` in a thread) plays the upstream.

The server serves ``tests/datasets/fixtures/chroma_slice`` (a real slice of Chroma's benchmark in the
upstream layout) under ``/<owner>/<repo>/<commit>/<path>``, honours ``Range``, and can cut a transfer
short or drop the connection on demand. ``SOURCES`` is patched only to pin the fixture's sha256 values
(the real pins are the full files' hashes, checked against the development copy where it is present).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.datasets import MIRROR_ENV, SOURCES, download, is_present, load_dataset
from ragkit.errors import DatasetError

FIXTURE = Path(__file__).parent / "fixtures" / "chroma_slice"
NAME = "chroma_chunking_eval"


@dataclass
class Upstream:
    """What the loopback server serves and how it misbehaves."""

    files: dict[str, bytes]
    cut_once: set[str] = field(default_factory=set)  # URL paths whose next response stops half-way
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    url: str = ""


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            rng = self.headers.get("Range")
            up.requests.append((self.path, rng))
            body = up.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if self.path in up.cut_once:  # promise the whole body, send half, hang up
                up.cut_once.discard(self.path)
                self.wfile.write(body[start:start + (len(body) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    """The fixture served like GitHub's raw host, SOURCES pinned to the fixture's sha256 values."""
    src = SOURCES[NAME]
    files, pinned = {}, []
    for f in src.files:
        body = (FIXTURE / f.name).read_bytes()
        files[f"/{src.repo}/{src.commit}/{f.path}"] = body
        pinned.append(replace(f, sha256=hashlib.sha256(body).hexdigest() if f.sha256 else None, size=len(body)))
    monkeypatch.setitem(SOURCES, NAME, replace(src, files=tuple(pinned)))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    up = Upstream(files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    up.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield up
    server.shutdown()
    server.server_close()


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_download_then_load_reads_the_upstream_layout(upstream: Upstream, tmp_path: Path) -> None:
    folder = download(NAME, tmp_path, mirror=upstream.url)
    assert folder == tmp_path / NAME and is_present(NAME, tmp_path)
    assert not (tmp_path / ".downloads" / NAME).exists()
    record = json.loads((folder / "DOWNLOAD.json").read_text())
    assert record["commit"] == SOURCES[NAME].commit and record["split"] == "full"
    assert {r["file"]: r["verified"] for r in record["files"]}["questions_df.csv"] is False
    assert all(r["verified"] for r in record["files"] if r["file"].endswith(".md"))
    ds = load_dataset(NAME, data_root=tmp_path)
    assert ds.metadata["split"] == "full" and ds.summary()["split"] == "full"
    assert len(ds.questions) == 10 and all(q.metadata["split"] == "full" for q in ds.questions)
    q = ds.questions[0]
    assert ds.document(q.gold_spans[0].doc_id).text[q.gold_spans[0].start:q.gold_spans[0].end] == \
        q.metadata["references"][0]
    before = len(upstream.requests)
    download(NAME, tmp_path, mirror=upstream.url)  # present: nothing fetched
    assert len(upstream.requests) == before


def test_the_mirror_comes_from_the_environment(upstream: Upstream, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, upstream.url + "/")
    download(NAME, tmp_path)
    assert is_present(NAME, tmp_path)


def test_a_checksum_mismatch_leaves_nothing_a_loader_could_read(upstream: Upstream, tmp_path: Path) -> None:
    src = SOURCES[NAME]
    bad = next(f for f in src.files if f.sha256)
    upstream.files[f"/{src.repo}/{src.commit}/{bad.path}"] += b"tampered"
    with pytest.raises(DatasetError, match=rf"sha256 [0-9a-f]{{64}} differs from the pinned {bad.sha256}"):
        download(NAME, tmp_path, mirror=upstream.url)
    assert not (tmp_path / NAME).exists()
    assert not [p for p in _leftovers(tmp_path) if p.endswith(bad.name) or p.endswith(f"{bad.name}.part")]
    with pytest.raises(DatasetError, match="ragkit datasets download"):
        load_dataset(NAME, data_root=tmp_path)


def test_a_truncated_transfer_is_resumed_with_a_range_request(upstream: Upstream, tmp_path: Path) -> None:
    src = SOURCES[NAME]
    big = max(src.files, key=lambda f: len(upstream.files[f"/{src.repo}/{src.commit}/{f.path}"]))
    path = f"/{src.repo}/{src.commit}/{big.path}"
    upstream.cut_once.add(path)
    with pytest.raises(DatasetError, match="cut short.*resumes"):
        download(NAME, tmp_path, mirror=upstream.url)
    part = tmp_path / ".downloads" / NAME / f"{big.name}.part"
    half = len(upstream.files[path]) // 2
    assert part.stat().st_size == half
    assert not (tmp_path / NAME).exists(), "an incomplete download must not create the dataset folder"
    download(NAME, tmp_path, mirror=upstream.url)
    assert (path, f"bytes={half}-") in upstream.requests
    assert (tmp_path / NAME / big.name).read_bytes() == upstream.files[path]


def test_offline_names_every_url_and_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    dead = "http://127.0.0.1:9"  # discard port: connection refused, as on a machine without network
    with pytest.raises(DatasetError) as err:
        download(NAME, tmp_path, mirror=dead)
    message = str(err.value)
    for f in SOURCES[NAME].files:
        assert SOURCES[NAME].url(f, dead) in message
        assert str(tmp_path / NAME / f.name) in message
    assert "place them by hand" in message and MIRROR_ENV in message
    assert not (tmp_path / NAME).exists()


def test_the_upstream_urls_are_pinned_to_a_commit() -> None:
    for src in SOURCES.values():
        assert len(src.commit) == 40
        for f in src.files:
            assert src.url(f).startswith(f"https://raw.githubusercontent.com/{src.repo}/{src.commit}/")


def test_pinned_hashes_match_the_development_copy(shared_root: Path) -> None:
    """Every pinned sha256 is that of a byte-identical development copy (skipped in a clone)."""
    checked = 0
    for name, src in SOURCES.items():
        for f in src.files:
            copy = shared_root / name / f.name
            if f.sha256 and copy.is_file():
                assert hashlib.sha256(copy.read_bytes()).hexdigest() == f.sha256, copy
                assert copy.stat().st_size == f.size
                checked += 1
    if not checked:
        pytest.skip("no development copy of the datasets here")
    assert checked == 7


def test_cli_list_and_download(upstream: Upstream, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["datasets", "list", "--root", str(tmp_path), "--format", "json"])
    assert listed.exit_code == 0
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == set(SOURCES) and not rows[NAME]["present"]
    assert rows[NAME]["upstream"].startswith("brandonstarxel/chunking_evaluation@") and rows[NAME]["license"]
    got = runner.invoke(app, ["datasets", "download", NAME, "--root", str(tmp_path), "--mirror", upstream.url])
    assert got.exit_code == 0, got.stderr
    assert got.stdout.strip() == f"{NAME}: {tmp_path / NAME}"
    listed = runner.invoke(app, ["datasets", "list", "--root", str(tmp_path)])
    assert f"{NAME}" in listed.stdout and " yes " in listed.stdout



def test_acceptance_fresh_clone_download_then_eval(upstream: Upstream, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared data folder beside the clone, $RAGKIT_DATA unset, a fresh RAGKIT_HOME: download, then eval."""
    import os
    import shutil

    repo = Path(__file__).resolve().parents[2]
    clone = tmp_path / "clone"
    (clone / "configs" / "eval").mkdir(parents=True)
    shutil.copy(repo / "configs" / "eval" / "chroma-chunkers.yaml", clone / "configs" / "eval")
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(Path(os.environ["RAGKIT_HOME"]) / "models", target_is_directory=True)
    monkeypatch.setenv("RAGKIT_HOME", str(home))
    monkeypatch.delenv("RAGKIT_DATA", raising=False)
    monkeypatch.chdir(clone)
    assert not (clone.parent / "shared").exists()
    runner = CliRunner()
    args = ["eval", "configs/eval/chroma-chunkers.yaml", "--variant", "token", "--limit", "1", "--no-plots",
            "--out", str(tmp_path / "out")]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 1 and "ragkit datasets download" in missing.stderr, missing.stderr
    got = runner.invoke(app, ["datasets", "download", NAME, "--root", "D", "--mirror", upstream.url])
    assert got.exit_code == 0, got.stderr
    result = runner.invoke(app, [*args, "--data-root", "D"])
    assert result.exit_code == 0, result.stderr
    assert "protocol: chroma" in result.stdout and "dataset: chroma_chunking_eval" in result.stdout
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"][NAME]
    assert summary["split"] == "full" and summary["questions"] == 5
    assert "split: full" in (tmp_path / "out" / "results.md").read_text()


def test_the_dev_layout_still_loads_as_split_dev(shared_root: Path) -> None:
    if not (shared_root / NAME / "questions_dev.csv").is_file():
        pytest.skip("no development copy of the datasets here")
    ds = load_dataset(NAME, data_root=shared_root, subset="chatlogs")
    assert ds.metadata["split"] == "dev" and ds.questions[0].id.startswith("chroma-dev-")
