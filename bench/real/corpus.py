"""Run real projects' test suites serially, with plain xdist and with the plugin; compare.

``python -m bench.real [--projects click,itsdangerous] [--cache DIR] [--check] [--timeout S]``

Per project: the pinned sdist is downloaded once into the cache and unpacked afresh; a venv
(cached, keyed by project, version, pins and Python) gets the project, its pinned test
requirements, pytest-xdist and the plugin, built as a wheel from this checkout once per
invocation. Its suite then runs in the unpacked sdist, with the project's own configuration,
four ways: serial (``-p no:isolate``), plain xdist (``-p no:isolate -n 2``) and the plugin
(``-p isolate -n 2``) twice, the second with the durations the first recorded. Each run's wall
time, exit code and per-test outcomes (from ``--junitxml``) are compared with the serial run.
See bench/real/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .projects import BY_NAME, COMMON_DEPS, PROJECTS, Project

ROOT = Path(__file__).resolve().parents[2]  # the checkout: pyproject.toml is here
RESULTS = Path(__file__).resolve().parent / "results.md"
CACHE_ENV = "PYTEST_ISOLATE_CORPUS_CACHE"
DEFAULT_CACHE = Path("~/.cache/pytest-isolate-corpus")
DEFAULT_TIMEOUT = 600.0
WORKERS = "2"
SHOWN = 10  # differing tests listed per run

SERIAL, XDIST, ISOLATE1, ISOLATE2 = "serial", "xdist", "isolate 1st", "isolate 2nd"
MODES: dict[str, tuple[str, ...]] = {
    SERIAL: ("-p", "no:isolate"),
    XDIST: ("-p", "no:isolate", "-n", WORKERS),
    ISOLATE1: ("-p", "isolate", "-n", WORKERS),
    ISOLATE2: ("-p", "isolate", "-n", WORKERS),
}
# Given to every run: a test still running after this long (at most half the run's timeout)
# gets its stack dumped into the output (pytest's faulthandler; nothing is stopped), so that
# a hang which ends in our timeout says where it was.
HANG_DUMP_S = 120.0


def hang_dump(timeout: float) -> tuple[str, ...]:
    return ("-o", f"faulthandler_timeout={max(5, int(min(HANG_DUMP_S, timeout / 2)))}")


ISOLATE_MODES = (ISOLATE1, ISOLATE2)

MISSING = "missing"  # in one run's report and not in the other's
SEVERITY = {"error": 3, "failed": 2, "passed": 1, "skipped": 0}
# What --check refuses in any run's output (see suspicious_lines).
ALWAYS_SUSPECT = "PytestAssertRewriteWarning"
SUSPECT_IN_WARNINGS = "pytest_isolate"
SECTION = re.compile(r"^=+ (.+?) =+$")

# Left out of the suites' environment: the caller's pytest settings (PYTEST_ADDOPTS,
# PYTEST_PLUGINS, PYTEST_ISOLATE_*, ...) and ours; PYTHONDONTWRITEBYTECODE, so that pytest
# caches rewritten test modules as on a developer's machine; anything pointing at another
# Python.
DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


class SetupError(RuntimeError):
    """The project could not be downloaded, unpacked or installed: it has no results."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- running commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None: timed out and killed
    output: str
    wall: float


