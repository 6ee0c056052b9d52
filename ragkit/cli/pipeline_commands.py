"""``ragkit run``, ``ragkit index`` and ``ragkit query``: plain functions with Typer signatures.

:mod:`ragkit.cli.application` registers them (inside the error boundary). Results go to stdout; logs,
progress bars and errors to stderr. ``ragkit run`` ends stdout with the ``usage:`` line
(:meth:`ragkit.types.Usage.summary_line`) and ``output: DIR``. Exit codes: 2 config error,
3 missing dependency, 1 runtime error.

Example (shell):
    ragkit run configs/quickstart.yaml --out runs/try1
    ragkit index configs/quickstart.yaml --rebuild
    ragkit query configs/quickstart.yaml "How is the index store written?" --k 10 --show-metadata
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.errors import ConfigError
from ragkit.types import Answer, Query, ScoredChunk

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline config (YAML).", dir_okay=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override KEY=VALUE with a dotted key (repeatable).")]
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Ignore and replace the stored index.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM/embedding/chunk cache.")]
DataRootOpt = Annotated[Path | None, typer.Option("--data-root", help="Datasets directory (beats $RAGKIT_DATA).")]
EngineOpt = Annotated[str | None, typer.Option("--engine", help="Index engine: local (default) or ray (extra 'ray'); "
                                                                  "overrides the config's engine.type.")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster for --engine ray: auto or ray://HOST:PORT "
                                                                   "(default: a local Ray).")]
SafeOpt = Annotated[bool, typer.Option("--safe", help="For configs you did not write: refuse paths outside the config's "
                                        "folder and RAGKIT_HOME, non-loopback endpoints and code-running settings "
                                        "(also RAGKIT_SAFE=1).")]
AllowHostOpt = Annotated[list[str] | None, typer.Option("--allow-host", help="Under --safe, also let endpoints reach "
                                                         "HOST (repeatable; also RAGKIT_ALLOW_HOSTS=H1,H2).")]


def safety(safe: bool, allow_host: list[str] | None, config: Path | None = None) -> Any:
    """The safe-mode context of a command: ``--safe`` (or ``$RAGKIT_SAFE``), its hosts, the config's folder.

    Every config the command loads inside it is checked by :func:`ragkit.config.load.load_config`.

    Example:
        >>> with safety(True, ["gpu-box"], Path("/srv/project/rag.yaml")) as policy:
        ...     sorted(policy.allow_hosts), policy.roots
        (['gpu-box'], (PosixPath('/srv/project'),))
    """
    from ragkit.config.safety import safe_mode

    roots = [config.expanduser().absolute().parent] if config is not None else []
    return safe_mode(safe, allow_hosts=list(allow_host or []), roots=roots)


def engine_overrides(engine: str | None, address: str | None) -> list[str]:
    """``--set`` overrides for ``--engine`` / ``--address`` (``--address`` implies ``--engine ray``).

    Example:
        >>> engine_overrides("ray", "auto")
        ['engine.type=ray', 'engine.address=auto']
        >>> engine_overrides(None, None)
        []
    """
    if address and engine not in (None, "ray"):
        from ragkit.errors import ConfigError

        raise ConfigError(f"--address {address!r} is for --engine ray, but --engine is {engine!r}; drop one of them")
    out = [f"engine.type={engine or 'ray'}"] if engine or address else []
    return out + ([f"engine.address={address}"] if address else [])


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def escape_control(text: str, keep: str = "") -> str:
    """``text`` with control characters shown as escapes, so document text cannot drive the terminal.

    ANSI/OSC escape sequences, BEL, backspace, carriage return, C1 controls and bidi overrides become
    ``\\x1b``-style escapes; characters in ``keep`` (e.g. ``"\\n"`` for multi-line answers) stay.

    Example:
        >>> escape_control("red\\x1b[31m title\\x1b]0;pwned\\x07 ok")
        'red\\\\x1b[31m title\\\\x1b]0;pwned\\\\x07 ok'
    """
    import unicodedata

    def shown(c: str) -> str:
        if c in keep:
            return c
        if unicodedata.category(c) == "Cc" or c in _BIDI:
            code = ord(c)
            return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        return c

    return "".join(map(shown, text)) if any(unicodedata.category(c) == "Cc" or c in _BIDI for c in text) else text


def _preview(text: str, width: int = 100) -> str:
    flat = escape_control(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_chunk(rank: int, scored: ScoredChunk, show_metadata: bool = False) -> list[str]:
    """Lines describing one cited chunk: rank, source and offsets, score, a text preview.

    Example:
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Stores are written atomically.", source_id="docs/store.md")
        >>> scored = ScoredChunk(Chunk.from_span(doc, 0, 30, 6, doc.metadata), 0.5)
        >>> format_chunk(1, scored)
        ['  [1] docs/store.md:0-30  score=0.5000', '      Stores are written atomically.']
    """
    chunk = scored.chunk
    meta = chunk.to_dict()["metadata"]
    source = meta.get("source_id") or meta.get("path") or chunk.doc_id[:12]
    heading = " > ".join(h for h in meta.get("heading_path") or [] if h)
    source, heading = escape_control(str(source)), escape_control(heading)
    lines = [f"  [{rank}] {source}:{chunk.start}-{chunk.end}  score={scored.score:.4f}"
             + (f"  ({heading})" if heading else ""),
             f"      {_preview(chunk.text)}"]
    if show_metadata:
        shown = {k: v for k, v in meta.items() if k not in ("headings",)}
        lines.append("      metadata: " + escape_control(json.dumps(shown, ensure_ascii=False, default=str)))
    return lines


def format_answer(query: Query, answer: Answer, show_metadata: bool = False) -> str:
    """An answer with its cited chunks, as printed by ``ragkit run`` and ``ragkit query``.

    Example:
        >>> print(format_answer(Query.from_text("How are stores written?", id="q1"), Answer("Atomically.")))
        [q1] How are stores written?
        answer: Atomically.
        cited chunks (0):
    """
    lines = [f"[{escape_control(str(query.id))}] {escape_control(query.text)}",
             f"answer: {escape_control(answer.text, keep=chr(10) + chr(9))}", f"cited chunks ({len(answer.chunks)}):"]
    for rank, scored in enumerate(answer.chunks, 1):
        lines.extend(format_chunk(rank, scored, show_metadata))
    return "\n".join(lines)


def format_trace(answer: Answer, full: bool = True) -> list[str]:
    """Lines describing what the selector links did: ids per link, rationales (``full``) and every flag.

    Reads ``answer.trace["stages"]`` (``meteora`` rationales, ``verifier`` / ``perplexity_filter`` flags);
    empty when no selector link reported anything.

    Example:
        >>> trace = {"stages": [{"slot": "query.selector.1", "type": "verifier", "ids": ["c1"], "details": {
        ...     "flags": [{"chunk_id": "c2abcdef", "type": "instruction", "reason": "tells the reader what to answer"}]}}]}
        >>> format_trace(Answer("x", trace=trace))
        ['selector verifier (query.selector.1): 1 chunk(s) kept', '  flag c2abcdef instruction: tells the reader what to answer']
    """
    lines: list[str] = []
    for stage in answer.trace.get("stages", []):
        details = stage.get("details") or {}
        if not str(stage.get("slot", "")).startswith("query.selector") or not details:
            continue
        lines.append(f"selector {stage.get('type', '?')} ({stage['slot']}): {len(stage.get('ids', []))} chunk(s) kept")
        rationales = details.get("rationales") or []
        if full:
            for i, r in enumerate(rationales, 1):
                flags = f"  [flags: {r['flag_instructions']}]" if r.get("flag_instructions") else ""
                lines.append(f"  rationale {i} [{r.get('label', '')}] {r.get('strategy', '')}{flags}")
            for failure in details.get("parse_failures") or []:
                lines.append(f"  rationale attempt {failure.get('attempt')} failed: {failure.get('error')}")
        elif rationales:
            lines.append(f"  {len(rationales)} rationale(s)" + (" (fallback: the query)" if details.get("fallback") else ""))
        for flag in details.get("flags") or []:
            lines.append(f"  flag {str(flag.get('chunk_id', '?'))[:12]} {flag.get('type')}: {flag.get('reason', '')}")
    return lines


def run(
    config: ConfigArg,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default: output.dir or runs/<config-stem>/).")] = None,
    rebuild: RebuildOpt = False,
    no_cache: NoCacheOpt = False,
    data_root: DataRootOpt = None,
    questions: Annotated[Path | None, typer.Option("--questions", help="Questions JSONL ({id, question} per line).")] = None,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Index the corpus, answer every question, print answers with cited chunks, write answers.jsonl and summary.json.

    \f
    Stdout ends with the ``usage:`` line and ``output: DIR``; a config error exits with 2.

    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["run", "no-such-config.yaml"])
        >>> result.exit_code, result.stderr.startswith("error: ")
        (2, True)
    """
    from ragkit.indexing import describe
    from ragkit.runner import run_config

    def on_index(report: Any) -> None:
        typer.echo(describe(report), err=True)

    def on_answer(query: Query, answer: Answer) -> None:
        typer.echo(format_answer(query, answer))
        for line in format_trace(answer, full=False):  # selector links' counts and flags (e.g. verifier)
            typer.echo(line)
        typer.echo("")

    with safety(safe, allow_host, config):
        result = run_config(config, set_ or [], out=out, rebuild=rebuild, no_cache=no_cache, data_root=data_root,
                            questions=questions, on_answer=on_answer, on_index=on_index)
    typer.echo(f"{len(result.answers)} questions answered; answers.jsonl and summary.json written", err=True)
    typer.echo(result.usage.summary_line())
    typer.echo(f"output: {result.output_dir}")


