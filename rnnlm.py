"""
The book's trainer (DLFS2 ch.5's custom loop) for the RNN language model of common/fast_model.py:
char or word level, RNN, LSTM or GRU, stacked, with dropout and tying; --book-layers trains the
book's own models (common/models.py) on its plain layers instead. The command line follows
min_char_rnn.py's.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch05/train_custom_loop.py,
      ch06/train_better_rnnlm.py)
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn: the command line's model)
"""
import itertools
import math

import numpy as np
from tqdm import tqdm

from common import cli, options
from common.checkpoint import check_arrays
from common.cli import UserError, fraction, nonnegative_float, nonnegative_int, positive_float
from common.cli import perplexity, positive_int, ppl_text
from common.interface import LayerModel, generator
from common.models import BOOK_MODELS, book_class
from common.optimizer import OPTIMIZERS, Adam, clip_grads
from common.run import Run
from common.cells import CELLS
from common.vocabulary import EOS, LEVELS, read_corpus, split_ids

DEFAULTS = LayerModel.defaults()  # ch.5's batch 10, wordvec 100, hidden 100, time 5, lr 0.1
DIVERGED_HINT = "try a smaller --learning-rate or --max-grad-norm"  # when the loss is not finite


def build_parser():
    """The command line: every option with a type, a default and its unit."""
    ap, model = options.trainer_parser(
        "Train the book's RNN language model (DLFS2 ch.5-6) on a text file.",
        "required unless --resume, which reuses the stored input",
        "  python rnnlm.py data/corpus.txt --max-iters 3000        # chapter 5's model and loop\n"
        "  python rnnlm.py mytext.txt --cell lstm --num-layers 2 --optimizer adam \\\n"
        "      --learning-rate 0.005 --embed-std 0.5 --time-budget 120\n"
        "  python rnnlm.py words.txt --level word --cell gru --optimizer adam --learning-rate 0.005 \\\n"
        "      --embed-std 0.5 --max-epochs 20")
    d = DEFAULTS
    model.add_argument("--level", choices=LEVELS, default=d["level"],
                       help="tokens: characters (default); jamo: characters with every Hangul "
                            "syllable taken apart into its letters (put together again in "
                            f"samples); or whitespace-separated words with {EOS} for line ends")
    model.add_argument("--cell", choices=tuple(CELLS), default=d["cell"],
                       help="recurrent layer: rnn (default, tanh, ch.5), lstm or gru")
    options.add_sizes(model, d, (
        ("--num-layers", positive_int, "stacked recurrent layers"),
        ("--wordvec-size", positive_int, "embedding width D"),
        ("--hidden-size", positive_int, "hidden units H"),
        ("--seq-length", positive_int, "time steps per stream per iteration, the book's time size T"),
        ("--batch-size", positive_int, "streams N read side by side from N offsets"),
        ("--learning-rate", positive_float, "learning rate")))
    model.add_argument("--embed-std", type=positive_float, default=d["embed_std"],
                       help="standard deviation of the embedding's initial weights (default "
                            "0.01, the book's randn / 100; about 0.5 learns faster with Adam)")
    model.add_argument("--val-file", default=d["val_file"],
                       help="validate on this text instead of the end of INPUT (all of which then "
                            "trains), read in the training vocabulary: e.g. PTB's ptb.valid.txt")
    model.add_argument("--first-tokens", type=positive_int, default=d["first_tokens"],
                       help="train and validate on the first N tokens of INPUT only, in the "
                            "vocabulary of those (default: all); the book's ch. 5 takes PTB's "
                            "first 1000 words")
    model.add_argument("--dropout", type=fraction, default=d["dropout"],
                       help="dropout ratio after the embedding and every layer (default 0: none)")
    model.add_argument("--tie-weights", action="store_true", default=d["tie_weights"],
                       help="output weights = embedding transposed (needs --wordvec-size == "
                            "--hidden-size)")
    model.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default=d["optimizer"],
                       help="sgd (default, as ch.5), adagrad or adam")
    model.add_argument("--lr-decay", choices=("none", "cosine", "plateau"), default=d["lr_decay"],
                       help="none (default); cosine to 0.1 x over --decay-iters (or, without them, "
                            "over this run's --time-budget: not resumable exactly); plateau: divide "
                            "by 4 when a validation loss is not the best so far, validating once "
                            "an epoch unless --eval-every says otherwise (ch.6)")
    model.add_argument("--decay-iters", type=positive_int, default=d["decay_iters"],
                       help="iterations of the cosine decay (default: the run's --max-iters or "
                            "--max-epochs)")
    model.add_argument("--max-grad-norm", type=nonnegative_float, default=d["max_grad_norm"],
                       help="clip the gradients' global L2 norm to this (default 0: no clipping, "
                            "as ch.5; ch.6 uses 0.25)")
    options.add_data_options(model, "the weights, the dropout masks and the samples", d)
    add_run_control(ap.add_argument_group("run control (may change on --resume)"))
    return ap


