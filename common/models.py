"""
The book's RNN language models: SimpleRnnlm as chapter 5 writes it, and Rnnlm, the general stacked
RNN/LSTM/GRU model with dropout and weight tying of chapter 6 (tested equal to SimpleRnnlm).

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch05/simple_rnnlm.py,
      ch06/better_rnnlm.py)
  https://arxiv.org/abs/1409.2329  (Zaremba et al. 2014: dropout between stacked LSTM layers)
  https://arxiv.org/abs/1608.05859  (Press & Wolf 2016: tying the input and output embeddings)
"""
import numpy as np

from common.time_layers import (CELLS, TimeAffine, TimeDropout, TimeEmbedding,
                                TimeEmbedProjection, TimeRNN, TimeSoftmaxWithLoss)


def layer_prefixes(cell, num_layers):
    """The recurrent layers' array prefixes: rnn_Wx as in the book for one layer; lstm1_Wx,
    lstm2_Wx, ... for a stack."""
    return [cell] if num_layers == 1 else [f"{cell}{l + 1}" for l in range(num_layers)]


def weight_shapes(vocab_size, wordvec_size, hidden_size, cell, num_layers, tie_weights):
    """Rnnlm's arrays, name -> shape, in the order of its params (a tied model has no affine_W)."""
    V, D, H, G = vocab_size, wordvec_size, hidden_size, len(CELLS[cell].gates)
    shapes = {"embed_W": (V, D)}
    for l, prefix in enumerate(layer_prefixes(cell, num_layers)):
        shapes.update({prefix + "_Wx": (D if l == 0 else H, G * H), prefix + "_Wh": (H, G * H),
                       prefix + "_b": (G * H,)})
    if not tie_weights:
        shapes["affine_W"] = (H, V)
    shapes["affine_b"] = (V,)
    return shapes


