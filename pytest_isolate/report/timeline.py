"""The ``--isolate-timeline`` picture: a self-contained HTML page of which worker ran what, when.

One lane per worker, one bar per test (setup start to teardown end) coloured by outcome, idle
time as empty lane space, a time axis in seconds. The page needs no network: inline CSS, and a
small inline script that draws the bars from an embedded JSON blob. Pure: no pytest imports.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..words import count
from .reports import RunSummary, parallelism

__all__ = ["OUTCOME_COLOURS", "TimelineRecord", "render_timeline"]

#: Bar colour per outcome; anything else is drawn in ``UNKNOWN_COLOUR``.
OUTCOME_COLOURS: dict[str, str] = {
    "passed": "#2f9e44",
    "failed": "#e03131",
    "error": "#862e9c",
    "skipped": "#adb5bd",
    "xfailed": "#f08c00",
    "xpassed": "#1c7ed6",
}
UNKNOWN_COLOUR = "#495057"


@dataclass(frozen=True)
class TimelineRecord:
    """One test as run: where, when (epoch seconds, setup start to teardown end), and how."""

    nodeid: str
    worker: str  # "gw0", "gw1", ... or "main"
    start: float
    stop: float
    outcome: str  # "passed" | "failed" | "error" | "skipped" | "xfailed" | "xpassed"
    domain: int  # tests of one domain share it; -1 when unknown
    note: str = ""  # a remark shown on the bar, e.g. "fails only in parallel"
    # --isolate-audit's findings, "kind: detail" each: a hatched bar, listed in the tooltip.
    findings: tuple[str, ...] = ()


def _natural_key(name: str) -> list[str | int]:
    """Sort "gw10" after "gw9": digit runs compare as numbers (split keeps str/int alternating)."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _json_for_script(data: object) -> str:
    """JSON that cannot end the <script> element or open a comment: escape <, > and & as \\uXXXX
    (stronger than escaping only ``</``, and still plain JSON for ``JSON.parse``)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_timeline(
    records: Sequence[TimelineRecord], title: str, summary: RunSummary | None = None
) -> str:
    """The timeline of ``records`` as one self-contained HTML page headed ``title``; its
    headline figures are ``summary``'s (the closing line's) when given."""
    workers = sorted({r.worker for r in records}, key=_natural_key)
    t0 = min((r.start for r in records), default=0.0)
    wall = max((r.stop for r in records), default=t0) - t0
    tests: list[dict[str, object]] = [
        {
            "n": r.nodeid,
            "w": r.worker,
            "s": round(r.start - t0, 6),  # microseconds: epoch floats carry noise below that
            "d": round(max(0.0, r.stop - r.start), 6),
            "o": r.outcome,
            "m": r.domain,
            **({"x": r.note} if r.note else {}),
            **({"a": list(r.findings)} if r.findings else {}),
        }
        for r in sorted(records, key=lambda r: (r.start, r.nodeid))
    ]
    busy = sum(max(0.0, r.stop - r.start) for r in records)
    run_wall = wall
    if summary is not None:
        run_wall, busy = summary.wall, summary.test_time
    headline = (
        f"{count(len(tests), 'test')} on {count(len(workers), 'worker')}"
        f" · wall time {_seconds(run_wall)} · summed test time {_seconds(busy)}"
    )
    if run_wall > 0:
        headline += f" · {parallelism(busy, run_wall):.2f}\N{MULTIPLICATION SIGN} parallel"
    legend = "".join(
        f'<span class="key"><i style="background:{colour}"></i>{name}</span>'
        for name, colour in OUTCOME_COLOURS.items()
    )
    audited = sum(1 for r in records if r.findings)
    if audited:
        headline += f" · {count(audited, 'test')} with audit findings"
        legend += '<span class="key"><i class="audited"></i>hidden shared state (audit)</span>'
    data = {"wall": round(wall, 6), "workers": workers, "tests": tests, "colours": OUTCOME_COLOURS}
    values = {
        "TITLE": html.escape(title),
        "SUMMARY": html.escape(headline),
        "LEGEND": legend,
        "UNKNOWN": UNKNOWN_COLOUR,
        "DATA": _json_for_script(data),
    }
    # One pass, so a title that happens to contain "$DATA" stays text.
    return re.sub(r"\$([A-Z]+)", lambda m: values[m.group(1)], _TEMPLATE)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$TITLE</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px 20px; color: #212529; }
h1 { font-size: 18px; margin: 0 0 4px; }
.summary { color: #495057; margin-bottom: 8px; }
.legend { margin-bottom: 12px; }
.key { margin-right: 14px; white-space: nowrap; }
.key i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -2px; border-radius: 2px; }
#chart { position: relative; }
.row { display: flex; align-items: center; height: 30px; }
.label { width: 120px; flex: none; font-family: ui-monospace, monospace; font-size: 12px; }
.label small { color: #868e96; }
.lane { position: relative; flex: 1; height: 24px; background: #f1f3f5; border-radius: 3px; }
.bar { position: absolute; top: 2px; height: 20px; min-width: 2px; box-sizing: border-box;
  border-right: 1px solid #fff; overflow: hidden; white-space: nowrap; text-overflow: clip;
  color: #fff; font-size: 11px; line-height: 20px; padding-left: 3px; z-index: 1; }
.audited { background-image: repeating-linear-gradient(135deg, rgba(255,255,255,.55) 0 3px,
  transparent 3px 7px); box-shadow: inset 0 0 0 2px #212529; }
.key i.audited { background-color: #868e96; }
.bar:hover { outline: 2px solid #212529; z-index: 2; }
.bar.noted { border: 2px dashed #ffd43b; }
.axis { position: relative; flex: 1; height: 22px; border-top: 1px solid #adb5bd; }
.tick { position: absolute; top: 0; height: 5px; border-left: 1px solid #adb5bd; }
.tick span { position: absolute; top: 5px; transform: translateX(-50%); font-size: 11px;
  color: #495057; white-space: nowrap; }
.grid { position: absolute; top: 0; bottom: 26px; border-left: 1px dashed #dee2e6;
  pointer-events: none; z-index: 0; }
.empty { color: #868e96; font-style: italic; padding: 24px 0; }
#tip { position: fixed; display: none; background: #212529; color: #f8f9fa; padding: 6px 8px;
  border-radius: 4px; font-size: 12px; max-width: 560px; pointer-events: none; z-index: 3;
  white-space: pre-wrap; word-break: break-all; }
</style>
</head>
<body>
<h1>$TITLE</h1>
<div class="summary">$SUMMARY</div>
<div class="legend">$LEGEND</div>
<div id="chart"></div>
<div id="tip"></div>
<script type="application/json" id="timeline-data">$DATA</script>
<script>
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var chart = document.getElementById("chart"), tip = document.getElementById("tip");
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function secs(v) {
    return v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(v < 10 ? 2 : 1) + " s";
  }
  function pct(v) { return (data.wall > 0 ? 100 * v / data.wall : 0) + "%"; }
  function done() { document.body.setAttribute("data-rendered", "ok"); }  // tests look for it
  if (!data.tests.length) { chart.appendChild(el("div", "empty", "no tests ran")); return done(); }
  var lanes = Object.create(null), busy = Object.create(null);
  data.workers.forEach(function (w) {
    var row = el("div", "row"), label = el("div", "label", w + " "), lane = el("div", "lane");
    label.appendChild(el("small"));
    row.appendChild(label); row.appendChild(lane); chart.appendChild(row);
    lanes[w] = lane; busy[w] = 0;
  });
  data.tests.forEach(function (t) {
    var bar = el("div", "bar", t.n.split("::").pop());
    var domain = t.m < 0 ? "unknown" : String(t.m);
    var text = t.n + "\\nworker: " + t.w + "\\noutcome: " + t.o +
      "\\nduration: " + secs(t.d) + "\\ndomain: " + domain + (t.x ? "\\nnote: " + t.x : "");
    bar.setAttribute("data-nodeid", t.n);
    bar.setAttribute("data-outcome", t.o);
    if (t.x) { bar.setAttribute("data-note", t.x); bar.className += " noted"; }
    if (t.a) {
      text += "\\naudit (hidden shared state):\\n  " + t.a.join("\\n  ");
      bar.setAttribute("data-audit", String(t.a.length));
      bar.className += " audited";
    }
    bar.setAttribute("title", text);
    bar.dataset.tip = text;
    bar.style.left = pct(t.s);
    bar.style.width = pct(t.d);
    var own = Object.prototype.hasOwnProperty.call(data.colours, t.o);
    bar.style.background = own ? data.colours[t.o] : "$UNKNOWN";
    lanes[t.w].appendChild(bar);
    busy[t.w] += t.d;
  });
  data.workers.forEach(function (w) {
    var share = data.wall > 0 ? Math.round(100 * busy[w] / data.wall) : 100;
    lanes[w].previousSibling.lastChild.textContent = share + "% busy";
  });
  var raw = Math.max(data.wall, 1e-3) / 12, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  var step = [1, 2, 5, 10].map(function (m) { return m * mag; })
    .filter(function (s) { return s >= raw; })[0];
  var row = el("div", "row"), axis = el("div", "axis");
  row.appendChild(el("div", "label", "time")); row.appendChild(axis); chart.appendChild(row);
  var digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (var i = 0; i * step <= data.wall + 1e-9; i++) {
    var tick = el("div", "tick");
    tick.style.left = pct(i * step);
    tick.appendChild(el("span", "", (i * step).toFixed(digits) + "s"));
    axis.appendChild(tick);
    var grid = el("div", "grid");
    grid.style.left = "calc(120px + (100% - 120px) * " + i * step / (data.wall || 1) + ")";
    chart.appendChild(grid);
  }
  chart.addEventListener("mousemove", function (ev) {
    var text = ev.target.dataset ? ev.target.dataset.tip : undefined;
    if (!text) { tip.style.display = "none"; return; }
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = ev.clientY + 14 + "px";
  });
  chart.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  done();
}());
</script>
</body>
</html>
"""
