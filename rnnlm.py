"""
The book's RNN language models built from time_layers.py: SimpleRnnlm (ch.5), stacked RNN, LSTM or
GRU models with dropout and weight tying (ch.6), the optimizers, and a trainer command line that
follows min_char_rnn.py's (char or word level).

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch05/simple_rnnlm.py,
      ch05/train_custom_loop.py, ch06/better_rnnlm.py, common/optimizer.py, common/util.py)
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn: the CLI's model)
  https://arxiv.org/abs/1409.2329  (Zaremba et al. 2014: dropout between stacked LSTM layers)
  https://arxiv.org/abs/1608.05859  (Press & Wolf 2016: tying the input and output embeddings)
"""
import argparse
import itertools
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import common
from time_layers import (TimeAffine, TimeDropout, TimeEmbedding, TimeEmbedProjection, TimeGRU,
                         TimeLSTM, TimeRNN, TimeSoftmaxWithLoss)

KIND = "rnnlm"
EOS = "<eos>"  # the word-level token for a line end (DLFS2's PTB reader)
# cell name -> (time layer, number of gate blocks of H columns in its Wx, Wh and b)
CELLS = {"rnn": (TimeRNN, 1), "lstm": (TimeLSTM, 4), "gru": (TimeGRU, 3)}


# ----------------------------------------------------------------------------- models

