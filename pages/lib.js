// What every page's script starts with (common/page.py puts the page's own script after it):
// the page's data, and the helpers the pages share. Markup is made with el() only.
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);

// The page is drawn: its body says so (data-ready="1"), for the browser tests to wait on
const drawn = () => { document.body.dataset.ready = "1"; };

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

// A token as lists show it: a line break (or the word models' <eos>) as a return sign, a space
// as an open box, other whitespace around it left out
const shown = (tok) => tok === "\n" || tok === "<eos>" ? "\u21b5" : tok === " " ? "\u2423" :
  tok.trim() || tok;

// The text into div as one span per token (data-t: its position); a line break shows a faint
// return sign before it
function fill(div, pieces) {
  const frag = document.createDocumentFragment();
  pieces.forEach((piece, t) => {
    const s = el("span", { "data-t": t });
    if (piece === "\n") s.append(el("span", { class: "nl" }, ["\u21b5"]), "\n");
    else s.textContent = piece;
    frag.appendChild(s);
  });
  div.appendChild(frag);
}

// One next-token guess as a line: a bar as long as its probability p (scale: its pixels at
// p = 1, in colour if given), the percentage and the token
function guessLine(p, tok, scale, colour) {
  const bar = el("span", { class: "bar" });
  bar.style.width = `${(p * scale).toFixed(1)}px`;
  if (colour) bar.style.background = colour;
  return el("div", {}, [bar, ` ${(100 * p).toFixed(1).padStart(5)}% ${shown(tok)}`]);
}

// The other two channels of a shade of strength s (0..1) on white: at full strength they stay
// light enough that black text on it keeps a contrast ratio of 6:1 or more (WCAG asks 4.5:1)
const tint = (s) => 255 - 130 * s | 0;

// an SVG text label; a colour given goes on the element's style, over the stylesheet's grey
function label(x, y, text, colour) {
  const e = el("svg:text", { x: x, y: y }, [text]);
  if (colour) e.style.fill = colour;
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
// it and the text, as the figure of samples improving in "The Unreasonable Effectiveness of
// Recurrent Neural Networks" shows them (karpathy.github.io/2015/05/21/rnn-effectiveness)
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
