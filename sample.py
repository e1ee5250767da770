"""
Generate text from a checkpoint, or score a text's probability under it (log-probability,
bits per character, perplexity). Reads the checkpoints of min_char_rnn.py.

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

import common
import min_char_rnn
import rnnlm

KINDS = (min_char_rnn.KIND, rnnlm.KIND)


class CharRnn:
    """The gist's model behind the small interface sample.py uses for every model kind:
    tokens, initial_state(K), feed(ids, state), generate(...), score(ids)."""

    level = "char"

    def __init__(self, path, arrays, meta):
        self.tokens = list(meta["vocab"])
        shapes = min_char_rnn.checkpoint_shapes(path, meta)
        common.check_arrays(path, arrays, shapes)
        self.params = {name: arrays[name] for name in min_char_rnn.PARAM_NAMES}
        self.hidden_size = shapes["Whh"][0]

    def initial_state(self, K):
        return np.zeros((self.hidden_size, K), dtype=self.params["Wxh"].dtype)  # (H, K)

    def feed(self, ids, state):
        """The state after reading ids[:-1] (one stream): ids[-1] is the next input."""
        return min_char_rnn.evaluate(self.params, ids, state)[2]

    def generate(self, state, seed_ix, rng, temperature, top_k):
        return min_char_rnn.sample(self.params, state, seed_ix, rng, temperature, top_k)

    def score(self, ids):
        """Total log-probability (nats) of ids[1:] given what precedes each, from a zero state."""
        nats, count, _ = min_char_rnn.evaluate(self.params, ids)
        return -nats, count


def load_model(path):
    arrays, meta = common.load_checkpoint(path, kinds=KINDS)
    adapter = rnnlm.RnnlmAdapter if meta["kind"] == rnnlm.KIND else CharRnn
    return adapter(path, arrays, meta), meta


def encode(model, text, what):
    """text -> token ids under the model's vocabulary: characters, or words for word level."""
    if model.level == "word":
        return rnnlm.encode_words(text, model.tokens, what)
    return common.encode(text, "".join(model.tokens), what)


def read_argument_text(value, encoding, what):
    """--start TEXT, or FILE:path for a file's contents."""
    if value.startswith("FILE:"):
        return common.read_text(value[5:], encoding, what + " file")[0]
    return value


