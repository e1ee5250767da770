"""Tests for common/time_layers.py, the book's plain layers: central-difference gradient checks of
every layer, state handling, the layer contract (grads in place, backward repeatable, dtype kept)
and the loss by hand. tests/test_fast_layers.py runs the contract on the fast twins too."""

import numpy as np

from conftest import central_difference, rel_error
from common import time_layers
from common.time_layers import (RNN, LSTM, GRU, TimeAffine, TimeDropout, TimeEmbedding, TimeGRU,
                                TimeLSTM, TimeRNN, TimeSoftmaxWithLoss)

# per-array relative error ||a - n|| / (||a|| + ||n||) of analytic vs central differences (step
# conftest.GRAD_STEP = 1e-5): truncation O(h^2) ~ 1e-10 and rounding ~1e-16 / h ~ 1e-11 against
# gradients of order 1 (WEIGHT_SCALE below) give ~1e-9 at most; a real error is O(1). Bound 1e-6.
REL_TOL = 1e-6
# two float64 code paths with the same math (Time* vs a loop of single steps) on values of order 1:
# only BLAS summation order differs, a few ulps (~1e-16 each); 1e-12 absolute leaves a wide margin
SAME_MATH_TOL = 1e-12
# float32 vs float64 forward on the same inputs: float32's epsilon is 1.2e-7, and values of order
# 1 pass through a few dozen roundings per step and T steps of recurrence; 1e-3 bounds that with
# a wide margin while a wrong formula differs at order 1
FLOAT32_TOL = 1e-3
# weights of scale 0.5 give gradients of order 1; the small init (0.01) gives near-zero gradients
# whose difference quotients are dominated by rounding, which would need a looser bound
WEIGHT_SCALE = 0.5


def assert_grad(name, ana, num):
    err = rel_error(ana, num)
    assert err < REL_TOL, f"{name}: relative error {err:.2e}, maxdiff {np.abs(ana - num).max():.2e}"


def weights(rng, *shape):
    return WEIGHT_SCALE * rng.standard_normal(shape)


def check_params(layer, loss):
    """Grad-check every parameter of layer; layer.grads must already hold the analytic gradients."""
    ana = [g.copy() for g in layer.grads]
    for k, (p, g_ana) in enumerate(zip(layer.params, ana)):
        assert_grad(f"{type(layer).__name__} param {k}", g_ana, central_difference(loss, p))


# ---------------------------------------------------------------------------------------------
# single steps


def test_rnn_step_gradients():
    rng = np.random.default_rng(0)
    N, D, H = 2, 4, 5
    layer = RNN(weights(rng, D, H), weights(rng, H, H), weights(rng, H))
    x, h_prev, dh_next = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    loss = lambda: np.sum(layer.forward(x, h_prev) * dh_next)
    layer.forward(x, h_prev)
    dx_ana, dh_prev_ana = layer.backward(dh_next)
    check_params(layer, loss)
    assert_grad("dx", dx_ana, central_difference(loss, x))
    assert_grad("dh_prev", dh_prev_ana, central_difference(loss, h_prev))


def test_lstm_step_gradients():
    rng = np.random.default_rng(1)
    N, D, H = 3, 2, 4
    layer = LSTM(weights(rng, D, 4 * H), weights(rng, H, 4 * H), weights(rng, 4 * H))
    x, h_prev, c_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    dh_next, dc_next = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def loss():
        h_next, c_next = layer.forward(x, h_prev, c_prev)
        return np.sum(h_next * dh_next) + np.sum(c_next * dc_next)

    layer.forward(x, h_prev, c_prev)
    dx_ana, dh_prev_ana, dc_prev_ana = layer.backward(dh_next, dc_next)
    check_params(layer, loss)
    assert_grad("dx", dx_ana, central_difference(loss, x))
    assert_grad("dh_prev", dh_prev_ana, central_difference(loss, h_prev))
    assert_grad("dc_prev", dc_prev_ana, central_difference(loss, c_prev))


