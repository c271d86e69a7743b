"""Seed -> suite: a random pytest project with declared resources and planted faults.

Pure: :func:`generate` turns a seed into a :class:`SuiteSpec` (the tests, their declarations,
their faults and the options of the run) with nothing but ``random.Random(seed)``, and
:func:`write_suite` writes it into a directory. No pytest import, no process started: the
same seed gives the same suite and the same run on every machine.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

# --- faults ---------------------------------------------------------------------------------

SEGFAULT = "segfault"
EXIT = "os_exit"
SIGKILL = "sigkill"
HANG = "hang"
SETUP_ERROR = "setup_error"
TEARDOWN_ERROR = "teardown_error"
KEYBOARD_INTERRUPT = "keyboard_interrupt"
HUGE_OUTPUT = "huge_output"
BAD_UNICODE = "bad_unicode"

#: Every fault kind, in report order.
FAULT_KINDS = (
    SEGFAULT,
    EXIT,
    SIGKILL,
    HANG,
    SETUP_ERROR,
    TEARDOWN_ERROR,
    KEYBOARD_INTERRUPT,
    HUGE_OUTPUT,
    BAD_UNICODE,
)
#: Faults that end the process they run in: only under -n, where a worker is replaceable.
PROCESS_FAULTS = frozenset({SEGFAULT, EXIT, SIGKILL, HANG})

#: What a test's report says when the fault behaves as planted.
PASSED = "passed"
FAILED = "failed"
ERROR = "error"  # an exception in setup

#: Environment variables the generated tests read (set by the runner).
KILL_DIR_ENV = "FAULT_HARNESS_KILL_DIR"
RUN_MARKER_ENV = "FAULT_HARNESS_RUN"

#: The signals the harness may send to the controller mid-run.
SIGINT = "SIGINT"  # to the controller only
SIGINT_GROUP = "SIGINT-group"  # to its process group, as a terminal's Ctrl-C does
SIGTERM = "SIGTERM"  # to the controller only
SIGNAL_KINDS = (SIGINT, SIGINT_GROUP, SIGTERM)


@dataclass(frozen=True)
class Fault:
    kind: str
    variant: int = 0  # segfault: 0 ctypes, 1 os.kill; huge_output/bad_unicode: 0 pass, 1 fail

    @property
    def expected(self) -> str:
        """The test's outcome when the fault does what it was planted to do."""
        if self.kind == SETUP_ERROR:
            return ERROR
        if self.kind == TEARDOWN_ERROR:
            return PASSED  # and an error at teardown
        if self.kind in (HUGE_OUTPUT, BAD_UNICODE):
            return FAILED if self.variant else PASSED
        return FAILED

    @property
    def label(self) -> str:
        if self.kind == SEGFAULT:
            return f"{self.kind}({'ctypes' if self.variant == 0 else 'os.kill'})"
        if self.kind in (HUGE_OUTPUT, BAD_UNICODE):
            return f"{self.kind}({'fail' if self.variant else 'pass'})"
        return self.kind


# --- declarations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    name: str  # "redis", "dir:data/a", "port:8080", "gpu"
    shared: bool = False

    def source(self) -> str:
        if self.shared:
            return f'pytest.mark.resource("{self.name}", mode="shared")'
        return f'pytest.mark.resource("{self.name}")'


EXCLUSIVE_NAMES = ("redis", "s3", "queue")
READ_NAMES = ("cfg", "schema")  # shared readers, sometimes a writer
DIRS = ("dir:data", "dir:data/a", "dir:data/b", "dir:out/x")
PORTS = ("port:8080", "port:9090")
COUNTED = "gpu"


@dataclass(frozen=True)
class TestSpec:
    index: int  # global: the test is test_tNN, NN = index, two digits
    module: str  # "test_mod1.py"
    klass: str | None  # "TestC1" or None
    claims: tuple[Claim, ...]
    group: str | None  # xdist_group name
    serial: bool
    duration: float
    fault: Fault | None

    @property
    def name(self) -> str:
        return f"test_t{self.index:02d}"

    @property
    def token(self) -> str:
        """What -k matches this test, and no other, by."""
        return f"t{self.index:02d}"

    @property
    def nodeid(self) -> str:
        if self.klass:
            return f"{self.module}::{self.klass}::{self.name}"
        return f"{self.module}::{self.name}"

    @property
    def expected(self) -> str:
        return self.fault.expected if self.fault else PASSED


