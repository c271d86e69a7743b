"""Claims: what one test says it touches, parsed and validated.

Input: the raw arguments of a test's ``resource``, ``serial`` and ``xdist_group`` marks
(plain tuples and dicts, see :class:`Declaration`), the rootdir and the capacity table.
Output: a frozen :class:`TestClaims`, or a :class:`DeclarationError` naming the fault.

Pure: no pytest, xdist or execnet here, so the rules are testable with plain data.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

EXCLUSIVE = "exclusive"
SHARED = "shared"
MODES = (EXCLUSIVE, SHARED)

#: What a claim names. ``name`` is a plain shared resource (``"redis"``), ``dir`` a path,
#: ``port`` a fixed port number, ``group`` an ``xdist_group``.
ClaimKind = Literal["name", "dir", "port", "group"]

_CAPACITY_TOKEN = re.compile(r"^([^\s:]+):(\d+)$")


class DeclarationError(ValueError):
    """A malformed marker or capacity declaration; the message names the fault."""


class Claim(NamedTuple):
    """One thing a test holds while it runs. Two claims conflict per :func:`conflicts`."""

    kind: ClaimKind
    key: str
    mode: str = EXCLUSIVE


class TestClaims(NamedTuple):
    """Everything the scheduler needs to know about one test."""

    claims: tuple[Claim, ...] = ()
    counted: tuple[str, ...] = ()
    serial: bool = False

    @property
    def is_plain(self) -> bool:
        """True when the test declares nothing at all."""
        return not (self.claims or self.counted or self.serial)


# Not a pytest test class, despite the name (a NamedTuple cannot declare it in its body).
TestClaims.__test__ = False  # type: ignore[attr-defined]

#: The claims of a test that declares nothing: most tests; one shared value.
PLAIN = TestClaims()


class Declaration(NamedTuple):
    """The raw marks of one test, in the order pytest's ``iter_markers`` yields them."""

    resources: tuple[tuple[tuple[Any, ...], Mapping[str, Any]], ...] = ()
    groups: tuple[tuple[tuple[Any, ...], Mapping[str, Any]], ...] = ()
    serial: bool = False


def parse_capacity(tokens: Iterable[str]) -> dict[str, int]:
    """Parse ``isolate_capacity`` tokens (``gpu:2 browser:4``) into ``{name: count}``."""
    table: dict[str, int] = {}
    for token in tokens:
        match = _CAPACITY_TOKEN.match(token)
        if match is None:
            raise DeclarationError(
                f"isolate_capacity: {token!r} is not NAME:COUNT (for example 'gpu:2')"
            )
        name, count = match.group(1), int(match.group(2))
        if name.startswith(("dir:", "port:")) or name in ("dir", "port"):
            raise DeclarationError(
                f"isolate_capacity: {token!r}: only plain names can be counted, "
                "not dir: or port: resources"
            )
        if count < 1:
            raise DeclarationError(f"isolate_capacity: {token!r}: the count must be at least 1")
        if name in table:
            raise DeclarationError(f"isolate_capacity: {name!r} is given twice")
        table[name] = count
    return table


def normalize_dir(raw: str, rootdir: str) -> str:
    """Absolute, normalized POSIX form of a ``dir:`` resource path."""
    if not raw:
        raise DeclarationError("'dir:' needs a path, for example 'dir:build/cache'")
    path = raw if os.path.isabs(raw) else os.path.join(rootdir, raw)
    normalized = posixpath.normpath(path.replace(os.sep, "/"))
    # POSIX lets "//x" differ from "/x"; on the systems we run on they are one directory.
    return "/" + normalized.lstrip("/") if normalized.startswith("//") else normalized


