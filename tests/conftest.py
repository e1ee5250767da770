"""pytest setup and the helpers every test file shares: the scripts made importable however
pytest is started (`python -m pytest` adds the current folder to sys.path, a bare `pytest` does
not), the `slow` marker, one subprocess runner (and its in-process stand-in for runs refused
before they start), one one-line-error assertion, one central
difference, small corpus writers and checkpoint readers, and for the pages: their embedded data
and a headless Chromium."""
import contextlib
import importlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import types
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.checkpoint import load_checkpoint  # noqa: E402
# the gist's parameter names, imported from here by every test file
from common.gist import PARAM_NAMES  # noqa: E402,F401

FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CLI_TIMEOUT = 120  # seconds for one command-line run before the test fails (not a timing test)
GRAD_STEP = 1e-5   # central-difference step in float64: the O(h^2) truncation (~1e-10) and the
                   # rounding (~1e-16 / h ~ 1e-11) are both far below the gradients' size
# What a test that needs an optional package names when it skips for a missing one
EXTRAS_INSTALL = "pip install -r requirements-test.txt"  # onnx, safetensors, onnxruntime, selenium
TORCH_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"  # CPU build
BROWSER_INSTALL = "apt-get install chromium chromium-driver"  # Debian's headless browser


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: a test of a second or more: a real browser, the pages' commands, a "
                   "long training run or several runs one after another "
                   "(`python -m pytest -q -m \"not slow\"` leaves them out)")


def pytest_collection_modifyitems(items):
    """Every test in a real browser is slow: Chromium's start and page loads take seconds."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def script(name):
    """The absolute path of an entry script in the repository root, e.g. script("rnnlm.py")."""
    return os.path.join(ROOT, name)


def run(name, args, cwd, timeout=CLI_TIMEOUT):
    """Run `python NAME ARGS` (NAME a script in the repository root) in cwd -> CompletedProcess
    with text stdout and stderr."""
    return subprocess.run([sys.executable, script(name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout)


def run_here(name, args, cwd):
    """run() without a new interpreter, for a run refused before it starts or a short one: the
    script's main() under common.cli.run, as `python NAME` calls it, with sys.argv, the folder,
    the signal handlers and numpy's error state put back afterwards, and the lock file of --out
    removed as the script's exit removes it. What it prints, the warnings it raises and any
    traceback land in the result's stdout and stderr; returns (returncode, stdout, stderr) like
    a CompletedProcess. Saves the ~0.3 s an interpreter with numpy takes to start."""
    from common import cli, run_files
    held = set(run_files.HELD_LOCKS)
    main = importlib.import_module(os.path.splitext(os.path.basename(name))[0]).main
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = [script(name), *argv]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), np.errstate(), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                cli.run(lambda: main(argv))
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
            except Exception:  # what the interpreter would print for an uncaught exception
                traceback.print_exc()
                status = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for s, handler in handlers.items():
            signal.signal(s, handler)
        # the lock file goes now; its open file (release_lock at the session's exit closes it)
        # keeps the lock, on a file no other run can open any more
        for path in set(run_files.HELD_LOCKS) - held:
            if os.stat(path).st_ino == os.fstat(run_files.HELD_LOCKS.pop(path).fileno()).st_ino:
                os.unlink(path)
    # a warning goes to stderr as it is raised, before the last line
    said = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                   for w in caught)
    return types.SimpleNamespace(returncode=status, stdout=out.getvalue(),
                                 stderr=said + err.getvalue())


# `python -c` this, then a script's path and arguments: the script runs as __main__ with
# load_model raising MemoryError, as loading a model too large for the memory left would
SHORT_OF_MEMORY = """
import runpy, sys
import common.interface
def too_large(*args):
    raise MemoryError
common.interface.load_model = too_large
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_short_of_memory(name, args, cwd, timeout=CLI_TIMEOUT):
    """run() with the model too large for memory (SHORT_OF_MEMORY): what the script says then."""
    return subprocess.run([sys.executable, "-c", SHORT_OF_MEMORY, script(name), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT})


