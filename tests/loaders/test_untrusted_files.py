"""Binary files named .txt are skipped with a warning, and store files follow the umask (issue 13.14)."""

from __future__ import annotations

import os
import stat

import pytest

from ragkit.loaders import LoaderWarning, load_corpus
from ragkit.store.atomic import atomic_write_bytes


def test_binary_txt_files_are_skipped_with_a_warning(tmp_path):
    (tmp_path / "notes.txt").write_text("Real text about refunds.\n")
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    (tmp_path / "dump.md").write_bytes(bytes(range(1, 32)) * 200)
    with pytest.warns(LoaderWarning, match="binary"):
        docs = load_corpus([tmp_path])
    assert [os.path.basename(d.metadata["path"]) for d in docs] == ["notes.txt"]
    (tmp_path / "utf16.txt").write_text("Texte en UTF-16.\n", encoding="utf-16")
    assert "Texte" in load_corpus([tmp_path / "utf16.txt"])[0].text  # a BOM-marked UTF-16 file is text


def test_store_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