def add_run_control(run):
    run.add_argument("--book-layers", action="store_true",
                     help="train the book's own model on the plain layers of "
                          "common/time_layers.py (a loop over one step layer per time step): "
                          f"{BOOK_MODELS}. The same numbers as the default fast layers, several "
                          "times slower: for reading the book beside a run")
    run.add_argument("--max-iters", type=nonnegative_int, default=None,
                     help="stop after this many iterations in all (default: no limit)")
    run.add_argument("--max-epochs", type=nonnegative_int, default=None,
                     help="stop after this many epochs of len // (N * T) iterations (default: no "
                          "limit; the book runs 100); with neither limit, run until interrupted")
    run.add_argument("--budget-clock", choices=("wall", "training"), default="wall",
                     help="what --time-budget (and a cosine decay over it) counts: wall time "
                          "(default), or training time, validation, saving and --page left out")
    run.add_argument("--eval-every-seconds", type=nonnegative_float, default=0,
                     help="also evaluate every this many seconds of training (default 0: off)")
    run.add_argument("--out", default=None, help="checkpoint file (default: out/rnnlm-<input "
                     "name>.npz, or the --resume file); the best by validation loss is kept "
                     "beside it as <name>.best.npz")
    options.add_print_options(run, "a sample and the mean loss since the last one")
    options.add_run_options(run)


def start(argv):
    """Parse the options and start the run (options.start_options), the options checked
    together and --out defaulting to a name made from INPUT -> (args, resumed, init)."""
    args, resumed, init = options.start_options(build_parser(), argv, LayerModel)
    if not args.input:
        raise UserError("give an INPUT text file (or --resume CHECKPOINT)")
    if args.tie_weights and args.wordvec_size != args.hidden_size:
        raise UserError(f"--tie-weights needs --wordvec-size ({args.wordvec_size}) equal "
                        f"to --hidden-size ({args.hidden_size})")
    if args.book_layers:
        try:
            book_class(args.cell, args.num_layers, args.dropout, args.tie_weights)
        except ValueError as e:
            raise UserError(f"--book-layers: {e}; drop --book-layers for these options") from None
    if args.out is None:
        args.out = options.default_out("rnnlm", args.input)
    return args, resumed, init


def load_data(args, resumed, init):
    """Read, tokenize and split the corpus (the very files of the run being resumed; or encoded
    in the vocabulary of --init-from's checkpoint, init) -> options.Corpus."""
    vocab, ids, counts, files = options.load_corpus(args, resumed, init)
    if args.val_file:  # all of INPUT trains; the validation text is read in its vocabulary
        train = ids
        val = read_corpus([args.val_file], args.encoding, args.level, vocab, " (--val-file)")[1]
    else:
        train, val = split_ids(ids, args.val_fraction, vocab.unit_name)
    N, T, unit = args.batch_size, args.seq_length, vocab.unit_name + "s"
    if (len(train) - 1) // N < T:
        raise UserError(
            f"the training text has {len(train)} {unit}, too few for --batch-size {N} and "
            f"--seq-length {T}: each of the {N} rows needs at least T = {T} inputs and their "
            f"targets, so at least {N * T + 1} {unit}; use a longer text or smaller values")
    shapes = LayerModel.weight_shapes(vars(args), len(vocab))
    summary = (f"data has {len(ids)} {unit}, {len(vocab)} unique ({len(train)} train, "
               f"{len(val)} validation); {iterations_per_epoch(args, train)} iterations per "
               f"epoch; {sum(math.prod(s) for s in shapes.values())} parameters.")
    return options.Corpus(vocab, counts, files, train, val, summary)


def iterations_per_epoch(args, train):
    """The book's max_iters per epoch: len // (N * T) of the inputs."""
    return max(1, (len(train) - 1) // (args.batch_size * args.seq_length))


def get_batch(xs, ts, N, T, k):
    """The book's minibatch for iteration k: row i reads xs[(i * jump + k * T + t) % M] for
    t < T, with M = len(xs) and jump = M // N; ts at the same indices. Returns (x, t), (N, T)."""
    M = len(xs)
    jump = M // N
    idx = (np.arange(N)[:, None] * jump + k * T + np.arange(T)[None, :]) % M  # (N, T)
    return xs[idx], ts[idx]


MIN_LR_FRACTION = 0.1  # cosine decays to lr / 10, as nanoGPT's min_lr


def scheduled_lr(args, k, lr_now, budget_seconds=0.0):
    """Learning rate for iteration k (0-based): constant, cosine (over --decay-iters, or over
    this run's --time-budget, budget_seconds of it spent), or plateau's current value."""
    if args.lr_decay == "cosine":
        if args.decay_iters is None:  # decaying over the time budget
            frac = min(budget_seconds / args.time_budget, 1.0)
        else:
            frac = min(k, args.decay_iters) / args.decay_iters
        return args.learning_rate * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION)
                                     * 0.5 * (1 + math.cos(math.pi * frac)))
    return lr_now