def run_ok(name, args, cwd, timeout=CLI_TIMEOUT):
    """run() for a command that must succeed; returns the CompletedProcess."""
    r = run(name, args, cwd, timeout)
    assert r.returncode == 0, f"{name} {' '.join(map(str, args))} failed:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def start(name, args, cwd):
    """Start `python NAME ARGS` in the background in cwd, its output going to the files
    bg.stdout and bg.stderr there -> Popen."""
    with open(os.path.join(cwd, "bg.stdout"), "w") as out, \
            open(os.path.join(cwd, "bg.stderr"), "w") as err:
        return subprocess.Popen([sys.executable, script(name), *map(str, args)], cwd=cwd,
                                stdout=out, stderr=err)


def wait_for(condition, proc, timeout=CLI_TIMEOUT):
    """Poll condition() until it holds; fail if proc ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before the condition held")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the background run")
        time.sleep(0.01)


def assert_error(result, status, *needles, argparse_error=False):
    """The exit status (None: any but 0), no traceback, and the message: one 'error: ...' line on
    stderr (argparse: a usage line and 'PROG: error: ...'). Every needle must be in the last
    line, which is returned."""
    assert result.returncode != 0 if status is None else result.returncode == status, \
        f"expected exit {status}, got {result.returncode}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"a traceback instead of a message:\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    last = lines[-1]
    if argparse_error:
        assert "usage:" in result.stderr and ": error:" in last, result.stderr
    else:
        assert last.startswith("error:"), f"last stderr line is not 'error: ...':\n{result.stderr}"
        assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{result.stderr}"
    for needle in needles:
        assert needle in last, f"the message should name {needle!r}: {last}"
    return last


def central_difference(f, x, step=GRAD_STEP):
    """d f() / d x by central differences, perturbing x (a float array) in place one element at
    a time and restoring it: (f(x + h) - f(x - h)) / 2h. Returns an array shaped like x."""
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + step
        up = f()
        x[idx] = old - step
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * step)
    return grad


def rel_error(ana, num):
    """Per-array relative error ||ana - num|| / (||ana|| + ||num||) (0 when both are 0)."""
    return np.linalg.norm(ana - num) / max(np.linalg.norm(ana) + np.linalg.norm(num), 1e-300)


def write_text(path, text):
    """Write text as UTF-8 bytes (no newline translation); returns the path."""
    path.write_bytes(text.encode("utf-8"))
    return path


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def reference_vocabulary(text, level="char"):
    """The vocabulary of one text made the plain way, to check the reader against: its tokens
    (characters, jamo letters or words with <eos> for line ends) sorted -> (Vocabulary, ids,
    counts)."""
    from common.vocabulary import Vocabulary, split_words, to_jamo
    tokens = split_words(text) if level == "word" else list(to_jamo(text) if level == "jamo"
                                                          else text)
    vocab = Vocabulary(sorted(set(tokens)), level)
    index = {t: i for i, t in enumerate(vocab.tokens)}
    ids = np.array([index[t] for t in tokens])
    return vocab, ids, np.bincount(ids, minlength=len(vocab))


def read_log(path):
    """A --log JSON-lines file -> list of records."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_npz(path):
    """A checkpoint's arrays and meta read with numpy directly, not through the code under test
    (for building damaged copies and for independent reads)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def write_npz(path, arrays, meta):
    """Write arrays and a meta record the way checkpoints are laid out (no checks)."""
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def snapshot(folder):
    """{relative path: bytes (files) or None (folders)} of everything under folder."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            state[os.path.relpath(os.path.join(dirpath, name), folder)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.access(path, os.R_OK):
                with open(path, "rb") as f:
                    state[os.path.relpath(path, folder)] = f.read()
            else:
                state[os.path.relpath(path, folder)] = os.stat(path).st_mtime_ns
    return state


def assert_nothing_changed(folder, before):
    """No file under folder appeared, vanished or changed since snapshot(folder) gave before."""
    after = snapshot(folder)
    assert sorted(after) == sorted(before), \
        f"files appeared or vanished: before {sorted(before)}, after {sorted(after)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"a failing run changed {changed}"


