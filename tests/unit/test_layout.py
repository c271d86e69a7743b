"""The package's house rules, checked on its source: data flows one way through the stages,
the pure modules import no pytest, xdist or execnet, nothing imports the entry point, and no
module outgrows one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_isolate

PACKAGE = Path(pytest_isolate.__file__).parent

#: The stages of a run, in the order data flows through them: a module may import from its
#: own stage and earlier ones, never from a later one.
STAGES = ("declare", "schedule", "xdist", "provision", "faults", "report", "diagnose")

#: Top-level modules any stage may use: settings-free helpers with no policy of their own
#: (``words`` is pure: the one pluralizer).
SHARED = {"compat", "options", "hookspecs", "words"}

#: Modules of the stages that touch pytest, xdist or execnet: each stage's adapter. Every
#: other module in the stage folders is pure (plain data in and out).
ADAPTERS = {
    "declare/markers.py",  # reads pytest's marks
    "schedule/durations.py",  # pytest's cache
    "xdist/scheduler.py",
    "xdist/transport.py",
    "xdist/sendable.py",
    "faults/timeouts.py",  # the TimeoutGuard hook wrapper
    "faults/interrupts.py",  # SIGTERM ignored from the session finish on: a hook
    "report/reporter.py",
    "diagnose/audit.py",
    "diagnose/rerun.py",
    "diagnose/processes.py",  # the rerun processes, and the outcome log plugin in them
    "diagnose/memory.py",  # pytest's cache
}
FRAMEWORKS = {"pytest", "_pytest", "xdist", "execnet", "pluggy"}

MAX_LINES = 450


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def stage_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name below the package, or the top-level external module)."""
    tree = ast.parse(path.read_text())
    here = list(path.relative_to(PACKAGE).parent.parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, "!" + alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
                if module == "pytest_isolate" or module.startswith("pytest_isolate."):
                    inner = module.removeprefix("pytest_isolate").lstrip(".")
                    found += [(node.lineno, inner or alias.name) for alias in node.names]
                else:
                    found.append((node.lineno, "!" + module.split(".")[0]))
                continue
            base = here[: len(here) - (node.level - 1)]
            if node.module:
                found.append((node.lineno, ".".join([*base, *node.module.split(".")])))
            else:
                found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return found


def test_data_flows_one_way_through_the_stages() -> None:
    wrong = []
    for path in modules():
        stage = stage_of(path)
        for line, target in imports(path):
            if target.startswith("!"):
                continue
            first = target.split(".")[0]
            if first == "plugin":
                wrong.append(f"{name(path)}:{line} imports the entry point")
            if not stage:
                continue  # the run's wiring (session, controller, settings) may use any stage
            if first in STAGES and STAGES.index(first) > STAGES.index(stage):
                wrong.append(f"{name(path)}:{line} ({stage}) imports the later stage {target}")
            elif first not in STAGES and first not in SHARED:
                wrong.append(f"{name(path)}:{line} ({stage}) imports the run's wiring {target}")
    assert wrong == []


def test_pure_modules_import_no_test_framework() -> None:
    impure = []
    for path in modules():
        if not stage_of(path) or name(path) in ADAPTERS:
            continue
        for line, target in imports(path):
            if target.startswith("!") and target[1:] in FRAMEWORKS:
                impure.append(f"{name(path)}:{line} imports {target[1:]}")
            elif target.split(".")[0] in SHARED - {"hookspecs", "words"}:
                impure.append(f"{name(path)}:{line} imports {target} (pytest underneath)")
    assert impure == []


def test_the_adapters_listed_exist_and_are_adapters() -> None:
    for adapter in ADAPTERS:
        path = PACKAGE / adapter
        assert path.is_file(), adapter
        assert any(t.startswith("!") and t[1:] in FRAMEWORKS for _, t in imports(path)), adapter


@pytest.mark.parametrize("path", modules(), ids=name)
def test_a_module_reads_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name(path)}: {lines} lines; split it by concern"
