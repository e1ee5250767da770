// visualize.py's page of one checkpoint: the text coloured by a chosen unit, the next-token guesses
// at a token pointed at, the surprisal of each token, the units that track features of the text,
// gate saturation, the training curves and samples.
const T = D.pieces.length;
const decoded = {};  // key -> Uint8Array (T * U), decoded from base64 on first use
let cur = D.keys[0], unit = 0, pinned = -1;  // the quantity and unit shown; the token clicked

// a quantity's 8-bit values, T rows of its U units (page_data in visualize.py quantises them)
function values(k) {
  if (!decoded[k.key]) {
    const bin = atob(k.b64), a = new Uint8Array(bin.length);
    for (let j = 0; j < bin.length; j++) a[j] = bin.charCodeAt(j);
    decoded[k.key] = a;
  }
  return decoded[k.key];
}

// a byte 0..255 -> background colour: gates white -> green (0..1); the rest diverging,
// blue below zero, white at zero, red above, no deeper than tint() allows
function colour(q, gate) {
  if (gate) {
    const s = q / 255, rb = tint(s);
    return `rgb(${rb},${255 - 50 * s | 0},${rb})`;
  }
  const s = (q - 127.5) / 127.5;  // -1..1
  const w = tint(Math.abs(s));
  return s >= 0 ? `rgb(255,${w},${w})` : `rgb(${w},${w},255)`;
}

// the text coloured by the unit shown, and the legend saying what the colours mean
function paint() {
  const a = values(cur), U = cur.units, spans = $("text").children;
  for (let t = 0; t < T; t++) spans[t].style.backgroundColor = colour(a[t * U + unit], cur.gate);
  $("unit").value = unit;
  $("units").textContent = U;
  const lo = +cur.lo[unit].toPrecision(3), hi = +cur.hi[unit].toPrecision(3);
  $("legend").textContent = `layer ${cur.layer}, ${cur.name}, unit ${unit}: ` +
    (cur.gate ? `white = 0, green = 1` : `blue = ${lo}, white = 0, red = ${hi}`);
}

// show unit u (kept inside the quantity's units) of the quantity key, e.g. "1/c"
function select(key, u) {
  cur = D.keys.find((k) => k.key === key);
  $("layer").value = cur.layer;
  fillNames();
  $("name").value = cur.name;
  unit = Math.max(0, Math.min(u, cur.units - 1));
  paint();
}

// the quantity menu: the names of the layer chosen (h, c, f, ...)
function fillNames() {
  const names = D.keys.filter((k) => k.layer === +$("layer").value).map((k) => k.name);
  $("name").replaceChildren();
  for (const n of names) $("name").append(el("option", {}, [n]));
}

// the model's likeliest next tokens after token t, and the token that came
function guesses(t) {
  const next = t + 1 < T ? ` next is ${shown(D.pieces[t + 1])}` +
    ` (${D.surprisal[t].toFixed(2)} bits)` : " (the last token)";
  const box = $("guesses");
  box.replaceChildren(el("div", {}, [
    `after ${shown(D.pieces[t])} (position ${t}):${next}`]));
  D.top_ids[t].forEach((id, j) => box.append(guessLine(D.top_p[t][j], D.vocab[id], 200)));
}

// pointing at a token shows its guesses; a click pins it (a second click lets go)
function onPoint(ev, click) {
  const s = ev.target.closest("[data-t]");
  if (!s) return;
  const t = +s.dataset.t;
  if (click) {
    for (const div of [$("text"), $("surprisal")]) {
      if (pinned >= 0) div.children[pinned].classList.remove("sel");
      if (pinned !== t) div.children[t].classList.add("sel");
    }
    pinned = pinned === t ? -1 : t;
  }
  if (click || pinned < 0) guesses(pinned >= 0 ? pinned : t);
}

// the text again, each token shaded by its surprisal, the largest the deepest
function surprisalRow() {
  fill($("surprisal"), D.pieces);
  const spans = $("surprisal").children, top = range(D.surprisal, 1e-9, 1e-9)[1];
  for (let t = 1; t < T; t++) {  // token t is predicted from tokens 0..t-1; token 0 is not
    const w = tint(D.surprisal[t - 1] / top);
    spans[t].style.backgroundColor = `rgb(255,${w},${w})`;
  }
}

