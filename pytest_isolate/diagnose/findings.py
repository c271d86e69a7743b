"""Isolation audit rules: which touched state a test's markers and fixtures do not cover.

Input: what one test touched, as plain data (paths written with their verbs, ports bound,
environment and working directory before and after, threads and child processes left), and
its :class:`Scope` (the private directories, the worker's port block, the test's ``dir:`` and
``port:`` claims, the silencing patterns). Output: :class:`Touch` values naming the state and
the declaration that would cover it; :class:`Finding` is a touch attributed to a test, as the
controller keeps it. Also the encoding that carries touches in a report's ``user_properties``
and the lines of the terminal section.

Pure: no pytest, no I/O; paths are compared as normalized absolute POSIX text.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..words import count

KINDS = ("file", "port", "env", "cwd", "thread", "process")

#: Kinds a marker can declare; the others (state left behind in the worker) need a fix.
DECLARABLE = frozenset({"file", "port"})

#: The ``user_properties`` name each finding travels under (one entry per finding).
PROPERTY = "isolate_audit"

#: Set by pytest itself around every test.
PYTEST_VARIABLES = frozenset({"PYTEST_CURRENT_TEST"})

#: ``open()`` flags that make an open a write (``os.O_*``, the same on every POSIX system).
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

#: Kernel pseudo-files: writing /dev/null or /proc/self/... shares nothing. /dev/shm does.
_PSEUDO_ROOTS = ("/dev", "/proc", "/sys")
_SHARED_PSEUDO = ("/dev/shm",)


class AuditPatternError(ValueError):
    """A malformed silencing pattern; the message names it and the fault."""


@dataclass(frozen=True)
class Finding:
    """Shared state one test touched that its markers and fixtures do not cover."""

    nodeid: str
    kind: str  # one of KINDS
    detail: str  # what was touched, for people: "wrote shared.txt"
    marker: str  # the declaration that would cover it, or the fix where none can (env...)


@dataclass(frozen=True)
class Touch:
    """A finding before it is attributed to a test; ``subject`` is what patterns match."""

    kind: str
    subject: str
    detail: str
    marker: str

    def finding(self, nodeid: str) -> Finding:
        return Finding(nodeid, self.kind, self.detail, self.marker)


@dataclass(frozen=True)
class Scope:
    """What one test may touch without a finding."""

    rootdir: str
    private: tuple[str, ...] = ()  # basetemp, the worker's temp dir: never shared
    dirs: tuple[str, ...] = ()  # the test's declared dir: resources, normalized
    block: range = range(0)  # the worker's port block
    ports: frozenset[int] = frozenset()  # the test's declared port: resources
    ignore: tuple[str, ...] = ()  # silencing patterns, KIND or KIND:GLOB
    owned_env: frozenset[str] = frozenset()  # set up by wider-scoped fixtures
    owned_cwd: frozenset[str] = frozenset()
    # Where --isolate-sandbox would give each worker its own: the working directory the
    # tests started in (itself, not below) and HOME (and below).
    cwd: str = ""
    home: str = ""


# -- patterns ----------------------------------------------------------------------------------


def check_pattern(pattern: object, where: str) -> str:
    """``pattern`` if it is ``KIND`` or ``KIND:GLOB``; else an error naming ``where``."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise AuditPatternError(f"{where}: {pattern!r} is not a pattern (KIND or KIND:GLOB)")
    kind, _, glob = pattern.partition(":")
    if kind not in KINDS:
        raise AuditPatternError(
            f"{where}: {pattern!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}"
        )
    if ":" in pattern and not glob:
        raise AuditPatternError(f"{where}: {pattern!r}: empty pattern after {kind + ':'!r}")
    return pattern


def silenced(touch: Touch, patterns: Iterable[str], rootdir: str) -> bool:
    """True when a pattern names this touch: ``KIND`` alone, or ``KIND:GLOB`` on its subject.

    File globs are tried on the absolute path and on the path relative to the rootdir, each
    also with a trailing ``/``; ``fnmatch``'s ``*`` crosses ``/``, so ``file:build/*`` covers
    build and everything under it.
    """
    subjects = [touch.subject]
    if touch.kind == "file":
        if inside(touch.subject, rootdir):
            subjects.append(posixpath.relpath(touch.subject, rootdir))
        subjects += [s + "/" for s in subjects]  # file:build/* covers build itself too
    for pattern in patterns:
        kind, colon, glob = pattern.partition(":")
        if kind != touch.kind:
            continue
        if not colon or any(fnmatchcase(subject, glob) for subject in subjects):
            return True
    return False


