"""
The gist's model as the gist computes it, in Python 3: one-hot column vectors, one np.dot per
product and step, an unshifted softmax, the +-5 clip and Adagrad per array. The reference that
tests and bench.py compare min_char_rnn.py with; never used for training.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn, BSD license)
"""
import numpy as np


def init(V, H, rs):
    """Wxh, Whh, Why drawn as the gist draws them (randn * 0.01 in that order from the
    RandomState rs), zero biases bh, by."""
    Wxh = rs.randn(H, V) * 0.01  # (H, V) input -> hidden
    Whh = rs.randn(H, H) * 0.01  # (H, H) hidden -> hidden
    Why = rs.randn(V, H) * 0.01  # (V, H) hidden -> output
    return [Wxh, Whh, Why, np.zeros((H, 1)), np.zeros((V, 1))]


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """inputs, targets: T ints; hprev (H, 1). Returns loss (summed over T), dWxh, dWhh, dWhy,
    dbh, dby (clipped to [-5, 5]) and the last hidden state (H, 1)."""
    V = Wxh.shape[1]
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))  # (V, 1) one-hot x_t
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # (H, 1)
        ys = np.dot(Why, hs[t]) + by  # (V, 1) unnormalised log-probabilities
        ps[t] = np.exp(ys) / np.sum(np.exp(ys))  # (V, 1) softmax
        loss += -np.log(ps[t][targets[t], 0])  # cross-entropy
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # softmax with cross-entropy: p - onehot
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # into h_t from y_t and from h_{t+1}
        dhraw = (1 - hs[t] * hs[t]) * dh  # tanh' = 1 - h^2
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in (dWxh, dWhh, dWhy, dbh, dby):
        np.clip(dparam, -5, 5, out=dparam)  # against exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def adagrad(params, grads, mems, learning_rate):
    """The gist's update, per array, in place: mem += g^2; param -= lr g / sqrt(mem + 1e-8)."""
    for param, dparam, mem in zip(params, grads, mems):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)


def train(text, iterations, H=100, T=25, learning_rate=0.1, seed=0):
    """The gist's loop over text for `iterations` iterations (sorted vocabulary, data pointer
    reset at the end) -> the loss of every iteration."""
    chars = sorted(set(text))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    params = init(len(chars), H, np.random.RandomState(seed))
    mems = [np.zeros_like(a) for a in params]
    losses, p, hprev = [], 0, None
    for n in range(iterations):
        if p + T + 1 >= len(text) or n == 0:
            hprev, p = np.zeros((H, 1)), 0
        inputs = [char_to_ix[ch] for ch in text[p:p + T]]
        targets = [char_to_ix[ch] for ch in text[p + 1:p + T + 1]]
        loss, *grads, hprev = lossFun(inputs, targets, hprev, *params)
        adagrad(params, grads, mems, learning_rate)
        losses.append(loss)
        p += T
    return losses
