"""The evaluation notebooks run end to end (offline, reduced setting) so they never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the 'eval' extra")
from nbclient import NotebookClient  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_evaluation_notebooks() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert any("chroma" in n for n in names) and any("multihop" in n for n in names), names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_NOTEBOOK_REDUCED", "1")
    monkeypatch.setenv("RAGKIT_NOTEBOOK_OUT", str(tmp_path / "out"))
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no plot"
    assert any("text/markdown" in o.get("data", {}) for o in outputs), "the notebook shows no table"
    assert (tmp_path / "out" / "results.json").is_file()
