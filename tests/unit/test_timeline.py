"""Unit tests for pytest_isolate.report.timeline: the page's data and escaping, and the page as
Chromium draws it (real headless Chromium from tests/browser.py; never skipped)."""

from __future__ import annotations

import json
import random
import re
import struct
import tempfile
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.report.timeline import OUTCOME_COLOURS, TimelineRecord, render_timeline
from tests import browser

T0 = 1_700_000_000.0
HOSTILE = "test_x.py::test[<script>alert(1)</script>]"


def rec(
    nodeid: str, worker: str, start: float, stop: float, outcome: str = "passed", domain: int = 0
) -> TimelineRecord:
    return TimelineRecord(nodeid, worker, T0 + start, T0 + stop, outcome, domain)


def embedded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# Three workers, all six outcomes, and gw1/gw2 idle from 3 s to 7 s while gw0 runs a serial test.
RECORDS = [
    rec("tests/test_a.py::test_one", "gw0", 0.0, 2.0, "passed", 0),
    rec("tests/test_a.py::test_two", "gw0", 2.0, 4.0, "failed", 0),
    rec("tests/test_db.py::test_migrate", "gw0", 4.0, 7.0, "passed", 3),
    rec("tests/test_a.py::test_three", "gw0", 7.0, 8.0, "xpassed", 0),
    rec("tests/test_b.py::test_one", "gw1", 0.0, 1.5, "passed", 1),
    rec("tests/test_b.py::test_skip", "gw1", 1.5, 3.0, "skipped", 1),
    rec("tests/test_c.py::test_after", "gw1", 7.0, 9.0, "passed", 4),
    rec("tests/test_c.py::test_broken_fixture", "gw1", 9.0, 9.5, "error", 4),
    rec("tests/test_d.py::test_known_bug", "gw2", 0.2, 3.0, "xfailed", 2),
    rec("tests/test_e.py::test_one", "gw2", 7.0, 8.0, "passed", -1),
    rec("tests/test_e.py::test_two", "gw2", 8.0, 10.0, "failed", -1),
    rec("tests/test_é.py::test_q[\"'&<>]", "gw2", 10.0, 10.5, "passed", -1),
]


def test_page_embeds_the_records_relative_to_the_first_start() -> None:
    data = embedded(render_timeline(RECORDS, "run"))
    assert data["wall"] == 10.5
    assert data["workers"] == ["gw0", "gw1", "gw2"]
    starts = [t["s"] for t in data["tests"]]
    assert starts == sorted(starts)
    by_id = {t["n"]: t for t in data["tests"]}
    assert set(by_id) == {r.nodeid for r in RECORDS}
    assert by_id["tests/test_d.py::test_known_bug"] == {
        "n": "tests/test_d.py::test_known_bug",
        "w": "gw2",
        "s": 0.2,
        "d": 2.8,
        "o": "xfailed",
        "m": 2,
    }


def test_header_shows_title_count_workers_wall_and_summed_time() -> None:
    page = render_timeline(RECORDS, "nightly run")
    assert "<title>nightly run</title>" in page
    assert "12 tests on 3 workers" in page
    assert "wall time 10.5 s" in page
    assert "summed test time 19.8 s" in page


def test_workers_sort_naturally() -> None:
    names = ["gw10", "gw2", "main", "gw9", "gw0", "gw1"]
    records = [rec(f"t.py::test_{w}", w, i, i + 1) for i, w in enumerate(names)]
    assert embedded(render_timeline(records, "t"))["workers"] == [
        "gw0",
        "gw1",
        "gw2",
        "gw9",
        "gw10",
        "main",
    ]


def test_hostile_nodeids_and_titles_are_escaped() -> None:
    page = render_timeline([rec(HOSTILE, "gw0", 0, 1)], "<b>title</b> & $DATA")
    assert "<script>alert" not in page
    assert "</script>]" not in page
    assert page.count("</script>") == 2  # the page's own two script elements, nothing more
    assert "<b>title" not in page
    assert "&lt;b&gt;title&lt;/b&gt; &amp; $DATA" in page
    assert embedded(page)["tests"][0]["n"] == HOSTILE


