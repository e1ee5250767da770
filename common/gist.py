"""
The gist's model, read top to bottom in the gist's order: the parameters, lossFun (forward and
backward over T steps), the sampler, and the evaluation of a text. min_char_rnn.py trains it.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (the original min-char-rnn, BSD license)
  https://cs231n.github.io/neural-networks-case-study/  (softmax + cross-entropy gradient p - onehot)
"""
import math

import numpy as np

from common.generation import chunked_nats, eval_chunk, gumbel_noise, keep_top_k, noise_block
from common.fast_layers import scatter_add_rows

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def param_shapes(vocab_size, hidden_size):
    """The gist's parameters and their shapes, column-vector convention (x_t is (V, 1))."""
    H, V = hidden_size, vocab_size
    return {"Wxh": (H, V),   # input -> hidden
            "Whh": (H, H),   # hidden -> hidden
            "Why": (V, H),   # hidden -> output
            "bh": (H, 1),    # hidden bias
            "by": (V, 1)}    # output bias


def num_params(vocab_size, hidden_size):
    return sum(a * b for a, b in param_shapes(vocab_size, hidden_size).values())


class Params(dict):
    """The five arrays under the gist's names (Wxh ... by, or dWxh ... as gradients, or Adagrad's
    mWxh ...), as views of one flat buffer `flat` (P,): clipping and the Adagrad step over all
    five are then one numpy call each instead of five."""

    def __init__(self, vocab_size, hidden_size, dtype=np.float64):
        self.flat = np.zeros(num_params(vocab_size, hidden_size), dtype=dtype)  # (P,) zeros
        start = 0
        for name, shape in param_shapes(vocab_size, hidden_size).items():
            size = shape[0] * shape[1]
            self[name] = self.flat[start:start + size].reshape(shape)  # a view of flat
            start += size


def init_params(vocab_size, hidden_size, seed, dtype=np.float64):
    """The gist's initialisation: randn * 0.01 drawn in the order Wxh, Whh, Why from
    RandomState(seed) (so seed S replays np.random.seed(S) in the gist), zero biases -> Params."""
    rs = np.random.RandomState(seed)
    params = Params(vocab_size, hidden_size, dtype)
    for name in ("Wxh", "Whh", "Why"):
        params[name][...] = rs.randn(*params[name].shape) * 0.01
    return params


def initial_loss(vocab_size, seq_length):
    """The loss at iteration 0, where every character is equally likely: T ln V."""
    return -math.log(1.0 / vocab_size) * seq_length


