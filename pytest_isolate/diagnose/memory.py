"""What diagnoses prove, kept in pytest's cache for later runs.

* ``isolate/findings``: the pairs a diagnosis proved (:mod:`..schedule.learned`), applied to
  later runs as a common resource; ``--isolate-forget`` drops them all.
* ``isolate/fails_alone``: the tests proven to fail alone, with the content hash of the
  project's Python files and test configuration at the time: while that hash holds, such a
  test is not rerun alone again (its verdict would be the same, at the cost of a process).

Without the cache (``-p no:cacheprovider``) nothing is kept and nothing is applied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..declare.claims import TestClaims
from ..schedule import durations, learned
from ..schedule.durations import LEARNED_KEY
from ..schedule.learned import Learned
from ..words import count

if TYPE_CHECKING:
    from .diagnosis import Diagnosis

FINDINGS_KEY = LEARNED_KEY
FAILS_ALONE_KEY = "isolate/fails_alone"

#: Files whose content makes the project's hash, beside every ``*.py``.
CONFIG_FILES = frozenset({"pytest.ini", ".pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini"})
#: Directories never hashed: environments, caches, version control, build output.
SKIPPED_DIRS = frozenset(
    {"node_modules", "build", "dist", "__pycache__", "site-packages", "__pypackages__"}
)


class Lessons:
    """One process's learned pairs: read once, applied to claims wherever a plan or a shard
    is made, dropped from the cache when a test they name is gone."""

    def __init__(self, config: pytest.Config | None) -> None:
        self.config = config
        self.learned = load(config) if config is not None else []

    def claims(self, nodeids: Sequence[str], claims: Sequence[TestClaims]) -> list[TestClaims]:
        """The claims with each learned pair's common resource added."""
        if not self.learned:
            return list(claims)
        return learned.apply(nodeids, claims, self.learned)[0]

    def announce(self, nodeids: Sequence[str]) -> None:
        """Once the run's collection is known: drop the pairs naming a test the suite no
        longer has (only when the whole suite was collected: a path, -k or -m leaves the rest
        uncollected), then say which pairs this run applies."""
        config = self.config
        if config is None or not self.learned:
            return
        collected = set(nodeids)
        lines = []
        if durations.selection(config).whole:
            self.learned, gone = learned.split_existing(self.learned, collected)
            # A test missing because its module failed to collect (a syntax error, say) is
            # not gone: only one whose module is gone, or collected without it.
            modules = {nodeid.partition("::")[0] for nodeid in collected}
            kept = [item for item in gone if not _vanished(item, collected, modules, config)]
            self.learned += kept
            gone = [item for item in gone if item not in kept]
            drop(config, gone)
            if gone:
                lines.append(
                    f"isolate: dropped {count(len(gone), 'learned finding')} naming tests that "
                    "no longer exist: " + "; ".join(item.words() for item in gone)
                )
        applied = [i for i in self.learned if i.victim in collected and i.other in collected]
        lines += header_lines(applied)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in lines:
                reporter.write_line(line)


def _vanished(item: Learned, collected: set[str], modules: set[str], config: pytest.Config) -> bool:
    for nodeid in (item.victim, item.other):
        if nodeid in collected:
            continue
        module = nodeid.partition("::")[0]
        if module in modules or not (config.rootpath / module).exists():
            return True
    return False


def load(config: pytest.Config) -> list[Learned]:
    cache = getattr(config, "cache", None)
    if cache is None or config.getoption("isolate_forget", False):
        return []
    return learned.decode(cache.get(FINDINGS_KEY, None))


