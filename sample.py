"""
Generate text from a checkpoint, or score a text's probability under it (log-probability,
bits per character, perplexity). Reads the checkpoints of min_char_rnn.py and rnnlm.py.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (min-char-rnn's sample())
  https://github.com/karpathy/nanoGPT/blob/master/sample.py  (--start FILE:path, --num-samples)
"""
import argparse
import collections
import io
import itertools
import json
import math
import os
import sys
import time
import unicodedata

# One step is a few products of at most (K, H) x (H, H + V): too small for BLAS threads to help,
# and threads that wait for a busy core make them many times slower (docs/speed.md). Set before
# numpy loads; an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 (after the thread settings)

from common import cli  # noqa: E402
from common.checkpoint import check_output, write_atomic  # noqa: E402
from common.interface import NOT_FINITE, load_model  # noqa: E402
from common.generation import Sample  # noqa: E402
from common.vocabulary import read_text, shown  # noqa: E402

# What is not printed as it comes (several samples, --json, --beam, --output) is held until the
# end: its tokens, --num-samples x --length, are bounded by this (about 0.2 GB of ids and text
# for characters: 11 bytes a token measured); one sample printed live streams at any --length.
MAX_HELD_TOKENS = 2 ** 24
# A beam search holds, at each step, width x V candidates (their log-probabilities and sort order)
# and width x --length tokens of history: measured 24 to 36 bytes for each of these numbers, so
# this bound keeps it near 0.3 GB.
MAX_BEAM_NUMBERS = 2 ** 23
# A text to score (--score-file, --start FILE:) is read whole and encoded at once: measured 21 to
# 27 bytes of memory per byte of text, so about 0.9 GB at this size.
MAX_TEXT_BYTES = 2 ** 25
# Tokens a sample may run to: a million tokens a second would take 12 days (and islice takes at
# most sys.maxsize).
MAX_LENGTH = 10 ** 12
# softmax(y / 1e6) is uniform to 2e-4 (relative) for scores within +-100, so a larger temperature
# changes nothing; far larger, the Gumbel noise (temperature x g, |g| < 40) overflows to infinity,
# and argmax over ties is no uniform draw.
MAX_TEMPERATURE = 1e6


def read_argument_text(value, encoding, what):
    """--start TEXT, or FILE:path for a file's contents."""
    if value.startswith("FILE:"):
        return read_text(value[5:], encoding, what + " file", MAX_TEXT_BYTES)[0]
    return value


def build_parser():
    ap = argparse.ArgumentParser(
        description="Generate text from a checkpoint, or score a text. Reads the checkpoints of "
                    "both trainers, min_char_rnn.py and rnnlm.py.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n"
        "  python sample.py out/min_char_rnn-corpus.npz --start \"The \" --temperature 0.8\n"
        "  python sample.py out/min_char_rnn-corpus.npz --score \"The dog runs.\" --per-char\n"
        "  python sample.py out/min_char_rnn-corpus.npz --info")
    ap.add_argument("checkpoint", help="a checkpoint (.npz) written by either trainer: "
                    "min_char_rnn.py (the gist's model) or rnnlm.py (RNN, LSTM or GRU, "
                    "characters or words)")
    gen = ap.add_argument_group("generate")
    gen.add_argument("--length", type=cli.int_range(0, MAX_LENGTH), default=500,
                     help=f"characters to generate after --start (default 500, at most "
                          f"{MAX_LENGTH})")
    gen.add_argument("--num-samples", type=cli.positive_int, default=1,
                     help="samples generated side by side as one batch (default 1); all but "
                          "one printed live are held until the end, so --num-samples x "
                          f"--length is at most {MAX_HELD_TOKENS} then")
    gen.add_argument("--seed", type=cli.nonnegative_int, default=None,
                     help="random seed: the same seed gives the same text (default: a new one "
                          "each run, printed on stderr so that --seed repeats the sample)")
    gen.add_argument("--start", default=None,
                     help="text to prime the model with (printed, then continued); FILE:path "
                          "reads it from a file. Without it, the first character is drawn from "
                          "the training corpus's character frequencies, from a zero state")
    gen.add_argument("--temperature", type=cli.float_range(0, MAX_TEMPERATURE), default=1.0,
                     help="softmax temperature (default 1.0; 0 = always the most likely; at "
                          f"most {MAX_TEMPERATURE:g}, where every token is about equally likely)")
    gen.add_argument("--top-k", type=cli.nonnegative_int, default=0,
                     help="sample among the k most likely characters only (default 0: all; "
                          "k above the vocabulary size means all)")
    gen.add_argument("--beam", type=int, default=None, metavar="K",
                     help="beam search of this width (>= 1): the most likely continuation of "
                          "--length tokens it finds, and its log-probability on stderr; "
                          "deterministic, ignores --temperature and --top-k (default: sample); "
                          "K x (--length + the vocabulary size) is at most "
                          f"{MAX_BEAM_NUMBERS}")
    gen.add_argument("--stop", default=None, metavar="STR",
                     help="end each sample right after the first STR it generates (the --start "
                          "text alone never stops it; default: no stop string)")
    gen.add_argument("--output", default=None, metavar="FILE",
                     help="write what would be printed to this file instead (UTF-8, atomically: "
                          "all or nothing; a device or a FIFO is written in place); an existing "
                          "file is kept unless --force")
    gen.add_argument("--force", action="store_true", help="let --output replace a file")
    add_score_options(ap)
    return ap


