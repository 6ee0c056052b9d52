"""The ``ragkit`` command line (Typer): one package, one module per command group, one error boundary.

* :mod:`ragkit.cli.boundary`: ragkit errors → ``error:`` line + exit code (2 config, 3 missing
  dependency, 1 runtime); ragkit warnings → one ``warning:`` line; every command runs inside it.
* :mod:`ragkit.cli.application`: the ``app``, its commands in ``--help`` order, and :func:`main`.
* :mod:`ragkit.cli.global_options`: ``ragkit --quiet`` and the other options before the command.
* :mod:`ragkit.cli.chunk`, :mod:`~ragkit.cli.validate`, :mod:`~ragkit.cli.components`,
  :mod:`~ragkit.cli.pipeline_commands` (``run``, ``index``, ``query``), :mod:`~ragkit.cli.models`
  (the ``models`` group), :mod:`~ragkit.cli.eval`.

Example:
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["components", "--kind", "nope"])
    >>> result.exit_code, result.stderr.startswith("error: --kind 'nope' is not a component kind")
    (2, True)
"""

from ragkit.cli.application import app, main
from ragkit.cli.global_options import global_options

app.callback()(global_options)  # ragkit --quiet / --progress-interval / --library-bars COMMAND

__all__ = ["app", "main"]
