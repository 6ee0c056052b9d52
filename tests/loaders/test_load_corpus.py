"""Loaders: formats, paths, globs, directories, encodings, limits and clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from ragkit.errors import DocumentError
from ragkit.loaders import DEFAULT_MAX_BYTES, LoaderWarning, load_corpus, load_path
from ragkit.types import Document

CHROMA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "chroma_chunking_eval"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / ".hidden").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\nIntro.\n\n## Part\nMore.\n", encoding="utf-8")
    (tmp_path / "docs" / "b.txt").write_text("Plain text.\n", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "c.html").write_text("<h1>Web</h1><p>Page text.</p>", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "d.jsonl").write_text(
        '{"id": "x1", "text": "First record.", "metadata": {"year": 2024}}\n\n{"text": "Second."}\n', encoding="utf-8")
    (tmp_path / "docs" / "notes.csv").write_text("a,b\n", encoding="utf-8")
    (tmp_path / "docs" / ".hidden" / "e.md").write_text("# secret\n", encoding="utf-8")
    return tmp_path


def test_directory_walk_is_sorted_and_skips_hidden_and_unknown(tree: Path):
    docs = load_corpus(["docs"], base_dir=tree)
    assert [d.metadata["source_id"] for d in docs] == ["docs/a.md", "docs/b.txt", "docs/sub/c.html", "x1",
                                                       "docs/sub/d.jsonl:3"]
    assert all(Path(d.metadata["path"]).is_file() for d in docs)
    assert [d.metadata["format"] for d in docs] == ["markdown", "text", "html", "jsonl", "jsonl"]


def test_markdown_headings_and_text_identical_to_read_text(tree: Path):
    path = tree / "docs" / "a.md"
    (doc,) = load_corpus([path])
    assert doc.text == path.read_text(encoding="utf-8")
    assert doc.id == Document.from_text(doc.text).id
    assert doc.headings == [(0, 7, 1, "Title"), (17, 24, 2, "Part")]
    for start, end, _level, title in doc.headings:
        assert title in doc.text[start:end]


def test_wikitext_headings_from_the_chroma_corpus():
    (doc,) = load_corpus([CHROMA / "wikitexts.md"])
    assert len(doc.headings) == 84
    assert doc.headings[1][2:] == (2, "Gameplay")
    assert doc.text == (CHROMA / "wikitexts.md").read_text(encoding="utf-8")


def test_jsonl_records(tree: Path):
    docs = load_path(tree / "docs" / "sub" / "d.jsonl", base_dir=tree)
    assert [d.text for d in docs] == ["First record.", "Second."]
    assert docs[0].metadata["source_id"] == "x1" and docs[0].metadata["year"] == 2024
    assert docs[1].metadata["line"] == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [("not json", r"bad\.jsonl:2: not valid JSON"), ('["list"]', "expected a JSON object, got list"),
     ('{"id": 1}', "field 'text' must be a string"), ('{"text": "x", "metadata": 3}', "'metadata' must be an object")],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DocumentError, match=message):
        load_corpus([path])


def test_html_offsets_index_extracted_text(tree: Path):
    (doc,) = load_corpus(["docs/sub/c.html"], base_dir=tree)
    assert doc.text == "Web\n\nPage text."
    assert doc.headings == [(0, 3, 1, "Web")]


def test_globs_are_relative_to_base_dir(tree: Path):
    docs = load_corpus(["docs/**/*.md", "docs/*.txt"], base_dir=tree)
    assert [d.metadata["source_id"] for d in docs] == ["docs/a.md", "docs/b.txt"]  # hidden dirs do not match **


def test_explicit_unknown_suffix_loads_as_text(tree: Path):
    (doc,) = load_corpus([tree / "docs" / "notes.csv"])
    assert doc.text == "a,b\n" and doc.metadata["format"] == "text"


def test_duplicates_are_loaded_once_and_documents_pass_through(tree: Path):
    given = Document.from_text("In memory.", source_id="mem")
    docs = load_corpus([given, "docs/a.md", str(tree / "docs" / "a.md")], base_dir=tree)
    assert docs[0] is given and len(docs) == 2


def test_a_corpus_mapping_is_the_corpus_layers_job(tree: Path):
    with pytest.raises(DocumentError, match="ragkit.corpus.documents_from_spec"):
        load_corpus({"paths": ["docs/*.md"]}, base_dir=tree)


def test_missing_path_and_empty_glob_are_clear(tree: Path):
    with pytest.raises(DocumentError, match=r"corpus path 'nope.md' does not exist"):
        load_corpus(["nope.md"], base_dir=tree)
    with pytest.raises(DocumentError, match=r"glob 'docs/\*\.rst' matched no files"):
        load_corpus(["docs/*.rst"], base_dir=tree)
    (tree / "empty_dir").mkdir()
    with pytest.raises(DocumentError, match="holds no loadable files"):
        load_corpus(["empty_dir"], base_dir=tree)
    with pytest.raises(DocumentError, match="cannot load 42"):
        load_corpus([42], base_dir=tree)


def test_non_utf8_is_decoded_with_a_warning_naming_the_file(tmp_path: Path):
    path = tmp_path / "legacy.txt"
    path.write_bytes("Caf\u00e9 \u2013 na\u00efve \u20ac5".encode("cp1252"))
    with pytest.warns(LoaderWarning, match=r"legacy\.txt: byte 0xe9 at offset 3 is not valid UTF-8; decoded as cp1252"):
        (doc,) = load_corpus([path])
    assert doc.text == "Caf\u00e9 \u2013 na\u00efve \u20ac5"


def test_bytes_invalid_in_cp1252_fall_back_to_latin1(tmp_path: Path):
    path = tmp_path / "odd.txt"
    path.write_bytes(b"abc \x81\x8d def")
    with pytest.warns(LoaderWarning, match="decoded as latin-1"):
        (doc,) = load_corpus([path])
    assert doc.text == "abc \x81\x8d def"


def test_utf16_with_bom(tmp_path: Path):
    path = tmp_path / "wide.md"
    path.write_bytes("# Wide\nText.".encode("utf-16"))
    with pytest.warns(LoaderWarning, match="decoded as utf-16"):
        (doc,) = load_corpus([path])
    assert doc.text == "# Wide\nText." and doc.headings == [(0, 6, 1, "Wide")]


def test_newlines_are_normalised_like_read_text(tmp_path: Path):
    path = tmp_path / "crlf.md"
    path.write_bytes(b"# A\r\nline one\r\rline two\r\n")
    (doc,) = load_corpus([path])
    assert doc.text == path.read_text(encoding="utf-8") == "# A\nline one\n\nline two\n"


def test_empty_and_blank_files_are_skipped_with_a_warning(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.md").write_text(" \n\n\t", encoding="utf-8")
    (tmp_path / "real.txt").write_text("content", encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = load_corpus([str(tmp_path)])
    assert [d.text for d in docs] == ["content"]
    messages = [str(w.message) for w in caught if issubclass(w.category, LoaderWarning)]
    assert any("empty.txt: file is empty; skipped" in m for m in messages)
    assert any("blank.md: file is whitespace-only; skipped" in m for m in messages)


def test_max_bytes(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 2000, encoding="utf-8")
    with pytest.raises(DocumentError, match=r"big\.txt is 2,000 bytes, above the loader limit max_bytes=1,000.*max_bytes="):
        load_corpus([path], max_bytes=1000)
    assert len(load_corpus([path], max_bytes=2000)[0].text) == 2000
    assert DEFAULT_MAX_BYTES == 64 * 1024 * 1024


def test_source_id_outside_base_dir_is_the_path(tmp_path: Path, tree: Path):
    other = tmp_path / "elsewhere.txt"
    other.write_text("text", encoding="utf-8")
    (doc,) = load_corpus([other], base_dir=tree / "docs")
    assert doc.metadata["source_id"] == other.as_posix()


def test_jsonl_metadata_round_trips_to_json(tree: Path):
    docs = load_corpus(["docs/sub/d.jsonl"], base_dir=tree)
    assert json.loads(json.dumps(docs[0].to_dict()))["metadata"]["year"] == 2024


def test_max_bytes_from_a_config(tmp_path: Path):
    from ragkit.config.load import load_config
    from ragkit.errors import ConfigError
    from ragkit.pipeline import Pipeline

    path = tmp_path / "big.txt"
    path.write_text("x" * 2000, encoding="utf-8")
    from ragkit.corpus import documents_from_spec

    with pytest.raises(DocumentError, match=r"corpus: \{max_bytes: 2001\}"):
        documents_from_spec({"paths": [str(path)], "max_bytes": 1000})
    pipe = Pipeline.from_config(load_config({"corpus": {"paths": [str(path)], "max_bytes": 4000}}))
    assert len(pipe.load_documents()[0].text) == 2000
    with pytest.raises(ConfigError, match="corpus.max_bytes"):
        load_config({"corpus": {"paths": [str(path)], "max_bytes": 0}})
