"""``ragkit viz FILE --chunker A [--chunker B ...]``: one HTML page showing how each chunker cuts a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.cli.chunk import file_document, parse_params
from ragkit.errors import ConfigError


def parse_chunker_spec(spec: str, params: list[str] | None = None) -> dict[str, Any]:
    """``TYPE[:KEY=VALUE,KEY=VALUE...]`` as a chunker spec; ``params`` (``--param``) apply to every chunker.

    Values are parsed as in ``ragkit chunk --param`` (YAML scalars).

    Example:
        >>> parse_chunker_spec("recursive:max_tokens=128,overlap_tokens=0")
        {'type': 'recursive', 'max_tokens': 128, 'overlap_tokens': 0}
        >>> parse_chunker_spec("sentence", ["max_tokens=64"])
        {'type': 'sentence', 'max_tokens': 64}
    """
    kind, _, rest = spec.partition(":")
    if not kind.strip():
        raise ConfigError(f"--chunker {spec!r} has no chunker type; write TYPE or TYPE:KEY=VALUE,... "
                          "(e.g. recursive:max_tokens=128; see `ragkit components`)")
    own = [p for p in rest.split(",") if p.strip()]
    bad = [p for p in own if "=" not in p]
    if bad:
        raise ConfigError(f"--chunker {spec!r}: {bad[0]!r} is not KEY=VALUE; write TYPE:KEY=VALUE,KEY=VALUE")
    return {"type": kind.strip(), **parse_params(list(params or [])), **parse_params([p.strip() for p in own])}


def viz_command(
    file: Annotated[Path, typer.Argument(help="Text, Markdown or other file to visualise.", exists=True, dir_okay=False)],
    chunker: Annotated[list[str], typer.Option(
        "--chunker", "-c", help="Chunker TYPE or TYPE:KEY=VALUE,... (repeat for side-by-side columns).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write (default: FILE's name + .chunks.html in the current directory).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Parameter KEY=VALUE for every chunker (repeatable).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Config whose backends (LLM, embeddings) to use.")] = None,
    page_chars: Annotated[int, typer.Option("--page-chars", help="Characters per page of the document.", min=1000)] = 20_000,
) -> None:
    """Write one self-contained HTML page showing how each chunker cuts FILE (columns side by side).

    Hover a chunk for its id, offsets, token count, heading path and metadata; chunk starts that no
    other column shares are marked red; perplexity/margin columns get a per-sentence score strip.
    The page needs no network; long files are paged. Prints the page's path.
    \f
    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "a.txt"
        ...     _ = path.write_text("One sentence. Another one.", encoding="utf-8")
        ...     args = ["viz", str(path), "-c", "sentence:max_tokens=4", "-c", "token", "--out", f"{tmp}/a.html"]
        ...     result = CliRunner().invoke(app, args)
        ...     page = Path(tmp, "a.html").read_text(encoding="utf-8")
        >>> result.exit_code, result.stdout.strip().endswith("a.html"), '"name":"token"' in page
        (0, True, True)
    """
    from ragkit.config.load import load_config
    from ragkit.pipeline import Pipeline
    from ragkit.viz import render

    base: dict[str, Any] = {}
    if config is not None:
        base = {"backends": load_config(config)["backends"]}
    specs = {name: parse_chunker_spec(name, param) for name in chunker}
    first = Pipeline.from_config({**base, "index": {"chunker": next(iter(specs.values()))}}, name="viz")
    chunkers = {}
    for name, spec in specs.items():  # forks share the loaded LLM/embedder between columns
        chunkers[name] = first.fork(load_config({**base, "index": {"chunker": spec}})).chunker
    doc = file_document(file)
    page = render(doc, chunkers, title=str(file), page_chars=page_chars)
    target = out if out is not None else Path(f"{file.name}.chunks.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    typer.echo(str(target))