def test_gru_step_gradients():
    rng = np.random.default_rng(2)
    N, D, H = 4, 3, 2
    layer = GRU(weights(rng, D, 3 * H), weights(rng, H, 3 * H), weights(rng, 3 * H))
    x, h_prev, dh_next = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    loss = lambda: np.sum(layer.forward(x, h_prev) * dh_next)
    layer.forward(x, h_prev)
    dx_ana, dh_prev_ana = layer.backward(dh_next)
    check_params(layer, loss)
    assert_grad("dx", dx_ana, central_difference(loss, x))
    assert_grad("dh_prev", dh_prev_ana, central_difference(loss, h_prev))


# ---------------------------------------------------------------------------------------------
# Time recurrent layers: gradients with a non-zero initial state, including dh (and dc)

# (class, gates per hidden unit) for the three recurrent layers
RECURRENT = [(TimeRNN, 1), (TimeLSTM, 4), (TimeGRU, 3)]


def make_recurrent(cls, gates, rng, D, H, stateful):
    return cls(weights(rng, D, gates * H), weights(rng, H, gates * H), weights(rng, gates * H), stateful=stateful)


def test_time_recurrent_gradients_stateless():
    for seed, (cls, gates) in enumerate(RECURRENT):
        rng = np.random.default_rng(10 + seed)
        N, T, D, H = 2, 3, 4, 5
        layer = make_recurrent(cls, gates, rng, D, H, stateful=False)
        xs, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
        loss = lambda: np.sum(layer.forward(xs) * dhs)
        layer.forward(xs)
        dxs_ana = layer.backward(dhs)
        check_params(layer, loss)
        assert_grad(f"{cls.__name__} dxs", dxs_ana, central_difference(loss, xs))
        assert layer.dh.shape == (N, H)  # gradient w.r.t. the zero initial state


def test_time_recurrent_gradients_stateful_initial_state():
    for seed, (cls, gates) in enumerate(RECURRENT):
        rng = np.random.default_rng(20 + seed)
        N, T, D, H = 3, 4, 2, 5
        layer = make_recurrent(cls, gates, rng, D, H, stateful=True)
        xs, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
        h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))

        def loss():
            # every evaluation restarts from the same (h0, c0), since stateful forward moves the state
            layer.set_state(h0, c0) if cls is TimeLSTM else layer.set_state(h0)
            return np.sum(layer.forward(xs) * dhs)

        loss()
        dxs_ana = layer.backward(dhs)
        dh_ana = layer.dh.copy()
        dc_ana = layer.dc.copy() if cls is TimeLSTM else None
        check_params(layer, loss)
        assert_grad(f"{cls.__name__} dxs", dxs_ana, central_difference(loss, xs))
        assert_grad(f"{cls.__name__} dh", dh_ana, central_difference(loss, h0))
        if cls is TimeLSTM:
            assert_grad("TimeLSTM dc", dc_ana, central_difference(loss, c0))


def test_time_recurrent_state_carries_over():
    for seed, (cls, gates) in enumerate(RECURRENT):
        rng = np.random.default_rng(30 + seed)
        N, T, D, H = 2, 5, 3, 4
        layer = make_recurrent(cls, gates, rng, D, H, stateful=True)
        xs = rng.standard_normal((N, 2 * T, D))
        h0 = rng.standard_normal((N, H))
        layer.set_state(h0)
        hs_whole = layer.forward(xs)
        # two blocks of T steps, stateful: the second starts where the first ended
        layer.set_state(h0)
        hs_first = layer.forward(xs[:, :T])
        assert np.array_equal(layer.h, hs_first[:, -1])
        hs_second = layer.forward(xs[:, T:])
        np.testing.assert_allclose(np.concatenate([hs_first, hs_second], axis=1), hs_whole,
                                   rtol=0, atol=SAME_MATH_TOL)
        # reset_state and stateless layers start each block from zeros
        layer.reset_state()
        hs_zero = layer.forward(xs[:, T:])
        stateless = cls(*layer.params, stateful=False)
        stateless.forward(xs[:, :T])
        np.testing.assert_array_equal(stateless.forward(xs[:, T:]), hs_zero)
        assert not np.allclose(hs_zero, hs_second)


