"""The ``ragkit`` command line (Typer).

Logs, progress bars and errors go to stderr; results to stdout. Exit codes: 2 config error,
3 missing dependency, 1 runtime error.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ragkit.errors import RagkitError

app = typer.Typer(
    name="ragkit",
    help="RAG toolkit whose edge is chunking and selection. See `ragkit COMMAND --help`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn ragkit errors into a message on stderr and a distinct exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagkitError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _parse_params(params: list[str]) -> dict[str, Any]:
    from ragkit.config.load import parse_override

    return dict(parse_override(p) for p in params)


@app.command("chunk")
@handle_errors
def chunk_command(
    file: Annotated[Path, typer.Argument(help="Text, Markdown or other file to chunk.", exists=True, dir_okay=False)],
    chunker: Annotated[str, typer.Option("--chunker", "-c", help="Chunker type (see `ragkit components`).")] = "recursive",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Chunker parameter KEY=VALUE (repeatable).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Config whose backends (LLM, embeddings) to use.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl.")] = "table",
) -> None:
    """Show what a chunker does to one file. Offsets index Path(FILE).read_text(encoding='utf-8').

    A file that is not UTF-8 is decoded with the loaders' fallback (BOM, cp1252, latin-1) and a warning;
    offsets then index that decoded text.
    """
    from ragkit.config.load import load_config
    from ragkit.loaders import DEFAULT_MAX_BYTES, LoaderWarning, load_corpus
    from ragkit.loaders.files import read_text
    from ragkit.pipeline import Pipeline
    from ragkit.types import Document

    if format not in ("table", "jsonl"):
        raise fail(f"--format {format!r} is not supported; use table or jsonl", 2)
    base: dict[str, Any] = {}
    if config is not None:
        base = {"backends": load_config(config)["backends"]}
    spec = {"type": chunker, **_parse_params(param or [])}
    pipeline = Pipeline.from_config({**base, "index": {"chunker": spec}}, name="chunk")
    text = read_text(file, DEFAULT_MAX_BYTES)  # = read_text(encoding="utf-8"); other encodings warn and decode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoaderWarning)  # read_text above already said it
        loaded = load_corpus([file])
    meta = dict(loaded[0].metadata) if loaded else {}
    if loaded and loaded[0].text != text:
        meta.pop("headings", None)  # offsets must index the raw file text; converted formats lose headings
    doc = Document(id=Document.from_text(text).id, text=text, metadata=meta)
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


@app.command("validate")
def validate_command(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override KEY=VALUE (dotted key).")] = None,
) -> None:
    """Check config files; report every problem (dotted path, value, line), not only the first."""
    from ragkit.config.load import load_config

    worst = 0
    for path in configs:
        try:
            load_config(path, set_ or [])
        except RagkitError as exc:
            typer.echo(str(exc), err=True)
            worst = max(worst, exc.exit_code)
        else:
            typer.echo(f"ok: {path}")
    if worst:
        raise typer.Exit(worst)


@app.command("components")
def components_command(
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this kind (chunker, retriever, ...).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List every registered component with the extra it needs (imports nothing heavy)."""
    from ragkit._builtins import KINDS
    from ragkit.registry import default_registry

    if kind is not None and kind not in KINDS:
        raise fail(f"--kind {kind!r} is not a component kind; kinds: {', '.join(KINDS)}", 2)
    entries = list(default_registry().entries(kind))
    if format == "json":
        typer.echo(json.dumps([{"kind": e.kind, "name": e.name, "extra": e.extra, "description": e.description,
                                "import_path": e.import_path} for e in entries], indent=2))
        return
    typer.echo(f"{'kind':<11} {'name':<22} {'extra':<13} description")
    for e in entries:
        typer.echo(f"{e.kind:<11} {e.name:<22} {e.extra or '-':<13} {e.description}")


def _register_optional_commands() -> None:
    """Commands implemented next to the subsystems they drive."""
    import importlib

    for module_name, register in (
        ("ragkit.cli_run", lambda m: (app.command("run")(handle_errors(m.run)),
                                      app.command("index")(handle_errors(m.index)),
                                      app.command("query")(handle_errors(m.query)))),
        ("ragkit.llm.cli_models", lambda m: app.add_typer(m.models_app, name="models")),
        ("ragkit.eval.cli_eval", lambda m: app.command("eval")(handle_errors(m.eval_command))),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        register(module)


_register_optional_commands()


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """ragkit's own warnings as one ``warning: ...`` line on stderr; others as Python prints them."""
    from ragkit.errors import RagkitWarning

    if issubclass(category, RagkitWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main() -> None:
    """Console-script entry point."""
    warnings.showwarning = _show_warning
    try:
        app()
    except RagkitError as exc:  # raised outside a wrapped command (e.g. while building the app)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
