"""Safe mode for configs you did not write: ``--safe`` or ``RAGKIT_SAFE=1``.

A ragkit config is trusted by default: it may read and write wherever its paths point and send
document text to any ``base_url``. Under safe mode the config phase (:func:`ragkit.config.load.load_config`,
before any model loads or any file is written) also refuses

- a filesystem path that does not resolve (after ``~``, ``..`` and symbolic links) under the config
  file's folder or ``RAGKIT_HOME``: ``data_root``, ``corpus.paths`` (and every file a corpus glob or
  folder reaches), ``index.store``, ``query.questions``, ``output.dir``, stage parameters that name
  files (``*_path``, ``*_dir``, ``*_file``, ``precomputed``) and ``model`` values that are local paths;
- a network endpoint that is not loopback (127.0.0.0/8, ::1, ``localhost``) unless allowed with
  ``--allow-host HOST`` or ``RAGKIT_ALLOW_HOSTS=HOST,...``: every ``base_url`` (an ``openai`` stage
  without one sends to ``$OPENAI_BASE_URL`` or OpenAI, and that endpoint is checked) and
  ``engine.address``;
- settings that run code the config brings: ``trust_remote_code: true`` and a Ray ``engine.runtime_env``.

Every refusal is one :class:`~ragkit.errors.UnsafeConfigError` (exit code 2) that lists each problem
with its dotted key, the value, the resolved path or host, the allowed roots or hosts, and the fix.
A config loaded from a mapping (Python API) has the working directory as its folder, unless the
active policy names roots (``ragkit eval`` names the experiment file's folder).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> cfg = {"index": {"store": "/etc/ragkit-store"}, "backends": {"llm": {}, "embeddings": {}}}
    >>> problems = check_config(cfg, config_dir=folder, policy=SafetyPolicy())
    >>> [key for key, _message, _line in problems]
    ['index.store']
    >>> check_config({"index": {"store": str(folder / "store")}}, config_dir=folder, policy=SafetyPolicy())
    []
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ragkit.config.yaml_lines import line_for
from ragkit.errors import ConfigError, UnsafeConfigError
from ragkit.paths import ragkit_home

__all__ = ["ALLOW_HOSTS_ENV", "SAFE_ENV", "SafetyPolicy", "active_policy", "check_config", "enforce",
           "is_loopback", "safe_mode", "use_policy"]

#: Environment variable that turns safe mode on for every command and API call (``1``/``true``/``yes``/``on``).
SAFE_ENV = "RAGKIT_SAFE"
#: Environment variable of extra allowed hosts under safe mode (comma-separated, beside ``--allow-host``).
ALLOW_HOSTS_ENV = "RAGKIT_ALLOW_HOSTS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_TOP_PATHS = ("data_root", "index.store", "query.questions", "output.dir")
_PATH_SUFFIXES = ("_path", "_dir", "_file")
_PATH_PARAMS = {"precomputed"}
_MODEL_PARAMS = {"model"}
_NOT_PATHS = {":memory:"}
_GLOB_CHARS = "*?["
_MAX_CORPUS_FILES_SHOWN = 5
_FIX_PATH = "move it under one of them (or copy the data there), or drop --safe if you trust this config"
_FIX_HOST = ("point it at a loopback server, allow the host with --allow-host {host} (or {env}={host}), or drop "
             "--safe if you trust this config")

Problem = tuple[str, str, "int | None"]


@dataclass(frozen=True)
class SafetyPolicy:
    """Safe mode's settings: extra allowed hosts and, for configs given as mappings, their folders.

    Example:
        >>> SafetyPolicy(allow_hosts=frozenset({"gpu-box"})).allows_host("GPU-BOX")
        True
    """

    allow_hosts: frozenset[str] = frozenset()
    roots: tuple[Path, ...] = ()

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` is loopback or named in :attr:`allow_hosts` (case-insensitive)."""
        return is_loopback(host) or host.lower().strip("[]") in {h.lower().strip("[]") for h in self.allow_hosts}


_POLICY: ContextVar[SafetyPolicy | None] = ContextVar("ragkit_safety_policy", default=None)


def _env_hosts() -> frozenset[str]:
    return frozenset(h.strip() for h in os.environ.get(ALLOW_HOSTS_ENV, "").split(",") if h.strip())