def test_time_rnn_equals_rnn_steps():
    rng = np.random.default_rng(40)
    N, T, D, H = 3, 4, 5, 2
    Wx, Wh, b = weights(rng, D, H), weights(rng, H, H), weights(rng, H)
    xs, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    time_rnn = TimeRNN(Wx, Wh, b, stateful=True)
    time_rnn.set_state(h0)
    hs = time_rnn.forward(xs)
    step, h = RNN(Wx, Wh, b), h0
    for t in range(T):
        h = step.forward(xs[:, t], h)
        np.testing.assert_allclose(hs[:, t], h, rtol=0, atol=SAME_MATH_TOL)


def test_time_lstm_and_gru_equal_their_steps():
    rng = np.random.default_rng(41)
    N, T, D, H = 2, 3, 4, 5
    xs, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    lstm_params = [weights(rng, D, 4 * H), weights(rng, H, 4 * H), weights(rng, 4 * H)]
    time_lstm = TimeLSTM(*lstm_params, stateful=True)
    time_lstm.set_state(h0, c0)
    hs = time_lstm.forward(xs)
    step, h, c = LSTM(*lstm_params), h0, c0
    for t in range(T):
        h, c = step.forward(xs[:, t], h, c)
        np.testing.assert_allclose(hs[:, t], h, rtol=0, atol=SAME_MATH_TOL)
    np.testing.assert_allclose(time_lstm.c, c, rtol=0, atol=SAME_MATH_TOL)

    gru_params = [weights(rng, D, 3 * H), weights(rng, H, 3 * H), weights(rng, 3 * H)]
    time_gru = TimeGRU(*gru_params, stateful=True)
    time_gru.set_state(h0)
    hs = time_gru.forward(xs)
    step, h = GRU(*gru_params), h0
    for t in range(T):
        h = step.forward(xs[:, t], h)
        np.testing.assert_allclose(hs[:, t], h, rtol=0, atol=SAME_MATH_TOL)


# ---------------------------------------------------------------------------------------------
# embedding, affine, loss, dropout


def test_embedding_gradients_with_repeated_ids():
    rng = np.random.default_rng(50)
    N, T, V, D = 4, 3, 7, 2
    ids = np.array([[1, 3, 1], [6, 1, 0], [3, 3, 2], [0, 6, 1]])  # (N, T) ids 1 and 3 repeat
    layer = TimeEmbedding(weights(rng, V, D))
    dout = rng.standard_normal((N, T, D))
    loss = lambda: np.sum(layer.forward(ids) * dout)
    layer.forward(ids)
    assert layer.backward(dout) is None
    check_params(layer, loss)
    # by hand: row v of dW is the sum of dout over the positions holding v; unused ids get zero
    dW_hand = np.zeros((V, D))
    for n in range(N):
        for t in range(T):
            dW_hand[ids[n, t]] += dout[n, t]
    np.testing.assert_allclose(layer.grads[0], dW_hand, rtol=0, atol=SAME_MATH_TOL)
    assert np.all(layer.grads[0][[4, 5]] == 0)


def test_affine_gradients():
    rng = np.random.default_rng(60)
    N, T, D, M = 2, 3, 4, 5
    layer = TimeAffine(weights(rng, D, M), weights(rng, M))
    xs, dout = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, M))
    loss = lambda: np.sum(layer.forward(xs) * dout)
    layer.forward(xs)
    dxs_ana = layer.backward(dout)
    check_params(layer, loss)
    assert_grad("TimeAffine dxs", dxs_ana, central_difference(loss, xs))