@dataclass(frozen=True)
class ModuleSpec:
    name: str  # "test_mod1.py"
    mark: Claim | None  # a pytestmark for every test of the module
    klass: str | None  # the class some of its tests are in
    class_mark: Claim | None


@dataclass(frozen=True)
class RunOptions:
    workers: int | None  # -n N; None: in-process (-p isolate without -n)
    exitfirst: bool
    keyword: str | None  # a -k expression over the tests' tokens
    shard: tuple[int, int] | None
    timeout: float | None  # --isolate-timeout
    signal: str | None  # one of SIGNAL_KINDS
    signal_delay: float
    last_failed: bool  # a second run with --lf

    def args(self) -> list[str]:
        """pytest's arguments for the first run (the runner adds the report paths)."""
        args = ["-p", "isolate", "-p", "no:randomly", "-rA"]
        if self.workers is not None:
            args += ["-n", str(self.workers)]
        if self.exitfirst:
            args.append("-x")
        if self.keyword is not None:
            args += ["-k", self.keyword]
        if self.shard is not None:
            args += ["--isolate-shard", f"{self.shard[0]}/{self.shard[1]}"]
        if self.timeout is not None:
            args += ["--isolate-timeout", f"{self.timeout:g}"]
        return args

    def describe(self) -> str:
        parts = [f"-n {self.workers}" if self.workers is not None else "in-process"]
        if self.exitfirst:
            parts.append("-x")
        if self.keyword is not None:
            parts.append(f"-k '{self.keyword}'")
        if self.shard is not None:
            parts.append(f"shard {self.shard[0]}/{self.shard[1]}")
        if self.timeout is not None:
            parts.append(f"timeout {self.timeout:g}s")
        if self.signal is not None:
            parts.append(f"{self.signal}@{self.signal_delay:.2f}s")
        if self.last_failed:
            parts.append("then --lf")
        return " ".join(parts)


@dataclass(frozen=True)
class SuiteSpec:
    seed: int
    modules: tuple[ModuleSpec, ...]
    tests: tuple[TestSpec, ...]  # in collection order
    capacity: int  # of the counted resource COUNTED
    options: RunOptions

    @property
    def faults(self) -> list[Fault]:
        return [t.fault for t in self.tests if t.fault is not None]

    def test(self, nodeid: str) -> TestSpec | None:
        for t in self.tests:
            if t.nodeid == nodeid:
                return t
        return None

    def keyword_selected(self) -> list[str]:
        """Node ids -k keeps, in collection order (every test without -k)."""
        if self.options.keyword is None:
            return [t.nodeid for t in self.tests]
        return [t.nodeid for t in self.tests if keyword_matches(self.options.keyword, t.token)]


def keyword_matches(expression: str, token: str) -> bool:
    """Our -k expressions: ``tAA or tBB ...`` or ``not tAA and not tBB ...``."""
    words = re.findall(r"t\d\d", expression)
    if expression.startswith("not "):
        return token not in words
    return token in words


# --- generation -----------------------------------------------------------------------------


def _claims(rng: random.Random) -> tuple[Claim, ...]:
    if rng.random() < 0.45:
        return ()
    chosen: dict[str, Claim] = {}
    for _ in range(rng.choice((1, 1, 2))):
        pick = rng.random()
        if pick < 0.25:
            claim = Claim(rng.choice(EXCLUSIVE_NAMES))
        elif pick < 0.45:
            claim = Claim(rng.choice(READ_NAMES), shared=rng.random() < 0.75)
        elif pick < 0.7:
            claim = Claim(rng.choice(DIRS), shared=rng.random() < 0.25)
        elif pick < 0.8:
            claim = Claim(rng.choice(PORTS))
        else:
            claim = Claim(COUNTED)
        chosen.setdefault(claim.name, claim)
    return tuple(chosen.values())


def _fault(rng: random.Random, in_process: bool) -> Fault:
    kinds = [k for k in FAULT_KINDS if not (in_process and k in PROCESS_FAULTS)]
    kind = rng.choice(kinds)
    variant = 0
    if kind in (SEGFAULT, HUGE_OUTPUT, BAD_UNICODE):
        variant = rng.randrange(2)
    return Fault(kind, variant)


