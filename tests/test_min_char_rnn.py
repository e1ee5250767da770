"""Tests of min_char_rnn.py: the gist's reference losses (through lossFun and through the
command line), gradient checks, batching, the sampler, and the trainer end to end
(checkpoints, resume exactness, errors, signals)."""
import itertools
import math
import os
import random
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from common import gist
from common import gist_reference
from common.checkpoint import load_checkpoint
from conftest import (CLI_TIMEOUT, GOOD_TEXT, PARAM_NAMES, ROOT, TINY, TRAIN,
                      assert_finite_checkpoint, central_difference, read_log, rel_error, run, start,
                      train_fails, wait_for, write_text)

SCRIPT = "min_char_rnn.py"
DEFAULT_CORPUS = os.path.join(ROOT, "data", "corpus.txt")

# Tolerances, each with where it comes from.
REF_RTOL = 1e-8        # the reference losses below are given to 10 decimals (~1e-11 relative);
                       # the gist and this code sum the same terms in other orders, ~1e-13 apart
GRAD_REL_ERR = 1e-6    # per-array ||ana - num|| / (||ana|| + ||num||): central differences with
                       # h = 1e-5 are exact to O(h^2) = 1e-10 plus rounding 1e-16 / h = 1e-11,
                       # relative to gradients of O(0.1): a real error is O(1)
BATCH_RTOL = 1e-12     # B streams vs B one-stream calls: same math, only the summation order
BATCH_ATOL = 1e-14     # differs (T*B terms of O(1), each rounding ~1e-16); atol for ~0 entries
INIT_LOSS_RTOL = 1e-3  # at the 0.01 init the logits are ~1e-3 (H = 100 terms of 1e-2 * 1e-2 *
                       # tanh ~1e-2, summed), so each p_t is 1/V to within ~1e-3 and the loss
                       # T ln V to within ~1e-4 relative; 1e-3 leaves a 10x margin
SAME_MATH_RTOL = 1e-12  # lossFun vs gist_reference.lossFun: one-hot products and an unshifted
SAME_MATH_ATOL = 1e-14  # softmax vs picked columns and a shifted one: only rounding (~1e-16 per
                        # term, ~T*H terms) differs; atol for entries that cancel to ~0

# Reference values: the original gist run under Python 3 with a sorted vocabulary (hidden size 100,
# T = 25, lr 0.1, np.random.seed(0) before drawing Wxh, Whh, Why, no validation split), on three
# corpora built by the expressions below; the loss lossFun returned at iteration n, as the
# project recorded them when it began. They check gist_reference.py and common/gist.py.
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


def random_params(rng, V, H, scale):
    """The gist's parameters drawn from rng at the given scale (separate arrays, float64)."""
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    return {name: rng.standard_normal(shape) * scale for name, shape in shapes.items()}


def grads_of(result):
    """lossFun's result -> dict of copied gradients (they may be views of one reused buffer)."""
    return {name: np.array(g) for name, g in zip(PARAM_NAMES, result[1:6])}


def take(generator, n):
    """The first n steps of sample()'s generator -> (K, n) ints."""
    return np.stack(list(itertools.islice(generator, n)), axis=1)


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


# ----------------------------------------------------------------------------- lossFun

@pytest.mark.parametrize("B", [1, 3])
def test_gradients_match_central_differences(B):
    V, H, T = 7, 5, 4
    rng = np.random.default_rng(1234 + B)
    # weights of scale 0.5 keep every element's rounding error far below the tolerance
    params = random_params(rng, V, H, scale=0.5)
    inputs = rng.integers(0, V, size=(B, T))
    targets = rng.integers(0, V, size=(B, T))
    hprev = np.tanh(rng.standard_normal((H, B)))  # (H, B)
    if B == 1:  # one stream is given as the gist gives it: lists of T ints, hprev (H, 1)
        inputs, targets = inputs[0].tolist(), targets[0].tolist()
    grads_ana = grads_of(gist.lossFun(inputs, targets, hprev, params, clip=None))
    for name in PARAM_NAMES:
        grad_num = central_difference(
            lambda: gist.lossFun(inputs, targets, hprev, params, clip=None)[0], params[name])
        assert grads_ana[name].shape == grad_num.shape, name
        err = rel_error(grads_ana[name], grad_num)
        assert err < GRAD_REL_ERR, f"d{name}: relative error {err:.3g}, " \
                                   f"max diff {np.abs(grads_ana[name] - grad_num).max():.3g}"


