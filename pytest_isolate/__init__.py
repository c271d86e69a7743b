"""pytest-isolate: parallel, isolated test runs on pytest-xdist.

Tests declare what they touch with markers; conflicting tests are grouped into domains at
collection, and a scheduler on top of xdist runs independent domains in parallel.
"""

from __future__ import annotations

from .claims import Claim, DeclarationError, TestClaims
from .dispatch import Dispatcher
from .domains import build_domains
from .plan import Plan, Unit, make_plan

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
