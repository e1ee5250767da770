"""
The book's RNN language models on the book's plain layers (common/time_layers.py): SimpleRnnlm as
chapter 5 writes it, Rnnlm (one LSTM layer) and BetterRnnlm (two LSTM layers, dropout, tied
weights) as chapter 6 writes them; appendix C's GRU may stand in for the LSTM. The trainers run
common/fast_model.py's FastRnnlm by default, tested equal to these.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch05/simple_rnnlm.py,
      ch06/rnnlm.py, ch06/better_rnnlm.py)
  https://arxiv.org/abs/1409.2329  (Zaremba et al. 2014: dropout between stacked LSTM layers)
  https://arxiv.org/abs/1608.05859  (Press & Wolf 2016: tying the input and output embeddings)
"""
import numpy as np

from common.cells import CELLS
from common.time_layers import (TimeAffine, TimeDropout, TimeEmbedding, TimeGRU, TimeLSTM,
                                TimeRNN, TimeSoftmaxWithLoss)

# The book's models, what each covers: --book-layers accepts these and names them otherwise
BOOK_MODELS = ("SimpleRnnlm (--cell rnn, one layer), Rnnlm (--cell lstm or gru, one layer) and "
               "BetterRnnlm (--cell lstm or gru, --num-layers 2 --tie-weights, any --dropout)")


def layer_prefixes(cell, num_layers):
    """The recurrent layers' array prefixes: rnn_Wx as in the book for one layer; lstm1_Wx,
    lstm2_Wx, ... for a stack."""
    return [cell] if num_layers == 1 else [f"{cell}{l + 1}" for l in range(num_layers)]


def weight_shapes(vocab_size, wordvec_size, hidden_size, cell, num_layers, tie_weights):
    """A model's arrays, name -> shape, in the order of its params (a tied model has no affine_W)."""
    V, D, H, G = vocab_size, wordvec_size, hidden_size, len(CELLS[cell].gates)
    shapes = {"embed_W": (V, D)}
    for l, prefix in enumerate(layer_prefixes(cell, num_layers)):
        shapes.update({prefix + "_Wx": (D if l == 0 else H, G * H), prefix + "_Wh": (H, G * H),
                       prefix + "_b": (G * H,)})
    if not tie_weights:
        shapes["affine_W"] = (H, V)
    shapes["affine_b"] = (V,)
    return shapes


EMBED_STD = 0.01  # the spread of the embedding's initial weights: the book's randn / 100


def book_weights(shapes, seed, dtype, embed_std=EMBED_STD):
    """The book's initial weights for `shapes` (weight_shapes' order), drawn from
    default_rng(seed): embedding randn * embed_std (the book's randn / 100 by default), biases
    zero, the others randn / sqrt(fan-in) -> name -> array."""
    randn = np.random.default_rng(seed).standard_normal
    weights = {}
    for name, shape in shapes.items():
        if name == "embed_W":
            w = randn(shape) / (1 / embed_std)  # (V, D) id -> word vector; / 100 bit for bit by default
        elif len(shape) == 1:
            w = np.zeros(shape)  # (GH,) or (V,) biases
        else:
            w = randn(shape) / np.sqrt(shape[0])  # (fan-in, fan-out): scores of order 1
        weights[name] = w.astype(dtype)
    return weights


def grads_of(layers, params):
    """The layers' gradient arrays in the order of params: the very arrays each layer's backward
    writes (a tied weight, held by two layers, takes the first layer's)."""
    by_id = {}
    for layer in layers:
        for p, g in zip(layer.params, layer.grads):
            by_id.setdefault(id(p), g)
    return [by_id[id(p)] for p in params]


class StateAsArray:
    """What sample.py, validation and checkpoints need of any of these models beside the book's
    methods: the carried state of self.rnns as one array, so it can be saved or repeated over K
    streams (axis 1). A model sets rnns, cell, hidden_size and params."""

    def get_state(self):
        """The carried state as (S, N, H), S = layers times the cell's states (h; LSTM: h and c);
        None before the first forward or after reset_state()."""
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
        state = np.asarray(state, dtype=self.params[0].dtype)  # (S, N, H); layers never write it
        for l, rnn in enumerate(self.rnns):
            rnn.set_state(*state[S * l:S * (l + 1)])

    def reset_state(self):
        for rnn in self.rnns:
            rnn.reset_state()

    def zero_state(self, N):
        S = len(self.rnns) * len(CELLS[self.cell].states)
        return np.zeros((S, N, self.hidden_size), dtype=self.params[0].dtype)  # (S, N, H)

    def frozen(self, N):
        """Nothing to derive from the weights once (see FastRnnlm.frozen)."""
        return None


