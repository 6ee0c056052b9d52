"""Test-session set-up shared by ``tests/`` and the docstring examples under ``ragkit/`` (``--doctest-modules``).

Each test session gets its own ``RAGKIT_HOME`` (fresh cache and indexes) whose ``models/`` and
``wheels/`` link to the real ones, so prepared models are converted once per machine, not per run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# write_guard: a session that leaves files under the repository fails, naming them and the test that wrote
# them (tests write under tmp_path only); setup_marks: after scripts/setup.sh --no-llama-cpp, tests marked
# server / llama_cpp skip with the reason; pytester: for the plugins' own tests.
pytest_plugins = ["ragkit.testing.write_guard", "ragkit.testing.setup_marks", "pytester"]


def _real_home() -> Path:
    return Path(os.environ.get("RAGKIT_HOME") or Path.home() / ".cache" / "ragkit").expanduser()


@pytest.fixture(scope="session", autouse=True)
def isolated_ragkit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    real = _real_home()
    home = tmp_path_factory.mktemp("ragkit_home")
    for shared in ("models", "wheels"):
        (real / shared).mkdir(parents=True, exist_ok=True)
        (home / shared).symlink_to(real / shared, target_is_directory=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub: fail at once instead of retrying
    dev_data = Path(__file__).resolve().parent.parent / "shared" / "datasets"
    if dev_data.is_dir():  # a development checkout's dev data (a clone without it: RAGKIT_HOME/datasets, empty)
        os.environ.setdefault("RAGKIT_DATA", str(dev_data))
    os.environ["RAGKIT_REAL_HOME"] = str(real)
    os.environ["RAGKIT_HOME"] = str(home)
    return home
