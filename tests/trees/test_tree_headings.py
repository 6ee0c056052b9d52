"""The headings tree builder: sections by level, chunks as leaves, pruning, round trip through the store."""

from __future__ import annotations

from ragkit.pipeline import Pipeline
from ragkit.trees.headings import HeadingsTreeBuilder
from ragkit.types import Chunk, DocTree, Document

TEXT = ("Preamble line.\n"
        "# One\nAlpha text.\n## One.A\nBeta text.\n## One.B\n"
        "# Two\nGamma text.\n")


def _doc() -> Document:
    heads = []
    for title, level in [("One", 1), ("One.A", 2), ("One.B", 2), ("Two", 1)]:
        marker = "#" * level + " " + title
        start = TEXT.index(marker)
        heads.append((start, start + len(marker), level, title))
    return Document.from_text(TEXT, {"headings": heads, "title": "Doc"})


def _chunks(doc: Document) -> list[Chunk]:
    out = []
    for piece in ["Preamble line.", "# One\nAlpha text.", "## One.A\nBeta text.", "# Two\nGamma text."]:
        start = doc.text.index(piece)
        out.append(Chunk.from_span(doc, start, start + len(piece), len(piece.split())))
    return out


def test_sections_nest_by_level_and_chunks_become_leaves():
    doc = _doc()
    chunks = _chunks(doc)
    tree = HeadingsTreeBuilder().build(doc, chunks)
    root = tree.node(tree.root)
    assert root.title == "Doc"
    titles = [tree.node(c).title for c in root.children]
    assert titles == ["", "One", "Two"]  # the preamble chunk sits under the root
    one = tree.node(root.children[1])
    assert [tree.node(c).title for c in one.children] == ["", "One.A"]  # One.B has no chunk: dropped
    assert [leaf.id for leaf in tree.leaves()] == [c.id for c in chunks]
    for leaf in tree.leaves():
        assert leaf.chunk_ids == (leaf.id,)
    assert tree.node(one.children[1]).chunk_ids == (chunks[2].id,)
    assert set(root.chunk_ids) == {c.id for c in chunks}
    for node in tree.nodes.values():
        for child in node.children:
            assert tree.node(child).parent == node.id and tree.node(child).level == node.level + 1


def test_max_level_and_no_headings_and_no_chunks():
    doc = _doc()
    shallow = HeadingsTreeBuilder(max_level=1).build(doc, _chunks(doc))
    assert all(n.title != "One.A" for n in shallow.nodes.values())
    plain = Document.from_text("Just text. More text.")
    flat = HeadingsTreeBuilder().build(plain, [Chunk.from_span(plain, 0, 10, 2), Chunk.from_span(plain, 11, 21, 2)])
    assert len(flat.leaves()) == 2 and flat.node(flat.root).children == tuple(leaf.id for leaf in flat.leaves())
    outline = HeadingsTreeBuilder().build(doc, [])
    assert [doc.text[n.start:n.end] for n in outline.leaves()] == ["Preamble line.", "Alpha text.", "Beta text.",
                                                                  "Gamma text."]


def test_single_top_heading_collapses_into_the_root():
    text = "# Paper\n## Intro\nHello.\n## End\nBye."
    doc = Document.from_text(text, {"headings": [(0, 7, 1, "Paper"), (8, 16, 2, "Intro"), (24, 30, 2, "End")]})
    chunks = [Chunk.from_span(doc, 8, 23, 2), Chunk.from_span(doc, 24, 35, 2)]
    tree = HeadingsTreeBuilder().build(doc, chunks)
    assert tree.node(tree.root).title == "Paper"
    assert [tree.node(c).title for c in tree.node(tree.root).children] == ["Intro", "End"]


def test_trees_round_trip_through_the_store(tmp_path):
    config = {"backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
              "index": {"chunker": {"type": "structure", "max_tokens": 32}, "retriever": {"type": "bm25"},
                        "store": str(tmp_path / "store"), "tree": {"type": "headings"}}}
    doc = _doc()
    first = Pipeline.from_config(config)
    report = first.index([doc])
    assert report.trees == 1 and not report.reused
    built = first.trees_[doc.id]
    reopened = Pipeline.from_config(config)
    again = reopened.index([doc])
    assert again.reused and reopened.trees_[doc.id] == built
    assert DocTree.from_dict(built.to_dict()) == built
    for leaf in built.leaves():
        assert leaf.chunk_ids and 0 <= leaf.start < leaf.end <= len(doc.text)


def test_tree_command_text_json_and_dataset_document(tmp_path):
    import json

    from typer.testing import CliRunner

    from ragkit.cli import app

    path = tmp_path / "guide.md"
    path.write_text("# Guide\n\nIntro.\n\n## Setup\n\nInstall it.\n\n## Use\n\nRun it.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["tree", str(path), "--max-tokens", "8", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["builder"] == "headings" and [c["title"] for c in data["root"]["children"]][1:] == ["Setup", "Use"]
    text = path.read_text(encoding="utf-8")
    leaf = data["root"]["children"][1]["children"][0]
    assert text[leaf["start"]:leaf["end"]] == "## Setup\n\nInstall it." and leaf["tokens"] > 0
    bad = CliRunner().invoke(app, ["tree", str(path), "--format", "xml"])
    assert bad.exit_code == 2

    folder = tmp_path / "qasper_sample"
    folder.mkdir()
    paper = {"id": "p1", "title": "T", "abstract": "A.",
             "full_text": {"section_name": ["Intro", "Intro ::: Aim"], "paragraphs": [["We use BM25."], ["Aims."]]},
             "qas": {"question_id": [], "question": [], "answers": []}}
    (folder / "qasper_sample.dev.json").write_text(json.dumps(paper), encoding="utf-8")
    result = CliRunner().invoke(app, ["tree", str(folder / "qasper_sample.dev.json"), "--doc", "p1"])
    assert result.exit_code == 0, result.output
    assert "Intro" in result.stdout and "Aim" in result.stdout
    result = CliRunner().invoke(app, ["tree", "--dataset", "qasper_sample", "--data-root", str(tmp_path), "--doc", "p9"])
    assert result.exit_code == 2 and "p1" in result.output
