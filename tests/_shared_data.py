"""Where the real corpora live for tests: ``$RAGKIT_DATA``, else the development checkout's ``../shared/datasets``.

Imported as ``from _shared_data import CHROMA`` (``tests/`` is on ``sys.path`` through its conftest);
test modules must not import ``conftest`` by name: several folders have one, and which one answers to
``conftest`` depends on collection order.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets")
CHROMA = SHARED_DATASETS / "chroma_chunking_eval"
CHROMA_CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