class SimpleRnnlm:
    """DLFS2 ch.5: TimeEmbedding -> TimeRNN (stateful) -> TimeAffine, then TimeSoftmaxWithLoss;
    params and grads in the book's order embed_W, rnn_Wx, rnn_Wh, rnn_b, affine_W, affine_b.
    Weights from default_rng(seed): embedding randn / 100, the others randn / sqrt(fan-in)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float64):
        V, D, H = vocab_size, wordvec_size, hidden_size
        randn = np.random.default_rng(seed).standard_normal
        embed_W = (randn((V, D)) / 100).astype(dtype)             # (V, D) id -> word vector
        rnn_Wx = (randn((D, H)) / np.sqrt(D)).astype(dtype)       # (D, H) input -> hidden
        rnn_Wh = (randn((H, H)) / np.sqrt(H)).astype(dtype)       # (H, H) hidden -> hidden
        rnn_b = np.zeros(H, dtype=dtype)                          # (H,) hidden bias
        affine_W = (randn((H, V)) / np.sqrt(H)).astype(dtype)     # (H, V) hidden -> scores
        affine_b = np.zeros(V, dtype=dtype)                       # (V,) output bias

        self.layers = [
            TimeEmbedding(embed_W),
            TimeRNN(rnn_Wx, rnn_Wh, rnn_b, stateful=True),  # h carried across blocks
            TimeAffine(affine_W, affine_b),
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.rnn_layer = self.layers[1]
        self.params, self.grads = [], []  # every layer's arrays: the optimizer updates these
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads

    def forward(self, xs, ts):
        """xs, ts (N, T) ids -> mean cross-entropy over the N*T positions."""
        for layer in self.layers:
            xs = layer.forward(xs)  # (N, T, D), then (N, T, H), then (N, T, V)
        return self.loss_layer.forward(xs, ts)

    def backward(self, dout=1):
        """Backpropagate the last forward (cut at the block's first step); writes self.grads."""
        dout = self.loss_layer.backward(dout)  # (N, T, V)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def reset_state(self):
        self.rnn_layer.reset_state()


class Rnnlm:
    """TimeEmbedding -> num_layers stateful RNN/LSTM/GRU layers -> TimeAffine -> softmax loss.
    Without dropout, a TimeEmbedProjection runs the embedding and the first layer's x Wx as one.
    With dropout > 0, a TimeDropout (masks from rng, a numpy Generator) follows the embedding,
    each layer's output and so precedes the output layer, as in DLFS2's BetterRnnlm.
    tie_weights (needs wordvec_size == hidden_size) makes the output weights embed_W^T.
    Weights are drawn from default_rng(seed): embed randn * embed_std (the book's randn/100 by
    default), others randn/sqrt(fan-in)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, cell="rnn", num_layers=1,
                 dropout=0.0, tie_weights=False, seed=None, dtype=np.float64, rng=None,
                 embed_std=0.01):
        V, D, H, L = vocab_size, wordvec_size, hidden_size, num_layers
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if tie_weights and D != H:
            raise ValueError(f"tie_weights needs wordvec_size == hidden_size ({D} != {H})")
        TimeCell, G = CELLS[cell].time, len(CELLS[cell].gates)
        init = np.random.default_rng(seed)
        self.vocab_size, self.hidden_size, self.cell, self.tied = V, H, cell, tie_weights
        self.names, self.params = [], []  # parallel lists: a tied weight appears once

        def add(name, value):
            self.names.append(name)
            self.params.append(np.asarray(value, dtype=dtype))
            return self.params[-1]

        # (V, D) id -> word vector; divided by 1 / std, the default is the book's randn / 100 bit for bit
        embed_W = add("embed_W", init.standard_normal((V, D)) / (1 / embed_std))
        self.embed = TimeEmbedding(embed_W)
        self.rnns = []
        for l, prefix in enumerate(layer_prefixes(cell, L)):
            fan_in = D if l == 0 else H
            # (D or H, GH) input -> gates; (H, GH) hidden -> gates; (GH,) gate biases
            Wx = add(prefix + "_Wx", init.standard_normal((fan_in, G * H)) / np.sqrt(fan_in))
            Wh = add(prefix + "_Wh", init.standard_normal((H, G * H)) / np.sqrt(H))
            b = add(prefix + "_b", np.zeros(G * H))
            self.rnns.append(TimeCell(Wx, Wh, b, stateful=True))
        if tie_weights:
            affine_W = embed_W.T  # (H, V) a view: the optimizer's update of embed_W moves it too
        else:
            # (H, V) hidden -> scores
            affine_W = add("affine_W", init.standard_normal((H, V)) / np.sqrt(H))
        affine_b = add("affine_b", np.zeros(V))  # (V,) output bias
        self.affine = TimeAffine(affine_W, affine_b)
        self.loss_layer = TimeSoftmaxWithLoss()
        self.dropouts = [TimeDropout(dropout, rng) for _ in range(L + 1)] if dropout > 0 else []
        # no dropout between the embedding and the first layer: fuse embed_W with its Wx (the
        # layers' own arrays); a small vocabulary skips the N*T x D x GH products on embedded rows
        self.embed_proj = None if self.dropouts else TimeEmbedProjection(self.embed, self.rnns[0])
        # grads in the order of params: the layers write into these very arrays
        by_id = {}
        for layer in [self.embed, *self.rnns, self.affine]:
            for p, g in zip(layer.params, layer.grads):
                by_id.setdefault(id(p), g)
        self.grads = [by_id[id(p)] for p in self.params]

    def _drop(self, l, hs, train):
        if not self.dropouts:
            return hs
        self.dropouts[l].train_flg = train
        return self.dropouts[l].forward(hs)

    def frozen(self, N):
        """What predict derives from the weights (the fused embedding table, each layer's halved
        gate columns), made once: pass it to predict while the weights stay as they are, as
        generation does one step at a time, instead of remaking it every call."""
        projected = self.embed_proj is not None
        derived = [rnn.derived(N, projected=l == 0 and projected, reused=True)
                   for l, rnn in enumerate(self.rnns)]
        return self.embed_proj.table(derived[0]) if projected else None, derived  # (V, GH)

    def predict(self, xs, train=False, frozen=None):
        """xs (N, T) ids -> scores (N, T, V); train switches dropout on. Carries the state.
        frozen: frozen(N) made since the weights last changed, or None."""
        table, derived = frozen or (None, [None] * len(self.rnns))
        if self.embed_proj is not None:
            first = derived[0] or self.rnns[0].derived(len(xs), projected=True)
            hs = self.rnns[0].forward_projected(self.embed_proj.forward(xs, first, table), first)
        else:
            hs = self.rnns[0].forward(self._drop(0, self.embed.forward(xs), train), derived[0])
        for l in range(1, len(self.rnns)):
            hs = self.rnns[l].forward(self._drop(l, hs, train), derived[l])  # (N, T, H)
        return self.affine.forward(self._drop(len(self.rnns), hs, train))  # (N, T, V)

    def forward(self, xs, ts, train=True):
        """xs, ts (N, T) ids -> mean cross-entropy (nats) over the N*T positions."""
        return self.loss_layer.forward(self.predict(xs, train), ts)

    def backward(self, dout=1):
        """Backpropagate the last forward (cut at the block's first step); writes self.grads."""
        dhs = self.affine.backward(self.loss_layer.backward(dout))  # (N, T, H)
        for l in reversed(range(len(self.rnns))):
            if self.dropouts:
                dhs = self.dropouts[l + 1].backward(dhs)
            if l == 0 and self.embed_proj is not None:  # layer 1's dA (N, T, GH) to the fused layer
                self.embed_proj.backward(self.rnns[0].backward_projected(dhs))
            else:
                dhs = self.rnns[l].backward(dhs)  # (N, T, D or H)
        if self.embed_proj is None:
            if self.dropouts:
                dhs = self.dropouts[0].backward(dhs)
            self.embed.backward(dhs)
        if self.tied:
            # embed_W is used twice (rows picked, and as the output weights' transpose): its
            # gradient is the sum over both uses
            self.grads[0] += self.affine.grads[0].T  # (V, D)

    # the carried state as one array, so sample.py can repeat it over K streams (axis 1)
    def get_state(self):
        """The carried state as (S, N, H), S = num_layers times the cell's states (h; LSTM: h and
        c); None before the first forward or after reset_state()."""
        if self.rnns[0].h is None:
            return None
        parts = []
        for rnn in self.rnns:
            for name in CELLS[self.cell].states:
                value = getattr(rnn, name)  # None for an LSTM's c set to zeros
                parts.append(np.zeros_like(rnn.h) if value is None else value)
        return np.stack(parts)  # (S, N, H)

    def set_state(self, state):
        """Start the next forward from state (S, N, H), or from zeros if state is None."""
        if state is None:
            return self.reset_state()
        S = len(CELLS[self.cell].states)
        for l, rnn in enumerate(self.rnns):
            rnn.set_state(*state[S * l:S * (l + 1)])

    def reset_state(self):
        for rnn in self.rnns:
            rnn.reset_state()

    def zero_state(self, N):
        S = len(self.rnns) * len(CELLS[self.cell].states)
        return np.zeros((S, N, self.hidden_size), dtype=self.params[0].dtype)  # (S, N, H)
