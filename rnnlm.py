"""
The book's trainer (DLFS2 ch.5's custom loop) for the RNN language models of common/models.py:
char or word level, RNN, LSTM or GRU, stacked, with dropout and tying; the command line follows
min_char_rnn.py's.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch05/train_custom_loop.py,
      ch06/train_better_rnnlm.py)
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn: the command line's model)
"""
import argparse
import itertools
import math
import os
import time

import numpy as np
from tqdm import tqdm

from common import cli, training
from common.checkpoint import check_arrays
from common.cli import (UserError, fraction, nonnegative_float, nonnegative_int, positive_float,
                        positive_int)
from common.interface import LayerModel
from common.models import CELLS, Rnnlm
from common.optimizer import OPTIMIZERS, Adam, clip_grads
from common.training import perplexity
from common.vocabulary import EOS

KIND = LayerModel.kind


def build_parser():
    """The command line: every option with a type, a default and its unit."""
    ap = argparse.ArgumentParser(
        description="Train the book's RNN language model (DLFS2 ch.5-6) on a text file.")
    i, f = positive_int, nonnegative_int
    ap.add_argument("input", nargs="*", help="UTF-8 text files or folders (their files) to train "
                    "on, joined in sorted path order (required unless --resume, which reuses the "
                    "stored input)")
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
    model.add_argument("--dropout", type=fraction, default=0.0,
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
    model.add_argument("--learning-rate", type=positive_float, default=0.1,
                       help="learning rate (default 0.1)")
    model.add_argument("--lr-decay", choices=("none", "cosine", "plateau"), default="none",
                       help="none (default); cosine to 0.1 x over --decay-iters; plateau: divide "
                            "by 4 when a validation loss is not the best so far (ch.6)")
    model.add_argument("--decay-iters", type=i, default=None,
                       help="iterations of the cosine decay (default: the run's --max-iters or "
                            "--max-epochs)")
    model.add_argument("--max-grad-norm", type=nonnegative_float, default=0.0,
                       help="clip the gradients' global L2 norm to this (default 0: no clipping, "
                            "as ch.5; ch.6 uses 0.25)")
    training.add_data_options(model, "the weights, the dropout masks and the samples")
    run = ap.add_argument_group("run control (may change on --resume)")
    run.add_argument("--max-iters", type=f, default=None,
                     help="stop after this many iterations in all (default: no limit)")
    run.add_argument("--max-epochs", type=f, default=None,
                     help="stop after this many epochs of len // (N * T) iterations (default: no "
                          "limit; the book runs 100); with neither limit, run until interrupted")
    run.add_argument("--time-budget", type=nonnegative_float, default=0,
                     help="stop after this many seconds of training, evaluation and saving not "
                          "counted (default 0: no limit); with --lr-decay cosine and no "
                          "--decay-iters the decay follows this clock (not resumable exactly)")
    run.add_argument("--eval-every-seconds", type=nonnegative_float, default=0,
                     help="also evaluate every this many seconds of training (default 0: off)")
    run.add_argument("--out", default=None, help="checkpoint file (default: out/rnnlm-<input "
                     "name>.npz, or the --resume file); the best by validation loss is kept "
                     "beside it as <name>.best.npz")
    training.add_print_options(run, "a sample and the mean loss since the last one")
    training.add_run_options(run)
    return ap


# options that define the model, the data or the optimiser: fixed for the life of a run
RUN_DEFINING = ("level", "cell", "num_layers", "wordvec_size", "hidden_size", "dropout",
                "tie_weights", "seq_length", "batch_size", "optimizer", "learning_rate", "lr_decay",
                "decay_iters", "max_grad_norm", "dtype", "val_fraction", "seed", "encoding")
# the options that give the weights their shapes: --init-from takes them from its checkpoint
MODEL_SHAPE = ("level", "cell", "num_layers", "wordvec_size", "hidden_size", "tie_weights")


def parse(argv):
    """The options, and the checkpoints of --resume and --init-from (arrays, meta) or None."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = cli.given_options(parser, argv, RUN_DEFINING)
    resumed, init = training.start_options(args, given, RUN_DEFINING, MODEL_SHAPE, KIND)
    if not args.input:
        raise UserError("give an INPUT text file (or --resume CHECKPOINT)")
    if args.tie_weights and args.wordvec_size != args.hidden_size:
        raise UserError(f"--tie-weights needs --wordvec-size ({args.wordvec_size}) equal "
                        f"to --hidden-size ({args.hidden_size})")
    if args.out is None:
        stem = training.input_stem(args.input)
        args.out = os.path.join("out", f"rnnlm-{stem}.npz")
    return args, resumed, init


def load_data(args, meta=None, init_meta=None):
    """Read, tokenize and split the corpus -> (vocab, counts, train ids, val ids, input files)."""
    vocab, ids, counts, files = training.load_corpus(args, args.level, meta, init_meta)
    train, val = training.split_ids(ids, args.val_fraction, vocab.unit_name)
    N, T, unit = args.batch_size, args.seq_length, vocab.unit_name + "s"
    if (len(train) - 1) // N < T:
        raise UserError(
            f"the training text has {len(train)} {unit}, too few for --batch-size {N} and "
            f"--seq-length {T}: each of the {N} rows needs at least T = {T} inputs and their "
            f"targets, so at least {N * T + 1} {unit}; use a longer text or smaller values")
    return vocab, counts, train, val, files


def get_batch(xs, ts, N, T, k):
    """The book's minibatch for iteration k: row i reads xs[(i * jump + k * T + t) % M] for
    t < T, with M = len(xs) and jump = M // N; ts at the same indices. Returns (x, t), (N, T)."""
    M = len(xs)
    jump = M // N
    idx = (np.arange(N)[:, None] * jump + k * T + np.arange(T)[None, :]) % M  # (N, T)
    return xs[idx], ts[idx]


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


def iteration_limit(args, iters_per_epoch):
    """The last iteration (None: run until interrupted); fills in --decay-iters for cosine."""
    max_iters = args.max_iters
    if args.max_epochs is not None:
        max_iters = min(x for x in (max_iters, args.max_epochs * iters_per_epoch) if x is not None)
    if args.lr_decay == "cosine" and args.decay_iters is None and not args.time_budget:
        if not max_iters:
            raise UserError("--lr-decay cosine needs --decay-iters, --max-iters, --max-epochs "
                            "or --time-budget")
        args.decay_iters = max_iters
    return max_iters


def run_generators(seed):
    """The run's generators from --seed besides the weights' own: (dropout masks, samples)."""
    return np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])


