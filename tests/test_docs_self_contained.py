"""Everything a user or contributor reads lives in the repository: no link or path into a ``shared/`` folder beside it.

A clone has no ``../shared`` (nor ``/work/shared``), so a reference there is a dead end. Exemptions,
kept narrow on purpose:

- test set-up: ``conftest.py`` files and ``tests/_shared_data.py`` (they may point ``$RAGKIT_DATA`` at a development copy);
- CI scripts under ``.ci/``;
- benchmarks' documented development commands that *set the data root*: the exact text
  ``RAGKIT_DATA=/work/shared/datasets`` in ``benchmarks/`` (measurements were taken on the
  development copy; any other path there still fails);
- this file, which has to name what it looks for.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b")
DEV_COMMAND = "RAGKIT_DATA=/work/shared/datasets"


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        return [REPO / line for line in listed.stdout.splitlines() if line]
    return [p for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts]  # an export without git


def _exempt(rel: str, line: str) -> bool:
    if rel.endswith("conftest.py") or rel == "tests/_shared_data.py" or rel.startswith(".ci/") or rel == "tests/test_docs_self_contained.py":
        return True
    return rel.startswith("benchmarks/") and not OUTSIDE.search(line.replace(DEV_COMMAND, ""))


def outside_references(files: list[Path], root: Path = REPO) -> list[str]:
    """``path:line: text`` for every reference into a shared folder outside the repository ``root``."""
    found = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary or vanished
        for lineno, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) and not _exempt(rel, line):
                found.append(f"{rel}:{lineno}: {line.strip()[:160]}")
    return found


def test_no_link_or_path_into_shared_outside_setup_and_ci() -> None:
    found = outside_references(_tracked_files())
    assert not found, ("references into a shared/ folder that a clone lacks (put the content in docs/, or "
                       "resolve data through ragkit.datasets):\n" + "\n".join(found))


def test_the_check_catches_what_it_should(tmp_path: Path) -> None:
    cases = {
        "docs/x.md": "see [methods](../shared/docs/METHODS.md)\n",
        "notebooks/n.ipynb": '"ROOT = \\"/work/shared/datasets\\""\n',
        "benchmarks/b.py": "python b.py --texts ../shared/datasets/x.md\n",
        "benchmarks/ok.py": "RAGKIT_DATA=/work/shared/datasets python ok.py\n",
        "tests/datasets/conftest.py": "ROOT = '../shared/datasets'\n",
        ".ci/run": "export RAGKIT_DATA=../shared/datasets\n",
    }
    for rel, text in cases.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    found = {f.split(":", 1)[0] for f in outside_references([tmp_path / rel for rel in cases], tmp_path)}
    assert found == {"docs/x.md", "notebooks/n.ipynb", "benchmarks/b.py"}


def test_the_docs_a_newcomer_needs_are_in_the_repository() -> None:
    for name in ("ARCHITECTURE.md", "METHODS.md", "OFFLINE.md", "DEVELOPING.md"):
        assert (REPO / "docs" / name).is_file(), name
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\(((?:docs|datasets)/[^)#]+)", readme):
        assert (REPO / link).is_file(), f"README links to {link}, which is not in the repository"