def test_softmax_with_loss_gradients_and_ignore_label():
    rng = np.random.default_rng(70)
    N, T, V = 2, 3, 7
    xs = 2 * rng.standard_normal((N, T, V))
    ts = np.array([[3, -1, 0], [6, 6, -1]])  # (N, T) two ignored positions
    layer = TimeSoftmaxWithLoss()
    loss = layer.forward(xs, ts)
    # by hand, position by position, over the four counted positions only
    terms = [-np.log(np.exp(xs[n, t, ts[n, t]]) / np.exp(xs[n, t]).sum())
             for n in range(N) for t in range(T) if ts[n, t] != -1]
    np.testing.assert_allclose(loss, sum(terms) / 4, rtol=SAME_MATH_TOL)
    # gradient: numerical w.r.t. xs; ignored positions get exactly zero
    dxs_ana = layer.backward()
    assert_grad("TimeSoftmaxWithLoss dxs", dxs_ana, central_difference(lambda: layer.forward(xs, ts), xs))
    assert np.all(dxs_ana[0, 1] == 0) and np.all(dxs_ana[1, 2] == 0)
    # dout scales the gradient
    layer.forward(xs, ts)
    np.testing.assert_allclose(layer.backward(2.5), 2.5 * dxs_ana, rtol=SAME_MATH_TOL)
    # huge scores: the max subtraction keeps it finite and shift-invariant
    np.testing.assert_allclose(layer.forward(xs + 1e4, ts), loss, rtol=1e-9)
    # every position ignored: loss 0, gradient 0
    assert layer.forward(xs, np.full((N, T), -1)) == 0
    assert np.all(layer.backward() == 0)


def test_dropout_fixed_mask_and_eval_mode():
    rng = np.random.default_rng(80)
    N, T, H = 2, 3, 4
    xs, dout = rng.standard_normal((N, T, H)), rng.standard_normal((N, T, H))
    keep = rng.random((N, T, H)) < 0.6  # (N, T, H)
    layer = TimeDropout(ratio=0.25)
    layer.set_mask(keep)
    np.testing.assert_allclose(layer.forward(xs), xs * keep / 0.75, rtol=SAME_MATH_TOL)
    np.testing.assert_allclose(layer.backward(dout), dout * keep / 0.75, rtol=SAME_MATH_TOL)
    loss = lambda: np.sum(layer.forward(xs) * dout)
    assert_grad("TimeDropout dxs", layer.backward(dout), central_difference(loss, xs))
    # evaluation: the identity both ways
    layer.train_flg = False
    assert np.array_equal(layer.forward(xs), xs) and np.array_equal(layer.backward(dout), dout)
    # masks from a passed-in Generator: same seed, same mask; keep rate near 1 - ratio
    a, b = TimeDropout(0.25, np.random.default_rng(5)), TimeDropout(0.25, np.random.default_rng(5))
    big = np.ones((50, 40, 10))
    out_a = a.forward(big)
    assert np.array_equal(out_a, b.forward(big))
    assert abs((out_a != 0).mean() - 0.75) < 0.02 and set(np.unique(out_a)) == {0, 1 / 0.75}


# ---------------------------------------------------------------------------------------------
# the layer contract


def build_all(rng, dtype, layers=time_layers):
    """Every Time layer of the module `layers` (the recurrent ones and the embedding from it, the
    rest from time_layers) with small random weights in dtype -> name -> (layer, inputs, dout)."""
    N, T, D, H, V = 2, 3, 4, 5, 7
    xs = rng.standard_normal((N, T, D)).astype(dtype)
    dhs = rng.standard_normal((N, T, H)).astype(dtype)
    ids = rng.integers(0, V, (N, T))
    w = lambda *shape: weights(rng, *shape).astype(dtype)
    dropout = TimeDropout(0.5, np.random.default_rng(3))
    dropout.set_mask(rng.random((N, T, D)) < 0.5)
    cases = {
        "TimeRNN": (layers.TimeRNN(w(D, H), w(H, H), w(H)), (xs,), dhs),
        "TimeLSTM": (layers.TimeLSTM(w(D, 4 * H), w(H, 4 * H), w(4 * H)), (xs,), dhs),
        "TimeGRU": (layers.TimeGRU(w(D, 3 * H), w(H, 3 * H), w(3 * H)), (xs,), dhs),
        "TimeAffine": (TimeAffine(w(D, H), w(H)), (xs,), dhs),
        "TimeEmbedding": (layers.TimeEmbedding(w(V, D)), (ids,), xs),
        "TimeSoftmaxWithLoss": (TimeSoftmaxWithLoss(), (xs, np.where(ids % 3 == 0, -1, ids % D)), 1),
        "TimeDropout": (dropout, (xs,), xs),
    }
    return cases


