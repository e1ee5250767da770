"""
Train Karpathy's min-char-rnn (a character-level tanh RNN, Adagrad) on a text file, in the gist's
order: the data, the parameters, the loop. The model itself is common/gist.py.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (the original min-char-rnn, BSD license)
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch. 5: truncated BPTT minibatches)
"""
import itertools
import math
import os

import numpy as np
from tqdm import tqdm

from common import cli, options
from common.checkpoint import check_arrays
from common.cli import UserError, nonnegative_int, positive_float, positive_int
from common.gist import PARAM_NAMES, Params, evaluate, init_params, lossFun, num_params, sample
from common.interface import GistModel, generator
from common.run import Run
from common.vocabulary import split_ids

DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus.txt")
DEFAULTS = GistModel.defaults()  # the gist's hidden_size 100, seq_length 25, learning_rate 0.1


def build_parser():
    ap, model = options.trainer_parser(
        "Train Karpathy's min-char-rnn (tanh RNN, Adagrad) on a text file.",
        "default: the bundled data/corpus.txt, or the input stored in the --resume checkpoint",
        "  python min_char_rnn.py                       # the bundled corpus, until Ctrl-C\n"
        "  python min_char_rnn.py mytext.txt --time-budget 60 --seed 1\n"
        "  python min_char_rnn.py --resume out/min_char_rnn-mytext.npz --max-iters 20000\n"
        "  python min_char_rnn.py data/ko-constitution.txt --level jamo --max-iters 5000")
    options.add_sizes(model, DEFAULTS, (
        ("--hidden-size", positive_int, "hidden units H"),
        ("--seq-length", positive_int, "characters per stream per iteration, T"),
        ("--learning-rate", positive_float, "Adagrad learning rate"),
        ("--batch-size", positive_int, "streams B trained side by side, cut from B offsets")))
    options.add_data_options(model, "the initial weights and the samples", DEFAULTS)
    model.add_argument("--level", choices=("char", "jamo"), default=DEFAULTS["level"],
                       help="tokens: characters (default, as the gist), or jamo: characters with "
                            "every Hangul syllable taken apart into its letters, put together "
                            "again in samples")
    run_group = ap.add_argument_group("run control (may change on --resume)")
    run_group.add_argument("--max-iters", type=nonnegative_int, default=None,
                           help="stop after this many iterations in all, resumed ones included "
                                "(default: run until interrupted, as the gist)")
    run_group.add_argument("--out", default=None, help="checkpoint file (default: "
                           "out/min_char_rnn-<input name>.npz, or the --resume file); the best by "
                           "validation loss is kept beside it as <name>.best.npz")
    options.add_print_options(run_group, "a sample and the loss")
    run_group.add_argument("--eval-max-chars", type=nonnegative_int, default=0,
                           help="evaluate on at most this many validation characters (default 0: "
                                "all)")
    options.add_run_options(run_group)
    return ap


def start(argv):
    """Parse the options and start the run (options.start_options), INPUT defaulting to the
    bundled corpus and --out to a name made from INPUT -> (args, resumed, init)."""
    args, resumed, init = options.start_options(build_parser(), argv, GistModel)
    if not args.input:
        args.input = [DEFAULT_INPUT]
    if args.out is None:
        args.out = options.default_out("min_char_rnn", args.input)
    return args, resumed, init


def load_data(args, resumed, init):
    """Read the corpus (the very files of the run being resumed; or encoded in the vocabulary of
    --init-from's checkpoint, init) and cut it -> Corpus: the vocabulary, token counts and input files, the training ids as B
    streams (B, S), the validation ids each validation reads, and the line that says so."""
    vocab, ids, counts, files = options.load_corpus(args, resumed, init)
    unit = vocab.unit_name + "s"
    train, val = split_ids(ids, args.val_fraction, vocab.unit_name)
    B, T = args.batch_size, args.seq_length
    if len(train) // B < T + 1:
        raise UserError(
            f"the training text has {len(train)} {unit}, too few for --batch-size {B} and "
            f"--seq-length {T}: each of the {B} streams needs at least T + 1 = {T + 1}, so at "
            f"least {B * (T + 1)} {unit}; use a longer text or smaller values")
    S = len(train) // B  # B streams of S tokens each, cut from B offsets
    summary = (f"data has {len(ids)} {unit}, {len(vocab)} unique ({len(train)} train, "
               f"{len(val)} validation); {num_params(len(vocab), args.hidden_size)} parameters.")
    eval_ids = val[:args.eval_max_chars or len(val)]  # what each validation reads
    return options.Corpus(vocab, counts, files, train[:B * S].reshape(B, S), eval_ids, summary)


