"""Tests for the run contract both trainers share (common/options.py, run.py, run_files.py,
reporter.py, live_page.py, history.py, clock.py): earlier files kept as .prev, divergence,
--init-from, the loss history, exercised through both trainers' command lines, and the History
class on its own; printing by the clock, the overfitting notice and --patience."""
import argparse
import glob
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import rnnlm
import common.history
from common import cli, gist_reference, live_page, reporter, run_files
from common.history import SMOOTH_FACTOR, History
from common.interface import load_model
from common.run import EVAL_SECONDS, EVAL_SHARE, STALE_NOTICE, Run
from common.vocabulary import Vocabulary
from conftest import (CLI_TIMEOUT, GOOD_TEXT, PARAM_NAMES, ROOT, TINY, TRAIN, assert_error,
                      assert_finite_checkpoint, assert_nothing_changed, page_payload, read_log,
                      read_npz, reference_vocabulary, run, run_here, run_ok, snapshot, start,
                      tail_int, train_fails, wait_for, write_text)

# Only 8 of those symbols: a text --init-from can encode in GOOD_TEXT's vocabulary
KNOWN_TEXT = "".join(f"{a}*{b}={a + b};" for a in range(4) for b in range(4)) * 3
# Tiny models: H = 7, T = 6 (and D = 6, N = 2 for rnnlm), no samples; both with Adagrad memory
# --seed 0: runs compared with each other start from the same weights
TRAINERS = {"min_char_rnn.py": ["--hidden-size", "7", "--seq-length", "6", "--sample-every", "0",
                                "--seed", "0"],
            "rnnlm.py": ["--hidden-size", "7", "--wordvec-size", "6", "--seq-length", "6",
                         "--batch-size", "2", "--optimizer", "adagrad", "--seed", "0"]}
ITER_KEY = {"min_char_rnn.py": "n", "rnnlm.py": "k"}
# One step's gradient computed twice, by the trainer and here from the same weights: the same
# math in another order (gist_reference's one-hot products, or the same layers in-process), so
# only rounding differs: ~1e-16 relative per element, 1e-10 leaves a wide margin; the absolute
# floor covers entries that cancel to ~0 (squared gradients of ~1e-3 carry errors ~1e-19).
SAME_STEP_RTOL = 1e-10
SAME_STEP_ATOL = 1e-16


@pytest.fixture(scope="module", params=sorted(TRAINERS))
def trained(request, tmp_path_factory):
    """For each trainer: a folder with GOOD_TEXT as corpus.txt and a checkpoint good.npz
    trained on it for 3 iterations."""
    trainer = request.param
    folder = tmp_path_factory.mktemp(trainer.replace(".", "_"))
    write_text(folder / "corpus.txt", GOOD_TEXT)
    run_ok(trainer, ["corpus.txt", *TRAINERS[trainer], "--max-iters", "3", "--out", "good.npz"],
           cwd=folder)
    return trainer, folder


def copy_of(trained, tmp_path, *names):
    """The trainer's name, with the corpus and good.npz copied into tmp_path."""
    trainer, folder = trained
    for name in ("corpus.txt", "good.npz", *names):
        shutil.copyfile(folder / name, tmp_path / name)
    return trainer


# ----------------------------------------------------------------------------- earlier files

@pytest.mark.slow
def test_fresh_run_keeps_the_earlier_model_and_best_as_prev(trained, tmp_path):
    """A new run at an --out where an earlier run left model.npz and model.best.npz keeps both,
    byte for byte, as model.prev.npz and model.prev.best.npz (rnnlm.py once overwrote the best
    at its first validation)."""
    trainer = copy_of(trained, tmp_path)
    opts = ["corpus.txt", *TRAINERS[trainer], "--max-iters", "4", "--eval-every", "2",
            "--out", "model.npz"]
    run_ok(trainer, opts, cwd=tmp_path)
    earlier = {name: (tmp_path / name).read_bytes() for name in ("model.npz", "model.best.npz")}
    run_ok(trainer, [*opts, "--seed", "5"], cwd=tmp_path)  # another seed: other weights
    assert (tmp_path / "model.prev.npz").read_bytes() == earlier["model.npz"]
    assert (tmp_path / "model.prev.best.npz").read_bytes() == earlier["model.best.npz"]
    for name in earlier:  # the new run's own files replaced them
        assert (tmp_path / name).read_bytes() != earlier[name]
        assert read_npz(tmp_path / name)[1]["options"]["seed"] == 5


def test_non_finite_validation_loss_stops_and_saves_nothing(trained, tmp_path):
    """A learning rate of 1e308 makes the first validation loss inf or NaN: exit 1 with the one
    divergence line, and the checkpoints already at --out are untouched (no file written)."""
    trainer = copy_of(trained, tmp_path)
    shutil.copyfile(tmp_path / "good.npz", tmp_path / "model.npz")
    shutil.copyfile(tmp_path / "good.npz", tmp_path / "model.best.npz")
    before = snapshot(tmp_path)
    r = run(trainer, ["corpus.txt", *TRAINERS[trainer], "--learning-rate", "1e308",
                      "--eval-every", "1", "--save-every", "1", "--log", "logs/run.log",
                      "--log-every", "1", "--out", "model.npz"], cwd=tmp_path)
    # one line on stderr (assert_error): no RuntimeWarning lines before it
    assert_error(r, 1, "the validation loss became", "diverged", "--learning-rate")
    log = (tmp_path / "logs" / "run.log").read_text(encoding="utf-8")
    shutil.rmtree(tmp_path / "logs")
    assert_nothing_changed(tmp_path, before)
    # the --log lines written before the stop are strict JSON: no NaN or Infinity
    lines = log.splitlines()
    assert lines, "no --log line was written before the stop"
    for line in lines:
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in --log: {line}"))


# ----------------------------------------------------------------------------- --init-from

def first_gradients(trainer, ckpt, text):
    """{name: gradient} of the first training step from ckpt's weights on text, computed here:
    the gist's by gist_reference.lossFun on the first T characters (batch 1, zero state); the
    layer model's by the same layers in-process on rnnlm.get_batch's first batch."""
    arrays, meta = read_npz(ckpt)
    ids = Vocabulary.from_meta(meta).encode(text)
    o = meta["options"]
    if trainer == "min_char_rnn.py":
        T, H = o["seq_length"], o["hidden_size"]
        params = [arrays[name] for name in PARAM_NAMES]
        _, *grads, _ = gist_reference.lossFun(ids[:T], ids[1:T + 1], np.zeros((H, 1)), *params)
        return dict(zip(PARAM_NAMES, grads))
    model = load_model(str(ckpt)).model
    x, t = rnnlm.get_batch(ids[:-1], ids[1:], o["batch_size"], o["seq_length"], 0)  # (N, T)
    model.forward(x, t)
    model.backward()
    return {name: g.copy() for name, g in zip(model.names, model.grads)}


def test_init_from_takes_weights_and_vocabulary_with_a_fresh_optimizer(trained, tmp_path):
    """One iteration from good.npz on a text with fewer symbols: the vocabulary is good.npz's,
    the count starts at 0, and the Adagrad memory after one step is exactly the first gradient
    squared: the gradient of good.npz's weights (they were taken) with no earlier memory added
    (the optimizer is fresh)."""
    trainer = copy_of(trained, tmp_path)
    write_text(tmp_path / "known.txt", KNOWN_TEXT)
    run_ok(trainer, ["known.txt", "--init-from", "good.npz", *TRAINERS[trainer],
                     "--max-iters", "1", "--val-fraction", "0", "--out", "new.npz"], cwd=tmp_path)
    arrays, meta = read_npz(tmp_path / "new.npz")
    good_arrays, good_meta = read_npz(tmp_path / "good.npz")
    assert meta["vocab"] == good_meta["vocab"] != reference_vocabulary(KNOWN_TEXT, "char")[0].to_meta()
    assert meta[ITER_KEY[trainer]] == 1 and good_meta[ITER_KEY[trainer]] == 3
    memory = "m{}" if trainer == "min_char_rnn.py" else "opt_h_{}"
    grads = first_gradients(trainer, tmp_path / "good.npz", KNOWN_TEXT)
    for name, g in grads.items():
        np.testing.assert_allclose(arrays[memory.format(name)], g * g, rtol=SAME_STEP_RTOL,
                                   atol=SAME_STEP_ATOL, err_msg=name)
        assert not np.array_equal(good_arrays[memory.format(name)], 0 * g)  # good.npz had memory


def test_init_from_lists_the_unknown_characters(trained, tmp_path):
    trainer = copy_of(trained, tmp_path)
    write_text(tmp_path / "other.txt", KNOWN_TEXT + "xyz")
    before = snapshot(tmp_path)
    r = run_here(trainer, ["other.txt", "--init-from", "good.npz", *TRAINERS[trainer],
                           "--max-iters", "1", "--out", "new.npz"], cwd=tmp_path)
    assert_error(r, 2, "'x'", "'y'", "'z'", "other.txt")
    assert_nothing_changed(tmp_path, before)


@pytest.mark.parametrize("case", ["with --resume", "another --hidden-size"])
def test_init_from_refusals(trained, tmp_path, case):
    trainer = copy_of(trained, tmp_path)
    args = ["corpus.txt", "--init-from", "good.npz", *TRAINERS[trainer], "--max-iters", "1",
            "--out", "new.npz"]
    if case == "with --resume":
        args, needles = [*args, "--resume", "good.npz"], ("--resume", "--init-from", "not both")
    else:
        args, needles = [*args, "--hidden-size", "9"], ("--hidden-size 9", "7", "good.npz")
    before = snapshot(tmp_path)
    assert_error(run_here(trainer, args, cwd=tmp_path), 2, *needles)
    assert_nothing_changed(tmp_path, before)


# ----------------------------------------------------------------------------- the loss history

def expected_stride(n, cap):
    """The stride History reaches after the training losses of iterations 0..n-1: it doubles
    whenever more than `cap` multiples of it lie in [0, n - 1], so it ends as the smallest power
    of two s with floor((n - 1) / s) + 1 <= cap."""
    s = 1
    while (n - 1) // s + 1 > cap:
        s *= 2
    return s


@pytest.mark.parametrize("n", [7, 8, 9, 30, 61])
def test_history_thins_training_records_by_doubling_the_stride(monkeypatch, n):
    monkeypatch.setattr(common.history, "HISTORY_RECORDS", 8)
    history = History()
    for k in range(n):
        history.add(k, loss=k / 10)
    s = expected_stride(n, 8)
    assert history.stride == s
    assert [{k: v for k, v in r.items() if k != "smooth"} for r in history.records] == \
        [{"iter": k, "loss": k / 10, "val_loss": None, "seconds": None} for k in range(0, n, s)]


