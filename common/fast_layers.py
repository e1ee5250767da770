"""The tuned twins of the book's recurrent layers: the same numbers as common/time_layers.py's
TimeRNN, TimeLSTM, TimeGRU and TimeEmbedding, computed with fewer, larger numpy calls. The
models the trainers run by default stack these; tests/test_fast_layers.py checks each against its
plain twin. docs/speed.md gives the measurements behind each choice.

Shapes: N batch, T time, D input, H hidden, V vocabulary, G gate blocks of H columns (1, 4, 3).
References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2 (DLFS2 ch.5-6, common/time_layers.py)
  https://github.com/karpathy/nanoGPT (model.py keeps the plain attention beside the fused one)
"""

import types

import numpy as np

# The layer contract is time_layers.py's: params and grads lists, backward writes grads[i][...] in
# place, only reads forward's cache and keeps the parameters' dtype.


class RowsTimes:
    """x -> x W for blocks x (N, H) of N rows and a fixed W (H, G), into one (N, G) array made here
    (each call overwrites it). reused (the product serves many calls, as in generation): a float32
    W of 1 MiB or more times 2 to 16 rows multiplies the other way round, (W^T x^T)^T, with W^T
    copied once, which BLAS runs faster there; elsewhere (float64, small H, training, whose few
    steps a block do not repay the copy) the plain product (docs/speed.md)."""

    def __init__(self, W, N, reused=False):
        self.turned = reused and W.dtype == np.float32 and 2 <= N <= 16 and W.nbytes >= 2 ** 20
        self.W = np.ascontiguousarray(W.T) if self.turned else W  # (G, H) or (H, G)
        G = W.shape[1]
        self.out = np.empty((G, N), dtype=W.dtype).T if self.turned else np.empty((N, G), dtype=W.dtype)

    def __call__(self, x):
        if self.turned:
            np.matmul(self.W, x.T, out=self.out.T)  # (G, N) = W^T x^T
        else:
            np.matmul(x, self.W, out=self.out)  # (N, G)
        return self.out  # (N, G)


def _to_time_major(xs, dtype):
    """(N, T, K) -> contiguous (T, N, K) copy in dtype, so step t reads one contiguous block."""
    return np.ascontiguousarray(xs.transpose(1, 0, 2), dtype=dtype)  # (T, N, K)


def _to_batch_major(ys):
    """(T, N, K) -> contiguous (N, T, K) copy: what the caller gets is never our cache."""
    return np.ascontiguousarray(ys.transpose(1, 0, 2))  # (N, T, K)