def start_params(args, V, resumed, init):
    """The parameters and Adagrad memory (Params), the carried state hprev (H, B) and where the
    run stands (GistModel.RUN_FIELDS): fresh, from --init-from's weights, or as saved."""
    H, B, dtype = args.hidden_size, args.batch_size, np.dtype(args.dtype)
    params, mem = init_params(V, H, args.seed, dtype), Params(V, H, dtype)
    hprev = np.zeros((H, B), dtype=dtype)  # (H, B)
    shapes = GistModel.weight_shapes(vars(args), V)
    if resumed:
        arrays, meta = resumed
        check_arrays(args.resume, arrays, {**shapes, **{"m" + k: s for k, s in shapes.items()},
                                           "hprev": (H, B)})
        for name in PARAM_NAMES:
            params[name][...], mem[name][...] = arrays[name], arrays["m" + name]
        hprev[...] = arrays["hprev"]
        print(f"resuming {args.resume} at iteration {meta['n']}")
    elif init:
        check_arrays(args.init_from, init[0], shapes)
        for name in PARAM_NAMES:
            params[name][...] = init[0][name]
        print(f"starting from the weights of {args.init_from}")
    return params, mem, hprev, GistModel.run_state(vars(args), V, resumed[1] if resumed else None)


def adagrad(params, grads, mem, learning_rate, step):
    """mem += g^2, param -= lr g / sqrt(mem + 1e-8), over the flat buffers, in place; step: a
    scratch buffer like them."""
    np.multiply(grads.flat, grads.flat, out=step)
    mem.flat += step
    np.add(mem.flat, 1e-8, out=step)
    np.sqrt(step, out=step)
    np.divide(grads.flat, step, out=step)
    step *= learning_rate
    params.flat -= step


def main(argv=None):
    np.seterr(all="ignore")  # overflow is checked explicitly (run.check below), not warned about
    args, resumed, init = start(argv)
    vocab, counts, files, streams, eval_ids, summary = load_data(args, resumed, init)
    # --out and --log checked before any training; the history's smoothed loss is smooth_loss / T
    run = Run(args, vocab.unit, resumed[1] if resumed else None, smooth_factor=0.999)
    options.print_start(summary, args, GistModel)
    (B, S), H, T, V = streams.shape, args.hidden_size, args.seq_length, len(vocab)
    params, mem, hprev, state = start_params(args, V, resumed, init)
    n, p, smooth_loss, rng = state["n"], state["p"], state["smooth_loss"], generator(state["rng_state"])
    grads, step = Params(V, H, params.flat.dtype), np.empty_like(params.flat)  # (P,) each

    def save(path):
        arrays = {**params, **{"m" + k: v for k, v in mem.items()}, "hprev": hprev}
        run.save(path, arrays, {**options.data_meta(GistModel, vocab, counts, args, files),
                                "n": n, "p": p, "smooth_loss": smooth_loss,
                                "rng_state": rng.bit_generator.state, **run.meta()}, n)

    def validate():
        nats, count, _ = evaluate(params, eval_ids)
        run.validated(n, nats / count, save, val_bits_per_char=nats / count / math.log(2))

    def sample_text(first):  # --sample-length tokens after first (1,), from stream 0's state
        sample_ix = sample(params, hprev[:, :1], first, rng)
        return vocab.decode([ix[0] for ix in itertools.islice(sample_ix, args.sample_length)])

    run.report.tokens_per_char = vocab.tokens_per_char(eval_ids)  # jamo: also per character
    finished = run.begin(n, args.max_iters)  # True when a resumed run is at --max-iters already
    while not finished:
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + T + 1 >= S or n == 0:
            hprev = np.zeros((H, B), dtype=params.flat.dtype)  # reset RNN memory
            p = 0  # go from start of data
        inputs, targets = streams[:, p:p + T], streams[:, p + 1:p + T + 1]  # (B, T) each
        print_now = run.report.print_due(n)  # every --sample-every iterations, or by the clock
        if print_now:  # sample from the model now and then
            txt = sample_text(inputs[:1, 0])
            run.report.print_sample(n, txt, f" {txt} ")  # printed, and kept in the history
        # forward seq_length characters through the net and fetch gradient
        loss, *_, hprev = lossFun(inputs, targets, hprev, params, grads=grads)
        run.check(loss, "the loss", n)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        if print_now:
            tqdm.write(f"iter {n}, loss: {smooth_loss:f}")  # print progress
        run.report.trained(n, loss / T, smooth=smooth_loss / T, loss=loss, loss_per_char=loss / T,
                           smooth_loss=smooth_loss)
        adagrad(params, grads, mem, args.learning_rate, step)  # perform parameter update
        run.check(float(params.flat.max()) + float(params.flat.min()), "the weights", n)  # NaN, inf
        p += T  # move data pointer
        n += 1  # iteration counter
        run.report.progress(n, B * T, lambda: f"loss {smooth_loss:.3f}")
        # validate and save when due; --max-iters, --time-budget or --patience
        finished = run.end_iteration(n, validate if len(eval_ids) else None,
                                     lambda: save(args.out))
        if run.stop_requested:
            return run.interrupted(n)
    if run.report.final_sample_due(n):  # what the model writes now, after the last save
        txt = sample_text(streams[:1, p])
        run.report.print_sample(n, txt, f" {txt} ")
    return run.finish(n, f", smooth loss {smooth_loss:.4f}")


if __name__ == "__main__":
    cli.run(main)
