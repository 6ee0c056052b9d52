"""The data-root precedence: --data-root > $RAGKIT_DATA > config data_root > RAGKIT_HOME/datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragkit.datasets import DATA_ENV, resolve_data_root
from ragkit.errors import DatasetError


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """One existing folder per precedence level; ``RAGKIT_HOME`` holds ``datasets/``."""
    out = {name: tmp_path / name for name in ("explicit", "env", "config")}
    out["default"] = tmp_path / "home" / "datasets"
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    for path in out.values():
        path.mkdir(parents=True)
    cwd = tmp_path / "project"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(DATA_ENV, raising=False)
    return out


def test_explicit_beats_env(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(roots["env"]))
    assert resolve_data_root(roots["explicit"], roots["config"]) == roots["explicit"]
    assert resolve_data_root(explicit=str(roots["explicit"]), config_value=str(roots["config"])) == roots["explicit"]


def test_env_beats_config(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(roots["env"]))
    assert resolve_data_root(None, roots["config"]) == roots["env"]


def test_config_beats_default(roots: dict[str, Path]) -> None:
    assert resolve_data_root(None, roots["config"]) == roots["config"]


def test_default_is_ragkit_home_datasets(roots: dict[str, Path]) -> None:
    assert resolve_data_root() == roots["default"]


def test_empty_values_count_as_not_given(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, "")
    assert resolve_data_root("", roots["config"]) == roots["config"]
    assert resolve_data_root("", "").resolve() == roots["default"].resolve()


def test_the_environment_is_read_never_written(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(roots["env"]))
    before = dict(os.environ)
    resolve_data_root(roots["explicit"])
    assert dict(os.environ) == before
    monkeypatch.delenv(DATA_ENV)
    resolve_data_root(roots["explicit"])
    assert DATA_ENV not in os.environ


def test_a_missing_chosen_root_is_an_error_naming_the_rule(roots: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    missing = roots["explicit"] / "nope"
    with pytest.raises(DatasetError, match=r"nope.*from --data-root"):
        resolve_data_root(missing, roots["config"])  # does not fall through to the next rule
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(DatasetError, match=r"from \$RAGKIT_DATA"):
        resolve_data_root(None, roots["config"])
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(DatasetError, match="from the config's data_root"):
        resolve_data_root(None, missing)


def test_no_default_root_says_how_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"home/datasets.*does not exist.*ragkit datasets download NAME.*--data-root"):
        resolve_data_root()


def test_user_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    assert resolve_data_root("~/data") == tmp_path / "data"