def env_enabled() -> bool:
    """Whether ``$RAGKIT_SAFE`` turns safe mode on; a value that is neither on nor off is a ConfigError.

    Example:
        >>> env_enabled() == (os.environ.get(SAFE_ENV, "").strip().lower() in _TRUE)
        True
    """
    raw = os.environ.get(SAFE_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"${SAFE_ENV}={os.environ[SAFE_ENV]!r} is neither on nor off; use {SAFE_ENV}=1 to turn safe "
                      f"mode on or unset it (accepted: {', '.join(sorted(_TRUE | _FALSE - {''}))})")


def active_policy() -> SafetyPolicy | None:
    """The policy in force: the one :func:`safe_mode` set, else one from ``$RAGKIT_SAFE``, else ``None`` (off).

    Example:
        >>> with safe_mode(allow_hosts=["gpu-box"]):
        ...     sorted(active_policy().allow_hosts)
        ['gpu-box']
    """
    policy = _POLICY.get()
    if policy is not None:
        return policy
    return SafetyPolicy(allow_hosts=_env_hosts()) if env_enabled() else None


@contextmanager
def safe_mode(enabled: bool = True, *, allow_hosts: Sequence[str] = (),
              roots: Sequence[str | Path] = ()) -> Iterator[SafetyPolicy | None]:
    """Safe mode for the ``with`` block (``$RAGKIT_SAFE`` turns it on even when ``enabled`` is false).

    ``allow_hosts`` adds to ``$RAGKIT_ALLOW_HOSTS``; ``roots`` are the folders of configs given as
    mappings (a file's own folder is always its root). Giving hosts with safe mode off is a ConfigError,
    since they would change nothing.

    Example:
        >>> with safe_mode(roots=["/srv/project"]) as policy:
        ...     policy.roots
        (PosixPath('/srv/project'),)
    """
    on = enabled or env_enabled()
    if not on and allow_hosts:
        raise ConfigError(f"--allow-host {', '.join(allow_hosts)}: only applies under safe mode; add --safe "
                          f"(or set {SAFE_ENV}=1), or drop --allow-host")
    policy = SafetyPolicy(allow_hosts=frozenset(allow_hosts) | _env_hosts(),
                          roots=tuple(Path(r) for r in roots)) if on else None
    with use_policy(policy):
        yield policy