# -- files -------------------------------------------------------------------------------------


def is_write(flags: int) -> bool:
    return bool(flags & WRITE_FLAGS)


def normalize(path: str, cwd: str) -> str:
    """Absolute, normalized POSIX text of ``path`` as seen from ``cwd``."""
    joined = path if posixpath.isabs(path) else posixpath.join(cwd, path)
    normalized = posixpath.normpath(joined)
    return "/" + normalized.lstrip("/") if normalized.startswith("//") else normalized


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def is_cache(path: str) -> bool:
    """The interpreter's and the tools' own caches: bytecode, pytest's cache, coverage data."""
    parts = path.split("/")
    if "__pycache__" in parts or ".pytest_cache" in parts:
        return True
    name = parts[-1]
    if name == ".coverage" or name.startswith(".coverage."):
        return True
    pseudo = any(inside(path, root) for root in _PSEUDO_ROOTS)
    return pseudo and not any(inside(path, root) for root in _SHARED_PSEUDO)


def covered(path: str, scope: Scope) -> bool:
    return (
        is_cache(path)
        or any(inside(path, root) for root in scope.private)
        or any(inside(path, declared) for declared in scope.dirs)
    )


def shown(path: str, rootdir: str) -> str:
    """Relative to the rootdir when inside it (as users write ``dir:``), else absolute."""
    return posixpath.relpath(path, rootdir) if inside(path, rootdir) else path


def file_touches(written: Mapping[str, Sequence[str]], scope: Scope) -> list[Touch]:
    """One touch per outermost uncovered path; paths under it are counted, not repeated.

    ``written`` maps absolute normalized paths to what was done to them, in order ("wrote",
    "removed", ...). A ``dir:`` on the outermost path covers everything under it.
    """
    paths = sorted(
        p
        for p in written
        if not covered(p, scope)
        and not silenced(Touch("file", p, "", ""), scope.ignore, scope.rootdir)
    )
    touches: list[Touch] = []
    top: str | None = None
    nested = 0
    for path in [*paths, None]:
        if path is not None and top is not None and inside(path, top):
            nested += 1
            continue
        if top is not None:
            touches.append(_file_touch(top, written[top], nested, scope))
        top, nested = path, 0
    return touches


def _file_touch(path: str, verbs: Sequence[str], nested: int, scope: Scope) -> Touch:
    display = shown(path, scope.rootdir)
    detail = f"{' and '.join(dict.fromkeys(verbs))} {display}"
    if nested:
        detail += f" (and {nested} path{'s' if nested > 1 else ''} inside)"
    marker = f'@pytest.mark.resource("dir:{display}")'
    if sandboxed(path, scope):
        marker += f", or {SANDBOX_HINT}"
    return Touch("file", path, detail, marker)


#: The advice for files --isolate-sandbox makes each worker's own.
SANDBOX_HINT = "--isolate-sandbox (each worker gets its own working directory and HOME)"


def sandboxed(path: str, scope: Scope) -> bool:
    """A file that --isolate-sandbox would make each worker's own."""
    in_cwd = bool(scope.cwd) and posixpath.dirname(path) == scope.cwd
    return in_cwd or (bool(scope.home) and inside(path, scope.home))


# -- ports -------------------------------------------------------------------------------------


def port_touch(host: str, port: int, protocol: str, scope: Scope) -> Touch | None:
    """A bind outside the worker's block and the test's ``port:`` claims; port 0 is free."""
    if port == 0 or port in scope.block or port in scope.ports:
        return None
    block = scope.block
    where = f"this worker's block {block.start}-{block.stop - 1}" if block else "any port block"
    return Touch(
        "port",
        str(port),
        f"bound {protocol} {host}:{port}, outside {where} (isolate_ports.take() gives one inside)",
        f'@pytest.mark.resource("port:{port}")',
    )


# -- environment and working directory --------------------------------------------------------


