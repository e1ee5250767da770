"""The book's layer system, as the book writes it: one class per step (RNN, LSTM, GRU, Embedding)
and a Time class that loops over T of them, on (N, T, ...) batches of row vectors.

Read this file beside DLFS2 ch.5-6 and appendix C: the names, the order and the loops are the
book's. The trainers run common/fast_layers.py by default, the same numbers with fewer numpy
calls; `rnnlm.py --book-layers` runs these.

Shapes: N batch, T time, D input, H hidden, V vocabulary; Wx is (D, H) and x Wx is a row times a matrix.
References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2 (DLFS2 ch.5-6, common/time_layers.py)
  https://gist.github.com/karpathy/d4dee566867f8291f086 (min-char-rnn)
  https://cs231n.github.io/rnn/ (cs231n RNN notes and assignment 3)
"""

import numpy as np

# Every layer has params and grads lists; backward writes grads[i][...] in place, only reads
# forward's cache and keeps the parameters' dtype: float64 by default (gradient checks need it),
# where the book hard-codes float32.


def sigmoid(x):
    """Elementwise sigma(x) = 1 / (1 + exp(-x)), x's shape, written as 0.5 (1 + tanh(x / 2)): the
    same function, which never overflows where exp(-x) would."""
    return 0.5 * (1 + np.tanh(0.5 * x))  # same shape as x


class RNN:
    """One step of a vanilla RNN: h_next = tanh(h_prev Wh + x Wx + b).

    Wx (D, H) input -> hidden, Wh (H, H) hidden -> hidden, b (H,) hidden bias.
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D, H), (H, H), (H,)
        self.cache = None

    def forward(self, x, h_prev):
        """x (N, D), h_prev (N, H) -> h_next (N, H)."""
        Wx, Wh, b = self.params
        h_next = np.tanh(h_prev @ Wh + x @ Wx + b)  # (N, H) h_next = tanh(h_prev Wh + x Wx + b)
        self.cache = (x, h_prev, h_next)
        return h_next

    def quantities(self):
        """The last step's named values, each (N, H): h."""
        return {"h": self.cache[2]}

    def backward(self, dh_next):
        """dh_next (N, H) -> (dx (N, D), dh_prev (N, H)); writes grads in place."""
        Wx, Wh, b = self.params
        x, h_prev, h_next = self.cache
        dt = dh_next * (1 - h_next ** 2)  # (N, H) h_next = tanh(a): tanh' = 1 - h_next^2
        self.grads[0][...] = x.T @ dt  # (D, H) a = h_prev Wh + x Wx + b: dt goes to each other factor
        self.grads[1][...] = h_prev.T @ dt  # (H, H)
        self.grads[2][...] = dt.sum(axis=0)  # (H,)
        dx = dt @ Wx.T  # (N, D)
        dh_prev = dt @ Wh.T  # (N, H); the blog versions wrongly build this from x.T
        return dx, dh_prev


class TimeRNN:
    """T steps of the vanilla RNN over a block xs (N, T, D) -> hs (N, T, H): a loop that makes
    one RNN step layer per time step, all sharing the weights.

    Wx (D, H) input -> hidden, Wh (H, H) hidden -> hidden, b (H,) hidden bias.
    Attributes: h (N, H) the last state; dh (N, H) the gradient w.r.t. the block's initial state.
    stateful=True starts each block from the previous block's last state (set_state /
    reset_state); backward still stops at the block's first step (truncated BPTT).
    """

    step = RNN  # the step layer made for each time step

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D, H), (H, H), (H,)
        self.layers = None  # the T step layers of the last forward
        self.h, self.dh = None, None
        self.stateful = stateful

    def forward(self, xs):
        """xs (N, T, D) -> hs (N, T, H); updates self.h."""
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]
        self.layers = []
        hs = np.empty((N, T, H), dtype=Wh.dtype)  # (N, T, H)
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=Wh.dtype)  # (N, H) a block starts from zeros
        for t in range(T):
            layer = self.step(*self.params)
            self.h = layer.forward(xs[:, t, :], self.h)  # (N, H) h_t from x_t and h_{t-1}
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        """dhs (N, T, H) -> dxs (N, T, D); writes grads in place and sets self.dh (N, H)."""
        Wx = self.params[0]
        N, T, H = dhs.shape
        D = Wx.shape[0]
        dxs = np.empty((N, T, D), dtype=Wx.dtype)  # (N, T, D)
        dh = 0  # gradient arriving at h_t from step t+1: none after the last step
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh = layer.backward(dhs[:, t, :] + dh)  # h_t feeds the output and step t+1: add both
            dxs[:, t, :] = dx
            for i, grad in enumerate(layer.grads):
                grads[i] += grad  # the weights are shared by every step: sum their gradients
        for i, grad in enumerate(grads):
            self.grads[i][...] = grad
        self.dh = dh
        return dxs

    def set_state(self, h):
        """Start the next block from h (N, H)."""
        self.h = h

    def reset_state(self):
        """Start the next block from zeros."""
        self.h = None


