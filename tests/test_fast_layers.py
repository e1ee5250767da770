"""Tests for common/fast_layers.py: each fast layer equals its plain twin in common/time_layers.py
(forward, backward, carried state; float64 and float32), the layer contract, the fused embedding
projection's gradients, the embedding's large-vocabulary backward and the turned product."""

import numpy as np

from conftest import central_difference, rel_error
from common import fast_layers, time_layers
from common.fast_layers import RowsTimes, TimeEmbedProjection, TimeEmbedding
from test_time_layers import (SAME_MATH_TOL, assert_grad, check_float32, check_layer_contract,
                              make_recurrent, weights)

# fast vs plain in float64, per array ||fast - plain|| / (||fast|| + ||plain||): one function by
# two codes (another summation order, tanh(a / 2) for the sigmoid): rounding of ~1e-16 per
# operation over T steps of values of order 1 stays below 1e-14; a wrong formula differs at 1e-2
PLAIN_TOL_F64 = 1e-10
# the same in float32: unit roundoff 6e-8 over the same few dozen operations per step and T
# steps gives ~1e-6; 1e-4 leaves a margin while a wrong formula still differs at 1e-2
PLAIN_TOL_F32 = 1e-4

# (plain class, fast class, gates per hidden unit)
TWINS = [(time_layers.TimeRNN, fast_layers.TimeRNN, 1), (time_layers.TimeLSTM, fast_layers.TimeLSTM, 4),
         (time_layers.TimeGRU, fast_layers.TimeGRU, 3)]
FAST_RECURRENT = [(fast, gates) for _, fast, gates in TWINS]


def assert_same(name, fast, plain, tol):
    err = rel_error(np.asarray(fast, dtype=np.float64), np.asarray(plain, dtype=np.float64))
    assert err < tol, f"{name}: fast vs plain relative error {err:.2e}"


def states(layer):
    """The carried states and their gradients: h, dh (and c, dc for an LSTM)."""
    return {k: getattr(layer, k) for k in ("h", "c", "dh", "dc") if getattr(layer, k, None) is not None}


def test_each_fast_recurrent_layer_equals_its_plain_twin():
    # three stateful blocks from a non-zero state: forward, backward and the states they carry;
    # with state_grads=False the same numbers bit for bit, and no dh (dc) at all
    for dtype, tol in ((np.float64, PLAIN_TOL_F64), (np.float32, PLAIN_TOL_F32)):
        for seed, (Plain, Fast, gates) in enumerate(TWINS):
            rng = np.random.default_rng(100 + seed)
            N, T, D, H = 3, 5, 4, 6
            params = [weights(rng, D, gates * H), weights(rng, H, gates * H), weights(rng, gates * H)]
            plain = Plain(*[p.astype(dtype) for p in params], stateful=True)
            fast = Fast(*[p.astype(dtype) for p in params], stateful=True)
            lean = Fast(*[p.astype(dtype) for p in params], stateful=True, state_grads=False)
            h0, c0 = rng.standard_normal((N, H)).astype(dtype), rng.standard_normal((N, H)).astype(dtype)
            for layer in (plain, fast, lean):
                layer.set_state(h0, c0) if gates == 4 else layer.set_state(h0)
            for block in range(3):
                xs = rng.standard_normal((N, T, D)).astype(dtype)
                dhs = rng.standard_normal((N, T, H)).astype(dtype)
                name = f"{Fast.__name__} {np.dtype(dtype).name} block {block}"
                hs_plain, hs_fast = plain.forward(xs), fast.forward(xs)
                assert hs_fast.dtype == hs_plain.dtype == dtype
                assert_same(name + " hs", hs_fast, hs_plain, tol)
                dxs_fast = fast.backward(dhs)
                assert_same(name + " dxs", dxs_fast, plain.backward(dhs), tol)
                for k, (g_fast, g_plain) in enumerate(zip(fast.grads, plain.grads)):
                    assert_same(f"{name} grads[{k}]", g_fast, g_plain, tol)
                assert np.array_equal(lean.forward(xs), hs_fast)
                assert np.array_equal(lean.backward(dhs), dxs_fast)
                assert all(np.array_equal(a, b) for a, b in zip(lean.grads, fast.grads))
                assert states(lean).keys() == ({"h", "c"} if gates == 4 else {"h"})
                s_plain, s_fast = states(plain), states(fast)
                assert s_plain.keys() == s_fast.keys() == ({"h", "c", "dh", "dc"} if gates == 4 else {"h", "dh"})
                for k in s_plain:
                    assert_same(f"{name} {k}", s_fast[k], s_plain[k], tol)