def generate(seed: int) -> SuiteSpec:
    rng = random.Random(seed)
    in_process = rng.random() < 0.15
    workers = None if in_process else rng.randint(1, 4)
    count = rng.randint(8, 25)
    module_count = rng.randint(2, 4)
    modules = []
    for m in range(1, module_count + 1):
        mark = Claim(f"mod{m}") if rng.random() < 0.12 else None
        klass = f"TestC{m}" if rng.random() < 0.3 else None
        class_mark = None
        if klass and rng.random() < 0.5:
            class_mark = Claim(rng.choice(EXCLUSIVE_NAMES + READ_NAMES), rng.random() < 0.3)
        modules.append(ModuleSpec(f"test_mod{m}.py", mark, klass, class_mark))
    # Every module gets at least one test; the rest go anywhere, in index order.
    owners = sorted(
        list(range(module_count))
        + [rng.randrange(module_count) for _ in range(count - module_count)]
    )
    serial_left = 1 if rng.random() < 0.2 else 0
    planned_faults = rng.choice((0, 1, 1, 2, 2, 3))
    fault_at = set(rng.sample(range(count), planned_faults))
    tests: list[TestSpec] = []
    for index, owner in enumerate(owners):
        module = modules[owner]
        in_class = module.klass is not None and rng.random() < 0.5
        group = rng.choice(("g1", "g2")) if rng.random() < 0.1 else None
        serial = False
        if serial_left and rng.random() < 0.15:
            serial, serial_left = True, 0
        tests.append(
            TestSpec(
                index=index,
                module=module.name,
                klass=module.klass if in_class else None,
                claims=_claims(rng),
                group=group,
                serial=serial,
                duration=round(rng.uniform(0, 0.3), 3),
                fault=_fault(rng, in_process) if index in fault_at else None,
            )
        )
    tests = _collection_order(tests, modules)
    capacity = rng.randint(1, 3)
    kinds = {t.fault.kind for t in tests if t.fault}
    timeout: float | None = None
    if HANG in kinds:
        timeout = rng.choice((2.0, 2.5, 3.0))
    elif not in_process and rng.random() < 0.2:
        timeout = rng.choice((5.0, 10.0))
    elif in_process and rng.random() < 0.1:
        timeout = 10.0
    keyword = None
    if rng.random() < 0.2:
        tokens = [t.token for t in tests]
        if rng.random() < 0.5:
            keep = rng.sample(tokens, rng.randint(1, max(1, len(tokens) // 2)))
            keyword = " or ".join(sorted(keep))
        else:
            drop = rng.sample(tokens, rng.randint(1, max(1, len(tokens) // 3)))
            keyword = " and ".join(f"not {t}" for t in sorted(drop))
    shard = None
    if rng.random() < 0.15:
        n = rng.randint(2, 3)
        shard = (rng.randint(1, n), n)
    signal = None
    if rng.random() < 0.25:
        signal = rng.choice(SIGNAL_KINDS)
    options = RunOptions(
        workers=workers,
        exitfirst=rng.random() < 0.15,
        keyword=keyword,
        shard=shard,
        timeout=timeout,
        signal=signal,
        signal_delay=round(rng.uniform(0.5, 3.0), 2),
        last_failed=rng.random() < 0.15,
    )
    return SuiteSpec(seed, tuple(modules), tuple(tests), capacity, options)


def _collection_order(tests: list[TestSpec], modules: list[ModuleSpec]) -> list[TestSpec]:
    """As pytest collects the files :func:`write_suite` writes: modules by name; in a
    module, the tests before the class, then the class's tests (it is written after them)."""
    order = {m.name: i for i, m in enumerate(modules)}
    return sorted(tests, key=lambda t: (order[t.module], t.klass is not None, t.index))


# --- writing --------------------------------------------------------------------------------

_HEADER = """\
import os
import signal
import sys
import time

import pytest


@pytest.fixture
def planted_setup_fault():
    raise RuntimeError("planted: an exception in a fixture's setup")


@pytest.fixture
def planted_teardown_fault():
    yield
    raise RuntimeError("planted: an exception in a fixture's teardown")


def _wait_to_be_killed():
    directory = os.environ["FAULT_HARNESS_KILL_DIR"]
    path = os.path.join(directory, "%d.pid" % os.getpid())
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(20)
    pytest.fail("planted: the harness did not SIGKILL this process")
"""


def _fault_body(fault: Fault) -> list[str]:
    kind = fault.kind
    if kind == SEGFAULT:
        if fault.variant == 0:
            return ["import ctypes", "", "ctypes.string_at(0)"]
        return ["os.kill(os.getpid(), signal.SIGSEGV)", "time.sleep(5)"]
    if kind == EXIT:
        return ["os._exit(1)"]
    if kind == SIGKILL:
        return ["_wait_to_be_killed()"]
    if kind == HANG:
        return ["time.sleep(60)"]
    if kind == KEYBOARD_INTERRUPT:
        return ['raise KeyboardInterrupt("planted")']
    if kind == HUGE_OUTPUT:
        lines = ["for i in range(3000):", '    print("%06d" % i + "x" * 1017)']
        if fault.variant:
            lines.append('assert False, "planted: a failure after 3 MB of output"')
        return lines
    if kind == BAD_UNICODE:
        lines = [
            'print("a lone surrogate: \\udcff")',
            'sys.stderr.write("to stderr: \\udcff\\n")',
            "sys.stdout.flush()",
            'sys.stdout.buffer.write(b"invalid utf-8: \\xff\\xfe\\xc3\\x28 end\\n")',
            "sys.stdout.flush()",
        ]
        if fault.variant:
            lines.append('assert False, "planted: a message with \\udcff in it"')
        return lines
    return []  # setup and teardown faults live in their fixtures


def _test_source(test: TestSpec, indent: str) -> list[str]:
    lines = [f"@{claim.source()}" for claim in test.claims]
    if test.group:
        lines.append(f'@pytest.mark.xdist_group("{test.group}")')
    if test.serial:
        lines.append("@pytest.mark.serial")
    params = ["self"] if test.klass else []
    if test.fault and test.fault.kind == SETUP_ERROR:
        params.append("planted_setup_fault")
    if test.fault and test.fault.kind == TEARDOWN_ERROR:
        params.append("planted_teardown_fault")
    lines.append(f"def {test.name}({', '.join(params)}):")
    lines.append(f"    time.sleep({test.duration})")
    if test.fault:
        lines += ["    " + line if line else "" for line in _fault_body(test.fault)]
    return [indent + line if line else "" for line in lines]


def module_source(module: ModuleSpec, tests: list[TestSpec]) -> str:
    out = [_HEADER]
    if module.mark:
        out.append(f"pytestmark = [{module.mark.source()}]\n")
    for test in tests:
        if test.klass is None:
            out.append("\n" + "\n".join(_test_source(test, "")) + "\n")
    members = [t for t in tests if t.klass is not None]
    if members:
        head = [f"@{module.class_mark.source()}"] if module.class_mark else []
        head.append(f"class {module.klass}:")
        body = ["\n".join(_test_source(t, "    ")) for t in members]
        out.append("\n\n" + "\n".join(head) + "\n" + "\n\n".join(body) + "\n")
    return "\n".join(out)


def ini_source(spec: SuiteSpec) -> str:
    return (
        "[pytest]\n"
        f"isolate_capacity = {COUNTED}:{spec.capacity}\n"
        "filterwarnings =\n"
        "    error\n"
        # The suite's own cache, next to it (the --lf run reads it).
        "cache_dir = .pytest_cache\n"
    )


def write_suite(spec: SuiteSpec, directory: Path, conftest: str) -> None:
    """The suite's files: pytest.ini, ``conftest`` (the overlap checker) and the modules."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(ini_source(spec))
    (directory / "conftest.py").write_text(conftest)
    for module in spec.modules:
        members = [t for t in spec.tests if t.module == module.name]
        (directory / module.name).write_text(module_source(module, members))


def describe(spec: SuiteSpec) -> str:
    faults = ", ".join(f"{t.token}:{t.fault.label}" for t in spec.tests if t.fault is not None)
    return (
        f"{len(spec.tests)} tests in {len(spec.modules)} files, faults [{faults or '-'}], "
        f"{spec.options.describe()}"
    )