def index(
    config: ConfigArg,
    set_: SetOpt = None,
    rebuild: RebuildOpt = False,
    no_cache: NoCacheOpt = False,
    data_root: DataRootOpt = None,
    engine: EngineOpt = None,
    address: AddressOpt = None,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Build (or update, or reuse) the persisted index for a config; print what was done.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["index", "no-such-config.yaml"])
        >>> result.exit_code, result.stderr.startswith("error: ")
        (2, True)
    """
    from ragkit.indexing import describe
    from ragkit.runner import index_config

    overrides = [*(set_ or []), *engine_overrides(engine, address)]
    with safety(safe, allow_host, config):
        pipeline, report = index_config(config, overrides, rebuild=rebuild, no_cache=no_cache, data_root=data_root)
    typer.echo(describe(report))
    typer.echo(f"index hash: {pipeline.index_hash()}  ({report.seconds:.2f} s)")
    for slot, usage in sorted(pipeline.stage_usage.items()):
        typer.echo(f"  {slot:<16} {usage.wall_time_s:8.3f} s  embedding_calls={usage.embedding_calls} "
                   f"llm_calls={usage.llm_calls}")
    typer.echo(pipeline.run_usage().summary_line())


def query(
    config: ConfigArg,
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    set_: SetOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="Chunks to retrieve (overrides query.retrieve.k).")] = None,
    filter: Annotated[str | None, typer.Option("--filter", help='Metadata filter as JSON, e.g. \'{"source_id": "docs/a.md"}\'.')] = None,
    show_metadata: Annotated[bool, typer.Option("--show-metadata", help="Print each cited chunk's metadata.")] = False,
    no_cache: NoCacheOpt = False,
    show_trace: Annotated[bool, typer.Option("--show-trace", help="Print the selector links' rationales and flags.")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Retrieval only (query.aggregator=null): print the selected "
                                         "chunks with scores and offsets; no LLM is loaded.")] = False,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Answer one question from the persisted index (build it first with `ragkit index` or `ragkit run`).

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["query", "any.yaml", "What changed?", "--k", "0"])
        >>> result.exit_code, result.stderr
        (2, 'error: --k 0: must be a positive integer\\n')
    """
    from ragkit.retrievers.filters import compile_filter
    from ragkit.runner import build_pipeline

    parsed = None
    if filter is not None:
        try:
            parsed = json.loads(filter)
        except ValueError as exc:
            raise ConfigError(f"--filter {filter!r} is not valid JSON ({exc}); e.g. --filter '{{\"year\": {{\"gte\": 2020}}}}'") from exc
        compile_filter(parsed, "--filter")
    if k is not None and k <= 0:
        raise ConfigError(f"--k {k}: must be a positive integer")
    overrides: list = list(set_ or [])
    if no_llm:
        overrides.append(("query.aggregator", None))
    with safety(safe, allow_host, config):
        pipeline = build_pipeline(config, overrides, no_cache=no_cache)
        the_query = Query.from_text(question, id="query")
        answer = pipeline.query(the_query, filter=parsed, k=k)
    typer.echo(format_answer(the_query, answer, show_metadata))
    if show_trace:
        for line in format_trace(answer):
            typer.echo(line)
    typer.echo(answer.usage.summary_line())
