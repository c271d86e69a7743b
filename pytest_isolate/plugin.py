"""The pytest plugin (entry point ``isolate``): options, and the decision whether it runs.

It autoloads into every pytest run where it is installed, so this module stays small and
imports little. When the run asked for the plugin (``-n``, ``--dist``, ``--tx``, ``-p
isolate``, an ``--isolate-*`` option or an ``isolate_*`` ini key), :mod:`pytest_isolate.session`
sets up this process's part of the run. When it did not, only the markers are registered,
and the fixtures still work for a test that requests them.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import options
from .options import EXPLICIT_DIST, PLAN_WORKERS

if TYPE_CHECKING:
    from .provision.database import WorkerDatabase
    from .provision.ports import PortBlock
    from .provision.worker import IsolateWorker, Provisioner
    from .schedule.autoscale import Decision


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isolate", "pytest-isolate: parallel, isolated test runs")
    group.addoption(
        "--isolate-plan",
        action="store_true",
        default=False,
        help="print the domains, their tests and durations and the planned schedule, "
        "then exit without running tests",
    )
    group.addoption(
        "--isolate-durations",
        metavar="PATH",
        default=None,
        help="JSON file of recorded durations, {nodeid: seconds} (pytest-split's format)",
    )
    options.addini(
        parser,
        "isolate_capacity",
        type="args",
        default=[],
        help="counted resources, NAME:COUNT each (e.g. 'gpu:2 browser:4')",
    )
    options.addini(
        parser,
        "isolate_durations",
        default="",
        help="default for --isolate-durations",
    )
    group.addoption(
        "--isolate-shard",
        metavar="K/N",
        default=None,
        help="run shard K (1-based) of N: whole domains, balanced by recorded durations, "
        "the same split on every machine",
    )
    group.addoption(
        "--isolate-timeout",
        metavar="SECONDS",
        default=None,
        help="under -n: stop the worker of a test that runs longer, fail the test with its "
        "stack, and go on (per test: @pytest.mark.isolate_timeout(S))",
    )
    group.addoption(
        "--isolate-timeline",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML page of workers x time, one bar per test",
    )
    group.addoption(
        "--isolate-ports-per-worker",
        metavar="N",
        default=None,
        help="size of each worker's port block (default: ini isolate_ports_per_worker, 50)",
    )
    options.addini(parser, "isolate_ports_per_worker", default="50", help="size of each port block")
    options.add_audit_options(parser, group)
    options.add_rerun_options(parser, group)
    group.addoption(
        "--isolate-db-url",
        metavar="URL",
        default=None,
        help="PostgreSQL server URL: every worker gets its own database there "
        "(default: ini isolate_db_url, env PYTEST_ISOLATE_DB_URL; else SQLite files)",
    )
    options.addini(parser, "isolate_db_url", default="", help="default for --isolate-db-url")
    group.addoption(
        "--isolate-db-template",
        metavar="NAME",
        default=None,
        help="clone every worker database from this template database",
    )
    group.addoption(
        "--isolate-keep-db",
        action="store_true",
        default=False,
        help="keep the worker databases at the end instead of dropping them",
    )
    options.addini(
        parser,
        "isolate_db_env",
        default="",
        help="environment variable that gets each worker's database URL (e.g. DATABASE_URL; "
        "when it already names a PostgreSQL server, the databases are made there)",
    )
    group.addoption(
        "--isolate-sandbox",
        action="store_true",
        default=None,
        help="give each worker its own HOME and XDG_* directories, and a working directory "
        "where the project's files are visible and files the tests create are its own",
    )
    options.addini(
        parser, "isolate_sandbox", type="bool", default=False, help="default for --isolate-sandbox"
    )
    options.remember_options(group)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    # A wrapper runs before xdist's own pytest_cmdline_main turns "-n N" into "--dist load",
    # so only a --dist the user gave counts as explicit.
    option = config.option
    config.stash[EXPLICIT_DIST] = getattr(option, "dist", "no") not in ("no", None)
    if config.getoption("isolate_plan"):
        # Plan in-process, for the worker count asked for, like --collect-only does.
        config.stash[PLAN_WORKERS] = _requested_workers(config)
        if getattr(option, "numprocesses", None) is not None:
            option.numprocesses = None
    _check_trace(option)
    return (yield)


def _check_trace(option: Any) -> None:
    """--trace stops in pdb at every test: workers have no terminal, so as xdist does for
    --pdb, ``-n auto`` runs in-process and ``-n N`` is a usage error."""
    workers = getattr(option, "numprocesses", None)
    if not getattr(option, "trace", False) or getattr(option, "collectonly", False):
        return
    if workers in ("auto", "logical"):
        option.numprocesses = 0
    elif workers:
        raise pytest.UsageError(
            f"--trace is incompatible with -n {workers}: workers have no terminal to debug "
            "in; try -n0 or -nauto."
        )


AUTO_DECISION: pytest.StashKey[Decision] = pytest.StashKey()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: in-process when history says workers cannot pay off, else from domains."""
    if (
        config.stash.get(EXPLICIT_DIST, False)
        or config.getoption("isolate_plan")
        or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")  # the user's word wins
    ):
        return None
    from .schedule import durations
    from .schedule.autoscale import choose_workers, estimate

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    history = estimate(
        durations.load(config, early=True),
        durations.selection(config),
        durations.load_run(config),
    )
    if history is None:
        return None  # nothing recorded for this selection: exactly what xdist would do
    decision = choose_workers(history, cores or 1)
    config.stash[AUTO_DECISION] = decision
    return decision.workers