class Embedding:
    """One step's embedding: idx (N,) ids -> W[idx] (N, D), W (V, D) id -> vector."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]  # (V, D)
        self.idx = None

    def forward(self, idx):
        """idx (N,) ints -> (N, D)."""
        W, = self.params
        self.idx = idx
        return W[idx]  # (N, D) onehot(id) W is row id of W: pick it, no V-wide vector

    def backward(self, dout):
        """dout (N, D) -> None; writes dW in place, summing the rows of ids that repeat."""
        dW, = self.grads
        dW[...] = 0
        np.add.at(dW, self.idx, dout)  # dW[idx] += dout would keep only one of repeated ids
        return None


class TimeEmbedding:
    """ids (N, T) -> (N, T, D): one Embedding step layer per time step, sharing W (V, D)."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]  # (V, D)
        self.layers = None
        self.W = W

    def forward(self, xs):
        """xs (N, T) ints -> (N, T, D)."""
        N, T = xs.shape
        D = self.W.shape[1]
        out = np.empty((N, T, D), dtype=self.W.dtype)  # (N, T, D)
        self.layers = []
        for t in range(T):
            layer = Embedding(self.W)
            out[:, t, :] = layer.forward(xs[:, t])
            self.layers.append(layer)
        return out

    def backward(self, dout):
        """dout (N, T, D) -> None; writes dW in place."""
        N, T, D = dout.shape
        grad = 0
        for t in range(T):
            layer = self.layers[t]
            layer.backward(dout[:, t, :])
            grad += layer.grads[0]  # W is shared by every step: sum their gradients
        self.grads[0][...] = grad
        return None


class TimeAffine:
    """xs (N, T, D) -> xs W + b (N, T, M) as one matmul over all N*T rows.

    W (D, M) input -> output (M = V for the output layer), b (M,) output bias.
    """

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]  # (D, M), (M,)
        self.x2 = None

    def forward(self, xs):
        """xs (N, T, D) -> (N, T, M)."""
        W, b = self.params
        N, T, D = xs.shape
        self.x2 = xs.reshape(N * T, D)  # (N*T, D)
        return (self.x2 @ W + b).reshape(N, T, -1)  # (N, T, M)

    def backward(self, dout):
        """dout (N, T, M) -> dxs (N, T, D); writes grads in place."""
        W, b = self.params
        N, T, M = dout.shape
        dout2 = dout.reshape(N * T, M)  # (N*T, M)
        np.matmul(self.x2.T, dout2, out=self.grads[0])  # dW = sum over all rows x^T dout  (D, M)
        np.sum(dout2, axis=0, out=self.grads[1])  # db                                 (M,)
        return (dout2 @ W.T).reshape(N, T, -1)  # (N, T, D)