def run_command(
    cmd: Sequence[str],
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Finished:
    """Run ``cmd`` in its own session; on timeout kill the whole process group (xdist's
    workers included) and return ``returncode=None``."""
    with log_path.open("w+b") if log_path else tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        returncode: int | None
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
            _kill_group(proc)
        wall = time.perf_counter() - start
        if returncode is not None:
            _kill_group(proc)  # leftovers a suite started and did not stop
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    return Finished(returncode, output, wall)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader is gone; give the rest of the group a moment, then make sure.
            time.sleep(0.2)


def check_call(cmd: Sequence[str], cwd: Path, what: str, timeout: float = 1800.0) -> str:
    done = run_command(cmd, cwd, timeout)
    if done.returncode != 0:
        status = "timed out" if done.returncode is None else f"exit {done.returncode}"
        raise SetupError(f"{what}: {status}: {shlex.join(cmd)}\n{done.output[-3000:]}")
    return done.output


# -- sdists, the wheel, venvs -------------------------------------------------------------------


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_sdist(directory: Path, project: Project) -> Path | None:
    wanted = f"{normalize(project.name)}-{project.version}"
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        for suffix in (".tar.gz", ".zip"):
            if path.name.endswith(suffix):
                stem = path.name.removesuffix(suffix)
                base, _, version = stem.rpartition("-")
                if f"{normalize(base)}-{version}" == wanted:
                    return path
    return None


def fetch_sdist(cache: Path, project: Project) -> Path:
    """The project's sdist, downloaded from PyPI on first use and reused afterwards."""
    sdists = cache / "sdists"
    found = find_sdist(sdists, project)
    if found:
        return found
    sdists.mkdir(parents=True, exist_ok=True)
    log(f"[{project.name}] downloading the sdist {project.name}=={project.version}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        spec = f"{project.name}=={project.version}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        check_call([*cmd, spec, "-d", tmp], cache, f"downloading {spec}")
        got = find_sdist(Path(tmp), project)
        if got is None:
            raise SetupError(f"pip download {spec} left no sdist in {tmp}")
        return Path(shutil.move(got, sdists / got.name))


def unpack(sdist: Path, cache: Path, project: Project) -> Path:
    """A fresh copy of the sdist's tree, so nothing from an earlier invocation lingers."""
    target = cache / "src" / f"{normalize(project.name)}-{project.version}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            zf.extractall(target)
    else:
        with tarfile.open(sdist) as tf:
            tf.extractall(target, filter="data")
    tops = [p for p in target.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise SetupError(f"{sdist.name}: expected one top folder, found {tops}")
    tree = tops[0]
    if not (tree / project.tests).is_dir():
        raise SetupError(f"{sdist.name} ships no {project.tests}/: pick another version")
    return tree


def wheel_digest(wheel: Path) -> str:
    """Hash of the wheel's contents, not its bytes: zip timestamps differ between builds."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            digest.update(name.encode() + b"\0" + zf.read(name) + b"\0")
    return digest.hexdigest()[:16]


def build_wheel(workdir: Path, root: Path) -> Path:
    """The plugin as users install it: a wheel built from a copy of the checkout (the build
    writes build/ and *.egg-info next to the sources, which must not land in the checkout)."""
    source = workdir / "source"
    ignore = shutil.ignore_patterns(
        ".git", ".tox", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(root, source, ignore=ignore)
    out = workdir / "wheel"
    log(f"building the plugin's wheel from {root}")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    check_call(cmd, workdir, "building the plugin's wheel")
    wheels = sorted(out.glob("pytest_isolate-*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"expected one pytest_isolate wheel in {out}, found {wheels}")
    return wheels[0]


def venv_key(project: Project, sdist: Path) -> str:
    spec = {
        "python": sys.version,
        "executable": sys.executable,
        "project": [project.name, project.version, project.extras],
        "sdist": hashlib.sha256(sdist.read_bytes()).hexdigest(),
        "deps": [*project.deps, *COMMON_DEPS],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


READY = ".corpus-ready"  # written once the project and its pins are installed
PLUGIN = ".corpus-plugin"  # the digest of the plugin wheel installed now


def prepare_venv(cache: Path, project: Project, sdist: Path, tree: Path, wheel: Path) -> Path:
    """A venv with the project, its pins and xdist (cached across invocations), and this
    invocation's plugin wheel (reinstalled whenever its contents changed)."""
    venvs = cache / "venvs"
    prefix = f"{normalize(project.name)}-{project.version}-"
    venv = venvs / f"{prefix}{venv_key(project, sdist)}"
    python = venv / "bin" / "python"
    if not (venv / READY).exists():
        for stale in venvs.glob(f"{prefix}*") if venvs.is_dir() else ():
            shutil.rmtree(stale)
        log(f"[{project.name}] creating {venv}")
        check_call([sys.executable, "-m", "venv", str(venv)], cache, "creating the venv")
        target = f"{tree}[{project.extras}]" if project.extras else str(tree)
        pip = [str(python), "-m", "pip", "install", "-q"]
        check_call([*pip, target, *project.deps, *COMMON_DEPS], tree, f"installing {project.label}")
        (venv / READY).write_text(json.dumps({"deps": [*project.deps, *COMMON_DEPS]}))
    digest = wheel_digest(wheel)
    marker = venv / PLUGIN
    if not marker.exists() or marker.read_text() != digest:
        log(f"[{project.name}] installing the plugin wheel {wheel.name} ({digest})")
        marker.unlink(missing_ok=True)
        pip = [str(python), "-m", "pip"]
        check_call([*pip, "uninstall", "-q", "-y", "pytest-isolate"], tree, "removing the plugin")
        # With its dependencies: the pinned ones are already satisfied, a new one comes in.
        check_call([*pip, "install", "-q", str(wheel)], tree, "installing the plugin")
        marker.write_text(digest)
    return venv


def installed_versions(venv: Path, names: Sequence[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor n in sys.argv[1:]:\n"
        "    try: out[n] = version(n)\n    except PackageNotFoundError: out[n] = '-'\n"
        "print(json.dumps(out))"
    )
    done = run_command([str(venv / "bin" / "python"), "-c", code, *names], venv, 60)
    try:
        result: dict[str, str] = json.loads(done.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return result


# -- one pytest run -------------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    command: list[str]
    returncode: int | None  # None: timed out
    wall: float
    outcomes: dict[str, str]  # classname::name -> passed / failed / error / skipped
    suspicious: list[str]  # output lines --check refuses
    log_path: Path
    report_problem: str = ""  # why no outcomes could be read, if so

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def status(self) -> str:
        return "timed out" if self.returncode is None else f"exit {self.returncode}"


def parse_junit(path: Path) -> dict[str, str]:
    """classname::name -> outcome. A test reported twice (say, passed then an error in
    teardown) keeps its worst outcome."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        before = outcomes.get(key)
        if before is None or SEVERITY[outcome] > SEVERITY[before]:
            outcomes[key] = outcome
    return outcomes


def sections(output: str) -> Iterator[tuple[str, str]]:
    """(section title, line) for each line of pytest's output; "" before the first title."""
    title = ""
    for line in output.splitlines():
        match = SECTION.match(line.strip())
        if match:
            title = match.group(1).strip().lower()
        yield title, line


def suspicious_lines(output: str) -> list[str]:
    """Lines that show the plugin misbehaving: PytestAssertRewriteWarning anywhere (as a
    warning, or as the error filterwarnings=error makes of it), and any line of the warnings
    summary that mentions pytest_isolate."""
    found: list[str] = []
    for title, line in sections(output):
        if ALWAYS_SUSPECT in line or (
            title.startswith("warnings summary") and SUSPECT_IN_WARNINGS in line
        ):
            found.append(line.strip())
    return list(dict.fromkeys(found))


def environment(venv: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in DROPPED_ENV
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def run_pytest(
    mode: str, project: Project, venv: Path, tree: Path, logs: Path, timeout: float
) -> Run:
    slug = mode.replace(" ", "-")
    junit = logs / f"{normalize(project.name)}-{slug}.xml"
    log_path = logs / f"{normalize(project.name)}-{slug}.log"
    junit.unlink(missing_ok=True)
    pytest = str(venv / "bin" / "pytest")
    cmd = [pytest, *MODES[mode], *hang_dump(timeout), *project.args, f"--junitxml={junit}"]
    done = run_command(cmd, tree, timeout, environment(venv), log_path)
    outcomes: dict[str, str] = {}
    problem = ""
    # After a timeout, pytest (stopped by SIGTERM) usually still writes its report: the tests
    # missing from it are those that never finished.
    if junit.exists():
        try:
            outcomes = parse_junit(junit)
        except ET.ParseError as exc:
            problem = f"unreadable JUnit XML: {exc}"
    else:
        problem = "no JUnit XML written"
    if done.returncode is None:
        problem = f"timed out after {timeout:.0f} s" + (f"; {problem}" if problem else "")
    return Run(
        mode,
        cmd,
        done.returncode,
        done.wall,
        outcomes,
        suspicious_lines(done.output),
        log_path,
        problem,
    )


# -- one project --------------------------------------------------------------------------------


@dataclass
class ProjectResult:
    project: Project
    runs: dict[str, Run] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    setup_error: str = ""

    @property
    def serial(self) -> Run | None:
        return self.runs.get(SERIAL)

    def differences(self, mode: str) -> list[tuple[str, str, str]]:
        """(test, serial outcome, this run's outcome), in the serial run's order."""
        serial, run = self.serial, self.runs.get(mode)
        if serial is None or run is None:
            return []
        keys = list(dict.fromkeys([*serial.outcomes, *run.outcomes]))
        return [
            (key, serial.outcomes.get(key, MISSING), run.outcomes.get(key, MISSING))
            for key in keys
            if serial.outcomes.get(key, MISSING) != run.outcomes.get(key, MISSING)
        ]

    def failures(self) -> list[str]:
        """Why --check fails this project; empty when it passes."""
        if self.setup_error:
            return [f"not set up: {self.setup_error.splitlines()[0]}"]
        serial = self.serial
        if serial is None or serial.timed_out:
            return ["the serial run timed out: nothing to compare with"]
        why: list[str] = []
        for mode in ISOLATE_MODES:
            run = self.runs[mode]
            if run.timed_out:
                why.append(f"{mode}: timed out")
                continue
            diffs = self.differences(mode)
            if diffs:
                why.append(f"{mode}: {len(diffs)} tests' outcomes differ from serial")
            if run.returncode != serial.returncode:
                why.append(f"{mode}: exit {run.returncode}, serial exit {serial.returncode}")
            if run.report_problem:
                why.append(f"{mode}: {run.report_problem}")
        for mode, run in self.runs.items():
            if run.suspicious:
                why.append(f"{mode}: {len(run.suspicious)} suspicious output lines")
        return why


def run_project(
    project: Project, cache: Path, wheel: Path, logs: Path, timeout: float
) -> ProjectResult:
    result = ProjectResult(project)
    if project.timeout is not None:
        timeout = min(timeout, project.timeout)
    try:
        sdist = fetch_sdist(cache, project)
        tree = unpack(sdist, cache, project)
        venv = prepare_venv(cache, project, sdist, tree, wheel)
    except (SetupError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        result.setup_error = str(exc)
        log(f"[{project.name}] SETUP FAILED: {exc}")
        return result
    result.versions = installed_versions(
        venv, ["pytest", "pytest-xdist", "execnet", "pluggy", "pytest-isolate"]
    )
    # Not timed: compiles the test modules (pytest caches them rewritten), so that the
    # serial run, which comes first, pays no more start-up than the others.
    if project.args:
        log(f"[{project.name}] {len(project.args)} arguments for every run (projects.py)")
    warmup = [str(venv / "bin" / "pytest"), "-p", "no:isolate", "--collect-only", "-q"]
    run_command([*warmup, *project.args], tree, timeout, environment(venv), logs / "warmup.log")
    # A fresh cache: the first isolate run has no durations, the second has the first's.
    shutil.rmtree(tree / ".pytest_cache", ignore_errors=True)
    for mode in MODES:
        log(f"[{project.name}] {mode}: pytest {shlex.join(MODES[mode])} ...")
        run = run_pytest(mode, project, venv, tree, logs, timeout)
        result.runs[mode] = run
        counts = Counter(run.outcomes.values())
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or run.report_problem
        log(f"[{project.name}] {mode}: {run.wall:.1f} s, {run.status}, {summary}")
    return result


# -- reporting ----------------------------------------------------------------------------------


def seconds(run: Run | None) -> str:
    if run is None:
        return "-"
    return f"{run.wall:.1f} (timed out)" if run.timed_out else f"{run.wall:.1f}"


def ratio(result: ProjectResult, mode: str) -> str:
    run, xdist = result.runs.get(mode), result.runs.get(XDIST)
    if run is None or xdist is None or run.timed_out or xdist.timed_out or xdist.wall <= 0:
        return "-"
    if len(run.outcomes) != len(xdist.outcomes):  # not the same work: no fair ratio
        return f"n/a ({len(run.outcomes)} vs {len(xdist.outcomes)} tests)"
    return f"{run.wall / xdist.wall:.2f}"


def describe(result: ProjectResult) -> str:
    project = result.project
    lines = [f"## {project.label}"]
    if result.setup_error:
        return "\n".join([*lines, f"not run: {result.setup_error}", ""])
    serial = result.serial
    assert serial is not None
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    lines.append(f"tests: {len(serial.outcomes)} ({versions})")
    if project.args:
        shown = shlex.join(project.args)
        if len(shown) > 160:
            shown = f"{shown[:150]}... ({len(project.args)} in all, see bench/real/projects.py)"
        lines.append(f"extra arguments: {shown}")
    for mode, run in result.runs.items():
        counts = Counter(run.outcomes.values())
        tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        head = f"  {mode:12} {run.wall:7.1f} s  {run.status:10} {tally}"
        if mode != SERIAL:
            head += f"  (vs xdist {ratio(result, mode)})" if mode in ISOLATE_MODES else ""
        lines.append(head)
        if run.report_problem:
            lines.append(f"      {run.report_problem} (log: {run.log_path})")
        if mode != SERIAL:
            diffs = result.differences(mode)
            if diffs:
                lines.append(f"      {len(diffs)} tests differ from serial (serial -> {mode}):")
                lines.extend(f"        {t}: {a} -> {b}" for t, a, b in diffs[:SHOWN])
                if len(diffs) > SHOWN:
                    lines.append(f"        ... and {len(diffs) - SHOWN} more")
            elif not run.timed_out:
                lines.append("      same outcomes as serial")
        for line in run.suspicious[:SHOWN]:
            lines.append(f"      suspicious: {line[:200]}")
        if len(run.suspicious) > SHOWN:
            lines.append(f"      ... and {len(run.suspicious) - SHOWN} more suspicious lines")
    lines.append("")
    return "\n".join(lines)


def diff_cell(result: ProjectResult) -> str:
    if result.setup_error:
        return "not set up"
    parts = []
    for mode, short in ((XDIST, "xdist"), (ISOLATE1, "1st"), (ISOLATE2, "2nd")):
        run = result.runs[mode]
        text = f"{short} {len(result.differences(mode))}"
        if run.timed_out:
            parts.append(f"{text} (timed out)")
            continue
        serial = result.serial
        if serial is not None and run.returncode != serial.returncode:
            text += f" (exit {run.returncode} vs {serial.returncode})"
        if run.suspicious:
            text += f" ({len(run.suspicious)} suspicious)"
        parts.append(text)
    return ", ".join(parts)


def commit(root: Path) -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pytest_isolate", "pyproject.toml"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha} (plus uncommitted changes)" if dirty else sha


def markdown(results: Sequence[ProjectResult], timeout: float, plugin: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Real test suites: serial, plain xdist, pytest-isolate",
        "",
        f"{now}, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, plugin commit {plugin}, `-n {WORKERS}`, "
        f"timeout {timeout:.0f} s per run. Written by `python -m bench.real` "
        "(see bench/real/README.md).",
        "",
        "Differences: tests whose outcome differs from the serial run's "
        "(a test missing from one report counts).",
        "",
        "| project | version | tests | serial s | xdist s | isolate 1st s | isolate 2nd s "
        "| 2nd/xdist | differences |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = []
    for r in results:
        p = r.project
        if r.setup_error:
            rows.append(f"| {p.name} | {p.version} | - | - | - | - | - | - | not set up |")
            continue
        serial = r.serial
        tests = str(len(serial.outcomes)) if serial else "-"
        cells = [seconds(r.runs.get(m)) for m in MODES]
        rows.append(
            f"| {p.name} | {p.version} | {tests} | {' | '.join(cells)} "
            f"| {ratio(r, ISOLATE2)} | {diff_cell(r)} |"
        )
    details = ["", "## Details", "", "```", *(describe(r) for r in results), "```", ""]
    return "\n".join([*head, *rows, *details])


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.real",
        description="Run real projects' test suites serially, with xdist and with the plugin.",
    )
    names = ",".join(p.name for p in PROJECTS)
    parser.add_argument("--projects", default=names, help=f"comma-separated (default: {names})")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"sdists, sources and venvs (default: ${CACHE_ENV} or {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if an isolate run differs from serial (outcomes, exit code), times out, "
        "or shows a PytestAssertRewriteWarning or a warning from pytest_isolate",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per pytest run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown report")
    parser.add_argument(
        "--plugin-source",
        type=Path,
        default=ROOT,
        help="the plugin's source tree to build the wheel from (default: this checkout), "
        "e.g. an older commit unpacked with git archive",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [n.strip() for n in args.projects.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown or not wanted:
        known = ", ".join(BY_NAME)
        print(f"unknown project(s) {', '.join(unknown) or '(none)'}; known: {known}")
        return 2
    projects = [BY_NAME[n] for n in wanted]
    cache = (args.cache or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)).expanduser()
    cache = cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    logs = cache / "logs"
    logs.mkdir(exist_ok=True)
    start = time.perf_counter()
    source = args.plugin_source.resolve()
    plugin = commit(source)  # before the build: the checkout may move on during the runs
    with tempfile.TemporaryDirectory(prefix="corpus-wheel-") as tmp:
        try:
            wheel = build_wheel(Path(tmp), source)
        except SetupError as exc:
            print(f"cannot build the plugin: {exc}")
            return 2
        results = [run_project(p, cache, wheel, logs, args.timeout) for p in projects]
    for result in results:
        print(describe(result))
    report = markdown(results, args.timeout, plugin)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    table = report.split("\n## Details")[0]
    print(table)
    print(f"\nwritten to {args.out}; logs and JUnit files in {logs}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.check:
        failed = False
        for result in results:
            for why in result.failures():
                print(f"CHECK FAILED {result.project.name}: {why}")
                failed = True
        if not failed:
            print("check passed: every isolate run matches the serial one")
        return 1 if failed else 0
    return 0
