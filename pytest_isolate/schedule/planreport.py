"""Plan report: the text ``--isolate-plan`` prints.

Input: a :class:`~pytest_isolate.schedule.plan.Plan`, the node ids, claims and estimates.
Output: lines of text. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..declare.claims import TestClaims, declared_names
from ..words import count
from .plan import Plan


def _describe(claims: Sequence[TestClaims], unit_tests: Sequence[int]) -> str:
    names = {name for index in unit_tests for name in declared_names(claims[index])}
    return ", ".join(sorted(names)) or "free"


def format_plan(
    plan: Plan,
    nodeids: Sequence[str],
    claims: Sequence[TestClaims],
    estimates: Sequence[float],
    recorded: int,
) -> list[str]:
    workers = len(plan.queues)
    # As in the closing line: a domain joins two or more tests by their claims; a unit of
    # plain tests is a chunk of module neighbours, and its tests are free.
    domains = [
        u for u in plan.units if len(u.tests) > 1 and not all(claims[i].is_plain for i in u.tests)
    ]
    free = len(nodeids) - sum(len(u.tests) for u in domains)
    lines = [
        f"pytest-isolate plan: {count(len(nodeids), 'test')}, {count(len(domains), 'domain')} "
        f"and {count(free, 'free test')}, {recorded} with recorded durations, "
        f"{count(workers, 'worker')}",
        "",
        "domains (priority order):",
    ]
    for number, unit in enumerate(plan.units, 1):
        lines.append(
            f"  [{number}] {unit.estimate:.3f}s  {count(len(unit.tests), 'test')}  "
            f"{_describe(claims, unit.tests)}"
        )
        for index in unit.tests:
            lines.append(f"      {estimates[index]:.3f}s  {nodeids[index]}")
    lines += ["", "schedule:"]
    for slot, queue in enumerate(plan.queues):
        order = " ".join(f"[{position + 1}]" for position in queue) or "-"
        lines.append(f"  worker {slot}: {plan.loads[slot]:.3f}s  {order}")
    if plan.pool:
        pooled = " ".join(f"[{position + 1}]" for position in plan.pool)
        lines.append(f"  pooled, to the first worker free in collection order: {pooled}")
    lines.append(
        f"estimated makespan {plan.makespan:.3f}s, lower bound {plan.lower_bound():.3f}s, "
        f"total work {plan.total:.3f}s"
    )
    return lines