def add_score_options(ap):
    """The options of scoring a text, and those both uses share (--json, --info, --encoding)."""
    sc = ap.add_argument_group("score")
    sc.add_argument("--score", default=None,
                    help="report the log-probability of this text: every character after the "
                         "first is predicted from what precedes it, from a zero state")
    sc.add_argument("--score-file", default=None,
                    help=f"score the contents of this file (at most {MAX_TEXT_BYTES} bytes)")
    sc.add_argument("--per-char", action="store_true",
                    help="with --score or --score-file: one row per predicted token (position, "
                         "token, log-probability in nats and in bits (log2_prob), rank, top 3 "
                         "guesses) before "
                         "the totals; TSV with a header, or JSON lines with --json")
    ap.add_argument("--json", action="store_true",
                    help="JSON: the scores as one object (--per-char: rows as JSON lines "
                         "first); generation: one line per sample with text and log_prob "
                         "(nats, under the model itself); --info: one object")
    ap.add_argument("--info", action="store_true",
                    help="print what the checkpoint is (model, parameters, vocabulary, options, "
                         "training, input files) and generate nothing")
    sc.add_argument("--unknown", choices=("error", "skip"), default="error",
                    help="characters (or words) of the scored text that the model does not know: "
                         "error (default) lists them and stops; skip leaves them out of the text "
                         "and scores the rest, saying how many were skipped (tokens_skipped)")
    ap.add_argument("--encoding", default="utf-8", help="encoding of FILE: arguments and "
                    "--score-file (default utf-8)")


def check_options(args):
    """One-line errors for option values and combinations argparse cannot judge alone."""
    if args.score is not None and args.score_file is not None:
        raise cli.UserError("give --score or --score-file, not both")
    if args.per_char and args.score is None and args.score_file is None:
        raise cli.UserError("--per-char scores a text: give --score TEXT or --score-file FILE")
    if args.beam is not None and args.beam < 1:
        raise cli.UserError(f"--beam {args.beam} is not a beam width: give 1 or more (1 is "
                            "greedy decoding)")
    if args.stop == "":
        raise cli.UserError("--stop needs a non-empty string (without --stop, samples run for "
                            "--length tokens)")
    if args.output is not None:
        start_file = args.start[5:] if args.start and args.start.startswith("FILE:") else None
        check_output(args.output, "--output", args.force, [("CHECKPOINT", args.checkpoint),
                                                           ("--score-file", args.score_file),
                                                           ("--start", start_file)])


