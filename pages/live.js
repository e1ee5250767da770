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

// the table at the top: status, progress, speed, time, the best validation loss
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

// the run's options, as the trainer resolved them
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

// draw everything, then reload while the run lives
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
  drawn();
}
init();