def lossFun(inputs, targets, hprev, params, clip=5.0, grads=None):
    """Forward and backward pass over T steps of B streams.
    inputs, targets: T ints (one stream) or (B, T) ints; hprev: (H, 1) or (H, B).
    Returns loss (cross-entropy summed over T, averaged over B), dWxh, dWhh, dWhy, dbh, dby
    (clipped elementwise to [-clip, clip]; clip=None leaves them raw) and hlast (like hprev).
    grads: a Params the gradients are written into (None: a new one); they are its arrays."""
    Wxh, Whh, Why, bh, by = (params[name] for name in PARAM_NAMES)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim == 1:  # one stream, as in the gist
        inputs, targets = inputs[None, :], targets[None, :]  # (1, T)
    B, T = inputs.shape
    H, V = Wxh.shape
    dtype = Wxh.dtype

    # forward pass. The states are stored as rows: hs[t + 1] is h_t^T, (B, H), so that every
    # step reads and writes one contiguous block and the products over all T*B steps below are
    # plain matrix multiplies of (T*B, .) views, with no copies.
    ids = inputs.T.reshape(T * B)          # (T*B,) input of step t, stream b at row t*B + b
    tgt = targets.T.reshape(T * B)         # (T*B,) its target
    hs = np.empty((T + 1, B, H), dtype=dtype)  # (T+1, B, H) hs[t + 1] = h_t^T, hs[0] = h_{-1}^T
    hs[0] = hprev.T
    # x_t is one-hot, so Wxh x_t is column x_t of Wxh: picking the columns for all T steps at once
    # is the same math as the gist's V-wide one-hot products, without the (V, T, B) one-hot tensor.
    hraw = Wxh.T[ids].reshape(T, B, H)     # (T, B, H) (Wxh x_t)^T for every step, a new array
    hraw += bh.T                           # (Wxh x_t + bh)^T
    # Each step is three numpy calls writing into arrays made beforehand (the matrix product, the
    # add, tanh): at B = 1 a call's fixed cost outweighs its arithmetic. One stream takes the steps
    # as vectors (H,), so numpy asks BLAS for a matrix-vector product and reads Whh^T as a view.
    if B == 1:
        h_steps, a_steps, Whh_T = hs[:, 0], hraw[:, 0], Whh.T  # (T+1, H), (T, H), (H, H) view
    else:  # rows (B, H) times a contiguous Whh^T: BLAS's matrix product is slower on a view
        h_steps, a_steps, Whh_T = hs, hraw, Whh.T.copy()   # (T+1, B, H), (T, B, H), (H, H)
    hWhh = np.empty_like(h_steps[0])       # (H,) or (B, H) scratch for (Whh h_{t-1})^T
    for h_prev, a, h in zip(h_steps[:-1], a_steps, h_steps[1:]):
        h_prev.dot(Whh_T, out=hWhh)        # (Whh h_{t-1})^T (the method skips np.dot's dispatch)
        a += hWhh                          # (Wxh x_t + Whh h_{t-1} + bh)^T
        np.tanh(a, out=h)                  # h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)
    hs_out = hs[1:].reshape(T * B, H)      # (T*B, H) h_t^T of every step (a view)
    ys = hs_out @ Why.T                    # (T*B, V) (Why h_t)^T
    ys += by.T                             # y_t = Why h_t + by, unnormalised log-probs
    # softmax: subtracting each row's max leaves p_t unchanged and keeps exp() from overflowing
    ys -= ys.max(axis=1, keepdims=True)
    rows = np.arange(T * B)                # (T*B,)
    ps = np.exp(ys)                        # (T*B, V) unnormalised p_t
    sums = ps.sum(axis=1, keepdims=True)   # (T*B, 1)
    # loss_t = -log p_t[target] = log(sum_j exp(y_j)) - y_target
    loss = float(np.log(sums).sum() - ys[rows, tgt].sum()) / B

    # backward pass: compute gradients going backwards
    d = Params(V, H, dtype) if grads is None else grads  # dWxh ... dby, views of d.flat (P,)
    dy = ps                                # (T*B, V) reuses the buffer of ps
    sums *= B                              # (T*B, 1) the loss is a mean over the B streams:
    dy /= sums                             # p_t / B
    dy[rows, tgt] -= 1 / B                 # softmax with cross-entropy gives dy = p - onehot
    np.matmul(dy.T, hs_out, out=d["Why"])  # dWhy = sum_t dy_t h_t^T
    dy.sum(axis=0, out=d["by"][:, 0])      # dby = sum_t dy_t
    dh = dy @ Why                          # (T*B, H) (Why^T dy_t)^T, the gradient into h_t from y_t
    dtanh = np.multiply(hs_out, hs_out)    # (T*B, H) h_t^2
    np.subtract(1, dtanh, out=dtanh)       # tanh' = 1 - h_t^2
    # the steps backwards, as vectors (H,) for one stream and rows (B, H) for several, as forward
    dh_steps = dh.reshape(T, B, H)[:, 0] if B == 1 else dh.reshape(T, B, H)  # view of dh
    dt_steps = dtanh.reshape(T, B, H)[:, 0] if B == 1 else dtanh.reshape(T, B, H)  # view of dtanh
    dh_steps[T - 1] *= dt_steps[T - 1]     # dhraw_{T-1} = (1 - h^2) * dh: no step T sends back
    dh_next = np.empty_like(dh_steps[0])   # (H,) or (B, H) scratch for (Whh^T dhraw_{t+1})^T
    for dhraw_next, dh_t, dt in zip(dh_steps[::-1], dh_steps[-2::-1], dt_steps[-2::-1]):
        dhraw_next.dot(Whh, out=dh_next)       # (Whh^T dhraw_{t+1})^T: h_t feeds h_{t+1} via Whh
        dh_t += dh_next                        # dh_t = Why^T dy_t + Whh^T dhraw_{t+1}
        dh_t *= dt                             # dhraw_t = (1 - h_t^2) * dh_t, backprop through tanh
    dhraw = dh                             # (T*B, H) gradient at the tanh inputs, every step
    np.matmul(dhraw.T, hs[:-1].reshape(T * B, H), out=d["Whh"])  # dWhh = sum_t dhraw_t h_{t-1}^T
    dhraw.sum(axis=0, out=d["bh"][:, 0])   # dbh = sum_t dhraw_t
    # dWxh = sum_t dhraw_t x_t^T adds dhraw_t into column x_t: rows of dWxh^T, summed per id
    # (a one-hot product for V <= 256, a sort-and-reduce beyond: never a (T*B, V) tensor then)
    scatter_add_rows(d["Wxh"].T, ids, dhraw)
    if clip is not None:  # the gist's elementwise clip to [-5, 5], against exploding gradients
        np.clip(d.flat, -clip, clip, out=d.flat)
    hlast = hs[T].T.copy()                 # (H, B) h_{T-1}, the next block's hprev
    return loss, d["Wxh"], d["Whh"], d["Why"], d["bh"], d["by"], hlast


