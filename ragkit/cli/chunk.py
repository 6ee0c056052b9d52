"""``ragkit chunk FILE``: what a chunker does to one file (a table, or JSONL with exact offsets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.errors import ConfigError


def parse_params(params: list[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` strings as a mapping (values parsed as YAML scalars).

    Example:
        >>> parse_params(["max_tokens=128", "overlap_tokens=0"])
        {'max_tokens': 128, 'overlap_tokens': 0}
    """
    from ragkit.config.load import parse_override

    return dict(parse_override(p) for p in params)


def file_document(file: Path) -> Any:
    """``FILE`` as the pipeline's loader reads it (``ragkit chunk``, ``ragkit viz``): one loader for both.

    Text and Markdown load as the file's text; HTML (and other converted formats) as the text the loader
    extracts, so offsets index the same text the pipeline chunks and cites. A file the loader splits into
    several documents (e.g. JSONL records) is shown as its raw text.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "a.md"
        ...     _ = path.write_text("# Title" + chr(10) * 2 + "Body.", encoding="utf-8")
        ...     doc = file_document(path)
        >>> doc.text.splitlines(), len(doc.headings)
        (['# Title', '', 'Body.'], 1)
    """
    from ragkit.loaders import DEFAULT_MAX_BYTES, load_corpus
    from ragkit.loaders.files import read_text
    from ragkit.types import Document

    loaded = load_corpus([file])
    if len(loaded) == 1:
        return loaded[0]
    text = read_text(file, DEFAULT_MAX_BYTES)  # = read_text(encoding="utf-8"); other encodings warn and decode
    meta = dict(loaded[0].metadata) if loaded else {}
    meta.pop("headings", None)
    return Document(id=Document.from_text(text).id, text=text, metadata=meta)


def chunk_command(
    file: Annotated[Path, typer.Argument(help="Text, Markdown or other file to chunk.", exists=True, dir_okay=False)],
    chunker: Annotated[str, typer.Option("--chunker", "-c", help="Chunker type (see `ragkit components`).")] = "recursive",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Chunker parameter KEY=VALUE (repeatable).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Config whose backends (LLM, embeddings) to use.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl.")] = "table",
) -> None:
    """Show what a chunker does to one file, loaded as the pipeline loads it (HTML: its extracted text).

    Offsets index the loaded text: Path(FILE).read_text(encoding='utf-8') for text and Markdown, the
    extracted text for HTML. A file that is not UTF-8 is decoded with the loaders' fallback (BOM,
    cp1252, latin-1) and a warning; offsets then index that decoded text.
    \f
    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "a.txt"
        ...     _ = path.write_text("One sentence. Another one.", encoding="utf-8")
        ...     args = ["chunk", str(path), "--chunker", "sentence", "--format", "jsonl", "--param", "max_tokens=4"]
        ...     result = CliRunner().invoke(app, args)
        >>> result.exit_code, [json.loads(line)["text"] for line in result.stdout.splitlines()]
        (0, ['One sentence.', 'Another one.'])
    """
    from ragkit.config.load import load_config
    from ragkit.pipeline import Pipeline

    if format not in ("table", "jsonl"):
        raise ConfigError(f"--format {format!r} is not supported; use table or jsonl")
    base: dict[str, Any] = {}
    if config is not None:
        base = {"backends": load_config(config)["backends"]}
    spec = {"type": chunker, **parse_params(param or [])}
    pipeline = Pipeline.from_config({**base, "index": {"chunker": spec}}, name="chunk")
    doc = file_document(file)
    text = doc.text
    chunks = pipeline.chunker.chunk(doc)
    if format == "jsonl":
        for c in chunks:
            typer.echo(json.dumps({"id": c.id, "doc_id": c.doc_id, "start": c.start, "end": c.end, "text": c.text,
                                   "token_count": c.token_count, "metadata": c.to_dict()["metadata"]},
                                  ensure_ascii=False))
        return
    typer.echo(f"{len(chunks)} chunks from {file} ({len(text)} characters) with {chunker}")
    typer.echo(f"{'#':>4} {'start':>8} {'end':>8} {'tokens':>6}  heading_path | text")
    for i, c in enumerate(chunks):
        path = " > ".join(c.metadata.get("heading_path", []))
        preview = c.text[:70].replace("\n", " ")
        typer.echo(f"{i:>4} {c.start:>8} {c.end:>8} {c.token_count:>6}  {path[:40]} | {preview}")
