"""Durations: what earlier runs measured, and recording this run's measurements.

Sources, later ones winning: pytest's cache (``isolate/durations``, written by every run), then
the JSON file given by ``--isolate-durations`` (pytest-split's ``{nodeid: seconds}`` format), so
a file committed for CI shards gives every machine the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from .autoscale import RunHistory, Selection

CACHE_KEY = "isolate/durations"
RUN_KEY = "isolate/last_run"
#: What diagnoses learned (``..diagnose.memory`` reads and writes it).
LEARNED_KEY = "isolate/findings"


def read_file(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--isolate-durations {path}: cannot read it: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) for k, v in data.items()
    ):
        raise pytest.UsageError(
            f"--isolate-durations {path}: expected a JSON object of {{nodeid: seconds}}"
        )
    for nodeid, seconds in data.items():
        if not _usable(seconds):
            raise pytest.UsageError(
                f"--isolate-durations {path}: {nodeid}: {seconds!r} is not a duration in "
                "seconds (a finite number, 0 or more)"
            )
    return {k: float(v) for k, v in data.items()}


def _usable(seconds: object) -> bool:
    """A duration the plan can add up: NaN would make every comparison false (and put
    every test on one worker), infinity every sum infinite."""
    return isinstance(seconds, (int, float)) and 0 <= seconds < float("inf")


def durations_path(config: pytest.Config) -> Path | None:
    raw = config.getoption("isolate_durations") or config.getini("isolate_durations")
    if not raw:
        return None
    path = Path(raw)
    return path if path.is_absolute() else config.rootpath / path


def load(config: pytest.Config, early: bool = False) -> dict[str, float]:
    """Each test's recorded duration: the cache's, then the ``--isolate-durations`` file's.
    ``early``: before pytest_configure made ``config.cache`` (for ``-n auto``)."""
    from ..compat import cache_for

    recorded: dict[str, float] = {}
    cache = cache_for(config) if early else getattr(config, "cache", None)
    if cache is not None:
        cached = cache.get(CACHE_KEY, {})
        if isinstance(cached, dict):
            recorded.update((k, float(v)) for k, v in cached.items() if _usable(v))
    path = durations_path(config)
    if path is not None:
        recorded.update(read_file(path))
    return recorded


def store(config: pytest.Config, measured: Mapping[str, float]) -> None:
    """Merge this run's measurements into the cache; tests not run keep their history."""
    cache = getattr(config, "cache", None)
    if cache is None or not measured:
        return
    cached = cache.get(CACHE_KEY, {})
    merged = dict(cached) if isinstance(cached, dict) else {}
    merged.update((k, round(v, 6)) for k, v in measured.items())
    cache.set(CACHE_KEY, merged)


def store_run(config: pytest.Config, history: RunHistory) -> None:
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set(RUN_KEY, history._asdict())


def load_run(config: pytest.Config) -> RunHistory | None:
    """The last run's history, readable before pytest_configure (for ``-n auto``)."""
    from ..compat import cache_for

    cache = cache_for(config)
    if cache is None:
        return None  # an unwritable or odd cache dir: behave as without history
    data = cache.get(RUN_KEY, None)
    try:
        return RunHistory(float(data["work"]), int(data["units"]), int(data["tests"]))
    except (TypeError, KeyError, ValueError):
        return None


#: Options that select tests in ways only collection can tell.
FILTERS = ("keyword", "markexpr", "lf", "stepwise", "deselect", "ignore", "ignore_glob")


def selection(config: pytest.Config) -> Selection:
    """What the command line selects, for ``-n auto``'s estimate before collection."""
    option = config.option
    filtered = any(getattr(option, name, None) for name in FILTERS)
    fraction = 1.0
    shard = getattr(option, "isolate_shard", None)
    if shard:
        from .shard import parse_shard

        try:
            fraction = 1 / parse_shard(shard)[1]
        except ValueError:
            filtered = True  # a usage error later
    prefixes: list[str] = []
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        root = config.rootpath
        for arg in config.args:
            path, sep, rest = arg.partition("::")
            absolute = (Path(config.invocation_params.dir) / path).resolve()
            try:
                relative = absolute.relative_to(root).as_posix()
            except ValueError:
                filtered = True  # outside the rootdir: node ids do not tell
                continue
            if relative == ".":
                prefixes = []
                break  # the whole suite
            prefixes.append(relative + sep + rest)
    return Selection(tuple(prefixes), filtered, fraction)
