"""Tests for common/optimizer.py: SGD, AdaGrad and Adam steps and the global-norm clip, against
the book's update rules written out by hand."""
import math

import numpy as np

from common import optimizer


def test_optimizers_and_clip_follow_the_book():
    rng = np.random.default_rng(6)
    p0, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    p = p0.copy()
    optimizer.SGD(0.1).update([p], [g])
    np.testing.assert_array_equal(p, p0 - 0.1 * g)
    p, opt = p0.copy(), optimizer.AdaGrad(0.1)
    opt.update([p], [g])
    opt.update([p], [g])
    step1, step2 = 0.1 * g / (abs(g) + 1e-7), 0.1 * g / (np.sqrt(2) * abs(g) + 1e-7)
    np.testing.assert_allclose(p, p0 - step1 - step2)
    p, opt = p0.copy(), optimizer.Adam(0.01)
    opt.update([p], [g])  # step 1: m = 0.1 g, v = 0.001 g^2, lr_t = 0.01 sqrt(0.001) / 0.1
    np.testing.assert_allclose(p, p0 - 0.01 * math.sqrt(0.001) / 0.1 * 0.1 * g
                               / (np.sqrt(0.001) * abs(g) + 1e-7))
    grads = [np.full(3, 2.0), np.full(4, 2.0)]  # norm sqrt(7 * 4)
    norm = optimizer.clip_grads(grads, 1.0)
    assert norm == math.sqrt(28)
    np.testing.assert_allclose(grads[0], 2.0 / (math.sqrt(28) + 1e-6))


ADAM_RTOL = 1e-12  # float64: m = b1 m + (1 - b1) g and the code's m += (1 - b1)(g - m) round
                   # differently, by ~1e-16 relative per step; a few steps stay far below 1e-12
ADAM_ATOL = 1e-15  # where m cancels to near 0 the relative error means nothing: the two forms
                   # then differ by a few roundings of terms below 1 (each <= 1.1e-16) per step


def test_adam_over_steps_and_shapes_follows_the_rule_written_out():
    rng = np.random.default_rng(8)
    # sizes differ: work arrays must never mix parameters; (300, 500) spans three of Adam's
    # blocks, the last one partial; the (6, 4) one is a transposed view, as a tied weight is
    shapes = [(3, 4), (5,), (300, 500), (2, 3), (6, 4)]
    assert 2 * optimizer.Adam.BLOCK < 300 * 500 < 3 * optimizer.Adam.BLOCK
    params = [rng.standard_normal(s) for s in shapes[:-1]] + [rng.standard_normal((4, 6)).T]
    p_ref = [p.copy() for p in params]
    m_ref, v_ref = [np.zeros(s) for s in shapes], [np.zeros(s) for s in shapes]
    opt = optimizer.Adam(0.01)
    for t in range(1, 5):
        grads = [rng.standard_normal(s) for s in shapes]
        opt.update(params, grads)
        lr_t = 0.01 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for p, g, m, v in zip(p_ref, grads, m_ref, v_ref):
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g * g
            p -= lr_t * m / (np.sqrt(v) + 1e-7)
    for p, p_r, m, m_r in zip(params, p_ref, opt.m, m_ref):
        np.testing.assert_allclose(m, m_r, rtol=ADAM_RTOL, atol=ADAM_ATOL)
        np.testing.assert_allclose(p, p_r, rtol=ADAM_RTOL, atol=ADAM_ATOL)


def test_aligned_zeros_start_on_a_cache_line_and_hold_zeros():
    # numpy's own arrays start on 16 bytes; 64 is the cache line (and an AVX-512 vector) in bytes
    for shape, dtype in [((3,), np.float32), ((300, 500), np.float32), ((7, 5), np.float64),
                         ((), np.float64), ((0,), np.float32)]:
        for _ in range(4):  # several allocations: some would start off a line by chance
            a = optimizer.aligned_zeros(shape, dtype)
            assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
            assert a.size == 0 or a.ctypes.data % 64 == 0
            assert not a.any()
            a[...] = 1  # writable, and its own memory
            assert a.sum() == a.size
    opt = optimizer.Adam()
    opt.allocate([np.ones((5, 9), np.float32)])
    assert all(s[0].ctypes.data % 64 == 0 and s[0].dtype == np.float32 for s in (opt.m, opt.v))