@pytest.mark.parametrize("clip", [None, 5.0])
def test_lossFun_equals_the_gists_lossFun(clip):
    """One stream through min_char_rnn.lossFun and through gist_reference.lossFun (the gist's
    one-hot column vectors): the same loss, gradients (raw, and with the gist's +-5 clip: weights
    of scale 2 and T = 40 make some gradients exceed 5; scale 0.5 and T = 6 keep all below)
    and last state."""
    V, H, T = 7, 5, 40 if clip else 6
    rng = np.random.default_rng(31)
    params = random_params(rng, V, H, scale=2.0 if clip else 0.5)
    inputs = rng.integers(0, V, size=T).tolist()
    targets = rng.integers(0, V, size=T).tolist()
    hprev = np.tanh(rng.standard_normal((H, 1)))  # (H, 1)
    mine = gist.lossFun(inputs, targets, hprev, params, clip=clip)
    ref = gist_reference.lossFun(inputs, targets, hprev, *(params[n] for n in PARAM_NAMES))
    assert mine[0] == pytest.approx(ref[0], rel=SAME_MATH_RTOL)
    ref_grads = dict(zip(PARAM_NAMES, ref[1:6]))
    if clip is None:  # the reference always clips: compare where it did not cut
        assert max(np.abs(g).max() for g in ref_grads.values()) < 5
    else:
        assert max(np.abs(g).max() for g in grads_of(mine).values()) == 5
    for name, g in grads_of(mine).items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=SAME_MATH_RTOL, atol=SAME_MATH_ATOL,
                                   err_msg=f"d{name}")
    np.testing.assert_allclose(mine[6], ref[6], rtol=SAME_MATH_RTOL, atol=SAME_MATH_ATOL)


def test_batch_equals_mean_of_single_streams():
    V, H, T, B = 7, 5, 4, 3
    rng = np.random.default_rng(7)
    params = random_params(rng, V, H, scale=0.5)
    inputs = rng.integers(0, V, size=(B, T))
    targets = rng.integers(0, V, size=(B, T))
    hprev = np.tanh(rng.standard_normal((H, B)))  # (H, B)
    result_batch = gist.lossFun(inputs, targets, hprev, params, clip=None)
    loss_batch, grads_batch, hlast_batch = result_batch[0], grads_of(result_batch), result_batch[6]
    assert hlast_batch.shape == (H, B)
    losses_single, grads_single = [], {name: [] for name in PARAM_NAMES}
    for b in range(B):
        result = gist.lossFun(inputs[b], targets[b], hprev[:, b:b + 1], params, clip=None)
        losses_single.append(result[0])
        for name, g in grads_of(result).items():
            grads_single[name].append(g)
        assert result[6].shape == (H, 1)
        np.testing.assert_allclose(hlast_batch[:, b:b + 1], result[6], rtol=BATCH_RTOL,
                                   atol=BATCH_ATOL, err_msg=f"hlast of stream {b}")
    assert loss_batch == pytest.approx(np.mean(losses_single), rel=BATCH_RTOL)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(grads_batch[name], np.mean(grads_single[name], axis=0),
                                   rtol=BATCH_RTOL, atol=BATCH_ATOL, err_msg=f"d{name}")


def test_initial_loss_is_T_ln_V():
    V, H, T = 13, 100, 25
    rng = np.random.default_rng(3)
    params = gist.init_params(V, H, 0)
    inputs = rng.integers(0, V, size=T).tolist()
    targets = rng.integers(0, V, size=T).tolist()
    loss = gist.lossFun(inputs, targets, np.zeros((H, 1)), params)[0]
    assert loss == pytest.approx(T * math.log(V), rel=INIT_LOSS_RTOL)


def test_init_params_shapes_and_gist_draws():
    V, H = 7, 5
    params = gist.init_params(V, H, 42)
    rs = np.random.RandomState(42)  # the gist: np.random.seed(42), then Wxh, Whh, Why
    assert np.array_equal(params["Wxh"], rs.randn(H, V) * 0.01)
    assert np.array_equal(params["Whh"], rs.randn(H, H) * 0.01)
    assert np.array_equal(params["Why"], rs.randn(V, H) * 0.01)
    assert params["bh"].shape == (H, 1) and not params["bh"].any()
    assert params["by"].shape == (V, 1) and not params["by"].any()


