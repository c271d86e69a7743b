"""A small suite that declares what its tests touch; run it with `pytest -p isolate -n auto`."""

import time

import pytest


def work(seconds: float = 0.2) -> None:
    time.sleep(seconds)


@pytest.mark.resource("redis")
class TestCache:
    def test_set(self) -> None:
        work()

    def test_get(self) -> None:
        work()


@pytest.mark.resource("dir:build")
def test_build() -> None:
    work(0.4)


@pytest.mark.resource("dir:build/cache", mode="shared")
def test_read_cache() -> None:
    work()


@pytest.mark.resource("port:8080")
def test_server() -> None:
    work()


@pytest.mark.resource("gpu")
@pytest.mark.parametrize("model", ["small", "large"])
def test_gpu(model: str) -> None:
    work()


@pytest.mark.serial
def test_migrations() -> None:
    work()


@pytest.mark.parametrize("n", range(8))
def test_free(n: int) -> None:
    work(0.1)
