"""pytest-isolate: parallel, isolated test runs on pytest-xdist.

Tests declare what they touch with markers; conflicting tests are grouped into domains at
collection, and a scheduler on top of xdist runs independent domains in parallel.
"""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.machinery import ModuleSpec, PathFinder
from typing import Any


class _PlainImports:
    """Imports this package's modules the way Python does, without pytest's assertion rewriting.

    pytest rewrites every module of an installed plugin as it is imported; where bytecode is
    not written (PYTHONDONTWRITEBYTECODE=1, read-only site-packages) it parses and compiles
    each one again in every run, and every worker. The plugin's own asserts need no rewriting,
    so its modules load from their ordinary bytecode: this finder, ahead of pytest's on
    ``sys.meta_path``, answers for them with the standard path finder. Only this package and
    the entry point module that imports it pass through pytest's hook.
    """

    PREFIX = __name__ + "."

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: object = None) -> ModuleSpec | None:
        if not name.startswith(cls.PREFIX):
            return None
        return PathFinder.find_spec(name, path)


if not any(getattr(finder, "PREFIX", None) == _PlainImports.PREFIX for finder in sys.meta_path):
    sys.meta_path.insert(0, _PlainImports)

# Imported on first use: every worker imports this package, and needs none of them.
_HOMES = {
    "Claim": "declare.claims",
    "DeclarationError": "declare.claims",
    "TestClaims": "declare.claims",
    "Dispatcher": "schedule.dispatch",
    "build_domains": "declare.domains",
    "Plan": "schedule.plan",
    "Unit": "schedule.plan",
    "make_plan": "schedule.plan",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pytest_isolate' has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)


__all__ = [
    "Claim",
    "DeclarationError",
    "Dispatcher",
    "Plan",
    "TestClaims",
    "Unit",
    "build_domains",
    "make_plan",
]