def test_grads_buffer_reused_holds_the_same_gradients_as_fresh_arrays():
    V, H, T = 7, 5, 4
    rng = np.random.default_rng(12)
    params = random_params(rng, V, H, scale=0.5)
    out = gist.Params(V, H)  # one buffer, as the training loop passes it, call after call
    for B in (1, 3, 1):  # the same buffer for other stream counts: shapes must not leak
        inputs, targets = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))
        hprev = np.tanh(rng.standard_normal((H, B)))  # (H, B)
        fresh = grads_of(gist.lossFun(inputs, targets, hprev, params))
        result = gist.lossFun(inputs, targets, hprev, params, grads=out)
        for name, g in zip(PARAM_NAMES, result[1:6]):
            assert np.shares_memory(g, out.flat), name
            assert np.array_equal(g, fresh[name]), name


def test_clip_is_elementwise_np_clip_of_raw_gradients():
    V, H, T = 7, 5, 30
    rng = np.random.default_rng(11)
    params = random_params(rng, V, H, scale=1.0)
    inputs = rng.integers(0, V, size=T)
    targets = np.zeros(T, dtype=int)  # one target everywhere makes dby[0] about -T(1 - p0)
    hprev = np.zeros((H, 1))
    grads_raw = grads_of(gist.lossFun(inputs, targets, hprev, params, clip=None))
    grads_clip = grads_of(gist.lossFun(inputs, targets, hprev, params, clip=5.0))
    assert max(np.abs(g).max() for g in grads_raw.values()) > 5, "test needs gradients beyond 5"
    for name in PARAM_NAMES:
        assert np.abs(grads_clip[name]).max() <= 5, name
        assert np.array_equal(grads_clip[name], np.clip(grads_raw[name], -5, 5)), name


def test_loss_is_finite_for_huge_logits():
    V, H, T = 7, 5, 4
    rng = np.random.default_rng(5)
    params = random_params(rng, V, H, scale=0.5)
    params["Why"] *= 1e4
    params["by"] *= 1e3
    inputs = rng.integers(0, V, size=T).tolist()
    targets = rng.integers(0, V, size=T).tolist()
    hprev = np.zeros((H, 1))
    # reference forward pass written here, one step at a time, with a stable log-sum-exp
    h, loss_ref, gist_overflows = hprev, 0.0, False
    for x, y_target in zip(inputs, targets):
        h = np.tanh(params["Wxh"][:, [x]] + params["Whh"] @ h + params["bh"])  # (H, 1)
        y = (params["Why"] @ h + params["by"])[:, 0]  # (V,)
        loss_ref += np.logaddexp.reduce(y) - y[y_target]
        with np.errstate(over="ignore"):
            gist_overflows |= not np.isfinite(np.exp(y)).all()  # the gist's unshifted softmax
    assert gist_overflows, "the weights should be large enough to overflow the gist's softmax"
    result = gist.lossFun(inputs, targets, hprev, params)
    assert math.isfinite(result[0])
    assert result[0] == pytest.approx(loss_ref, rel=1e-12)  # same sum, other order of rounding
    assert all(np.isfinite(g).all() for g in result[1:])


# ----------------------------------------------------------------------------- sampling

def greedy_reference(params, h, seed_ix, n):
    """Greedy decoding written out: h = tanh(Wxh x + Whh h + bh), y = Why h + by, argmax."""
    ixes, ix = [], seed_ix
    for _ in range(n):
        h = np.tanh(params["Wxh"][:, [ix]] + params["Whh"] @ h + params["bh"])  # (H, 1)
        y = params["Why"] @ h + params["by"]  # (V, 1)
        ix = int(np.argmax(y))
        ixes.append(ix)
    return np.array(ixes)


def test_sample_same_seed_same_characters():
    V, H, n = 7, 5, 40
    params = random_params(np.random.default_rng(21), V, H, scale=0.5)
    h = np.zeros((H, 1))
    ixes_1 = take(gist.sample(params, h, [3], np.random.default_rng(99)), n)
    ixes_2 = take(gist.sample(params, h, [3], np.random.default_rng(99)), n)
    assert ixes_1.shape == (1, n)
    assert np.array_equal(ixes_1, ixes_2)
    assert len(set(ixes_1[0].tolist())) > 1  # at temperature 1 it does not just repeat