class TimeSoftmaxWithLoss:
    """Mean cross-entropy of softmax(xs) against labels ts over the N*T positions not ignored.

    Positions whose label is ignore_label count neither in the loss nor in the mean.
    """

    def __init__(self, ignore_label=-1):
        self.params, self.grads = [], []
        self.ignore_label = ignore_label
        self.cache = None

    def forward(self, xs, ts):
        """xs (N, T, V) scores, ts (N, T) int labels -> scalar mean loss."""
        N, T, V = xs.shape
        x2 = xs.reshape(N * T, V)  # (N*T, V)
        t2 = ts.reshape(N * T)  # (N*T,)
        keep = t2 != self.ignore_label  # (N*T,) positions that count
        t_safe = np.where(keep, t2, 0)  # (N*T,) ignored labels replaced by a valid index
        shifted = x2 - x2.max(axis=1, keepdims=True)  # (N*T, V) minus row max: exp can't overflow
        log_z = np.log(np.exp(shifted).sum(axis=1))  # (N*T,) log-sum-exp of the shifted row
        log_p = shifted[np.arange(N * T), t_safe] - log_z  # (N*T,) log softmax at the label
        count = max(int(keep.sum()), 1)  # all ignored gives loss 0, not 0/0
        loss = -(log_p * keep).sum() / count
        probs = np.exp(shifted - log_z[:, None])  # (N*T, V) softmax, for backward
        self.cache = (probs, t_safe, keep, count, xs.shape)
        return loss

    def backward(self, dout=1):
        """dout scalar -> dxs (N, T, V); the cache stays untouched."""
        probs, t_safe, keep, count, shape = self.cache
        dx = probs.copy()  # (N*T, V) a copy: DLFS2 edits its cached probabilities here
        dx[np.arange(len(t_safe)), t_safe] -= 1  # softmax with cross-entropy gives p - onehot(t)
        dx *= (dout / count) * keep[:, None]  # ignored rows get zero gradient
        return dx.reshape(shape)  # (N, T, V)


# LSTM, gates fused in one matmul; Wx (D, 4H), Wh (H, 4H), b (4H,) columns [ f | g | i | o ] as in the book:
#   A = x Wx + h_prev Wh + b;  f forget, i input, o output = sigmoid(.);  g candidate = tanh(.)


class LSTM:
    """One LSTM step: c_next = f c_prev + g i, h_next = o tanh(c_next).

    Wx (D, 4H) input -> gates, Wh (H, 4H) hidden -> gates, b (4H,) gate biases; columns [f | g | i | o].
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D,4H), (H,4H), (4H,)
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        """x (N, D), h_prev (N, H), c_prev (N, H) -> (h_next (N, H), c_next (N, H))."""
        Wx, Wh, b = self.params
        H = Wh.shape[0]
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H) all four gates' pre-activations
        f = sigmoid(A[:, :H])  # (N, H) forget gate
        g = np.tanh(A[:, H:2 * H])  # (N, H) candidate cell
        i = sigmoid(A[:, 2 * H:3 * H])  # (N, H) input gate
        o = sigmoid(A[:, 3 * H:])  # (N, H) output gate
        c_next = f * c_prev + g * i  # (N, H) c_t = f c_{t-1} + g i
        tanh_c = np.tanh(c_next)  # (N, H)
        h_next = o * tanh_c  # (N, H) h_t = o tanh(c_t)
        self.cache = (x, h_prev, c_prev, f, g, i, o, tanh_c)
        self.last = (h_next, c_next)
        return h_next, c_next

    def quantities(self):
        """The last step's named values, each (N, H): h, c and the gates f, g, i, o."""
        _, _, _, f, g, i, o, _ = self.cache
        h, c = self.last
        return {"h": h, "c": c, "f": f, "g": g, "i": i, "o": o}

    def backward(self, dh_next, dc_next):
        """dh_next, dc_next (N, H) -> (dx (N, D), dh_prev (N, H), dc_prev (N, H)); writes grads."""
        Wx, Wh, b = self.params
        x, h_prev, c_prev, f, g, i, o, tanh_c = self.cache
        ds = dc_next + dh_next * o * (1 - tanh_c ** 2)  # (N, H) dc, + h = o tanh(c): tanh' = 1 - tanh^2
        df = ds * c_prev * f * (1 - f)  # c_t = f c_{t-1} + ..., sigma' = f (1 - f)
        dg = ds * i * (1 - g ** 2)  # c_t = ... + g i, tanh' = 1 - g^2
        di = ds * g * i * (1 - i)  # c_t = ... + g i, sigma' = i (1 - i)
        do = dh_next * tanh_c * o * (1 - o)  # h_t = o tanh(c_t), sigma' = o (1 - o)
        dA = np.concatenate([df, dg, di, do], axis=1)  # (N, 4H) same column order as A
        self.grads[0][...] = x.T @ dA  # (D, 4H) through A = x Wx + h_prev Wh + b
        self.grads[1][...] = h_prev.T @ dA  # (H, 4H)
        self.grads[2][...] = dA.sum(axis=0)  # (4H,)
        dx = dA @ Wx.T  # (N, D)
        dh_prev = dA @ Wh.T  # (N, H)
        dc_prev = ds * f  # (N, H) c_t = f c_{t-1} + ...
        return dx, dh_prev, dc_prev


