"""``ragkit eval``: a plain function with a Typer signature (:mod:`ragkit.cli.application` registers it).

Example (shell):
    ragkit eval configs/eval/chroma-chunkers.yaml --out runs/eval/chunkers
    ragkit eval configs/eval/multihop.yaml --limit 20
    ragkit eval configs/eval/chroma-chunkers.yaml --variant token --grid index.chunker.max_tokens=128,256,512

Tables go to stdout, each preceded by a line ``protocol: NAME``; progress bars and logs go to
stderr; the last line is ``output: DIR``. Exit codes: 2 config error, 3 missing dependency,
1 runtime or dataset error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragkit.cli.pipeline_commands import AllowHostOpt, SafeOpt, safety


def eval_command(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (dataset, base, protocols, variants) "
                                                    "or a pipeline config with corpus.dataset.", dir_okay=False)],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default runs/eval/<name>).")] = None,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="KEY=V1,V2,...: evaluate every variant at each value (repeatable; combinations).")] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Datasets directory (beats $RAGKIT_DATA and the config's data_root).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override KEY=VALUE in every variant's pipeline config (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N questions per corpus.")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Run only this variant (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute variants that already have results.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild indexes instead of reusing stored ones.")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not write matplotlib plots.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (variants one after another) or ray (each variant a Ray task; extra 'ray').")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster for --engine ray: auto or ray://HOST:PORT (default: a local Ray).")] = None,
    safe: SafeOpt = False,
    allow_host: AllowHostOpt = None,
) -> None:
    """Evaluate variants side by side on a dataset; print one table per protocol and write the report.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> from ragkit.cli import app
        >>> result = CliRunner().invoke(app, ["eval", "no-such-experiment.yaml"])
        >>> result.exit_code, "experiment file 'no-such-experiment.yaml' does not exist" in result.stderr
        (2, True)
    """
    from ragkit.eval.runner import load_experiment, run_experiment

    with safety(safe, allow_host, experiment):  # variants' configs are checked against the experiment's folder
        exp = load_experiment(experiment, grid=grid or (), overrides=set_ or ())
        result = run_experiment(exp, out=out, data_root=data_root, limit=limit, force=force, rebuild=rebuild,
                                only=variant or (), echo=typer.echo, plots=not no_plots,
                                engine="ray" if address else engine, address=address)
    typer.echo(f"output: {result.output_dir}")
