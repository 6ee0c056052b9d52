"""YAML → safe parse → pydantic schema → per-stage parameter checks → normalised config.

Every problem is collected (``ragkit validate`` reports them all); each names the dotted path,
the value, what is allowed and, for files, the line.

Example:
    >>> cfg = load_config({"index": {"chunker": {"type": "token", "max_tokens": 64}}})
    >>> cfg["index"]["chunker"]["max_tokens"], cfg["query"]["selector"]["type"]
    (64, 'top_k')
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ragkit.config.schema import STAGE_SLOTS, RagkitConfig
from ragkit.config.yaml_lines import line_for, load_yaml_file
from ragkit.errors import ConfigError, MissingDependencyError, RegistrationError, UnknownComponentError
from ragkit.registry import Registry, default_registry
from ragkit.stage import collaborator_params, nested_stage_params, param_model, validation_problems

BACKEND_KIND_BY_SECTION = {"llm": "llm", "embeddings": "embedder"}
SECTION_BY_BACKEND_KIND = {v: k for k, v in BACKEND_KIND_BY_SECTION.items()}

Problem = tuple[str, str, int | None]


def parse_override(assignment: str) -> tuple[str, Any]:
    """``"a.b=3"`` → ``("a.b", 3)``; the value is parsed as YAML (numbers, booleans, lists, null)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. index.chunker.max_tokens=128")
    key, _, raw = assignment.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {assignment!r}: the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: value {raw!r} is not valid YAML ({exc})") from None
    return key, value