def build_parser():
    ap = argparse.ArgumentParser(description="Generate text from a checkpoint, or score a text.")
    ap.add_argument("checkpoint", help="a .npz written by min_char_rnn.py")
    gen = ap.add_argument_group("generate")
    gen.add_argument("--length", type=common.nonnegative_int, default=500,
                     help="characters to generate after --start (default 500)")
    gen.add_argument("--num-samples", type=common.positive_int, default=1,
                     help="samples generated side by side as one batch (default 1)")
    gen.add_argument("--seed", type=int, default=0,
                     help="random seed: the same seed gives the same text (default 0)")
    gen.add_argument("--start", default=None,
                     help="text to prime the model with (printed, then continued); FILE:path "
                          "reads it from a file. Without it, the first character is drawn from "
                          "the training corpus's character frequencies, from a zero state")
    gen.add_argument("--temperature", type=common.nonnegative_float, default=1.0,
                     help="softmax temperature (default 1.0; 0 = always the most likely)")
    gen.add_argument("--top-k", type=common.nonnegative_int, default=0,
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
    """The figures for one text: total log-probability and per-character rates."""
    ids = encode(model, text, "the scored text")
    unit = "words" if model.level == "word" else "characters"
    if len(ids) < 2:
        raise common.UserError(f"the scored text needs at least 2 {unit} (the first is only a "
                               "context)")
    log_prob, count = model.score(ids)
    nats = -log_prob / count
    if model.level == "word":
        # per-token figures (perplexity per word), and per character of the whole scored text
        return {"log_prob": log_prob, "tokens_scored": count, "nats_per_token": nats,
                "bits_per_token": nats / math.log(2), "perplexity": math.exp(nats),
                "chars_scored": len(text), "nats_per_char": -log_prob / len(text),
                "bits_per_char": -log_prob / len(text) / math.log(2)}
    return {"log_prob": log_prob, "chars_scored": count, "nats_per_char": nats,
            "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats)}


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


def generate(model, meta, args):
    rng = np.random.default_rng(args.seed)
    K = args.num_samples
    state = model.initial_state(K)
    if args.start:
        start = read_argument_text(args.start, args.encoding, "--start")
        ids = encode(model, start, "--start")
        state = np.repeat(model.feed(ids, model.initial_state(1)), K, axis=1)  # (H, K)
        seed_ix, prefix, n = np.full(K, ids[-1]), start, args.length
    else:
        # the first character is drawn from the corpus's character frequencies and counts as
        # one of the --length characters
        counts = np.asarray(meta.get("char_counts") or meta["token_counts"], dtype=np.float64)  # (V,)
        seed_ix = rng.choice(len(counts), size=K, p=counts / counts.sum())
        prefix, n = None, args.length - 1
    if args.length == 0:
        for k in range(K):
            print_separated(k, K, prefix or "")
        return 0
    steps = itertools.islice(model.generate(state, seed_ix, rng, args.temperature, args.top_k), n)
    # characters as they are; word level joins words by spaces, <eos> a line break
    text = (lambda toks: toks) if model.level == "char" else \
        (lambda toks: rnnlm.token_text(toks, model.level))
    if K == 1:
        first = [prefix] if prefix is not None else [model.tokens[seed_ix[0]]]
        blocks = blocks_of_tokens(model.tokens, steps)
        if model.level == "char":  # a block of characters is one string: no per-character work
            write_live(itertools.chain(first, map("".join, blocks)))
        else:
            write_live(text(itertools.chain(first, itertools.chain.from_iterable(blocks))))
        sys.stdout.write("\n")
        return 0
    ixes = np.array(list(steps), dtype=np.int64).reshape(n, K)  # (n, K)
    for k in range(K):
        first = [prefix] if prefix is not None else [model.tokens[seed_ix[k]]]
        print_separated(k, K, "".join(text(first + [model.tokens[i] for i in ixes[:, k]])))
    return 0


def blocks_of_tokens(tokens, steps, size=256):
    """The tokens of one stream, taken from the sampler `size` steps at a time: yields lists."""
    lookup = np.array(tokens, dtype=object)  # (V,) id -> token
    while True:
        block = list(itertools.islice(steps, size))  # (1,) id arrays
        if not block:
            return
        yield list(lookup[np.concatenate(block)])


def print_separated(k, K, text):
    if K > 1:
        print(f"---------- sample {k + 1} of {K} ----------")
    print(text, flush=True)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.score is not None and args.score_file is not None:
        raise common.UserError("give --score or --score-file, not both")
    model, meta = load_model(args.checkpoint)
    if args.score is not None or args.score_file is not None:
        text = args.score if args.score is not None else \
            common.read_text(args.score_file, args.encoding, "--score-file")[0]
        figures = score_text(model, text)
        if args.json:
            print(json.dumps(figures))
        elif model.level == "word":
            print(f"log-probability {figures['log_prob']:.4f} nats over "
                  f"{figures['tokens_scored']} predicted words: "
                  f"{figures['nats_per_token']:.4f} nats/word, perplexity {figures['perplexity']:.3f}; "
                  f"{figures['bits_per_char']:.4f} bits/char over {figures['chars_scored']} characters")
        else:
            print(f"log-probability {figures['log_prob']:.4f} nats over "
                  f"{figures['chars_scored']} predicted characters: "
                  f"{figures['nats_per_char']:.4f} nats/char, "
                  f"{figures['bits_per_char']:.4f} bits/char, perplexity {figures['perplexity']:.3f}")
        return 0
    return generate(model, meta, args)


if __name__ == "__main__":
    common.run(main)