def score_text(model, text, unknown="error"):
    """The figures for one text: total log-probability, and rates per predicted token ("char",
    or "token" for words, with rates per character of the whole text beside them). unknown:
    "error", or "skip" to leave the tokens the model does not know out of the text."""
    if unknown == "skip":
        ids, skipped = model.vocab.encode_known(text)
    else:
        try:
            ids, skipped = model.encode(text, "the scored text"), []
        except cli.UserError as e:
            raise cli.UserError(f"{e}; --unknown skip scores the text without them") from None
    if len(ids) < 2:
        raise cli.UserError(f"the scored text needs at least 2 {model.vocab.unit_name}s (the "
                            "first is only a context)" + (f", after skipping {len(skipped)} "
                                                          "unknown" if skipped else ""))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # judged just below
        log_prob, count = model.score(ids)
    nats = -log_prob / count
    # finite weights can still overflow (weights near 1e300): every figure printed, perplexity
    # = exp(nats) included, must be a finite number
    if not (math.isfinite(log_prob) and math.isfinite(cli.perplexity(nats))):
        raise cli.UserError(NOT_FINITE, 1)
    tok = "char" if model.level == "char" else "token"
    figures = {"log_prob": log_prob, f"{tok}s_scored": count, f"nats_per_{tok}": nats,
               f"bits_per_{tok}": nats / math.log(2), "perplexity": cli.perplexity(nats)}
    if tok != "char":  # rates per character of the text too, comparable across levels
        chars = model.vocab.chars_scored(text, skipped)
        figures.update({"chars_scored": chars, "nats_per_char": -log_prob / chars,
                        "bits_per_char": -log_prob / chars / math.log(2)})
    if unknown == "skip":  # the figures cover the text with these tokens left out
        figures.update({"tokens_skipped": len(skipped), "skipped": sorted(set(skipped))})
    return figures


def score_line(figures, vocab):
    """The printed line for score_text's figures."""
    tok = "char" if vocab.level == "char" else "token"
    line = (f"log-probability {figures['log_prob']:.4f} nats over {figures[tok + 's_scored']} "
            f"predicted {vocab.unit_name}s: {figures['nats_per_' + tok]:.4f} nats/{vocab.unit}, "
            f"{figures['bits_per_' + tok]:.4f} bits/{vocab.unit}, "
            f"perplexity {cli.ppl_text(figures['perplexity'], 3)}")
    if tok != "char":
        line += f"; {figures['bits_per_char']:.4f} bits/char over {figures['chars_scored']} characters"
    if figures.get("tokens_skipped"):
        line += (f"; {figures['tokens_skipped']} {vocab.unit_name}(s) not in the model's "
                 f"vocabulary skipped ({shown(figures['skipped'])}): the figures are for the "
                 "text without them")
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


def start_state(model, args, rng):
    """-> (state of K streams, first inputs (K,), start text or None, tokens to generate)."""
    K = args.num_samples
    if args.start:
        start = read_argument_text(args.start, args.encoding, "--start")
        ids = model.encode(start, "--start")
        if not len(ids):
            raise cli.UserError(f"--start holds no {model.vocab.unit_name}s: give some text")
        state = model.prime(ids, K)  # the state after the start text but its last token
        return state, np.full(K, ids[-1]), start, args.length
    # the first token is drawn from the training text's token frequencies and counts as one
    # of the --length tokens
    counts = model.token_counts()  # (V,)
    seed_ix = rng.choice(len(counts), size=K, p=counts / counts.sum())  # (K,)
    return model.initial_state(K), seed_ix, None, max(args.length - 1, 0)


def token_blocks(model, args, state, seed_ix, rng, n, size=256):
    """The generated tokens in blocks of up to `size` steps, each (steps, K): sampled, or the
    beam search's whole result as one block."""
    if args.beam:
        found = [model.beam_search(state[:, k:k + 1], seed_ix[k], n, args.beam)[0]
                 for k in range(len(seed_ix))]  # each (n,)
        yield np.stack(found, axis=1)  # (n, K)
        return
    steps = itertools.islice(model.generate(state, seed_ix, rng, args.temperature, args.top_k), n)
    while True:
        block = list(itertools.islice(steps, size))  # (K,) id arrays
        if not block:
            return
        yield np.stack(block)  # (steps, K)


def is_live(args):
    """One sampled stream printed to stdout as it comes: held nowhere."""
    return args.num_samples == 1 and not (args.json or args.beam or args.output)


