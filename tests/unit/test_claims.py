"""Unit tests for pytest_isolate.declare.claims: tables of raw marks in, exact claims (or
faults) out."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.declare.claims import (
    EXCLUSIVE,
    SHARED,
    Claim,
    Declaration,
    DeclarationError,
    TestClaims,
    conflicts,
    dir_overlaps,
    parse_capacity,
    parse_declaration,
)

ROOT = "/repo"
CAPACITY = {"gpu": 2, "browser": 4}


def res(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The (args, kwargs) of one ``resource`` mark."""
    return (args, kwargs)


def grp(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The (args, kwargs) of one ``xdist_group`` mark."""
    return (args, kwargs)


def decl(*resources: Any, groups: tuple[Any, ...] = (), serial: bool = False) -> Declaration:
    return Declaration(resources=tuple(resources), groups=tuple(groups), serial=serial)


def name(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("name", key, mode)


def path(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("dir", key, mode)


def port(key: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim("port", key, mode)


def group(key: str) -> Claim:
    return Claim("group", key)


# --------------------------------------------------------------------------- parse_declaration

GOOD_DECLARATIONS = [
    pytest.param(decl(), TestClaims(), id="nothing"),
    pytest.param(decl(res("redis")), TestClaims((name("redis"),)), id="one-name"),
    pytest.param(
        decl(res("s3", "redis")),
        TestClaims((name("redis"), name("s3"))),
        id="two-names-sorted",
    ),
    pytest.param(
        decl(res("redis", "redis")), TestClaims((name("redis"),)), id="repeated-name-once"
    ),
    pytest.param(
        decl(res("redis"), res("s3")),
        TestClaims((name("redis"), name("s3"))),
        id="two-marks-merged",
    ),
    pytest.param(
        decl(res("cfg", mode="shared")),
        TestClaims((name("cfg", SHARED),)),
        id="mode-shared",
    ),
    pytest.param(
        decl(res("cfg", mode="exclusive")),
        TestClaims((name("cfg"),)),
        id="mode-exclusive-explicit",
    ),
    pytest.param(
        decl(res("cfg", mode="shared"), res("cfg")),
        TestClaims((name("cfg"),)),
        id="shared-then-exclusive-is-exclusive",
    ),
    pytest.param(
        decl(res("cfg"), res("cfg", mode="shared")),
        TestClaims((name("cfg"),)),
        id="exclusive-then-shared-is-exclusive",
    ),
    pytest.param(
        decl(res("cfg", mode="shared"), res("other")),
        TestClaims((name("cfg", SHARED), name("other"))),
        id="shared-kept-when-other-name-exclusive",
    ),
    pytest.param(
        decl(res("dir:x", mode="shared"), res("x")),
        TestClaims((path("/repo/x", SHARED), name("x"))),
        id="same-key-other-kind-stays-shared",
    ),
    pytest.param(
        decl(res("dir:build/cache")),
        TestClaims((path("/repo/build/cache"),)),
        id="dir-relative-joined-to-rootdir",
    ),
    pytest.param(
        decl(res("dir:/var/cache")),
        TestClaims((path("/var/cache"),)),
        id="dir-absolute",
    ),
    pytest.param(
        decl(res("dir:build/../build/cache/")),
        TestClaims((path("/repo/build/cache"),)),
        id="dir-dotdot-and-trailing-slash",
    ),
    pytest.param(
        decl(res("dir:./build//cache/.")),
        TestClaims((path("/repo/build/cache"),)),
        id="dir-dot-and-double-slash",
    ),
    pytest.param(
        decl(res("dir:/var/./cache/../cache/")),
        TestClaims((path("/var/cache"),)),
        id="dir-absolute-normalized",
    ),
    pytest.param(
        decl(res("dir:../sibling")),
        TestClaims((path("/sibling"),)),
        id="dir-outside-rootdir",
    ),
    pytest.param(
        decl(res("dir:build", "dir:build/")),
        TestClaims((path("/repo/build"),)),
        id="dir-two-spellings-one-claim",
    ),
    pytest.param(
        decl(res("dir:data", mode="shared")),
        TestClaims((path("/repo/data", SHARED),)),
        id="dir-shared",
    ),
    pytest.param(decl(res("port:8080")), TestClaims((port("8080"),)), id="port"),
    pytest.param(decl(res("port:08080")), TestClaims((port("8080"),)), id="port-leading-zero"),
    pytest.param(
        decl(res("port:8080"), res("port:08080")),
        TestClaims((port("8080"),)),
        id="port-two-spellings-one-claim",
    ),
    pytest.param(decl(res("port:1")), TestClaims((port("1"),)), id="port-lowest"),
    pytest.param(decl(res("port:65535")), TestClaims((port("65535"),)), id="port-highest"),
    pytest.param(decl(res("gpu")), TestClaims(counted=("gpu",)), id="counted"),
    pytest.param(
        decl(res("gpu", mode="shared")),
        TestClaims(counted=("gpu",)),
        id="counted-ignores-mode",
    ),
    pytest.param(
        decl(res("gpu", "redis", "browser"), res("gpu")),
        TestClaims((name("redis"),), counted=("browser", "gpu")),
        id="counted-and-plain-mixed",
    ),
    pytest.param(
        decl(res("dir:gpu", "port:2")),
        TestClaims((path("/repo/gpu"), port("2"))),
        id="prefixed-names-never-counted",
    ),
    pytest.param(decl(groups=[grp("db")]), TestClaims((group("db"),)), id="group-arg"),
    pytest.param(decl(groups=[grp(name="db")]), TestClaims((group("db"),)), id="group-kwarg-name"),
    pytest.param(decl(groups=[grp()]), TestClaims((group("default"),)), id="group-no-args-default"),
    pytest.param(
        decl(groups=[grp("db", name="other")]),
        TestClaims((group("db"),)),
        id="group-arg-wins-over-kwarg",
    ),
    pytest.param(
        decl(groups=[grp("zeta"), grp("alpha"), grp(name="mid")]),
        TestClaims((group("alpha_mid_zeta"),)),
        id="groups-joined-sorted",
    ),
    pytest.param(
        decl(groups=[grp("db"), grp("db")]),
        TestClaims((group("db"),)),
        id="group-repeated-once",
    ),
    pytest.param(decl(serial=True), TestClaims(serial=True), id="serial"),
    pytest.param(
        decl(
            res("redis", "dir:out", "port:9000", "gpu"),
            res("cfg", mode="shared"),
            groups=[grp("db")],
            serial=True,
        ),
        TestClaims(
            (
                path("/repo/out"),
                group("db"),
                name("cfg", SHARED),
                name("redis"),
                port("9000"),
            ),
            counted=("gpu",),
            serial=True,
        ),
        id="everything",
    ),
]


@pytest.mark.parametrize(("declaration", "expected"), GOOD_DECLARATIONS)
def test_parse_declaration(declaration: Declaration, expected: TestClaims) -> None:
    assert parse_declaration(declaration, ROOT, CAPACITY) == expected


def test_parse_declaration_without_capacity_counts_nothing() -> None:
    claims = parse_declaration(decl(res("gpu")), ROOT, {})
    assert claims == TestClaims((name("gpu"),))


def test_rootdir_trailing_slash_is_normalized() -> None:
    claims = parse_declaration(decl(res("dir:build")), "/repo/", {})
    assert claims == TestClaims((path("/repo/build"),))


BAD_DECLARATIONS = [
    pytest.param(decl(res("cfg", mode="read")), ["mode='read'", "exclusive", "shared"], id="mode"),
    pytest.param(decl(res("cfg", mode=None)), ["mode=None"], id="mode-none"),
    pytest.param(decl(res("cfg", mode="Shared")), ["mode='Shared'"], id="mode-case"),
    pytest.param(decl(res("cfg", scope="x")), ["unknown keyword", "scope"], id="unknown-keyword"),
    pytest.param(
        decl(res("cfg", ttl=1, scope="x")),
        ["unknown keyword", "scope, ttl"],
        id="two-unknown-keywords-sorted",
    ),
    pytest.param(decl(res()), ["at least one resource name"], id="no-names"),
    pytest.param(
        decl(res(mode="shared")),
        ["at least one resource name"],
        id="no-names-with-mode",
    ),
    pytest.param(decl(res("")), ["non-empty strings", "''"], id="empty-name"),
    pytest.param(decl(res("   ")), ["non-empty strings", "'   '"], id="blank-name"),
    pytest.param(decl(res(5)), ["non-empty strings", "got 5"], id="int-name"),
    pytest.param(decl(res(None)), ["got None"], id="none-name"),
    pytest.param(decl(res(b"redis")), ["got b'redis'"], id="bytes-name"),
    pytest.param(decl(res("redis", ["s3"])), ["got ['s3']"], id="list-among-good-names"),
    pytest.param(
        decl(res("redis"), res("")),
        ["non-empty strings"],
        id="bad-second-mark",
    ),
    pytest.param(decl(res("dir:")), ["'dir:' needs a path"], id="empty-dir"),
    pytest.param(decl(res("port:0")), ["'port:0'", "1-65535"], id="port-zero"),
    pytest.param(decl(res("port:65536")), ["'port:65536'"], id="port-just-too-high"),
    pytest.param(decl(res("port:70000")), ["'port:70000'", "1-65535"], id="port-too-high"),
    pytest.param(decl(res("port:abc")), ["'port:abc'", "not a port number"], id="port-letters"),
    pytest.param(decl(res("port:")), ["'port:'"], id="port-empty"),
    pytest.param(decl(res("port:-1")), ["'port:-1'"], id="port-negative"),
    pytest.param(decl(res("port:80.5")), ["'port:80.5'"], id="port-fraction"),
    pytest.param(decl(res("port: 80")), ["'port: 80'"], id="port-space"),
    pytest.param(decl(res("port:00")), ["'port:00'"], id="port-zero-padded"),
    pytest.param(
        decl(groups=[grp("")]),
        ["xdist_group()", "non-empty string", "''"],
        id="group-empty",
    ),
    pytest.param(decl(groups=[grp(3)]), ["xdist_group()", "got 3"], id="group-int"),
    pytest.param(decl(groups=[grp(name=None)]), ["got None"], id="group-kwarg-none"),
    pytest.param(decl(groups=[grp("ok"), grp("")]), ["got ''"], id="group-second-bad"),
]


@pytest.mark.parametrize(("declaration", "fragments"), BAD_DECLARATIONS)
def test_parse_declaration_faults(declaration: Declaration, fragments: list[str]) -> None:
    with pytest.raises(DeclarationError) as info:
        parse_declaration(declaration, ROOT, CAPACITY)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_declaration_error_is_a_value_error() -> None:
    assert issubclass(DeclarationError, ValueError)


def test_port_with_superscript_digit_is_a_declaration_error() -> None:
    with pytest.raises(ValueError) as info:
        parse_declaration(decl(res("port:²")), ROOT, CAPACITY)
    assert isinstance(info.value, DeclarationError)
    assert "port:²" in str(info.value)


def test_dir_leading_double_slash_is_normalized() -> None:
    double = parse_declaration(decl(res("dir://tmp/cache")), ROOT, {})
    single = parse_declaration(decl(res("dir:/tmp/cache")), ROOT, {})
    assert double == single


@pytest.mark.parametrize(
    ("claims", "plain"),
    [
        pytest.param(TestClaims(), True, id="nothing"),
        pytest.param(TestClaims((name("redis"),)), False, id="claim"),
        pytest.param(TestClaims(counted=("gpu",)), False, id="counted"),
        pytest.param(TestClaims(serial=True), False, id="serial"),
    ],
)
def test_is_plain(claims: TestClaims, plain: bool) -> None:
    assert claims.is_plain is plain


# ----------------------------------------------------------------------------- parse_capacity


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        pytest.param([], {}, id="empty"),
        pytest.param(["gpu:2"], {"gpu": 2}, id="one"),
        pytest.param(["gpu:2", "browser:4"], {"gpu": 2, "browser": 4}, id="two"),
        pytest.param(["gpu:1"], {"gpu": 1}, id="one-holder"),
        pytest.param(["gpu:02"], {"gpu": 2}, id="leading-zero"),
        pytest.param(["db-pool.x:10"], {"db-pool.x": 10}, id="punctuated-name"),
        pytest.param(["GPU:1", "gpu:2"], {"GPU": 1, "gpu": 2}, id="case-sensitive"),
        pytest.param(["directory:2"], {"directory": 2}, id="dir-prefix-without-colon"),
    ],
)
def test_parse_capacity(tokens: list[str], expected: dict[str, int]) -> None:
    assert parse_capacity(tokens) == expected


@pytest.mark.parametrize(
    ("tokens", "fragments"),
    [
        pytest.param(["gpu"], ["'gpu'", "NAME:COUNT"], id="no-colon"),
        pytest.param(["gpu:"], ["'gpu:'", "NAME:COUNT"], id="no-count"),
        pytest.param([":2"], ["':2'", "NAME:COUNT"], id="no-name"),
        pytest.param(["gpu:0"], ["'gpu:0'", "at least 1"], id="zero"),
        pytest.param(["gpu:00"], ["'gpu:00'", "at least 1"], id="zero-padded"),
        pytest.param(["gpu:-1"], ["'gpu:-1'", "NAME:COUNT"], id="negative"),
        pytest.param(["gpu:two"], ["'gpu:two'"], id="non-digit"),
        pytest.param(["gpu:2.5"], ["'gpu:2.5'"], id="fraction"),
        pytest.param(["gpu:2:3"], ["'gpu:2:3'"], id="two-colons"),
        pytest.param(["gpu:2", "gpu:3"], ["'gpu' is given twice"], id="duplicate"),
        pytest.param(["gpu:2", "x", "gpu:3"], ["'x'"], id="first-fault-reported"),
        pytest.param(["dir:2"], ["'dir:2'", "only plain names"], id="dir-name"),
        pytest.param(["port:2"], ["'port:2'", "only plain names"], id="port-name"),
        pytest.param(["dir:build:2"], ["'dir:build:2'"], id="dir-resource"),
        pytest.param(["port:8080:2"], ["'port:8080:2'"], id="port-resource"),
    ],
)
def test_parse_capacity_faults(tokens: list[str], fragments: list[str]) -> None:
    with pytest.raises(DeclarationError) as info:
        parse_capacity(tokens)
    message = str(info.value)
    assert message.startswith("isolate_capacity")
    for fragment in fragments:
        assert fragment in message


# ---------------------------------------------------------------------- conflicts / dir_overlaps


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("/a", "/a", True, id="same"),
        pytest.param("/a", "/a/b", True, id="parent-child"),
        pytest.param("/a/b", "/a", True, id="child-parent"),
        pytest.param("/a", "/a/b/c", True, id="grandchild"),
        pytest.param("/", "/a", True, id="root-child"),
        pytest.param("/", "/", True, id="root-root"),
        pytest.param("/a", "/ab", False, id="name-prefix"),
        pytest.param("/ab", "/a", False, id="name-prefix-reversed"),
        pytest.param("/a", "/a-c", False, id="dash-sibling"),
        pytest.param("/a/b", "/a/c", False, id="siblings"),
        pytest.param("/a/b", "/a/bc", False, id="nested-name-prefix"),
        pytest.param("/abc", "/abd", False, id="same-length"),
        pytest.param("/x/a", "/y/a", False, id="same-leaf"),
    ],
)
def test_dir_overlaps(a: str, b: str, expected: bool) -> None:
    assert dir_overlaps(a, b) is expected
    assert dir_overlaps(b, a) is expected


X, S = EXCLUSIVE, SHARED

CONFLICTS = [
    # (a, b, expected)
    pytest.param(name("r"), name("r"), True, id="name-x-x"),
    pytest.param(name("r"), name("r", S), True, id="name-x-s"),
    pytest.param(name("r", S), name("r"), True, id="name-s-x"),
    pytest.param(name("r", S), name("r", S), False, id="name-s-s"),
    pytest.param(name("r"), name("q"), False, id="name-different"),
    pytest.param(port("80"), port("80"), True, id="port-x-x"),
    pytest.param(port("80"), port("80", S), True, id="port-x-s"),
    pytest.param(port("80", S), port("80", S), False, id="port-s-s"),
    pytest.param(port("80"), port("81"), False, id="port-different"),
    pytest.param(group("g"), group("g"), True, id="group-same"),
    pytest.param(Claim("group", "g", S), Claim("group", "g", S), True, id="group-s-s-still"),
    pytest.param(group("g"), group("h"), False, id="group-different"),
    pytest.param(path("/a"), path("/a"), True, id="dir-same"),
    pytest.param(path("/a"), path("/a/b"), True, id="dir-parent-child"),
    pytest.param(path("/a/b"), path("/a"), True, id="dir-child-parent"),
    pytest.param(path("/a", S), path("/a/b"), True, id="dir-shared-parent-writer-child"),
    pytest.param(path("/a"), path("/a/b", S), True, id="dir-writer-parent-shared-child"),
    pytest.param(path("/a", S), path("/a/b", S), False, id="dir-s-s-nested"),
    pytest.param(path("/a", S), path("/a", S), False, id="dir-s-s-same"),
    pytest.param(path("/a"), path("/ab"), False, id="dir-name-prefix"),
    pytest.param(path("/a"), path("/a-c"), False, id="dir-dash-sibling"),
    pytest.param(path("/a/b"), path("/a/c"), False, id="dir-siblings"),
    pytest.param(name("8080"), port("8080"), False, id="name-vs-port"),
    pytest.param(name("g"), group("g"), False, id="name-vs-group"),
    pytest.param(name("/a"), path("/a"), False, id="name-vs-dir"),
    pytest.param(port("1"), group("1"), False, id="port-vs-group"),
]


@pytest.mark.parametrize(("a", "b", "expected"), CONFLICTS)
def test_conflicts(a: Claim, b: Claim, expected: bool) -> None:
    assert conflicts(a, b) is expected
    assert conflicts(b, a) is expected
