"""Conftest for the suites the integration tests run: an overlap checker, independent of the
plugin's own logic.

Around every test it registers what the test declares in a shared directory, under an
exclusive ``flock``, and records a violation if any test already running anywhere holds a
conflicting claim, if a counted resource goes over its capacity, or if a ``serial`` test
shares the machine. It also logs each test's start and end time and worker.
"""

import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager

import pytest

STATE = os.environ["ISOLATE_CHECK_DIR"]
HOLDERS = os.path.join(STATE, "holders")
os.makedirs(HOLDERS, exist_ok=True)


@contextmanager
def registry():
    with open(os.path.join(STATE, "registry.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def declared(item):
    claims = []
    capacity = dict(t.split(":") for t in item.config.getini("isolate_capacity"))
    for mark in item.iter_markers("resource"):
        mode = mark.kwargs.get("mode", "exclusive")
        for name in mark.args:
            if name.startswith("dir:"):
                path = os.path.normpath(os.path.join(str(item.config.rootpath), name[4:]))
                claims.append(["dir", path, mode])
            elif name in capacity:
                claims.append(["counted", name, mode])
            else:
                claims.append(["name", name, mode])
    groups = sorted(
        {
            m.args[0] if m.args else m.kwargs.get("name", "default")
            for m in item.iter_markers("xdist_group")
        }
    )
    if groups:
        claims.append(["group", "_".join(groups), "exclusive"])
    return claims, {k: int(v) for k, v in capacity.items()}


def clash(a, b):
    if a[0] != b[0] or a[0] == "counted":
        return False
    if a[2] == "shared" and b[2] == "shared" and a[0] != "group":
        return False
    if a[0] == "dir":
        x, y = a[1], b[1]
        return x == y or x.startswith(y + os.sep) or y.startswith(x + os.sep)
    return a[1] == b[1]


def alive(pid):
    # A crashed worker may linger as a zombie until the controller reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone (ENOENT), or being reaped (ESRCH)
        return False


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            found = "state " + f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/status") as f:
            found += " " + " ".join(
                line.split()[0] + line.split()[1] for line in f if line.startswith(("Tgid", "PPid"))
            )
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            found += " " + f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        return found
    except OSError:  # gone meanwhile (ENOENT, or ESRCH while it is reaped)
        return "gone"


def log(record):
    with open(os.path.join(STATE, "log.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


@pytest.fixture(autouse=True)
def _isolation_guard(request):
    item = request.node
    claims, capacity = declared(item)
    me = {
        "nodeid": item.nodeid,
        "claims": claims,
        "serial": item.get_closest_marker("serial") is not None,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "pid": os.getpid(),
    }
    path = os.path.join(HOLDERS, uuid.uuid4().hex)
    problems = []
    with registry():
        others = []
        for name in os.listdir(HOLDERS):
            with open(os.path.join(HOLDERS, name)) as f:
                other = json.load(f)
            if alive(other["pid"]):
                others.append(other)  # a crashed worker's test holds nothing any more
        for other in others:
            if me["serial"] or other["serial"]:
                problems.append(
                    f"serial overlap: {me['nodeid']} with {other['nodeid']} "
                    f"(pid {other['pid']}, {state(other['pid'])})"
                )
            for a in me["claims"]:
                for b in other["claims"]:
                    if clash(a, b):
                        problems.append(f"{me['nodeid']} overlaps {other['nodeid']} on {a}/{b}")
        for kind, name, _ in me["claims"]:
            if kind == "counted":
                holding = 1 + sum(
                    1 for o in others for c in o["claims"] if c[0] == "counted" and c[1] == name
                )
                if holding > capacity[name]:
                    problems.append(f"{name} held {holding} times, capacity {capacity[name]}")
        with open(path, "w") as f:
            json.dump(me, f)
        log(
            {
                "event": "start",
                "nodeid": item.nodeid,
                "worker": me["worker"],
                "pid": me["pid"],
                "t": time.time(),
            }
        )
    if problems:
        with open(os.path.join(STATE, "violations.txt"), "a") as f:
            f.write("\n".join(problems) + "\n")
    try:
        yield
    finally:
        with registry():
            os.remove(path)
            log({"event": "end", "nodeid": item.nodeid, "worker": me["worker"], "t": time.time()})
