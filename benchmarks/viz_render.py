"""``ragkit viz`` on a large document: does paging keep the page usable as the document grows?

Two documents, both from Chroma's corpora: a **reference** (the first 12,000 characters of
``state_of_the_union``) and a **large** one (``finance`` + ``pubmed``, ~1.2 MB). Each is cut by two
token chunkers (columns side by side; chunking itself is not timed), then timed:

- ``build``: :func:`ragkit.viz.render_columns` (payload, paging, JSON escaping, HTML), in Python;
- ``browser``: headless Chromium (Debian's ``chromium``) loading the page and dumping its DOM for
  page 1 and for the middle page (process start included; minimum of ``--repeat`` runs).

Ratios are large over reference, measured in the same process: with paging, the browser's cost should
grow far less than the document (about the cost of parsing the embedded JSON), while ``build`` grows
with the text. Prints the load (``uptime``) before and after, and one ``RESULT {...}`` JSON line.

    RAGKIT_DATA=/work/shared/datasets python benchmarks/viz_render.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ragkit.chunkers.token import TokenChunker
from ragkit.types import Document
from ragkit.viz import collect, page_ranges, render_columns


def _chroma() -> Path:
    root = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    return root / "chroma_chunking_eval"


def _browser(chromium: str, page: Path, number: int, profile: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                               "--dump-dom", f"{page.as_uri()}#page={number}"], capture_output=True, text=True,
                              timeout=300)
        best = min(best, time.perf_counter() - t0)
        if "<main" not in done.stdout or f'data-page="{number}"' not in done.stdout:
            raise SystemExit(f"chromium did not render page {number} of {page}: {done.stderr[-1000:]}")
    return best


def measure(name: str, text: str, chromium: str, tmp: Path, repeat: int) -> dict:
    doc = Document.from_text(text, metadata={"source": name})
    columns = collect(doc, {"token:256": TokenChunker(max_tokens=256), "token:200": TokenChunker(max_tokens=200)})
    t0 = time.perf_counter()
    html = render_columns(doc, columns)
    build = time.perf_counter() - t0
    page = tmp / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    pages = len(page_ranges(text))
    first = _browser(chromium, page, 1, tmp / "profile", repeat)
    middle = _browser(chromium, page, max(1, pages // 2), tmp / "profile", repeat)
    return {"doc": name, "chars": len(text), "chunks": sum(len(c.chunks) for c in columns), "pages": pages,
            "html_bytes": len(html.encode("utf-8")), "build_s": build,
            "browser_first_s": first, "browser_middle_s": middle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    chromium = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install -y chromium (scripts/setup.sh does it as root)")
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    chroma = _chroma()
    reference = (chroma / "state_of_the_union.md").read_text(encoding="utf-8")[:12_000]
    large = "\n\n".join((chroma / f"{n}.md").read_text(encoding="utf-8") for n in ("finance", "pubmed"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure("reference", reference, chromium, Path(tmp), args.repeat),
                measure("large", large, chromium, Path(tmp), args.repeat)]
    ref, big = rows
    print(f"{'doc':>10} {'chars':>9} {'chunks':>7} {'pages':>5} {'html MB':>8} {'build s':>8} {'page 1 s':>9} {'middle s':>9}")
    for r in rows:
        print(f"{r['doc']:>10} {r['chars']:>9} {r['chunks']:>7} {r['pages']:>5} {r['html_bytes'] / 1e6:>8.2f} "
              f"{r['build_s']:>8.3f} {r['browser_first_s']:>9.3f} {r['browser_middle_s']:>9.3f}")
    ratios = {"chars": round(big["chars"] / ref["chars"], 1), "build": round(big["build_s"] / ref["build_s"], 1),
              "browser_first": round(big["browser_first_s"] / ref["browser_first_s"], 2),
              "browser_middle": round(big["browser_middle_s"] / ref["browser_middle_s"], 2)}
    print(f"ratios large/reference: {ratios}")
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    rounded = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    print("RESULT " + json.dumps({"rows": rounded, "ratios": ratios}))


if __name__ == "__main__":
    main()
