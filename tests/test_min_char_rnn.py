"""Tests of min_char_rnn.py: the gist's reference losses (through gist_reference.py and through
the command line) and the trainer end to end (checkpoints, resume exactness, errors, signals).
The model's own tests (common/gist.py) are in test_gist.py."""
import os
import random
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from common import gist_reference
from common.checkpoint import load_checkpoint
from conftest import (CLI_TIMEOUT, GOOD_TEXT, PARAM_NAMES, ROOT, TINY, TRAIN,
                      assert_finite_checkpoint, read_log, run, start,
                      train_fails, wait_for, write_text)

SCRIPT = "min_char_rnn.py"
DEFAULT_CORPUS = os.path.join(ROOT, "data", "corpus.txt")

# Tolerances, each with where it comes from.
REF_RTOL = 1e-8        # the reference losses below are given to 10 decimals (~1e-11 relative);
                       # the gist and this code sum the same terms in other orders, ~1e-13 apart
# Reference values: the original gist run under Python 3 with a sorted vocabulary (hidden size 100,
# T = 25, lr 0.1, np.random.seed(0) before drawing Wxh, Whh, Why, no validation split), on three
# corpora built by the expressions below; the loss lossFun returned at iteration n, as the
# project recorded them when it began. They check gist_reference.py and, through the
# command line, common/gist.py; tests/fixtures/gist_reference_losses.py prints them again.
CORPORA = {
    "A": " ".join(str(i) for i in range(1000)),
    "B": "\n".join(f"{a} x {b} = {a*b}" for a in range(1, 13) for b in range(1, 13)) + "\n",
    "C": "".join(chr(0xAC00 + (i * 7) % 400) for i in range(3000)),
}
REFERENCE_LOSSES = {
    "A": {0: 59.9475929695, 1: 48.7715585891, 2: 216.3580429876, 3: 151.3815864576,
          5: 143.1183258069, 10: 107.1331569701},
    "B": {0: 65.9697833553, 1: 57.6649727203, 2: 179.1782679987, 3: 175.5745290750,
          5: 121.4930663634, 10: 101.9424228438},
    "C": {0: 149.7949321159, 1: 150.2877866846, 2: 185.2323101550, 3: 432.0914874788,
          5: 304.1242225128, 10: 311.6205921295},
}
REFERENCE_VOCAB_SIZES = {"A": 11, "B": 14, "C": 400}

# A small corpus for the end-to-end runs: 13 symbols, 398 characters.
SMALL_TEXT = " ".join(f"{a}+{b}={a + b}" for a in range(8) for b in range(8))
# A short run that still crosses data resets (S = 179 characters, T = 10), evaluations, samples
# and saves; the hidden size is small so that it is fast.
SMALL_RUN = ["--hidden-size", "16", "--seq-length", "10", "--batch-size", "2", "--seed", "0",
             "--val-fraction", "0.1", "--eval-every", "10", "--sample-every", "10",
             "--sample-length", "20"]


# ----------------------------------------------------------------------------- helpers

def load(path):
    return load_checkpoint(str(path), kinds=("min_char_rnn",))


# ----------------------------------------------------------------------------- reference values

@pytest.mark.parametrize("corpus", ["A", "B", "C"])
def test_reference_losses_through_gist_reference(corpus):
    text = CORPORA[corpus]
    assert len(set(text)) == REFERENCE_VOCAB_SIZES[corpus]
    losses = gist_reference.train(text, 11)
    for n, loss_ref in REFERENCE_LOSSES[corpus].items():
        assert losses[n] == pytest.approx(loss_ref, rel=REF_RTOL), f"iteration {n}"


