"""``python -m pytest_isolate``: commands run outside a pytest session.

``merge``: the shards' ``--junitxml`` and ``--report-log`` files as one run's (see
:mod:`pytest_isolate.report.merge`). Exit status: 0 merged; 1 merged, but tests are missing
from every shard or in more than one (the files are written all the same); 2 bad usage or
unusable input, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .report.merge import Merged, MergeError, format_faults, merge_junit, merge_report_logs
from .words import count

OK, FAULTS, UNUSABLE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_isolate")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    merge = commands.add_parser(
        "merge",
        help="merge the shards' --junitxml and --report-log files into one run's",
        description="Merge the --junitxml and --report-log files of the shards of one run "
        "(pytest -p isolate --isolate-shard K/N) into one file each, in the order a single run "
        "reports. Input files are told apart by their content. Exit status: 0 merged; "
        "1 merged, but tests are missing from every shard or in more than one; 2 bad usage "
        "or unusable input, nothing written.",
    )
    merge.add_argument("--junitxml", metavar="OUT", help="write the merged JUnit XML here")
    merge.add_argument("--report-log", metavar="OUT", help="write the merged report-log here")
    merge.add_argument("files", nargs="+", metavar="FILE", help="the shards' files")
    args = parser.parse_args(argv)
    if not (args.junitxml or args.report_log):
        merge.error("give --junitxml OUT, --report-log OUT, or both")
    try:
        return _merge(args.junitxml, args.report_log, args.files)
    except MergeError as exc:
        print(f"pytest-isolate merge: error: {exc}", file=sys.stderr)
        return UNUSABLE


def _merge(junit_out: str | None, log_out: str | None, files: Sequence[str]) -> int:
    junit: list[tuple[str, str]] = []
    logs: list[tuple[str, str]] = []
    for name in files:
        text = _read(name)
        head = text.lstrip()[:1]
        if head == "<":
            junit.append((name, text))
        elif head == "{":
            logs.append((name, text))
        else:
            raise MergeError(f"{name}: neither JUnit XML nor a report-log (JSON lines)")
    work: list[tuple[str, str, list[tuple[str, str]], Callable[..., Merged]]] = []
    for option, out, inputs, merge in (
        ("--junitxml", junit_out, junit, merge_junit),
        ("--report-log", log_out, logs, merge_report_logs),
    ):
        if out and not inputs:
            raise MergeError(f"{option} {out}: none of the files given is one to merge into it")
        if inputs and not out:
            raise MergeError(f"{inputs[0][0]} and the like: give {option} OUT to merge them")
        if out:
            work.append((option, out, inputs, merge))
    # Merge everything before writing anything: unusable input leaves no half-written output.
    results = [(option, out, merge(inputs)) for option, out, inputs, merge in work]
    status = OK
    for option, out, merged in results:
        try:
            Path(out).write_text(merged.text, encoding="utf-8")
        except OSError as exc:
            raise MergeError(f"{option} {out}: cannot write it ({exc.strerror or exc})") from None
        print(
            f"pytest-isolate merge: {count(merged.tests, 'test')} of "
            f"{count(merged.shards, 'shard')} -> {out}"
        )
        if not merged.faults.ok:
            status = FAULTS
            print(f"pytest-isolate merge: {out}: FAULTS", file=sys.stderr)
            for line in format_faults(merged.faults):
                print(f"  {line}", file=sys.stderr)
    return status


def _read(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MergeError(f"{name}: not UTF-8 text (a compressed report-log?)") from None
    except OSError as exc:
        raise MergeError(f"{name}: cannot read it ({exc.strerror or exc})") from None


if __name__ == "__main__":
    sys.exit(main())