class Rnnlm:
    """TimeEmbedding -> num_layers stateful RNN/LSTM/GRU layers -> TimeAffine -> softmax loss.
    Without dropout, a TimeEmbedProjection runs the embedding and the first layer's x Wx as one.
    With dropout > 0, a TimeDropout (masks from rng, a numpy Generator) follows the embedding,
    each layer's output and so precedes the output layer, as in DLFS2's BetterRnnlm.
    tie_weights (needs wordvec_size == hidden_size) makes the output weights embed_W^T.
    Weights are drawn from default_rng(seed): embed randn/100, others randn/sqrt(fan-in)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, cell="rnn", num_layers=1,
                 dropout=0.0, tie_weights=False, seed=None, dtype=np.float64, rng=None):
        V, D, H, L = vocab_size, wordvec_size, hidden_size, num_layers
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if tie_weights and D != H:
            raise ValueError(f"tie_weights needs wordvec_size == hidden_size ({D} != {H})")
        TimeCell, G = CELLS[cell]
        init = np.random.default_rng(seed)
        self.vocab_size, self.hidden_size, self.cell, self.tied = V, H, cell, tie_weights
        self.names, self.params = [], []  # parallel lists: a tied weight appears once

        def add(name, value):
            self.names.append(name)
            self.params.append(np.asarray(value, dtype=dtype))
            return self.params[-1]

        embed_W = add("embed_W", init.standard_normal((V, D)) / 100)  # (V, D) id -> word vector
        self.embed = TimeEmbedding(embed_W)
        self.rnns = []
        for l in range(L):
            prefix = cell if L == 1 else f"{cell}{l + 1}"  # rnn_Wx as in the book; lstm1_Wx, ...
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

    def predict(self, xs, train=False):
        """xs (N, T) ids -> scores (N, T, V); train switches dropout on. Carries the state."""
        if self.embed_proj is not None:
            hs = self.rnns[0].forward_projected(self.embed_proj.forward(xs))  # (N, T, H)
        else:
            hs = self.rnns[0].forward(self._drop(0, self.embed.forward(xs), train))  # (N, T, H)
        for l in range(1, len(self.rnns)):
            hs = self.rnns[l].forward(self._drop(l, hs, train))  # (N, T, H)
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
        """The carried state as (S, N, H), S = num_layers (twice that for the LSTM's h and c);
        None before the first forward or after reset_state()."""
        parts = []
        for rnn in self.rnns:
            if rnn.h is None:
                return None
            parts.append(rnn.h)
            if self.cell == "lstm":
                parts.append(rnn.c if rnn.c is not None else np.zeros_like(rnn.h))
        return np.stack(parts)  # (S, N, H)

    def set_state(self, state):
        """Start the next forward from state (S, N, H), or from zeros if state is None."""
        if state is None:
            return self.reset_state()
        for l, rnn in enumerate(self.rnns):
            if self.cell == "lstm":
                rnn.set_state(state[2 * l], state[2 * l + 1])
            else:
                rnn.set_state(state[l])

    def reset_state(self):
        for rnn in self.rnns:
            rnn.reset_state()

    def zero_state(self, N):
        S = len(self.rnns) * (2 if self.cell == "lstm" else 1)
        return np.zeros((S, N, self.hidden_size), dtype=self.params[0].dtype)  # (S, N, H)


class SimpleRnnlm(Rnnlm):
    """DLFS2 ch.5: TimeEmbedding -> TimeRNN(stateful) -> TimeAffine -> TimeSoftmaxWithLoss;
    params and grads in the book's order embed_W, rnn_Wx, rnn_Wh, rnn_b, affine_W, affine_b."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float64):
        super().__init__(vocab_size, wordvec_size, hidden_size, cell="rnn", seed=seed, dtype=dtype)


# ----------------------------------------------------------------------------- optimizers

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

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter = 0
        self.m, self.v = None, None

    def allocate(self, params):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def update(self, params, grads):
        if self.m is None:
            self.allocate(params)
        self.iter += 1
        # lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t): m and v start at zero, this undoes the bias
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m += (1 - self.beta1) * (g - m)      # m = beta1 m + (1 - beta1) g
            v += (1 - self.beta2) * (g * g - v)  # v = beta2 v + (1 - beta2) g^2
            p -= lr_t * m / (np.sqrt(v) + 1e-7)

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


# ----------------------------------------------------------------------------- data

def get_batch(xs, ts, N, T, k):
    """The book's minibatch for iteration k: row i reads xs[(i * jump + k * T + t) % M] for
    t < T, with M = len(xs) and jump = M // N; ts at the same indices. Returns (x, t), (N, T)."""
    M = len(xs)
    jump = M // N
    idx = (np.arange(N)[:, None] * jump + k * T + np.arange(T)[None, :]) % M  # (N, T)
    return xs[idx], ts[idx]


def split_words(text):
    """Whitespace-separated words, with an EOS token for every line end."""
    lines = text.split("\n")
    words = []
    for line in lines[:-1]:
        words += line.split()
        words.append(EOS)
    return words + lines[-1].split()


def build_word_vocab(words):
    """Returns (tokens, ids, counts): tokens sorted (same corpus, same ids), ids an int32 array."""
    tokens, ids, counts = np.unique(np.array(words), return_inverse=True, return_counts=True)
    return [str(w) for w in tokens], ids.astype(np.int32).reshape(-1), counts


def encode_words(text, tokens, what="text"):
    """text -> int32 ids of its words under an existing token list; unknown words: UserError."""
    index = {w: i for i, w in enumerate(tokens)}
    words = split_words(text)
    missing = sorted({w for w in words if w not in index})
    if missing:
        raise common.UserError(f"{what} has {len(missing)} word(s) not in the model's vocabulary "
                               f"of {len(tokens)}: " + ", ".join(map(repr, missing[:20]))
                               + (" ..." if len(missing) > 20 else ""))
    return np.array([index[w] for w in words], dtype=np.int32)


def token_text(tokens, level):
    """Yield the text of a stream of tokens: characters as they are; words joined by spaces,
    EOS as a line break."""
    at_line_start = True
    for tok in tokens:
        if level == "char":
            yield tok
        elif tok == EOS:
            at_line_start = True
            yield "\n"
        else:
            yield tok if at_line_start else " " + tok
            at_line_start = False


# ----------------------------------------------------------------------------- evaluating, sampling

def evaluate(model, ids, state=None, chunk=None):
    """Total cross-entropy (nats) of ids[1:] given ids[:-1], one stream from `state` (default
    zeros), carried across chunks, dropout off. Returns (nats, count, state after ids[:-1]);
    the model is left in that state."""
    V = model.vocab_size
    chunk = chunk or max(64, min(8192, 2 ** 22 // V))  # keeps the (chunk, V) softmax near 32 MB
    model.set_state(state)
    nats = 0.0
    for s in range(0, len(ids) - 1, chunk):
        x = ids[s:min(s + chunk, len(ids) - 1)]  # (chunk,)
        t = ids[s + 1:s + 1 + len(x)]            # (chunk,) the next token of each
        nats += float(model.forward(x[None], t[None], train=False)) * len(x)  # mean -> sum
    return nats, max(len(ids) - 1, 0), model.get_state()


def sample(model, state, seed_ix, rng, temperature=1.0, top_k=0):
    """Generate K streams side by side from state (S, K, H) (or None: zeros) and K first inputs
    seed_ix; yields a (K,) int array per step. Each step is the model's own predict on a
    (K, 1) block. temperature 0 is greedy; top_k > 0 draws among the k most likely only."""
    V = model.vocab_size
    top_k = top_k if 0 < top_k < V else 0
    model.set_state(state)
    ix = np.asarray(seed_ix)  # (K,)
    while True:
        y = model.predict(ix[:, None])[:, 0]  # (K, V) scores for the next token
        if top_k:
            kth = np.partition(y, V - top_k, axis=1)[:, V - top_k, None]  # (K, 1) k-th largest
            y[y < kth] = -np.inf  # below the k-th largest score is never drawn
        if temperature:
            # Gumbel-max: argmax(y / temperature + g), g ~ Gumbel(0, 1), draws from
            # softmax(y / temperature) without forming probabilities; written as
            # argmax(y + temperature g), the same argmax, finite for any tiny temperature
            y += temperature * rng.gumbel(size=y.shape)  # (K, V)
        ix = y.argmax(axis=1)  # (K,)
        yield ix


def model_from_checkpoint(path, arrays, meta):
    """Rebuild the model of an rnnlm checkpoint, its weights checked and loaded."""
    o = meta["options"]
    V = len(meta_tokens(meta))
    model = Rnnlm(V, o["wordvec_size"], o["hidden_size"], o["cell"], o["num_layers"], 0.0,
                  o["tie_weights"], dtype=np.dtype(o["dtype"]))
    common.check_arrays(path, arrays, {n: p.shape for n, p in zip(model.names, model.params)})
    for name, p in zip(model.names, model.params):
        p[...] = arrays[name]
    return model


def meta_tokens(meta):
    """The token list stored in meta["vocab"]: its characters, or words joined by spaces."""
    return meta["vocab"].split(" ") if meta["level"] == "word" else list(meta["vocab"])


class RnnlmAdapter:
    """An rnnlm checkpoint behind sample.py's model interface (see sample.CharRnn): tokens,
    level, initial_state(K), feed(ids, state), generate(...), score(ids). States are (S, K, H)."""

    def __init__(self, path, arrays, meta):
        try:
            self.tokens = meta_tokens(meta)
            self.level = meta["level"]
            self.model = model_from_checkpoint(path, arrays, meta)
        except (KeyError, TypeError, ValueError) as e:
            raise common.UserError(f"{path} is damaged: its meta record has no usable "
                                   f"{e.args[0] if isinstance(e, KeyError) else 'model options'}"
                                   ) from None

    def initial_state(self, K):
        return self.model.zero_state(K)  # (S, K, H)

    def feed(self, ids, state):
        """The state after reading ids[:-1] (one stream): ids[-1] is the next input."""
        return evaluate(self.model, ids, state)[2]

    def generate(self, state, seed_ix, rng, temperature, top_k):
        return sample(self.model, state, seed_ix, rng, temperature, top_k)

    def score(self, ids):
        """Total log-probability (nats) of ids[1:] given what precedes each, from a zero state."""
        nats, count, _ = evaluate(self.model, ids)
        return -nats, count


# ----------------------------------------------------------------------------- training

def build_parser():
    """The command line: every option with a type, a default and its unit."""
    ap = argparse.ArgumentParser(
        description="Train the book's RNN language model (DLFS2 ch.5-6) on a text file.")
    i, f = common.positive_int, common.nonnegative_int
    ap.add_argument("input", nargs="?", help="UTF-8 text file to train on (required unless "
                    "--resume, which reuses the stored input)")
    model = ap.add_argument_group("model, data and optimiser (stored in the checkpoint)")
    model.add_argument("--level", choices=("char", "word"), default="char",
                       help="tokens: characters (default), or whitespace-separated words with "
                            f"{EOS} for line ends")
    model.add_argument("--cell", choices=tuple(CELLS), default="rnn",
                       help="recurrent layer: rnn (default, tanh, ch.5), lstm or gru")
    model.add_argument("--num-layers", type=i, default=1,
                       help="stacked recurrent layers (default 1)")
    model.add_argument("--wordvec-size", type=i, default=100,
                       help="embedding width D (default 100)")
    model.add_argument("--hidden-size", type=i, default=100, help="hidden units H (default 100)")
    model.add_argument("--dropout", type=common.fraction, default=0.0,
                       help="dropout ratio after the embedding and every layer (default 0: none)")
    model.add_argument("--tie-weights", action="store_true", default=False,
                       help="output weights = embedding transposed (needs --wordvec-size == "
                            "--hidden-size)")
    model.add_argument("--seq-length", type=i, default=5,
                       help="time steps per stream per iteration, the book's time size T "
                            "(default 5)")
    model.add_argument("--batch-size", type=i, default=10,
                       help="streams N read side by side from N offsets (default 10)")
    model.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                       help="sgd (default, as ch.5), adagrad or adam")
    model.add_argument("--learning-rate", type=common.positive_float, default=0.1,
                       help="learning rate (default 0.1)")
    model.add_argument("--lr-decay", choices=("none", "cosine", "plateau"), default="none",
                       help="none (default); cosine to 0.1 x over --decay-iters; plateau: divide "
                            "by 4 when a validation loss is not the best so far (ch.6)")
    model.add_argument("--decay-iters", type=i, default=None,
                       help="iterations of the cosine decay (default: the run's --max-iters or "
                            "--max-epochs)")
    model.add_argument("--max-grad-norm", type=common.nonnegative_float, default=0.0,
                       help="clip the gradients' global L2 norm to this (default 0: no clipping, "
                            "as ch.5; ch.6 uses 0.25)")
    model.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="float64 (default, reference-exact) or float32 (~2x faster)")
    model.add_argument("--val-fraction", type=common.fraction, default=0.1,
                       help="fraction of the tokens, from the end, held out for validation "
                            "(default 0.1)")
    model.add_argument("--seed", type=common.nonnegative_int, default=0,
                       help="seed for the weights, the dropout masks and the samples (default 0)")
    model.add_argument("--encoding", default="utf-8", help="text encoding of INPUT (default utf-8)")
    run = ap.add_argument_group("run control (may change on --resume)")
    run.add_argument("--max-iters", type=f, default=None,
                     help="stop after this many iterations in all (default: no limit)")
    run.add_argument("--max-epochs", type=f, default=None,
                     help="stop after this many epochs of len // (N * T) iterations (default: no "
                          "limit; the book runs 100); with neither limit, run until interrupted")
    run.add_argument("--time-budget", type=common.nonnegative_float, default=0,
                     help="stop after this many seconds of training, evaluation and saving not "
                          "counted (default 0: no limit); with --lr-decay cosine and no "
                          "--decay-iters the decay follows this clock (not resumable exactly)")
    run.add_argument("--eval-every-seconds", type=common.nonnegative_float, default=0,
                     help="also evaluate every this many seconds of training (default 0: off)")
    run.add_argument("--out", default=None, help="checkpoint file (default: out/rnnlm-<input "
                     "name>.npz, or the --resume file); the best by validation loss is kept "
                     "beside it as <name>.best.npz")
    run.add_argument("--sample-every", type=f, default=0,
                     help="print a sample every N iterations (default 0: never)")
    run.add_argument("--sample-length", type=i, default=200,
                     help="tokens per printed sample (default 200)")
    common.add_run_options(run)
    return ap


# options that define the model, the data or the optimiser: fixed for the life of a run
RUN_DEFINING = ("level", "cell", "num_layers", "wordvec_size", "hidden_size", "dropout",
                "tie_weights", "seq_length", "batch_size", "optimizer", "learning_rate", "lr_decay",
                "decay_iters", "max_grad_norm", "dtype", "val_fraction", "seed", "encoding")


def resolve_options(argv):
    """Parse argv; with --resume, take the run-defining options from the checkpoint and refuse
    a different value given on the command line. Returns (args, checkpoint or None)."""
    args = build_parser().parse_args(argv)
    given = common.given_options(build_parser(), argv, RUN_DEFINING)
    if args.resume is None:
        if args.input is None:
            raise common.UserError("give an INPUT text file (or --resume CHECKPOINT)")
        return args, None
    return args, common.resume_run(args, given, RUN_DEFINING, KIND)


def load_data(args, meta=None):
    """Read, tokenize and split the corpus -> (tokens, counts, train ids, val ids, sha, nbytes)."""
    text, sha, nbytes = common.read_text(args.input, args.encoding)
    if meta is not None:
        common.check_same_input(args.input, sha, nbytes, meta)
    if args.level == "word":
        words = split_words(text)
        if not words:
            raise common.UserError(f"{args.input} holds no words")
        tokens, ids, counts = build_word_vocab(words)
    else:
        vocab, ids, counts = common.build_vocab(text)
        tokens = list(vocab)
    split = int(len(ids) * (1 - args.val_fraction))
    train, val = ids[:split], ids[split:]
    N, T, unit = args.batch_size, args.seq_length, "words" if args.level == "word" else "characters"
    if (len(train) - 1) // N < T:
        raise common.UserError(
            f"the training text has {len(train)} {unit}, too few for --batch-size {N} and "
            f"--seq-length {T}: each of the {N} rows needs at least T = {T} inputs and their "
            f"targets, so at least {N * T + 1} {unit}; use a longer text or smaller values")
    common.check_val_split(val, args.val_fraction, unit)
    return tokens, counts, train, val, sha, nbytes


def perplexity(loss):
    """exp(mean loss), inf where that overflows (a diverging run)."""
    return math.exp(loss) if loss < 700 else float("inf")


MIN_LR_FRACTION = 0.1  # cosine decays to lr / 10, as nanoGPT's min_lr


def scheduled_lr(args, k, lr_now, train_seconds=0.0):
    """Learning rate for iteration k (0-based): constant, cosine (over --decay-iters, or over
    --time-budget seconds of training), or plateau's current value."""
    if args.lr_decay == "cosine":
        if args.decay_iters is None:  # decaying over the time budget
            frac = min(train_seconds / args.time_budget, 1.0)
        else:
            frac = min(k, args.decay_iters) / args.decay_iters
        return args.learning_rate * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION)
                                     * 0.5 * (1 + math.cos(math.pi * frac)))
    return lr_now