def parse_port(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65535:
        raise DeclarationError(f"'port:{raw}' is not a port number (1-65535)")
    return int(raw)


def _parse_resource(
    args: Sequence[Any], kwargs: Mapping[str, Any], rootdir: str, capacity: Mapping[str, int]
) -> tuple[list[Claim], list[str]]:
    unknown = set(kwargs) - {"mode"}
    if unknown:
        raise DeclarationError(
            f"resource() got unknown keyword argument(s): {', '.join(sorted(unknown))}"
        )
    mode = kwargs.get("mode", EXCLUSIVE)
    if mode not in MODES:
        raise DeclarationError(f"resource() mode={mode!r} is unknown; use 'exclusive' or 'shared'")
    if not args:
        raise DeclarationError("resource() needs at least one resource name")
    claims: list[Claim] = []
    counted: list[str] = []
    for name in args:
        if not isinstance(name, str) or not name.strip():
            raise DeclarationError(f"resource() names must be non-empty strings, got {name!r}")
        if name.startswith("dir:"):
            claims.append(Claim("dir", normalize_dir(name[4:], rootdir), mode))
        elif name.startswith("port:"):
            claims.append(Claim("port", str(parse_port(name[5:])), mode))
        elif name in capacity:
            counted.append(name)
        else:
            claims.append(Claim("name", name, mode))
    return claims, counted


def _parse_group(marks: Iterable[tuple[tuple[Any, ...], Mapping[str, Any]]]) -> Claim:
    # As xdist's loadgroup does: every group mark counts, joined in sorted order.
    names = set()
    for args, kwargs in marks:
        name = args[0] if args else kwargs.get("name", "default")
        if not isinstance(name, str) or not name:
            raise DeclarationError(f"xdist_group() needs a non-empty string name, got {name!r}")
        names.add(name)
    return Claim("group", "_".join(sorted(names)))


def parse_declaration(decl: Declaration, rootdir: str, capacity: Mapping[str, int]) -> TestClaims:
    """Turn one test's raw marks into :class:`TestClaims`, or raise :class:`DeclarationError`."""
    claims: set[Claim] = set()
    counted: set[str] = set()
    for args, kwargs in decl.resources:
        more, more_counted = _parse_resource(args, kwargs, rootdir, capacity)
        claims.update(more)
        counted.update(more_counted)
    if decl.groups:
        claims.add(_parse_group(decl.groups))
    # The same name held both ways is held exclusively.
    exclusive_keys = {(c.kind, c.key) for c in claims if c.mode == EXCLUSIVE}
    kept = {c for c in claims if c.mode == EXCLUSIVE or (c.kind, c.key) not in exclusive_keys}
    return TestClaims(tuple(sorted(kept)), tuple(sorted(counted)), decl.serial)


def declared_names(test: TestClaims) -> list[str]:
    """What a test holds, as a user reads it: ``db``, ``dir:/srv (shared)``, ``gpu (counted)``."""
    names = []
    for claim in test.claims:
        prefix = "" if claim.kind == "name" else f"{claim.kind}:"
        shared = " (shared)" if claim.mode == "shared" else ""
        names.append(f"{prefix}{claim.key}{shared}")
    names.extend(f"{name} (counted)" for name in test.counted)
    if test.serial:
        names.append("serial")
    return names


def unused_capacity(capacity: Mapping[str, int], claims: Iterable[TestClaims]) -> list[str]:
    """Counted names no test declares: usually a typo in the ini or in a marker."""
    used = {name for test in claims for name in test.counted}
    return sorted(set(capacity) - used)


def dir_overlaps(a: str, b: str) -> bool:
    """True when one normalized path is the other or lies inside it."""
    if a == b:
        return True
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return long.startswith(short.rstrip("/") + "/")


def conflicts(a: Claim, b: Claim) -> bool:
    """Two claims conflict when they name the same thing and at least one is exclusive."""
    if a.kind != b.kind:
        return False
    if a.mode == SHARED and b.mode == SHARED and a.kind != "group":
        return False
    if a.kind == "dir":
        return dir_overlaps(a.key, b.key)
    return a.key == b.key


# -- timeouts: isolate_timeout(S) and --isolate-timeout ------------------------------


class TimeoutError_(ValueError):
    """A malformed timeout: the message names the option or the test."""


def parse_timeout(raw: object, where: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):  # NaN fails both
        raise TimeoutError_(
            f"{where}: {raw!r} is not a positive, finite number of seconds (leave it out for "
            "no timeout)"
        )
    return seconds
