"""
Generate text from a checkpoint, or score a text's probability under it (log-probability,
bits per character, perplexity). Reads the checkpoints of min_char_rnn.py and rnnlm.py.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn's sample())
  https://github.com/karpathy/nanoGPT/blob/master/sample.py  (--start FILE:path, --num-samples)
"""
import argparse
import itertools
import json
import math
import os
import sys
import time

# One step is a few products of at most (K, H) x (H, H + V): too small for BLAS threads to help,
# and threads that wait for a busy core make them many times slower (35x measured at H = 512,
# K = 8, with the other core loaded). Set before numpy loads; an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 (after the thread settings)

from common import cli  # noqa: E402
from common.interface import load_model  # noqa: E402
from common.vocabulary import read_text  # noqa: E402


def read_argument_text(value, encoding, what):
    """--start TEXT, or FILE:path for a file's contents."""
    if value.startswith("FILE:"):
        return read_text(value[5:], encoding, what + " file")[0]
    return value


def build_parser():
    ap = argparse.ArgumentParser(description="Generate text from a checkpoint, or score a text.")
    ap.add_argument("checkpoint", help="a .npz written by min_char_rnn.py or rnnlm.py")
    gen = ap.add_argument_group("generate")
    gen.add_argument("--length", type=cli.nonnegative_int, default=500,
                     help="characters to generate after --start (default 500)")
    gen.add_argument("--num-samples", type=cli.positive_int, default=1,
                     help="samples generated side by side as one batch (default 1)")
    gen.add_argument("--seed", type=int, default=0,
                     help="random seed: the same seed gives the same text (default 0)")
    gen.add_argument("--start", default=None,
                     help="text to prime the model with (printed, then continued); FILE:path "
                          "reads it from a file. Without it, the first character is drawn from "
                          "the training corpus's character frequencies, from a zero state")
    gen.add_argument("--temperature", type=cli.nonnegative_float, default=1.0,
                     help="softmax temperature (default 1.0; 0 = always the most likely)")
    gen.add_argument("--top-k", type=cli.nonnegative_int, default=0,
                     help="sample among the k most likely characters only (default 0: all; "
                          "k above the vocabulary size means all)")
    sc = ap.add_argument_group("score")
    sc.add_argument("--score", default=None,
                    help="report the log-probability of this text: every character after the "
                         "first is predicted from what precedes it, from a zero state")
    sc.add_argument("--score-file", default=None, help="score the contents of this file")
    sc.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    ap.add_argument("--encoding", default="utf-8", help="encoding of FILE: arguments and "
                    "--score-file (default utf-8)")
    return ap


def score_text(model, text):
    """The figures for one text: total log-probability, and rates per predicted token ("char",
    or "token" for words, with rates per character of the whole text beside them)."""
    ids = model.encode(text, "the scored text")
    if len(ids) < 2:
        raise cli.UserError(f"the scored text needs at least 2 {model.vocab.unit_name}s (the "
                            "first is only a context)")
    log_prob, count = model.score(ids)
    if not math.isfinite(log_prob):
        raise cli.UserError("the model's scores are not finite: its weights are damaged or "
                            "diverged; use another checkpoint", 1)
    tok = "char" if model.level == "char" else "token"
    nats = -log_prob / count
    figures = {"log_prob": log_prob, f"{tok}s_scored": count, f"nats_per_{tok}": nats,
               f"bits_per_{tok}": nats / math.log(2), "perplexity": math.exp(nats)}
    if tok != "char":  # rates per character of the whole text too, comparable across levels
        figures.update({"chars_scored": len(text), "nats_per_char": -log_prob / len(text),
                        "bits_per_char": -log_prob / len(text) / math.log(2)})
    return figures


def score_line(figures, vocab):
    """The printed line for score_text's figures."""
    tok = "char" if vocab.level == "char" else "token"
    line = (f"log-probability {figures['log_prob']:.4f} nats over {figures[tok + 's_scored']} "
            f"predicted {vocab.unit_name}s: {figures['nats_per_' + tok]:.4f} nats/{vocab.unit}, "
            f"{figures['bits_per_' + tok]:.4f} bits/{vocab.unit}, "
            f"perplexity {figures['perplexity']:.3f}")
    if tok != "char":
        line += f"; {figures['bits_per_char']:.4f} bits/char over {figures['chars_scored']} characters"
    return line


def write_live(pieces, out=None, interval=0.05, block=64):
    """Print text pieces as they come: written in blocks of up to `block` pieces, flushed at
    line ends or after `interval` seconds."""
    out = out or sys.stdout
    last, buf = time.perf_counter(), []
    for piece in pieces:
        buf.append(piece)
        if len(buf) >= block or "\n" in piece:
            out.write("".join(buf))
            buf.clear()
            now = time.perf_counter()
            if "\n" in piece or now - last > interval:
                out.flush()
                last = now
    out.write("".join(buf))
    out.flush()


def generate(model, args):
    rng = np.random.default_rng(args.seed)
    K = args.num_samples
    if args.start:
        start = read_argument_text(args.start, args.encoding, "--start")
        ids = model.encode(start, "--start")
        if not len(ids):
            raise cli.UserError(f"--start holds no {model.vocab.unit_name}s: give some text")
        state = model.prime(ids, K)  # the state after the start text but its last token
        seed_ix, prefix, n = np.full(K, ids[-1]), start, args.length
    else:
        # the first token is drawn from the training text's token frequencies and counts as
        # one of the --length tokens
        counts = model.token_counts()  # (V,)
        state = model.initial_state(K)
        seed_ix = rng.choice(len(counts), size=K, p=counts / counts.sum())
        prefix, n = None, args.length - 1
    if args.length == 0:
        for k in range(K):
            print_separated(k, K, prefix or "")
        return 0
    steps = itertools.islice(model.generate(state, seed_ix, rng, args.temperature, args.top_k), n)
    if K == 1:
        write_live(stream_text(model.vocab, prefix, seed_ix[0], steps))
        sys.stdout.write("\n")
        return 0
    ixes = np.array(list(steps), dtype=np.int64).reshape(n, K)  # (n, K)
    for k in range(K):
        if prefix is None:  # the drawn first token is part of the sample
            text = model.vocab.decode(np.r_[seed_ix[k], ixes[:, k]])
        else:
            text = prefix + model.vocab.decode(ixes[:, k], after=seed_ix[k])
        print_separated(k, K, text)
    return 0


def stream_text(vocab, prefix, first, steps, size=256):
    """The text of one stream as it is generated: the prefix (or, without one, the first token),
    then the sampler's tokens, decoded `size` steps at a time."""
    yield prefix if prefix is not None else vocab.decode([first])
    last = first
    while True:
        block = list(itertools.islice(steps, size))  # (1,) id arrays
        if not block:
            return
        ids = np.concatenate(block)  # (size,)
        yield vocab.decode(ids, after=last)
        last = ids[-1]


def print_separated(k, K, text):
    if K > 1:
        print(f"---------- sample {k + 1} of {K} ----------")
    print(text, flush=True)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.score is not None and args.score_file is not None:
        raise cli.UserError("give --score or --score-file, not both")
    model = load_model(args.checkpoint)
    if args.score is not None or args.score_file is not None:
        text = args.score if args.score is not None else \
            read_text(args.score_file, args.encoding, "--score-file")[0]
        figures = score_text(model, text)
        print(json.dumps(figures) if args.json else score_line(figures, model.vocab))
        return 0
    return generate(model, args)


if __name__ == "__main__":
    cli.run(main, memory_hint="a smaller --num-samples")