class TimeLSTM:
    """T LSTM steps over xs (N, T, D) -> hs (N, T, H): a loop that makes one LSTM step layer per
    time step, all sharing the weights.

    Wx (D, 4H) input -> gates, Wh (H, 4H) hidden -> gates, b (4H,) gate biases; columns [f | g | i | o].
    Attributes: h, c (N, H) the last states; dh, dc (N, H) gradients w.r.t. the initial states.
    stateful=True carries h and c across forward calls (set_state(h, c=None) / reset_state).
    """

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D,4H), (H,4H), (4H,)
        self.layers = None
        self.h, self.c = None, None
        self.dh, self.dc = None, None
        self.stateful = stateful

    def forward(self, xs):
        """xs (N, T, D) -> hs (N, T, H); updates self.h and self.c."""
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]
        self.layers = []
        hs = np.empty((N, T, H), dtype=Wh.dtype)  # (N, T, H)
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=Wh.dtype)  # (N, H)
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=Wh.dtype)  # (N, H)
        for t in range(T):
            layer = LSTM(*self.params)
            self.h, self.c = layer.forward(xs[:, t, :], self.h, self.c)  # (N, H), (N, H)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        """dhs (N, T, H) -> dxs (N, T, D); writes grads in place, sets self.dh and self.dc."""
        Wx = self.params[0]
        N, T, H = dhs.shape
        D = Wx.shape[0]
        dxs = np.empty((N, T, D), dtype=Wx.dtype)  # (N, T, D)
        dh, dc = 0, 0  # gradients arriving at h_t and c_t from step t+1
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh, dc = layer.backward(dhs[:, t, :] + dh, dc)
            dxs[:, t, :] = dx
            for i, grad in enumerate(layer.grads):
                grads[i] += grad
        for i, grad in enumerate(grads):
            self.grads[i][...] = grad
        self.dh, self.dc = dh, dc
        return dxs

    def set_state(self, h, c=None):
        """Start the next block from h (N, H) and c (N, H); c=None means zeros."""
        self.h, self.c = h, c

    def reset_state(self):
        """Start the next block from zeros."""
        self.h, self.c = None, None


class TimeDropout:
    """Inverted dropout over any shape: in training, keep each unit with prob 1 - ratio, scale by
    1 / (1 - ratio), so evaluation (train_flg False) is the identity. The mask comes from rng, a
    numpy Generator passed in; set_mask(keep) fixes it (for tests)."""

    def __init__(self, ratio=0.5, rng=None):
        self.params, self.grads = [], []
        self.ratio = ratio
        self.rng = rng
        self.train_flg = True
        self.fixed_keep = None
        self.mask = None

    def set_mask(self, keep):
        """Use keep (same shape as xs, 0/1 or bool) for every forward; None goes back to rng."""
        self.fixed_keep = None if keep is None else np.asarray(keep)

    def forward(self, xs):
        """xs (any shape) -> same shape; the scaled mask is stored for backward."""
        if not self.train_flg:
            self.mask = None
            return xs
        if self.fixed_keep is not None:
            keep = self.fixed_keep
        elif self.rng is None:
            raise ValueError("TimeDropout needs rng (a numpy Generator) in training mode")
        else:
            keep = self.rng.random(xs.shape) >= self.ratio  # same shape as xs, P(keep) = 1 - ratio
        self.mask = keep.astype(xs.dtype) / xs.dtype.type(1 - self.ratio)  # xs's shape, scaled: eval = identity
        return xs * self.mask  # same shape as xs

    def backward(self, dout):
        """dout (same shape as xs) -> dxs; the identity in evaluation mode."""
        if self.mask is None:
            return dout
        return dout * self.mask  # same shape as dout