def cached_arrays(layer):
    """Every array forward left for backward (cache, x2, ids, idx, mask; a Time layer's step
    layers' too), copied."""
    out = []
    for key in ("cache", "x2", "ids", "idx", "mask"):
        value = getattr(layer, key, None)
        for v in value if isinstance(value, tuple) else [value]:
            if isinstance(v, np.ndarray):
                out.append(v.copy())
    for step in getattr(layer, "layers", None) or []:
        out += cached_arrays(step)
    return out


def check_layer_contract(layers):
    """Backward twice gives the same result, leaves forward's cache as it was and writes the
    very grads arrays, for every layer build_all makes from the module `layers`."""
    for name, (layer, inputs, dout) in build_all(np.random.default_rng(90), np.float64, layers).items():
        layer.forward(*inputs)
        grads_before = list(layer.grads)  # the array objects themselves, not copies
        cache_before = cached_arrays(layer)
        d1 = layer.backward(dout)
        g1 = [g.copy() for g in layer.grads]
        d2 = layer.backward(dout)
        assert all(a is b for a, b in zip(grads_before, layer.grads)), f"{name}: grads replaced"
        assert (d1 is None and d2 is None) or np.array_equal(d1, d2), f"{name}: dxs differ"
        assert all(np.array_equal(a, b) for a, b in zip(g1, layer.grads)), f"{name}: grads differ"
        cache_after = cached_arrays(layer)
        assert len(cache_before) == len(cache_after) > 0, name
        assert all(np.array_equal(a, b) for a, b in zip(cache_before, cache_after)), f"{name}: cache"


def check_float32(layers):
    """float32 keeps its dtype through every layer build_all makes from the module `layers`, and
    matches float64 to FLOAT32_TOL."""
    runs = {}
    for dtype in (np.float32, np.float64):
        runs[dtype] = {}
        for name, (layer, inputs, dout) in build_all(np.random.default_rng(95), dtype, layers).items():
            out = layer.forward(*inputs)
            d = layer.backward(dout)
            runs[dtype][name] = (out, d, [g.copy() for g in layer.grads])
            if dtype is np.float32:
                assert np.asarray(out).dtype == np.float32, f"{name} forward {np.asarray(out).dtype}"
                assert d is None or d.dtype == np.float32, f"{name} backward {d.dtype}"
                assert all(g.dtype == np.float32 for g in layer.grads), f"{name} grads"
    for name, (out32, d32, g32) in runs[np.float32].items():
        out64, d64, g64 = runs[np.float64][name]
        np.testing.assert_allclose(out32, out64, rtol=FLOAT32_TOL, atol=FLOAT32_TOL, err_msg=name)
        if d32 is not None:
            np.testing.assert_allclose(d32, d64, rtol=FLOAT32_TOL, atol=FLOAT32_TOL, err_msg=name)
        for a, b in zip(g32, g64):
            np.testing.assert_allclose(a, b, rtol=FLOAT32_TOL, atol=FLOAT32_TOL, err_msg=name)


def test_backward_twice_same_result_cache_untouched_grads_in_place():
    check_layer_contract(time_layers)


def test_float32_keeps_dtype_and_matches_float64():
    check_float32(time_layers)


def test_time_rnn_calls_its_step_layer_once_a_time_step(monkeypatch):
    # the book's shape: TimeRNN.forward makes one RNN layer per step and calls its forward
    calls = []
    step_forward = RNN.forward
    monkeypatch.setattr(RNN, "forward", lambda self, x, h: calls.append(1) or step_forward(self, x, h))
    rng = np.random.default_rng(99)
    N, T, D, H = 2, 6, 3, 4
    layer = TimeRNN(weights(rng, D, H), weights(rng, H, H), weights(rng, H))
    layer.forward(rng.standard_normal((N, T, D)))
    assert len(calls) == T and len(layer.layers) == T