class _TimeCell:
    """What the fast TimeRNN, TimeLSTM and TimeGRU share: the weights Wx (D, GH), Wh (H, GH) and b (GH,)
    holding G blocks of H columns (G = 1, 4, 3), the carried state h (TimeLSTM adds c), forward
    over a block with the input products of all T steps as one matmul, and backward with the
    weight gradients of all steps as one matmul each. Each cell writes derived() (the weights as
    its steps use them: Wx_scaled, b_scaled and the per-column scale, 1/2 on sigmoid gates, and
    its recurrent products), _forward_steps and _backward_steps: the recurrence itself.
    Attributes: h (N, H) the last state; dh (N, H) the gradient w.r.t. the block's initial state.
    stateful=True starts each block from the previous block's last state (set_state /
    reset_state); backward still stops at the block's first step (truncated BPTT).
    state_grads=False: backward leaves dh (and dc) None and skips the first step's product that
    only they need, for a model whose gradient stops at the block's start anyway (FastRnnlm)."""

    def __init__(self, Wx, Wh, b, stateful=False, state_grads=True):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]  # (D, GH), (H, GH), (GH,)
        self.stateful, self.state_grads = stateful, state_grads
        self.h, self.dh = None, None
        self.cache = None

    def set_state(self, h):
        """Start the next block from h (N, H)."""
        self.h = np.array(h, dtype=self.params[1].dtype)  # (N, H) our own copy

    def reset_state(self):
        """Start the next block from zeros."""
        self.h = None

    def _scaled(self, scale, projected, **products):
        """derived()'s record for a gated cell: scale (GH,), Wx (D, GH) and b (GH,) times it (Wx
        only when not projected: forward_projected gets its gates' inputs from its caller), and
        products."""
        Wx, b = self.params[0], self.params[2]
        return types.SimpleNamespace(scale=scale, Wx_scaled=None if projected else Wx * scale,
                                     b_scaled=b * scale, **products)

    def _initial(self, name, N, H):
        """The carried state `name` (h or c) to start a block from: zeros unless stateful."""
        state = getattr(self, name)
        if not self.stateful or state is None:
            state = np.zeros((N, H), dtype=self.params[1].dtype)  # (N, H)
        return state

    def forward(self, xs, derived=None):
        """xs (N, T, D) -> hs (N, T, H); updates the carried state. derived: derived(N, ...) made
        while the weights stay as they are (None: made here)."""
        Wh = self.params[1]
        N, T, D = xs.shape
        GH = Wh.shape[1]
        dtype = Wh.dtype
        if derived is None:
            derived = self.derived(N, projected=False)
        xs_tm = _to_time_major(xs, dtype).reshape(T * N, D)  # (T*N, D) step t is rows t*N .. t*N+N-1
        gates = np.empty((T, N, GH), dtype=dtype)  # (T, N, GH) x_t Wx (scaled), then each step's gates
        np.matmul(xs_tm, derived.Wx_scaled, out=gates.reshape(T * N, GH))  # every step's x_t Wx, one matmul
        gates += derived.b_scaled  # x_t Wx + b, scaled
        return self._forward_steps(gates, xs_tm, derived)

    def forward_projected(self, gates, derived):
        """gates (T, N, GH), time-major: every step's x_t Wx + b, scaled by derived.scale, made by
        the caller (TimeEmbedProjection.forward with this derived) -> hs (N, T, H), as forward;
        overwrites gates. Pair it with backward_projected."""
        return self._forward_steps(gates, None, derived)

    def backward(self, dhs):
        """dhs (N, T, H) -> dxs (N, T, D); writes grads in place and sets self.dh (N, H)."""
        Wx = self.params[0]
        xs_tm = self.cache[0]
        N, T, H = dhs.shape
        D, GH = Wx.shape
        dA = self._backward_steps(dhs).reshape(T * N, GH)  # (T*N, GH) pre-activation grads
        np.sum(dA, axis=0, out=self.grads[2])  # db = sum_t sum_n dA_t                  (GH,)
        np.matmul(xs_tm.T, dA, out=self.grads[0])  # A_t = x_t Wx + ...: dWx = sum_t x_t^T dA_t  (D, GH)
        dxs = (dA @ np.ascontiguousarray(Wx.T)).reshape(T, N, D)  # (T, N, D) dx_t = dA_t Wx^T, Wx^T copied
        return _to_batch_major(dxs)  # (N, T, D)

    def backward_projected(self, dhs):
        """dhs (N, T, H) -> dA (N, T, GH), the gradient w.r.t. the unscaled x_t Wx + b of
        forward_projected's gates (a transposed view); writes dWh, sets the state gradients;
        dWx and db are the caller's, who made the gates."""
        return self._backward_steps(dhs).transpose(1, 0, 2)  # (N, T, GH)