# GRU, DLFS2 appendix C; Wx (D, 3H), Wh (H, 3H), b (3H,) columns [ z update | r reset | h~ candidate ]:
#   z, r = sigmoid(.);  h~ = tanh(x Wx_h + (r * h_prev) Wh_h + b_h);  h_next = (1 - z) * h_prev + z * h~
#   r gates h_prev before the matmul, as Cho et al. 2014 (cuDNN, PyTorch: r * (h_prev Wh_h + b_hh), 2 biases)


class GRU:
    """One GRU step: h_next = (1 - z) h_prev + z h~.

    Wx (D, 3H) input -> gates, Wh (H, 3H) hidden -> gates, b (3H,) gate biases; columns [z | r | h~].
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D,3H), (H,3H), (3H,)
        self.cache = None

    def forward(self, x, h_prev):
        """x (N, D), h_prev (N, H) -> h_next (N, H)."""
        Wx, Wh, b = self.params
        H = Wh.shape[0]
        xw = x @ Wx + b  # (N, 3H)
        z = sigmoid(xw[:, :H] + h_prev @ Wh[:, :H])  # (N, H) update gate
        r = sigmoid(xw[:, H:2 * H] + h_prev @ Wh[:, H:2 * H])  # (N, H) reset gate
        hr = r * h_prev  # (N, H)
        hh = np.tanh(xw[:, 2 * H:] + hr @ Wh[:, 2 * H:])  # (N, H) h~ = tanh(x Wx_h + (r h) Wh_h + b_h)
        h_next = (1 - z) * h_prev + z * hh  # (N, H) h_t = (1 - z) h_{t-1} + z h~
        self.cache = (x, h_prev, z, r, hr, hh)
        self.last = h_next
        return h_next

    def quantities(self):
        """The last step's named values, each (N, H): h, the gates z and r, the candidate h~."""
        _, _, z, r, _, cand = self.cache
        return {"h": self.last, "z": z, "r": r, "cand": cand}

    def backward(self, dh_next):
        """dh_next (N, H) -> (dx (N, D), dh_prev (N, H)); writes grads in place."""
        Wx, Wh, b = self.params
        H = Wh.shape[0]
        x, h_prev, z, r, hr, hh = self.cache
        dhh = dh_next * z  # (N, H) h_next = (1 - z) h_prev + z h~
        dz = dh_next * (hh - h_prev)  # (N, H) d h_next / dz = h~ - h_prev
        dh_prev = dh_next * (1 - z)  # (N, H) direct path, d h_next / d h_prev = 1 - z
        dah = dhh * (1 - hh ** 2)  # (N, H) tanh' = 1 - h~^2
        dhr = dah @ Wh[:, 2 * H:].T  # (N, H) through (r h_prev) Wh_h
        dh_prev += dhr * r  # (r h_prev): d / d h_prev = r
        daz = dz * z * (1 - z)  # (N, H) sigma' = z (1 - z)
        dar = dhr * h_prev * r * (1 - r)  # (N, H) sigma' = r (1 - r)
        dh_prev += daz @ Wh[:, :H].T + dar @ Wh[:, H:2 * H].T  # through h_prev Wh_z, h_prev Wh_r
        dA = np.concatenate([daz, dar, dah], axis=1)  # (N, 3H) same column order as Wx
        self.grads[0][...] = x.T @ dA  # (D, 3H)
        self.grads[1][...] = np.concatenate([h_prev.T @ daz, h_prev.T @ dar, hr.T @ dah], axis=1)  # (H, 3H)
        self.grads[2][...] = dA.sum(axis=0)  # (3H,)
        dx = dA @ Wx.T  # (N, D)
        return dx, dh_prev


class TimeGRU(TimeRNN):
    """T GRU steps over xs (N, T, D) -> hs (N, T, H): TimeRNN's loop (forward, backward, the
    carried state), making one GRU step layer per time step, all sharing the weights.

    Wx (D, 3H) input -> gates, Wh (H, 3H) hidden -> gates, b (3H,) gate biases; columns [z | r | h~].
    """

    step = GRU