def test_history_smooths_the_training_loss_by_an_exponential_average():
    # a loss of 1 for 10 iterations, then 3: the average starts at the first value and after m
    # iterations at 3 stands at 3 - 2 f^m (f = SMOOTH_FACTOR, the weight on the value before)
    history = History()
    f = SMOOTH_FACTOR
    for k in range(40):
        history.add(k, loss=1.0 if k < 10 else 3.0, seconds=float(k))
    smooth = {r["iter"]: r["smooth"] for r in history.records}
    assert smooth[9] == 1.0
    for m in (1, 5, 30):
        assert smooth[9 + m] == pytest.approx(3 - 2 * f ** m, rel=1e-12)
    # a validation record alone keeps no smoothed loss; a trainer's own smoothed value is taken
    history.add(40, val_loss=2.0)
    assert history.records[-1]["smooth"] is None
    history.add(41, loss=5.0, smooth=4.5)
    assert history.records[-1]["smooth"] == 4.5 == history.to_meta(1.0)["smooth"]


def test_history_at_its_real_size_and_validation_records_kept():
    """HISTORY_RECORDS as shipped, 5000 iterations with a validation loss every 50: the
    training records on the stride, and all 100 validation records, each merged with the
    training loss of its iteration."""
    history = History()
    n = 5000
    for k in range(n):
        if k and k % 50 == 0:  # the trainers validate after k iterations, before iteration k
            history.add(k, val_loss=1000 + k)
        history.add(k, loss=float(k))
    s = expected_stride(n, common.history.HISTORY_RECORDS)
    assert s > 1 and len(history.records) <= common.history.HISTORY_RECORDS
    val = [(r["iter"], r["val_loss"]) for r in history.records if r["val_loss"] is not None]
    assert val == [(k, 1000 + k) for k in range(50, n, 50)]
    assert all(r["loss"] == r["iter"] for r in history.records)
    kept = sorted({*range(0, n, history.stride), *range(50, n, 50)})
    assert [r["iter"] for r in history.records] == kept


def test_history_never_exceeds_its_size_when_validation_alone_overflows(monkeypatch):
    monkeypatch.setattr(common.history, "HISTORY_RECORDS", 8)
    history = History()
    for k in range(40):
        history.add(k, val_loss=float(k))
        assert len(history.records) <= 8
    assert all(r["val_loss"] == r["iter"] for r in history.records)


def test_history_continued_from_its_meta_equals_one_history(monkeypatch):
    """A history saved at iteration k (through JSON, as in a checkpoint) and continued gives the
    same records, samples and stride as one never interrupted, thinning included."""
    monkeypatch.setattr(common.history, "HISTORY_RECORDS", 8)
    monkeypatch.setattr(common.history, "SAMPLE_RECORDS", 4)

    def feed(history, ks):
        for k in ks:
            if k % 5 == 0:
                history.add(k, val_loss=k / 7, seconds=k / 2)
            if k % 3 == 0:
                history.add_sample(k, f"sample {k}")
            history.add(k, loss=k / 3, seconds=k / 2)
        return history

    whole = feed(History(), range(50))
    for k in (1, 13, 17, 31):
        first = feed(History(), range(k))
        stored = json.loads(json.dumps(first.to_meta(k / 2)))
        resumed = feed(History(stored), range(k, 50))
        assert resumed.to_meta(25.0) == whole.to_meta(25.0)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 11, 12, 13, 40])
def test_samples_thin_to_every_other_one_keeping_the_first_and_last(monkeypatch, n):
    """Past SAMPLE_RECORDS samples, every other one goes: what stays is spread over the whole
    run, never more than the cap, the first and the latest always there."""
    monkeypatch.setattr(common.history, "SAMPLE_RECORDS", 6)
    history = History()
    kept = []  # the iterations kept, by the rule written out here
    for k in range(n):
        history.add_sample(10 * k, f"text {k}")
        kept.append(10 * k)
        if len(kept) > 6:
            kept = kept[:-1][::2] + [kept[-1]]
        assert len(history.samples) <= 6
        assert history.samples[0]["iter"] == 0 and history.samples[-1]["iter"] == 10 * k
    assert [s["iter"] for s in history.samples] == kept
    assert all(s["text"] == f"text {s['iter'] // 10}" for s in history.samples)


def test_sample_loss_is_the_mean_training_loss_since_the_previous_sample():
    records = [{"iter": k, "loss": float(k), "val_loss": None} for k in range(0, 12, 2)]
    records.insert(2, {"iter": 3, "loss": None, "val_loss": 9.0})  # a validation record
    samples = [{"iter": 0, "text": "a"}, {"iter": 5, "text": "b"}, {"iter": 6, "text": "c"},
               {"iter": 7, "text": "d"}]
    got = common.history.with_losses(samples, records)
    # training losses recorded at 0, 2, 4, 6, 8, 10: sample 0 gets iteration 0's; sample 5 the
    # mean of 2 and 4; sample 6 iteration 6's; sample 7 none (nothing recorded in 7..7)
    assert got == [{"iter": 0, "text": "a", "loss": 0.0}, {"iter": 5, "text": "b", "loss": 3.0},
                   {"iter": 6, "text": "c", "loss": 6.0}, {"iter": 7, "text": "d", "loss": None}]


def without_seconds(history):
    """A stored history with the training seconds (the clock's, never equal twice) left out."""
    return {"stride": history["stride"], "samples": history["samples"],
            "records": [{k: v for k, v in r.items() if k != "seconds"} for r in history["records"]]}


@pytest.mark.slow
def test_history_of_a_resumed_run_equals_the_uninterrupted_run(trained, tmp_path):
    trainer = copy_of(trained, tmp_path)
    opts = ["corpus.txt", *TRAINERS[trainer], "--eval-every", "2", "--sample-every", "3",
            "--sample-length", "5"]
    run_ok(trainer, [*opts, "--max-iters", "10", "--out", "whole.npz"], cwd=tmp_path)
    # stopped at a multiple of --eval-every: a run also validates where it stops
    run_ok(trainer, [*opts, "--max-iters", "6", "--out", "part.npz"], cwd=tmp_path)
    seconds_at_stop = read_npz(tmp_path / "part.npz")[1]["history"]["seconds"]
    # --eval-every is run control, not stored: the resumed run is given it again
    run_ok(trainer, ["--resume", "part.npz", "--max-iters", "10", "--eval-every", "2",
                     "--sample-every", "3", "--sample-length", "5"], cwd=tmp_path)
    whole, part = read_npz(tmp_path / "whole.npz")[1], read_npz(tmp_path / "part.npz")[1]
    assert without_seconds(part["history"]) == without_seconds(whole["history"])
    assert len(whole["history"]["records"]) == 11
    assert [s["iter"] for s in part["history"]["samples"]] == [0, 3, 6, 9]
    # the training clock goes on from where the first part stopped
    seconds = [r["seconds"] for r in part["history"]["records"]]
    assert seconds == sorted(seconds) and part["history"]["seconds"] >= seconds[-1]
    assert all(s >= seconds_at_stop for r, s in zip(part["history"]["records"], seconds)
               if r["iter"] > 6)


def test_checkpoint_history_matches_the_log(trained, tmp_path):
    """The meta history's validation records are the --log val_loss lines of the same run; its
    training losses are the logged losses per token."""
    trainer = copy_of(trained, tmp_path)
    run_ok(trainer, ["corpus.txt", *TRAINERS[trainer], "--max-iters", "7", "--eval-every", "3",
                     "--log", "run.log", "--log-every", "1", "--out", "model.npz"], cwd=tmp_path)
    records = read_npz(tmp_path / "model.npz")[1]["history"]["records"]
    log = read_log(tmp_path / "run.log")
    val_log = [(r["iter"], r["val_loss"]) for r in log if "val_loss" in r]
    assert val_log == [(3, val_log[0][1]), (6, val_log[1][1]), (7, val_log[2][1])]
    assert [(r["iter"], r["val_loss"]) for r in records if r["val_loss"] is not None] == val_log
    per_token = "loss_per_char" if trainer == "min_char_rnn.py" else "loss"
    train_log = [(r["iter"], r[per_token]) for r in log if "loss" in r]
    assert [(r["iter"], r["loss"]) for r in records if r["loss"] is not None] == train_log
    assert len(train_log) == 7


# ------------------------------------------- faults, files, resume (through min_char_rnn.py)

KILL_ROUNDS = 30          # random SIGKILL points in the crash test: enough to hit start-up,
                          # training and the middle of a save many times over
KILL_SEED = 4             # seed of the crash test's random.Random: its delays are reproducible
DEFAULT_CORPUS = os.path.join(ROOT, "data", "corpus.txt")


def test_validation_split_too_small(tmp_path, good):
    # 40 characters at --val-fraction 0.01: int(40 * 0.99) = 39 train, 1 validation character
    write_text(tmp_path / "forty.txt", GOOD_TEXT[:40])
    train_fails(tmp_path, good, ["forty.txt", *TINY, "--val-fraction", "0.01"], 2,
                "--val-fraction")