class TimeRNN(_TimeCell):
    """T steps of the vanilla RNN over a block xs (N, T, D) -> hs (N, T, H): time_layers.TimeRNN's
    numbers with the input products of all steps in one matmul, the states in one carried (T+1,
    N, H) buffer written in place, and the weight gradients of all steps in one matmul each.

    Wx (D, H) input -> hidden, Wh (H, H) hidden -> hidden, b (H,) hidden bias.
    """

    def derived(self, N, projected, reused=False):
        """What the steps over N rows make from the weights: the product by Wh (remade by each
        forward unless passed in; reused: to be passed to many forward calls, see RowsTimes).
        The inputs are not scaled (scale 1): tanh needs no halving, unlike the gates' sigmoids."""
        Wx, Wh, b = self.params
        return types.SimpleNamespace(scale=1, Wx_scaled=None if projected else Wx, b_scaled=b,
                                     times_Wh=RowsTimes(Wh, N, reused))  # h Wh (N, H)

    def _forward_steps(self, gates, xs_tm, derived):
        """The recurrence over gates (T, N, H) holding x_t Wx + b; caches xs_tm (None: projected)."""
        Wh = self.params[1]
        T, N, H = gates.shape
        hbuf = np.empty((T + 1, N, H), dtype=Wh.dtype)  # (T+1, N, H) hbuf[t] is h_t, hbuf[0] the initial state
        hbuf[0] = self._initial("h", N, H)
        for t in range(T):
            a = gates[t]  # (N, H) view
            a += derived.times_Wh(hbuf[t])  # a_t = h_{t-1} Wh + (x_t Wx + b)
            np.tanh(a, out=hbuf[t + 1])  # h_t = tanh(a_t)
        self.h = hbuf[T].copy()  # (N, H)
        self.cache = (xs_tm, hbuf)
        return _to_batch_major(hbuf[1:])  # (N, T, H)

    def _backward_steps(self, dhs):
        """dhs (N, T, H) -> da (T, N, H) pre-activation grads; writes dWh and sets self.dh."""
        Wh = self.params[1]
        hbuf = self.cache[1]
        N, T, H = dhs.shape
        dts = _to_time_major(dhs, Wh.dtype)  # (T, N, H) copy of dhs, becomes da_t step by step
        dtanh = 1 - np.square(hbuf[1:])  # (T, N, H) h_t = tanh(a_t): tanh' = 1 - h_t^2, all steps at once
        dh = np.zeros((N, H), dtype=Wh.dtype)  # (N, H) gradient arriving at h_t from step t+1
        Wh_T = Wh.T.copy()  # (H, H) contiguous: BLAS is slower on the transposed view
        for t in reversed(range(T)):
            dts[t] += dh  # dh_t = dhs_t + (from h_{t+1})
            dts[t] *= dtanh[t]  # da_t = dh_t * (1 - h_t^2)
            if t == 0 and not self.state_grads:
                break  # dh_{-1} is the initial state's gradient: not wanted
            np.matmul(dts[t], Wh_T, out=dh)  # through a_t = h_{t-1} Wh + ...: dh_{t-1} = da_t Wh^T
        self.dh = dh if self.state_grads else None
        da = dts.reshape(T * N, H)  # (T*N, H) weight grads: one matmul each over all steps
        np.matmul(hbuf[:-1].reshape(T * N, H).T, da, out=self.grads[1])  # dWh = sum_t h_{t-1}^T da_t
        return dts  # (T, N, H)


