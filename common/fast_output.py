"""The tuned twin of the book's output end: time_layers.TimeAffine followed by
TimeSoftmaxWithLoss as one layer, the same numbers with one (N*T, V) buffer instead of seven.
tests/test_fast_output.py checks it against the plain pair; docs/speed.md gives the measurements.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2 (DLFS2 ch.5-6, common/time_layers.py)
  https://cs231n.github.io/linear-classify/#softmax (the max subtracted before exp)
"""

import numpy as np


class TimeAffineSoftmaxWithLoss:
    """xs (N, T, D), labels ts (N, T) -> mean cross-entropy of softmax(xs W + b) over the N*T
    positions whose label is not ignore_label. W (D, V) hidden -> scores, b (V,) score bias.
    Its plain twin is time_layers.TimeAffine followed by time_layers.TimeSoftmaxWithLoss: with
    V = 10,000 words their (N*T, V) arrays (scores, shifted scores, exponentials, probabilities,
    the gradient) dominate a step. Here the scores, their exponentials and the gradient share one buffer, kept
    from call to call; scores(xs) gives the scores alone, as predict needs them."""

    def __init__(self, W, b, ignore_label=-1):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]  # (D, V), (V,)
        self.ignore_label = ignore_label
        self.buf = None  # (N*T, V) exp(score - row max) after forward
        self.cache = None

    def scores(self, xs):
        """xs (N, T, D) -> xs W + b (N, T, V), a new array."""
        W, b = self.params
        N, T, D = xs.shape
        return (xs.reshape(N * T, D) @ W + b).reshape(N, T, -1)  # (N, T, V)

    def forward(self, xs, ts):
        """xs (N, T, D), ts (N, T) int labels -> scalar mean loss; keeps exp(shifted scores)."""
        W, b = self.params
        N, T, D = xs.shape
        V = W.shape[1]
        if self.buf is None or self.buf.shape != (N * T, V) or self.buf.dtype != W.dtype:
            self.buf = np.empty((N * T, V), dtype=W.dtype)  # (N*T, V) made once for a block size
        e = self.buf
        x2 = xs.reshape(N * T, D)  # (N*T, D)
        np.matmul(x2, W, out=e)
        e += b  # scores = x W + b
        t2 = ts.reshape(N * T)  # (N*T,)
        keep = t2 != self.ignore_label  # (N*T,) positions that count
        t_safe = np.where(keep, t2, 0)  # (N*T,) ignored labels replaced by a valid index
        rows = np.arange(N * T)  # (N*T,)
        e -= e.max(axis=1, keepdims=True)  # minus the row max: exp can't overflow, softmax unchanged
        at_label = e[rows, t_safe]  # (N*T,) shifted score of the label
        np.exp(e, out=e)  # exp(shifted) in place: no second (N*T, V) array
        z = e.sum(axis=1)  # (N*T,) softmax denominators, each >= 1 (the max's term is exp(0))
        log_p = at_label - np.log(z)  # (N*T,) log softmax at the label
        count = max(int(keep.sum()), 1)  # all ignored gives loss 0, not 0/0
        self.cache = (x2, rows, t_safe, keep, count, z, xs.shape)
        return -(log_p * keep).sum() / count

    def backward(self, dout=1):
        """dout scalar -> dxs (N, T, D); writes grads in place. The buffer is left as forward left
        it: only its N*T label entries change, and they are put back."""
        W = self.params[0]
        x2, rows, t_safe, keep, count, z, shape = self.cache
        e = self.buf
        # softmax with cross-entropy gives (p - onehot(t)) dout / count on kept rows, p = e / z: as
        # (e - z onehot(t)) times a row factor r = keep dout / (count z), applied to the (N*T, D)
        # and (N*T,) sides of each product instead of to the (N*T, V) buffer
        r = keep.astype(W.dtype)  # (N*T,)
        r *= np.asarray(dout / count, dtype=W.dtype)
        r /= z
        e_label = e[rows, t_safe]  # (N*T,) saved, to restore the buffer
        e[rows, t_safe] = e_label - z  # e - z onehot(t), in place at N*T entries
        np.matmul((x2 * r[:, None]).T, e, out=self.grads[0])  # dW = x^T dscores   (D, V)
        np.matmul(r, e, out=self.grads[1])  # db = sum over rows of dscores, as r (e - z onehot) (V,)
        dx2 = e @ W.T  # (N*T, D) dx = dscores W^T, the row factor applied after
        dx2 *= r[:, None]
        e[rows, t_safe] = e_label  # the buffer as forward left it
        return dx2.reshape(shape)  # (N, T, D)