def main(argv=None):
    args, resumed = resolve_options(argv)
    if args.out is None:
        stem = os.path.splitext(os.path.basename(args.input))[0]
        args.out = os.path.join("out", f"rnnlm-{stem}.npz")
    meta = resumed[1] if resumed else None
    tokens, counts, train, val, sha, nbytes = load_data(args, meta)
    if args.tie_weights and args.wordvec_size != args.hidden_size:
        raise common.UserError(f"--tie-weights needs --wordvec-size ({args.wordvec_size}) equal "
                               f"to --hidden-size ({args.hidden_size})")
    N, T, V = args.batch_size, args.seq_length, len(tokens)
    xs, ts = train[:-1], train[1:]  # the book's inputs and their next tokens
    iters_per_epoch = max(1, len(xs) // (N * T))  # the book's max_iters per epoch
    max_iters = args.max_iters
    if args.max_epochs is not None:
        max_iters = min(x for x in (max_iters, args.max_epochs * iters_per_epoch) if x is not None)
    if args.lr_decay == "cosine" and args.decay_iters is None and not args.time_budget:
        if not max_iters:
            raise common.UserError("--lr-decay cosine needs --decay-iters, --max-iters, "
                                   "--max-epochs or --time-budget")
        args.decay_iters = max_iters
    common.prepare_output(args.out)
    log = common.open_log(args.log)
    unit = "word" if args.level == "word" else "char"
    print(f"data has {len(train) + len(val)} {unit}s, {V} unique ({len(train)} train, "
          f"{len(val)} validation); {iters_per_epoch} iterations per epoch.")
    print("options: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))
    dtype = np.dtype(args.dtype)
    # three generators from --seed: the weights (inside the model), dropout masks, samples
    drop_rng = np.random.default_rng([args.seed, 1])
    sample_rng = np.random.default_rng([args.seed, 2])
    model = Rnnlm(V, args.wordvec_size, args.hidden_size, args.cell, args.num_layers, args.dropout,
                  args.tie_weights, seed=args.seed, dtype=dtype, rng=drop_rng)
    optimizer = OPTIMIZERS[args.optimizer](lr=args.learning_rate)
    optimizer.allocate(model.params)  # zero memory now, so every checkpoint holds it
    S = model.zero_state(N).shape[0]
    if resumed:
        arrays, meta = resumed
        shapes = {n: p.shape for n, p in zip(model.names, model.params)}
        slots = optimizer.slots()
        common.check_arrays(args.resume, arrays, {
            **shapes, **{f"opt_{s}_{n}": shp for s in slots for n, shp in shapes.items()},
            "state": (S, N, args.hidden_size)})
        for name, p in zip(model.names, model.params):
            p[...] = arrays[name]
        for s, slot in slots.items():
            for name, buf in zip(model.names, slot):
                buf[...] = arrays[f"opt_{s}_{name}"]
        if isinstance(optimizer, Adam):
            optimizer.iter = meta["opt_iter"]
        model.set_state(arrays["state"])
        k, lr_now, best_val = meta["k"], meta["lr"], meta["best_val_loss"]
        total_loss, loss_count = meta["epoch_loss_sum"], meta["epoch_loss_count"]
        drop_rng.bit_generator.state = meta["dropout_rng_state"]
        sample_rng.bit_generator.state = meta["sample_rng_state"]
        print(f"resuming {args.resume} at iteration {k}")
    else:
        k, lr_now, best_val = 0, args.learning_rate, None
        total_loss, loss_count = 0.0, 0
        if os.path.exists(args.out):  # never silently lose yesterday's model
            os.replace(args.out, common.sibling(args.out, "prev"))
            print(f"kept the existing {args.out} as {common.sibling(args.out, 'prev')}")
    eval_ids = val

    def save(path):
        if not all(np.isfinite(p).all() for p in model.params):  # never write a broken model
            raise common.UserError(f"weights are not finite at iteration {k}; not saved", 1)
        arrays = dict(zip(model.names, model.params))
        for s, slot in optimizer.slots().items():
            arrays.update({f"opt_{s}_{n}": buf for n, buf in zip(model.names, slot)})
        state = model.get_state()
        arrays["state"] = state if state is not None else model.zero_state(N)  # (S, N, H)
        common.save_checkpoint(path, arrays, {
            "format_version": common.FORMAT_VERSION, "kind": KIND, "level": args.level,
            # word level: the tokens joined by single spaces (a word never holds whitespace)
            "vocab": " ".join(tokens) if args.level == "word" else "".join(tokens),
            ("token_counts" if args.level == "word" else "char_counts"): counts.tolist(),
            "options": {o: getattr(args, o) for o in RUN_DEFINING},
            "input": os.path.abspath(args.input), "input_bytes": nbytes, "input_sha256": sha,
            "k": k, "lr": lr_now, "opt_iter": getattr(optimizer, "iter", 0),
            "best_val_loss": best_val, "epoch_loss_sum": total_loss, "epoch_loss_count": loss_count,
            "dropout_rng_state": drop_rng.bit_generator.state,
            "sample_rng_state": sample_rng.bit_generator.state})

    def validate():
        nonlocal best_val, lr_now
        train_state = model.get_state()  # validation is its own stream; training resumes after
        nats, count, _ = evaluate(model, eval_ids)
        model.set_state(train_state)
        val_loss = nats / count
        tqdm.write(f"iter {k}: val loss {val_loss:.4f} nats/{unit}, {val_loss / math.log(2):.4f} "
                   f"bits/{unit}, perplexity {perplexity(val_loss):.3f}")
        if log:
            log.write(common.json_line(iter=k, val_loss=val_loss, val_bits=val_loss / math.log(2),
                                       val_perplexity=perplexity(val_loss), unit=unit,
                                       train_seconds=train_seconds))
        if math.isfinite(val_loss) and (best_val is None or val_loss < best_val):
            best_val = val_loss
            save(common.sibling(args.out, "best"))
        elif args.lr_decay == "plateau":
            lr_now /= 4.0  # ch.6's rule: no better than the best so far -> lr / 4
            tqdm.write(f"iter {k}: learning rate now {lr_now:g}")

    def print_sample():
        train_state = model.get_state()
        start = None if train_state is None else train_state[:, :1]  # (S, 1, H) row 0's state
        x, _ = get_batch(xs, ts, N, T, k)
        steps = sample(model, start, x[:1, 0], sample_rng)
        ids = [x[0, 0]] + [ix[0] for ix in itertools.islice(steps, args.sample_length - 1)]
        model.set_state(train_state)
        tqdm.write("----\n" + "".join(token_text((tokens[i] for i in ids), args.level)) + "\n----")

    stop = common.StopFlag()
    bar = tqdm(total=max_iters, initial=k, unit="it", dynamic_ncols=True, disable=None,
               mininterval=0.5)
    t_last, k_last, loss_sum, loss_n = time.perf_counter(), k, 0.0, 0
    train_seconds = 0.0  # time spent in training iterations only (for --time-budget)
    next_eval = args.eval_every_seconds
    while max_iters is None or k < max_iters:
        if args.sample_every and k % args.sample_every == 0:
            print_sample()
        t_start = time.perf_counter()
        x, t = get_batch(xs, ts, N, T, k)  # (N, T), (N, T)
        loss = float(model.forward(x, t))
        if not math.isfinite(loss):
            raise common.UserError(
                f"the loss became {loss} at iteration {k}: training diverged; the last saved "
                f"checkpoint is untouched; try a smaller --learning-rate (now {lr_now:g}) or "
                "--max-grad-norm", 1)
        model.backward()
        if args.max_grad_norm:
            clip_grads(model.grads, args.max_grad_norm)
        lr_now = scheduled_lr(args, k, lr_now, train_seconds)
        optimizer.lr = lr_now
        optimizer.update(model.params, model.grads)
        train_seconds += time.perf_counter() - t_start
        total_loss, loss_count = total_loss + loss, loss_count + 1
        loss_sum, loss_n = loss_sum + loss, loss_n + 1
        if log and args.log_every and k % args.log_every == 0:
            log.write(common.json_line(iter=k, loss=loss, perplexity=perplexity(loss), lr=lr_now))
        k += 1
        bar.update(1)
        now = time.perf_counter()
        if now - t_last > 1.0:
            mean = loss_sum / loss_n
            bar.set_postfix_str(f"loss {mean:.3f}, ppl {perplexity(mean):.2f}, "
                                f"{(k - k_last) * N * T / (now - t_last) / 1000:.1f}k {unit}s/s")
            t_last, k_last, loss_sum, loss_n = now, k, 0.0, 0
        if k % iters_per_epoch == 0:  # the book's per-epoch line: perplexity = exp(mean loss)
            tqdm.write(f"| epoch {k // iters_per_epoch} | iter {k} | train perplexity "
                       f"{perplexity(total_loss / loss_count):.2f}")
            total_loss, loss_count = 0.0, 0
        finished = (max_iters is not None and k >= max_iters) or \
            bool(args.time_budget and train_seconds >= args.time_budget)
        timed_eval = bool(args.eval_every_seconds and train_seconds >= next_eval)
        if timed_eval:
            next_eval = (train_seconds // args.eval_every_seconds + 1) * args.eval_every_seconds
        if len(val) and (finished or timed_eval or (args.eval_every and k % args.eval_every == 0)):
            validate()
        if finished or stop.signum or (args.save_every and k % args.save_every == 0):
            save(args.out)
        if stop.signum:
            bar.close()
            print(f"interrupted at iteration {k}: saved to {args.out}", file=sys.stderr)
            return stop.exit_status
        if finished:
            break
    bar.close()
    print(f"done: {k} iterations; saved to {args.out}" if k else
          "done: 0 iterations, nothing saved")
    return 0


if __name__ == "__main__":
    common.run(lambda: main())
