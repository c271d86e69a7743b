"""Worker side: reports that execnet can send."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


class SendableReports:
    """Worker side: reports that execnet can send.

    execnet sends only its own plain types, and text that encodes to UTF-8. A report holding
    a lone surrogate (output decoded with ``surrogateescape``, a test of bad encodings) or an
    object (pytest 9's subtest reports carry the subTest's parameters: a ``range``, a
    ``Fraction``) made the worker's send fail: under plain xdist the test fails with
    execnet's DumpError, or the worker goes down and the tests after it go unreported. Such
    text is carried backslash-escaped and such objects as their ``repr``, what the terminal
    would show of them, and the run goes on.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, report: object) -> Generator[None, Any, Any]:
        data = yield
        return _sendable(data)


#: What execnet's serializer sends as it is (containers are walked).
_PLAIN = (bool, int, float, complex, bytes, type(None))


def _sendable(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():  # nearly every string, in C: the rest is rare
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_sendable(item) for item in value)
    return _sendable(repr(value))