def iteration_limit(args, iters_per_epoch):
    """The last iteration (None: run until interrupted); fills in --decay-iters for cosine. A
    resumed cosine decay over the time budget is refused: its schedule cannot go on."""
    max_iters = args.max_iters
    if args.resume and args.lr_decay == "cosine" and args.decay_iters is None:
        raise UserError(f"{args.resume} decays its learning rate over its --time-budget (--lr-decay "
                        "cosine without --decay-iters), a schedule a resumed run cannot continue: "
                        f"start a new run from its weights with --init-from {args.resume}")
    if args.max_epochs is not None:
        max_iters = min(x for x in (max_iters, args.max_epochs * iters_per_epoch) if x is not None)
    if args.lr_decay == "cosine" and args.decay_iters is None and not args.time_budget:
        if not max_iters:
            raise UserError("--lr-decay cosine needs --decay-iters, --max-iters, --max-epochs "
                            "or --time-budget")
        args.decay_iters = max_iters
    return max_iters


def build(args, V, resumed, init):
    """The model, its optimizer and where the run stands (LayerModel.RUN_FIELDS): fresh, from
    --init-from's weights, or restored from --resume -> (model, optimizer, state, dropout
    generator, sample generator)."""
    state = LayerModel.run_state(vars(args), V, resumed[1] if resumed else None)
    # three generators from --seed: the weights (inside the model), dropout masks, samples
    drop_rng, sample_rng = generator(state["dropout_rng_state"]), generator(state["sample_rng_state"])
    model = LayerModel.build(vars(args), V, seed=args.seed, rng=drop_rng, book_layers=args.book_layers)
    optimizer = OPTIMIZERS[args.optimizer](lr=args.learning_rate)
    optimizer.allocate(model.params)  # zero memory now, so every checkpoint holds it
    shapes = LayerModel.weight_shapes(vars(args), V)
    if init:
        check_arrays(args.init_from, init[0], shapes)
        for name, p in zip(model.names, model.params):
            p[...] = init[0][name]
        print(f"starting from the weights of {args.init_from}")
    if resumed:
        arrays, slots = resumed[0], optimizer.slots()
        check_arrays(args.resume, arrays, {
            **shapes, **{f"opt_{s}_{n}": shp for s in slots for n, shp in shapes.items()},
            "state": model.zero_state(args.batch_size).shape})
        for name, p in zip(model.names, model.params):
            p[...] = arrays[name]
        for s, slot in slots.items():
            for name, buf in zip(model.names, slot):
                buf[...] = arrays[f"opt_{s}_{name}"]
        if isinstance(optimizer, Adam):
            optimizer.iter = state["opt_iter"]
        model.set_state(arrays["state"])
        print(f"resuming {args.resume} at iteration {state['k']}")
    return model, optimizer, state, drop_rng, sample_rng


def checkpoint_arrays(model, optimizer, N):
    """The weights, the optimizer's memory (opt_<slot>_<name>) and the carried state (S, N, H)."""
    arrays = dict(zip(model.names, model.params))
    for slot, bufs in optimizer.slots().items():
        arrays.update({f"opt_{slot}_{name}": buf for name, buf in zip(model.names, bufs)})
    carried = model.get_state()
    arrays["state"] = carried if carried is not None else model.zero_state(N)  # (S, N, H)
    return arrays


def sample_text(lm, first, length, rng):
    """`length` tokens sampled from the training stream's row 0 state, `first` its next input,
    as text; the training state is left as it was."""
    train_state = lm.model.get_state()
    start = None if train_state is None else train_state[:, :1]  # (S, 1, H) row 0's state
    steps = lm.generate(start, [first], rng)
    ids = [first] + [ix[0] for ix in itertools.islice(steps, length - 1)]
    lm.model.set_state(train_state)
    return lm.vocab.decode(ids)


def print_epoch(k, iters_per_epoch, total_loss, loss_count):
    """The book's line at the end of an epoch: its mean training perplexity. Returns the
    epoch's running loss and count, started anew (0.0, 0)."""
    tqdm.write(f"| epoch {k // iters_per_epoch} | iter {k} | train perplexity "
               f"{ppl_text(perplexity(total_loss / loss_count))}")
    return 0.0, 0