def assert_finite_checkpoint(path):
    """A checkpoint that loads (any kind) and holds only finite arrays -> (arrays, meta)."""
    arrays, meta = load_checkpoint(str(path))
    for name, a in arrays.items():
        assert np.isfinite(a).all(), f"{path}: {name} is not finite"
    return arrays, meta


def tail_int(pattern, text):
    """The integer of the first match of pattern's group 1 in text (the test fails without one)."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not found in: {text}"
    return int(found.group(1))


# ----------------------------------------------------------------------------- a small gist model

TRAIN = script("min_char_rnn.py")
SAMPLE = script("sample.py")
# 13 symbols, 658 characters: digits, '*', '=', ';'. No newline, so sample output is one line.
GOOD_TEXT = "".join(f"{a}*{b}={a * b};" for a in range(10) for b in range(10))
# Tiny and fast: H = 7, T = 6, no samples, validation only at the end of a run; a fixed seed, so
# a run is the same every time (a later --seed on the same command line takes its place).
TINY = ["--hidden-size", "7", "--seq-length", "6", "--sample-every", "0", "--eval-every", "0",
        "--seed", "0"]


@pytest.fixture(scope="session")
def good(tmp_path_factory):
    """A small corpus and a good min_char_rnn checkpoint trained on it (H = 7, 4 iterations),
    trained once for the whole session: tests only read or copy it."""
    folder = tmp_path_factory.mktemp("good")
    corpus = write_text(folder / "corpus.txt", GOOD_TEXT)
    run_ok("min_char_rnn.py", ["corpus.txt", *TINY, "--max-iters", "4", "--out", "good.npz"],
           cwd=folder)
    ckpt = folder / "good.npz"
    arrays, meta = assert_finite_checkpoint(ckpt)
    return {"folder": folder, "corpus": corpus, "ckpt": ckpt, "vocab": meta["vocab"],
            "H": arrays["Whh"].shape[0]}


def train_fails(tmp_path, good, args, status, *needles, argparse_error=False):
    """Put a copy of the good checkpoint at --out keep.npz, run the trainer, expect the error,
    and check that nothing in tmp_path changed (keep.npz byte-identical, no new files)."""
    keep = tmp_path / "keep.npz"
    if not keep.exists():
        shutil.copyfile(good["ckpt"], keep)
    before = snapshot(tmp_path)
    result = run_here(TRAIN, [*args, "--out", "keep.npz"], cwd=tmp_path)
    message = assert_error(result, status, *needles, argparse_error=argparse_error)
    assert_nothing_changed(tmp_path, before)
    return message


# ----------------------------------------------------------------------------- pages

def page_payload(page_html):
    """The JSON object embedded in a page, read back the way the browser reads it."""
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page_html, re.S)
    return json.loads(m.group(1))


# Chromium through Selenium: the browser fixture, skipped (with the install lines) without them

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian chromium through Selenium; skipped only where it is absent outside CI."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if webdriver is None or not chromium or not driver_path:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium, chromium-driver and selenium (.ci/run)")
        pytest.skip(f"needs chromium, chromium-driver and selenium: {BROWSER_INSTALL}; "
                    f"{EXTRAS_INSTALL}")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync",
                "--window-size=1200,1400",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield driver
    driver.quit()


def page_ready(browser):
    """Whether the page now in the browser has run its own script to the end (which marks the
    body data-ready="1")."""
    return bool(browser.find_elements("css selector", "body[data-ready='1']"))


def browser_errors(browser):
    """The console's SEVERE entries since the last call."""
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def options_as_read(meta):
    """A checkpoint's stored options as sample.py and visualize.py report them: an rnnlm.py
    checkpoint written before --embed-std, --val-file and --first-tokens existed had the book's
    embedding, randn / 100, validated on the end of its text and trained on all of it; a
    min_char_rnn.py one written before --level existed read characters."""
    earlier = {"embed_std": 0.01, "val_file": None, "first_tokens": None} \
        if meta["kind"] == "rnnlm" else {"level": "char"}
    return {**earlier, **meta["options"]}
