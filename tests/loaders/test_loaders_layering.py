"""The loaders know files only: importing them loads no dataset or evaluation code."""

from __future__ import annotations

import subprocess
import sys

ABOVE_THE_LOADERS = ("ragkit.eval", "ragkit.datasets", "ragkit.corpus")


def test_loaders_import_neither_datasets_nor_eval() -> None:
    code = (
        "import sys, ragkit.loaders, ragkit.loaders.files, ragkit.loaders.formats, ragkit.loaders.html\n"
        f"above = sorted(m for m in sys.modules if m.startswith({ABOVE_THE_LOADERS!r}))\n"
        "assert not above, above\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_loading_paths_stays_below_the_corpus_layer(tmp_path) -> None:
    (tmp_path / "a.md").write_text("# A\n", encoding="utf-8")
    code = (
        "import sys\nfrom ragkit.loaders import load_corpus\n"
        f"load_corpus([{str(tmp_path / 'a.md')!r}])\n"
        f"above = sorted(m for m in sys.modules if m.startswith({ABOVE_THE_LOADERS!r}))\n"
        "assert not above, above\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
