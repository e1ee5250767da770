"""
Self-contained HTML pages: the data embedded as JSON, the page's own script and style allowed by
their SHA-256 hashes and nothing else (Content-Security-Policy), markup built with DOM calls only;
the drawing code every page shares (elements, loss curves on a log scale, the samples list).

References:
  https://www.w3.org/TR/CSP3/#grammardef-hash-source  (a script or style allowed by its hash)
  https://karpathy.github.io/2015/05/21/rnn-effectiveness/  (samples improving over training)
"""
import base64
import hashlib
import json

from common.vocabulary import SURROGATE

# What every page's script starts with: its data, and the helpers the pages share.
LIB = r"""
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);

// An element with attributes and children (strings become text nodes; tags "svg:..." in SVG's
// namespace). The pages make all their markup this way: no text from the data is parsed as HTML.
function el(tag, attrs = {}, children = []) {
  const e = tag.startsWith("svg:") ?
    document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) :
    document.createElement(tag);
  for (const name of Object.keys(attrs)) e.setAttribute(name, attrs[name]);
  for (const c of children) e.append(c);
  return e;
}

// The smallest and largest of many numbers, in a loop: Math.max(...a) would pass each element as
// an argument, more than the call stack holds past about 125,000 of them.
function range(values, lo, hi) {
  for (const v of values) {
    if (v === null) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

// an SVG text label; a colour given goes on the element's style, over the stylesheet's grey
function label(x, y, text, fill) {
  const e = el("svg:text", { x: x, y: y }, [text]);
  if (fill) e.style.fill = fill;
  return e;
}

// A number as a short label: 3 significant digits, no exponent for everyday sizes
const short = (v) => String(+v.toPrecision(3));

// Lines on a log-scale y axis (a loss falls from its first value by a factor of a few, and on a
// linear axis the first iterations' spike flattens everything after it). series: [{points:
// [[x, y], ...], colour, width, id, faint}]; points whose x is not a finite number or whose y is
// not positive are left out. Returns the <svg>, or null when no series has a point.
function plot(series, xname, yname, W = 520, Hh = 240) {
  const m = { left: 48, right: 12, top: 10, bottom: 36 };
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  const kept = series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && y > 0));
  for (const pts of kept) {
    for (const [x, y] of pts) {
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (x0 > x1) return null;
  x1 = Math.max(x1, x0 + 1e-9);
  const l0 = Math.log(y0), l1 = Math.max(Math.log(y1), l0 + 1e-9);
  const X = (x) => (m.left + (x - x0) / (x1 - x0) * (W - m.left - m.right)).toFixed(1);
  const Y = (y) => (m.top + (l1 - Math.log(y)) / (l1 - l0) * (Hh - m.top - m.bottom)).toFixed(1);
  const svg = el("svg:svg", { width: W, height: Hh }, [
    el("svg:rect", { x: m.left, y: m.top, width: W - m.left - m.right,
                     height: Hh - m.top - m.bottom, fill: "none", stroke: "#999" })]);
  // y ticks at 1, 2, 3 and 5 times the powers of ten inside the range, or its two ends
  const ticks = [];
  for (let e = Math.floor(Math.log10(y0)); e <= Math.ceil(Math.log10(y1)); e++)
    for (const f of [1, 2, 3, 5]) {
      const v = f * 10 ** e;
      if (v >= y0 && v <= y1) ticks.push(v);
    }
  // and the range's ends, where no tick is near them (a twentieth of the height)
  const near = (v) => ticks.some((u) => Math.abs(Math.log(u) - Math.log(v)) < (l1 - l0) / 20);
  ticks.push(...[y0, y1].filter((v) => !near(v)));
  for (const v of ticks) {
    svg.append(el("svg:line", { x1: m.left - 4, x2: W - m.right, y1: Y(v), y2: Y(v),
                                stroke: "#eee" }));
    svg.append(label(2, +Y(v) + 4, short(v)));
  }
  series.forEach((s, j) => {
    const attrs = { points: kept[j].map(([x, y]) => `${X(x)},${Y(y)}`).join(" "), fill: "none",
                    stroke: s.colour, "stroke-width": s.width || 1 };
    if (s.faint) attrs["stroke-opacity"] = 0.25;
    if (s.id) attrs.id = s.id;
    svg.append(el("svg:polyline", attrs));
  });
  svg.append(label(m.left, Hh - m.bottom + 16, short(x0)));
  svg.append(label(W - m.right - 60, Hh - m.bottom + 16, short(x1)));
  svg.append(label(m.left + 80, Hh - 6, `${xname}; ${yname} on a log scale`));
  return svg;
}

// The history rows [iter, loss, val_loss, seconds, smooth] (page.py HISTORY_ROW) as the points
// of one quantity (j: 1 training loss, 2 validation loss, 4 smoothed training loss) against x
// (0: iteration, 3: training seconds)
const points = (H, x, j) => H.filter((h) => h[j] !== null && h[j] !== undefined)
  .map((h) => [h[x], h[j]]);

// The training loss of a run as plot() series: smoothed (solid) over the per-iteration values
// (a faint band), or the per-iteration values alone where the history has no smoothed loss
// (checkpoints written before it was kept); ids train-curve (and train-raw) + suffix
function trainingSeries(H, x, colour, suffix) {
  const smooth = points(H, x, 4), raw = points(H, x, 1);
  if (!smooth.length) return [{ points: raw, colour, id: "train-curve" + suffix }];
  return [{ points: raw, colour, faint: true, id: "train-raw" + suffix },
          { points: smooth, colour, width: 1.5, id: "train-curve" + suffix }];
}

// How a page names the smoothed training loss: factor f, its weight on the value before
const smoothedName = (f) => f ? `smoothed (exponential average, ${f} \u00d7 the last value ` +
  `+ ${+(1 - f).toFixed(6)} \u00d7 each new one)` : "";

// The training and validation loss of a run (history rows, see points) by iteration and, where
// the records hold them, by training seconds; the first plot's lines have the ids train-curve,
// train-raw and val-curve, the second's the same with -s; f: the smoothing factor, if any
function lossPlots(box, H, unit, f) {
  if (!H.length) {
    box.append(el("p", { class: "note" }, ["This run has no training history."]));
    return;
  }
  const row = el("div", { class: "plots" });
  for (const [x, name, suffix] of [[0, "iteration", ""], [3, "training seconds", "-s"]]) {
    const svg = plot([...trainingSeries(H, x, "#1f77b4", suffix),
      { points: points(H, x, 2), colour: "#d62728", width: 2, id: "val-curve" + suffix }],
      name, `nats/${unit}`);
    if (svg) row.append(svg);
  }
  const key = (text, colour) => {
    const s = el("span", {}, [text]);
    s.style.color = colour;
    return s;
  };
  const smoothed = points(H, 0, 4).length;
  box.append(row, el("div", { class: "note" }, [
    key("\u2014 training loss" + (smoothed ? ` ${smoothedName(f)}, faint: each iteration's` : ""),
        "#1f77b4"), ", ", key("\u2014 validation loss", "#d62728"),
    `; ${H.length} records, iterations ${H[0][0]} to ${H[H.length - 1][0]}`]));
}

// The samples printed during training, newest first: the iteration, the training loss around
// it and the text, as the post's figure of samples improving shows them
function sampleList(box, samples, unit) {
  if (!samples.length) {
    box.append(el("p", { class: "note" }, ["No samples were printed during training."]));
    return;
  }
  for (let j = samples.length - 1; j >= 0; j--) {
    const s = samples[j];
    const loss = typeof s.loss === "number" ?
      `, training loss ${s.loss.toFixed(3)} nats/${unit}` : "";
    box.append(el("div", { class: "sample" }, [
      el("div", { class: "note" }, [`iteration ${s.iter}${loss}`]), el("pre", {}, [s.text])]));
  }
}
"""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
.note { color: #666; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.plots svg { margin-right: 1.5em; }
.sample pre { font: 13px/1.4 ui-monospace, monospace; white-space: pre-wrap; margin: .2em 0 .8em;
              border-left: 3px solid #ccc; padding-left: .6em; }
#samples { max-height: 40em; overflow-y: auto; }
table { border-collapse: collapse; } td, th { padding: .15em .6em; text-align: left; }
tr:nth-child(even) { background: #f6f6f6; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="__CSP__">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
__BODY__
<script type="application/json" id="data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""
# How every page this tool writes begins: what tells an earlier page of ours from another file
PAGE_START = TEMPLATE[:TEMPLATE.index("__CSP__")].encode("utf-8")



def csp_hash(text):
    """The Content-Security-Policy source that allows exactly this inline script or style."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


class Page:
    """One kind of page: its title, fixed markup (body), script and style, each page's script
    after LIB and its style after STYLE. It may run that script and style and nothing else: no
    inline script or handler that text in the data could smuggle in (no 'unsafe-inline'), nothing
    from the network (default-src 'none')."""

    def __init__(self, title, body, script, style):
        script, style = LIB + script, STYLE + style
        self.csp = f"default-src 'none'; script-src {csp_hash(script)}; style-src {csp_hash(style)}"
        html = (TEMPLATE.replace("__CSP__", self.csp).replace("__TITLE__", title)
                .replace("__BODY__", body).replace("__STYLE__", style))
        self.head, tail = html.split("__DATA__")
        self.tail = tail.replace("__SCRIPT__", script)

    def render(self, data):
        """The HTML with data inline as JSON: '<', '>' and '&' escaped, so no text can close the
        script element, and a lone surrogate (from a file name that is not UTF-8) as its JSON
        escape, so the page is always UTF-8; NaN and infinities are refused (JSON has none)."""
        blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        blob = SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", blob)
        return self.head + blob + self.tail


# ----------------------------------------------------------------------------- a run's live page

LIVE_SCRIPT = r"""
// The live page of a training run, rewritten by the trainer as it runs: how far the run got, the
// loss curves, the best validation loss, the samples (newest first) and the options. While the
// run lives the page reloads itself; the reader's scroll and choices are kept across reloads.
const KEY = "min-char-rnn live page " + location.pathname;

// seconds -> "12.3 s", "3 min 05 s", "1 h 02 min"
function clock(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  const two = (v) => String(v).padStart(2, "0");
  return h ? `${h} h ${two(m % 60)} min` : `${m} min ${two(Math.floor(s % 60))} s`;
}

function facts() {
  const u = D.unit, rows = [["status", D.status]];
  rows.push(["iteration", D.total === null ? String(D.iter) : `${D.iter} of ${D.total}`]);
  rows.push(["speed", D.speed === null ? "not measured yet" : `${Math.round(D.speed)} ${u}s/s`]);
  rows.push(["time used", `${clock(D.wall_seconds)} since the start, ` +
    `${clock(D.train_seconds)} of training (validation, saving and this page left out; ` +
    `writing this page took ${D.page_seconds.toFixed(3)} s before this time)`]);
  if (D.left) rows.push(["time left", `about ${clock(D.left.seconds)} (${D.left.by})`]);
  rows.push(["best validation loss", D.best === null ? "none yet" :
    `${D.best.loss.toFixed(4)} nats/${u} at iteration ${D.best.iter}, kept in ${D.best.path}`]);
  const table = $("facts");
  for (const [name, value] of rows)
    table.append(el("tr", {}, [el("th", {}, [name]), el("td", {}, [value])]));
}

function options() {
  for (const name of Object.keys(D.options))
    $("options").append(el("tr", {}, [el("th", {}, [name]),
                                      el("td", {}, [JSON.stringify(D.options[name])])]));
}

// the scroll of the page and of the samples, and whether the options are open, across reloads
function keepState() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "{}");
    $("options-box").open = !!saved.open;
    window.scrollTo(0, saved.y || 0);
    $("samples").scrollTop = saved.samples || 0;
    const save = () => sessionStorage.setItem(KEY, JSON.stringify(
      { y: window.scrollY, samples: $("samples").scrollTop, open: $("options-box").open }));
    window.addEventListener("scroll", save);
    $("samples").addEventListener("scroll", save);
    $("options-box").addEventListener("toggle", save);
  } catch (e) {
    // storage refused (some browsers' settings for file://): the page works, from the top
  }
}

