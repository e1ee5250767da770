"""
What both model kinds share for evaluating and sampling: a long text evaluated in chunks, Gumbel-max
noise for drawing from softmax(y / temperature) and the top-k cut.

References:
  https://en.wikipedia.org/wiki/Gumbel_distribution  (the Gumbel-max trick)
"""
import numpy as np


def eval_chunk(V):
    """Positions evaluated per call: keeps the (chunk, V) softmax near 32 MB."""
    return max(64, min(8192, 2 ** 22 // V))


def chunked_nats(ids, chunk, nats_of):
    """Total cross-entropy of ids[1:] given ids[:-1], `chunk` positions a call: nats_of(x, t)
    returns the nats of predicting t from x, the model's state carried from call to call ->
    (nats, count)."""
    nats = 0.0
    for s in range(0, len(ids) - 1, chunk):
        x = ids[s:min(s + chunk, len(ids) - 1)]  # (chunk,)
        nats += nats_of(x, ids[s + 1:s + 1 + len(x)])  # the next token of each
    return nats, max(len(ids) - 1, 0)


def gumbel_noise(rng, shape, temperature, dtype):
    """temperature * g with g ~ Gumbel(0, 1), `shape` (e.g. (steps, K, V)); zeros when temperature
    is 0. argmax(y + temperature g) = argmax(y / temperature + g) draws from softmax(y /
    temperature) without forming probabilities, and stays finite for any tiny temperature."""
    if not temperature:
        return np.zeros(shape, dtype=dtype)  # temperature 0: plain argmax
    noise = rng.random(shape)  # U ~ uniform [0, 1)
    with np.errstate(divide="ignore"):  # U = 0 (p = 2^-53) gives -inf: never drawn
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        np.log(noise, out=noise)  # -g = log(-log U), in place: faster than rng.gumbel
    noise *= -temperature
    return noise.astype(dtype, copy=False)


def keep_top_k(y, top_k):
    """Set every score of y (K, V) below each row's k-th largest to -inf, in place; top_k 0 or
    >= V keeps all."""
    V = y.shape[1]
    if 0 < top_k < V:
        kth = np.partition(y, V - top_k, axis=1)[:, V - top_k, None]  # (K, 1) k-th largest
        y[y < kth] = -np.inf  # below the k-th largest score is never drawn
    return y


def noise_block(K, V):
    """Steps of noise drawn at once for K streams over V tokens (bounds memory near 8 MB)."""
    return max(1, min(1024, 2 ** 20 // (K * V)))
