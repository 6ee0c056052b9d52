"""The README documents the CLI that exists and configs that validate (issue 23.6).

- Its command table (``## The command line``) has a row for every command and sub-command of the Typer
  app and names every option of each; a new command or flag without a README row fails here, naming it.
- The config walkthrough (``## A config, key by key``) validates through ``ragkit validate``, and so does
  every other YAML fragment of the README laid over it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from ragkit.cli import app

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
WORD = re.compile(r"[a-z][a-z0-9-]*$")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def cli_commands() -> dict[str, set[str]]:
    """Every visible command path (``""`` for ``ragkit`` itself) → the long names of its visible options."""
    found: dict[str, set[str]] = {}

    def walk(command: Any, path: list[str]) -> None:
        options = {name for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)
                   for name in p.opts + p.secondary_opts if name.startswith("--")}
        subcommands = getattr(command, "commands", {})
        if not subcommands or not path:   # a group's own row is its sub-commands' rows (the root has options)
            found[" ".join(path)] = options
        for name, sub in subcommands.items():
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def readme_rows() -> dict[str, str]:
    """Command path → its table row, for each row of the command table.

    A row that starts with options (``| `--safe`, `--allow-host HOST` (on `run`, `index`, ...) |``) adds
    them to the rows of the commands it names.
    """
    rows: dict[str, str] = {}
    shared: list[tuple[str, list[str]]] = []
    for line in section("The command line").splitlines():
        if line.startswith("| `--"):
            first = line.split(" | ")[0]
            on = re.search(r"\(on ([^)]*)\)", first)
            shared.append((first, re.findall(r"`([a-z][a-z ]*)`", on.group(1)) if on else []))
            continue
        match = re.match(r"\|\s*`ragkit((?:[^`\\]|\\.)*)`", line)
        if not match:
            continue
        path = []
        for token in match.group(1).split():
            if not WORD.match(token):
                break
            path.append(token)
        key = " ".join(path)
        assert key not in rows, f"two README rows for `ragkit {key}`: one row per command"
        rows[key] = line
    for options, commands in shared:
        assert commands, f"the README row {options!r} does not say which commands take it: (on `run`, ...)"
        for command in commands:
            assert command in cli_commands(), f"the README row {options!r} names `{command}`, not a command"
            if command in rows:   # a command without a row of its own is reported as missing
                rows[command] += " " + options
    return rows


def test_the_readme_command_table_lists_every_command_and_option() -> None:
    rows, commands = readme_rows(), cli_commands()
    missing_commands = sorted(f"ragkit {path}".strip() for path in commands if path not in rows)
    missing_options = {f"ragkit {path}".strip(): sorted(o for o in options
                                                       if not re.search(re.escape(o) + r"(?![a-z-])", rows[path]))
                       for path, options in commands.items() if path in rows}
    missing_options = {k: v for k, v in missing_options.items() if v}
    assert not missing_commands and not missing_options, (
        "README.md's command table (## The command line) is incomplete; add a row per missing command and "
        f"name each missing option in its row. Commands without a row: {missing_commands}; "
        f"options not named: {missing_options}")


def test_every_readme_row_is_a_command_that_exists() -> None:
    unknown = sorted(f"ragkit {path}" for path in set(readme_rows()) - set(cli_commands()))
    assert not unknown, f"README.md's command table has rows for commands the CLI lacks: {unknown}"


def test_the_table_check_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # the check itself: a README without the eval row and without --no-llm fails, naming both
    without = "\n".join(line for line in README.splitlines() if not line.startswith("| `ragkit eval "))
    monkeypatch.setattr(sys.modules[__name__], "README", without.replace("--no-llm", "--no-lm"))
    with pytest.raises(AssertionError) as info:
        test_the_readme_command_table_lists_every_command_and_option()
    assert "'ragkit eval'" in str(info.value) and "'ragkit query': ['--no-llm']" in str(info.value)


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, re.S)


def _alternatives(block: str) -> list[str]:
    """A block with ``# or`` lines stands for several configs: the first part, then each alternative
    under the first part's top-level keys."""
    parts = re.split(r"^# or\s*$", block, flags=re.M)
    heads = "".join(line + "\n" for line in parts[0].splitlines() if line and not line[0].isspace())
    return [parts[0]] + [heads + part for part in parts[1:]]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base``; a stage spec (a mapping with ``type``) replaces the one it lands on."""
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and "type" not in value and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


@pytest.fixture
def beside_the_readme(tmp_path: Path) -> Path:
    """A folder that looks like the repository root to a config in it (its relative paths resolve)."""
    for name in ("docs", "configs"):
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    return tmp_path


def test_the_config_walkthrough_validates(beside_the_readme: Path) -> None:
    walkthrough = re.findall(r"```yaml\n(.*?)```", section("A config, key by key"), re.S)
    assert walkthrough and walkthrough[0].startswith("version: 1")
    path = beside_the_readme / "walkthrough.yaml"
    path.write_text(walkthrough[0], encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and result.stdout.strip() == f"ok: {path}", result.output


def test_every_readme_config_fragment_validates_over_the_walkthrough(beside_the_readme: Path) -> None:
    blocks = _yaml_blocks()
    base = yaml.safe_load(blocks[0])
    paths = []
    for i, block in enumerate(blocks[1:], 1):
        for j, text in enumerate(_alternatives(block)):
            path = beside_the_readme / f"fragment-{i}-{j}.yaml"
            path.write_text(yaml.safe_dump(_merge(base, yaml.safe_load(text)), sort_keys=False), encoding="utf-8")
            paths.append(path)
    assert len(paths) >= 4
    result = CliRunner().invoke(app, ["validate", *map(str, paths)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok: ") == len(paths)
