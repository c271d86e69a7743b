"""pytest-isolate: parallel, isolated test runs on pytest-xdist.

Tests declare what they touch with markers; conflicting tests are grouped into domains at
collection, and a scheduler on top of xdist runs independent domains in parallel.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use: every worker imports this package, and needs none of them.
_HOMES = {
    "Claim": "claims",
    "DeclarationError": "claims",
    "TestClaims": "claims",
    "Dispatcher": "dispatch",
    "build_domains": "domains",
    "Plan": "plan",
    "Unit": "plan",
    "make_plan": "plan",
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
