"""pytest setup and the helpers every test file shares: the scripts made importable however
pytest is started (`python -m pytest` adds the current folder to sys.path, a bare `pytest` does
not), one subprocess runner, one one-line-error assertion, one central difference, small corpus
writers and checkpoint readers."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from min_char_rnn import PARAM_NAMES  # noqa: E402,F401 (the gist's names, for every test file)

FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CLI_TIMEOUT = 120  # seconds for one command-line run before the test fails (not a timing test)
GRAD_STEP = 1e-5   # central-difference step: STYLE.md "Tests" measured h = 1e-5 in float64, where
                   # the O(h^2) truncation (~1e-10) and the rounding (~1e-16 / h) are both small


def script(name):
    """The absolute path of an entry script in the repository root, e.g. script("rnnlm.py")."""
    return os.path.join(ROOT, name)


def run(name, args, cwd, timeout=CLI_TIMEOUT):
    """Run `python NAME ARGS` (NAME a script in the repository root) in cwd -> CompletedProcess
    with text stdout and stderr."""
    return subprocess.run([sys.executable, script(name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout)


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
    """The exit status, no traceback, and the message: one 'error: ...' line on stderr (argparse:
    a usage line and 'PROG: error: ...'). Every needle must be in the last line, returned."""
    assert result.returncode == status, \
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
