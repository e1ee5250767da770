"""Hardening tests (issue 4), all through the command line: bad training input, out-of-range
options, training faults (divergence, SIGINT/SIGTERM, kill -9 at random moments), output folders,
--resume/--init-from mismatches, damaged or hostile checkpoints, and sample.py's options.
Each failing run must exit non-zero with one 'error: ...' line, no traceback, and lose nothing."""
import glob
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from common.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "min_char_rnn.py")
SAMPLE = os.path.join(ROOT, "sample.py")
DEFAULT_CORPUS = os.path.join(ROOT, "data", "corpus.txt")
KIND = "min_char_rnn"
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")

TIMEOUT = 60              # seconds for one command-line run before it fails (not a timing test)
# Peak memory of the 12,000-symbol run. Measured: about 160 MB. The interpreter with numpy and
# tqdm takes about 30 MB; evaluation works in chunks of (V, 349) float64 = 33 MB, of which the
# softmax holds two or three at a time. A single (V, V) float64 array, e.g. an identity matrix for
# one-hot lookups, is 12000^2 * 8 B = 1.15 GB on its own and breaks the bound, as would keeping
# one-hot or probability tensors for the whole validation text (V * 1200 * 8 B each, 115 MB)
# several at a time; the bound leaves a 6x margin for other BLAS and allocator behaviour.
CJK_MAX_RSS_MB = 1024
CJK_VOCAB_SIZE = 12000    # distinct symbols in the many-symbols corpus (issue: 5,000+)
KILL_ROUNDS = 30          # random SIGKILL points in the crash test (issue: kill repeatedly)
KILL_SEED = 4             # seed of the crash test's random.Random: its delays are reproducible

# 13 symbols, 658 characters: digits, '*', '=', ';'. No newline, so sample output is one line.
SMALL_TEXT = "".join(f"{a}*{b}={a * b};" for a in range(10) for b in range(10))
# Tiny and fast: H = 7, T = 6, no samples, validation only at the end of a run.
TINY = ["--hidden-size", "7", "--seq-length", "6", "--sample-every", "0", "--eval-every", "0"]


# ----------------------------------------------------------------------------- helpers

def run(script, args, cwd, timeout=TIMEOUT):
    """Run `python SCRIPT ARGS` in cwd -> CompletedProcess with text output."""
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout)


def assert_error(result, status, *needles, argparse_error=False):
    """Exit status, no traceback, and the message: one 'error: ...' line (argparse: a usage line
    and 'PROG: error: ...'). Every needle must be in that last line, which is returned."""
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


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def write_text(path, text):
    """UTF-8 bytes, no newline translation."""
    return write_bytes(path, text.encode("utf-8"))


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
    after = snapshot(folder)
    assert sorted(after) == sorted(before), \
        f"files appeared or vanished: before {sorted(before)}, after {sorted(after)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"a failing run changed {changed}"


def train_fails(tmp_path, good, args, status, *needles, argparse_error=False):
    """Put a copy of the good checkpoint at --out keep.npz, run the trainer, expect the error,
    and check that nothing in tmp_path changed (keep.npz byte-identical, no new files)."""
    keep = tmp_path / "keep.npz"
    if not keep.exists():
        shutil.copyfile(good["ckpt"], keep)
    before = snapshot(tmp_path)
    result = run(TRAIN, [*args, "--out", "keep.npz"], cwd=tmp_path)
    message = assert_error(result, status, *needles, argparse_error=argparse_error)
    assert_nothing_changed(tmp_path, before)
    return message


def load(path):
    return load_checkpoint(str(path), kinds=(KIND,))


def assert_finite_checkpoint(path):
    arrays, meta = load(path)
    for name, a in arrays.items():
        assert np.isfinite(a).all(), f"{path}: {name} is not finite"
    return arrays, meta


def read_npz(path):
    """A checkpoint's arrays and meta, read directly (no checks), for building damaged copies."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def write_npz(path, arrays, meta):
    """Write arrays and a meta record the way checkpoints are laid out (no checks)."""
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def tail_int(pattern, text):
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not found in: {text}"
    return int(found.group(1))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small corpus and a good checkpoint trained on it (H = 7, 4 iterations)."""
    folder = tmp_path_factory.mktemp("good")
    corpus = write_text(folder / "corpus.txt", SMALL_TEXT)
    result = run(TRAIN, ["corpus.txt", *TINY, "--max-iters", "4", "--out", "good.npz"],
                 cwd=folder)
    assert result.returncode == 0, result.stderr
    ckpt = folder / "good.npz"
    arrays, meta = assert_finite_checkpoint(ckpt)
    return {"folder": folder, "corpus": corpus, "ckpt": ckpt, "vocab": meta["vocab"],
            "H": arrays["Whh"].shape[0]}