def env_touches(before: Mapping[str, str], after: Mapping[str, str], scope: Scope) -> list[Touch]:
    """Variables left changed; values are not shown, since they may be secrets."""
    touches = []
    for name in sorted(before.keys() | after.keys()):
        if name in PYTEST_VARIABLES or name in scope.owned_env:
            continue
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if new is None:
            verb, fix = "removed", f'monkeypatch.delenv("{name}")'
        else:
            verb = "set" if old is None else "changed"
            fix = f'monkeypatch.setenv("{name}", ...)'
        touches.append(Touch("env", name, f"{verb} ${name} and left it so", fix))
    return touches


def cwd_touch(before: str, after: str, scope: Scope) -> Touch | None:
    if before == after or after in scope.owned_cwd:
        return None
    detail = f"left the working directory at {after} (was {before})"
    return Touch("cwd", after, detail, "monkeypatch.chdir(...)")


# -- threads and processes --------------------------------------------------------------------


def thread_touches(threads: Iterable[tuple[str, bool]]) -> list[Touch]:
    """``(name, daemon)`` of each thread the test started and left running."""
    return [
        Touch(
            "thread",
            name,
            f"thread {name!r}{' (daemon)' if daemon else ''} still running after teardown",
            "stop and join it in teardown (a yield fixture)",
        )
        for name, daemon in threads
    ]


def process_touches(processes: Iterable[tuple[int, str]]) -> list[Touch]:
    """``(pid, command line)`` of each child process left running."""
    return [
        Touch(
            "process",
            command,
            f"child process {pid} still running after teardown: {_clip(command)}",
            "terminate and wait for it in teardown (a yield fixture)",
        )
        for pid, command in processes
    ]


def is_interpreter_helper(command: str) -> bool:
    """multiprocessing's resource tracker and fork server: one per process, for its lifetime."""
    return any(f"from multiprocessing.{name} import main" in command for name in _HELPERS)


_HELPERS = ("resource_tracker", "forkserver")


def _clip(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- transport and output ---------------------------------------------------------------------


def _label(kind: str) -> str:
    return "declare" if kind in DECLARABLE else "fix"


def encode(touch: Touch) -> tuple[str, str]:
    """A ``user_properties`` entry: pytest carries it to the controller, junitxml writes it as
    a ``<property>`` and the report log keeps it, readable as it is:
    ``file: wrote data.json; declare: @pytest.mark.resource("dir:data.json")``."""
    return PROPERTY, f"{touch.kind}: {touch.detail}; {_label(touch.kind)}: {touch.marker}"


_ENCODED = re.compile(rf"^({'|'.join(KINDS)}): (.*); (?:declare|fix): (.*)$", re.DOTALL)


def decode(nodeid: str, name: object, value: object) -> Finding | None:
    """The finding in one ``user_properties`` entry, ``None`` for anyone else's."""
    match = _ENCODED.match(value) if name == PROPERTY and isinstance(value, str) else None
    if match is None:
        return None
    kind, detail, marker = match.groups()
    return Finding(nodeid, kind, detail, marker)


def format_section(
    findings: Mapping[str, Sequence[Finding]], order: Sequence[str], audited: int
) -> list[str]:
    """The terminal section's lines: test by test in ``order``, then a count."""
    position = {nodeid: i for i, nodeid in enumerate(order)}
    tests = sorted(
        (nodeid for nodeid, found in findings.items() if found),
        key=lambda nodeid: (position.get(nodeid, len(position)), nodeid),
    )
    if not tests:
        return [f"no hidden shared state found in {count(audited, 'test')}"]
    lines = []
    for nodeid in tests:
        lines.append(nodeid)
        for finding in findings[nodeid]:
            lines.append(f"    {finding.kind}: {finding.detail}")
            lines.append(f"        {_label(finding.kind)}: {finding.marker}")
    total = sum(len(findings[nodeid]) for nodeid in tests)
    sandbox = [n for n in tests if any(SANDBOX_HINT in f.marker for f in findings[n])]
    if sandbox:
        lines.append(
            f"{count(len(sandbox), 'test')} wrote files in the working directory or under HOME: "
            f"try {SANDBOX_HINT}"
        )
    lines.append(
        f"{count(total, 'finding')} in {len(tests)} of {audited} tests; "
        'silence one on purpose with @pytest.mark.isolate_audit_ignore("KIND:GLOB") or the '
        "ini key isolate_audit_ignore"
    )
    return lines