def _default_slot(data: dict[str, Any], key: str) -> None:
    """Before overriding inside a stage slot the file leaves out, start from that slot's default."""
    defaults = RagkitConfig().model_dump()
    for path, _kind in STAGE_SLOTS:
        section, slot = path.split(".")
        if key.startswith(path + ".") and slot not in (data.get(section) or {}):
            default = defaults[section][slot]
            if default is not None:
                data.setdefault(section, {})[slot] = copy.deepcopy(default)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str | tuple[str, Any]]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config mapping (returns a new mapping).

    Overriding one parameter of a stage the file leaves out (``query.selector.k=3``) starts from
    that stage's default (``{type: top_k, k: 5}``).
    """
    data = copy.deepcopy(data) if data else {}
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        _default_slot(data, key)
        node: Any = data
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(f"--set {key}: empty segment in the dotted key; write e.g. index.enrichers.0.type=...")
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(node, list):
                position = _list_index(key, parts[:i], node, part)
                if position == len(node):
                    node.append([] if nxt.isdigit() else {})
                node = node[position]
            else:
                if node.get(part) is None:
                    node[part] = [] if nxt.isdigit() else {}
                node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is {node!r}, not a mapping or a list")
        last = parts[-1]
        if isinstance(node, list):
            position = _list_index(key, parts[:-1], node, last)
            if position == len(node):
                node.append(value)
            else:
                node[position] = value
        else:
            node[last] = value
    return data


def _list_index(key: str, where: list[str], node: list[Any], part: str) -> int:
    """``part`` as a position in the list ``node`` (0..len: len appends), or a clean error."""
    if not part.isdigit() or int(part) > len(node):
        name = ".".join(where) or "(top level)"
        raise ConfigError(
            f"--set {key}: {name} is a list of {len(node)} item(s); {part!r} is not a position in it. Use 0 to "
            f"{len(node) - 1} to change an item or {len(node)} to append one (e.g. {name}.{len(node)}.type=...)")
    return int(part)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Checker:
    def __init__(self, registry: Registry, lines: Mapping[str, int], source: str) -> None:
        self.registry = registry
        self.lines = lines
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message, line_for(path, dict(self.lines))))

    def stage(self, spec: Any, kind: str, path: str, backends: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
        """Validate one ``{type: ..., **params}`` mapping; return it normalised (defaults filled)."""
        if not isinstance(spec, Mapping):
            self.add(path, f"expected a mapping with a 'type' key, got {spec!r}")
            return None
        type_name = spec.get("type")
        if not isinstance(type_name, str):
            names = ", ".join(self.registry.names(kind))
            self.add(f"{path}.type", f"missing or not a string (got {type_name!r}); {kind} types: {names}")
            return None
        try:
            cls = self.registry.get(kind, type_name, path=f"{path}.type")
        except UnknownComponentError as exc:
            self.add(f"{path}.type", str(exc).split(": ", 1)[-1])
            return None
        except (MissingDependencyError, RegistrationError) as exc:
            self.add(f"{path}.type", str(exc))
            return None
        params = {k: v for k, v in spec.items() if k != "type"}
        try:
            validated = param_model(cls)(**params)
        except ValidationError as exc:
            for p, message in validation_problems(exc, path):
                self.add(p, f"{message}; {type_name} accepts: {', '.join(param_model(cls).model_fields)}")
            self.nested(cls, dict(params), path, backends)  # report problems in nested stages too
            return None
        normalised = {"type": type_name, **_plain({k: getattr(validated, k) for k in param_model(cls).model_fields})}
        for name, ref_kind in collaborator_params(cls).items():
            self.reference(normalised.get(name), ref_kind, f"{path}.{name}", backends)
        self.capabilities(cls, type_name, normalised, path, backends)
        self.nested(cls, normalised, path, backends)
        self.construct(cls, normalised, path)
        return normalised

    def construct(self, cls: type, spec: Mapping[str, Any], path: str) -> None:
        """Build the stage once, so checks that span parameters fail at validate time, not at run time.

        Constructors only store and check their parameters (no I/O), e.g. ``overlap_tokens < max_tokens``.
        """
        try:
            cls(**{k: v for k, v in spec.items() if k != "type"})
        except ConfigError as exc:
            self.add(path, str(exc))
        except Exception:  # anything else is the run's business, not the config's
            pass

    def nested(self, cls: type, params: dict[str, Any], path: str, backends: Mapping[str, Mapping[str, Any]]) -> None:
        """Validate (and normalise in place) the nested stage specs of ``cls`` (e.g. ``corag``'s ``scorer``)."""
        for name, stage_kind in nested_stage_params(cls).items():
            value = params.get(name)
            if isinstance(value, str):
                value = {"type": value}
            if isinstance(value, Mapping):
                nested = self.stage(value, stage_kind, f"{path}.{name}", backends)
                if nested is not None:
                    params[name] = nested
            elif value is not None and not hasattr(value, "get_params"):
                self.add(f"{path}.{name}", f"expected a {stage_kind} type name or a {{type: ...}} mapping, got {value!r}")

    def reference(self, value: Any, kind: str, path: str, backends: Mapping[str, Mapping[str, Any]]) -> None:
        section = SECTION_BY_BACKEND_KIND[kind]
        if isinstance(value, str):
            if value not in backends.get(section, {}):
                known = ", ".join(backends.get(section, {})) or "(none)"
                self.add(path, f"refers to {section} backend {value!r}, which is not defined under "
                               f"backends.{section}; defined: {known}")
        elif isinstance(value, Mapping):
            self.stage(value, kind, path, backends)
        elif value is not None and not hasattr(value, "get_params"):
            self.add(path, f"expected a backend name or an inline {{type: ...}} mapping, got {value!r}")

    def capabilities(self, cls: type, type_name: str, spec: Mapping[str, Any], path: str,
                     backends: Mapping[str, Mapping[str, Any]]) -> None:
        needs: Mapping[str, Iterable[str]] = getattr(cls, "requires", {}) or {}
        for param, capabilities in needs.items():
            ref = spec.get(param)
            backend_spec = backends.get("llm", {}).get(ref) if isinstance(ref, str) else ref
            if not isinstance(backend_spec, Mapping) or "type" not in backend_spec:
                continue
            try:
                backend_cls = self.registry.get("llm", backend_spec["type"])
            except Exception:  # reported where the backend itself is validated
                continue
            declared = getattr(backend_cls, "capabilities_for", None)  # settings-dependent capabilities
            have = set(declared(backend_spec) if callable(declared) else getattr(backend_cls, "capabilities", ()))
            for capability in capabilities:
                if capability not in have:
                    self.add(f"{path}.{param}", f"{type_name} needs capability {capability!r}, but backend "
                             f"{ref if isinstance(ref, str) else backend_spec['type']!r} "
                             f"({backend_spec['type']}) supports only: {', '.join(sorted(have))}")


def validate_config(data: Any, registry: Registry | None = None, lines: Mapping[str, int] | None = None,
                    source: str = "<config>") -> dict[str, Any]:
    """Validate a raw config mapping; return the normalised config or raise one ConfigError with all problems."""
    registry = registry or default_registry()
    lines = lines or {}
    checker = _Checker(registry, lines, source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config must be a YAML mapping at the top level, got {type(data).__name__}")
    try:
        model = RagkitConfig.model_validate(data)
    except ValidationError as exc:
        for p, message in validation_problems(exc, ""):
            path = p.lstrip(".") or "(top level)"
            checker.add(path, message)
        # keep going over the raw stage specs, so one run reports every problem in the file
        _check_stages(checker, _raw_sections(data), skip_reported=True)
        _raise(checker, source)
    cfg = _plain(model.model_dump())
    _check_stages(checker, cfg)
    _check_filter(checker, cfg)
    if checker.problems:
        _raise(checker, source)
    return cfg


def _raw_sections(data: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an unvalidated config the stage checks read, with non-mappings left out."""
    def mapping(value: Any) -> dict[str, Any]:
        return dict(value) if isinstance(value, Mapping) else {}

    backends = mapping(data.get("backends"))
    defaults = RagkitConfig().model_dump()["backends"]  # a section left out gets its defaults, as in the schema
    index, query = mapping(data.get("index")), mapping(data.get("query"))
    enrichers = index.get("enrichers")
    return {
        "backends": {section: {name: spec for name, spec in mapping(backends.get(section, defaults[section])).items()
                               if isinstance(spec, Mapping)}
                     for section in BACKEND_KIND_BY_SECTION},
        "index": {**index, "enrichers": list(enrichers) if isinstance(enrichers, list) else [],
                  "embedder": index.get("embedder")},
        "query": query,
    }


def _check_stages(checker: _Checker, cfg: dict[str, Any], skip_reported: bool = False) -> None:
    """Validate every stage spec through the registry, normalising ``cfg`` in place.

    With ``skip_reported``, specs under a path that already has a problem are left alone (no duplicates).
    """
    reported = [path for path, _, _ in checker.problems] if skip_reported else []

    def wanted(path: str) -> bool:
        return not any(p == path or p.startswith(path + ".") or path.startswith(p + ".") for p in reported)

    backends = cfg["backends"]
    for section, kind in BACKEND_KIND_BY_SECTION.items():
        for name, spec in list(backends[section].items()):
            if not wanted(f"backends.{section}.{name}"):
                continue
            normalised = checker.stage(spec, kind, f"backends.{section}.{name}", {})
            if normalised is not None:
                backends[section][name] = normalised
    for path, kind in STAGE_SLOTS:
        section, key = path.split(".")
        spec = cfg[section].get(key)
        if spec is None or not wanted(path):
            continue
        if isinstance(spec, list):  # a selector chain
            if not spec:
                checker.add(path, "an empty list; give one selector spec or a list of at least one")
                continue
            for i, link in enumerate(spec):
                if wanted(f"{path}.{i}"):
                    normalised = checker.stage(link, kind, f"{path}.{i}", backends)
                    if normalised is not None:
                        spec[i] = normalised
            continue
        normalised = checker.stage(spec, kind, path, backends)
        if normalised is not None:
            cfg[section][key] = normalised
    _check_context_needs(checker, cfg)
    for i, spec in enumerate(cfg["index"]["enrichers"]):
        if not wanted(f"index.enrichers.{i}"):
            continue
        normalised = checker.stage(spec, "enricher", f"index.enrichers.{i}", backends)
        if normalised is not None:
            cfg["index"]["enrichers"][i] = normalised
    embedder = cfg["index"]["embedder"]
    if embedder is None or not wanted("index.embedder"):
        return
    checker.reference(embedder, "embedder", "index.embedder", backends)
    if isinstance(embedder, Mapping):
        cfg["index"]["embedder"] = checker.stage(embedder, "embedder", "index.embedder", {}) or embedder


def _check_filter(checker: _Checker, cfg: dict[str, Any]) -> None:
    """Compile ``query.retrieve.filter`` (unknown operators are reported at validate time)."""
    spec = ((cfg.get("query") or {}).get("retrieve") or {}).get("filter")
    if not spec:
        return
    from ragkit.retrievers.filters import compile_filter

    try:
        compile_filter(spec)
    except ConfigError as exc:
        checker.add("query.retrieve.filter", str(exc))


def _check_context_needs(checker: _Checker, cfg: dict[str, Any]) -> None:
    """Reject a query stage that needs a context this config cannot provide (trees without ``index.tree``)."""
    query = cfg.get("query") or {}
    index = cfg.get("index") or {}
    selector = query.get("selector")
    slots: list[tuple[str, str, Any]] = []
    if isinstance(selector, list):
        slots += [(f"query.selector.{i}", "selector", s) for i, s in enumerate(selector)]
    elif selector is not None:
        slots.append(("query.selector", "selector", selector))
    if query.get("aggregator") is not None:
        slots.append(("query.aggregator", "aggregator", query["aggregator"]))
    for path, kind, spec in slots:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            continue
        try:
            cls = checker.registry.get(kind, spec["type"])
        except Exception:  # reported where the stage itself is validated
            continue
        needs = set(getattr(cls, "needs_context", ()) or ())
        if "trees" in needs and not index.get("tree"):
            checker.add(f"{path}.type", f"{kind} {spec['type']!r} needs document trees, but index.tree is not set; "
                                        "add index.tree (e.g. {type: headings}) so the index phase builds them")


def _raise(checker: _Checker, source: str) -> None:
    checker.problems.sort(key=lambda problem: problem[2] if problem[2] is not None else float("inf"))  # file order
    rendered = []
    for path, message, line in checker.problems:
        where = f" (line {line})" if line else ""
        rendered.append(f"  - {path}{where}: {message}")
    count = len(checker.problems)
    raise ConfigError(
        f"{source}: {count} problem{'s' if count != 1 else ''} in the config:\n" + "\n".join(rendered),
        checker.problems,
    )


#: Config keys that name files or folders (dotted; ``*`` is any stage parameter ending in ``_path``).
PATH_KEYS = ("data_root", "corpus.paths", "index.store", "query.questions", "output.dir")
_NOT_PATHS = {":memory:"}


def _absolute(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value or value in _NOT_PATHS:
        return value
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def resolve_paths(data: Any, base: str | Path) -> Any:
    """Make every relative file path in a raw config absolute against ``base`` (returns a new mapping).

    A config file's paths resolve against the file's folder (like docker compose and mkdocs);
    ``--set`` values resolve against the working directory. Paths: ``data_root``, ``corpus.paths``,
    ``index.store``, ``query.questions``, ``output.dir`` and any stage parameter ending in ``_path``
    (e.g. ``index.chunker.intents_path``). ``null`` and ``":memory:"`` are left alone.

    Example:
        >>> resolve_paths({"corpus": {"paths": ["docs/*.md"]}, "index": {"store": ":memory:"}}, "/proj")
        {'corpus': {'paths': ['/proj/docs/*.md']}, 'index': {'store': ':memory:'}}
    """
    if not isinstance(data, Mapping):
        return data
    base = Path(base)
    out = copy.deepcopy(dict(data))
    for key in PATH_KEYS:
        section, _, name = key.partition(".")
        holder = out if not name else out.get(section)
        field_name = name or section
        if not isinstance(holder, dict) or field_name not in holder:
            continue
        value = holder[field_name]
        holder[field_name] = [_absolute(v, base) for v in value] if isinstance(value, list) else _absolute(value, base)
    for section in ("index", "query"):
        stages = out.get(section)
        if not isinstance(stages, dict):
            continue
        for spec in stages.values():
            for stage in spec if isinstance(spec, list) else [spec]:
                if isinstance(stage, dict):
                    for param, value in list(stage.items()):
                        if param.endswith("_path"):
                            stage[param] = _absolute(value, base)
    return out


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str | tuple[str, Any]] = (),
                registry: Registry | None = None) -> dict[str, Any]:
    """Load, override, validate and normalise a config from a YAML path or a mapping.

    Relative paths in a YAML file resolve against the file's folder; ``overrides`` (``--set``) and a
    mapping's paths resolve against the working directory (see :func:`resolve_paths`). Under safe mode
    (``--safe`` / ``RAGKIT_SAFE=1``) paths outside the config's folder and ``RAGKIT_HOME`` and
    non-loopback endpoints are refused here, before anything loads or writes (:mod:`ragkit.config.safety`).
    """
    from ragkit.config.safety import enforce

    folder: Path | None = None
    if isinstance(source, Mapping):
        data: Any = _plain(source)
        lines: dict[str, int] = {}
        name = "<config>"
    else:
        data, lines = load_yaml_file(source)
        name = str(source)
        folder = Path(source).resolve().parent
        data = resolve_paths(data, folder)
    if overrides:
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{name}: a config must be a YAML mapping at the top level")
        data = apply_overrides(dict(data or {}), overrides)
        if not isinstance(source, Mapping):
            data = resolve_paths(data, Path.cwd())  # only --set values are still relative
    config = validate_config(data, registry, lines, name)
    enforce(config, config_dir=folder, source=name, lines=lines)  # safe mode (--safe / RAGKIT_SAFE): paths, hosts
    return config


def config_stem(source: str | Path | Mapping[str, Any]) -> str:
    """The name a run of ``source`` is filed under: the YAML file's stem, or ``config`` for a mapping."""
    return Path(source).stem if not isinstance(source, Mapping) else "config"