# ----------------------------------------------------------------------------- training input

def test_input_missing(tmp_path, good):
    train_fails(tmp_path, good, ["nothere.txt", *TINY], 2, "not found", "nothere.txt")


def test_input_is_a_directory(tmp_path, good):
    (tmp_path / "adir").mkdir()
    train_fails(tmp_path, good, ["adir", *TINY], 2, "directory", "adir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_input_unreadable(tmp_path, good):
    path = write_text(tmp_path / "secret.txt", SMALL_TEXT)
    path.chmod(0)
    try:
        train_fails(tmp_path, good, ["secret.txt", *TINY], 2, "secret.txt")
    finally:
        path.chmod(0o644)


def test_input_empty(tmp_path, good):
    write_bytes(tmp_path / "empty.txt", b"")
    train_fails(tmp_path, good, ["empty.txt", *TINY], 2, "empty")


def test_input_shorter_than_T_plus_1(tmp_path, good):
    write_text(tmp_path / "short.txt", "0123")  # 4 characters; T = 6 needs 7
    train_fails(tmp_path, good, ["short.txt", *TINY, "--val-fraction", "0"], 2, "7")


def test_input_streams_shorter_than_T_plus_1(tmp_path, good):
    # 30 characters are more than T + 1 = 7, but 5 streams of 6 are each one short: 35 needed
    write_text(tmp_path / "thirty.txt", SMALL_TEXT[:30])
    message = train_fails(tmp_path, good, ["thirty.txt", *TINY, "--batch-size", "5",
                                           "--val-fraction", "0"], 2)
    assert "35" in message, f"the message should give the minimum, 5 * (6 + 1) = 35: {message}"


def test_validation_split_too_small(tmp_path, good):
    # 40 characters at --val-fraction 0.01: int(40 * 0.99) = 39 train, 1 validation character
    write_text(tmp_path / "forty.txt", SMALL_TEXT[:40])
    train_fails(tmp_path, good, ["forty.txt", *TINY, "--val-fraction", "0.01"], 2,
                "--val-fraction")


def test_non_utf8_names_offset_and_encoding_then_latin1_trains(tmp_path, good):
    data = SMALL_TEXT[:50].encode() + b"\xe9" + SMALL_TEXT[50:].encode()  # bad byte at offset 50
    write_bytes(tmp_path / "latin.txt", data)
    message = train_fails(tmp_path, good, ["latin.txt", *TINY], 2, "--encoding")
    assert re.search(r"\b50\b", message), f"the message should name byte offset 50: {message}"
    result = run(TRAIN, ["latin.txt", *TINY, "--encoding", "latin-1", "--max-iters", "2",
                         "--out", "latin.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "latin.npz")
    assert "\u00e9" in meta["vocab"], "latin-1 byte 0xe9 should be the character U+00E9"


def test_leading_bom_is_dropped(tmp_path):
    write_text(tmp_path / "bom.txt", "\ufeff" + SMALL_TEXT)
    result = run(TRAIN, ["bom.txt", *TINY, "--max-iters", "2", "--out", "bom.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "bom.npz")
    assert "\ufeff" not in meta["vocab"], "the byte order mark became a vocabulary symbol"
    assert meta["vocab"] == "".join(sorted(set(SMALL_TEXT)))
    assert f"data has {len(SMALL_TEXT)} characters" in result.stdout, result.stdout


def test_one_distinct_character_trains(tmp_path):
    write_text(tmp_path / "aaa.txt", "a" * 300)
    result = run(TRAIN, ["aaa.txt", *TINY, "--max-iters", "3", "--out", "a.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "a.npz")
    assert meta["vocab"] == "a" and meta["n"] == 3
    sampled = run(SAMPLE, ["a.npz", "--length", "5"], cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout == "aaaaa\n", repr(sampled.stdout)


# Runs the trainer as its only child and reports that child's peak RSS. RUSAGE_CHILDREN of the
# pytest process itself would be the largest of every child any test ever started.
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), file=sys.stderr)  # MB
sys.exit(status)
"""


def test_many_thousand_symbols_train_in_bounded_memory(tmp_path):
    rng = random.Random(12)
    symbols = [chr(0x4E00 + i) for i in range(CJK_VOCAB_SIZE)] * 2  # CJK unified ideographs
    rng.shuffle(symbols)
    write_text(tmp_path / "cjk.txt", "".join(symbols))
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, sys.executable, TRAIN, "cjk.txt",
         "--hidden-size", "5", "--seq-length", "10", "--batch-size", "20", "--max-iters", "3",
         "--val-fraction", "0.05", "--eval-every", "0", "--sample-every", "100",
         "--sample-length", "30", "--out", "cjk.npz"],
        cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 0, result.stderr
    peak_mb = float(lines[-1])
    assert peak_mb < CJK_MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB, bound {CJK_MAX_RSS_MB} MB"
    arrays, meta = assert_finite_checkpoint(tmp_path / "cjk.npz")
    assert len(meta["vocab"]) == CJK_VOCAB_SIZE and meta["n"] == 3
    assert arrays["Wxh"].shape == (5, CJK_VOCAB_SIZE)


# ----------------------------------------------------------------------------- options

@pytest.mark.parametrize("option, value", [
    ("--hidden-size", "0"), ("--seq-length", "-1"), ("--batch-size", "0"),
    ("--learning-rate", "0"), ("--val-fraction", "1"), ("--val-fraction", "-0.1")])
def test_out_of_range_options_are_argparse_errors(tmp_path, good, option, value):
    shutil.copyfile(good["corpus"], tmp_path / "corpus.txt")
    train_fails(tmp_path, good, ["corpus.txt", *TINY, option, value], 2, option,
                argparse_error=True)


# ----------------------------------------------------------------------------- faults

def test_divergence_exits_1_and_keeps_the_earlier_model(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    first = run(TRAIN, ["small.txt", *TINY, "--max-iters", "3", "--out", "m.npz"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    model_bytes = (tmp_path / "m.npz").read_bytes()
    best_bytes = (tmp_path / "m.best.npz").read_bytes()
    result = run(TRAIN, ["small.txt", *TINY, "--learning-rate", "1e308", "--save-every", "1",
                         "--max-iters", "50", "--out", "m.npz"], cwd=tmp_path)
    message = assert_error(result, 1, "--learning-rate")
    tail_int(r"iteration (\d+)", message)  # names the iteration
    # no checkpoint anywhere holds a non-finite value ...
    for path in glob.glob(str(tmp_path / "*.npz")):
        assert_finite_checkpoint(path)
    # ... and the earlier run's model and best model survive, byte for byte, at their own path
    # or as the .prev copies a fresh run makes at its first save
    for kept, old_name, prev_name in [(model_bytes, "m.npz", "m.prev.npz"),
                                      (best_bytes, "m.best.npz", "m.prev.best.npz")]:
        candidates = [tmp_path / old_name, tmp_path / prev_name]
        assert any(p.exists() and p.read_bytes() == kept for p in candidates), \
            f"the earlier {old_name} is neither at {old_name} nor at {prev_name}"


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_says_where_and_exits(tmp_path, signum, status):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    log = tmp_path / "log.jsonl"
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, TRAIN, "small.txt", *TINY, "--max-iters", "1000000000",
             "--save-every", "0", "--log", str(log), "--log-every", "1", "--out", "sig.npz"],
            cwd=tmp_path, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (log.exists() and log.stat().st_size > 0):  # training has started
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.01)
        time.sleep(0.05)
        proc.send_signal(signum)
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "err.txt").read_text(encoding="utf-8")
    assert proc.returncode == status, f"exit {proc.returncode}, expected {status}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "sig.npz" in stderr, f"stderr should say where it saved:\n{stderr}"
    _, meta = assert_finite_checkpoint(tmp_path / "sig.npz")
    # the log has a line per iteration, written before its update; the one it was in finishes
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    done = records[-1]["iter"] + 1
    assert meta["n"] == done, f"checkpoint n = {meta['n']}, but {done} iterations were done"
    assert tail_int(r"iteration (\d+)", stderr) == done, stderr


def test_kill_9_at_random_moments_leaves_a_complete_checkpoint(tmp_path):
    """Kill training with SIGKILL again and again; each restart resumes from what is left.
    H = 256 makes a checkpoint 1.9 MB, so a good share of the time is spent saving."""
    work, logs = tmp_path / "run", tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    out = work / "crash.npz"
    control = ["--save-every", "1", "--sample-every", "0", "--eval-every", "0",
               "--max-iters", "1000000000"]
    fresh = [DEFAULT_CORPUS, "--hidden-size", "256", "--val-fraction", "0", *control,
             "--out", "crash.npz"]
    resume = ["--resume", "crash.npz", *control]
    tmp_pattern = re.compile(r"^\.crash\.npz\..+\.tmp$")
    rng = random.Random(KILL_SEED)
    last_n, existed, mid_save, survived = -1, False, 0, 0
    for k in range(KILL_ROUNDS):
        inode = out.stat().st_ino if out.exists() else None
        tmps_before = {p for p in os.listdir(work) if tmp_pattern.match(p)}
        with open(logs / f"err{k}.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, TRAIN, *(resume if existed else fresh)],
                                    cwd=work, stdout=subprocess.DEVNULL, stderr=err)
        try:
            mode = rng.random()
            if mode < 0.25:
                time.sleep(rng.uniform(0.0, 0.6))  # any moment, start-up and loading included
            else:
                # wait for a save of this run to land; then either kill soon after it, or wait
                # for the next save to begin (its temporary file appears) and kill during it
                deadline = time.monotonic() + TIMEOUT
                while not out.exists() or out.stat().st_ino == inode:
                    assert proc.poll() is None, (logs / f"err{k}.txt").read_text()
                    assert time.monotonic() < deadline, "no checkpoint was written"
                    time.sleep(0.002)
                if mode < 0.6:
                    time.sleep(rng.uniform(0.0, 0.03))
                else:
                    while not {p for p in os.listdir(work) if tmp_pattern.match(p)} - tmps_before:
                        assert proc.poll() is None, (logs / f"err{k}.txt").read_text()
                        assert time.monotonic() < deadline, "no save began"
                        time.sleep(0.0005)
                    time.sleep(rng.uniform(0.0, 0.004))
            assert proc.poll() is None, \
                f"round {k}: the run ended by itself:\n{(logs / f'err{k}.txt').read_text()}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        names = set(os.listdir(work))
        strays = {p for p in names if p != "crash.npz" and not tmp_pattern.match(p)}
        assert not strays, f"round {k}: unexpected files {strays}"
        new_tmps = {p for p in names if tmp_pattern.match(p)} - tmps_before
        assert len(new_tmps) <= 1, f"round {k}: more than one temporary file left: {new_tmps}"
        mid_save += len(new_tmps)  # a temporary file left behind: killed while saving
        if out.exists():
            _, meta = assert_finite_checkpoint(out)
            assert meta["n"] >= last_n, f"round {k}: the checkpoint went back from {last_n}"
            last_n, existed = meta["n"], True
        else:
            assert not existed, f"round {k}: the checkpoint disappeared"
        survived += 1
    assert existed, "no checkpoint was ever written"
    # the leftover temporary files are never taken for checkpoints: resuming still works
    result = run(TRAIN, ["--resume", "crash.npz", "--save-every", "0", "--sample-every", "0",
                         "--eval-every", "0", "--max-iters", last_n + 1], cwd=work)
    assert result.returncode == 0, result.stderr
    assert load(out)[1]["n"] == last_n + 1
    print(f"\nkill -9 crash test: survived {survived} random kill points, {mid_save} of them "
          f"mid-save (a temporary file was left); last checkpoint at iteration {last_n}")


# ----------------------------------------------------------------------------- output folder

def test_missing_output_folder_is_created(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    result = run(TRAIN, ["small.txt", *TINY, "--max-iters", "2", "--out", "new/deeper/m.npz"],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_finite_checkpoint(tmp_path / "new" / "deeper" / "m.npz")


@pytest.mark.parametrize("where", ["under_a_file", "a_directory"])
def test_unwritable_output_fails_before_training(tmp_path, good, where):
    shutil.copyfile(good["corpus"], tmp_path / "corpus.txt")
    if where == "under_a_file":
        write_text(tmp_path / "afile", "I am a file, not a folder\n")
        out = "afile/x.npz"
    else:
        (tmp_path / "adir.npz").mkdir()
        out = "adir.npz"
    before = snapshot(tmp_path)
    result = run(TRAIN, ["corpus.txt", *TINY, "--max-iters", "3", "--out", out], cwd=tmp_path)
    assert_error(result, 2, "--out")
    assert "iter" not in result.stdout, f"training started before the error:\n{result.stdout}"
    assert_nothing_changed(tmp_path, before)


# ----------------------------------------------------------------------------- resume / init-from

def test_resume_on_another_corpus_is_refused(tmp_path, good):
    write_text(tmp_path / "other.txt", "the quick brown fox jumps over the lazy dog " * 20)
    message = train_fails(tmp_path, good, ["other.txt", "--resume", "keep.npz", "--max-iters",
                                           "8"], 2, "other.txt")
    assert "SHA-256" in message or "vocabulary" in message, \
        f"the message should say what differs: {message}"


def test_resume_with_another_hidden_size_is_refused(tmp_path, good):
    train_fails(tmp_path, good, ["--resume", "keep.npz", "--hidden-size", "9", "--max-iters",
                                 "8"], 2, "--hidden-size", "9", str(good["H"]))


def test_init_from_on_new_text_with_known_characters_trains(tmp_path, good):
    shutil.copyfile(good["ckpt"], tmp_path / "init.npz")
    init_bytes = (tmp_path / "init.npz").read_bytes()
    write_text(tmp_path / "new.txt", "3*3=9;2*4=8;" * 30)  # characters of the old corpus only
    result = run(TRAIN, ["new.txt", "--init-from", "init.npz", *TINY, "--max-iters", "3",
                         "--out", "new.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "new.npz")
    assert meta["vocab"] == good["vocab"], "--init-from keeps the checkpoint's vocabulary"
    assert meta["n"] == 3, "--init-from starts counting iterations from 0"
    assert (tmp_path / "init.npz").read_bytes() == init_bytes


def test_init_from_on_text_with_unknown_characters_lists_them(tmp_path, good):
    shutil.copyfile(good["ckpt"], tmp_path / "init.npz")
    write_text(tmp_path / "new.txt", "3*3=9;x" * 30 + "Q")
    train_fails(tmp_path, good, ["new.txt", "--init-from", "init.npz", *TINY, "--max-iters",
                                 "3"], 2, "'x'", "'Q'")


# ----------------------------------------------------------------------------- damaged checkpoints

def make_damaged(good_path, case, dest):
    """Write a damaged copy of the good checkpoint at dest ('missing' writes nothing)."""
    arrays, meta = read_npz(good_path)
    V, H = arrays["Why"].shape
    if case == "missing":
        return
    if case == "empty":
        write_bytes(dest, b"")
    elif case == "truncated":
        write_bytes(dest, good_path.read_bytes()[: good_path.stat().st_size // 2])
    elif case == "not_a_zip":  # a plain .npy file, which np.load would happily read
        with open(dest, "wb") as f:
            np.save(f, arrays["Why"])
    else:
        if case == "version":
            meta["format_version"] = 99
        elif case == "kind":
            meta["kind"] = "transformer"  # no such model kind
        elif case == "kind_rnnlm":
            meta["kind"] = "rnnlm"  # another reader's kind, but the gist's arrays and meta
        elif case == "missing_Whh":
            del arrays["Whh"]
        elif case == "missing_by":
            del arrays["by"]
        elif case == "shape":
            arrays["Why"] = np.zeros((V, H + 1))
        elif case == "dtype":
            arrays["Why"] = arrays["Why"].astype(np.int64)
        elif case == "nan":
            arrays["Why"][1, 2] = np.nan
        elif case == "vocab":
            meta["vocab"] += "~"  # one symbol more than the weights have rows for
        write_npz(dest, arrays, meta)


DAMAGE = {  # case: what the message must name besides the file
    "missing": ["not found"], "empty": ["empty"], "truncated": [], "not_a_zip": [],
    "version": ["99"], "kind": ["transformer"], "kind_rnnlm": [], "missing_Whh": ["Whh"],
    "missing_by": ["by"],
    "shape": ["Why", "shape"], "dtype": ["Why", "dtype"], "nan": ["Why", "NaN"],
    "vocab": ["vocabulary"]}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_in_sample(tmp_path, good, case):
    make_damaged(good["ckpt"], case, tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    result = run(SAMPLE, ["bad.npz", "--length", "10"], cwd=tmp_path)
    assert_error(result, 2, "bad.npz", *DAMAGE[case])
    assert result.stdout == "", f"nothing may be generated: {result.stdout!r}"
    assert_nothing_changed(tmp_path, before)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_in_resume(tmp_path, good, case):
    # --out defaults to the --resume file: the damaged file must not be overwritten either
    make_damaged(good["ckpt"], case, tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    result = run(TRAIN, ["--resume", "bad.npz", "--max-iters", "8"], cwd=tmp_path)
    assert_error(result, 2, "bad.npz", *DAMAGE[case])
    assert_nothing_changed(tmp_path, before)


# ----------------------------------------------------------------------------- pickles

class CreatesMarker:
    """Unpickling this calls open(marker, 'w'): a harmless stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_pickled(good_path, member, dest, marker):
    """A checkpoint whose `member` is an object array holding CreatesMarker, the rest valid;
    member None writes a bare pickle instead of an .npz."""
    payload = np.empty(2, dtype=object)  # (2,) object array
    payload[0], payload[1] = CreatesMarker(str(marker)), 1.0
    if member is None:
        write_bytes(dest, pickle.dumps(payload))
        return
    arrays, meta = read_npz(good_path)
    with zipfile.ZipFile(dest, "w") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, payload if name == member else a, allow_pickle=True)
            z.writestr(name + ".npy", buf.getvalue())
        buf = io.BytesIO()
        np.save(buf, payload if member == "meta" else np.array(json.dumps(meta)),
                allow_pickle=True)
        z.writestr("meta.npy", buf.getvalue())


def unpickle_everything(path):
    """The positive control: load the file trusting it, which must create the marker."""
    if zipfile.is_zipfile(path):
        with np.load(path, allow_pickle=True) as z:
            for name in z.files:
                z[name]
    else:
        with open(path, "rb") as f:
            pickle.load(f)


@pytest.mark.parametrize("member", ["Why", "meta", None])
@pytest.mark.parametrize("script", ["sample", "resume"])
def test_pickled_checkpoint_is_refused_without_unpickling(tmp_path, good, member, script):
    marker = tmp_path / "MARKER"
    make_pickled(good["ckpt"], member, tmp_path / "evil.npz", marker)
    if script == "sample":
        result = run(SAMPLE, ["evil.npz", "--length", "10"], cwd=tmp_path)
    else:
        result = run(TRAIN, ["--resume", "evil.npz", "--max-iters", "8"], cwd=tmp_path)
    assert not marker.exists(), "the checkpoint was unpickled: the marker file was created"
    message = assert_error(result, 2, "evil.npz")
    if member is not None:
        assert "pickle" in message, f"the message should say it holds pickles: {message}"
    unpickle_everything(tmp_path / "evil.npz")
    assert marker.exists(), "test is broken: trusting the file should have created the marker"


# ----------------------------------------------------------------------------- sample.py options

def test_sample_start_with_unknown_characters_lists_them(tmp_path, good):
    result = run(SAMPLE, [good["ckpt"], "--start", "1x2*Z", "--length", "5"], cwd=tmp_path)
    assert_error(result, 2, "'x'", "'Z'")
    assert result.stdout == ""


def test_sample_negative_temperature_is_an_argparse_error(tmp_path, good):
    result = run(SAMPLE, [good["ckpt"], "--temperature", "-0.5"], cwd=tmp_path)
    assert_error(result, 2, "--temperature", argparse_error=True)


def test_sample_top_k_zero_and_above_V_both_mean_all(tmp_path, good):
    V = len(good["vocab"])
    outputs = []
    for k in (0, V + 1, 1000):
        result = run(SAMPLE, [good["ckpt"], "--top-k", k, "--seed", "3", "--length", "40"],
                     cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        text = result.stdout.rstrip("\n")
        assert len(text) == 40 and set(text) <= set(good["vocab"]), repr(result.stdout)
        outputs.append(text)
    assert outputs[0] == outputs[1] == outputs[2], \
        f"--top-k 0, {V + 1} and 1000 should all sample from every character: {outputs}"


def test_sample_length_zero_prints_only_the_start(tmp_path, good):
    result = run(SAMPLE, [good["ckpt"], "--start", "12*", "--length", "0"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == "12*", repr(result.stdout)
    result = run(SAMPLE, [good["ckpt"], "--length", "0"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", repr(result.stdout)
