"""The one pluralizer, for every stage's messages: ``1 domain``, ``2 domains``."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """``1 domain``, ``2 domains``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