def forget(config: pytest.Config) -> list[str]:
    """``--isolate-forget``: drop every learned finding and the tests known to fail alone; the
    header's line saying so."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return []
    had = len(learned.decode(cache.get(FINDINGS_KEY, [])))
    cache.set(FINDINGS_KEY, [])
    cache.set(FAILS_ALONE_KEY, {})
    return [f"isolate: forgot {count(had, 'learned finding')} and the tests known to fail alone"]


def drop(config: pytest.Config, gone: Sequence[Learned]) -> None:
    cache = getattr(config, "cache", None)
    if cache is None or not gone:
        return
    kept = [item for item in learned.decode(cache.get(FINDINGS_KEY, [])) if item not in gone]
    cache.set(FINDINGS_KEY, learned.encode(kept))


def found_pairs(diagnoses: Iterable[Diagnosis], when: float | None = None) -> list[Learned]:
    """The pairs these diagnoses proved: a cause with the one test its search named."""
    # Imported here: this module is on every asked-for process's import path (Lessons).
    from .diagnosis import Cause, Search

    names = {  # the causes whose pair is learned, by the record's name for them
        Cause.POLLUTED: "polluted",
        Cause.NEEDS_EARLIER: "needs_earlier",
        Cause.OVERLAP: "overlap",
    }
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    return [
        Learned(names[d.cause], d.nodeid, d.culprit, f"the run of {stamp}")
        for d in diagnoses
        if d.cause in names
        and d.culprit
        and d.search is not None
        and d.search.status is Search.FOUND
    ]


def remember(config: pytest.Config, pairs: Sequence[Learned]) -> list[Learned]:
    """Keep the pairs for later runs; those not known before (without the cache: none)."""
    cache = getattr(config, "cache", None)
    if cache is None or not pairs:
        return []
    old = learned.decode(cache.get(FINDINGS_KEY, []))
    known = {(item.cause, item.victim, item.other) for item in old}
    cache.set(FINDINGS_KEY, learned.encode(learned.merge(old, pairs)))
    return [item for item in pairs if (item.cause, item.victim, item.other) not in known]


def header_lines(applied: Sequence[Learned]) -> list[str]:
    """What the header says of the records a run applies."""
    if not applied:
        return []
    lines = [
        f"isolate: applying {count(len(applied), 'learned finding')}, each pair on one worker "
        "in collection order (--isolate-forget drops them):"
    ]
    lines += [f"  {item.words()} (from {item.learned}); {_advice(item)}" for item in applied]
    return lines


def _advice(item: Learned) -> str:
    """How to make the pair explicit; for a polluter, the fix is in it, not a marker (a marker
    would only keep the failure, as the learned pair does)."""
    if item.cause == "polluted":
        return f"the fix: {item.other} must undo what it leaves behind"
    return f"make it permanent: {item.marker()}"


def remembered_lines(pairs: Sequence[Learned]) -> list[str]:
    """What the rerun section says of the pairs this run proved."""
    return [
        f"isolate: remembered for the next runs: {item.words()}; runs scheduled by "
        "pytest-isolate will put them on one worker in collection order "
        f"({_advice(item)}; --isolate-forget drops it)"
        for item in pairs
    ]


# -- tests proven to fail alone -----------------------------------------------------------


def project_hash(root: Path) -> str:
    """The content hash of the project's Python files and test configuration under ``root``
    (virtual environments, hidden directories and build output left out), and of the
    interpreter. Not covered: environment variables, installed packages, files elsewhere."""
    import hashlib  # here: the rest of the module is on every asked-for run's import path
    import sys

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{sys.executable}\n{sys.version}\n".encode("utf-8", "surrogateescape"))
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            and not os.path.exists(os.path.join(here, d, "pyvenv.cfg"))
            and not os.path.exists(os.path.join(here, d, "conda-meta"))  # a conda env
        )
        for name in sorted(files):
            if name.endswith(".py") or name in CONFIG_FILES:
                path = os.path.join(here, name)
                try:
                    with open(path, "rb") as f:
                        content = f.read()
                except OSError:
                    continue
                digest.update(os.path.relpath(path, root).encode("utf-8", "surrogateescape"))
                digest.update(len(content).to_bytes(8, "little"))
                digest.update(content)
    return digest.hexdigest()


def has_cache(config: pytest.Config) -> bool:
    return getattr(config, "cache", None) is not None


def has_fails_alone(config: pytest.Config) -> bool:
    cache = getattr(config, "cache", None)
    return cache is not None and bool(cache.get(FAILS_ALONE_KEY, None))


def known_to_fail_alone(config: pytest.Config, project: str) -> dict[str, str]:
    """The tests proven to fail alone while the project's hash is ``project``, each with the
    digest of the tests it came after in collection order then (it failed after them too)."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return {}
    data = cache.get(FAILS_ALONE_KEY, {})
    if not isinstance(data, dict) or data.get("project") != project:
        return {}
    tests = data.get("tests", {})
    if not isinstance(tests, dict):
        return {}
    return {k: v for k, v in tests.items() if isinstance(k, str) and isinstance(v, str)}


def remember_fails_alone(config: pytest.Config, project: str, proven: Mapping[str, str]) -> None:
    """Keep the tests proven to fail alone, each with the digest of its predecessors, for as
    long as the project's hash is ``project``."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return
    known = known_to_fail_alone(config, project)
    known.update(proven)
    cache.set(FAILS_ALONE_KEY, {"project": project, "tests": known})


def predecessors_digest(nodeid: str, collection: Sequence[str]) -> str:
    """A digest of the tests before ``nodeid`` in collection order: a test that failed after
    them fails after them again, not necessarily after others (one may be the one it needs)."""
    import hashlib

    before = collection[: collection.index(nodeid)] if nodeid in collection else []
    return hashlib.blake2b("\n".join(sorted(before)).encode(), digest_size=16).hexdigest()