def hidden_step(params, h, ids):
    """One step of the gist's RNN for K streams, plainly: h (H, K) and inputs ids (K,) -> h after
    ids (H, K)."""
    Wxh, Whh, bh = params["Wxh"], params["Whh"], params["bh"]
    return np.tanh(Wxh[:, ids] + Whh @ h + bh)  # (H, K) h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)


def sample(params, h, seed_ix, rng, temperature=1.0, top_k=0):
    """Generate characters for K streams side by side, one step at a time; yields a (K,) int
    array per step, for as long as the caller takes them.
    h: (H, K) state after the inputs before seed_ix (not modified); seed_ix: K ints, the first
    inputs. temperature 0 is greedy argmax; top_k > 0 samples among the k most likely only."""
    Wxh, Whh, Why, bh, by = (params[name] for name in PARAM_NAMES)
    H, V = Wxh.shape
    K = len(seed_ix)
    dtype = Wxh.dtype
    top_k = top_k if 0 < top_k < V else 0    # k >= V keeps every character: no filtering
    # Rows again: hr is h^T, (K, H). h_t is needed twice, for y_t = Why h_t + by and for
    # Whh h_t in the next step, so one product with [Whh^T | Why^T] gives both.
    x_rows = (Wxh + bh).T.copy()             # (V, H) row i is (Wxh x + bh)^T for x = onehot(i)
    # C order: concatenating the transposed views would give Fortran order, which BLAS
    # multiplies more slowly by few rows
    W_next = np.concatenate([Whh, Why]).T.copy()  # (H, H+V) [Whh^T | Why^T]
    z = np.empty((K, H + V), dtype=dtype)   # (K, H+V) [Whh h, Why h] of the last step
    rec, y = z[:, :H], z[:, H:]              # (K, H), (K, V) views
    np.matmul(np.asarray(h.T, dtype=dtype), Whh.T, out=rec)  # (Whh h_{-1})^T
    # each step writes into these arrays made once: at H = 100 a step is a few microseconds, and
    # a new array per operation is a good part of that
    hr = np.empty((K, H), dtype=dtype)       # (K, H) h^T
    scores = np.empty((K, V), dtype=dtype)   # (K, V) y + noise
    ix = np.asarray(seed_ix)                 # (K,)
    block = noise_block(K, V)                # steps of noise drawn at once (bounds memory)
    while True:
        # Gumbel-max: argmax(y + temperature g), g ~ Gumbel(0, 1), draws from softmax(y / temperature)
        noise = gumbel_noise(rng, (block, K, V), temperature, dtype)  # (block, K, V)
        if not top_k:
            noise += by.T                    # fold by into the noise: one add per step less
        for g in noise:
            x_rows.take(ix, axis=0, out=hr)  # (Wxh x + bh)^T, picked into hr: no new array
            hr += rec
            np.tanh(hr, out=hr)              # h = tanh(Wxh x + Whh h_prev + bh)
            hr.dot(W_next, out=z)            # [Whh h, Why h]: rec and y (no matmul dispatch)
            if top_k:
                y += by.T                    # y = Why h + by
                keep_top_k(y, top_k)         # below the k-th largest logit is never drawn
            np.add(y, g, out=scores)
            ix = scores.argmax(axis=1)       # (K,) the sampled characters
            yield ix


def evaluate(params, ids, h=None, chunk=None):
    """Total cross-entropy (nats) of predicting ids[1:] from ids[:-1] as one stream from state h
    (default zero), the state carried across chunks. Returns (nats, number of characters
    predicted, the state after ids[:-1])."""
    H, V = params["Wxh"].shape
    chunk = chunk or eval_chunk(V)
    if h is None:
        h = np.zeros((H, 1), dtype=params["Wxh"].dtype)  # (H, 1)
    grads = Params(V, H, params["Wxh"].dtype)  # written by every chunk, never read

    def nats_of(inputs, targets):
        nonlocal h
        loss, *_, h = lossFun(inputs, targets, h, params, None, grads)
        return loss
    nats, count = chunked_nats(ids, chunk, nats_of)
    return nats, count, h