def pytest_report_header(config: pytest.Config) -> list[str]:
    decision = config.stash.get(AUTO_DECISION, None)
    return [f"isolate: -n auto: {decision.reason}"] if decision else []


def _requested_workers(config: pytest.Config) -> int:
    requested = getattr(config.option, "numprocesses", None)
    if requested in ("auto", "logical"):
        auto = config.hook.pytest_xdist_auto_num_workers(config=config)
        return max(1, int(auto or 1))
    return max(1, int(requested or 1))


def pytest_configure(config: pytest.Config) -> None:
    # Registered in every run, so marked suites pass --strict-markers without -n too.
    options.register_markers(config)
    if not options.asked_for(config):
        # Installed but not asked for: nothing more. The output, environment and files are
        # those of -p no:isolate; a test that requests a fixture gets slot 0 (_dormant_worker).
        return
    from . import session

    session.configure(config)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if config.pluginmanager.get_plugin("isolate-state") is not None:
        from . import session

        session.unconfigure(config)


def _worker_of(request: pytest.FixtureRequest) -> IsolateWorker:
    config = request.config
    if config.pluginmanager.get_plugin("isolate-state") is not None:
        from .session import worker_of

        worker = worker_of(config)
        if worker is not None:
            return worker
    return _dormant_worker(request)


def _dormant_worker(request: pytest.FixtureRequest) -> IsolateWorker:
    """Installed but not asked for: the first test that requests a fixture gets slot 0,
    made then; the plugin's own variables are set, nothing of the user's is changed."""
    from .provision import database, ports
    from .provision.worker import Provisioner, new_run_id
    from .settings import read_settings

    config = request.config
    provisioner = config.stash.get(DORMANT_WORKER, None)
    if provisioner is None:
        provisioner = Provisioner(read_settings(config), config.hook, temp="leave")
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        try:
            provisioner.setup(0, "main", new_run_id(), factory.getbasetemp() / "isolate")
        except (ports.PortsError, database.DatabaseError) as exc:
            pytest.fail(f"pytest-isolate: {exc}", pytrace=False)
        config.stash[DORMANT_WORKER] = provisioner
        config.add_cleanup(provisioner.teardown)
    assert provisioner.worker is not None
    return provisioner.worker


DORMANT_WORKER: pytest.StashKey[Provisioner] = pytest.StashKey()


@pytest.fixture(scope="session")
def isolate_worker(request: pytest.FixtureRequest) -> IsolateWorker:
    """This worker's slot, id, run id, temp dir, ports, database and plugins' extras."""
    return _worker_of(request)


@pytest.fixture(scope="session")
def isolate_ports(request: pytest.FixtureRequest) -> PortBlock:
    """This worker's port block: ``.start``, ``.stop``, ``.take(n=1)``."""
    return _worker_of(request).ports


@pytest.fixture(scope="session")
def isolate_db(request: pytest.FixtureRequest) -> WorkerDatabase:
    """This worker's own database: ``.url``, ``.name``, ``.backend``."""
    return _worker_of(request).db
