"""Experiment files: loading and checking them, variants, grid expansion and overrides.

An *experiment* names a dataset, a ``base`` pipeline config, the ``protocols`` to score with and
the ``variants`` to compare (each a name plus ``--set``-style overrides; optionally a ``grid``)::

    name: chroma-chunkers
    dataset: chroma_chunking_eval           # or {name, subset, limit}
    base: {index: {retriever: {type: dense}}, ...}   # a pipeline config (mapping or a path)
    protocols: [chroma, budget]             # or {budget: {budget: 1000, candidates: 100}}
    match: {target_tokens: 200, tolerance: 0.1}      # chunk-size matching (false: off)
    variants:
      - {name: token, set: {index.chunker: {type: token, max_tokens: 200}}}
      - {name: sentence, set: ["index.chunker.type=sentence", "index.chunker.max_tokens=250"]}
    grid: {index.chunker.max_tokens: [128, 256]}     # optional: every variant × every combination
    baseline: token                         # optional: paired test (Δ, p) of every variant against it
    bootstrap: {resamples: 2000, permutations: 10000, seed: 0}   # optional: the uncertainty settings

``--set`` items whose key starts with an experiment key (``protocols.chroma.positions=reference``,
``baseline=recursive``, ``bootstrap.seed=1``) change the experiment; all others go to every
variant's pipeline config.

Example:
    >>> exp = load_experiment({"dataset": "chroma_chunking_eval", "protocols": ["chroma"],
    ...                        "variants": [{"name": "tok", "set": {"index.chunker": {"type": "token"}}}]})
    >>> [v.name for v in exp.variants], list(exp.protocols)
    (['tok'], ['chroma'])
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.datasets import dataset_spec
from ragkit.errors import ConfigError, DatasetError
from ragkit.eval.protocols import BOOTSTRAP, parse_protocols

#: Chunk-size matching by default: 200 tokens ± 10 % ("matched chunk size").
DEFAULT_MATCH = {"target_tokens": 200, "tolerance": 0.10}

#: Defaults every evaluation base config starts from: no LLM is built unless a protocol needs one.
EVAL_BASE_DEFAULTS: dict[str, Any] = {"backends": {"llm": {"default": {"type": "fake"}}}}

EXPERIMENT_KEYS = {"name", "dataset", "data_root", "base", "protocols", "variants", "grid", "match", "description",
                   "baseline", "bootstrap"}
#: Experiment keys a ``--set`` item may change (every other ``--set`` goes to the variants' pipeline configs).
EXPERIMENT_SET_KEYS = {"protocols", "baseline", "bootstrap", "match"}
PIPELINE_KEYS = {"version", "backends", "cache", "corpus", "index", "query", "output"}


@dataclass
class Variant:
    """One configuration to evaluate: a name and the overrides that turn ``base`` into it.

    Example:
        >>> Variant("token", [("index.chunker.type", "token")]).overrides
        [('index.chunker.type', 'token')]
    """

    name: str
    overrides: list[tuple[str, Any]] = field(default_factory=list)
    config: str | None = None  # a whole pipeline config replacing ``base`` (path)


@dataclass
class Experiment:
    """A parsed experiment file (see the module docstring); build it with :func:`load_experiment`.

    Example:
        >>> exp = load_experiment({"dataset": "chroma_chunking_eval", "base": {"index": {"retriever": {"type": "bm25"}}},
        ...                        "variants": [{"name": "small", "set": {"index.chunker.max_tokens": 64}}]})
        >>> config = exp.variant_config(exp.variants[0])
        >>> config["index"]["chunker"]["max_tokens"], config["index"]["retriever"], config["backends"]["llm"]["default"]
        (64, {'type': 'bm25'}, {'type': 'fake'})
    """

    name: str
    datasets: list[dict[str, Any]]
    base: dict[str, Any]
    protocols: dict[str, dict[str, Any]]
    variants: list[Variant]
    match: dict[str, float] | None = field(default_factory=lambda: dict(DEFAULT_MATCH))
    data_root: str | None = None
    source: Path | None = None
    overrides: list[tuple[str, Any]] = field(default_factory=list)
    baseline: str | None = None
    bootstrap: dict[str, Any] = field(default_factory=lambda: dict(BOOTSTRAP))

    def variant_config(self, variant: Variant) -> dict[str, Any]:
        """The raw pipeline config of ``variant`` (base or its own file, its overrides, then ``--set``)."""
        from ragkit.config.load import apply_overrides

        base = _read_config(variant.config, self.source) if variant.config else self.base
        config = _deep_merge(EVAL_BASE_DEFAULTS, base)
        return apply_overrides(config, [*variant.overrides, *self.overrides])


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(a))
    for key, value in b.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_config(ref: str | Mapping[str, Any] | None, source: Path | None) -> dict[str, Any]:
    if ref is None:
        return {}
    if isinstance(ref, Mapping):
        return copy.deepcopy(dict(ref))
    from ragkit.config.yaml_lines import load_yaml_file

    path = Path(ref).expanduser()
    if not path.is_absolute() and source is not None and not path.exists():
        path = source.parent / path
    from ragkit.config.safety import enforce

    enforce({}, config_dir=source.resolve().parent if source else None, source=str(source or "<experiment>"),
            paths={"base": str(path.absolute())})  # safe mode: a base config outside the experiment's folder
    if not path.is_file():
        raise ConfigError(f"base: config file {str(ref)!r} does not exist (looked next to the experiment file too); "
                          "give a pipeline config path or an inline mapping")
    data, _lines = load_yaml_file(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a pipeline config must be a mapping")
    from ragkit.config.load import resolve_paths

    return resolve_paths(dict(data), path.resolve().parent)  # its paths resolve from its own folder


def parse_set(items: Any, where: str) -> list[tuple[str, Any]]:
    """A variant's ``set`` (a mapping of dotted keys, or ``key=value`` strings) as ``(key, value)`` pairs.

    Raises:
        ConfigError: neither a mapping nor ``key=value`` strings (``where`` names the place).

    Example:
        >>> parse_set({"index.chunker.type": "token"}, "variants.0.set")
        [('index.chunker.type', 'token')]
        >>> parse_set(["index.chunker.max_tokens=128"], "--set")
        [('index.chunker.max_tokens', 128)]
    """
    from ragkit.config.load import parse_override

    if items is None:
        return []
    if isinstance(items, Mapping):
        return [(str(k), v) for k, v in items.items()]
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a mapping of dotted keys to values or a list of 'key=value' strings, "
                          f"got {items!r}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: each override must be a 'key=value' string, got {item!r}")
        out.append(parse_override(item))
    return out


def parse_grid(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """``["index.chunker.max_tokens=128,256"]`` or ``{key: [values]}`` → ``{key: [values]}``.

    Raises:
        ConfigError: an item without ``=``, without values, or with a value that is not YAML.

    Example:
        >>> parse_grid(["index.chunker.max_tokens=128,256", "query.selector.k=5"])
        {'index.chunker.max_tokens': [128, 256], 'query.selector.k': [5]}
        >>> parse_grid({"index.chunker.type": "token"})
        {'index.chunker.type': ['token']}
    """
    import yaml

    if not items:
        return {}
    if isinstance(items, Mapping):
        grid = {}
        for key, values in items.items():
            grid[str(key)] = list(values) if isinstance(values, (list, tuple)) else [values]
        return grid
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... e.g. index.chunker.max_tokens=128,256,512")
        key, _, raw = item.partition("=")
        try:
            values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
        except yaml.YAMLError as exc:
            raise ConfigError(f"--grid {item!r}: a value is not valid YAML ({exc})") from None
        if not values:
            raise ConfigError(f"--grid {item!r}: no values after '='")
        grid[key.strip()] = values
    return grid


def expand_grid(variants: Sequence[Variant], grid: Mapping[str, Sequence[Any]]) -> list[Variant]:
    """Every variant at every combination of the grid's values, named ``variant@key=value,...``.

    The grid's overrides come after the variant's own, so they win.

    Example:
        >>> expanded = expand_grid([Variant("token", [("index.chunker.type", "token")])],
        ...                        {"index.chunker.max_tokens": [64, 128]})
        >>> [v.name for v in expanded]
        ['token@max_tokens=64', 'token@max_tokens=128']
        >>> expanded[1].overrides
        [('index.chunker.type', 'token'), ('index.chunker.max_tokens', 128)]
    """
    if not grid:
        return list(variants)
    keys = list(grid)
    out = []
    for variant in variants:
        for combo in itertools.product(*(grid[k] for k in keys)):
            label = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combo))
            name = f"{variant.name}@{label}" if variant.name else label
            out.append(Variant(name, [*variant.overrides, *zip(keys, combo)], variant.config))
    return out


def parse_match(spec: Any) -> dict[str, float] | None:
    """An experiment's ``match`` (chunk-size matching): ``None`` → the default, ``False`` → off.

    Raises:
        ConfigError: unknown keys, a target ≤ 0 or a tolerance outside [0, 1).

    Example:
        >>> parse_match(None)
        {'target_tokens': 200, 'tolerance': 0.1}
        >>> parse_match({"target_tokens": 128})
        {'target_tokens': 128.0, 'tolerance': 0.1}
        >>> parse_match(False) is None
        True
    """
    if spec is False or spec is None:
        return None if spec is False else dict(DEFAULT_MATCH)
    if not isinstance(spec, Mapping) or set(spec) - {"target_tokens", "tolerance"}:
        raise ConfigError(f"match: expected {{target_tokens, tolerance}} or false, got {spec!r}")
    merged = {**DEFAULT_MATCH, **spec}
    if merged["target_tokens"] <= 0 or not 0 <= merged["tolerance"] < 1:
        raise ConfigError(f"match: target_tokens must be > 0 and tolerance in [0, 1), got {dict(spec)!r}")
    return {"target_tokens": float(merged["target_tokens"]), "tolerance": float(merged["tolerance"])}


def match_status(mean_tokens: float, match: Mapping[str, float] | None) -> dict[str, Any] | None:
    """Whether a variant's mean chunk size is within the experiment's ``match`` (``None`` when off).

    Example:
        >>> match_status(215.0, {"target_tokens": 200.0, "tolerance": 0.1})
        {'target_tokens': 200.0, 'tolerance': 0.1, 'ok': True}
        >>> match_status(120.0, {"target_tokens": 200.0, "tolerance": 0.1})["ok"]
        False
    """
    if not match:
        return None
    target, tol = match["target_tokens"], match["tolerance"]
    return {"target_tokens": target, "tolerance": tol, "ok": abs(mean_tokens - target) <= tol * target}


def parse_bootstrap(spec: Any) -> dict[str, Any]:
    """An experiment's ``bootstrap`` settings with defaults filled in and checked.

    Raises:
        ConfigError: unknown keys, non-positive counts, a confidence outside (0, 1).

    Example:
        >>> parse_bootstrap({"seed": 3})
        {'resamples': 2000, 'permutations': 10000, 'seed': 3, 'confidence': 0.95}
    """
    if spec is None:
        return dict(BOOTSTRAP)
    if not isinstance(spec, Mapping) or set(spec) - set(BOOTSTRAP):
        raise ConfigError(f"bootstrap: expected a mapping with keys {', '.join(BOOTSTRAP)}, got {spec!r}")
    merged = {**BOOTSTRAP, **spec}
    for key in ("resamples", "permutations"):
        if isinstance(merged[key], bool) or not isinstance(merged[key], int) or merged[key] <= 0:
            raise ConfigError(f"bootstrap.{key}: expected a positive integer, got {merged[key]!r}")
    if isinstance(merged["seed"], bool) or not isinstance(merged["seed"], int) or merged["seed"] < 0:
        raise ConfigError(f"bootstrap.seed: expected a non-negative integer, got {merged['seed']!r}")
    if not isinstance(merged["confidence"], (int, float)) or not 0 < merged["confidence"] < 1:
        raise ConfigError(f"bootstrap.confidence: expected a number in (0, 1), got {merged['confidence']!r}")
    return merged


def apply_experiment_overrides(data: Mapping[str, Any], items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Apply the ``--set`` items that change the experiment itself (keys under :data:`EXPERIMENT_SET_KEYS`).

    ``protocols`` given as a list of names is first written as a mapping, so one protocol's
    parameter can be set.

    Example:
        >>> data = apply_experiment_overrides({"protocols": ["chroma", "budget"]},
        ...                                   [("protocols.chroma.positions", "reference"), ("baseline", "token")])
        >>> data["protocols"]["chroma"], data["baseline"]
        ({'k': 5, 'positions': 'reference'}, 'token')
    """
    from ragkit.config.load import apply_overrides

    out = copy.deepcopy(dict(data))
    if any(key.split(".", 1)[0] == "protocols" and "." in key for key, _ in items):
        out["protocols"] = parse_protocols(out.get("protocols"))
    for key, value in items:
        head, _, rest = key.partition(".")
        if rest and not isinstance(out.get(head), Mapping):
            out[head] = {}
        out = apply_overrides(out, [(key, value)]) if rest else {**out, head: value}
    return out


