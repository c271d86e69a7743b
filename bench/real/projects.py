"""The corpus: real open-source projects whose own test suites run under the plugin.

Each project is a pinned sdist from PyPI (sdists ship tests/ and the pytest config) and a
pinned list of what its tests need, taken from the lock or requirements files in that sdist
(uv.lock, requirements/tests.txt, dependency groups). pytest must be one the plugin supports
(8.3 to 9.x): where a project's own pin is older, the nearest supported release is used and
the comment says so. ``args`` go to all four runs alike, each with the reason beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Installed into every project's venv, beside the project's own pins (and the plugin wheel).
COMMON_DEPS: tuple[str, ...] = ("pytest-xdist==3.8.0", "execnet==2.1.2")


@dataclass(frozen=True)
class Project:
    name: str  # the PyPI name
    version: str
    deps: tuple[str, ...]  # pinned: test requirements, and runtime ones where tests are picky
    tests: str = "tests"  # the folder the sdist must ship, checked after unpacking
    args: tuple[str, ...] = ()  # extra pytest arguments, the same for all four runs
    extras: str = ""  # installed as NAME[extras] from the unpacked sdist, e.g. "socks"
    # Seconds per run when below --timeout: for a suite known to hang in some mode, so that
    # a hang costs minutes, not the default ten.
    timeout: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


# Quickest first (whole four runs, measured on 2 cores); --projects picks by name, in any order.
PROJECTS: tuple[Project, ...] = (
    Project(
        "markupsafe",
        "3.0.4",
        # uv.lock, group "tests" (pytest-run-parallel is for Python 3.13+ only). The sdist
        # builds the C speedups, with the pure-Python fallback when there is no compiler.
        (
            "pytest==9.1.1",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.3",
            "pygments==2.21.0",
        ),
    ),
    Project(
        "itsdangerous",
        "2.2.0",
        # requirements/tests.txt pins pytest 8.1.1, below the plugin's floor: 8.3.5 is the
        # oldest pytest the plugin supports, so this project also covers that end.
        (
            "pytest==8.3.5",
            "pluggy==1.5.0",
            "iniconfig==2.0.0",
            "packaging==24.0",
            "freezegun==1.4.0",
            "python-dateutil==2.9.0.post0",
            "six==1.16.0",
        ),
    ),
    Project(
        "jinja2",
        "3.1.6",
        # requirements/tests.txt; MarkupSafe (runtime) pinned too.
        (
            "pytest==8.3.4",
            "pluggy==1.5.0",
            "iniconfig==2.0.0",
            "packaging==24.2",
            "trio==0.27.0",
            "attrs==24.3.0",
            "idna==3.10",
            "outcome==1.3.0.post0",
            "sniffio==1.3.1",
            "sortedcontainers==2.4.0",
            "markupsafe==3.0.2",
        ),
    ),
    Project(
        "flask",
        "3.1.3",
        # uv.lock, group "tests", and the runtime dependencies at their locked versions.
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pygments==2.19.2",
            "asgiref==3.11.0",
            "greenlet==3.3.1",
            "python-dotenv==1.2.1",
            "blinker==1.9.0",
            "click==8.3.1",
            "itsdangerous==2.2.0",
            "jinja2==3.1.6",
            "markupsafe==3.0.3",
            "werkzeug==3.1.5",
        ),
    ),
    Project(
        "structlog",
        "26.1.0",
        # Group "tests" (no lock file in the sdist), without pytest-randomly: a random order
        # per run would make every comparison with the serial run noise.
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pytest-asyncio==1.3.0",
            "simplejson==3.20.2",
            "time-machine==2.19.0",
        ),
    ),
    Project(
        "click",
        "8.5.1",
        # uv.lock, group "tests".
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pygments==2.20.0",
        ),
    ),
    Project(
        "attrs",
        "26.1.0",
        # uv.lock, group "tests" (pytest-xdist comes with COMMON_DEPS, psutil left out).
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pygments==2.19.2",
            "hypothesis==6.151.9",
            "sortedcontainers==2.4.0",
            "cloudpickle==3.1.2",
            "pympler==1.1",
        ),
        # Fails on Python 3.11 in every mode: the converter's return annotation is not found.
        args=("--deselect=tests/test_converters.py::TestPipe::test_wrapped_annotation",),
    ),
    Project(
        "urllib3",
        "2.8.0",
        # uv.lock, groups "test" and "dev" (less coverage, memray, build tools), extras
        # brotli, zstd, socks and h2. uv.lock takes hypercorn from urllib3's fork on GitHub,
        # out of reach here: PyPI's hypercorn 0.15.0 stands in.
        (
            "pytest==9.1.1",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.2",
            "anyio[trio]==4.13.0",
            "h2==4.3.0",
            "httpx==0.28.1",
            "hypercorn==0.15.0",
            "pysocks==1.7.1",
            "pytest-socket==0.7.0",
            "pytest-timeout==2.4.0",
            "quart==0.20.0",
            "quart-trio==0.12.0",
            "trio==0.33.0",
            "trustme==1.2.1",
            "cryptography==49.0.0",
            "idna==3.13",
            "pyopenssl==26.3.0",
            "brotli==1.2.0",
            "backports.zstd==1.3.0",
            "werkzeug==3.1.8",
            "flask==3.1.3",
        ),
        tests="test",
        args=(
            # Needs urllib3's hypercorn fork (the proxy's CONNECT): every test fails without.
            "--ignore=test/with_dummyserver/test_proxy_poolmanager.py",
            # The /certificate and /alpn_protocol endpoints need the fork too (HTTP 500).
            *(
                f"--deselect={module}::{cls}::{test}"
                for module in (
                    "test/with_dummyserver/test_https.py",
                    "test/contrib/test_pyopenssl.py",
                )
                for cls in ("TestHTTPS_TLSv1_2", "TestHTTPS_TLSv1_3")
                for test in (
                    "test_alpn_default",
                    "test_http2_probe_result_is_cached",
                    "test_client_intermediate",
                    "test_client_key_password",
                )
            ),
            # They expect 240.0.0.0 (TARPIT_HOST) to swallow packets and 192.0.2.x to be
            # unroutable; this sandbox's network answers the one and is the other. The first
            # then fails an assertion in one thread and leaves the others waiting forever on
            # the HTTP/2 probe's lock (a hang, in every mode).
            *(
                f"--deselect={module}::{cls}::test_http2_probe_blocked_per_thread"
                for module in (
                    "test/with_dummyserver/test_https.py",
                    "test/contrib/test_pyopenssl.py",
                )
                for cls in ("TestHTTPS_TLSv1_2", "TestHTTPS_TLSv1_3")
            ),
            "--deselect=test/with_dummyserver/test_connectionpool.py::TestConnectionPoolTimeouts"
            "::test_connect_timeout",
            "--deselect=test/with_dummyserver/test_connectionpool.py::TestConnectionPoolTimeouts"
            "::test_total_applies_connect",
            "--deselect=test/with_dummyserver/test_connectionpool.py::TestConnectionPool"
            "::test_source_address_error",
        ),
    ),
    Project(
        "more-itertools",
        "11.2.1",
        # unittest-style tests (tox runs python -m unittest); requirements/testing.txt has
        # only coverage, so pytest alone, collecting them as unittest cases. Under -n, 21
        # tests fail: a subTest's report carries a range that execnet cannot serialize
        # (DumpError), with plain xdist as with the plugin. Kept: it shows that.
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pygments==2.19.2",
        ),
    ),
    Project(
        "httpx",
        "0.29.0",
        # The sdist has no requirements file: these follow httpx's requirements.txt on
        # GitHub at the 0.28 line (pytest, trio, trustme, uvicorn, chardet, cryptography), with
        # the extras it installs (brotli, cli, http2, socks, zstd) pinned to matching releases.
        (
            "pytest==8.3.4",
            "pluggy==1.5.0",
            "iniconfig==2.0.0",
            "packaging==24.2",
            "chardet==5.2.0",
            "cryptography==44.0.1",
            "trio==0.27.0",
            "trustme==1.2.0",
            "uvicorn==0.32.1",
            "anyio==4.6.2",
            "httpcore==1.0.7",
            "h11==0.14.0",
            "certifi==2024.8.30",
            "idna==3.10",
            "brotli==1.1.0",
            "zstandard==0.23.0",
            "h2==4.1.0",
            "socksio==1.0.0",
            "click==8.1.7",
            "rich==13.9.4",
            "pygments==2.18.0",
        ),
        extras="brotli,cli,http2,socks,zstd",
        # The suite declares this marker for builds without network access.
        args=("-m", "not network"),
        # Its session-scoped test server (tests/conftest.py) binds the fixed port 8000 in
        # every worker: under -n the second worker's server cannot bind and that worker waits
        # for it forever, under plain xdist and the plugin alike (nothing declares the port).
        # The serial run takes about 15 s; a minute is plenty.
        timeout=60,
    ),
    Project(
        "requests",
        "2.34.2",
        # Dependency group "test" and requirements-dev.txt (no lock file): pytest-httpbin
        # 2.1.0 and httpbin 0.10 (whose own dependencies are pinned here, greenlet below 3
        # as httpbin asks on Python < 3.12), pytest-mock, trustme, the socks extra.
        (
            "pytest==9.0.2",
            "pluggy==1.6.0",
            "iniconfig==2.3.0",
            "packaging==26.0",
            "pytest-httpbin==2.1.0",
            "httpbin==0.10.2",
            "flask==3.1.3",
            "werkzeug==3.1.5",
            "greenlet==2.0.2",
            "flasgger==0.9.7.1",
            "brotlicffi==1.1.0.0",
            "decorator==5.1.1",
            "pytest-mock==3.14.0",
            "trustme==1.2.1",
            "pysocks==1.7.1",
            "urllib3==2.5.0",
            "charset-normalizer==3.4.2",
            "idna==3.10",
            "certifi==2025.4.26",
        ),
        extras="socks",
        args=(
            # They expect 10.255.255.1 to swallow packets; this sandbox's network answers it.
            "--deselect=tests/test_requests.py::TestTimeout::test_connect_timeout",
            "--deselect=tests/test_requests.py::TestTimeout::test_total_timeout_connect",
        ),
    ),
)

BY_NAME: dict[str, Project] = {p.name: p for p in PROJECTS}