// per feature, a button for each unit that tracks it best
function featureList() {
  const by = new Map(), box = $("features");
  for (const it of D.interpretable) {
    if (!by.has(it.feature)) by.set(it.feature, []);
    by.get(it.feature).push(it);
  }
  for (const [f, items] of by) {
    const row = el("div", {}, [el("b", {}, [f]), " "]);
    for (const it of items)
      row.append(el("button", { "data-key": it.key, "data-unit": it.unit },
        [`${it.key} unit ${it.unit}: r = ${it.r >= 0 ? "+" : ""}${it.r.toFixed(2)}`]));
    box.append(row);
  }
  if (D.constant.length)
    box.append(el("p", { class: "note" },
      [`Left out, constant on this text: ${D.constant.join(", ")}.`]));
  if (!box.children.length)
    box.append(el("p", { class: "note" }, ["No feature varies on this text."]));
}

// a scatter per layer: fraction of positions below 0.1 (x) against above 0.9 (y), per gate unit
function saturationPlots() {
  const keys = Object.keys(D.saturation), box = $("saturation");
  if (!keys.length) {
    box.append(el("p", { class: "note" }, ["Only LSTM and GRU layers have gates."]));
    return;
  }
  const palette = { f: "#d62728", i: "#2ca02c", o: "#1f77b4", z: "#9467bd", r: "#ff7f0e" };
  const layers = Array.from(new Set(keys.map((k) => k.split("/")[0])));
  const S = 200, m = 30;
  for (const l of layers) {
    const g = el("svg:svg", { class: "sat", width: S + m + 70, height: S + m + 10 }, [
      el("svg:rect", { x: m, y: 5, width: S, height: S, fill: "none", stroke: "#999" }),
      el("svg:line", { x1: m, y1: 5, x2: m + S, y2: S + 5, stroke: "#ddd" }),
      label(m, S + 20, "0"), label(m + S - 60, S + 20, "left-saturated 1"),
      label(2, 14, "1"), label(2, S + 5, "0")]);
    let ly = 20;
    for (const k of keys.filter((k) => k.split("/")[0] === l)) {
      const name = k.split("/")[1];
      for (const [lo, hi] of D.saturation[k])
        g.append(el("svg:circle", { cx: m + lo * S, cy: 5 + S - hi * S, r: 2.5,
                                    fill: palette[name], "fill-opacity": 0.6 }));
      g.append(label(m + S + 8, ly, name, palette[name]));
      ly += 14;
    }
    box.append(el("div", { class: "layer" },
      [`layer ${l} (y: right-saturated, fraction > 0.9)`, el("br"), g]));
  }
}

// draw everything once, then wire the menus, the pointer and the arrow keys
function init() {
  $("title").textContent = D.title;
  for (const l of new Set(D.keys.map((k) => k.layer)))
    $("layer").append(el("option", { value: l }, [String(l)]));
  fill($("text"), D.pieces);
  surprisalRow();
  featureList();
  saturationPlots();
  lossPlots($("curves"), D.history, D.unit, D.smooth_factor);
  sampleList($("samples"), D.samples, D.unit);
  $("layer").onchange = () => {
    fillNames();
    select(`${$("layer").value}/${$("name").value}`, unit);
  };
  $("name").onchange = () => select(`${$("layer").value}/${$("name").value}`, unit);
  $("unit").onchange = () => select(cur.key, +$("unit").value || 0);
  $("features").onclick = (ev) => {  // a listed unit: show it
    const b = ev.target.closest("button");
    if (b) select(b.dataset.key, +b.dataset.unit);
  };
  for (const div of [$("text"), $("surprisal")]) {
    div.onmouseover = (ev) => onPoint(ev, false);
    div.onclick = (ev) => onPoint(ev, true);
  }
  document.onkeydown = (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (!step) return;
    ev.preventDefault();
    select(cur.key, (unit + step + cur.units) % cur.units);
  };
  select(cur.key, 0);
  drawn();
}
init();
