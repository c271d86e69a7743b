"""--isolate-sandbox: a home and a working directory of the worker's own.

Tests that write fixed relative paths (a test database file ``app.db`` next to the project)
or per-user files (anything using platformdirs writes under ``~/.config``, ``~/.cache``)
collide across workers, and no marker fits them well. With the sandbox, each worker has:

- ``HOME`` and ``XDG_CONFIG_HOME``/``XDG_CACHE_HOME``/``XDG_DATA_HOME``/``XDG_STATE_HOME``:
  directories in the worker's directory (``home/``), empty at the start;
- a working directory holding a symlink to each entry of the directory pytest was started
  in: the project's files are visible under their usual relative paths, and a file a test
  creates there is the worker's own. It lives in the user's temp dir
  (``pi-<run id>-<worker id>-cwd``), not under basetemp: a basetemp inside the project
  (``--basetemp=.tmp``) would put links to the project inside the project, and another
  worker's collection would walk them round and round.

Limits: a test that writes to an existing project file writes through the link, to the
project's file; an entry created in the project directory after the worker started is not
seen. Pure file-system work, no pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

#: XDG base directories, and where each lives under the home, as the spec's defaults.
XDG = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_CACHE_HOME": ".cache",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


def make_home(worker_dir: Path) -> dict[str, str]:
    """The worker's home and XDG directories, made; the variables that point at them."""
    home = worker_dir / "home"
    values = {"HOME": str(home)}
    for name, relative in XDG.items():
        path = home / relative
        path.mkdir(parents=True, exist_ok=True)
        values[name] = str(path)
    return values


def make_workdir(workdir: Path, project: Path) -> Path:
    """The worker's working directory, ``workdir``: a link to each entry of ``project``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(project):
        link = workdir / name
        if not os.path.lexists(link):
            os.symlink(project / name, link)
    return workdir