def update(model, optimizer, args, lr):
    """After backward: clip the gradients' global norm (--max-grad-norm), then one step of the
    optimizer at learning rate lr."""
    if args.max_grad_norm:
        clip_grads(model.grads, args.max_grad_norm)
    optimizer.lr = lr
    optimizer.update(model.params, model.grads)


def main(argv=None):
    np.seterr(all="ignore")  # a diverging run is caught by run.check, not warned about
    args, resumed, init = start(argv)
    vocab, counts, files, train, val, summary = load_data(args, resumed, init)
    run = Run(args, vocab.unit, resumed[1] if resumed else None, DIVERGED_HINT)  # checks --out, --log
    options.print_start(summary, args, LayerModel)
    N, T, iters_per_epoch = args.batch_size, args.seq_length, iterations_per_epoch(args, train)
    if args.lr_decay == "plateau" and args.eval_every is None and not args.eval_every_seconds:
        args.eval_every = iters_per_epoch  # the book's rule looks at one validation an epoch
    xs, ts = train[:-1], train[1:]  # the book's inputs and their next tokens
    model, optimizer, state, drop_rng, sample_rng = build(args, len(vocab), resumed, init)
    lm = LayerModel(model, vocab)  # the model as sample.py sees it: evaluating, sampling
    run.report.tokens_per_char = vocab.tokens_per_char(val)  # jamo: validation per character too
    k, lr_now, total_loss, loss_count = (
        state["k"], state["lr"], state["epoch_loss_sum"], state["epoch_loss_count"])

    def save(path):
        run.save(path, checkpoint_arrays(model, optimizer, N), {
            **options.data_meta(LayerModel, vocab, counts, args, files),
            "k": k, "lr": lr_now, "opt_iter": getattr(optimizer, "iter", 0),
            "epoch_loss_sum": total_loss, "epoch_loss_count": loss_count,
            "dropout_rng_state": drop_rng.bit_generator.state,
            "sample_rng_state": sample_rng.bit_generator.state, **run.meta()}, k)

    def validate_now():  # the plateau schedule may lower the learning rate
        nonlocal lr_now
        lr_now = validate(run, lm, val, k, save, lr_now)

    # True when a resumed run is at its limit already
    finished = run.begin(k, iteration_limit(args, iters_per_epoch))
    while not finished:
        x, t = get_batch(xs, ts, N, T, k)  # (N, T), (N, T)
        print_now = run.report.print_due(k)  # every --sample-every iterations, or by the clock
        if print_now:
            run.report.print_sample(k, sample_text(lm, x[0, 0], args.sample_length, sample_rng))
        loss = float(model.forward(x, t))
        run.check(loss, "the loss", k)
        model.backward()
        lr_now = scheduled_lr(args, k, lr_now, run.budget_seconds())
        update(model, optimizer, args, lr_now)
        total_loss, loss_count = total_loss + loss, loss_count + 1
        run.report.trained(k, loss, loss=loss, perplexity=perplexity(loss), lr=lr_now)
        if print_now:
            run.report.print_recent_loss(k)  # iter k, loss: mean since the last such line, perplexity
        k += 1
        run.report.progress(k, N * T, lambda: f"loss {loss:.3f}, ppl {ppl_text(perplexity(loss))}")
        if k % iters_per_epoch == 0:  # the book's per-epoch line: perplexity = exp(mean loss)
            total_loss, loss_count = print_epoch(k, iters_per_epoch, total_loss, loss_count)
        # validate and save when due; the iteration limit, --time-budget or --patience
        finished = run.end_iteration(k, validate_now if len(val) else None,
                                     lambda: save(args.out))
        if run.stop_requested:
            return run.interrupted(k)
    if run.report.final_sample_due(k):  # what the model writes now, after the last save
        first = get_batch(xs, ts, N, T, k)[0][0, 0]
        run.report.print_sample(k, sample_text(lm, first, args.sample_length, sample_rng))
    return run.finish(k)


def validate(run, lm, val, k, save, lr_now):
    """The validation loss after k iterations, as its own stream (training's carried state is
    put back after); returns the learning rate, divided by 4 under --lr-decay plateau when the
    loss is not the best so far (ch.6's rule)."""
    train_state = lm.model.get_state()
    nats, count, _ = lm.evaluate(val)
    lm.model.set_state(train_state)
    if not run.validated(k, nats / count, save) and run.args.lr_decay == "plateau":
        lr_now /= 4.0
        tqdm.write(f"iter {k}: learning rate now {lr_now:g}")
    return lr_now


if __name__ == "__main__":
    cli.run(main)
