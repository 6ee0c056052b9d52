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


#: Limits checked on the YAML node graph before anything is built (a 350-byte alias bomb expands to
#: millions of nodes; a config is a few hundred).
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 100
_STANDARD = "tag:yaml.org,2002:"
ALLOWED_TAGS = {f"{_STANDARD}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


def _problem(source: str, node: yaml.Node | None, message: str) -> ConfigError:
    line = node.start_mark.line + 1 if node is not None else None
    where = f"{source}, line {line}" if line else source
    return ConfigError(f"{where}: {message}", [("", message, line)])


def _check_graph(root: yaml.Node, source: str) -> None:
    """Refuse recursive aliases, alias bombs, deep nesting, duplicate keys, tags and absurd integers."""
    sizes: dict[int, int] = {}

    def visit(node: yaml.Node, depth: int, path: tuple[int, ...]) -> int:
        if id(node) in path:
            raise _problem(source, node, "a YAML alias refers to a node that contains it (recursive alias); "
                                         "configs cannot be self-referential")
        if depth > MAX_DEPTH:
            raise _problem(source, node, f"nesting deeper than {MAX_DEPTH} levels; a ragkit config needs a few")
        if id(node) in sizes:
            return sizes[id(node)]
        if node.tag not in ALLOWED_TAGS:
            raise _problem(source, node, f"YAML tag {node.tag.replace(_STANDARD, '!!')!r} is not allowed; configs "
                                         "use plain mappings, lists, strings, numbers, booleans and null")
        size = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    raise _problem(source, key, f"duplicate key {name!r} in one mapping (YAML would silently keep "
                                                "the last); remove one of them")
                seen.add(name)
                size += visit(key, depth + 1, (*path, id(node))) + visit(value, depth + 1, (*path, id(node)))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                size += visit(item, depth + 1, (*path, id(node)))
        elif node.tag == f"{_STANDARD}int" and len(str(node.value)) > MAX_INT_DIGITS:
            raise _problem(source, node, f"an integer with {len(str(node.value))} digits; numbers in a config have "
                                         f"at most {MAX_INT_DIGITS}")
        if size > MAX_EXPANDED_NODES:
            raise _problem(source, node, f"the YAML expands to more than {MAX_EXPANDED_NODES:,} values (aliases "
                                         "repeating aliases?); a ragkit config is far smaller")
        sizes[id(node)] = size
        return size

    visit(root, 0, ())


def load_yaml_with_lines(text: str, source: str = "<string>") -> tuple[Any, dict[str, int]]:
    r"""Parse ``text`` safely; return the data and ``{dotted path: line}``.

    The node graph is checked before any value is built: no tags beyond plain scalars, mappings and
    lists, no duplicate keys, no recursive aliases, no alias bombs, bounded depth and integer size.

    Example:
        >>> load_yaml_with_lines("index:\n  chunker: {type: token}\n")
        ({'index': {'chunker': {'type': 'token'}}}, {'index': 1, 'index.chunker': 2, 'index.chunker.type': 2})
        >>> load_yaml_with_lines("a: 1\na: 2\n")
        Traceback (most recent call last):
        ...
        ragkit.errors.ConfigError: <string>, line 2: duplicate key 'a' in one mapping (YAML would silently keep the last); remove one of them
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_graph(node, source)
        data = yaml.safe_load(text)
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
    except RecursionError:
        raise ConfigError(f"{source}: the YAML nests too deeply to parse; a ragkit config needs a few levels") from None
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
