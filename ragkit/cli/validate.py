"""``ragkit validate CONFIG...``: every problem of every config, not only the first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer

from ragkit.cli.pipeline_commands import AllowHostOpt, SafeOpt, safety
from ragkit.errors import ConfigError, RagkitError, redact


def validate_command(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override KEY=VALUE (dotted key).")] = None,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Check config files; report every problem (dotted path, value, line), not only the first.

    \f
    Exits with the worst problem's code (2 for config errors) after checking every file. With ``--safe``
    (or ``RAGKIT_SAFE=1``) the safe-mode refusals are reported too (:mod:`ragkit.config.safety`).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "c.yaml"
        ...     _ = path.write_text("version: 1\\nindex:\\n  chunker: {type: token, max_tokens: 64}\\n")
        ...     ok = CliRunner().invoke(app, ["validate", str(path)])
        ...     bad = CliRunner().invoke(app, ["validate", str(path), "--set", "index.chunker.max_tokens=0"])
        >>> ok.exit_code, ok.stdout.startswith("ok: ")
        (0, True)
        >>> bad.exit_code, "index.chunker.max_tokens" in bad.stderr
        (2, True)
    """
    worst = 0
    for path in configs:
        try:
            with safety(safe, allow_host, path) as policy:
                what = _validate_one(path, list(set_ or []))
                what += " (safe mode: every path and endpoint allowed)" if policy is not None else ""
        except RagkitError as exc:
            typer.echo(redact(str(exc)), err=True)
            worst = max(worst, exc.exit_code)
        else:
            typer.echo(f"ok: {path}{what}")
    if worst:
        raise typer.Exit(worst)


def is_experiment(data: Any) -> bool:
    """Whether a parsed YAML file is an experiment (``dataset``/``variants``/``protocols``), not a pipeline config.

    Example:
        >>> is_experiment({"dataset": "chroma_chunking_eval", "variants": []}), is_experiment({"index": {}})
        (True, False)
    """
    return isinstance(data, Mapping) and bool({"dataset", "variants", "protocols", "grid", "base"} & set(data))


def _validate_one(path: Path, overrides: list[str]) -> str:
    """Validate a pipeline config or an experiment file; returns a note for the ``ok:`` line."""
    from ragkit.config.load import load_config
    from ragkit.config.yaml_lines import load_yaml_file

    if path.is_file():
        data, _lines = load_yaml_file(path)
        if is_experiment(data):
            from ragkit.eval.experiment import load_experiment

            try:
                experiment = load_experiment(path, overrides=overrides)  # its base and every variant are validated
            except ConfigError as exc:
                raise ConfigError(f"{path} (an experiment file): {exc}") from None
            for variant in experiment.variants:
                for warning in hosted_key_warnings(load_config(experiment.variant_config(variant))):
                    typer.echo(f"warning: {path}: variant {variant.name}: {warning}", err=True)
            return f" (experiment: base config and {len(experiment.variants)} variant(s) valid)"
    config = load_config(path, overrides)
    questions = (config.get("query") or {}).get("questions")
    if questions and not Path(questions).is_file():
        raise ConfigError(f"{path}: query.questions: file {questions!r} does not exist (relative paths resolve from "
                          "the config file's folder); give a JSONL file of {\"id\", \"question\"} objects")
    for warning in hosted_key_warnings(config):
        typer.echo(f"warning: {path}: {warning}", err=True)
    return ""


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "[::1]")


def hosted_key_warnings(config: Mapping[str, Any]) -> list[str]:
    """Warnings for hosted backends (no local ``base_url``) whose ``api_key_env`` variable is unset.

    Example:
        >>> cfg = {"backends": {"llm": {"big": {"type": "openai", "api_key_env": "NO_SUCH_KEY_VAR_X"}}}}
        >>> print(*hosted_key_warnings(cfg))
        backends.llm.big: environment variable NO_SUCH_KEY_VAR_X is not set; the hosted openai backend needs it (export NO_SUCH_KEY_VAR_X=...)
    """
    import os

    found = []
    for section, backends in (config.get("backends") or {}).items():
        for name, spec in (backends or {}).items():
            if not isinstance(spec, Mapping) or not spec.get("api_key_env"):
                continue
            host = urlparse(str(spec.get("base_url") or "https://api.openai.com")).hostname or ""
            if host in _LOCAL_HOSTS or host.startswith("[") or os.environ.get(spec["api_key_env"]):
                continue
            var = spec["api_key_env"]
            found.append(f"backends.{section}.{name}: environment variable {var} is not set; the hosted "
                         f"{spec.get('type')} backend needs it (export {var}=...)")
    return found