def check_held(args, vocab):
    """What is not printed live is held in memory until the end: refuse more tokens than
    MAX_HELD_TOKENS before any work, and a beam search holding more than MAX_BEAM_NUMBERS."""
    held = args.num_samples * args.length
    if not is_live(args) and held > MAX_HELD_TOKENS:
        raise cli.UserError(f"--num-samples {args.num_samples} x --length {args.length} = {held} "
                            f"tokens would be held in memory until printed (at most "
                            f"{MAX_HELD_TOKENS}): give a smaller --num-samples or --length, or "
                            "--num-samples 1 without --json, --beam or --output, which streams")
    beam = (args.beam or 0) * (args.length + len(vocab))  # the candidates and the histories
    if beam > MAX_BEAM_NUMBERS:
        raise cli.UserError(f"--beam {args.beam} x (--length {args.length} + {len(vocab)} "
                            f"{vocab.unit_name}s in the vocabulary) = {beam} numbers would be "
                            f"held in memory (at most {MAX_BEAM_NUMBERS}): give a smaller --beam "
                            "or --length")


def generate(model, args, out):
    """Generate --num-samples samples and print them to out (one stream: as they come)."""
    check_held(args, model.vocab)
    drawn = args.seed is None and args.temperature and not args.beam  # a new sample each run
    if drawn:
        args.seed = cli.new_seed()
    rng = np.random.default_rng(args.seed)
    state, seed_ix, prefix, n = start_state(model, args, rng)
    K = len(seed_ix)
    if args.length == 0 and prefix is None:
        prefix = ""  # not even the drawn first token
    samples = [Sample(model.vocab, prefix, seed_ix[k], args.stop) for k in range(K)]
    fed = fed_text(samples, token_blocks(model, args, state, seed_ix, rng, n))
    live = is_live(args)
    if live:
        write_live(itertools.chain([samples[0].text], fed), out)
    else:
        collections.deque(fed, maxlen=0)  # feed every block to the samples, print below
    for k, s in enumerate(samples):
        # log P(generated | start) under the model itself (not tempered or cut to top-k): the
        # kept tokens read again from the stream's state, each predicted from what precedes it
        nats = model.evaluate(np.r_[seed_ix[k], s.kept_ids()], state[:, k:k + 1])[0] \
            if args.json or args.beam else 0.0
        log_prob = 0.0 - nats  # 0.0, not -0.0, when nothing was predicted
        if args.json:
            out.write(cli.json_line(text=s.text, log_prob=log_prob))
        elif live:
            out.write("\n")
        else:
            print_separated(k, K, s.text, out)
        if args.beam:
            print(f"beam search, width {args.beam}: log-probability {log_prob:.4f} nats over "
                  f"{len(s.kept_ids())} predicted {model.vocab.unit_name}s", file=sys.stderr)
    if drawn and sys.stderr.isatty():  # said where a person reads it, not into a pipe or a file
        print(f"seed {args.seed} (--seed {args.seed} repeats this sample)", file=sys.stderr)
    return 0


def fed_text(samples, blocks):
    """Feed each block's tokens to the samples until all have stopped; yields the text each
    block adds to the first sample."""
    for block in blocks:  # (steps, K)
        piece = samples[0].add(block[:, 0])
        for k, s in enumerate(samples[1:], 1):
            s.add(block[:, k])
        if piece:
            yield piece
        if all(s.done for s in samples):
            return
    pieces = [s.finish() for s in samples]  # the letters held back at level jamo
    if pieces[0]:
        yield pieces[0]


def print_separated(k, K, text, out):
    if K > 1:
        out.write(f"---------- sample {k + 1} of {K} ----------\n")
    out.write(text + "\n")
    out.flush()


TOP_GUESSES = 3  # guesses shown per --per-char row