@contextmanager
def use_policy(policy: SafetyPolicy | None) -> Iterator[SafetyPolicy | None]:
    """Apply a policy captured earlier (e.g. by ``ragkit serve`` for its request handlers); ``None``: no change."""
    if policy is None:
        yield active_policy()
        return
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1, IPv4-mapped 127.x).

    Example:
        >>> [is_loopback(h) for h in ("localhost", "127.8.0.1", "[::1]", "::ffff:127.0.0.1", "10.0.0.1", "0.0.0.0")]
        [True, True, True, True, False, False]
    """
    host = host.strip().lower().strip("[]").rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


# ---------------------------------------------------------------------------------------------- the checks


class _Check:
    def __init__(self, roots: Sequence[Path], policy: SafetyPolicy, base: Path, lines: Mapping[str, int]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.policy = policy
        self.base = base
        self.lines = dict(lines)
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append((key, message, line_for(key, self.lines)))

    def _roots_text(self) -> str:
        return " or ".join(str(r) for r in self.roots)

    def resolved(self, value: str) -> Path:
        path = Path(value).expanduser()
        return Path(os.path.realpath(path if path.is_absolute() else self.base / path))

    def inside(self, resolved: Path) -> bool:
        return any(resolved == root or resolved.is_relative_to(root) for root in self.roots)

    def path(self, key: str, value: Any) -> None:
        if not isinstance(value, str) or not value or value in _NOT_PATHS:
            return
        resolved = self.resolved(value)
        if not self.inside(resolved):
            self.add(key, f"{value!r} resolves to {resolved}, outside the folders a config may use under --safe "
                          f"({self._roots_text()}); {_FIX_PATH}")

    def corpus(self, key: str, value: Any) -> None:
        """A corpus entry: its fixed part (before any glob character), then every file it reaches."""
        if not isinstance(value, str) or not value:
            return
        expanded = os.path.expanduser(value)
        cut = min((expanded.find(c) for c in _GLOB_CHARS if c in expanded), default=-1)
        fixed = expanded if cut < 0 else os.path.dirname(expanded[:cut]) or "."
        before = len(self.problems)
        self.path(key, fixed)
        if len(self.problems) > before:
            return
        escaping = [f for f in _corpus_files(expanded, self.base) if not self.inside(Path(os.path.realpath(f)))]
        if escaping:
            shown = ", ".join(f"{f} -> {os.path.realpath(f)}" for f in escaping[:_MAX_CORPUS_FILES_SHOWN])
            more = f" and {len(escaping) - _MAX_CORPUS_FILES_SHOWN} more" if len(escaping) > _MAX_CORPUS_FILES_SHOWN else ""
            self.add(key, f"{value!r} reaches {len(escaping)} file(s) through symbolic links that resolve outside the "
                          f"folders a config may use under --safe ({self._roots_text()}): {shown}{more}; {_FIX_PATH}")

    def model(self, key: str, value: Any) -> None:
        """A ``model`` that is a local path (absolute, ``~``, ``./``, or existing) is a path; a name is not."""
        if not isinstance(value, str) or not value:
            return
        looks_local = value.startswith(("/", "~", "./", "../", ".\\")) or (os.sep in value and Path(value).exists())
        if looks_local:
            self.path(key, value)

    def endpoint(self, key: str, url: Any, configured: bool) -> None:
        if not isinstance(url, str) or not url:
            return
        where = "" if configured else " (base_url is not set, so this is where the backend sends)"
        host = _host(url)
        if host is None:
            self.add(key, f"{url!r}{where} is not an http(s) URL with a host that ragkit can check under --safe; give "
                          "e.g. http://127.0.0.1:8765/v1, or drop --safe if you trust this config")
            return
        if not self.policy.allows_host(host):
            allowed = ", ".join(sorted(self.policy.allow_hosts)) or "none"
            self.add(key, f"{url!r}{where} sends text to host {host!r}, which is not loopback (127.0.0.0/8, ::1, "
                          f"localhost) nor an allowed host (allowed: {allowed}); "
                          + _FIX_HOST.format(host=host, env=ALLOW_HOSTS_ENV))

    def address(self, key: str, value: Any) -> None:
        """``engine.address``: ``auto``/``local`` or a loopback ``ray://HOST:PORT`` / ``HOST:PORT``."""
        if not isinstance(value, str) or value.strip().lower() in ("", "auto", "local"):
            return
        self.endpoint(key, value if "://" in value else f"ray://{value}", configured=True)

    def stage(self, key: str, spec: Any) -> None:
        """Every parameter of a stage spec (and of nested specs) that names a file, a model path or an endpoint."""
        if isinstance(spec, list):
            for i, item in enumerate(spec):
                self.stage(f"{key}.{i}", item)
            return
        if not isinstance(spec, Mapping):
            return
        for param, value in spec.items():
            where = f"{key}.{param}"
            if isinstance(value, (Mapping, list)):
                self.stage(where, value)
            elif param.endswith(_PATH_SUFFIXES) or param in _PATH_PARAMS:
                self.path(where, value)
            elif param in _MODEL_PARAMS:
                self.model(where, value)
            elif param == "trust_remote_code" and value is True:
                self.add(where, "true runs Python code shipped with the model folder, which a config you did not write "
                                "may choose; set it to false (or drop --safe if you trust this config and the model)")
        if "base_url" in spec and spec.get("type") == "openai":
            configured = bool(spec.get("base_url"))
            self.endpoint(f"{key}.base_url", spec.get("base_url") or _default_openai_endpoint(), configured)
        elif spec.get("base_url"):
            self.endpoint(f"{key}.base_url", spec["base_url"], True)


def _default_openai_endpoint() -> str:
    from ragkit.llm.openai_backend import OPENAI_ENDPOINT

    return os.environ.get("OPENAI_BASE_URL") or OPENAI_ENDPOINT