@pytest.mark.parametrize("corpus", ["A", "B", "C"])
def test_reference_losses_through_cli(tmp_path, corpus):
    write_text(tmp_path / f"{corpus}.txt", CORPORA[corpus])
    result = run(SCRIPT, [f"{corpus}.txt", "--val-fraction", "0", "--max-iters", "11", "--seed", "0",
                      "--log", "log.jsonl", "--log-every", "1", "--sample-every", "0",
                      "--out", "tmp/x.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    losses = {r["iter"]: r["loss"] for r in read_log(tmp_path / "log.jsonl") if "loss" in r}
    assert sorted(losses) == list(range(11))
    for n, loss_ref in REFERENCE_LOSSES[corpus].items():
        assert losses[n] == pytest.approx(loss_ref, rel=REF_RTOL), f"iteration {n}"
    arrays, meta = load(tmp_path / "tmp" / "x.npz")
    assert meta["n"] == 11 and len(meta["vocab"]) == REFERENCE_VOCAB_SIZES[corpus]


# ----------------------------------------------------------------------------- end to end

def test_smoke_run_on_default_corpus(tmp_path):
    if not os.path.exists(DEFAULT_CORPUS):
        pytest.skip("data/corpus.txt not generated yet (python data/make_corpus.py)")
    out = tmp_path / "ckpt" / "smoke.npz"
    result = run(SCRIPT, ["--max-iters", "20", "--out", out, "--sample-every", "10",
                          "--eval-max-chars", "5000", "--seed", "0"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "iter 0, loss:" in result.stdout  # the gist's progress line
    arrays, meta = load(out)
    assert meta["n"] == 20 and meta["input"] == os.path.abspath(DEFAULT_CORPUS)
    assert arrays["Wxh"].shape == (100, len(meta["vocab"]))


@pytest.mark.slow
def test_resume_is_bitwise_exact(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    N = 30
    full = run(SCRIPT, ["small.txt", *SMALL_RUN, "--save-every", "7", "--max-iters", 2 * N,
                    "--out", "full.npz"], cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    half = run(SCRIPT, ["small.txt", *SMALL_RUN, "--save-every", "7", "--max-iters", N,
                    "--out", "half.npz"], cwd=tmp_path)
    assert half.returncode == 0, half.stderr
    assert load(tmp_path / "half.npz")[1]["n"] == N
    resumed = run(SCRIPT, ["--resume", "half.npz", "--max-iters", 2 * N, "--save-every", "7",
                       "--eval-every", "10", "--sample-every", "10", "--sample-length", "20"],
                      cwd=tmp_path)
    assert resumed.returncode == 0, \
        "--resume must take the run-defining options from the checkpoint: " + resumed.stderr
    assert_same_run(tmp_path / "full.npz", tmp_path / "half.npz", 2 * N)


def assert_same_run(path_a, path_b, n):
    """Two checkpoints hold the same state bit for bit, at iteration n."""
    arrays_a, meta_a = load(path_a)
    arrays_b, meta_b = load(path_b)
    names = {*PARAM_NAMES, *("m" + name for name in PARAM_NAMES), "hprev"}
    assert names <= set(arrays_a) and set(arrays_a) == set(arrays_b)
    for name in sorted(arrays_a):
        assert np.array_equal(arrays_a[name], arrays_b[name]), f"{name} differs"
    assert meta_a["n"] == meta_b["n"] == n
    for key in ("p", "smooth_loss", "rng_state", "best_val_loss"):
        assert meta_a[key] == meta_b[key], key


@pytest.mark.slow
def test_resume_after_kill_9_is_bitwise_exact(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    out = tmp_path / "killed.npz"
    proc = start(SCRIPT, ["small.txt", *SMALL_RUN, "--save-every", "1", "--max-iters", "1000000",
                      "--out", out], cwd=tmp_path)
    try:
        wait_for(lambda: out.exists(), proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=CLI_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    M = load(out)[1]["n"] + 13  # continue past the saved iteration, across a validation
    resumed = run(SCRIPT, ["--resume", out, "--max-iters", M, "--save-every", "1",
                       "--eval-every", "10", "--sample-every", "10", "--sample-length", "20"],
                      cwd=tmp_path)
    assert resumed.returncode == 0, \
        "--resume must take the run-defining options from the checkpoint: " + resumed.stderr
    full = run(SCRIPT, ["small.txt", *SMALL_RUN, "--max-iters", M, "--out", "full.npz"],
                   cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert_same_run(tmp_path / "full.npz", out, M)


def test_best_checkpoint_is_the_lowest_validation_loss(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    result = run(SCRIPT, ["small.txt", *SMALL_RUN, "--max-iters", "40", "--out", "m.npz",
                      "--log", "log.jsonl"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    val_losses = {r["iter"]: r["val_loss"] for r in read_log(tmp_path / "log.jsonl")
                  if "val_loss" in r}
    assert sorted(val_losses) == [10, 20, 30, 40]
    best_iter = min(val_losses, key=val_losses.get)
    arrays, meta = load(tmp_path / "m.best.npz")
    assert meta["n"] == best_iter
    assert meta["best_val_loss"] == val_losses[best_iter]


def test_max_iters_zero_does_not_claim_a_save_it_did_not_make(tmp_path):
    write_text(tmp_path / "small.txt", SMALL_TEXT)
    result = run(SCRIPT, ["small.txt", *SMALL_RUN, "--max-iters", "0", "--out", "z.npz"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if "saved to z.npz" in result.stdout:
        assert (tmp_path / "z.npz").exists(), \
            "BUG: --max-iters 0 prints 'saved to z.npz' but writes no checkpoint"


# ----------------------------------------------------------------------------- input and options

# Peak memory of the 12,000-symbol run. Measured: about 160 MB. The interpreter with numpy and
# tqdm takes about 30 MB; evaluation works in chunks of (V, 349) float64 = 33 MB, of which the
# softmax holds two or three at a time. A single (V, V) float64 array, e.g. an identity matrix for
# one-hot lookups, is 12000^2 * 8 B = 1.15 GB on its own and breaks the bound, as would keeping
# one-hot or probability tensors for the whole validation text (V * 1200 * 8 B each, 115 MB)
# several at a time; the bound leaves a 6x margin for other BLAS and allocator behaviour.
CJK_MAX_RSS_MB = 1024
CJK_VOCAB_SIZE = 12000    # distinct symbols in the many-symbols corpus: more than 5,000


def test_input_shorter_than_T_plus_1(tmp_path, good):
    write_text(tmp_path / "short.txt", "0123")  # 4 characters; T = 6 needs 7
    train_fails(tmp_path, good, ["short.txt", *TINY, "--val-fraction", "0"], 2, "7")


def test_input_streams_shorter_than_T_plus_1(tmp_path, good):
    # 30 characters are more than T + 1 = 7, but 5 streams of 6 are each one short: 35 needed
    write_text(tmp_path / "thirty.txt", GOOD_TEXT[:30])
    message = train_fails(tmp_path, good, ["thirty.txt", *TINY, "--batch-size", "5",
                                           "--val-fraction", "0"], 2)
    assert "35" in message, f"the message should give the minimum, 5 * (6 + 1) = 35: {message}"


# Runs the trainer as its only child and reports that child's peak RSS. RUSAGE_CHILDREN of the
# pytest process itself would be the largest of every child any test ever started.
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), file=sys.stderr)  # MB
sys.exit(status)
"""


@pytest.mark.slow
def test_many_thousand_symbols_train_in_bounded_memory(tmp_path):
    rng = random.Random(12)
    symbols = [chr(0x4E00 + i) for i in range(CJK_VOCAB_SIZE)] * 2  # CJK unified ideographs
    rng.shuffle(symbols)
    write_text(tmp_path / "cjk.txt", "".join(symbols))
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, sys.executable, TRAIN, "cjk.txt",
         "--hidden-size", "5", "--seq-length", "10", "--batch-size", "20", "--max-iters", "3",
         "--val-fraction", "0.05", "--eval-every", "0", "--sample-every", "100",
         "--sample-length", "30", "--seed", "0", "--out", "cjk.npz"],
        cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", timeout=CLI_TIMEOUT)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 0, result.stderr
    peak_mb = float(lines[-1])
    assert peak_mb < CJK_MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB, bound {CJK_MAX_RSS_MB} MB"
    arrays, meta = assert_finite_checkpoint(tmp_path / "cjk.npz")
    assert len(meta["vocab"]) == CJK_VOCAB_SIZE and meta["n"] == 3
    assert arrays["Wxh"].shape == (5, CJK_VOCAB_SIZE)


@pytest.mark.parametrize("option, value", [
    ("--hidden-size", "0"), ("--seq-length", "-1"), ("--batch-size", "0"),
    ("--learning-rate", "0"), ("--learning-rate", "-1"), ("--val-fraction", "1"),
    ("--val-fraction", "-0.1")])
def test_out_of_range_options_are_argparse_errors(tmp_path, good, option, value):
    shutil.copyfile(good["corpus"], tmp_path / "corpus.txt")
    train_fails(tmp_path, good, ["corpus.txt", *TINY, option, value], 2, option,
                argparse_error=True)
