"""Worker provisioning: every worker's slot, temp dir, port block and database.

Input: the settings (:class:`Settings`), the worker's identity (slot, id, run id) and its
directory under pytest's basetemp. Output: an :class:`IsolateWorker`, with the environment
variables set for the tests and their subprocesses, and plugins' own resources set up through
the ``pytest_isolate_setup_worker`` hook. :class:`Provisioner` undoes all of it at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import database, ports, sandbox
from .database import WorkerDatabase
from .leases import Holder, me
from .ports import PortBlock
from .tmpdirs import TEMP_VARIABLES, Environment, make_private_tmp, remove_link, short_link


def new_run_id() -> str:
    """Short and lowercase: it goes into database names (63 bytes at most)."""
    return os.urandom(4).hex()  # what secrets.token_hex(4) does, without importing secrets


class Settings(NamedTuple):
    ports_per_worker: int = 50
    db_url: str | None = None
    db_template: str | None = None
    keep_db: bool = False
    db_env: str = ""  # ini isolate_db_env: the variable that gets the database URL, if any
    sandbox: bool = False  # --isolate-sandbox: HOME, XDG_* and a working directory of its own


@dataclass
class IsolateWorker:
    """What one worker has to itself; the ``isolate_worker`` fixture."""

    slot: int
    id: str
    run_id: str
    tmp_path: Path
    ports: PortBlock
    db: WorkerDatabase
    extra: dict[str, Any] = field(default_factory=dict)
    #: The worker's own directory under basetemp (the database file, the timeout records);
    #: ``tmp_path`` is a short link to the ``tmp`` directory in it.
    dir: Path = Path()

    def env(self, db_env: str) -> dict[str, str]:
        """The plugin's own variables, and the database URL in ``db_env`` if one is named."""
        values = {
            "PYTEST_ISOLATE_TMP": str(self.tmp_path),
            "PYTEST_ISOLATE_SLOT": str(self.slot),
            "PYTEST_ISOLATE_PORTS": self.ports.as_env(),
        }
        if db_env:
            values[db_env] = self.db.url  # asked for by name: the user's value is replaced
        return values

    def temp_env(self) -> dict[str, str]:
        tmp = str(self.tmp_path)
        return dict.fromkeys(TEMP_VARIABLES, tmp)

    def to_message(self) -> dict[str, Any]:
        """Plain data for the controller, which tears down after a crash."""
        return {
            "slot": self.slot,
            "id": self.id,
            "run_id": self.run_id,
            "tmp_path": str(self.tmp_path),
            "dir": str(self.dir),
            "ports": [self.ports.start, self.ports.stop],
            "db": [self.db.url, self.db.name, self.db.backend],
            "extra": self.extra,
            "pid": os.getpid(),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> IsolateWorker:
        url, name, backend = message["db"]
        start, stop = message["ports"]
        return cls(
            slot=message["slot"],
            id=message["id"],
            run_id=message["run_id"],
            tmp_path=Path(message["tmp_path"]),
            ports=PortBlock(start, stop, message["id"]),
            db=WorkerDatabase(url, name, backend),
            extra=dict(message["extra"]),
            dir=Path(message["dir"]),
        )


#: What becomes of TMPDIR/TEMP/TMP (see Provisioner).
TempMode = Literal["replace", "default", "leave"]


class Provisioner:
    """Sets one worker up and tears it down again, in reverse order.

    ``temp``: what becomes of ``TMPDIR``/``TEMP``/``TMP``. ``"replace"`` on a worker under
    ``-n`` (its private temp dir, made inside the user's); ``"default"`` in-process, where the
    plugin was asked for (set where the user has not set them); ``"leave"`` where it was not.
    """

    def __init__(self, settings: Settings, hook: Any, temp: TempMode = "replace") -> None:
        self.settings = settings
        self.hook = hook
        self.temp = temp
        self.worker: IsolateWorker | None = None
        self._holder: Holder | None = None
        self._environment = Environment()
        self._left_cwd: str | None = None  # where pytest was, while in the sandbox's
        self._workdir: Path | None = None
        self._user_tmp = Path(tempfile.gettempdir())  # before the worker's replaces it

    def setup(self, slot: int, worker_id: str, run_id: str, worker_dir: Path) -> IsolateWorker:
        settings = self.settings
        tmp = make_private_tmp(worker_dir)
        self._holder = me(run_id, slot)
        block = ports.lease_block(settings.ports_per_worker, self._holder, worker_id)
        try:
            if self.temp != "leave":
                tmp = short_link(tmp, run_id, worker_id)
            if settings.db_url:
                db = database.create_postgres(settings.db_url, run_id, slot, settings.db_template)
            else:
                db = database.sqlite_database(worker_dir)
        except BaseException:
            ports.release_block(block, self._holder)
            remove_link(tmp)
            raise
        self.worker = IsolateWorker(slot, worker_id, run_id, tmp, block, db, dir=worker_dir)
        self._environment.set(self.worker.env(settings.db_env))
        if self.temp == "replace":
            self._environment.set(self.worker.temp_env())
        elif self.temp == "default":
            self._environment.set_default(self.worker.temp_env())
        if settings.sandbox and self.temp != "leave":
            self._environment.set(sandbox.make_home(worker_dir))
        self.hook.pytest_isolate_setup_worker(worker=self.worker)
        return self.worker

    @property
    def workdir(self) -> Path | None:
        """--isolate-sandbox's working directory, once the tests run in it."""
        return self._workdir

    def enter_workdir(self) -> None:
        """--isolate-sandbox: tests run in the worker's own working directory (after
        collection, which imports the project from where pytest started)."""
        worker = self.worker
        if worker is not None and self.settings.sandbox and self.temp != "leave":
            self._left_cwd = os.getcwd()
            name = f"pi-{worker.run_id}-{worker.id}-cwd"
            self._workdir = sandbox.make_workdir(self._user_tmp / name, Path(self._left_cwd))
            os.chdir(self._workdir)

    def teardown(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        try:
            self.hook.pytest_isolate_teardown_worker(worker=worker, crashed=False)
        finally:
            try:
                release_database(worker, self.settings)
            finally:
                if self._holder is not None:
                    ports.release_block(worker.ports, self._holder)
                self._environment.restore()
                remove_link(worker.tmp_path)
                if self._left_cwd is not None:
                    os.chdir(self._left_cwd)
                    self._left_cwd = None
                if self._workdir is not None:
                    shutil.rmtree(self._workdir, ignore_errors=True)  # links: not followed
                    self._workdir = None


def release_database(worker: IsolateWorker, settings: Settings) -> None:
    if worker.db.backend == "postgresql" and settings.db_url and not settings.keep_db:
        database.drop_postgres(worker.db, settings.db_url)