def _host(url: str) -> str | None:
    """The host a URL connects to, or ``None`` when it is not plain ``scheme://host[:port]/...``.

    Backslashes, whitespace and control characters in the authority are refused: URL parsers disagree
    about them, so the host checked might not be the host contacted.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https", "ray") or not host:
        return None
    if any(c in parts.netloc for c in "\\ \t\r\n") or any(ord(c) < 32 or ord(c) == 127 for c in parts.netloc):
        return None
    return host


def _corpus_files(item: str, base: Path) -> list[str]:
    """Every file a corpus entry reaches, as the loader sees them (warnings about skipped links silenced)."""
    from ragkit.errors import DocumentError
    from ragkit.loaders import corpus_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [str(p) for p in corpus_files(item, base)]
        except (DocumentError, OSError):  # a missing path or an empty glob is the run's error to report
            return []


def check_config(config: Mapping[str, Any], *, config_dir: str | Path | None, policy: SafetyPolicy,
                 lines: Mapping[str, int] | None = None, paths: Mapping[str, str] | None = None) -> list[Problem]:
    """Every setting of a (normalised) config that safe mode refuses, as ``(dotted key, message, line)``.

    Allowed folders: ``config_dir`` (else the policy's roots, else the working directory) and ``RAGKIT_HOME``.
    Relative paths resolve as the run resolves them: against ``config_dir``, else the working directory. ``paths`` are further files
    named outside the pipeline schema (dotted key → path), e.g. an experiment's ``base`` file.

    Example:
        >>> cfg = {"backends": {"llm": {"big": {"type": "openai", "base_url": "https://example.org/v1"}}}}
        >>> [key for key, _, _ in check_config(cfg, config_dir="/srv/p", policy=SafetyPolicy())]
        ['backends.llm.big.base_url']
        >>> check_config(cfg, config_dir="/srv/p", policy=SafetyPolicy(allow_hosts=frozenset({"example.org"})))
        []
    """
    folders = [Path(config_dir)] if config_dir is not None else list(policy.roots) or [Path.cwd()]
    base = Path(config_dir) if config_dir is not None else Path.cwd()  # where the run resolves relative paths
    check = _Check([*folders, ragkit_home()], policy, base, lines or {})
    for key, value in (paths or {}).items():
        check.path(key, value)
    for key in _TOP_PATHS:
        section, _, name = key.partition(".")
        holder = config if not name else config.get(section)
        if isinstance(holder, Mapping):
            check.path(key, holder.get(name or section))
    corpus = config.get("corpus")
    if isinstance(corpus, Mapping):
        paths = corpus.get("paths")
        for i, item in enumerate([paths] if isinstance(paths, str) else paths or []):
            check.corpus(f"corpus.paths.{i}", item)
    backends = config.get("backends")
    if isinstance(backends, Mapping):
        for section, named in backends.items():
            for name, spec in (named or {}).items() if isinstance(named, Mapping) else ():
                check.stage(f"backends.{section}.{name}", spec)
    for section in ("index", "query"):
        stages = config.get(section)
        if isinstance(stages, Mapping):
            for slot, spec in stages.items():
                if slot not in ("store", "questions", "retrieve"):
                    check.stage(f"{section}.{slot}", spec)
    engine = config.get("engine")
    if isinstance(engine, Mapping):
        check.address("engine.address", engine.get("address"))
        if engine.get("runtime_env"):
            check.add("engine.runtime_env", "a Ray runtime_env can install packages and ship code to the workers; "
                                            "under --safe a config may not set it: remove it, or drop --safe if you "
                                            "trust this config")
    return check.problems


def enforce(config: Mapping[str, Any], *, config_dir: str | Path | None, source: str,
            lines: Mapping[str, int] | None = None, paths: Mapping[str, str] | None = None) -> None:
    """Under an active policy, raise one :class:`~ragkit.errors.UnsafeConfigError` listing every refused setting.

    Called by :func:`ragkit.config.load.load_config` after validation; does nothing when safe mode is off.

    Example:
        >>> with safe_mode():
        ...     try:
        ...         enforce({"output": {"dir": "/"}}, config_dir="/srv/project", source="rag.yaml")
        ...     except UnsafeConfigError as exc:
        ...         print(str(exc).splitlines()[0], [key for key, _, _ in exc.problems])
        rag.yaml: 1 setting refused by --safe (safe mode): ['output.dir']
    """
    policy = active_policy()
    if policy is None:
        return
    problems = check_config(config, config_dir=config_dir, policy=policy, lines=lines, paths=paths)
    if not problems:
        return
    problems.sort(key=lambda p: p[2] if p[2] is not None else float("inf"))
    rendered = "\n".join(f"  - {key}{f' (line {line})' if line else ''}: {message}" for key, message, line in problems)
    count = len(problems)
    raise UnsafeConfigError(f"{source}: {count} setting{'s' if count != 1 else ''} refused by --safe (safe mode):\n"
                            + rendered, problems)
