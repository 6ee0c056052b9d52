"""``ragkit tree FILE``: the document tree a builder makes of one file or one dataset document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.errors import ConfigError


def _dataset_document(name: str, doc: str | None, data_root: Path | None) -> Any:
    """Document ``doc`` (its source id, or a prefix of its id) of dataset ``name``."""
    from ragkit.datasets import load_dataset

    dataset = load_dataset(name, data_root=data_root)
    if doc is None:
        shown = ", ".join(str(d.metadata.get("source_id", d.id[:12])) for d in dataset.documents[:20])
        raise ConfigError(f"--doc is needed to pick one document of {name}; documents: {shown}"
                          + (" …" if len(dataset.documents) > 20 else ""))
    for document in dataset.documents:
        if str(document.metadata.get("source_id")) == doc or document.id.startswith(doc):
            return document
    shown = ", ".join(str(d.metadata.get("source_id", d.id[:12])) for d in dataset.documents[:20])
    raise ConfigError(f"--doc {doc!r}: no such document in {name}; documents: {shown}")


def tree_command(
    file: Annotated[Path | None, typer.Argument(help="File to show (Markdown, HTML, text), or a file of a dataset "
                                                    "folder together with --doc.", dir_okay=False)] = None,
    builder: Annotated[str, typer.Option("--builder", "-b", help="Tree builder: headings, llm or cluster.")] = "headings",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Builder parameter KEY=VALUE (repeatable).")] = None,
    chunker: Annotated[str, typer.Option("--chunker", "-c", help="Chunker whose chunks become leaves.")] = "recursive",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="The chunker's max_tokens.")] = 256,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Take the document from this dataset.")] = None,
    doc: Annotated[str | None, typer.Option("--doc", help="Dataset document: its source id (e.g. a Qasper paper id).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Where the datasets are.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Config whose backends (LLM, embeddings) to use.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Show the tree a builder makes of one document: titles, spans and token counts per node.

    Offsets index Path(FILE).read_text(encoding='utf-8'), or the dataset document's text. Qasper papers
    are JSON: use --dataset qasper_sample --doc PAPER_ID, or give the dataset file with --doc.
    \f
    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "a.md"
        ...     _ = path.write_text("# Guide\\n\\nIntro.\\n\\n## Setup\\n\\nInstall it.\\n", encoding="utf-8")
        ...     result = CliRunner().invoke(app, ["tree", str(path), "--max-tokens", "8"])
        >>> print(result.stdout)
        Guide  [0, 38)  10 tok
        ├── "# Guide Intro."  [0, 15)  4 tok
        └── Setup  [17, 38)  6 tok
            └── "## Setup Install it."  [17, 38)  6 tok
        <BLANKLINE>
    """
    from ragkit.config.load import load_config
    from ragkit.loaders import DEFAULT_MAX_BYTES, LoaderWarning, load_corpus
    from ragkit.loaders.files import read_text
    from ragkit.pipeline import Pipeline
    from ragkit.text.tokenizers import get_tokenizer
    from ragkit.trees._common import render_json, render_text
    from ragkit.types import Document

    from .chunk import parse_params

    if format not in ("text", "json"):
        raise ConfigError(f"--format {format!r} is not supported; use text or json")
    if file is None and dataset is None:
        raise ConfigError("give a FILE, or --dataset NAME --doc ID")
    if dataset is None and doc is not None and file is not None:
        if not file.is_file():
            raise ConfigError(f"{file}: no such file")
        dataset, data_root = file.resolve().parent.name, data_root or file.resolve().parent.parent
    if dataset is not None:
        document = _dataset_document(dataset, doc, data_root)
    else:
        assert file is not None
        if not file.is_file():
            raise ConfigError(f"{file}: no such file")
        import warnings

        text = read_text(file, DEFAULT_MAX_BYTES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LoaderWarning)
            loaded = load_corpus([file])
        meta = dict(loaded[0].metadata) if loaded else {}
        if loaded and loaded[0].text != text:
            meta.pop("headings", None)  # offsets index the raw file text; converted formats lose their headings
        document = Document(id=Document.from_text(text).id, text=text, metadata=meta)
    base: dict[str, Any] = {"backends": load_config(config)["backends"]} if config is not None else {}
    spec = {"type": builder, **parse_params(param or [])}
    pipeline = Pipeline.from_config({**base, "index": {"chunker": {"type": chunker, "max_tokens": max_tokens},
                                                       "tree": spec}}, name="tree")
    chunks = pipeline.chunker.chunk(document)
    tree = pipeline.tree_builder.build(document, chunks)
    count = get_tokenizer("minilm").count
    typer.echo(render_json(tree, document, count) if format == "json" else render_text(tree, document, count))