def build(args, V, resumed, init, N):
    """The model, its optimizer and the two generators (dropout masks, samples), fresh, from
    --init-from's weights, or restored from --resume -> (model, optimizer, rngs, loop state)."""
    # three generators from --seed: the weights (inside the model), dropout masks, samples
    drop_rng, sample_rng = run_generators(args.seed)
    model = Rnnlm(V, args.wordvec_size, args.hidden_size, args.cell, args.num_layers, args.dropout,
                  args.tie_weights, seed=args.seed, dtype=np.dtype(args.dtype), rng=drop_rng)
    optimizer = OPTIMIZERS[args.optimizer](lr=args.learning_rate)
    optimizer.allocate(model.params)  # zero memory now, so every checkpoint holds it
    shapes = {n: p.shape for n, p in zip(model.names, model.params)}
    state = {"k": 0, "lr": args.learning_rate, "epoch_loss_sum": 0.0, "epoch_loss_count": 0}
    if init:
        check_arrays(args.init_from, init[0], shapes)
        for name, p in zip(model.names, model.params):
            p[...] = init[0][name]
        print(f"starting from the weights of {args.init_from}")
    if not resumed:
        return model, optimizer, drop_rng, sample_rng, state
    arrays, meta = resumed
    slots = optimizer.slots()
    check_arrays(args.resume, arrays, {
        **shapes, **{f"opt_{s}_{n}": shp for s in slots for n, shp in shapes.items()},
        "state": model.zero_state(N).shape})
    for name, p in zip(model.names, model.params):
        p[...] = arrays[name]
    for s, slot in slots.items():
        for name, buf in zip(model.names, slot):
            buf[...] = arrays[f"opt_{s}_{name}"]
    if isinstance(optimizer, Adam):
        optimizer.iter = meta["opt_iter"]
    model.set_state(arrays["state"])
    state = {name: meta[name] for name in state}
    drop_rng.bit_generator.state = meta["dropout_rng_state"]
    sample_rng.bit_generator.state = meta["sample_rng_state"]
    print(f"resuming {args.resume} at iteration {state['k']}")
    return model, optimizer, drop_rng, sample_rng, state


def checkpoint_arrays(model, optimizer, N):
    """The weights, the optimizer's memory (opt_<slot>_<name>) and the carried state (S, N, H)."""
    arrays = dict(zip(model.names, model.params))
    for slot, bufs in optimizer.slots().items():
        arrays.update({f"opt_{slot}_{name}": buf for name, buf in zip(model.names, bufs)})
    carried = model.get_state()
    arrays["state"] = carried if carried is not None else model.zero_state(N)  # (S, N, H)
    return arrays


def print_sample(lm, first, length, rng):
    """Print `length` tokens sampled from the training stream's row 0 state, `first` its next
    input; the training state is left as it was."""
    train_state = lm.model.get_state()
    start = None if train_state is None else train_state[:, :1]  # (S, 1, H) row 0's state
    steps = lm.generate(start, [first], rng)
    ids = [first] + [ix[0] for ix in itertools.islice(steps, length - 1)]
    lm.model.set_state(train_state)
    tqdm.write("----\n" + lm.vocab.decode(ids) + "\n----")


