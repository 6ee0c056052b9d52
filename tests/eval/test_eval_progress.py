"""Eval reports variant i/n with an ETA through ragkit.progress when stderr is not a terminal."""

from __future__ import annotations

import os
from pathlib import Path

from ragkit.eval.runner import run_experiment
from ragkit.progress import configure

SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets")


def test_eval_prints_variant_lines_with_eta(tmp_path: Path, capsys) -> None:
    experiment = {"name": "tiny", "dataset": {"name": "chroma_chunking_eval", "subset": ["chatlogs"]},
                  "base": {"backends": {"embeddings": {"default": {"type": "fake", "dimension": 16}}},
                           "index": {"retriever": {"type": "bm25"}}},
                  "protocols": ["chroma"],
                  "variants": [{"name": "a", "set": {"index.chunker": {"type": "token", "max_tokens": 200}}},
                               {"name": "b", "set": {"index.chunker": {"type": "token", "max_tokens": 100}}}]}
    configure(interval=0)
    try:
        run_experiment(experiment, out=tmp_path / "out", data_root=SHARED_DATASETS, limit=2, echo=lambda line: None)
    finally:
        configure(interval=5.0)
    err = capsys.readouterr().err
    assert "eval tiny: 1/2 variant (50 %)" in err and "ETA" in err
    assert "eval tiny: 2/2 variant (100 %) done in" in err
