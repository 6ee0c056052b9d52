"""Safe YAML loading that remembers the line of every key, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ragkit.errors import ConfigError


def _walk(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            lines[path] = key_node.start_mark.line + 1
            _walk(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}" if prefix else str(i)
            lines[path] = item.start_mark.line + 1
            _walk(item, path, lines)


def load_yaml_with_lines(text: str, source: str = "<string>") -> tuple[Any, dict[str, int]]:
    """Parse ``text`` with ``yaml.SafeLoader``; return the data and ``{dotted path: line}``."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f"{source}, line {line}" if line else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{where}: malformed YAML: {problem}. Check indentation and quoting near that line "
            "(YAML tags such as !!python/... are not allowed).",
            [("", f"malformed YAML: {problem}", line)],
        ) from None
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, "", lines)
    return data, lines


def load_yaml_file(path: str | Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file safely; return the data and ``{dotted path: line}`` for error messages."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}. Give the path of a YAML config, e.g. configs/quickstart.yaml") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc}); save it as UTF-8") from None
    return load_yaml_with_lines(text, str(path))


def line_for(path: str, lines: dict[str, int]) -> int | None:
    """The line of ``path`` or of its nearest ancestor that appears in the file."""
    parts = path.split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None
