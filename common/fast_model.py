"""
FastRnnlm, the general language model the trainers run by default: any cell (RNN, LSTM, GRU),
any depth, dropout and tying, on the fast layers (common/fast_layers.py). Where the book's models
(common/models.py) cover the options it computes their numbers: tests/test_models.py checks it.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch06/better_rnnlm.py)
  https://arxiv.org/abs/1409.2329  (Zaremba et al. 2014: dropout between stacked LSTM layers)
  https://arxiv.org/abs/1608.05859  (Press & Wolf 2016: tying the input and output embeddings)
"""
import numpy as np

from common.cells import CELLS
from common.fast_layers import TimeEmbedding, TimeEmbedProjection
from common.fast_output import TimeAffineSoftmaxWithLoss
from common.models import (EMBED_STD, StateAsArray, book_weights, grads_of, layer_prefixes,
                           weight_shapes)
from common.time_layers import TimeDropout


class FastRnnlm(StateAsArray):
    """TimeEmbedding -> num_layers stateful RNN/LSTM/GRU layers -> TimeAffine -> softmax loss,
    the last two as one TimeAffineSoftmaxWithLoss (self.affine). Without dropout, a TimeEmbedProjection runs the embedding and the first layer's x Wx as one.
    With dropout > 0, a TimeDropout (masks from rng, a numpy Generator) follows the embedding,
    each layer's output and so precedes the output layer, as in DLFS2's BetterRnnlm.
    tie_weights (needs wordvec_size == hidden_size) makes the output weights embed_W^T.
    Weights as models.book_weights draws them from seed (embed_std the embedding's spread)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, cell="rnn", num_layers=1,
                 dropout=0.0, tie_weights=False, seed=None, dtype=np.float64, rng=None,
                 embed_std=EMBED_STD):
        V, D, H, L = vocab_size, wordvec_size, hidden_size, num_layers
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if tie_weights and D != H:
            raise ValueError(f"tie_weights needs wordvec_size == hidden_size ({D} != {H})")
        self.vocab_size, self.hidden_size, self.cell, self.tied = V, H, cell, tie_weights
        shapes = weight_shapes(V, D, H, cell, L, tie_weights)
        w = book_weights(shapes, seed, dtype, embed_std)
        self.names = list(shapes)  # parallel to params: a tied weight appears once
        self.params = [w[name] for name in self.names]
        self.embed = TimeEmbedding(w["embed_W"])  # (V, D)
        # the gradient stops at each block's first step: no layer's dh (or dc) is read
        self.rnns = [CELLS[cell].fast(w[p + "_Wx"], w[p + "_Wh"], w[p + "_b"], stateful=True,
                                      state_grads=False) for p in layer_prefixes(cell, L)]
        # (H, V): a tied model's is a view of embed_W, so the optimizer's update moves it too
        self.affine = TimeAffineSoftmaxWithLoss(w["embed_W"].T if tie_weights else w["affine_W"],
                                                w["affine_b"])
        self.dropouts = [TimeDropout(dropout, rng) for _ in range(L + 1)] if dropout > 0 else []
        # no dropout between the embedding and the first layer: fuse embed_W with its Wx (the
        # layers' own arrays); a small vocabulary skips the N*T x D x GH products on embedded rows
        self.embed_proj = None if self.dropouts else TimeEmbedProjection(self.embed, self.rnns[0])
        self.grads = grads_of([self.embed, *self.rnns, self.affine], self.params)

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
        return self.affine.scores(self._hidden(xs, train, frozen))  # (N, T, V)

    def _hidden(self, xs, train, frozen=None):
        """xs (N, T) ids -> the output layer's input (N, T, H), dropped out when training."""
        table, derived = frozen or (None, [None] * len(self.rnns))
        if self.embed_proj is not None:
            first = derived[0] or self.rnns[0].derived(len(xs), projected=True)
            hs = self.rnns[0].forward_projected(self.embed_proj.forward(xs, first, table), first)
        else:
            hs = self.rnns[0].forward(self._drop(0, self.embed.forward(xs), train), derived[0])
        for l in range(1, len(self.rnns)):
            hs = self.rnns[l].forward(self._drop(l, hs, train), derived[l])  # (N, T, H)
        return self._drop(len(self.rnns), hs, train)  # (N, T, H)

    def forward(self, xs, ts, train=True):
        """xs, ts (N, T) ids -> mean cross-entropy (nats) over the N*T positions."""
        return self.affine.forward(self._hidden(xs, train), ts)

    def backward(self, dout=1):
        """Backpropagate the last forward (cut at the block's first step); writes self.grads."""
        dhs = self.affine.backward(dout)  # (N, T, H)
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
