"""The layering of ``ragkit/``: no import cycles, stages below the pipeline, no process-global wiring."""

from __future__ import annotations

import os
import re

import pytest
from import_graph import PACKAGE, cycles, import_graph, modules

#: Packages holding stages: they may use the core (types, stage, registry, errors, text, llm, ...) but
#: never what sits above them.
STAGE_PACKAGES = ("chunkers", "enrichers", "embeddings", "retrievers", "rerankers", "selectors", "aggregators",
                  "scorers", "loaders")
ABOVE_STAGES = ("ragkit.eval", "ragkit.cli", "ragkit.testing", "ragkit.pipeline", "ragkit.runner")


def test_the_import_graph_has_no_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (every import counted, lazy ones too): " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package", STAGE_PACKAGES)
def test_stage_packages_do_not_import_the_layers_above(package):
    graph = import_graph()
    bad = {module: sorted(t for t in targets if t.startswith(ABOVE_STAGES))
           for module, targets in graph.items() if module.startswith(f"ragkit.{package}")}
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"stage modules importing eval/cli/testing/pipeline/runner: {bad}"


def _code_lines(path):
    """Source lines outside docstring examples (``>>>``/``...`` lines are documentation)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith((">>>", "...", "#")):
            yield number, line


#: The environment writes ragkit may make, each for a setting its library reads only from the environment:
#: ``ragkit._lazy.no_jax_preallocation`` sets XLA_PYTHON_CLIENT_PREALLOCATE=false before bm25s imports JAX,
#: only when unset and JAX is not imported (else JAX reserves most of the GPU the embedder needs).
ALLOWED_ENV_WRITES = {("ragkit._lazy", 'os.environ[JAX_PREALLOCATE] = "false"')}


def test_no_process_global_wiring_in_ragkit():
    offenders = []
    for name, path in modules().items():
        for number, line in _code_lines(path):
            if re.search(r"os\.environ\[[^\]]+\]\s*=|os\.environ\.(update|setdefault|pop)\(|os\.putenv\(", line):
                if (name, line.strip()) not in ALLOWED_ENV_WRITES:
                    offenders.append(f"{name}:{number}: {line.strip()}")
            if "set_default_cache_mode" in line:
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "process-wide state written by ragkit: " + "; ".join(offenders)


def test_stages_never_build_backends_through_the_global_registry():
    offenders = [f"{name}:{number}"
                 for name, path in modules().items() if name.split(".")[1:2] and name.split(".")[1] in STAGE_PACKAGES
                 for number, line in _code_lines(path) if "default_registry()" in line]
    assert not offenders, f"stage code calling default_registry() (use ragkit.backends.resolve_backend): {offenders}"


def test_the_graph_sees_every_module():
    assert "ragkit.pipeline" in modules() and (PACKAGE / "pipeline.py").is_file()
    assert "ragkit.indexing" in import_graph()["ragkit.pipeline"]


def test_the_allowed_env_write_only_fills_an_unset_variable(monkeypatch):
    import sys

    from ragkit import _lazy

    monkeypatch.setenv(_lazy.JAX_PREALLOCATE, "true")
    _lazy.no_jax_preallocation()
    assert os.environ[_lazy.JAX_PREALLOCATE] == "true"  # a user's setting is kept
    monkeypatch.delenv(_lazy.JAX_PREALLOCATE)
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    _lazy.no_jax_preallocation()
    assert os.environ[_lazy.JAX_PREALLOCATE] == "false"
