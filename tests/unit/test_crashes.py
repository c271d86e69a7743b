import signal

import pytest

from pytest_isolate.declare.claims import TestClaims, unused_capacity
from pytest_isolate.faults.crashes import describe_exit


@pytest.mark.parametrize(
    ("returncode", "words"),
    [
        (-signal.SIGSEGV, "killed by SIGSEGV (signal 11): a segmentation fault"),
        (-signal.SIGKILL, "killed by SIGKILL (signal 9): killed from outside, often by the kernel"),
        (-signal.SIGUSR1, "killed by SIGUSR1 (signal 10)"),
        (3, "exited with code 3"),
        (None, None),
    ],
)
def test_exit_status_in_words(returncode: int | None, words: str | None) -> None:
    described = describe_exit(returncode)
    if words is None:
        assert described is None
    else:
        assert described is not None and described.startswith(words)


def test_unused_capacity_names_are_those_no_test_counts() -> None:
    claims = [TestClaims(counted=("gpu",)), TestClaims(), TestClaims(counted=("gpu", "browser"))]
    assert unused_capacity({"gpu": 2, "browser": 1, "gpus": 1, "tpu": 3}, claims) == [
        "gpus",
        "tpu",
    ]
    assert unused_capacity({"gpu": 2}, claims) == []
