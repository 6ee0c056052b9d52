"""Quickstart wall time: ``ragkit run configs/quickstart.yaml`` twice in a fresh ``RAGKIT_HOME``.

The first run loads MiniLM, chunks and embeds the docs, builds and persists the index and answers
the questions; the second must reuse the index (no chunking) and the embedding cache
(``embedding_calls=0``). Each run is a separate process, timed from outside, as a user sees it.

    python benchmarks/quickstart.py
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(home: Path, out: Path) -> tuple[float, str]:
    env = {**os.environ, "RAGKIT_HOME": str(home)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ragkit.cli", "run", "configs/quickstart.yaml", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"ragkit run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    usage = next(line for line in done.stdout.splitlines() if line.startswith("usage:"))
    index = next((line for line in done.stderr.splitlines() if line.startswith("index:")), "")
    return seconds, f"{usage}\n      {index}"


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        first_s, first = run_once(home, Path(tmp) / "run1")
        second_s, second = run_once(home, Path(tmp) / "run2")
    print(f"first run:  {first_s:6.1f} s  {first}")
    print(f"re-run:     {second_s:6.1f} s  {second}")
    calls = int(re.search(r"embedding_calls=(\d+)", second).group(1))
    assert calls == 0, "the re-run must not embed"
    print(f"re-run is {first_s / second_s:.1f}x faster; re-run embedding_calls={calls}")


if __name__ == "__main__":
    main()