function init() {
  $("title").textContent = D.title;
  $("written").textContent = D.live ?
    `Written at ${D.written}; reloads every ${D.reload_seconds} s while the run lives.` :
    `Written at ${D.written}, when the run ended: this page no longer changes.`;
  facts();
  lossPlots($("curves"), D.history, D.unit, D.smooth_factor);
  sampleList($("samples"), D.samples, D.unit);
  options();
  keepState();
  if (D.live) setTimeout(() => location.reload(), D.reload_seconds * 1000);
  document.body.dataset.ready = "1";
}
init();
"""

LIVE_STYLE = """
#facts th { font-weight: normal; color: #666; }
#options th { font: 13px ui-monospace, monospace; font-weight: normal; }
#options td { font: 13px ui-monospace, monospace; }
"""

LIVE_BODY = """
<h1>Training <span id="title"></span></h1>
<p id="written" class="note"></p>
<table id="facts"></table>
<h2>Loss</h2>
<div id="curves"></div>
<h2>Samples printed during training, newest first</h2>
<div id="samples"></div>
<details id="options-box"><summary>Options</summary><table id="options"></table></details>
"""

LIVE = Page("min-char-rnn: a training run", LIVE_BODY, LIVE_SCRIPT, LIVE_STYLE)


# What a page's history row holds, by index: the scripts read h[0] .. h[4] (see points below)
HISTORY_ROW = ("iter", "loss", "val_loss", "seconds", "smooth")


def history_rows(records):
    """History records [{iter, loss, val_loss, seconds, smooth}] as the pages' rows, HISTORY_ROW's
    fields in order (None where a record lacks one: older checkpoints have no smooth)."""
    return [[r.get(k) for k in HISTORY_ROW] for r in records or []]


def with_losses(samples, records):
    """The samples [{iter, text}], each with `loss`: the mean training loss per token of the
    history records after the previous sample's iteration up to its own (None without any)."""
    train = [(r["iter"], r["loss"]) for r in records if r.get("loss") is not None]
    out, j, prev = [], 0, -1
    for s in samples:
        total, count = 0.0, 0
        while j < len(train) and train[j][0] <= s["iter"]:
            if train[j][0] > prev:
                total, count = total + train[j][1], count + 1
            j += 1
        out.append({"iter": s["iter"], "text": s["text"], "loss": total / count if count else None})
        prev = s["iter"]
    return out
