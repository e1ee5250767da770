// visualize.py --compare's page: several checkpoints on one text, their scores, curves overlaid,
// options side by side and a sample from each; with one vocabulary also the text shaded by the
// difference in log-probability between a chosen run and the first, the largest differences,
// and each model's guesses at a token.
const R = D.runs, T = D.pieces.length;
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const colourOf = (i) => COLOURS[i % COLOURS.length];
let against = 1, pinned = -1;  // the run set against the first; the token clicked

// a run's name in its colour
function named(i) {
  const s = el("b", {}, [R[i].name]);
  s.style.color = colourOf(i);
  return s;
}

// a row per run: what it is and how well it predicts the text
function scores() {
  const head = ["model", "kind", "level", "architecture", "parameters", "iterations",
                "training seconds", "tokens predicted", "log-probability", "per token",
                "bits per token", "perplexity", "bits per character"];
  $("scores").append(el("tr", {}, head.map((h) => el("th", {}, [h]))));
  R.forEach((r, i) => {
    const td = (text) => el("td", {}, [text]);
    $("scores").append(el("tr", {}, [el("td", {}, [named(i)]), td(r.kind), td(r.level),
      td(r.arch), td(String(r.params)), td(r.iters == null ? "?" : String(r.iters)),
      td(typeof r.seconds === "number" ? r.seconds.toFixed(1) : "?"), td(String(r.count)),
      td(`${r.log_prob.toFixed(4)} nats`), td(`${r.nats.toFixed(4)} nats/${r.unit}`),
      td(`${r.bits.toFixed(4)} bits/${r.unit}`),
      td(r.perplexity === null ? "overflows" : r.perplexity.toFixed(3)),
      td(`${r.bits_per_char.toFixed(4)} bits/char`)]));
  });
}

// each run's validation loss (thick) and training loss (faint), by iteration and by seconds
function curves() {
  const row = el("div", { class: "plots" });
  for (const [x, name, tag] of [[0, "iteration", "i"], [3, "training seconds", "s"]]) {
    const series = [];
    R.forEach((r, i) => {
      series.push(...trainingSeries(r.history, x, colourOf(i), `-${tag}-${i}`));
      series.push({ points: points(r.history, x, 2), colour: colourOf(i), width: 2,
                    id: `val-${tag}-${i}` });
    });
    const svg = plot(series, name, "nats/token");
    if (svg) row.append(svg);
  }
  if (!row.children.length) {
    $("curves").append(el("p", { class: "note" }, ["No run has a training history."]));
    return;
  }
  const key = el("div", { class: "note" }, ["thick: validation loss; thin: training loss " +
    "smoothed (an exponential average), over each iteration's, faint; "]);
  R.forEach((r, i) => key.append(named(i), i + 1 < R.length ? ", " : ""));
  $("curves").append(row, key);
}

// the runs' options side by side, a row that differs marked
function options() {
  const names = [];
  for (const r of R) for (const k of Object.keys(r.options)) if (!names.includes(k)) names.push(k);
  $("options").append(el("tr", {}, [el("th", {}, ["option"]),
    ...R.map((r, i) => el("th", {}, [named(i)])), el("th", {}, [""])]));
  for (const k of names) {
    const values = R.map((r) => k in r.options ? JSON.stringify(r.options[k]) : "\u2014");
    const differs = new Set(values).size > 1;
    $("options").append(el("tr", differs ? { class: "diff" } : {}, [el("th", {}, [k]),
      ...values.map((v) => el("td", {}, [v])), el("td", {}, [differs ? "\u2260 differs" : ""])]));
  }
}

// a sample from each run, all from the same start, seed and temperature
function samples() {
  R.forEach((r, i) => $("compare-samples").append(el("div", { class: "sample" }, [
    el("div", { class: "note" }, [named(i), ` at seed ${D.seed}, temperature ${D.temperature},` +
                                            " after the text's first token"]),
    el("pre", {}, [r.sample])])));
}

// token t's difference in log-probability (nats), the chosen run's minus the first's; t >= 1
const delta = (t) => R[against].logprob[t - 1] - R[0].logprob[t - 1];

// the text shaded by delta (green: the chosen run did better), and the largest differences listed
function shade() {
  const spans = $("diff-text").children, n = Math.min(T, R[0].logprob.length + 1);
  let top = 1e-9;
  for (let t = 1; t < n; t++) top = Math.max(top, Math.abs(delta(t)));
  for (let t = 1; t < n; t++) {
    const d = delta(t) / top, w = tint(Math.abs(d));
    spans[t].style.backgroundColor = d >= 0 ? `rgb(${w},255,${w})` : `rgb(255,${w},${w})`;
  }
  $("legend").replaceChildren("green: ", named(against), " gave the token a higher probability" +
    " than ", named(0), "; red: lower; the deepest colour is a difference of " +
    `${top.toFixed(2)} nats. Click a token for each model's guesses there.`);
  const order = [];
  for (let t = 1; t < n; t++) order.push(t);
  order.sort((a, b) => Math.abs(delta(b)) - Math.abs(delta(a)) || a - b);
  $("top-diffs").replaceChildren();
  for (const t of order.slice(0, D.top)) {
    const d = delta(t);
    $("top-diffs").append(el("button", { "data-t": t }, [
      `${shown(D.pieces[t])} at ${t}: ${(d >= 0 ? R[against] : R[0]).name} by ` +
      `${Math.abs(d).toFixed(2)} nats`]));
  }
}

// each model's guesses for token t (after tokens 0..t-1), side by side
function guesses(t) {
  const box = $("compare-guesses");
  box.replaceChildren();
  if (t === 0 || t > R[0].top_ids.length) {
    box.append(t === 0 ? "The first token is every model's first input: nothing predicts it." :
      "Guesses are kept for the first tokens only (--max-chars).");
    return;
  }
  const actual = D.vocab[D.ids[t]];
  box.append(el("div", {}, [`token ${t}, ${shown(actual)}: what each model expected there`]));
  const cols = el("div", { class: "cols" });
  R.forEach((r, i) => {
    const col = el("div", { class: "col" }, [named(i), el("div", {},
      [`p(${shown(actual)}) = ${(100 * Math.exp(r.logprob[t - 1])).toFixed(2)}%`])]);
    r.top_ids[t - 1].forEach((id, j) => {
      const line = guessLine(r.top_p[t - 1][j], D.vocab[id], 120, colourOf(i));
      if (id === D.ids[t]) line.classList.add("hit");
      col.append(line);
    });
    cols.append(col);
  });
  box.append(cols);
}

// token t outlined and its guesses shown
function pin(t) {
  const spans = $("diff-text").children;
  if (pinned >= 0) spans[pinned].classList.remove("sel");
  pinned = t;
  spans[t].classList.add("sel");
  guesses(t);
}

// draw everything once, then wire the menu and the clicks
function init() {
  $("title").textContent = D.title;
  scores();
  curves();
  options();
  if (D.note) {
    $("note").textContent = D.note;
    $("per-token").style.display = "none";
    drawn();
    return;
  }
  $("first").append(named(0));
  R.forEach((r, i) => { if (i) $("against").append(el("option", { value: i }, [r.name])); });
  fill($("diff-text"), D.pieces);
  shade();
  samples();
  $("against").onchange = () => { against = +$("against").value; shade(); };
  $("diff-text").onclick = (ev) => {
    const s = ev.target.closest("[data-t]");
    if (s) pin(+s.dataset.t);
  };
  $("top-diffs").onclick = (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    pin(+b.dataset.t);
    $("diff-text").children[+b.dataset.t].scrollIntoView({ block: "center" });
  };
  drawn();
}
init();