def main(argv=None):
    np.seterr(all="ignore")  # a diverging run is caught by run.check, not warned about
    args, resumed, init = parse(argv)
    meta = resumed and resumed[1]
    vocab, counts, train, val, files = load_data(args, meta, init and init[1])
    run = training.Run(args, vocab.unit, meta,  # checks --out and --log before any training
                       hint="try a smaller --learning-rate or --max-grad-norm")
    N, T, V, unit = args.batch_size, args.seq_length, len(vocab), vocab.unit
    xs, ts = train[:-1], train[1:]  # the book's inputs and their next tokens
    iters_per_epoch = max(1, len(xs) // (N * T))  # the book's max_iters per epoch
    max_iters = iteration_limit(args, iters_per_epoch)
    model, optimizer, drop_rng, sample_rng, state = build(args, V, resumed, init, N)
    k, lr_now = state["k"], state["lr"]
    total_loss, loss_count = state["epoch_loss_sum"], state["epoch_loss_count"]
    print(f"data has {len(train) + len(val)} {unit}s, {V} unique ({len(train)} train, "
          f"{len(val)} validation); {iters_per_epoch} iterations per epoch; "
          f"{sum(p.size for p in model.params)} parameters.")
    print("options: " + ", ".join(f"{key}={v}" for key, v in vars(args).items()))
    run.begin(k, max_iters)
    lm = LayerModel(model, vocab)  # the model as sample.py sees it: evaluating, sampling

    def save(path):
        run.save(path, checkpoint_arrays(model, optimizer, N), {
            **training.data_meta(KIND, vocab, counts, args, RUN_DEFINING, files),
            "k": k, "lr": lr_now, "opt_iter": getattr(optimizer, "iter", 0),
            "epoch_loss_sum": total_loss, "epoch_loss_count": loss_count,
            "dropout_rng_state": drop_rng.bit_generator.state,
            "sample_rng_state": sample_rng.bit_generator.state, **run.meta()}, k)

    def validate():
        nonlocal lr_now
        train_state = model.get_state()  # validation is its own stream; training resumes after
        nats, count, _ = lm.evaluate(val)
        model.set_state(train_state)
        if not run.validated(k, nats / count, save, train_seconds=train_seconds) \
                and args.lr_decay == "plateau":
            lr_now /= 4.0  # ch.6's rule: no better than the best so far -> lr / 4
            tqdm.write(f"iter {k}: learning rate now {lr_now:g}")

    train_seconds = 0.0  # time spent in training iterations only (for --time-budget)
    clock = training.EvalClock(args.eval_every_seconds)
    while max_iters is None or k < max_iters:
        print_now = run.print_due(k)  # every --sample-every iterations, or by the clock
        if print_now:
            print_sample(lm, get_batch(xs, ts, N, T, k)[0][0, 0], args.sample_length, sample_rng)
        t_start = time.perf_counter()
        x, t = get_batch(xs, ts, N, T, k)  # (N, T), (N, T)
        loss = float(model.forward(x, t))
        run.check(loss, "the loss", k)
        model.backward()
        if args.max_grad_norm:
            clip_grads(model.grads, args.max_grad_norm)
        lr_now = scheduled_lr(args, k, lr_now, train_seconds)
        optimizer.lr = lr_now
        optimizer.update(model.params, model.grads)
        train_seconds += time.perf_counter() - t_start
        total_loss, loss_count = total_loss + loss, loss_count + 1
        run.trained(k, loss, loss=loss, perplexity=perplexity(loss), lr=lr_now)
        if print_now:
            run.print_recent_loss(k)  # iter k, loss: mean since the last such line, perplexity
        k += 1
        run.progress(k, N * T, lambda: f"loss {loss:.3f}, ppl {perplexity(loss):.2f}")
        if k % iters_per_epoch == 0:  # the book's per-epoch line: perplexity = exp(mean loss)
            tqdm.write(f"| epoch {k // iters_per_epoch} | iter {k} | train perplexity "
                       f"{perplexity(total_loss / loss_count):.2f}")
            total_loss, loss_count = 0.0, 0
        finished = (max_iters is not None and k >= max_iters) or \
            bool(args.time_budget and train_seconds >= args.time_budget)
        timed_eval = clock.due(train_seconds)
        if len(val) and (finished or timed_eval or (args.eval_every and k % args.eval_every == 0)):
            validate()
            finished = finished or run.out_of_patience  # --patience: no new best for a while
        if finished or run.stop.signum or (args.save_every and k % args.save_every == 0):
            save(args.out)
        if run.stop.signum:
            return run.interrupted(k)
        if finished:
            break
    run.close()
    print(f"done: {k} iterations; saved to {args.out}" if k else
          "done: 0 iterations, nothing saved")
    return 0


if __name__ == "__main__":
    cli.run(main)