def test_fast_embedding_equals_its_plain_twin():
    # V = 7 (one-hot product) and V = 300 (sorted reduction), ids repeating
    for V in (7, 300):
        rng = np.random.default_rng(V)
        N, T, D = 4, 5, 3
        W = weights(rng, V, D)
        ids = rng.integers(0, min(V, 9), (N, T))
        dout = rng.standard_normal((N, T, D))
        plain, fast = time_layers.TimeEmbedding(W), fast_layers.TimeEmbedding(W)
        assert np.array_equal(plain.forward(ids), fast.forward(ids))
        plain.backward(dout)
        fast.backward(dout)
        assert_same(f"V={V} dW", fast.grads[0], plain.grads[0], PLAIN_TOL_F64)


def test_fast_layers_keep_the_layer_contract():
    check_layer_contract(fast_layers)


def test_fast_layers_float32_keeps_dtype_and_matches_float64():
    check_float32(fast_layers)


def test_embed_projection_gradients_and_same_as_unfused():
    # (N, T) = (4, 3): V = 5 < N T takes the (V, GH) table, V = 13 picks rows first; ids repeat in both
    for V in (5, 13):
        for seed, (cls, gates) in enumerate(FAST_RECURRENT):
            rng = np.random.default_rng(60 + seed)
            N, T, D, H = 4, 3, 3, 2
            ids = rng.integers(0, V, (N, T))  # (N, T)
            embed = TimeEmbedding(weights(rng, V, D))
            cell = make_recurrent(cls, gates, rng, D, H, stateful=False)
            proj = TimeEmbedProjection(embed, cell)
            dhs = rng.standard_normal((N, T, H))

            def fused_forward():  # derived from the weights as they are now (perturbed or not)
                derived = cell.derived(N, projected=True)
                return cell.forward_projected(proj.forward(ids, derived), derived)

            loss = lambda: np.sum(fused_forward() * dhs)
            loss()
            assert proj.backward(cell.backward_projected(dhs)) is None
            fused = [g.copy() for g in embed.grads + cell.grads]  # dW, dWx, dWh, db
            for name, p, g in zip(["embed W", "Wx", "Wh", "b"], embed.params + cell.params, fused):
                assert_grad(f"{cls.__name__} V={V} fused {name}", g, central_difference(loss, p))
            # the same layers unfused: same outputs and gradients up to summation order
            hs = fused_forward()
            np.testing.assert_allclose(cell.forward(embed.forward(ids)), hs, rtol=0, atol=SAME_MATH_TOL)
            embed.backward(cell.backward(dhs))
            for a, b in zip(embed.grads + cell.grads, fused):
                np.testing.assert_allclose(a, b, rtol=0, atol=SAME_MATH_TOL)


def test_embedding_backward_for_a_large_vocabulary():
    # Above V = 256 the backward sorts the ids instead of the one-hot product covered above:
    # the same by-hand sums, with repeats and unused rows.
    rng = np.random.default_rng(51)
    N, T, V, D = 3, 4, 300, 2
    ids = rng.integers(0, V, size=(N, T))
    ids[2, 3] = ids[0, 0]  # a repeat
    layer = TimeEmbedding(weights(rng, V, D))
    dout = rng.standard_normal((N, T, D))
    layer.forward(ids)
    layer.backward(dout)
    dW_hand = np.zeros((V, D))
    for n in range(N):
        for t in range(T):
            dW_hand[ids[n, t]] += dout[n, t]
    np.testing.assert_allclose(layer.grads[0], dW_hand, rtol=0, atol=SAME_MATH_TOL)


# The turned product in float32: the same sums in another BLAS order; values of order 10 (512
# terms of order 0.5), float32's unit roundoff 6e-8 over 512 terms: 1e-3 bounds the difference
TURNED_TOL_F32 = 1e-3


def test_rows_times_turned_product_equals_the_plain_one():
    # 4 rows by a (512, 2048) float32 W (4 MiB): reused, it multiplies as (W^T x^T)^T
    rng = np.random.default_rng(11)
    W, x = weights(rng, 512, 2048).astype(np.float32), weights(rng, 4, 512).astype(np.float32)
    for reused, turned in ((True, True), (False, False)):
        times_W = RowsTimes(W, 4, reused)
        assert times_W.turned is turned
        assert np.abs(times_W(x) - x @ W).max() < TURNED_TOL_F32
    assert not RowsTimes(W, 1, True).turned and not RowsTimes(W, 32, True).turned
    assert not RowsTimes(W[:100, :400].copy(), 4, True).turned  # 160 kB: no faster turned
    assert not RowsTimes(W.astype(np.float64), 4, True).turned  # float64: no faster turned
