"""
One interface to every checkpoint kind. Each kind is one class owning its whole contract: its
arrays and their shapes, the run-defining options with their defaults, the meta fields a run
records with their checks and their values when a run begins; and, loaded, the model as every
script uses it: its tokens, states for K streams, reading tokens, generating, scoring and tracing
a text (every layer's named quantities per position, and the next-token probabilities).
sample.py, visualize.py and export.py use only this; a new kind is one class and one line in KINDS.
"""
import numpy as np

from common import gist
from common.checkpoint import (check_arrays, check_counts, check_fields, is_int, is_num,
                               is_rng_state, is_str, load_checkpoint, one_of, optional)
from common.cli import UserError
from common.generation import chunked_nats, eval_chunk, gumbel_noise, keep_top_k, noise_block
from common.fast_model import FastRnnlm
from common.history import is_history, stored_records
from common.models import EMBED_STD, book_model, weight_shapes
from common.optimizer import OPTIMIZERS
from common.cells import CELLS
from common.vocabulary import LEVELS, Vocabulary, counts_key, input_files

VOCAB_PREVIEW = 40  # tokens shown by info()
# The one-line refusal (exit status 1) of a model whose weights are finite but whose scores are
# not (weights near 1e308 overflow): sample.py and visualize.py say the same.
NOT_FINITE = ("the model's scores are not finite: its weights are damaged or diverged; use "
              "another checkpoint")

# The run-defining options both kinds store: name -> (default, check). Fixed for a run's life.
DATA_OPTIONS = {"dtype": ("float64", one_of("float64", "float32")),
                "val_fraction": (0.1, is_num(0, 1)), "seed": (0, is_int()),
                "encoding": ("utf-8", is_str)}
# What the run contract (common/run.py) records in every kind's meta: the best validation
# loss (None until a validation), and the rest checked where present (older checkpoints lack them).
BEST_VAL_LOSS = {"best_val_loss": optional(is_num())}
RUN_RECORD = {"level": one_of(*LEVELS), "best_val_iter": optional(is_int()), "run_id": is_str,
              "validations_since_best": is_int(), "overfit_noticed": one_of(True, False),
              "history": is_history, "train_seconds": is_num(0)}


