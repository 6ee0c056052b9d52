"""A pytest plugin: after ``scripts/setup.sh --no-llama-cpp``, tests that need llama.cpp skip, saying why.

Tests marked ``server`` (a loopback llama.cpp server) or ``llama_cpp`` (the in-process ``llama`` backend)
need ``llama-cpp-python``, which the default set-up builds. ``setup.sh --no-llama-cpp`` skips that build
and leaves a stamp, ``RAGKIT_HOME/.setup-no-llama-cpp``; while the stamp is there and ``llama_cpp`` is
not importable, those tests are skipped with a reason that says how to add it. Without the stamp a
missing ``llama_cpp`` still fails them (a default set-up must have it). ragkit's suite loads this from
the root ``conftest.py``; ``RAGKIT_REAL_HOME`` (set there) names the home that ``setup.sh`` used.

Example:
    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> skip_reason(home, installed=False) is None              # no stamp: a missing llama_cpp fails
    True
    >>> _ = (home / STAMP).write_text("scripts/setup.sh --no-llama-cpp")
    >>> skip_reason(home, installed=False).startswith("llama-cpp-python is not installed")
    True
    >>> skip_reason(home, installed=True) is None               # built later: the tests run
    True
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

#: The stamp ``scripts/setup.sh --no-llama-cpp`` writes into ``RAGKIT_HOME``.
STAMP = ".setup-no-llama-cpp"
#: Markers of tests that need ``llama-cpp-python``.
MARKERS = ("server", "llama_cpp")


def setup_home() -> Path:
    """The ``RAGKIT_HOME`` that ``setup.sh`` used (the test session's own home is a temporary one)."""
    home = os.environ.get("RAGKIT_REAL_HOME") or os.environ.get("RAGKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "ragkit"


def llama_cpp_installed() -> bool:
    """Whether ``llama_cpp`` can be imported (located, not imported: no native library loads)."""
    return importlib.util.find_spec("llama_cpp") is not None


def skip_reason(home: Path, installed: bool | None = None) -> str | None:
    """Why llama.cpp tests skip, or ``None`` when they run (see the module docstring)."""
    if (llama_cpp_installed() if installed is None else installed) or not (home / STAMP).is_file():
        return None
    return ("llama-cpp-python is not installed: scripts/setup.sh --no-llama-cpp skipped building it "
            f"({home / STAMP}). Run scripts/build_llama_cpp.sh (or scripts/setup.sh without the flag) to run "
            "these tests.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``server`` or ``llama_cpp`` when the set-up left llama.cpp out."""
    reason = skip_reason(setup_home())
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if any(item.get_closest_marker(name) for name in MARKERS):
            item.add_marker(skip)