class TimeLSTM(_TimeCell):
    """T LSTM steps over xs (N, T, D) -> hs (N, T, H): time_layers.TimeLSTM's numbers with one
    tanh call covering all four gates (the f, i, o columns halved), the input products and weight
    gradients of all steps in one matmul each, carried buffers, and backward's per-step factors
    made for all steps at once; dh_{t-1} is formed as its transpose (Wh dA_t^T).

    Wx (D, 4H) input -> gates, Wh (H, 4H) hidden -> gates, b (4H,) gate biases; columns [f | g | i | o].
    Attributes: h, c (N, H) the last states; dh, dc (N, H) gradients w.r.t. the initial states.
    stateful=True carries h and c across forward calls (set_state(h, c=None) / reset_state).
    """

    def __init__(self, Wx, Wh, b, stateful=False, state_grads=True):
        super().__init__(Wx, Wh, b, stateful, state_grads)
        self.c, self.dc = None, None

    def set_state(self, h, c=None):
        """Start the next block from h (N, H) and c (N, H); c=None means zeros."""
        super().set_state(h)
        self.c = None if c is None else np.array(c, dtype=self.params[1].dtype)  # (N, H)

    def reset_state(self):
        """Start the next block from zeros."""
        super().reset_state()
        self.c = None

    def derived(self, N, projected, reused=False):
        """What the steps over N rows make from the weights: remade by each forward unless passed in
        (projected: for forward_projected, which needs no Wx; reused: to be passed to many forward
        calls, see RowsTimes). sigma(a) = (1 + tanh(a / 2)) / 2: halving the f, i, o columns of Wx,
        Wh and b (exact in floats) lets one tanh call per step cover all four gates; two calls then
        map f, i, o to (1 + tanh) / 2."""
        Wh = self.params[1]
        H = Wh.shape[0]
        half = np.full(4 * H, 0.5, dtype=Wh.dtype)  # (4H,) 1/2 on f, i, o; 1 on g
        half[H:2 * H] = 1
        shift = half.copy()  # (4H,) (1 + tanh) / 2 = tanh * 1/2 + 1/2 on f, i, o; tanh * 1 + 0 on g
        shift[H:2 * H] = 0
        return self._scaled(half, projected, shift=shift,
                            times_Wh_half=RowsTimes(Wh * half, N, reused))  # h Wh_half (N, 4H)

    def _forward_steps(self, gates, xs_tm, derived):
        """The steps over gates (T, N, 4H) holding (x_t Wx + b) half; caches xs_tm (None: projected)."""
        Wh = self.params[1]
        T, N = gates.shape[:2]
        H = Wh.shape[0]
        dtype = Wh.dtype
        half, shift = derived.scale, derived.shift  # (4H,), (4H,)
        hbuf = np.empty((T + 1, N, H), dtype=dtype)  # (T+1, N, H) h_0 .. h_T
        cbuf = np.empty((T + 1, N, H), dtype=dtype)  # (T+1, N, H) c_0 .. c_T
        tanh_c = np.empty((T, N, H), dtype=dtype)  # (T, N, H) tanh(c_t), reused by backward
        hbuf[0], cbuf[0] = self._initial("h", N, H), self._initial("c", N, H)
        gi = np.empty((N, H), dtype=dtype)  # (N, H) scratch for g i
        for t in range(T):
            A = gates[t]
            A += derived.times_Wh_half(hbuf[t])  # A = (x_t Wx + h_{t-1} Wh + b) * half
            np.tanh(A, out=A)  # g = tanh(A_g); tanh(A_f / 2), tanh(A_i / 2), tanh(A_o / 2)
            A *= half
            A += shift  # f, i, o = sigma(A_f), sigma(A_i), sigma(A_o) = (1 + tanh(. / 2)) / 2
            f, g, i, o = A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:]  # (N, H) views
            np.multiply(f, cbuf[t], out=cbuf[t + 1])
            np.multiply(g, i, out=gi)
            cbuf[t + 1] += gi  # c_t = f c_{t-1} + g i
            np.tanh(cbuf[t + 1], out=tanh_c[t])
            np.multiply(o, tanh_c[t], out=hbuf[t + 1])  # h_t = o tanh(c_t)
        self.h, self.c = hbuf[T].copy(), cbuf[T].copy()  # (N, H), (N, H)
        self.cache = (xs_tm, gates, hbuf, cbuf, tanh_c)
        return _to_batch_major(hbuf[1:])  # (N, T, H)

    def _backward_steps(self, dhs):
        """dhs (N, T, H) -> dA (T, N, 4H) gate pre-activation grads; writes dWh, sets self.dh, self.dc."""
        Wh = self.params[1]
        _, gates, hbuf, cbuf, tanh_c = self.cache
        N, T, H = dhs.shape
        dtype = Wh.dtype
        dhs_tm = dhs.transpose(1, 0, 2)  # (T, N, H) view, only read
        # Each gate's pre-activation gradient is a step's incoming gradient times a factor that
        # forward already fixed: made here for all T steps at once (few large numpy calls), so that
        # each step below is 7 calls. With ds the gradient at c_t and dh_t the one at h_t:
        #   dA_f = ds c_{t-1} f (1 - f), dA_g = ds i (1 - g^2), dA_i = ds g i (1 - i)  (sigma' = s (1 - s))
        #   dA_o = dh_t tanh(c_t) o (1 - o);  ds = dc_t + dh_t o (1 - tanh(c_t)^2)  (tanh' = 1 - tanh^2)
        f, g, i, o = (gates[:, :, k * H:(k + 1) * H] for k in range(4))  # (T, N, H) views
        dA = np.subtract(1, gates, dtype=dtype)  # (T, N, 4H) 1 - s, becomes the factors, then dA
        dA *= gates  # s (1 - s): sigma' on f, i, o
        factor = dA.reshape(T, N, 4, H)  # (T, N, 4, H) view, blocks [f | g | i | o]
        np.multiply(g, g, out=factor[:, :, 1])
        np.subtract(1, factor[:, :, 1], out=factor[:, :, 1])  # tanh' = 1 - g^2 on g
        factor[:, :, 0] *= cbuf[:-1]  # f: c_{t-1} f (1 - f)
        factor[:, :, 1] *= i  # g: i (1 - g^2)
        factor[:, :, 2] *= g  # i: g i (1 - i)
        factor[:, :, 3] *= tanh_c  # o: tanh(c_t) o (1 - o)
        to_c = np.square(tanh_c)  # (T, N, H) tanh(c_t)^2
        np.subtract(1, to_c, out=to_c)
        to_c *= o  # h_t = o tanh(c_t): dh_t reaches c_t times o (1 - tanh(c_t)^2)
        # dh_{t-1} = dA_t Wh^T is made as its transpose Wh dA_t^T into dh's memory (dh in Fortran
        # order): as fast as a product by a copy of Wh.T, faster than by the view Wh.T, no copy
        dh = np.zeros((N, H), dtype=dtype, order="F")  # (N, H) gradient arriving at h_t from step t+1
        dc = np.zeros((N, H), dtype=dtype)  # (N, H) gradient arriving at c_t from step t+1
        dh_t = np.empty((N, H), dtype=dtype)  # (N, H) scratch, total gradient at h_t
        ds = np.empty((N, H), dtype=dtype)  # (N, H) scratch, total gradient at c_t
        for t in reversed(range(T)):
            np.add(dhs_tm[t], dh, out=dh_t)  # dh_t = dhs_t + (from step t+1)
            np.multiply(dh_t, to_c[t], out=ds)
            ds += dc  # ds = dc_t + dh_t o (1 - tanh(c_t)^2)
            fgi = factor[t, :, :3]  # (N, 3, H) view
            np.multiply(fgi, ds[:, None], out=fgi)  # dA_f, dA_g, dA_i = ds times their factors
            factor[t, :, 3] *= dh_t  # dA_o = dh_t tanh(c_t) o (1 - o)
            if t == 0 and not self.state_grads:
                break  # dh_{-1}, dc_{-1} are the initial state's gradients: not wanted
            np.multiply(ds, f[t], out=dc)  # c_t = f c_{t-1} + g i: dc_{t-1} = ds f
            np.matmul(Wh, dA[t].T, out=dh.T)  # A = ... + h_{t-1} Wh: dh_{t-1} = dA_t Wh^T
        self.dh, self.dc = (np.ascontiguousarray(dh), dc) if self.state_grads else (None, None)
        dA2 = dA.reshape(T * N, 4 * H)  # (T*N, 4H)
        np.matmul(hbuf[:-1].reshape(T * N, H).T, dA2, out=self.grads[1])  # dWh = sum_t h_{t-1}^T dA_t
        return dA  # (T, N, 4H)


