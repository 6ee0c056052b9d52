"""The ``notebooks`` extra installs what opening and re-running ``notebooks/`` needs (issue 23.6)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]


def closure(extra: str) -> tuple[set[str], set[str]]:
    """The extras ``ragkit[extra]`` pulls in (itself included) and the distributions they name."""
    extras, dists, todo = set(), set(), [extra]
    while todo:
        name = todo.pop()
        if name in extras:
            continue
        extras.add(name)
        for line in EXTRAS[name]:
            req = Requirement(line)
            if canonicalize_name(req.name) == "ragkit":
                todo.extend(req.extras)
            else:
                dists.add(canonicalize_name(req.name))
    return extras, dists


def installed_closure(dists: set[str]) -> set[str]:
    """``dists`` and everything they require, as installed here (markers for extras ignored)."""
    seen, todo = set(), list(dists)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r)
    return seen


def code(path: Path) -> str:
    book = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code")


def test_notebooks_extra_has_the_ui_the_headless_runner_and_the_kernel() -> None:
    extras, dists = closure("notebooks")
    assert {"jupyterlab", "nbclient", "ipykernel", "matplotlib"} <= dists
    assert {"all", "peers", "embeddings", "retrieval", "transformers", "eval"} <= extras
    assert "notebooks" not in closure("dev")[0], "dev stays without JupyterLab: the suite runs notebooks via nbclient"


def test_every_module_a_notebook_imports_comes_with_the_extra() -> None:
    _, dists = closure("notebooks")
    provided = installed_closure(dists)
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for path in NOTEBOOKS:
        modules = set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", code(path), re.M))
        for module in sorted(modules - set(sys.stdlib_module_names) - {"ragkit"}):
            names = {canonicalize_name(d) for d in owners.get(module, [module])}
            if not names & provided:
                missing.setdefault(path.name, []).append(module)
    assert not missing, f"modules the notebooks import that ragkit[notebooks] does not install: {missing}"


def test_every_stage_a_notebook_experiment_uses_has_its_extra_in_notebooks() -> None:
    from ragkit.eval.runner import load_experiment
    from ragkit.registry import default_registry

    extras, _ = closure("notebooks")
    by_name: dict[str, set[str | None]] = {}
    for entry in default_registry().entries(None, plugins=False):
        by_name.setdefault(entry.name, set()).add(entry.extra)

    def types(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["type"]} if isinstance(node.get("type"), str) else set()
            return found.union(*(types(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(types(v) for v in node))
        return set()

    experiments = {m for path in NOTEBOOKS for m in re.findall(r'EXPERIMENT = "([^"]+)"', code(path))}
    assert {"configs/eval/chroma-chunkers.yaml", "configs/eval/multihop.yaml"} <= experiments
    unmet = set()
    for name in sorted(experiments):
        exp = load_experiment(REPO / name)
        for variant in exp.variants:
            for stage in types(exp.variant_config(variant)):
                needed = by_name.get(stage, {None})
                if None not in needed and not needed & extras:
                    unmet.add((name, variant.name, stage, tuple(sorted(needed))))
    assert not unmet, f"stages whose extra ragkit[notebooks] lacks: {sorted(unmet)}"


def test_readme_says_how_to_open_and_rerun_the_notebooks() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Notebooks"):]
    section = section[:section.index("\n## ", 1)]
    for needed in ("pip install -e '.[notebooks]'", "jupyter lab notebooks/", "jupyter execute --inplace",
                   "RAGKIT_DATA", "ragkit datasets download", "RAGKIT_NOTEBOOK_REDUCED=1"):
        assert needed in section, needed
    for path in NOTEBOOKS:
        assert path.name in section, f"{path.name} is not described in the README's notebooks section"
