"""Tests of common/gist.py: lossFun's gradients against central differences and against the
gist's own lossFun, B streams against single streams, the initial loss, the gradient buffer, the
clip, and the sampler (seeds, greedy limits, streams side by side)."""
import itertools
import math

import numpy as np
import pytest

from common import gist
from common import gist_reference
from conftest import PARAM_NAMES, central_difference, rel_error

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