def per_token_rows(model, ids):
    """For each predicted token of ids (from a zero state, one step at a time): (position,
    token id, log-probability in nats, rank from 1, [(guess id, probability)] best first)."""
    state = model.initial_state(1)
    for t in range(1, len(ids)):
        lp, state = model.log_probs(state, ids[t - 1:t])  # (1, V) the next token's log-probs
        lp = lp[0]  # (V,)
        target = ids[t]
        rank = 1 + int((lp > lp[target]).sum())  # tokens the model found strictly likelier, + 1
        top = np.argsort(-lp, kind="stable")[:TOP_GUESSES]  # (3,) ties: the lower id first
        yield t, target, float(lp[target]), rank, [(int(i), float(np.exp(lp[i]))) for i in top]


ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escaped(token):
    """A token on one TSV cell: backslash, newline, tab and CR as \\, \\n, \\t, \\r, other
    control and line-separator characters as \\uXXXX."""
    return "".join(ESCAPES.get(c) or (f"\\u{ord(c):04x}" if unicodedata.category(c) in
                                      ("Cc", "Zl", "Zp") else c) for c in token)


def print_per_token(model, ids, as_json, out):
    """The --per-char rows: TSV with a header, or JSON lines."""
    tokens = model.tokens
    if not as_json:
        out.write("\t".join(["pos", "token", "log_prob", "log2_prob", "rank"] + [
            f"{name}{i}" for i in range(1, TOP_GUESSES + 1) for name in ("top", "p")]) + "\n")
    for pos, target, lp, rank, top in per_token_rows(model, ids):
        if as_json:
            out.write(cli.json_line(pos=pos, token=tokens[target], log_prob=lp,
                                    log2_prob=lp / math.log(2), rank=rank,
                                    top=[[tokens[i], p] for i, p in top]))
            continue
        guesses = [cell for i, p in top for cell in (escaped(tokens[i]), f"{p:.6f}")]
        guesses += [""] * (2 * TOP_GUESSES - len(guesses))  # fewer tokens than guesses shown
        out.write("\t".join([str(pos), escaped(tokens[target]), f"{lp:.6f}",
                             f"{lp / math.log(2):.6f}", str(rank)] + guesses) + "\n")


def print_info(model, path, as_json, out):
    """--info: what the checkpoint is, as lines or one JSON object."""
    info = {"checkpoint": path, **model.info()}
    if as_json:
        out.write(cli.json_line(**info))
        return
    unit = model.vocab.unit_name
    arch = ", ".join(f"{k} {v}" for k, v in model.architecture().items())
    seconds = info["train_seconds"]
    best = info["best_val_loss"]
    lines = [f"checkpoint: {path}", f"kind: {info['kind']}, level {info['level']}",
             f"model: {arch}", f"parameters: {info['num_params']}",
             f"vocabulary: {info['vocab_size']} {unit}s: {shown(model.tokens)}",
             "options: " + ", ".join(f"{k}={v}" for k, v in (info["options"] or {}).items()),
             f"training: {info['iterations']} iterations, "
             + (f"{seconds:.1f} s" if seconds is not None else "time not recorded"),
             "best validation loss: " + (f"{best:.4f} nats/{model.vocab.unit}"
                                         if best is not None else "none")]
    lines += [f"input: {f['name']}, {f['size']} bytes, SHA-256 {f['sha256']}"
              for f in info["input_files"] or []] or ["input: not recorded (or damaged)"]
    out.write("\n".join(lines) + "\n")


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_options(args)
    model = load_model(args.checkpoint)
    out = io.StringIO() if args.output is not None else sys.stdout
    if args.info:
        print_info(model, args.checkpoint, args.json, out)
    elif args.score is not None or args.score_file is not None:
        text = args.score if args.score is not None else \
            read_text(args.score_file, args.encoding, "--score-file", MAX_TEXT_BYTES)[0]
        figures = score_text(model, text, args.unknown)
        if args.per_char:  # rows for the tokens scored: the known ones, with --unknown skip
            ids = model.vocab.encode_known(text)[0] if args.unknown == "skip" else \
                model.encode(text)
            print_per_token(model, ids, args.json, out)
        out.write((json.dumps(figures) if args.json else score_line(figures, model.vocab)) + "\n")
    else:
        generate(model, args, out)
    if args.output is not None:
        # a temporary file in the same folder renamed into place: all or nothing
        write_atomic(args.output, lambda f: f.write(out.getvalue().encode("utf-8")), "--output")
    return 0


if __name__ == "__main__":
    cli.run(main, memory_hint="a smaller --num-samples, --length or --beam")