@pytest.mark.slow
def test_divergence_exits_1_and_keeps_the_earlier_model(tmp_path):
    write_text(tmp_path / "small.txt", GOOD_TEXT)
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
    write_text(tmp_path / "small.txt", GOOD_TEXT)
    log = tmp_path / "log.jsonl"
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, TRAIN, "small.txt", *TINY, "--max-iters", "1000000000",
             "--save-every", "0", "--log", str(log), "--log-every", "1", "--out", "sig.npz"],
            cwd=tmp_path, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + CLI_TIMEOUT
        while not (log.exists() and log.stat().st_size > 0):  # training has started
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.01)
        time.sleep(0.05)
        proc.send_signal(signum)
        proc.wait(timeout=CLI_TIMEOUT)
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


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_complete_checkpoint(tmp_path):
    """Kill training with SIGKILL again and again; each restart resumes from what is left.
    H = 256 makes a checkpoint 1.9 MB, so a good share of the time is spent saving."""
    work, logs = tmp_path / "run", tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    out = work / "crash.npz"
    control = ["--save-every", "1", "--sample-every", "0", "--eval-every", "0",
               "--max-iters", "1000000000"]
    fresh = [DEFAULT_CORPUS, "--hidden-size", "256", "--val-fraction", "0", "--seed", "0",
             *control, "--out", "crash.npz"]
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
                deadline = time.monotonic() + CLI_TIMEOUT
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
            proc.wait(timeout=CLI_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        names = set(os.listdir(work))
        # the lock file a killed run leaves stays behind, unlocked (hold_lock)
        strays = {p for p in names
                  if p not in ("crash.npz", ".crash.npz.lock") and not tmp_pattern.match(p)}
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
    assert read_npz(out)[1]["n"] == last_n + 1
    print(f"\nkill -9 crash test: survived {survived} random kill points, {mid_save} of them "
          f"mid-save (a temporary file was left); last checkpoint at iteration {last_n}")


def test_missing_output_folder_is_created(tmp_path):
    write_text(tmp_path / "small.txt", GOOD_TEXT)
    result = run(TRAIN, ["small.txt", *TINY, "--max-iters", "2", "--out", "new/deeper/m.npz",
                         "--page", "pages/run/p.html"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_finite_checkpoint(tmp_path / "new" / "deeper" / "m.npz")
    assert (tmp_path / "pages" / "run" / "p.html").is_file()
    # the run says where its live page is as it starts
    assert "live page: pages/run/p.html" in result.stdout


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


def test_resume_on_another_corpus_is_refused(tmp_path, good):
    write_text(tmp_path / "other.txt", "the quick brown fox jumps over the lazy dog " * 20)
    message = train_fails(tmp_path, good, ["other.txt", "--resume", "keep.npz", "--max-iters",
                                           "8"], 2, "other.txt")
    assert "SHA-256" in message or "vocabulary" in message, \
        f"the message should say what differs: {message}"


def test_resume_with_another_hidden_size_is_refused(tmp_path, good):
    train_fails(tmp_path, good, ["--resume", "keep.npz", "--hidden-size", "9", "--max-iters",
                                 "8"], 2, "--hidden-size", "9", str(good["H"]))


# ----------------------------------------------------------------------------- several input
# files or a folder (load_corpus reads INPUT for both trainers), their record in the
# checkpoint, the checks on --resume, and the printed parameter count

import hashlib  # noqa: E402 (this section's own imports, kept with it)

from conftest import write_npz  # noqa: E402


def run_cli(args, cwd):
    """`python min_char_rnn.py ARGS` in cwd."""
    return run("min_char_rnn.py", args, cwd)


def assert_same_run(path_a, path_b, n):
    """Two min_char_rnn checkpoints hold the same state bit for bit, at iteration n."""
    arrays_a, meta_a = read_npz(path_a)
    arrays_b, meta_b = read_npz(path_b)
    assert set(arrays_a) == set(arrays_b)
    for name in sorted(arrays_a):
        assert np.array_equal(arrays_a[name], arrays_b[name]), f"{name} differs"
    assert meta_a["n"] == meta_b["n"] == n
    for key in ("p", "smooth_loss", "rng_state", "best_val_loss"):
        assert meta_a[key] == meta_b[key], key

FILES_RUN = ["--hidden-size", "9", "--seq-length", "8", "--batch-size", "2", "--eval-every", "5",
             "--sample-every", "0", "--max-iters", "12", "--seed", "0"]
PART_A = " ".join(f"{a}*{b}" for a in range(9) for b in range(9)) + "\n"
PART_B = "café " * 40  # a character the first file lacks: the vocabulary covers both


def write_parts(folder):
    """corpus/a.txt and corpus/b.txt, plus what the folder rule leaves out: a hidden file and a
    subfolder. Returns the paths of the two texts."""
    folder.mkdir()
    (folder / ".hidden.txt").write_text("XYZ", encoding="utf-8")
    (folder / "sub").mkdir()
    write_text(folder / "sub" / "c.txt", "QQQ")
    return write_text(folder / "a.txt", PART_A), write_text(folder / "b.txt", PART_B)


def file_record(path):
    data = path.read_bytes()
    return {"name": str(path.resolve()), "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.slow
def test_several_files_or_a_folder_train_as_their_concatenation(tmp_path):
    a, b = write_parts(tmp_path / "corpus")
    write_text(tmp_path / "joined.txt", PART_A + PART_B)
    runs = {"joined": ["joined.txt"], "folder": ["corpus"],
            "files": ["corpus/b.txt", "corpus/a.txt"]}  # given unsorted: read sorted
    for name, inputs in runs.items():
        result = run_cli([*inputs, *FILES_RUN, "--out", f"{name}.npz"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        V, H = len(set(PART_A + PART_B)), 9
        printed = int(re.search(r"(\d+) parameters", result.stdout).group(1))
        assert printed == H * V + H * H + V * H + H + V, result.stdout  # Wxh, Whh, Why, bh, by
        assert load_model(str(tmp_path / f"{name}.npz")).num_params == printed
    for name in ("folder", "files"):  # the same ids, so the same run bit for bit
        assert_same_run(tmp_path / "joined.npz", tmp_path / f"{name}.npz", 12)
        meta = read_npz(tmp_path / f"{name}.npz")[1]
        assert meta["input_files"] == [file_record(a), file_record(b)]  # sorted path order
        assert meta["vocab"] == "".join(sorted(set(PART_A + PART_B)))


@pytest.mark.slow
def test_resume_checks_every_file(tmp_path):
    a, b = write_parts(tmp_path / "corpus")
    assert run_cli(["corpus", *FILES_RUN, "--out", "m.npz"], cwd=tmp_path).returncode == 0
    seconds = read_npz(tmp_path / "m.npz")[1]["train_seconds"]
    ok = run_cli(["--resume", "m.npz", "--max-iters", "14"], cwd=tmp_path)  # the stored files
    assert ok.returncode == 0, ok.stderr
    meta = read_npz(tmp_path / "m.npz")[1]
    assert meta["n"] == 14 and meta["train_seconds"] > seconds > 0  # summed over the two runs
    saved = (tmp_path / "m.npz").read_bytes()
    write_text(b, PART_B.replace("é", "e", 1) + "!")  # changed: named, nothing written
    line = assert_error(run_cli(["--resume", "m.npz", "--max-iters", "16"], cwd=tmp_path), 2)
    assert "b.txt" in line and "not the text this run was trained on" in line, line
    write_text(b, PART_B)
    line = assert_error(run_cli(["corpus/a.txt", "--resume", "m.npz", "--max-iters", "16"],
                                      cwd=tmp_path), 2)
    assert "1 file(s) now, 2 in the checkpoint" in line, line
    assert (tmp_path / "m.npz").read_bytes() == saved


@pytest.mark.slow
def test_resume_reads_a_single_input_checkpoint(tmp_path):
    """A version-1 checkpoint records input, input_bytes and input_sha256 only."""
    fixtures = os.path.join(ROOT, "tests", "fixtures", "v1")
    text = (tmp_path / "text.txt")
    text.write_bytes(open(os.path.join(fixtures, "text.txt"), "rb").read())
    (tmp_path / "old.npz").write_bytes(open(os.path.join(fixtures, "gist.npz"), "rb").read())
    old_meta = read_npz(tmp_path / "old.npz")[1]
    assert "input_files" not in old_meta
    ok = run_cli(["text.txt", "--resume", "old.npz", "--max-iters", old_meta["n"] + 2,
                  "--sample-every", "0"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert read_npz(tmp_path / "old.npz")[1]["input_files"] == [file_record(text)]
    (tmp_path / "old.npz").write_bytes(open(os.path.join(fixtures, "gist.npz"), "rb").read())
    write_text(tmp_path / "other.txt", PART_A)
    line = assert_error(run_cli(["other.txt", "--resume", "old.npz"], cwd=tmp_path), 2)
    assert "other.txt" in line and "SHA-256" in line, line


@pytest.mark.slow
def test_folder_without_texts_and_undecodable_file_are_named(tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / ".keep").write_text("x", encoding="utf-8")
    (tmp_path / "none" / "sub").mkdir()
    line = assert_error(run_cli(["none", *FILES_RUN, "--out", "x.npz"], cwd=tmp_path), 2)
    assert "none" in line and "no text files" in line, line
    write_parts(tmp_path / "mixed")
    (tmp_path / "mixed" / "bad.txt").write_bytes(b"ok \xff\xfe")
    line = assert_error(run_cli(["mixed", *FILES_RUN, "--out", "x.npz"], cwd=tmp_path), 2)
    assert "bad.txt" in line and "utf-8" in line, line
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_init_from_encodes_every_file_and_names_the_one_with_unknown_characters(tmp_path):
    """--init-from's vocabulary (the v1 gist fixture's: no 'z', no '@') must hold every file."""
    init = os.path.join(ROOT, "tests", "fixtures", "v1", "gist.npz")
    (tmp_path / "texts").mkdir()
    write_text(tmp_path / "texts" / "a.txt", "hello there, said the cat. " * 12)
    write_text(tmp_path / "texts" / "b.txt", "the dog ran home. " * 12)
    ok = run_cli(["texts", "--init-from", init, "--max-iters", "2", "--sample-every", "0",
                  "--seed", "0", "--out", "m.npz"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(read_npz(tmp_path / "m.npz")[1]["input_files"]) == 2
    write_text(tmp_path / "texts" / "c.txt", "lazy @ dog")
    line = assert_error(run_cli(["texts", "--init-from", init, "--max-iters", "2",
                                 "--seed", "0", "--out", "x.npz"], cwd=tmp_path), 2)
    assert "c.txt" in line and "'z'" in line and "'@'" in line, line


@pytest.mark.slow
def test_out_inside_an_input_folder_or_onto_an_input_file_is_refused(tmp_path):
    """Everything directly in an INPUT folder is read as text: a checkpoint or log written there
    would be read by the next run."""
    a, b = write_parts(tmp_path / "corpus")
    for args, needle in ((["corpus", "--out", "corpus/m.npz"], "INPUT folder"),
                         (["corpus", "--out", "x.npz", "--log", "corpus/log.jsonl"],
                          "INPUT folder"),
                         (["corpus/a.txt", "corpus/b.txt", "--out", "x.npz", "--log",
                           "corpus/b.txt"], "same file as INPUT")):
        line = assert_error(run_cli([*args, *FILES_RUN], cwd=tmp_path), 2)
        assert needle in line, line
    assert sorted(os.listdir(tmp_path / "corpus")) == [".hidden.txt", "a.txt", "b.txt", "sub"]
    assert b.read_text(encoding="utf-8") == PART_B


@pytest.mark.slow
def test_resume_with_a_damaged_input_record_is_one_line(tmp_path):
    write_parts(tmp_path / "corpus")
    assert run_cli(["corpus", *FILES_RUN, "--out", "m.npz"], cwd=tmp_path).returncode == 0
    arrays, meta = read_npz(tmp_path / "m.npz")
    for key in ("input_files", "input", "input_bytes", "input_sha256"):
        meta.pop(key, None)
    for record in ({"input_files": "corpus/a.txt"}, {"input_files": [{"name": "a.txt",
                                                                     "size": "12"}]}):
        write_npz(tmp_path / "bad.npz", arrays, {**meta, **record})
        for args in (["--resume", "bad.npz"], ["corpus", "--resume", "bad.npz"]):
            line = assert_error(run_cli(args, cwd=tmp_path), 2)
            assert "bad.npz is damaged" in line and "input" in line, (record, line)
    write_npz(tmp_path / "bad.npz", arrays, meta)  # no input record at all: weights only
    assert_error(run_cli(["--resume", "bad.npz"], cwd=tmp_path), 2, "--init-from")


# ----------------------------------------------------------------------------- word level: a word
# cut by a file's end joins the next file's first word; rnnlm.py's parameter count

WORD_PARTS = {"b.txt": "t\n" + "the dog ran to the mat\n" * 3, "a.txt": "the cat sat on the ma"}


@pytest.mark.slow
def test_word_level_files_join_with_nothing_between(tmp_path):
    (tmp_path / "corpus").mkdir()
    for name, text in WORD_PARTS.items():
        (tmp_path / "corpus" / name).write_text(text, encoding="utf-8")
    (tmp_path / "joined.txt").write_text(WORD_PARTS["a.txt"] + WORD_PARTS["b.txt"],
                                         encoding="utf-8")
    D, H = 6, 5
    args = ["--level", "word", "--cell", "lstm", "--num-layers", "2", "--wordvec-size", D,
            "--hidden-size", H, "--batch-size", 2, "--seq-length", 3, "--max-iters", 6,
            "--val-fraction", 0, "--seed", 0]
    results = {}
    for name, inputs in {"joined": ["joined.txt"], "folder": ["corpus"]}.items():
        results[name] = run("rnnlm.py", [*inputs, *args, "--out", f"{name}.npz"], tmp_path)
        assert results[name].returncode == 0, results[name].stderr
    a, meta_a = read_npz(tmp_path / "joined.npz")
    b, meta_b = read_npz(tmp_path / "folder.npz")
    words = meta_b["vocab"].split(" ")
    assert "mat" in words and "ma" not in words and "t" not in words, words
    assert meta_a["vocab"] == meta_b["vocab"]
    for name in sorted(a):
        assert np.array_equal(a[name], b[name]), f"{name} differs"
    assert [os.path.basename(f["name"]) for f in meta_b["input_files"]] == ["a.txt", "b.txt"]
    V = len(words)
    # embedding, two LSTM layers (4 gates each: Wx, Wh, b), affine W and b
    expected = V * D + (D * 4 * H + H * 4 * H + 4 * H) + (H * 4 * H + H * 4 * H + 4 * H) + H * V + V
    printed = int(re.search(r"(\d+) parameters", results["folder"].stdout).group(1))
    assert printed == expected == load_model(str(tmp_path / "folder.npz")).num_params


# ----------------------------------------------------------------------------- a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 200 KB tmpfs mounted at tmp_path/disk (root only; skipped where mounting is not
    permitted), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk, leave=0):
    """Write a filler file until at most `leave` bytes are free on disk's file system."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
                if free <= leave:
                    break
                f.write(b"\0" * min(4096, free - leave))
                f.flush()
        except OSError:  # full
            pass


@pytest.mark.slow
def test_full_disk_while_saving_is_one_line_and_keeps_the_checkpoint(trained, small_disk):
    """A run saved to a small disk, the disk filled, then resumed with a save every iteration:
    exit 1, one line naming the file and that the previous one is intact, which it is; no
    temporary file left behind."""
    trainer = copy_of(trained, small_disk.parent)
    run_ok(trainer, ["corpus.txt", *TRAINERS[trainer], "--max-iters", "2", "--eval-every", "0",
                     "--out", "disk/m.npz"], cwd=small_disk.parent)
    kept = (small_disk / "m.npz").read_bytes()
    fill(small_disk)
    r = run(trainer, ["--resume", "disk/m.npz", "--max-iters", "4", "--save-every", "1",
                      "--eval-every", "0"], cwd=small_disk.parent)
    assert_error(r, 1, "disk/m.npz", "intact", "space")
    assert (small_disk / "m.npz").read_bytes() == kept
    assert sorted(os.listdir(small_disk)) == ["filler", "m.best.npz", "m.npz"] or \
        sorted(os.listdir(small_disk)) == ["filler", "m.npz"]


def test_full_disk_for_the_log_warns_once_and_training_goes_on(trained, small_disk):
    trainer = copy_of(trained, small_disk.parent)
    open(small_disk / "run.log", "w").close()
    fill(small_disk)
    r = run(trainer, ["corpus.txt", *TRAINERS[trainer], "--max-iters", "6", "--log-every", "1",
                      "--log", "disk/run.log", "--out", "m.npz"], cwd=small_disk.parent)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "--log" in line]
    assert len(warnings) == 1 and "warning: cannot write --log disk/run.log" in warnings[0], \
        r.stderr
    assert read_npz(small_disk.parent / "m.npz")[1][ITER_KEY[trainer]] == 6


# ----------------------------------------------------------------------------- output paths

def same_file_setup(tmp_path, case):
    """Files for one check_paths case in tmp_path (corpus.txt and good.npz are there) -> the
    trainer's extra arguments and what the message must name."""
    (tmp_path / "sub").mkdir()
    if case in ("--out the input", "--out ./input", "--out sub/../input"):
        shutil.copyfile(tmp_path / "corpus.txt", tmp_path / "text.npz")  # a text named .npz
        out = {"--out the input": "text.npz", "--out ./input": "./text.npz",
               "--out sub/../input": "sub/../text.npz"}[case]
        return ["text.npz", "--out", out], ("INPUT",)
    if case == "--out a symlink to the input":
        os.symlink("corpus.txt", tmp_path / "link.npz")
        return ["corpus.txt", "--out", "link.npz"], ("INPUT",)
    if case == "--out a hard link to the input":
        os.link(tmp_path / "corpus.txt", tmp_path / "hard.npz")
        return ["corpus.txt", "--out", "hard.npz"], ("INPUT",)
    if case == "best of --out is the input":
        shutil.copyfile(tmp_path / "corpus.txt", tmp_path / "m.best.npz")
        return ["m.best.npz", "--out", "m.npz"], ("best", "INPUT")
    if case == "--log the input":
        return ["corpus.txt", "--log", "sub/../corpus.txt", "--out", "m.npz"], ("--log", "INPUT")
    if case == "--log the resumed checkpoint":
        return ["--resume", "good.npz", "--log", "./good.npz", "--max-iters", "5"], \
            ("--log", "--resume")
    if case == "--log a hard link to --init-from":
        os.link(tmp_path / "good.npz", tmp_path / "init.log")
        return ["corpus.txt", "--init-from", "good.npz", "--log", "init.log", "--out", "m.npz"], \
            ("--log", "--init-from")
    if case == "--log --out":
        return ["corpus.txt", "--log", "m.npz", "--out", "m.npz"], ("--log", "--out")
    if case == "--log the best of --out":
        return ["corpus.txt", "--log", "m.best.npz", "--out", "m.npz"], ("--log", "best")
    if case == "--out without .npz":
        return ["corpus.txt", "--out", "m"], ("--out m", "m.npz")
    return page_case(tmp_path, case)


def page_case(tmp_path, case):
    """The --page cases of same_file_setup."""
    if case == "--page the input":
        return ["corpus.txt", "--page", "sub/../corpus.txt", "--out", "m.npz"], ("--page", "INPUT")
    if case == "--page --out":
        return ["corpus.txt", "--page", "m.npz", "--out", "m.npz"], ("--page", "--out")
    if case == "--page the best of --out":
        return ["corpus.txt", "--page", "m.best.npz", "--out", "m.npz"], ("--page", "best")
    if case == "--page the resumed checkpoint":
        return ["--resume", "good.npz", "--page", "good.npz", "--max-iters", "5"], \
            ("--page", "--resume")
    if case == "--page --log":
        return ["corpus.txt", "--log", "run.html", "--page", "run.html", "--out", "m.npz"], \
            ("--page", "--log")
    if case == "--page a folder":
        return ["corpus.txt", "--page", "sub", "--out", "m.npz"], ("--page sub", "is a folder")
    if case == "--page in an INPUT folder":
        shutil.copyfile(tmp_path / "corpus.txt", tmp_path / "sub" / "text.txt")
        return ["sub", "--page", "sub/p.html", "--out", "m.npz"], ("--page", "INPUT folder")
    raise AssertionError(case)


PATH_CASES = ["--out the input", "--out ./input", "--out sub/../input",
              "--out a symlink to the input", "--out a hard link to the input",
              "best of --out is the input", "--log the input", "--log the resumed checkpoint",
              "--log a hard link to --init-from", "--log --out", "--log the best of --out",
              "--out without .npz", "--page the input", "--page --out", "--page the best of --out",
              "--page the resumed checkpoint", "--page --log", "--page a folder",
              "--page in an INPUT folder"]


@pytest.mark.parametrize("case", PATH_CASES)
def test_outputs_never_the_input_a_read_checkpoint_or_each_other(trained, tmp_path, case):
    """Refused before anything is written (the text was once renamed to text.txt.prev.npz and
    replaced by a checkpoint; --log once appended JSON to the corpus or a checkpoint)."""
    trainer = copy_of(trained, tmp_path)
    args, needles = same_file_setup(tmp_path, case)
    before = snapshot(tmp_path)
    r = run_here(trainer, [*args, *TRAINERS[trainer], "--max-iters", "2"]
                 if "--resume" not in args else args, cwd=tmp_path)
    assert_error(r, 2, *needles)
    assert_nothing_changed(tmp_path, before)


def test_resume_of_a_checkpoint_named_without_npz(trained, tmp_path):
    """An older run may have saved to a name without .npz: resuming it in place still works."""
    trainer = copy_of(trained, tmp_path)
    os.rename(tmp_path / "good.npz", tmp_path / "oldmodel")
    run_ok(trainer, ["--resume", "oldmodel", "--max-iters", "5", "--eval-every", "5"],
           cwd=tmp_path)
    assert read_npz(tmp_path / "oldmodel")[1][ITER_KEY[trainer]] == 5


# ----------------------------------------------------------------------------- printing, patience
# Printing by the clock or by --sample-every, the plain progress line without a
# terminal, the bar's last figures, the overfitting notice and --patience, on a Run driven by a
# fake clock and through both trainers' command lines.

# Training text "abc" repeated; the validation text (the last 10%) runs "acb": every step that
# teaches a -> b, b -> c, c -> a makes the validation transitions a -> c, c -> b, b -> a less
# likely, so after the first validation no later one is a new best.
TRAIN_PART = "abc" * 120
VAL_PART = "acb" * 13 + "a"
PATIENCE_RUNS = {"min_char_rnn.py": ["--hidden-size", "8", "--seq-length", "6", "--sample-every", "0",
                                     "--seed", "3"],
        "rnnlm.py": ["--hidden-size", "8", "--wordvec-size", "5", "--seq-length", "6",
                     "--batch-size", "2", "--optimizer", "adagrad", "--sample-every", "0",
                     "--seed", "3"]}


class FakeClock:
    """Stands in for time.perf_counter: seconds that move only when a test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


@pytest.fixture
def make_run(tmp_path):
    """Run objects on tmp_path/model.npz; the signal handlers Run.begin sets are put back."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def make(sample_every=None, patience=0, page=None, time_budget=0, eval_every=None,
             budget_clock="wall"):
        text = write_text(tmp_path / "text.txt", TRAIN_PART)
        args = argparse.Namespace(input=[str(text)], resume=None, init_from=None,
                                  out=str(tmp_path / "model.npz"), log=None, log_every=0,
                                  sample_every=sample_every, patience=patience,
                                  page=page and str(tmp_path / page), time_budget=time_budget,
                                  eval_every=eval_every, save_every=0, budget_clock=budget_clock)
        return Run(args, "char")

    yield make
    for s, handler in handlers.items():
        signal.signal(s, handler)


def test_printing_follows_the_clock_by_default(make_run, clock):
    run = make_run()
    run.begin(0, None)
    due = []
    for k in range(110):  # iterations of 0.1 simulated seconds; printing takes no time
        due.append(run.report.print_due(k))
        clock.now += 0.1
    # the first iteration, then PRINT_SECONDS (5 s) after the iteration that follows a print
    assert reporter.PRINT_SECONDS == 5.0
    assert [k for k, d in enumerate(due) if d] == [0, 51, 102]


def test_a_slow_print_does_not_make_every_iteration_print(make_run, clock):
    run = make_run()
    run.begin(0, None)
    due = []
    for k in range(160):
        due.append(run.report.print_due(k))
        clock.now += 0.5 + (7.0 if due[-1] else 0.0)  # printing takes 7 s, longer than the interval
    # after the first print (7 s, and its iteration 0.5 s) the next waits PRINT_SHARE times that,
    # 75 s or 150 iterations: printing takes a tenth of the time, not all of it
    assert reporter.PRINT_SHARE == 10
    assert [k for k, d in enumerate(due) if d] == [0, 151]


def test_sample_every_gives_exact_control(make_run, clock):
    every_3 = make_run(sample_every=3)
    every_3.begin(0, None)
    never = make_run(sample_every=0)
    never.begin(0, None)
    due_3, due_never = [], []
    for k in range(10):
        due_3.append(every_3.report.print_due(k))
        due_never.append(never.report.print_due(k))
        clock.now += 7.0  # the clock plays no part
    assert [k for k, d in enumerate(due_3) if d] == [0, 3, 6, 9]
    assert not any(due_never)


def test_without_a_terminal_a_plain_progress_line_now_and_then(make_run, clock, capsys):
    run = make_run()
    run.begin(0, 50)
    assert run.report.progress_bar.bar.disable  # pytest's captured stdout is not a terminal
    for k in range(1, 51):  # 2 simulated seconds per iteration of 100 characters
        clock.now += 2.0
        run.report.progress(k, 100, lambda: f"loss {k / 10:.1f}")
    run.report.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100 // int(reporter.PLAIN_PROGRESS_SECONDS)  # 100 s: 3 lines
    assert lines[0] == "progress: iteration 15 of 50, loss 1.5, 0.1k chars/s"


def test_the_bar_ends_with_the_last_figures(make_run, clock):
    run = make_run()
    run.begin(0, 3)
    loss = {"now": 9.0}
    clock.now += 2.0
    run.report.progress(1, 25, lambda: f"loss {loss['now']:.3f}")  # shown: loss 9.000
    loss["now"] = 5.0
    run.report.progress(2, 25, lambda: f"loss {loss['now']:.3f}")  # within the second: not shown
    assert "loss 9.000" in run.report.progress_bar.bar.postfix
    run.report.close()
    assert run.report.progress_bar.bar.postfix.startswith("loss 5.000")  # what the final line says


def validate_all(run, losses, capsys):
    """Feed validation losses at iterations 100, 200, ... -> (printed lines, saves of the best,
    out_of_patience after each)."""
    saves, stops = [], []
    for i, loss in enumerate(losses):
        run.validated(100 * (i + 1), loss, saves.append)
        stops.append(run.out_of_patience)
    return capsys.readouterr().out.splitlines(), saves, stops


def test_overfitting_notice_once(make_run, capsys):
    run = make_run()
    lines, saves, stops = validate_all(run, [3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9], capsys)
    notices = [line for line in lines if "not improved" in line]
    assert len(notices) == 1, lines
    # STALE_NOTICE = 3 validations without a new best: the third after the best at 200 is 500
    assert notices[0].startswith(f"iter {100 * (2 + STALE_NOTICE)}: ")
    assert "2.0000 nats/char at iteration 200" in notices[0]
    assert run.best.path in notices[0] and "--patience" in notices[0]
    assert saves == [run.best.path] * 2 and not any(stops)


def test_patience_stops_after_n_validations_without_a_new_best(make_run, capsys):
    run = make_run(patience=2)
    lines, saves, stops = validate_all(run, [3.0, 2.0, 2.5, 1.5, 1.7, 1.6], capsys)
    assert stops == [False, False, False, False, False, True]
    assert lines[-1].startswith("iter 600: stopping early: 2 validations without a new best")
    assert "1.5000 nats/char at iteration 400" in lines[-1]
    assert run.meta()["best_val_iter"] == 400 and run.meta()["validations_since_best"] == 2


@pytest.mark.parametrize("trainer", sorted(PATIENCE_RUNS))
@pytest.mark.slow
def test_patience_through_the_trainers(trainer, tmp_path):
    """Both trainers stop at the validation that exhausts --patience, save, and say where the
    best is kept; without --patience they run to --max-iters and say so once."""
    write_text(tmp_path / "abc.txt", TRAIN_PART + VAL_PART)
    common = ["abc.txt", *PATIENCE_RUNS[trainer], "--eval-every", "10", "--max-iters", "200"]

    def train(*extra):
        return run_ok(trainer, [*common, *extra], cwd=tmp_path).stdout

    stopped = train("--patience", "2", "--out", "p.npz")
    assert "iter 30: stopping early: 2 validations without a new best (--patience 2)" in stopped
    assert "at iteration 10, is kept in " + os.path.join("", "p.best.npz") in stopped
    assert "done: 30 iterations" in stopped
    full = train("--out", "full.npz")
    assert "done: 200 iterations" in full
    assert full.count("the validation loss has not improved for 3 validations") == 1


def test_rnnlm_loss_line_is_the_mean_since_the_last_one(make_run, capsys):
    run = make_run()
    for k, loss in enumerate([2.0, 1.0, 3.0]):
        run.report.trained(k, loss)
    run.report.print_recent_loss(2)
    run.report.trained(3, 0.5)
    run.report.print_recent_loss(3)
    first, second = capsys.readouterr().out.splitlines()
    assert first == "iter 2, loss: 2.0000 nats/char (mean since the last line), perplexity 7.39"
    assert second.startswith("iter 3, loss: 0.5000 nats/char")


def test_frequent_validations_leave_the_figures_coming_and_out_of_the_speed(make_run, clock,
                                                                             capsys):
    run = make_run()
    run.begin(0, 100)
    for k in range(1, 101):  # 0.1 s per iteration of 100 characters: 1.0k chars/s of training
        clock.now += 0.1
        run.report.progress(k, 100, lambda: "loss 1.0")
        if k % 5 == 0:  # a validation of 10 s after every 0.5 s of training
            clock.now += 10.0
            run.validated(k, 2.0, lambda path: None)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("progress:")]
    assert len(lines) >= 3 and all(x.endswith(", loss 1.0, 1.0k chars/s") for x in lines), lines


def test_validation_follows_the_clock_unless_eval_every(make_run, clock):
    """Without --eval-every: not at the start, then every EVAL_SECONDS (5 s), or EVAL_SHARE
    (10) times the last validation's duration when that is longer; --eval-every N: exactly
    every N iterations whatever the clock."""
    run = make_run()
    run.begin(0, None)
    due = []
    for k in range(1, 200):  # iterations of 0.125 simulated seconds (exact in binary)
        clock.now += 0.125
        if run.eval_due(k):
            due.append(k)
            clock.now += 1.0 if k == 81 else 0.0  # the second validation takes 1 s
    assert EVAL_SECONDS == 5.0 and EVAL_SHARE == 10
    # 5 s in; 5 s after the first ended (with the iteration after it); then 10 x (1 s + one
    # iteration) = 11.25 s after the second: 90 iterations
    assert due == [40, 81, 172], due
    exact = make_run()
    exact.args.eval_every = 7
    exact.begin(0, None)
    assert [k for k in range(1, 30) if exact.eval_due(k)] == [7, 14, 21, 28]


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.slow
def test_quick_reruns_keep_every_earlier_run_under_its_own_name(trainer, tmp_path):
    """A 12-iteration run, then two 2-iteration reruns at the same --out without --resume: each
    rerun keeps the run before it, model and best together, under the next free name, and says
    which run (iterations, seed) went where."""
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    opts = ["corpus.txt", *TRAINERS[trainer], "--eval-every", "4", "--out", "model.npz"]
    run_ok(trainer, [*opts, "--max-iters", "12", "--seed", "1"], cwd=tmp_path)
    long_run = {n: (tmp_path / n).read_bytes() for n in ("model.npz", "model.best.npz")}
    first = run_ok(trainer, [*opts, "--max-iters", "2", "--seed", "2"], cwd=tmp_path).stdout
    short_run = {n: (tmp_path / n).read_bytes() for n in ("model.npz", "model.best.npz")}
    second = run_ok(trainer, [*opts, "--max-iters", "2", "--seed", "3"], cwd=tmp_path).stdout
    assert (tmp_path / "model.prev.npz").read_bytes() == long_run["model.npz"]
    assert (tmp_path / "model.prev.best.npz").read_bytes() == long_run["model.best.npz"]
    assert (tmp_path / "model.prev2.npz").read_bytes() == short_run["model.npz"]
    assert (tmp_path / "model.prev2.best.npz").read_bytes() == short_run["model.best.npz"]
    assert read_npz(tmp_path / "model.npz")[1]["options"]["seed"] == 3
    assert "kept the earlier run (12 iterations, seed 1): model.npz as model.prev.npz and " \
           "model.best.npz as model.prev.best.npz" in first
    assert "kept the earlier run (2 iterations, seed 2): model.npz as model.prev2.npz" in second


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.slow
def test_time_budget_ends_a_run_without_max_iters(trainer, tmp_path):
    """--time-budget 1 and no iteration limit: the run stops by itself after about a second of
    training, validates and saves (not a timing test: only that it ends and says so)."""
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    r = run_ok(trainer, ["corpus.txt", *TRAINERS[trainer], "--time-budget", "1", "--out", "m.npz"],
               cwd=tmp_path)
    assert "done: " in r.stdout and "val loss" in r.stdout
    assert read_npz(tmp_path / "m.npz")[1][ITER_KEY[trainer]] > 0


@pytest.mark.slow
def test_a_run_without_seed_draws_one_and_prints_how_to_repeat_it(tmp_path):
    """Two runs without --seed get their own seeds (weights differ); the printed --seed N
    repeats the first run's weights exactly."""
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    opts = ["corpus.txt", "--hidden-size", "7", "--seq-length", "6", "--sample-every", "0",
            "--max-iters", "3", "--eval-every", "0"]
    seeds = []
    for name in ("a", "b"):
        out = run_ok("min_char_rnn.py", [*opts, "--out", f"{name}.npz"], cwd=tmp_path).stdout
        found = re.search(r"^seed (\d+) was drawn for this run: --seed \1 repeats it$", out, re.M)
        assert found, out
        seeds.append(int(found.group(1)))
    assert seeds[0] != seeds[1]  # two draws below a million: equal once in a million runs
    run_ok("min_char_rnn.py", [*opts, "--seed", seeds[0], "--out", "again.npz"], cwd=tmp_path)
    first, again = read_npz(tmp_path / "a.npz")[0], read_npz(tmp_path / "again.npz")[0]
    assert all(np.array_equal(first[n], again[n]) for n in PARAM_NAMES)
    assert not np.array_equal(first["Whh"], read_npz(tmp_path / "b.npz")[0]["Whh"])


# ----------------------------------------------------------------------------- the live page
# When --page is written and what it says, on a Run driven by the fake clock; the page itself in
# a browser is tests/test_page.py's.

@pytest.fixture
def page_writes(monkeypatch, clock):
    """Every --page write as (fake time, the page's data); writes.slow seconds of the fake clock
    pass in each write."""
    class Writes(list):
        slow = 0.0

    writes = Writes()

    def write_atomic(path, write, what):
        buf = io.BytesIO()
        write(buf)
        clock.now += writes.slow
        writes.append((clock.now, page_payload(buf.getvalue().decode("utf-8"))))

    monkeypatch.setattr(live_page, "write_atomic", write_atomic)
    return writes


def train_for(run, clock, iterations, start=0, seconds=1.0, validate=(), eval_seconds=0.0):
    """Drive run through iterations start.. of `seconds` each (loss 1.0 per token), validating
    (in eval_seconds) after those in `validate`."""
    for k in range(start, start + iterations):
        clock.now += seconds
        run.report.trained(k, 1.0)
        run.report.progress(k + 1, 10, lambda: "loss 1.0")
        if k + 1 in validate:
            clock.now += eval_seconds
            run.validated(k + 1, 2.0 - k / 1000, lambda path: None)


def test_page_at_the_first_validation_then_every_page_seconds_and_at_the_end(make_run, clock,
                                                                             page_writes):
    run = make_run(page="p.html")
    run.begin(0, 60)
    train_for(run, clock, 60, validate={5, 20, 40})
    run.finish(60)
    assert live_page.PAGE_SECONDS == 10.0
    # after the first validation (5 iterations of 1 s) at the next iteration's end; then 10 s
    # after each write; the last when the run ends
    assert [d["iter"] for _, d in page_writes] == [6, 16, 26, 36, 46, 56, 60]
    assert [d["live"] for _, d in page_writes] == [True] * 6 + [False]
    last = page_writes[-1][1]
    assert last["status"] == "finished after 60 iterations" and last["left"] is None
    assert last["best"] == {"loss": 2.0 - 39 / 1000, "iter": 40, "path": run.best.path}
    assert [h[0] for h in last["history"] if h[2] is not None] == [5, 20, 40]


def test_page_without_validation_comes_after_page_seconds(make_run, clock, page_writes):
    run = make_run(page="p.html")
    run.begin(0, None)
    train_for(run, clock, 25)
    assert [d["iter"] for _, d in page_writes] == [10, 20]
    assert page_writes[0][1]["left"] is None and page_writes[0][1]["total"] is None


def test_slow_page_writes_take_at_most_a_fiftieth_of_the_time(make_run, clock, page_writes):
    """A write of 1 s waits PAGE_SHARE times as long for the next; the clock of the curves
    leaves the writes (and the validations) out."""
    page_writes.slow = 1.0
    run = make_run(page="p.html")
    run.begin(0, None)
    train_for(run, clock, 200, validate={100}, eval_seconds=7.0)
    assert live_page.PAGE_SHARE == 50
    times = [when for when, _ in page_writes]
    # at 10 s, then 50 s after each write ended: iterations 10, 60 and (after the validation's
    # 7 s, which the clock leaves out) 103, 153
    assert [d["iter"] for _, d in page_writes] == [10, 60, 103, 153]
    assert all(b - a >= live_page.PAGE_SHARE * 1.0 for a, b in zip(times, times[1:]))
    # 200 iterations of 1 s: the writes and the validation are not training time
    assert run.clock.train_seconds() == pytest.approx(200.0)
    assert [d["page_seconds"] for _, d in page_writes] == [0.0, 1.0, 2.0, 3.0]
    seconds = {h[0]: h[3] for h in page_writes[-1][1]["history"]}
    assert seconds[100] == pytest.approx(100.0) and seconds[150] == pytest.approx(151.0)


def test_time_budget_is_wall_time_with_validation_included(make_run, clock):
    # 1 s iterations, a 4 s validation after iteration 3: at 7 s of wall time (3 of training)
    # a 7 s budget is spent; counted by the training clock, it is not
    for budget_clock, done in (("wall", True), ("training", False)):
        run = make_run(time_budget=7.0, budget_clock=budget_clock)
        run.begin(0, None)
        train_for(run, clock, 3, validate=(3,), eval_seconds=4.0)
        assert run.clock.train_seconds() == pytest.approx(3.0)
        assert run.finished(3) is done, budget_clock
        train_for(run, clock, 4, start=3)
        assert run.finished(7)  # 7 s of training: both clocks are past the budget


def test_eval_every_that_spends_most_of_the_budget_validating_is_noted_once(make_run, clock, capsys):
    # 0.1 s iterations, 2 s validations every 5 iterations: 2 / (2 + 0.5) = 80% of the time
    run = make_run(time_budget=60.0, eval_every=5)
    run.begin(0, None)
    train_for(run, clock, 15, seconds=0.1, validate=(5, 10, 15), eval_seconds=2.0)
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--eval-every 5" in notes[0] and "80%" in notes[0], notes
    # a validation that takes a small share draws no note
    quiet = make_run(time_budget=60.0, eval_every=50)
    quiet.begin(0, None)
    train_for(quiet, clock, 50, seconds=0.1, validate=(50,), eval_seconds=0.5)
    assert "note:" not in capsys.readouterr().out


def test_page_time_left_by_max_iters_or_budget(make_run, clock, page_writes):
    run = make_run(page="p.html", time_budget=50.0)
    run.begin(0, 100)
    train_for(run, clock, 12, seconds=2.0)  # 2 s per iteration: 88 more take 176 s
    left = page_writes[0][1]["left"]
    assert page_writes[0][1]["iter"] == 5  # 10 s of training
    assert left["by"] == "--time-budget" and left["seconds"] == pytest.approx(40.0)
    run2 = make_run(page="q.html")
    run2.begin(0, 100)
    train_for(run2, clock, 6, seconds=2.0)
    left = page_writes[-1][1]["left"]
    assert left["seconds"] == pytest.approx(95 * 2.0) and "95 more iterations" in left["by"]


def test_page_shows_the_samples_with_the_loss_around_them(make_run, clock, page_writes):
    run = make_run(page="p.html")
    run.begin(0, None)
    for k in range(12):
        if k % 5 == 0:
            run.report.print_sample(k, f"<b>sample</b> {k}")
        clock.now += 1.0
        run.report.trained(k, float(k))
        run.report.progress(k + 1, 10, lambda: "")
    run.finish(12)
    samples = page_writes[-1][1]["samples"]
    # the loss of a sample: the mean of the training losses since the one before, its own
    # iteration's included
    assert samples == [{"iter": 0, "text": "<b>sample</b> 0", "loss": 0.0},
                       {"iter": 5, "text": "<b>sample</b> 5", "loss": 3.0},
                       {"iter": 10, "text": "<b>sample</b> 10", "loss": 8.0}]
    assert run.meta()["history"]["samples"] == [{"iter": k, "text": f"<b>sample</b> {k}"}
                                                for k in (0, 5, 10)]


@pytest.mark.parametrize("how", ["interrupted", "diverged"])
def test_page_of_a_run_that_stops_no_longer_reloads(make_run, clock, page_writes, how, capsys):
    run = make_run(page="p.html")
    run.begin(0, None)
    train_for(run, clock, 3)
    if how == "interrupted":
        run.stop.signum = signal.SIGINT
        assert run.interrupted(3) == 130
        # the message says how to go on
        assert f"--resume {run.files.out} continues the run" in capsys.readouterr().err
    else:
        with pytest.raises(cli.UserError):
            run.check(float("nan"), "the loss", 3)
    (_, last), = page_writes
    assert not last["live"] and last["status"].startswith(
        "interrupted at iteration 3" if how == "interrupted" else "stopped at iteration 3")


def test_full_disk_for_the_page_warns_once_and_training_goes_on(trained, small_disk):
    trainer = copy_of(trained, small_disk.parent)
    fill(small_disk)
    r = run(trainer, ["corpus.txt", *TRAINERS[trainer], "--max-iters", "6", "--eval-every", "2",
                      "--page", "disk/p.html", "--out", "m.npz"], cwd=small_disk.parent)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "p.html" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: cannot save disk/p.html"), \
        r.stderr
    assert read_npz(small_disk.parent / "m.npz")[1][ITER_KEY[trainer]] == 6


# ----------------------------------------------------------------------------- run retention
# --out and its best are one pair, a run's; nothing a finished save wrote is lost to another run

G = "min_char_rnn.py"


def gist_run(tmp_path, seed, *extra, out="m.npz", iters=4):
    """A tiny min_char_rnn.py run on corpus.txt (validating every 2 iterations) -> its stdout."""
    if not (tmp_path / "corpus.txt").exists():
        write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    return run_ok(G, ["corpus.txt", *TRAINERS[G][:-2], "--seed", str(seed), "--eval-every", "2",
                      "--max-iters", str(iters), "--out", out, *extra], cwd=tmp_path).stdout


def seed_of(path):
    return read_npz(path)[1]["options"]["seed"]


@pytest.mark.slow
def test_a_best_without_its_out_is_kept_when_a_fresh_run_saves(tmp_path):
    gist_run(tmp_path, 1)
    best_a = (tmp_path / "m.best.npz").read_bytes()
    os.replace(tmp_path / "m.npz", tmp_path / "elsewhere.npz")  # A's model moved away by hand
    out = gist_run(tmp_path, 2)
    assert (tmp_path / "m.prev.best.npz").read_bytes() == best_a
    assert "kept the earlier run (" in out and "seed 1): m.best.npz as m.prev.best.npz" in out
    assert seed_of(tmp_path / "m.best.npz") == 2


@pytest.mark.slow
def test_a_run_that_never_validates_keeps_the_earlier_pair_together(tmp_path):
    gist_run(tmp_path, 1)
    a = {n: (tmp_path / n).read_bytes() for n in ("m.npz", "m.best.npz")}
    gist_run(tmp_path, 2, "--val-fraction", "0")  # B saves m.npz, never a best
    assert not (tmp_path / "m.best.npz").exists()
    assert (tmp_path / "m.prev.npz").read_bytes() == a["m.npz"]
    assert (tmp_path / "m.prev.best.npz").read_bytes() == a["m.best.npz"]
    b = (tmp_path / "m.npz").read_bytes()
    out = gist_run(tmp_path, 3)  # C: B's model goes to the next free names, A's pair stays
    assert (tmp_path / "m.prev2.npz").read_bytes() == b
    assert not (tmp_path / "m.prev2.best.npz").exists()
    assert (tmp_path / "m.prev.npz").read_bytes() == a["m.npz"]
    assert (tmp_path / "m.prev.best.npz").read_bytes() == a["m.best.npz"]
    assert "(4 iterations, seed 2): m.npz as m.prev2.npz" in out


@pytest.mark.slow
def test_a_best_left_by_a_killed_run_goes_to_free_names_not_over_the_earlier_pair(tmp_path):
    # what B leaves when it dies after its best's save: A's pair put aside, B's best alone
    gist_run(tmp_path, 1)
    a = {n: (tmp_path / n).read_bytes() for n in ("m.npz", "m.best.npz")}
    gist_run(tmp_path, 2, out="b.npz")
    os.replace(tmp_path / "m.npz", tmp_path / "m.prev.npz")
    os.replace(tmp_path / "m.best.npz", tmp_path / "m.prev.best.npz")
    shutil.copy(tmp_path / "b.best.npz", tmp_path / "m.best.npz")
    out = gist_run(tmp_path, 3)
    assert (tmp_path / "m.prev.npz").read_bytes() == a["m.npz"]
    assert (tmp_path / "m.prev.best.npz").read_bytes() == a["m.best.npz"]
    assert (tmp_path / "m.prev2.best.npz").read_bytes() == (tmp_path / "b.best.npz").read_bytes()
    assert "seed 2): m.best.npz as m.prev2.best.npz" in out


@pytest.mark.slow
def test_resume_into_another_runs_out_keeps_that_run(tmp_path):
    gist_run(tmp_path, 1)
    y = {n: (tmp_path / n).read_bytes() for n in ("m.npz", "m.best.npz")}
    gist_run(tmp_path, 2, out="x.npz")
    out = run_ok(G, ["--resume", "x.npz", "--max-iters", "6", "--out", "m.npz"], tmp_path).stdout
    assert (tmp_path / "m.prev.npz").read_bytes() == y["m.npz"]
    assert (tmp_path / "m.prev.best.npz").read_bytes() == y["m.best.npz"]
    assert "seed 1): m.npz as m.prev.npz and m.best.npz as m.prev.best.npz" in out
    # --out onto the resumed run's own best: that best is kept too
    best = (tmp_path / "x.best.npz").read_bytes()
    run_ok(G, ["--resume", "x.npz", "--max-iters", "8", "--out", "x.best.npz"], tmp_path)
    assert (tmp_path / "x.best.prev.npz").read_bytes() == best
    # resuming in place replaces the run's own files, as ever
    run_ok(G, ["--resume", "m.npz", "--max-iters", "10"], tmp_path)
    assert not (tmp_path / "m.prev2.npz").exists() and read_npz(tmp_path / "m.npz")[1]["n"] == 10


@pytest.mark.slow
def test_a_second_run_on_the_same_out_is_refused_while_the_first_lives(tmp_path):
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    first = start(G, ["corpus.txt", *TINY, "--seed", "1", "--out", "m.npz"], tmp_path)  # no limit
    try:
        wait_for(lambda: (tmp_path / "m.npz").exists(), first)
        r = run(G, ["corpus.txt", *TINY, "--seed", "2", "--max-iters", "2", "--out", "m.npz"],
                tmp_path)
        assert_error(r, 2, "another run is writing --out m.npz")
    finally:
        first.kill()  # kill -9: the kernel lets the lock go
        first.wait()
    gist_run(tmp_path, 3)  # the lock is free again; the killed run's model is kept
    assert seed_of(tmp_path / "m.prev.npz") == 1


@pytest.mark.slow
def test_a_fifo_page_or_out_is_refused_before_any_work(tmp_path):
    gist_run(tmp_path, 1)
    os.mkfifo(tmp_path / "p.html")
    os.mkfifo(tmp_path / "f.npz")
    r = run(G, ["corpus.txt", *TINY, "--max-iters", "2", "--page", "p.html", "--out", "n.npz"],
            tmp_path)
    assert_error(r, 2, "--page p.html is not a regular file")
    r = run(G, ["--resume", "m.npz", "--max-iters", "6", "--out", "f.npz"], tmp_path)
    assert_error(r, 2, "--out f.npz is a FIFO")


@pytest.mark.slow
def test_a_symlinked_out_keeps_its_targets_run_and_the_link_stays(tmp_path):
    gist_run(tmp_path, 1, out="real.npz")
    a = (tmp_path / "real.npz").read_bytes()
    os.symlink("real.npz", tmp_path / "m.npz")
    gist_run(tmp_path, 2)
    assert (tmp_path / "m.prev.npz").read_bytes() == a
    assert os.path.islink(tmp_path / "m.npz") and seed_of(tmp_path / "real.npz") == 2


@pytest.mark.slow
def test_a_socket_out_is_refused_before_training_on_resume(tmp_path):
    import socket
    gist_run(tmp_path, 1)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock.npz"))
        r = run(G, ["--resume", "m.npz", "--max-iters", "6", "--out", "sock.npz"], tmp_path)
    assert_error(r, 2, "--out sock.npz is neither a regular file")
    assert "iter" not in r.stdout  # no training happened


@pytest.mark.slow
def test_a_folder_at_the_prev_name_is_passed_over(tmp_path):
    gist_run(tmp_path, 1)
    (tmp_path / "m.prev.npz").mkdir()
    out = gist_run(tmp_path, 2)
    assert seed_of(tmp_path / "m.prev2.npz") == 1 and (tmp_path / "m.prev.npz").is_dir()
    assert "m.npz as m.prev2.npz" in out


def test_a_killed_writers_temporary_files_of_the_best_are_swept(tmp_path):
    stale = tmp_path / ".m.best.npz.999999999.abc.tmp"  # no process has this id
    stale.write_bytes(b"half a checkpoint")
    gist_run(tmp_path, 1)
    assert not stale.exists()


# The property: random sequences of fresh runs, resumes (in place or onto another run's names),
# runs killed at random moments (before a save, or between the moves of a first save), and
# files moved away by hand. Afterwards the last save each run finished at each path is on disk:
# there, or under a name a message gave (or where the person moved it).
RETENTION_SEQUENCES = 200


@pytest.mark.slow
def test_every_finished_save_survives_random_sequences_of_runs(tmp_path, monkeypatch, capsys):
    rng = random.Random(12)
    kills = 0
    monkeypatch.setattr(run_files, "tqdm", types.SimpleNamespace(write=print))
    for seq in range(RETENTION_SEQUENCES):
        folder = tmp_path / f"s{seq}"
        folder.mkdir()
        write_text(folder / "corpus.txt", "ab")
        latest = {}  # (run id, role) -> bytes of its last finished save
        moved_away = []  # files a person moved elsewhere: still on disk
        for step in range(rng.randint(2, 6)):
            out = str(folder / rng.choice(["m.npz", "m.npz", "m.npz", "x.npz", "m.best.npz"]))
            if rng.random() < 0.15 and os.path.exists(folder / "m.npz"):
                moved_away.append(str(folder / f"away{step}.npz"))
                os.replace(folder / "m.npz", moved_away[-1])
            resumable = [p for p in glob.glob(str(folder / "*.npz")) if os.path.isfile(p)]
            resume = rng.choice(resumable) if resumable and rng.random() < 0.4 else None
            args = argparse.Namespace(input=[str(folder / "corpus.txt")], out=out, resume=resume,
                                      init_from=None, log=None, page=None)
            meta = read_npz(resume)[1] if resume else None
            files = run_files.Checkpoints(args, (meta or {}).get("run_id") or f"run{seq}.{step}",
                                         resume)
            run_id = files.run_id
            n_saves = rng.randint(0, 4)
            die_at = rng.randint(0, n_saves + 1) if rng.random() < 0.3 else None
            for i in range(n_saves):
                path = rng.choice([files.out, files.best])
                body = {"format_version": 2, "kind": "min_char_rnn", "vocab": "ab", "n": i,
                        "options": {"seed": step}, "run_id": run_id, "save": f"{seq}.{step}.{i}"}
                if i == die_at and (files.kept or rng.random() < 0.5):
                    kills += 1  # kill -9 before this save
                    break
                if i == die_at:  # kill -9 inside the first save, after its first move
                    kills += 1
                    real_keep, calls = run_files.keep_file, []

                    def dying_keep(p, n):
                        if calls:
                            raise KeyboardInterrupt  # dead before the second move
                        calls.append(p)
                        real_keep(p, n)

                    monkeypatch.setattr(run_files, "keep_file", dying_keep)
                    try:
                        files.save(path, {"w": np.zeros(1)}, body)  # only one file to move
                    except KeyboardInterrupt:
                        break
                    finally:
                        monkeypatch.setattr(run_files, "keep_file", real_keep)
                else:
                    files.save(path, {"w": np.zeros(1)}, body)
                latest[(run_id, path)] = body["save"]  # a run's later save there replaces it
        on_disk = set()
        for p in glob.glob(str(folder / "*.npz")) + moved_away:
            if os.path.isfile(p):
                on_disk.add(read_npz(p)[1].get("save"))
        for (run_id, path), save in latest.items():
            assert save in on_disk, f"sequence {seq}: {run_id}'s last save to {path} is lost"
    print(f"\nretention property: {RETENTION_SEQUENCES} sequences, {kills} runs killed")


# ----------------------------------------------------------------------------- hostile inputs

def crafted(tmp_path, name, change):
    """A copy of a tiny trained checkpoint as `name`, its meta record changed by change(meta)."""
    if not (tmp_path / "m.npz").exists():
        gist_run(tmp_path, 1)
    arrays, meta = read_npz(tmp_path / "m.npz")
    change(meta)
    write_npz(tmp_path / name, arrays, meta)
    return name


@pytest.mark.slow
def test_a_lone_surrogate_never_breaks_a_page_or_a_printed_line(tmp_path):
    # in the page's data: its JSON escape, so the page is UTF-8
    html = live_page.LIVE.render({"title": "a\udcffb", "history": []})
    assert "a\\udcffb" in html and html.encode("utf-8")
    # in a sample text a checkpoint carries: refused on load, as in the vocabulary
    bad = crafted(tmp_path, "bad.npz", lambda m: m["history"]["samples"].append(
        {"iter": 1, "text": "x\ud800"}))
    assert_error(run("sample.py", [bad, "--length", "5"], tmp_path), 2, "is damaged", "history")
    # in file names that are not UTF-8: the run trains, prints them escaped, writes its page
    out, page_name = os.fsdecode(b"\xff.npz"), os.fsdecode(b"\xfe.html")
    r = subprocess.run([sys.executable, TRAIN, "corpus.txt", *TINY, "--max-iters", "4",
                        "--eval-every", "2", "--out", out, "--page", page_name], cwd=tmp_path,
                       capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    assert b"out=\\udcff.npz" in r.stdout
    assert page_payload((tmp_path / page_name).read_text(encoding="utf-8"))["title"] == out


@pytest.mark.slow
def test_visualize_with_a_nul_in_the_stored_input_name_is_one_line(tmp_path):
    def nul(meta):
        meta["input_files"][0]["name"] = "a\x00b.txt"
        meta["input"] = "a\x00b.txt"
    bad = crafted(tmp_path, "nul.npz", nul)
    assert_error(run("visualize.py", [bad], tmp_path), 2, "no text given")


@pytest.mark.slow
def test_a_character_device_is_refused_as_a_text_to_read_whole(tmp_path):
    gist_run(tmp_path, 1)
    assert_error(run(G, ["/dev/zero", *TINY, "--max-iters", "2", "--out", "z.npz"], tmp_path),
                 2, "/dev/zero is not a regular file")
    assert_error(run("visualize.py", ["m.npz", "/dev/zero"], tmp_path), 2, "not a regular file")


@pytest.mark.slow
def test_a_compressed_array_is_refused_before_it_is_inflated(tmp_path):
    gist_run(tmp_path, 1)
    arrays, meta = read_npz(tmp_path / "m.npz")
    with open(tmp_path / "bomb.npz", "wb") as f:  # 80 MB of zeros deflate to about 80 kB
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays,
                            extra=np.zeros(10 ** 7))
    assert os.path.getsize(tmp_path / "bomb.npz") < 10 ** 6
    assert_error(run("sample.py", ["bomb.npz", "--length", "5"], tmp_path), 2,
                 "bomb.npz is damaged", "compressed")


def test_a_literal_eos_word_is_refused_at_word_level(tmp_path):
    write_text(tmp_path / "w.txt", "a b c <eos> d\n" * 50)
    assert_error(run("rnnlm.py", ["w.txt", "--level", "word", "--max-iters", "2", "--seed", "0",
                                  "--out", "w.npz"], tmp_path), 2, "the text holds the word <eos>")


def test_early_stopping_says_why_on_the_final_page(tmp_path):
    write_text(tmp_path / "abc.txt", TRAIN_PART + VAL_PART)
    run_ok(G, ["abc.txt", *PATIENCE_RUNS[G], "--eval-every", "10", "--max-iters", "200",
               "--patience", "2", "--out", "p.npz", "--page", "p.html"], tmp_path)
    status = page_payload((tmp_path / "p.html").read_text(encoding="utf-8"))["status"]
    assert status == "stopped early after 30 iterations: 2 validations without a new best " \
                     "(--patience 2)"


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.slow
def test_a_resumed_run_gets_its_own_time_budget(trainer, tmp_path):
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    opts = [*TRAINERS[trainer], "--eval-every", "0", "--time-budget", "0.5"]
    run_ok(trainer, ["corpus.txt", *opts, "--out", "m.npz"], tmp_path)
    before = read_npz(tmp_path / "m.npz")[1][ITER_KEY[trainer]]
    run_ok(trainer, ["--resume", "m.npz", *opts[-2:]], tmp_path)
    assert read_npz(tmp_path / "m.npz")[1][ITER_KEY[trainer]] > before > 0


@pytest.mark.slow
def test_resuming_a_cosine_decay_over_the_time_budget_is_refused(tmp_path):
    write_text(tmp_path / "corpus.txt", GOOD_TEXT)
    run_ok("rnnlm.py", ["corpus.txt", *TRAINERS["rnnlm.py"], "--lr-decay", "cosine",
                        "--time-budget", "0.3", "--out", "c.npz"], tmp_path)
    before = (tmp_path / "c.npz").read_bytes()
    r = run("rnnlm.py", ["--resume", "c.npz", "--max-iters", "500"], tmp_path)
    assert_error(r, 2, "cannot continue", "--init-from c.npz")
    assert (tmp_path / "c.npz").read_bytes() == before


@pytest.mark.slow
def test_a_checkpoint_is_never_an_output_of_another_kind_even_with_force(tmp_path):
    gist_run(tmp_path, 1)
    shutil.copy(tmp_path / "m.npz", tmp_path / "other.npz")
    before = (tmp_path / "other.npz").read_bytes()
    common = ["corpus.txt", *TINY, "--max-iters", "2", "--out", "n.npz"]
    for option in ("--page", "--log"):
        for force in ([], ["--force"]):
            r = run(G, [*common, option, "other.npz", *force], tmp_path)
            assert_error(r, 2, f"{option} other.npz is a checkpoint")
    for option in ("--out", "--json"):
        r = run("visualize.py", ["m.npz", "--text", "1*2=2;", option, "other.npz", "--force",
                                 *(["--out", "v.html"] if option == "--json" else [])], tmp_path)
        assert_error(r, 2, f"{option} other.npz is a checkpoint")
    assert (tmp_path / "other.npz").read_bytes() == before


@pytest.mark.slow
def test_an_existing_file_not_this_outputs_own_is_kept_unless_force(tmp_path):
    gist_run(tmp_path, 1)
    write_text(tmp_path / "notes.html", "my notes\n")
    write_text(tmp_path / "notes.log", "my notes\n")
    common = ["corpus.txt", *TINY, "--max-iters", "2", "--eval-every", "1", "--out", "n.npz"]
    assert_error(run(G, [*common, "--page", "notes.html"], tmp_path), 2,
                 "--page notes.html exists and is not a page this tool wrote", "--force")
    assert_error(run(G, [*common, "--log", "notes.log"], tmp_path), 2, "is not a log")
    assert_error(run("visualize.py", ["m.npz", "--text", "1*2=2;", "--out", "notes.html"],
                     tmp_path), 2, "--out notes.html exists and is not a page")
    assert (tmp_path / "notes.html").read_text() == "my notes\n"
    # this output's own earlier version is replaced (a page) or appended to (a log) as ever
    run_ok(G, [*common, "--page", "p.html", "--log", "run.log"], tmp_path)
    run_ok(G, [*common, "--page", "p.html", "--log", "run.log"], tmp_path)
    assert len(read_log(tmp_path / "run.log")) >= 4
    run_ok("visualize.py", ["m.npz", "--text", "1*2=2;", "--out", "p.html"], tmp_path)
    # --force replaces another file
    run_ok(G, [*common, "--page", "notes.html", "--force"], tmp_path)
    assert page_payload((tmp_path / "notes.html").read_text(encoding="utf-8"))["iter"] == 2


@pytest.mark.slow
def test_an_array_the_kind_does_not_declare_is_refused(tmp_path):
    gist_run(tmp_path, 1)
    arrays, meta = read_npz(tmp_path / "m.npz")
    write_npz(tmp_path / "extra.npz", {**arrays, "payload": np.zeros(3)}, meta)
    assert_error(run("sample.py", ["extra.npz", "--length", "5"], tmp_path), 2,
                 "extra.npz is damaged", "'payload'")
    write_npz(tmp_path / "ok.npz", arrays, meta)  # the same arrays without it load
    run_ok("sample.py", ["ok.npz", "--length", "5", "--seed", "1"], tmp_path)
