"""A pytest plugin: a test session may write only under temporary folders, never into the repository.

ragkit's own suite loads it from the root ``conftest.py`` (``pytest_plugins``); a plug-in's suite can
load it with ``-p ragkit.testing.write_guard``. It watches the session's ``rootdir`` two ways:

- **In this process**, an audit hook (:func:`sys.addaudithook`) sees every file opened for writing,
  every ``mkdir``, rename, copy and link, and which test was running. A path the session created under
  the root that is still there at the end, or an existing file it wrote to, fails the session (exit
  status 1) with the path and the test that wrote it. Runs of ``ragkit run``/``eval`` through
  ``CliRunner`` are in this process, so a default output folder such as ``runs/eval/NAME`` is caught.
- **Subprocesses** (a ``ragkit`` command run as a program, forked workers, notebook kernels) are seen by a
  walk of the root at the start and at the end. Other processes may share a development checkout (a
  benchmark writing ``runs/``), so a new path found this way fails the session only where nothing else
  writes there, in CI (``$CI`` set to ``true`` or ``1``), and is a warning elsewhere.

Tool caches are allowed: ``.git``, ``__pycache__``, ``.pytest_cache``, ``.hypothesis``, ``.ruff_cache``,
``.ipynb_checkpoints`` and ``*.egg-info``.

Example:
    >>> guard = WriteGuard(Path("/repo"))
    >>> guard.inside("/repo/runs/eval/x.json"), guard.inside("/repo/.hypothesis/db"), guard.inside("/tmp/x")
    (True, False, False)
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

#: Folders under the root that tools write to on purpose.
ALLOWED_PARTS = frozenset({".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".ipynb_checkpoints"})
_EVENTS = frozenset({"open", "os.mkdir", "os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.copytree",
                     "shutil.move", "shutil.make_archive", "sqlite3.connect"})
_WRITE_MODES = frozenset("wax+")
_ACTIVE: list[WriteGuard] = []
_LOCK = threading.Lock()
_HOOKED = False
_GUARD_KEY = pytest.StashKey["WriteGuard"]()


class WriteGuard:
    """What one session wrote under ``root`` (see the module docstring).

    ``created`` maps each path the session created to the test that created it; ``written`` each
    existing file it wrote to.
    """

    def __init__(self, root: Path) -> None:
        self.root = os.path.abspath(root)
        self.test = "(collection or session set-up)"
        self.created: dict[str, str] = {}
        self.written: dict[str, str] = {}
        self.before: set[str] = set()

    def inside(self, path: str) -> bool:
        """True for a path under the root that is not in a tool cache."""
        if path != self.root and not path.startswith(self.root + os.sep):
            return False
        parts = path[len(self.root):].split(os.sep)
        return not any(p in ALLOWED_PARTS or p.endswith(".egg-info") for p in parts)

    def record(self, path: str) -> None:
        if not self.inside(path):
            return
        if os.path.lexists(path):
            if os.path.isfile(path) and path not in self.created:
                self.written.setdefault(path, self.test)
        else:
            self.created.setdefault(path, self.test)

    def snapshot(self) -> set[str]:
        """Every path under the root outside the tool caches."""
        found = set()
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in ALLOWED_PARTS and not d.endswith(".egg-info")]
            found.update(os.path.join(folder, name) for name in dirs + files)
        return found

    def leftovers(self) -> dict[str, str]:
        """What this process left under the root, path → line.

        Created paths still there (the topmost of each new tree) and existing files written to.
        """
        alive = {p: test for p, test in self.created.items() if os.path.lexists(p)}
        found = {p: f"created {self._rel(p)} (by {test})" for p, test in alive.items()
                 if os.path.dirname(p) not in alive}
        found.update((p, f"wrote to {self._rel(p)} (by {test})") for p, test in self.written.items())
        return dict(sorted(found.items()))

    def unexplained(self, explained: set[str]) -> dict[str, str]:
        """New paths since the session started that this process did not write (topmost of each new tree)."""
        new = self.snapshot() - self.before
        return {p: f"new {self._rel(p)} (a subprocess, or another process sharing this checkout)"
                for p in sorted(new) if os.path.dirname(p) not in new
                and not any(p == e or p.startswith(e + os.sep) or e.startswith(p + os.sep) for e in explained)}

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.root) + (os.sep if os.path.isdir(path) else "")


def _paths(event: str, args: tuple[Any, ...]) -> list[Any]:
    if event == "open":
        path, mode, flags = args
        if mode is None:
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))
        else:
            writing = bool(_WRITE_MODES & set(mode))
        return [path] if writing else []
    if event == "os.mkdir":
        return [args[0]] if args[2] in (None, -1) else []
    if event in ("os.rename", "os.link", "os.symlink"):
        return [args[1]]
    if event in ("shutil.copyfile", "shutil.copytree", "shutil.move"):
        return [args[1]]
    if event == "shutil.make_archive":
        return [args[0]]
    if event == "sqlite3.connect":
        return [args[0]] if args[0] not in (":memory:", b":memory:", "") else []
    return []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or not _ACTIVE:
        return
    try:
        for raw in _paths(event, args):
            if isinstance(raw, int):
                continue
            path = os.path.abspath(os.fsdecode(raw))
            for guard in list(_ACTIVE):
                guard.record(path)
    except Exception:  # an audit hook must never break the operation it watches
        pass


def _strict() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Snapshot the root and start watching this process's writes (before other plugins configure)."""
    global _HOOKED
    guard = WriteGuard(config.rootpath)
    guard.before = guard.snapshot()
    config.stash[_GUARD_KEY] = guard
    with _LOCK:
        if not _HOOKED:
            sys.addaudithook(_audit)  # hooks cannot be removed: an inactive guard leaves _ACTIVE
            _HOOKED = True
        _ACTIVE.append(guard)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Remember which test runs, to name it beside what it wrote."""
    guard = item.config.stash.get(_GUARD_KEY, None)
    if guard is not None:
        guard.test = item.nodeid
    yield
    if guard is not None:
        guard.test = "(session teardown)"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop watching (a run that never reached the session end, e.g. ``--help``)."""
    guard = config.stash.get(_GUARD_KEY, None)
    with _LOCK:
        if guard in _ACTIVE:
            _ACTIVE.remove(guard)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Report what the session left under the root; fail the session for it (see the module docstring)."""
    guard = session.config.stash.get(_GUARD_KEY, None)
    if guard is None:
        return
    with _LOCK:
        if guard in _ACTIVE:
            _ACTIVE.remove(guard)
    mine = guard.leftovers()
    others = guard.unexplained(set(mine))
    if not mine and not others:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    fail = bool(mine) or _strict()
    title = ("tests wrote into the repository" if fail else "new paths under the repository") + \
        f" ({guard.root}); write under tmp_path / tmp_path_factory instead:"
    lines = [title] + [f"  {line}" for line in [*mine.values(), *others.values()]]
    if not fail:
        lines.append("  (a warning outside CI: other processes may write here too; with CI=true this fails)")
    if reporter is not None:
        reporter.ensure_newline()
        for line in lines:
            reporter.write_line(line, red=fail, yellow=not fail, bold=True)
    else:
        print("\n".join(lines), file=sys.stderr)
    if fail:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