def generator(state):
    """A numpy Generator in the given bit_generator.state (as a checkpoint stores it)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def read_checkpoint(path, kinds=None):
    """A checkpoint whose meta record its kind's class accepts -> (arrays, meta, class); kinds:
    the kind names allowed (None: any). One-line UserError otherwise."""
    arrays, meta = load_checkpoint(path, kinds=tuple(KINDS) if kinds is None else kinds)
    cls = KINDS.get(meta.get("kind"))
    if cls is None:
        raise UserError(f"{path} is damaged: unknown model kind {meta.get('kind')!r}")
    cls.check_meta(path, meta)
    extra = sorted(set(arrays) - cls.array_names(meta["options"]))
    if extra:
        raise UserError(f"{path} is damaged: it holds array {extra[0]!r}, which no trainer of "
                        f"{meta['kind']} checkpoints writes")
    return arrays, meta, cls


class Trace:
    """What a model computes along one text read from a zero state.
    states: "<layer>/<name>" -> (T, U) float64, the value after reading tokens[0..t] (names h for
    every cell; c, f, g, i, o for LSTM; z, r, cand for GRU). The next-token distributions after
    reading tokens[0..t] are made on request from the last layer's h and the head (y = h W + b):
    log_probs for some rows (a long text in chunks), probs for all (T, V) at once."""

    def __init__(self, states, hs, head_W, head_b):
        self.states = states
        self.hs = hs            # (T, H) the last layer's h
        self.head_W = head_W    # (H, V) h -> scores
        self.head_b = head_b    # (V,)

    def log_probs(self, start=0, stop=None):
        """(rows, V) float64 log-probabilities of the next token after rows start..stop."""
        return log_softmax_rows(self.hs[start:stop] @ self.head_W + self.head_b)

    @property
    def probs(self):
        return np.exp(self.log_probs())  # (T, V)


def log_softmax_rows(y):
    """y (K, V) scores -> (K, V) float64 log-probabilities, each row's max subtracted first so
    exp stays finite."""
    y = np.asarray(y, dtype=np.float64)  # (K, V)
    y = y - y.max(axis=1, keepdims=True)
    return y - np.log(np.exp(y).sum(axis=1, keepdims=True))


class LanguageModel:
    """What every kind shares. A kind sets `kind`, OPTIONS, SHAPE_OPTIONS and RUN_FIELDS
    (iteration_key names the one counting iterations) and implements weight_shapes(options, V),
    array_names(options) (every array its trainer writes),
    from_checkpoint, and initial_state(K), evaluate(ids, state), generate(state, seed_ix, rng,
    temperature, top_k), step(state, ids), trace(ids), book_layers(), num_params and
    architecture(). States hold the K streams on axis 1."""

    kind = None
    OPTIONS = {}        # the run-defining options: name -> (default, check)
    LATER_OPTIONS = ()  # those added since checkpoints were first written: absent there, the default
    SHAPE_OPTIONS = ()  # the options that give the weights their shapes (--init-from takes them)
    RUN_FIELDS = {}     # where a run stands: meta field -> (check, value when a run begins)
    META_FIELDS = {}    # other meta fields it requires: name -> check
    iteration_key = None  # the RUN_FIELDS entry holding the iterations trained

    # ------------------------------------------------------------------------- the contract

    @classmethod
    def defaults(cls):
        """The run-defining options' defaults: name -> value (the trainer's command line)."""
        return {name: default for name, (default, _) in cls.OPTIONS.items()}

    @classmethod
    def run_state(cls, options, V, meta=None):
        """Where the run stands: the RUN_FIELDS values recorded in meta (a run resumed), or their
        values when a run begins (meta None): name -> value."""
        if meta is not None:
            return {name: meta[name] for name in cls.RUN_FIELDS}
        fresh = {name: begin(options, V) for name, (_, begin) in cls.RUN_FIELDS.items()}
        return {**fresh, "best_val_loss": None}

    @classmethod
    def check_meta(cls, path, meta):
        """The meta record as this kind's trainer writes it: its options, run fields and token
        counts; a one-line UserError naming the first field that is wrong."""
        options = meta.get("options")
        if not isinstance(options, dict):
            raise UserError(f"{path} is damaged: its meta record has no options")
        for name in cls.LATER_OPTIONS:  # an older checkpoint's run had the default
            options.setdefault(name, cls.OPTIONS[name][0])
        check_fields(path, options, {name: ok for name, (_, ok) in cls.OPTIONS.items()}, "option ")
        check_fields(path, meta, {name: ok for name, (ok, _) in cls.RUN_FIELDS.items()})
        check_fields(path, meta, {**cls.META_FIELDS, **BEST_VAL_LOSS})
        check_fields(path, meta, RUN_RECORD, required=False)
        level = meta.get("level", "char")
        V = len(meta["vocab"].split(" ")) if level == "word" else len(meta["vocab"])
        check_counts(path, meta, V)

    # ------------------------------------------------------------------------- the model

    def __init__(self, vocab, meta=None):
        self.vocab = vocab
        self.meta = meta or {}

    @property
    def tokens(self):
        return self.vocab.tokens

    @property
    def level(self):
        return self.vocab.level

    @property
    def history(self):
        """The training curve stored in the checkpoint (list of {iter, loss, val_loss}, nats per
        token), or None for checkpoints without one (format version 1)."""
        return stored_records(self.meta)

    @property
    def input_files(self):
        """The training input: [{name, size, sha256}] (older checkpoints: their one file)."""
        return input_files(self.meta)

    def info(self):
        """What the checkpoint is, as one dict: kind, architecture, parameters, vocabulary,
        training options, iterations and seconds, best validation loss, input files."""
        meta = self.meta
        return {"kind": self.kind, "level": self.level, **self.architecture(),
                "num_params": int(self.num_params), "vocab_size": len(self.vocab),
                "vocab_preview": self.tokens[:VOCAB_PREVIEW], "options": meta.get("options"),
                "iterations": meta.get(self.iteration_key),
                "train_seconds": meta.get("train_seconds"),
                "best_val_loss": meta.get("best_val_loss"), "input_files": self.input_files}

    def log_probs(self, state, ids):
        """Read one token per stream: state (streams on axis 1, not modified), ids (K,) ->
        ((K, V) float64 log-probabilities of each stream's next token, the state after ids)."""
        y, state = self.step(state, np.asarray(ids))
        return log_softmax_rows(y), state

    def beam_search(self, state, first, length, width):
        """The most likely `length` tokens after input `first` from `state` (one stream) that a
        beam of `width` finds -> (ids (length,), their total log-probability in nats). Ties go
        to the earlier beam, then the lower id, so the result is deterministic."""
        V = len(self.vocab)
        scores = np.zeros(1)  # (B,) log-probability of each beam so far
        seqs = np.zeros((1, 0), dtype=np.int64)  # (B, t) each beam's tokens
        ix = np.array([first])  # (B,) each beam's next input
        for _ in range(length):
            lp, state = self.log_probs(state, ix)  # (B, V)
            total = (scores[:, None] + lp).ravel()  # (B * V,) every one-token extension
            best = np.argsort(-total, kind="stable")[:width]  # (B',) the `width` most likely
            parent, ix = np.divmod(best, V)  # (B',) the beam each extends, and its new token
            scores = total[best]
            seqs = np.concatenate([seqs[parent], ix[:, None]], axis=1)  # (B', t + 1)
            state = np.take(state, parent, axis=1)  # streams are on axis 1 for every kind
        return seqs[0], float(scores[0])

    def encode(self, text, what="text"):
        return self.vocab.encode(text, what)

    def token_counts(self):
        """(V,) how often each token occurs in the training text (for drawing a first token)."""
        return np.asarray(self.meta[counts_key(self.level)], dtype=np.float64)

    def prime(self, ids, K=1):
        """The state after reading ids[:-1] from a zero state, repeated for K streams: ids[-1] is
        the next input."""
        state = self.evaluate(ids, self.initial_state(1))[2]
        return np.repeat(state, K, axis=1)

    def score(self, ids):
        """(total log-probability in nats of ids[1:] given what precedes each, count), from a
        zero state."""
        nats, count, _ = self.evaluate(ids, self.initial_state(1))
        return -nats, count


class GistModel(LanguageModel):
    """The gist's tanh RNN (common/gist.py, trained by min_char_rnn.py): params Wxh (H, V), Whh,
    Why, bh, by; states (H, K)."""

    kind = "min_char_rnn"
    OPTIONS = {"hidden_size": (100, is_int(1)), "seq_length": (25, is_int(1)),
               "learning_rate": (0.1, is_num(0, lo_open=True)), "batch_size": (1, is_int(1)),
               **DATA_OPTIONS, "level": ("char", one_of("char", "jamo"))}
    LATER_OPTIONS = ("level",)
    SHAPE_OPTIONS = ("hidden_size", "level")
    RUN_FIELDS = {  # the gist's n, p and smooth_loss (T ln V at first), the samples' generator
        "n": (is_int(), lambda o, V: 0),
        "p": (is_int(), lambda o, V: 0),
        "smooth_loss": (is_num(), lambda o, V: gist.initial_loss(V, o["seq_length"])),
        "rng_state": (is_rng_state, lambda o, V: np.random.default_rng(o["seed"]).bit_generator.state),
    }
    iteration_key = "n"

    @classmethod
    def weight_shapes(cls, options, V):
        return gist.param_shapes(V, options["hidden_size"])

    @classmethod
    def array_names(cls, options):
        """Every array min_char_rnn.py writes: the weights, their Adagrad memories, hprev."""
        return {*gist.PARAM_NAMES, *("m" + n for n in gist.PARAM_NAMES), "hprev"}

    def __init__(self, params, vocab, meta=None):
        super().__init__(vocab, meta)
        self.params = params
        self.hidden_size = params["Whh"].shape[0]

    @classmethod
    def from_checkpoint(cls, path, arrays, meta):
        vocab = Vocabulary.from_meta(meta)
        check_arrays(path, arrays, cls.weight_shapes(meta["options"], len(vocab)))
        return cls({name: arrays[name] for name in gist.PARAM_NAMES}, vocab, meta)

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def architecture(self):
        return {"cell": "rnn", "num_layers": 1, "hidden_size": self.hidden_size}

    def initial_state(self, K):
        return np.zeros((self.hidden_size, K), dtype=self.params["Wxh"].dtype)  # (H, K)

    def step(self, h, ids):
        """h (H, K), ids (K,) -> scores y (K, V) of the next tokens, h after ids (H, K)."""
        h = gist.hidden_step(self.params, h, ids)  # (H, K)
        return (self.params["Why"] @ h + self.params["by"]).T, h  # (K, V) y_t = Why h_t + by

    def evaluate(self, ids, state):
        return gist.evaluate(self.params, ids, state)

    def generate(self, state, seed_ix, rng, temperature=1.0, top_k=0):
        return gist.sample(self.params, state, seed_ix, rng, temperature, top_k)

    def trace(self, ids):
        params = {n: p.astype(np.float64) for n, p in self.params.items()}
        hs = np.empty((len(ids), self.hidden_size))  # (T, H) h_t as rows
        h = np.zeros((self.hidden_size, 1))  # (H, 1)
        for t, ix in enumerate(ids):
            h = gist.hidden_step(params, h, [ix])
            hs[t] = h[:, 0]
        # p_t = softmax(Why h_t + by)
        return Trace({"0/h": hs}, hs, params["Why"].T, params["by"][:, 0])

    def book_layers(self):
        """The model as the book's layers -> (cell, embed_W (V, D), [(Wx, Wh, b)], head_W (H, V),
        head_b (V,), tied). A one-hot x picks row x of embed = Wxh^T, and Wx = I passes it on
        unchanged (D = H): h = tanh(Wxh x + Whh h + bh), y = Why h + by exactly."""
        Wxh, Whh, Why, bh, by = (self.params[n] for n in gist.PARAM_NAMES)
        layer = (np.eye(self.hidden_size, dtype=Whh.dtype),  # (H, H) Wx = I
                 Whh.T,                                      # (H, H) Wh = Whh^T
                 bh[:, 0])                                   # (H,) b = bh
        return "rnn", Wxh.T, [layer], Why.T, by[:, 0], False


class LayerModel(LanguageModel):
    """A model of the book's layers (common.fast_model.FastRnnlm: RNN, LSTM or GRU, any depth, tied or
    not, char or word level); states (S, K, H), S = layers (twice that for LSTM's h and c)."""

    kind = "rnnlm"
    OPTIONS = {"level": ("char", one_of(*LEVELS)), "cell": ("rnn", one_of(*CELLS)),
               "num_layers": (1, is_int(1, 64)), "wordvec_size": (100, is_int(1)),
               "hidden_size": (100, is_int(1)), "dropout": (0.0, is_num(0, 1)),
               "tie_weights": (False, one_of(True, False)), "seq_length": (5, is_int(1)),
               "batch_size": (10, is_int(1)), "optimizer": ("sgd", one_of("sgd", "adagrad", "adam")),
               "learning_rate": (0.1, is_num(0, lo_open=True)),
               "lr_decay": ("none", one_of("none", "cosine", "plateau")),
               "decay_iters": (None, optional(is_int(1))), "max_grad_norm": (0.0, is_num(0)),
               "embed_std": (EMBED_STD, is_num(0, lo_open=True)), "val_file": (None, optional(is_str)),
               "first_tokens": (None, optional(is_int(1))),
               **DATA_OPTIONS}
    LATER_OPTIONS = ("embed_std", "val_file", "first_tokens")
    SHAPE_OPTIONS = ("level", "cell", "num_layers", "wordvec_size", "hidden_size", "tie_weights")
    RUN_FIELDS = {  # the book's iteration k, the learning rate now, Adam's step count, the epoch's
        # running loss, and the generators of the dropout masks and the samples
        "k": (is_int(), lambda o, V: 0),
        "lr": (is_num(0, lo_open=True), lambda o, V: o["learning_rate"]),
        "opt_iter": (is_int(), lambda o, V: 0),
        "epoch_loss_sum": (is_num(), lambda o, V: 0.0),
        "epoch_loss_count": (is_int(), lambda o, V: 0),
        "dropout_rng_state": (is_rng_state, lambda o, V: seeded_state(o["seed"], 1)),
        "sample_rng_state": (is_rng_state, lambda o, V: seeded_state(o["seed"], 2)),
    }
    META_FIELDS = {"level": one_of(*LEVELS)}  # the vocabulary's
    iteration_key = "k"

    @classmethod
    def array_names(cls, options):
        """Every array rnnlm.py writes: the weights, the optimizer's memory of each
        (opt_<slot>_<name>) and the carried state."""
        names = list(cls.weight_shapes(options, 1))  # the names; their shapes are not asked
        slots = OPTIMIZERS[options["optimizer"]](lr=1.0).slots()
        return {*names, *(f"opt_{s}_{n}" for s in slots for n in names), "state"}

    @classmethod
    def weight_shapes(cls, options, V):
        o = options
        return weight_shapes(V, o["wordvec_size"], o["hidden_size"], o["cell"], o["num_layers"],
                             o["tie_weights"])

    @classmethod
    def build(cls, options, V, seed=None, rng=None, book_layers=False):
        """A new FastRnnlm of these options (weights drawn from seed; dropout masks from rng);
        book_layers: the book's model on the plain layers instead (ValueError if none fits)."""
        o = options
        return (book_model if book_layers else FastRnnlm)(
            V, o["wordvec_size"], o["hidden_size"], o["cell"], o["num_layers"], o["dropout"],
            o["tie_weights"], seed=seed, dtype=np.dtype(o["dtype"]), rng=rng,
            embed_std=o["embed_std"])

    def __init__(self, model, vocab, meta=None, read_only=False):
        """read_only: nothing will change the weights (a model loaded from a checkpoint), so steps
        keep what they derive from them (model.frozen) instead of remaking it every call."""
        super().__init__(vocab, meta)
        self.model = model
        self.frozen_by_K = {} if read_only else None  # K streams -> model.frozen(K)

    @classmethod
    def from_checkpoint(cls, path, arrays, meta):
        vocab = Vocabulary.from_meta(meta)
        o = meta["options"]
        shapes = cls.weight_shapes(o, len(vocab))
        check_arrays(path, arrays, shapes)  # before building: the shapes are the file's own
        model = cls.build({**o, "dropout": 0.0}, len(vocab))
        if o["tie_weights"] and "affine_W" in arrays:  # a tied model stores embed_W only
            raise UserError(f"{path} is damaged: it is tied (tie_weights) but stores affine_W")
        for name, p in zip(model.names, model.params):
            p[...] = arrays[name]
        return cls(model, vocab, meta, read_only=True)

    @property
    def num_params(self):
        return sum(p.size for p in self.model.params)

    def architecture(self):
        m, o = self.model, self.meta.get("options", {})
        return {"cell": m.cell, "num_layers": len(m.rnns), "hidden_size": m.hidden_size,
                "wordvec_size": self.model.embed.params[0].shape[1],
                "tie_weights": bool(m.tied), "dropout": o.get("dropout", 0.0)}

    def initial_state(self, K):
        return self.model.zero_state(K)  # (S, K, H)

    def step(self, state, ids):
        """state (S, K, H), ids (K,) -> scores (K, V) of the next tokens, the state after ids."""
        self.model.set_state(state)  # set_state copies: the caller's state is not modified
        y = self.model.predict(ids[:, None], frozen=self.frozen(len(ids)))[:, 0]  # (K, V)
        return y, self.model.get_state()

    def frozen(self, K):
        """model.frozen(K), kept for later steps when the weights are read-only; None otherwise."""
        if self.frozen_by_K is None:
            return None
        if K not in self.frozen_by_K:
            self.frozen_by_K[K] = self.model.frozen(K)
        return self.frozen_by_K[K]

    def evaluate(self, ids, state=None):
        """Total cross-entropy (nats) of ids[1:] given ids[:-1], one stream from `state` (None:
        zeros), carried across chunks, dropout off -> (nats, count, state after ids[:-1])."""
        model = self.model
        model.set_state(state)
        nats, count = chunked_nats(ids, eval_chunk(model.vocab_size), lambda x, t: float(
            model.forward(x[None], t[None], train=False)) * len(x))  # the mean -> the sum
        return nats, count, model.get_state()

    def generate(self, state, seed_ix, rng, temperature=1.0, top_k=0):
        """K streams side by side from state (S, K, H) and K first inputs seed_ix; yields a (K,)
        int array per step, each the model's own predict on a (K, 1) block."""
        model = self.model
        model.set_state(state)
        ix = np.asarray(seed_ix)  # (K,)
        K, V = len(ix), model.vocab_size
        frozen = model.frozen(K)  # the weights don't change while this generator runs
        while True:
            noise = gumbel_noise(rng, (noise_block(K, V), K, V), temperature, np.float64)
            for g in noise:  # (K, V) temperature * Gumbel(0, 1)
                y = keep_top_k(model.predict(ix[:, None], frozen=frozen)[:, 0], top_k)  # (K, V)
                ix = (y + g).argmax(axis=1)  # (K,) Gumbel-max: a draw from softmax(y / temperature)
                yield ix

    def trace(self, ids):
        """Every layer's quantities along ids, from the single-step layers (RNN, LSTM, GRU)."""
        m = self.model
        xs = m.embed.params[0][np.asarray(ids)].astype(np.float64)  # (T, D) embedded inputs
        states = {}
        for l, rnn in enumerate(m.rnns):
            out = layer_trace(CELLS[m.cell], [p.astype(np.float64) for p in rnn.params], xs)
            states.update({f"{l}/{n}": v for n, v in out.items()})
            xs = out["h"]  # (T, H) the next layer's inputs
        W, b = (p.astype(np.float64) for p in m.affine.params)
        return Trace(states, xs, W, b)  # p_t = softmax(h_t W + b) from the last layer's h

    def book_layers(self):
        """The model's own layers -> (cell, embed_W (V, D), [(Wx, Wh, b)] per layer, head_W
        (H, V) (embed_W^T when tied), head_b (V,), tied): the checkpoint's arrays."""
        m = self.model
        head_W, head_b = m.affine.params
        return (m.cell, m.embed.params[0], [tuple(rnn.params) for rnn in m.rnns], head_W, head_b,
                m.tied)


def seeded_state(seed, stream):
    """The state of a generator seeded by (seed, stream): one stream of draws per use."""
    return np.random.default_rng([seed, stream]).bit_generator.state


def layer_trace(cell, params, xs):
    """One recurrent layer's quantities (h, and c or the gates) along its inputs xs (T, D),
    one step layer of the cell's (weights params) at a time from zeros -> name -> (T, H)."""
    step = cell.step(*params)
    T, H = len(xs), params[1].shape[0]
    out = {n: np.empty((T, H)) for n in cell.quantities}  # each (T, H)
    carried = [np.zeros((1, H)) for _ in cell.states]  # (1, H) each: h (and c)
    for t in range(T):
        carried = step.forward(xs[t:t + 1], *carried)  # x (1, D or H)
        carried = carried if len(cell.states) > 1 else [carried]
        for n, value in step.quantities().items():
            out[n][t] = value[0]
    return out


KINDS = {GistModel.kind: GistModel, LayerModel.kind: LayerModel}


def load_model(path):
    """The model in a checkpoint of any kind, weights checked; one-line UserError otherwise."""
    arrays, meta, cls = read_checkpoint(path)
    try:
        return cls.from_checkpoint(path, arrays, meta)
    except KeyError as e:
        raise UserError(f"{path} is damaged: its meta record has no usable {e.args[0]}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path} is damaged: its meta record has unusable model options ({e})"
                        ) from None