def test_sample_temperature_zero_and_top_k_one_are_greedy():
    V, H, n = 7, 5, 30
    rng = np.random.default_rng(22)
    params = random_params(rng, V, H, scale=0.5)
    h = np.tanh(rng.standard_normal((H, 1)))  # (H, 1)
    ixes_ref = greedy_reference(params, h, 2, n)
    ixes_t0 = take(gist.sample(params, h, [2], np.random.default_rng(0), temperature=0), n)
    ixes_k1 = take(gist.sample(params, h, [2], np.random.default_rng(0), top_k=1), n)
    assert np.array_equal(ixes_t0[0], ixes_ref)
    assert np.array_equal(ixes_k1[0], ixes_ref)


@pytest.mark.parametrize("H", [5, 512])
def test_sample_streams_side_by_side_equal_single_streams(H):
    # 3 streams multiply by [Whh^T | Why^T] as a matrix product, one stream as a matrix-vector
    # product: at H = 512 their sums run in other orders, ~1e-14 apart, far below the logits' gaps
    # at this scale (no tie decides the greedy choice)
    V, n, K = 7, 30, 3
    rng = np.random.default_rng(23)
    params = random_params(rng, V, H, scale=0.5)
    h = np.tanh(rng.standard_normal((H, K)))  # (H, K)
    h_before = h.copy()
    seeds = [0, 4, 6]
    ixes_k = take(gist.sample(params, h, seeds, np.random.default_rng(0), temperature=0), n)
    assert ixes_k.shape == (K, n)
    assert np.array_equal(h, h_before), "sample() must not modify h"
    for k in range(K):
        ixes_one = take(gist.sample(params, h[:, k:k + 1], [seeds[k]], np.random.default_rng(0),
                                   temperature=0), n)
        assert np.array_equal(ixes_k[k], ixes_one[0]), f"stream {k}"


# ----------------------------------------------------------------------------- end to end

def test_smoke_run_on_default_corpus(tmp_path):
    if not os.path.exists(DEFAULT_CORPUS):
        pytest.skip("data/corpus.txt not generated yet (python data/make_corpus.py)")
    out = tmp_path / "ckpt" / "smoke.npz"
    result = run(SCRIPT, ["--max-iters", "20", "--out", out, "--sample-every", "10",
                      "--eval-max-chars", "5000"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "iter 0, loss:" in result.stdout  # the gist's progress line
    arrays, meta = load(out)
    assert meta["n"] == 20 and meta["input"] == os.path.abspath(DEFAULT_CORPUS)
    assert arrays["Wxh"].shape == (100, len(meta["vocab"]))


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


def test_dWxh_for_a_large_vocabulary_matches_numerical_gradient():
    # Above V = 256 lossFun sums dWxh by sorting the steps instead of the one-hot product the
    # other gradient checks cover. Only columns of characters that occur can be non-zero, so the
    # check runs on those (numerically, as above) and asserts every other column is exactly 0.
    rng = np.random.default_rng(11)
    V, H, B, T = 300, 4, 2, 6
    params = {"Wxh": rng.normal(0, 0.5, (H, V)), "Whh": rng.normal(0, 0.5, (H, H)),
              "Why": rng.normal(0, 0.5, (V, H)), "bh": rng.normal(0, 0.5, (H, 1)),
              "by": rng.normal(0, 0.5, (V, 1))}
    inputs = rng.integers(0, V, size=(B, T))
    inputs[1, 3] = inputs[0, 1]  # a repeated input: its two contributions must add up
    targets = rng.integers(0, V, size=(B, T))
    hprev = rng.normal(0, 0.5, (H, B))
    dWxh_ana = gist.lossFun(inputs, targets, hprev, params, clip=None)[1].copy()
    used = np.unique(inputs)
    unused = np.setdiff1d(np.arange(V), used)
    assert np.all(dWxh_ana[:, unused] == 0)
    a = dWxh_ana[:, used]
    n = np.concatenate([  # column by column: a slice is a view that central_difference perturbs
        central_difference(lambda: gist.lossFun(inputs, targets, hprev, params, clip=None)[0],
                           params["Wxh"][:, col:col + 1]) for col in used], axis=1)  # (H, used)
    rel = rel_error(a, n)
    assert rel < GRAD_REL_ERR, f"dWxh relative error {rel:.3e}"


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
