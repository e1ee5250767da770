"""Tests for common/fast_output.py: the fused output layer equals its plain twin, time_layers'
TimeAffine followed by TimeSoftmaxWithLoss (loss, dxs, dW, db; float64 and float32), with ignored
labels and any upstream gradient, and keeps the layer contract (backward twice, its buffer and
cache as forward left them)."""

import numpy as np

from conftest import rel_error
from common.fast_output import TimeAffineSoftmaxWithLoss
from common.time_layers import TimeAffine, TimeSoftmaxWithLoss
from test_time_layers import weights

# fused vs plain in float64, per array ||fused - plain|| / (||fused|| + ||plain||): the same
# function by another order of roundings ((e - z) r against (exp(s - log z) - 1) c, the row factor
# applied to x or to the product): a few roundings of ~1e-16 each stay below 1e-14, while a
# wrong term (a missed onehot, a bias gradient not scaled) differs at 1e-2 or more
FUSED_TOL_F64 = 1e-12
# the same in float32: unit roundoff 6e-8 over sums of up to V = 300 terms gives ~1e-5 at worst;
# 1e-4 leaves a margin while a wrong formula still differs at 1e-2
FUSED_TOL_F32 = 1e-4


def as_f64(a):
    return np.asarray(a, dtype=np.float64)


def plain_pair(W, b, xs, ts, dout):
    """The plain twin's (loss, dxs, dW, db)."""
    affine, loss_layer = TimeAffine(W, b), TimeSoftmaxWithLoss()
    loss = loss_layer.forward(affine.forward(xs), ts)
    dxs = affine.backward(loss_layer.backward(dout))
    return loss, dxs, *affine.grads


def fused_run(layer, xs, ts, dout):
    loss = layer.forward(xs, ts)
    return loss, layer.backward(dout), *layer.grads


def test_fused_output_layer_equals_the_plain_affine_and_softmax_loss():
    # sizes that all differ; V = 7 and V = 300; some labels ignored (-1); dout 1 and 0.37
    for dtype, tol in ((np.float64, FUSED_TOL_F64), (np.float32, FUSED_TOL_F32)):
        for V, dout in ((7, 1), (300, 0.37)):
            rng = np.random.default_rng(V)
            N, T, D = 2, 3, 4
            W, b = weights(rng, D, V).astype(dtype), weights(rng, V).astype(dtype)
            fused = TimeAffineSoftmaxWithLoss(W, b)
            for block in range(2):  # the buffer is reused by the second block
                xs = (4 * rng.standard_normal((N, T, D))).astype(dtype)  # scores of order 10
                ts = rng.integers(0, V, (N, T))
                ts[block, 1] = -1  # ignored: counts neither in the loss nor in the mean
                plain = plain_pair(W, b, xs, ts, dout)
                ours = fused_run(fused, xs, ts, dout)
                for name, f, p in zip(("loss", "dxs", "dW", "db"), ours, plain):
                    assert np.asarray(f).dtype == dtype, name
                    err = rel_error(as_f64(f), as_f64(p))
                    assert err < tol, f"V={V} {np.dtype(dtype).name} block {block} {name}: {err:.2e}"
                scores = fused.scores(xs)
                assert rel_error(as_f64(scores), as_f64(TimeAffine(W, b).forward(xs))) < tol


def test_fused_output_layer_keeps_the_layer_contract():
    # backward twice gives the same, writes the very grads arrays, and leaves the buffer and
    # the cache as forward left them (backward edits N*T buffer entries and puts them back)
    rng = np.random.default_rng(5)
    N, T, D, V = 3, 2, 5, 11
    layer = TimeAffineSoftmaxWithLoss(weights(rng, D, V), weights(rng, V))
    xs, ts = rng.standard_normal((N, T, D)), rng.integers(0, V, (N, T))
    layer.forward(xs, ts)
    grads_before = list(layer.grads)
    buf_before = layer.buf.copy()
    d1 = layer.backward()
    g1 = [g.copy() for g in layer.grads]
    np.testing.assert_array_equal(layer.buf, buf_before)
    d2 = layer.backward()
    assert all(a is b for a, b in zip(grads_before, layer.grads))
    np.testing.assert_array_equal(d1, d2)
    for a, b in zip(g1, layer.grads):
        np.testing.assert_array_equal(a, b)


def test_all_labels_ignored_give_zero_loss_and_gradients():
    rng = np.random.default_rng(8)
    layer = TimeAffineSoftmaxWithLoss(weights(rng, 3, 6), weights(rng, 6))
    assert layer.forward(rng.standard_normal((2, 4, 3)), np.full((2, 4), -1)) == 0
    assert not layer.backward().any() and not any(g.any() for g in layer.grads)
