"""
The optimizers of DLFS2 (common/optimizer.py there): SGD, AdaGrad and Adam as small classes with
update(params, grads), and the book's global-norm gradient clipping.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (common/optimizer.py, common/util.py)
  https://arxiv.org/abs/1412.6980  (Kingma & Ba 2014: Adam)
"""
import math

import numpy as np


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) whose data starts on a 64-byte (cache line) boundary; numpy's own
    start on 16 bytes, where each 64-byte vector write of AVX-512 straddles two lines."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.zeros(nbytes + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class SGD:
    """p -= lr * g."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def allocate(self, params):
        pass  # no memory

    def update(self, params, grads):
        for p, g in zip(params, grads):
            p -= self.lr * g

    def slots(self):
        return {}  # no memory


class AdaGrad:
    """h += g^2; p -= lr * g / (sqrt(h) + 1e-7), as in the book (the gist puts 1e-8 inside)."""

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def allocate(self, params):
        self.h = [np.zeros_like(p) for p in params]

    def update(self, params, grads):
        if self.h is None:
            self.allocate(params)
        for p, g, h in zip(params, grads, self.h):
            h += g * g
            p -= self.lr * g / (np.sqrt(h) + 1e-7)

    def slots(self):
        return {"h": self.h}


class Adam:
    """The book's Adam: bias correction folded into the step size lr_t, eps 1e-7 outside sqrt."""

    BLOCK = 65536  # weights per pass: the six arrays of one block stay in a core's own cache

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter = 0
        self.m, self.v = None, None
        self.scratch = None

    def allocate(self, params):  # on cache lines, as the work arrays: the passes write them
        self.m = [aligned_zeros(p.shape, p.dtype) for p in params]
        self.v = [aligned_zeros(p.shape, p.dtype) for p in params]

    def update(self, params, grads):
        if self.m is None:
            self.allocate(params)
        if self.scratch is None:  # two work arrays of one block, not saved (like the grads)
            self.scratch = tuple(aligned_zeros((self.BLOCK,), params[0].dtype) for _ in range(2))
        self.iter += 1
        # lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t): m and v start at zero, this undoes the bias
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for arrays in zip(params, grads, self.m, self.v):
            if not all(a.flags.c_contiguous for a in arrays):  # no flat view of it: one pass
                self._step(*arrays, lr_t)
                continue
            flat = [a.reshape(-1) for a in arrays]  # (size,) views
            for start in range(0, flat[0].size, self.BLOCK):
                self._step(*(a[start:start + self.BLOCK] for a in flat), lr_t)

    def _step(self, p, g, m, v, lr_t):
        """The rule on one block (or array), in place. Each line writes into a work array: the same
        arithmetic in the same order as m += (1 - beta1) (g - m) etc., with no new array per
        operation."""
        if p.size <= self.BLOCK:
            s, u = (w[:p.size].reshape(p.shape) for w in self.scratch)
        else:
            s, u = np.empty_like(p), np.empty_like(p)
        np.subtract(g, m, out=s)
        s *= 1 - self.beta1
        m += s                     # m = beta1 m + (1 - beta1) g
        np.multiply(g, g, out=s)
        s -= v
        s *= 1 - self.beta2
        v += s                     # v = beta2 v + (1 - beta2) g^2
        np.sqrt(v, out=s)
        s += 1e-7
        np.multiply(m, lr_t, out=u)
        u /= s
        p -= u                     # p -= lr_t m / (sqrt(v) + 1e-7)

    def slots(self):
        return {"m": self.m, "v": self.v}


OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "adam": Adam}


def clip_grads(grads, max_norm):
    """Scale all grads in place by one factor so their global L2 norm is at most max_norm (the
    book's clip: it keeps the gradient's direction, unlike the gist's elementwise +-5).
    Returns the norm before clipping."""
    total_norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    rate = max_norm / (total_norm + 1e-6)
    if rate < 1:
        for g in grads:
            g *= rate
    return total_norm
