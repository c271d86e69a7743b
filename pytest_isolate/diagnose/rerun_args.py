"""The command line of a rerun alone: the run's own arguments, less what would make the rerun
run workers, write the run's outputs or select other tests. Pure: argument lists in, out."""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple


class Arity(enum.Enum):
    NONE = 0
    ONE = 1
    OPTIONAL = 2  # argparse's nargs="?": the next token, unless it is an option


class OptionSpec(NamedTuple):
    dest: str
    arity: Arity


#: Options a rerun drops, by argparse ``dest``: parallelism, outputs of the run, selection
#: (a rerun names its tests), cache-driven ordering, and modes that run no tests.
DROPPED = frozenset(
    {
        "numprocesses", "dist", "distload", "tx", "maxprocesses", "maxworkerrestart",
        "maxschedchunk", "looponfail", "rsyncdir", "rsyncignore", "testrunuid",
        "xmlpath", "junitprefix", "report_log", "log_file", "debug", "pastebin",
        "htmlpath", "allure_report_dir", "json_report_file",
        "basetemp", "durations", "durations_min",
        "keyword", "markexpr", "deselect", "maxfail",
        "lf", "last_failed_no_failures", "failedfirst", "newfirst",
        "stepwise", "stepwise_skip", "stepwise_reset", "cacheclear", "cacheshow",
        "collectonly", "showfixtures", "show_fixtures_per_test", "markers",
        "setuponly", "setupplan", "usepdb", "usepdb_cls", "trace", "help", "version",
        "isolate_plan", "isolate_shard", "isolate_timeline", "isolate_durations",
        "isolate_rerun_alone", "isolate_rerun_max", "isolate_rerun_budget", "isolate_rerun_child",
        "isolate_rerun_outcomes", "isolate_forget",
        "isolate_parallel_only_ok",
    }
)  # fmt: skip


def kept_args(
    args: Sequence[str], options: Mapping[str, OptionSpec], drop: Collection[str] = DROPPED
) -> list[str]:
    """The run's own command-line options a rerun keeps: all but ``drop`` and positionals.

    Positional arguments (paths, node ids, ``--`` and what follows) go: a rerun names its
    tests. Short flags given together (``-vx``) are split, attached values (``-n4``,
    ``--tb=short``) kept with their option. An option unknown to ``options`` is kept as is.
    """
    kept: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            continue  # a path or node id
        if token.startswith("--"):
            name, eq, _ = token.partition("=")
            spec = options.get(name)
            group = [token]
            if not eq and _takes_next(spec, args[i] if i < len(args) else None):
                group.append(args[i])
                i += 1
            if spec is None or spec.dest not in drop:
                kept += group
            continue
        # Short options: "-x", "-n4", "-n 4", "-vx", "-pno:cacheprovider".
        chars = token[1:]
        while chars:
            name = "-" + chars[0]
            chars = chars[1:]
            spec = options.get(name)
            group = [name]
            if spec is not None and spec.arity is not Arity.NONE:
                if chars:
                    group = [name + chars]
                    chars = ""
                elif _takes_next(spec, args[i] if i < len(args) else None):
                    group.append(args[i])
                    i += 1
            if spec is None or spec.dest not in drop:
                kept += group
    return kept


def _takes_next(spec: OptionSpec | None, following: str | None) -> bool:
    """Whether an option given without an attached value takes the next token as its value."""
    if spec is None or following is None or spec.arity is Arity.NONE:
        return False
    return spec.arity is Arity.ONE or not following.startswith("-")


def absolute_nodeid(rootdir: str, nodeid: str) -> str:
    """A node id with its path made absolute, so it names the test from any directory."""
    path, sep, rest = nodeid.partition("::")
    return os.path.join(rootdir, path) + sep + rest