class TimeGRU(_TimeCell):
    """T GRU steps over xs (N, T, D) -> hs (N, T, H): time_layers.TimeGRU's numbers with the z and
    r columns halved for tanh, the input products and weight gradients of all steps in one matmul
    each, carried buffers, and a backward that writes every step into preallocated blocks.

    Wx (D, 3H) input -> gates, Wh (H, 3H) hidden -> gates, b (3H,) gate biases; columns [z | r | h~].
    Attributes: h (N, H) the last state, dh (N, H) the gradient w.r.t. the initial state.
    stateful=True carries h across forward calls (set_state / reset_state).
    """

    def derived(self, N, projected, reused=False):
        """What the steps over N rows make from the weights: remade by each forward unless passed in
        (projected: for forward_projected, which needs no Wx; reused: to be passed to many forward
        calls, see RowsTimes). sigma(a) = (1 + tanh(a / 2)) / 2: the z, r columns of Wx, Wh and b
        are halved (exact in floats)."""
        Wh = self.params[1]
        H = Wh.shape[0]
        half = np.ones(3 * H, dtype=Wh.dtype)  # (3H,) 1/2 on the sigmoid columns z, r; 1 on h~
        half[:2 * H] = 0.5
        Wh_h = np.ascontiguousarray(Wh[:, 2 * H:])  # (H, H) the candidate columns
        return self._scaled(half, projected,
                            times_Wh_zr=RowsTimes(Wh[:, :2 * H] * 0.5, N, reused),  # (N, 2H)
                            times_Wh_h=RowsTimes(Wh_h, N, reused))  # (r h) Wh_h (N, H)

    def _forward_steps(self, gates, xs_tm, derived):
        """The steps over gates (T, N, 3H) holding (x_t Wx + b) half; caches xs_tm (None: projected)."""
        Wh = self.params[1]
        T, N = gates.shape[:2]
        H = Wh.shape[0]
        dtype = Wh.dtype
        hbuf = np.empty((T + 1, N, H), dtype=dtype)  # (T+1, N, H) h_0 .. h_T
        hr = np.empty((T, N, H), dtype=dtype)  # (T, N, H) r_t * h_{t-1}, needed for dWh_h
        hbuf[0] = self._initial("h", N, H)
        for t in range(T):
            zr, hh = gates[t, :, :2 * H], gates[t, :, 2 * H:]  # (N, 2H), (N, H) views
            zr += derived.times_Wh_zr(hbuf[t])  # (x_t Wx_zr + h_{t-1} Wh_zr + b_zr) / 2
            np.tanh(zr, out=zr)
            zr *= 0.5
            zr += 0.5  # z, r = sigma(x_t Wx_zr + h_{t-1} Wh_zr + b_zr) = (1 + tanh(. / 2)) / 2
            z, r = zr[:, :H], zr[:, H:]  # (N, H) views
            np.multiply(r, hbuf[t], out=hr[t])  # r h_{t-1}
            hh += derived.times_Wh_h(hr[t])
            np.tanh(hh, out=hh)  # h~_t = tanh(x_t Wx_h + (r h_{t-1}) Wh_h + b_h)
            np.subtract(hh, hbuf[t], out=hbuf[t + 1])
            hbuf[t + 1] *= z
            hbuf[t + 1] += hbuf[t]  # h_t = h_{t-1} + z (h~_t - h_{t-1}) = (1 - z) h_{t-1} + z h~_t
        self.h = hbuf[T].copy()  # (N, H)
        self.cache = (xs_tm, gates, hbuf, hr)
        return _to_batch_major(hbuf[1:])  # (N, T, H)

    def _backward_steps(self, dhs):
        """dhs (N, T, H) -> dA (T, N, 3H) pre-activation grads; writes dWh and sets self.dh."""
        Wh = self.params[1]
        _, gates, hbuf, hr = self.cache
        N, T, H = dhs.shape
        dtype = Wh.dtype
        Wh_zrT = np.ascontiguousarray(Wh[:, :2 * H].T)  # (2H, H) copies: BLAS runs the step products faster
        Wh_hT = np.ascontiguousarray(Wh[:, 2 * H:].T)  # (H, H)   than on transposed views
        dhs_tm = dhs.transpose(1, 0, 2)  # (T, N, H) view, only read
        dA = np.empty((T, N, 3 * H), dtype=dtype)  # (T, N, 3H) pre-activation grads [z | r | h~]
        dh = np.zeros((N, H), dtype=dtype)  # (N, H) gradient arriving at h_t from step t+1
        dh_t = np.empty((N, H), dtype=dtype)  # (N, H) scratch, total gradient at h_t
        dhr = np.empty((N, H), dtype=dtype)  # (N, H) scratch, gradient at r h_{t-1}
        p = np.empty((N, H), dtype=dtype)  # (N, H) scratch for shared partial products
        q = np.empty((N, H), dtype=dtype)  # (N, H) scratch
        s = np.empty((N, H), dtype=dtype)  # (N, H) scratch
        # Every call below writes into a preallocated (N, H) block: no temporaries, shared partial products
        for t in reversed(range(T)):
            A, dAt = gates[t], dA[t]  # (N, 3H) views
            z, r, hh = A[:, :H], A[:, H:2 * H], A[:, 2 * H:]  # (N, H) views
            dz, dr, dhh = dAt[:, :H], dAt[:, H:2 * H], dAt[:, 2 * H:]  # (N, H) views
            h_prev = hbuf[t]  # (N, H) view
            np.add(dhs_tm[t], dh, out=dh_t)  # dh_t = dhs_t + (from step t+1)
            np.multiply(dh_t, z, out=p)  # p = dh_t z; h_t = (1 - z) h_{t-1} + z h~ has three paths
            np.multiply(p, hh, out=dhh)
            dhh *= hh
            np.subtract(p, dhh, out=dhh)  # via h~ = tanh(.): dA_h = dh_t z (1 - h~^2), tanh' = 1 - h~^2
            np.subtract(hh, h_prev, out=dz)
            dz *= p  # dh_t z (h~ - h_{t-1})
            np.multiply(dz, z, out=s)
            dz -= s  # via z: dA_z = dh_t (h~ - h_{t-1}) z (1 - z), sigma' = z (1 - z)
            np.matmul(dhh, Wh_hT, out=dhr)  # through (r h_{t-1}) Wh_h: dhr = dA_h Wh_h^T
            np.multiply(dhr, r, out=q)  # q = dhr r
            np.multiply(q, h_prev, out=dr)
            np.multiply(dr, r, out=s)
            dr -= s  # via r: dA_r = dhr h_{t-1} r (1 - r), sigma' = r (1 - r)
            if t == 0 and not self.state_grads:
                break  # dh_{-1} is the initial state's gradient: not wanted
            np.matmul(dAt[:, :2 * H], Wh_zrT, out=dh)  # through h_{t-1} Wh_zr: dA_zr Wh_zr^T
            dh += dh_t
            dh -= p  # direct path: dh_t (1 - z)
            dh += q  # through r h_{t-1}: dhr r; dh_{t-1} is the sum of the three
        self.dh = dh if self.state_grads else None
        dA2 = dA.reshape(T * N, 3 * H)  # (T*N, 3H)
        h_prev2 = hbuf[:-1].reshape(T * N, H)  # (T*N, H) h_{t-1} for every step
        hr2 = hr.reshape(T * N, H)  # (T*N, H) r_t h_{t-1} for every step
        np.matmul(h_prev2.T, dA2[:, :2 * H], out=self.grads[1][:, :2 * H])  # dWh_zr = sum_t h_{t-1}^T dA_zr
        np.matmul(hr2.T, dA2[:, 2 * H:], out=self.grads[1][:, 2 * H:])  # dWh_h = sum_t (r h_{t-1})^T dA_h
        return dA  # (T, N, 3H)