class BookModel(StateAsArray):
    """What the three book models share: their layers in a list, run in order."""

    def _collect(self, shapes, weights):
        """The names, params and grads lists in shapes' order: the layers write these very arrays."""
        self.names = list(shapes)
        self.params = [weights[name] for name in self.names]
        self.grads = grads_of(self.layers, self.params)

    def predict(self, xs, train=False, frozen=None):
        """xs (N, T) ids -> scores (N, T, V); train switches dropout on. Carries the state."""
        for layer in self.layers:
            if isinstance(layer, TimeDropout):
                layer.train_flg = train
            xs = layer.forward(xs)  # (N, T, D), then (N, T, H) per layer, then (N, T, V)
        return xs

    def forward(self, xs, ts, train=True):
        """xs, ts (N, T) ids -> mean cross-entropy (nats) over the N*T positions."""
        score = self.predict(xs, train)  # (N, T, V)
        return self.loss_layer.forward(score, ts)

    def backward(self, dout=1):
        """Backpropagate the last forward (cut at the block's first step); writes self.grads."""
        dout = self.loss_layer.backward(dout)  # (N, T, V)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class SimpleRnnlm(BookModel):
    """DLFS2 ch.5: TimeEmbedding -> TimeRNN (stateful) -> TimeAffine, then TimeSoftmaxWithLoss;
    params and grads in the book's order embed_W, rnn_Wx, rnn_Wh, rnn_b, affine_W, affine_b."""

    cell = "rnn"

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float64,
                 embed_std=EMBED_STD):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.vocab_size, self.hidden_size, self.tied = V, H, False
        shapes = weight_shapes(V, D, H, "rnn", 1, False)
        w = book_weights(shapes, seed, dtype, embed_std)
        self.layers = [
            TimeEmbedding(w["embed_W"]),                                  # (V, D) id -> word vector
            TimeRNN(w["rnn_Wx"], w["rnn_Wh"], w["rnn_b"], stateful=True),  # h carried across blocks
            TimeAffine(w["affine_W"], w["affine_b"]),                     # (H, V), (V,) -> scores
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.rnn_layer = self.layers[1]
        self.embed, self.rnns, self.affine = self.layers[0], [self.rnn_layer], self.layers[2]
        self._collect(shapes, w)


class Rnnlm(BookModel):
    """DLFS2 ch.6: TimeEmbedding -> TimeLSTM (stateful) -> TimeAffine, then TimeSoftmaxWithLoss;
    cell="gru" puts appendix C's TimeGRU in the LSTM's place."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, cell="lstm", seed=None,
                 dtype=np.float64, embed_std=EMBED_STD):
        V, D, H = vocab_size, wordvec_size, hidden_size
        TimeCell = {"lstm": TimeLSTM, "gru": TimeGRU}[cell]
        self.vocab_size, self.hidden_size, self.cell, self.tied = V, H, cell, False
        shapes = weight_shapes(V, D, H, cell, 1, False)
        w = book_weights(shapes, seed, dtype, embed_std)
        self.layers = [
            TimeEmbedding(w["embed_W"]),
            TimeCell(w[cell + "_Wx"], w[cell + "_Wh"], w[cell + "_b"], stateful=True),
            TimeAffine(w["affine_W"], w["affine_b"]),
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.lstm_layer = self.layers[1]
        self.embed, self.rnns, self.affine = self.layers[0], [self.lstm_layer], self.layers[2]
        self._collect(shapes, w)


class BetterRnnlm(BookModel):
    """DLFS2 ch.6: TimeEmbedding -> TimeDropout -> TimeLSTM -> TimeDropout -> TimeLSTM ->
    TimeDropout -> TimeAffine with the embedding's transpose as its weights (tying); dropout masks
    from rng, a numpy Generator. cell="gru" puts appendix C's TimeGRU in the LSTMs' place."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, cell="lstm", dropout_ratio=0.5,
                 seed=None, dtype=np.float64, rng=None, embed_std=EMBED_STD):
        V, D, H = vocab_size, wordvec_size, hidden_size
        TimeCell = {"lstm": TimeLSTM, "gru": TimeGRU}[cell]
        self.vocab_size, self.hidden_size, self.cell, self.tied = V, H, cell, True
        shapes = weight_shapes(V, D, H, cell, 2, True)
        w = book_weights(shapes, seed, dtype, embed_std)
        c1, c2 = layer_prefixes(cell, 2)
        self.layers = [
            TimeEmbedding(w["embed_W"]),
            TimeDropout(dropout_ratio, rng),
            TimeCell(w[c1 + "_Wx"], w[c1 + "_Wh"], w[c1 + "_b"], stateful=True),
            TimeDropout(dropout_ratio, rng),
            TimeCell(w[c2 + "_Wx"], w[c2 + "_Wh"], w[c2 + "_b"], stateful=True),
            TimeDropout(dropout_ratio, rng),
            TimeAffine(w["embed_W"].T, w["affine_b"]),  # (H, V) a view: tying needs D == H
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.lstm_layers = [self.layers[2], self.layers[4]]
        self.drop_layers = [self.layers[1], self.layers[3], self.layers[5]]
        self.embed, self.rnns, self.affine = self.layers[0], self.lstm_layers, self.layers[6]
        self._collect(shapes, w)

    def backward(self, dout=1):
        """As BookModel's; embed_W is used twice (rows picked, and transposed as the output
        weights): its gradient is the sum over both uses, as the book's remove_duplicate makes it."""
        dout = super().backward(dout)
        self.grads[0] += self.affine.grads[0].T  # (V, D)
        return dout


def book_class(cell, num_layers, dropout, tie_weights):
    """The book's model class that covers these options; ValueError naming the book's models
    when none does."""
    if num_layers == 1 and not tie_weights and not dropout:
        return SimpleRnnlm if cell == "rnn" else Rnnlm
    if cell != "rnn" and num_layers == 2 and tie_weights:
        return BetterRnnlm
    raise ValueError(f"the book's models are {BOOK_MODELS}")


def book_model(vocab_size, wordvec_size, hidden_size, cell="rnn", num_layers=1, dropout=0.0,
               tie_weights=False, seed=None, dtype=np.float64, rng=None, embed_std=EMBED_STD):
    """The book's model for these options, FastRnnlm's arguments (see book_class)."""
    V, D, H, cls = vocab_size, wordvec_size, hidden_size, book_class(cell, num_layers, dropout,
                                                                     tie_weights)
    if cls is SimpleRnnlm:
        return SimpleRnnlm(V, D, H, seed=seed, dtype=dtype, embed_std=embed_std)
    if cls is Rnnlm:
        return Rnnlm(V, D, H, cell, seed=seed, dtype=dtype, embed_std=embed_std)
    return BetterRnnlm(V, D, H, cell, dropout, seed=seed, dtype=dtype, rng=rng, embed_std=embed_std)