def test_page_is_self_contained() -> None:
    page = render_timeline(RECORDS, "run")
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert " src=" not in page
    assert "@import" not in page


def test_zero_records_render() -> None:
    page = render_timeline([], "empty run")
    assert "0 tests on 0 workers" in page
    assert "no tests ran" in page
    assert embedded(page) == {
        "wall": 0.0,
        "workers": [],
        "tests": [],
        "colours": OUTCOME_COLOURS,
    }


# -- in a real browser ---------------------------------------------------------------------------


class Bars(HTMLParser):
    """The bars (class "bar") of a dumped DOM, and the body's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self.body = attributes
        if "bar" in (attributes.get("class") or "").split():
            self.bars.append(attributes)


def parse_dom(dom: str) -> Bars:
    parser = Bars()
    parser.feed(dom)
    parser.close()
    return parser


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA PNG: stdlib zlib and the 5 filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks[kind] = chunks.get(kind, b"") + body  # IDAT chunks concatenate
        pos += 12 + length
    header, idat = chunks[b"IHDR"], chunks[b"IDAT"]
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride if kind else 0):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            else:
                raise AssertionError(f"unknown PNG filter {kind}")
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def rgb(colour: str) -> bytes:
    return bytes.fromhex(colour.lstrip("#"))


def test_chromium_draws_one_bar_per_test_and_the_outcome_colours(tmp_path: Path) -> None:
    page = tmp_path / "timeline.html"
    page.write_text(render_timeline(RECORDS, "pytest-isolate run"), encoding="utf-8")
    png = tmp_path / "timeline.png"

    dom = parse_dom(browser.render(page, png))

    assert dom.body.get("data-rendered") == "ok", "the page's script did not finish"
    assert len(dom.bars) == 12
    assert sorted(str(b["data-nodeid"]) for b in dom.bars) == sorted(r.nodeid for r in RECORDS)
    assert {b["data-outcome"] for b in dom.bars} == set(OUTCOME_COLOURS)
    hostile = next(b for b in dom.bars if "test_é.py" in str(b["data-nodeid"]))
    assert "worker: gw2\noutcome: passed\nduration: 500 ms\ndomain: unknown" in str(
        hostile["title"]
    )

    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == browser.WINDOW
    wanted = {rgb(colour): outcome for outcome, colour in OUTCOME_COLOURS.items()}
    counts = Counter(
        wanted[px]
        for row in rows
        for i in range(0, len(row), 3)
        if (px := row[i : i + 3]) in wanted
    )
    # The legend's swatches are 12x12 = 144 pixels; a bar adds at least 20 rows of ~50 pixels.
    for outcome in ("passed", "failed", "xfailed", "error"):
        assert counts[outcome] > 144 + 500, (outcome, counts)


def test_chromium_renders_an_empty_timeline(tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text(render_timeline([], "nothing"), encoding="utf-8")

    dom = browser.render(page, tmp_path / "empty.png")

    assert parse_dom(dom).body.get("data-rendered") == "ok"
    assert parse_dom(dom).bars == []
    assert "no tests ran" in dom


def test_render_raises_on_javascript_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>notDefined();</script></body></html>")

    with pytest.raises(RuntimeError, match="notDefined"):
        browser.render(page, tmp_path / "broken.png")


# -- the docs' screenshot ------------------------------------------------------------------------

DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "_static" / "timeline.png"
DOCS_SIZE = (1200, 265)


def docs_example() -> list[TimelineRecord]:
    """A realistic run for docs/timeline.rst: 4 workers, a serial test first that the others
    wait for, free tests spread over three workers, and one long database domain on gw1 that
    bounds the run."""
    rng = random.Random(7)
    out = [rec("tests/test_migrations.py::test_upgrade_from_v1", "gw0", 0.0, 3.2, domain=0)]
    clock = 3.3
    db_tests = ["create", "update", "cancel", "refund", "report", "bulk_import", "archive"]
    for name in db_tests:
        length = 6.5 if name == "bulk_import" else rng.uniform(1.6, 3.2)
        outcome = "failed" if name == "refund" else "passed"
        out.append(
            rec(
                f"tests/db/test_orders.py::test_{name}",
                "gw1",
                clock,
                clock + length,
                outcome,
                domain=1,
            )
        )
        clock += length + 0.05
    free = {"gw0": 3.25, "gw2": 3.3, "gw3": 3.3}
    names = [
        "test_api.py::test_login", "test_api.py::test_logout", "test_api.py::test_token_refresh",
        "test_api.py::test_rate_limit", "test_cli.py::test_help", "test_cli.py::test_version",
        "test_cli.py::test_init_project", "test_config.py::test_defaults",
        "test_config.py::test_env_override", "test_config.py::test_legacy_keys",
        "test_cache.py::test_set_get", "test_cache.py::test_expiry", "test_cache.py::test_evict",
        "test_render.py::test_html", "test_render.py::test_pdf", "test_render.py::test_unicode",
        "test_auth.py::test_password_hash", "test_auth.py::test_sso_callback",
        "test_auth.py::test_mfa", "test_search.py::test_index", "test_search.py::test_fuzzy",
        "test_search.py::test_ranking", "test_mail.py::test_send", "test_mail.py::test_bounce",
    ]  # fmt: skip
    special = {3: "skipped", 9: "xfailed", 14: "skipped", 17: "error", 20: "xpassed"}
    for i, name in enumerate(names):
        worker = min(free, key=lambda w: (free[w], w))
        outcome = special.get(i, "passed")
        length = 0.15 if outcome == "skipped" else rng.uniform(0.4, 2.6)
        nodeid = f"tests/{name}"
        out.append(rec(nodeid, worker, free[worker], free[worker] + length, outcome, 2 + i))
        free[worker] += length + 0.03
    return out


def test_docs_example_has_a_lone_serial_test_and_a_long_last_domain() -> None:
    records = docs_example()
    serial = records[0]
    assert 20 <= len(records) <= 40
    assert len({r.worker for r in records}) == 4
    assert all(r.start >= serial.stop for r in records[1:])
    last = max(records, key=lambda r: r.stop)
    assert last.worker == "gw1"
    assert last.stop - max(r.stop for r in records if r.worker != "gw1") > 5


def write_docs_png() -> None:
    """Regenerate docs/_static/timeline.png: ``python -m tests.unit.test_timeline``."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "timeline.html"
        page.write_text(render_timeline(docs_example(), "pytest-isolate run"), encoding="utf-8")
        DOCS_PNG.parent.mkdir(parents=True, exist_ok=True)
        browser.render(page, DOCS_PNG, dom=False, size=DOCS_SIZE)
    print(f"wrote {DOCS_PNG} ({DOCS_PNG.stat().st_size} bytes)")


if __name__ == "__main__":
    write_docs_png()


def test_the_page_and_the_closing_line_give_the_same_figures() -> None:
    """One definition of parallelism: given the run's summary, the page's headline shows the
    closing line's wall time, test time and speedup, not figures of its own."""
    from pytest_isolate.report.reports import RunSummary, format_summary

    summary = RunSummary(2, 1, 3, 4.0, 6.0, 4.0, "a", 2)
    page = render_timeline(RECORDS, "run", summary=summary)
    assert "wall time 4.0 s · summed test time 6.0 s · 1.50\N{MULTIPLICATION SIGN} parallel" in page
    assert "speedup 1.50x" in format_summary(summary)
    # Without a summary the page measures its bars: a different figure for the same records.
    assert "1.50\N{MULTIPLICATION SIGN} parallel" not in render_timeline(RECORDS, "run")