def scatter_add_rows(dW, ids, drows):
    """dW[...] = 0, then dW[ids[k]] += drows[k] for every k: ids (K,), drows (K, D). Writes dW."""
    if len(dW) <= 256:  # small vocabulary: dW = onehot(ids)^T drows, one matrix multiply
        onehot = np.zeros((len(ids), len(dW)), dtype=dW.dtype)  # (K, V)
        onehot[np.arange(len(ids)), ids] = 1
        np.matmul(onehot.T, drows, out=dW)
        return
    dW[...] = 0
    if ids.size == 0:
        return
    # dW[ids] += drows drops repeats, np.add.at is slow: sort, then reduceat sums each run of equal ids
    order = np.argsort(ids, kind="stable")  # (K,)
    sorted_ids = ids[order]  # (K,)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # (U,) first of each run
    dW[sorted_ids[starts]] = np.add.reduceat(drows[order], starts, axis=0)  # (U, D)


class TimeEmbedding:
    """ids (N, T) -> W[ids] (N, T, D) for all steps at once, W (V, D) id -> vector:
    time_layers.TimeEmbedding's numbers with one pick for all T steps, and a backward that sums
    repeated ids in one product or one sorted reduction instead of T np.add.at calls."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]  # (V, D)
        self.ids = None

    def forward(self, ids):
        """ids (N, T) ints -> (N, T, D)."""
        self.ids = np.array(ids)  # (N, T) our own copy
        return self.params[0][self.ids]  # (N, T, D) onehot(id) W is row id of W: pick it, no V-wide vector

    def backward(self, dout):
        """dout (N, T, D) -> None; writes grads in place, summing rows whose ids repeat."""
        D = self.params[0].shape[1]
        scatter_add_rows(self.grads[0], self.ids.reshape(-1), dout.reshape(-1, D))  # (N*T,), (N*T, D)
        return None


class TimeEmbedProjection:
    """ids (N, T) -> the gates' inputs W[ids] Wx + b of every step: a TimeEmbedding's W (V, D) and the
    input weights Wx (D, GH) and bias b (GH,) of the cell that follows it, fused. Shares both layers'
    params and grads arrays; the cell runs forward_projected on the output and backward_projected
    hands its dA back here. Writes the embedding's dW and the cell's dWx and db.
    Its plain twin is time_layers.TimeEmbedding followed by the cell's input product x Wx + b:
    for a vocabulary smaller than N T it picks rows of the product W Wx instead of multiplying.
    """

    def __init__(self, embed, cell):
        self.params = [embed.params[0], cell.params[0], cell.params[2]]  # (V, D), (D, GH), (GH,)
        self.grads = [embed.grads[0], cell.grads[0], cell.grads[2]]  # the very arrays of both layers
        self.ids, self.xs = None, None

    def _by_table(self, K):
        """onehot(id) W Wx is row id of the table W Wx (V, GH): when V < K = N T, the V x D x GH product
        (and V-row ones in backward) is cheaper than K x D x GH ones on the picked rows."""
        return len(self.params[0]) < K

    def table(self, derived):
        """(W Wx + b) scaled (V, GH): row v is the gates' input for id v, scaled as the cell's
        derived record says (derived.scale, derived.b_scaled), so that a step's gates are one row."""
        W, Wx, _ = self.params
        return self._as_gates(W @ Wx, derived)  # (V, GH)

    @staticmethod
    def _as_gates(xWx, derived):
        """x Wx (..., GH) in place -> (x Wx + b) scaled, as the cell's steps take them."""
        xWx *= derived.scale
        xWx += derived.b_scaled
        return xWx

    def forward(self, ids, derived, table=None):
        """ids (N, T) ints -> gates (T, N, GH), time-major: (x_t Wx + b) scaled by derived.scale for
        every step, new memory for the cell to overwrite. derived: the cell's derived(N,
        projected=True); table: table(derived) made while the weights stay as they are, its rows
        then picked whatever N T is."""
        W, Wx, _ = self.params
        self.ids = np.array(ids)  # (N, T) our own copy
        if table is not None or self._by_table(self.ids.size):
            self.xs = None
            table = self.table(derived) if table is None else table  # (V, GH)
            return table[self.ids.T]  # (T, N, GH) rows of the table
        self.xs = W[self.ids.T]  # (T, N, D) picking rows, as in TimeEmbedding
        return self._as_gates(self.xs @ Wx, derived)  # (T, N, GH)

    def backward(self, dout):
        """dout (N, T, GH), the gradient w.r.t. W[ids] Wx + b (unscaled) -> None; writes dW, dWx
        and db in place."""
        W, Wx, _ = self.params
        N, T, GH = dout.shape
        D = W.shape[1]
        ids = self.ids.T.reshape(T * N)  # (T*N,) time-major, as dout's memory usually is
        da = dout.transpose(1, 0, 2).reshape(T * N, GH)  # (T*N, GH) no copy when dout is time-major
        if self.xs is None:
            dtable = np.empty((len(W), GH), dtype=W.dtype)  # (V, GH) dtable[v] = sum of da over ids == v
            scatter_add_rows(dtable, ids, da)
            np.sum(dtable, axis=0, out=self.grads[2])  # db = sum of da's rows = sum of dtable's
            np.matmul(W.T, dtable, out=self.grads[1])  # dWx = sum_k x_k^T da_k = W^T onehot^T da = W^T dtable
            np.matmul(dtable, Wx.T, out=self.grads[0])  # dW = onehot^T (da Wx^T) = dtable Wx^T; no dxs formed
            return None
        np.matmul(self.xs.reshape(T * N, D).T, da, out=self.grads[1])  # dWx = sum_k x_k^T da_k   (D, GH)
        np.sum(da, axis=0, out=self.grads[2])  # db = sum_k da_k                        (GH,)
        scatter_add_rows(self.grads[0], ids, da @ np.ascontiguousarray(Wx.T))  # dx = da Wx^T, rows summed
        return None