def load_experiment(source: str | Path | Mapping[str, Any], *, grid: Sequence[str] = (), overrides: Sequence[str] = (),
                    name: str | None = None) -> Experiment:
    """Parse and check an experiment (a YAML path or a mapping); every variant's config is validated.

    A plain pipeline config is accepted too: its ``corpus.dataset`` is the dataset and it is the one
    variant (``--grid`` then makes the comparison).

    Args:
        source: an experiment YAML path, a pipeline config path with ``corpus.dataset``, or a mapping.
        grid: ``--grid`` items (``KEY=V1,V2``), combined with the file's ``grid``.
        overrides: ``--set`` items applied to every variant, after the variant's own.
        name: the experiment's name (default: the file's ``name``, else its stem).

    Raises:
        ConfigError: unknown keys, bad protocols, overrides or variant configs (all named by path).

    Example:
        >>> exp = load_experiment({"dataset": {"name": "chroma_chunking_eval", "subset": "chatlogs"},
        ...                        "variants": [{"name": "tok", "set": {"index.chunker.type": "token"}}]},
        ...                       grid=["index.chunker.max_tokens=100,200"], overrides=["cache.mode=read_only"])
        >>> [v.name for v in exp.variants], exp.datasets[0]["subset"], list(exp.protocols)
        (['tok@max_tokens=100', 'tok@max_tokens=200'], ['chatlogs'], ['chroma', 'budget'])
        >>> exp.variant_config(exp.variants[1])["cache"]
        {'mode': 'read_only'}
    """
    from ragkit.config.load import load_config
    from ragkit.config.yaml_lines import load_yaml_file

    path: Path | None = None
    if isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"experiment file {str(path)!r} does not exist; give a YAML experiment "
                              "(dataset, base, protocols, variants) such as configs/eval/chroma-chunkers.yaml")
        data, _lines = load_yaml_file(path)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: an experiment must be a YAML mapping")
        data = dict(data)
        from ragkit.config.load import resolve_paths

        folder = path.resolve().parent  # the experiment's own paths (data_root, an inline base) resolve from its folder
        data = resolve_paths(data, folder)
        if isinstance(data.get("base"), Mapping):
            data["base"] = resolve_paths(data["base"], folder)
    from ragkit.config.safety import enforce

    enforce({"data_root": data.get("data_root")}, config_dir=path.resolve().parent if path else None,
            source=str(path or "<experiment>"))  # safe mode; its variants are checked by load_config
    if "dataset" not in data and set(data) <= PIPELINE_KEYS | {"data_root"}:
        dataset = (data.get("corpus") or {}).get("dataset")
        if not dataset:
            raise ConfigError(f"{path or '<config>'}: a pipeline config evaluated directly needs corpus.dataset")
        data = {"dataset": {"name": dataset, "subset": data["corpus"].get("subset")}, "base": data,
                "data_root": data.get("data_root"), "variants": [{"name": (path.stem if path else "config")}]}
    pipeline_overrides = parse_set(list(overrides), "--set")
    experiment_overrides = [(k, v) for k, v in pipeline_overrides if k.split(".", 1)[0] in EXPERIMENT_SET_KEYS]
    pipeline_overrides = [(k, v) for k, v in pipeline_overrides if k.split(".", 1)[0] not in EXPERIMENT_SET_KEYS]
    if experiment_overrides:
        data = apply_experiment_overrides(data, experiment_overrides)
    unknown = set(data) - EXPERIMENT_KEYS
    if unknown:
        raise ConfigError(f"experiment: unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(EXPERIMENT_KEYS))}")
    if "dataset" not in data:
        raise ConfigError("experiment: 'dataset' is required (e.g. dataset: chroma_chunking_eval)")
    raw_sets = data["dataset"] if isinstance(data["dataset"], list) else [data["dataset"]]
    try:
        datasets = [dataset_spec(d) for d in raw_sets]
    except DatasetError as exc:
        raise ConfigError(str(exc)) from exc
    base = _read_config(data.get("base"), path)
    base.pop("corpus", None)  # the dataset provides the corpus
    variants = []
    for i, item in enumerate(data.get("variants") or [{"name": "base"}]):
        if not isinstance(item, Mapping) or "name" not in item:
            raise ConfigError(f"variants.{i}: expected a mapping with a 'name' (and 'set' overrides), got {item!r}")
        extra = set(item) - {"name", "set", "config"}
        if extra:
            raise ConfigError(f"variants.{i}: unknown keys {sorted(extra)}; allowed: name, set, config")
        variants.append(Variant(str(item["name"]), parse_set(item.get("set"), f"variants.{i}.set"), item.get("config")))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variants: names must be unique, got {names}")
    variants = expand_grid(variants, {**parse_grid(data.get("grid")), **parse_grid(list(grid))})
    experiment = Experiment(
        name=name or str(data.get("name") or (path.stem if path else "experiment")),
        datasets=datasets, base=base, protocols=parse_protocols(data.get("protocols")), variants=variants,
        match=parse_match(data.get("match", dict(DEFAULT_MATCH))),
        data_root=data.get("data_root") or base.get("data_root"),
        source=path, overrides=pipeline_overrides, baseline=data.get("baseline"),
        bootstrap=parse_bootstrap(data.get("bootstrap")),
    )
    if experiment.baseline is not None and experiment.baseline not in [v.name for v in experiment.variants]:
        raise ConfigError(f"baseline: {experiment.baseline!r} is not a variant; variants are "
                          f"{', '.join(v.name for v in experiment.variants)}")
    for variant in experiment.variants:
        try:
            load_config(experiment.variant_config(variant))
        except ConfigError as exc:
            raise ConfigError(f"variant {variant.name!r}: {exc}", getattr(exc, "problems", [])) from exc
    return experiment
