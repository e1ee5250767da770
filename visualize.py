"""
See what a checkpoint learned: one offline HTML page with the text coloured by any unit, the model's
next-token guesses, the units that track simple features of the text, gate saturation, the
training curves and samples; --compare sets several checkpoints side by side on one text. --json
writes the numbers behind either page.

References:
  https://karpathy.github.io/2015/05/21/rnn-effectiveness/  (the coloured-text pictures)
  https://arxiv.org/abs/1506.02078  (Karpathy, Johnson, Fei-Fei 2015: cells, gate saturation)
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (the LSTM and GRU gate layout)
"""
import argparse
import base64
import itertools
import json
import math
import os
import sys

import numpy as np

from common.checkpoint import (check_not_read, check_output_file, check_replaceable, same_file,
                               write_atomic)
from common.cli import (UserError, finite_or_none, float_range, nonnegative_int, perplexity,
                        positive_int, run)
from common.interface import NOT_FINITE, load_model
from common.history import (history_rows, stored_records, stored_samples, stored_smooth_factor,
                            trained_seconds, with_losses)
from common.page import Page
from common.vocabulary import read_corpus, read_text, shown, split_ids

GATES = ("f", "i", "o", "z", "r")  # sigmoids in 0..1: LSTM forget/input/output, GRU update/reset
SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9  # the paper's thresholds for a left / right saturated gate
TOP_UNITS = 5  # units listed per feature
# A unit whose standard deviation over the text is below this is treated as constant: its Pearson r
# would be noise divided by noise (float64 rounding of a saturated tanh is about 1e-16)
CONSTANT_STD = 1e-9
FEATURES = ("in_quotes", "bracket_depth", "line_position", "word_start")
# Next-token log-probabilities are made this many (row, token) cells at a time (2 MB of float64 a
# copy): the page needs only each row's top K and one log-probability, so memory stays near
# T x (K + units) rather than T x V (a 50,000-word vocabulary: 0.8 GB per (2000, V) copy).
PROB_CELLS = 2 ** 18
# The page shows -log2 p: a log-probability (nats) below this has no finite value in bits.
MIN_LOG_PROB = -sys.float_info.max * math.log(2)
OPENING, CLOSING = "([{", ")]}"
# The two pages, written in pages/: model.html, .js, .css and compare.html, .js, .css
PAGE = Page("model", "min-char-rnn: what the model learned")
COMPARE_PAGE = Page("compare", "min-char-rnn: models compared")


# ----------------------------------------------------------------------------- the text

def validation_text(model):
    """The checkpoint's validation text (the last val_fraction of its training text's tokens)
    -> ids, or a UserError saying what to pass instead."""
    fraction = model.meta.get("options", {}).get("val_fraction", 0)
    hint = "pass a TEXT_FILE or --text"
    if not fraction:
        raise UserError(f"no text given and the checkpoint has no validation split "
                        f"(val_fraction 0): {hint}")
    files = model.input_files or []
    for f in files:
        if "\0" in f["name"] or not os.path.isfile(f["name"]):
            raise UserError(f"no text given and the training text {f['name']} is no longer "
                            f"there: {hint}")
    if not files:
        raise UserError(f"no text given and the checkpoint names no training text: {hint}")
    try:
        _, ids, _, now = read_corpus([f["name"] for f in files],
                                     model.meta["options"].get("encoding", "utf-8"),
                                     model.level, model.vocab, "the training text")
    except UserError as e:
        raise UserError(f"no text given and the training text cannot be read ({e}): {hint}"
                        ) from None
    if [(f["name"], f["size"], f["sha256"]) for f in now] != \
            [(f["name"], f["size"], f["sha256"]) for f in files]:
        raise UserError(f"no text given and the training text has changed since training "
                        f"(size or SHA-256 differs): {hint}")
    return split_ids(ids, fraction, "token")[1]  # the trainers' own split


def text_features(pieces):
    """Simple features of the text after each token -> {name: (T,) float64}: inside double
    quotes (0/1), bracket depth, characters since the line began, token starts a word (0/1)."""
    T = len(pieces)
    out = {name: np.zeros(T) for name in FEATURES}  # (T,) each
    quoted, depth, column, prev = 0, 0, 0, "\n"
    for t, piece in enumerate(pieces):
        body = piece.lstrip(" ")
        out["word_start"][t] = float(bool(body) and not body[0].isspace()
                                     and (prev.isspace() or piece != body))
        for ch in piece:
            if ch == '"':
                quoted ^= 1  # an opening quote starts the inside, a closing one ends it
            elif ch in OPENING:
                depth += 1
            elif ch in CLOSING:
                depth = max(depth - 1, 0)
            column = 0 if ch == "\n" else column + 1
            prev = ch
        out["in_quotes"][t], out["bracket_depth"][t] = quoted, depth
        out["line_position"][t] = column
    return out


# ----------------------------------------------------------------------------- the analysis

def correlations(states, features):
    """Top units per feature by |Pearson r| -> (list of {feature, key, unit, r}, constant
    feature names). Constant features and constant units are left out (r is undefined)."""
    found, constant = [], []
    for name, f in features.items():
        fc = f - f.mean()  # (T,)
        if not fc.any():
            constant.append(name)
            continue
        ranked = []
        for key, X in states.items():
            Xc = X - X.mean(axis=0)  # (T, U)
            sx = np.sqrt((Xc ** 2).sum(axis=0))  # (U,)
            live = sx > CONSTANT_STD * math.sqrt(len(X))
            r = np.zeros(X.shape[1])  # (U,)
            r[live] = (Xc[:, live].T @ fc) / (sx[live] * np.sqrt(fc @ fc))
            ranked += [(-abs(r[u]), key, u, r[u]) for u in np.flatnonzero(live)]
        ranked.sort(key=lambda x: x[0])  # stable: ties keep the key and unit order
        found += [{"feature": name, "key": key, "unit": int(u), "r": float(r)}
                  for _, key, u, r in ranked[:TOP_UNITS]]
    return found, constant


def saturation(states):
    """Gate key -> (U, 2) fractions of positions below SATURATED_LOW and above SATURATED_HIGH."""
    return {key: np.stack([(X < SATURATED_LOW).mean(axis=0), (X > SATURATED_HIGH).mean(axis=0)],
                          axis=1)  # (U, 2)
            for key, X in states.items() if key.split("/")[1] in GATES}


def next_tokens(trace, ids, K):
    """The model's guesses after each token and the log-probability of the token that follows,
    made PROB_CELLS at a time -> (top ids (T, K) most likely first, ties to the lower id, their
    probabilities (T, K), log p(ids[t+1] | ids[..t]) (T-1,)). A model whose log-probabilities
    are not all finite is refused, as sample.py refuses its score."""
    T, V = len(ids), trace.head_W.shape[1]
    top_ids = np.empty((T, K), dtype=np.int64)  # (T, K)
    top_p = np.empty((T, K))  # (T, K)
    logprob = np.empty(T - 1)  # (T-1,)
    rows = max(1, PROB_CELLS // V)
    for s in range(0, T, rows):
        with np.errstate(over="ignore", invalid="ignore"):  # judged just below
            lp = trace.log_probs(s, s + rows)  # (n, V)
        if not (np.isfinite(lp).all() and lp.min() >= MIN_LOG_PROB):
            raise UserError(NOT_FINITE, 1)
        e = s + len(lp)
        order = np.argsort(-lp, axis=1, kind="stable")[:, :K]  # (n, K)
        top_ids[s:e] = order
        top_p[s:e] = np.exp(np.take_along_axis(lp, order, axis=1))
        t = np.arange(s, min(e, T - 1))  # rows whose next token is in the text
        logprob[t] = lp[t - s, ids[t + 1]]
    return top_ids, top_p, logprob


def analyse(model, ids, K, history, samples=()):
    """Everything the page and the JSON show, at full precision (numpy arrays inside); history:
    the stored records (history.stored_records); samples: the stored samples."""
    with np.errstate(over="ignore", invalid="ignore"):  # judged just below
        tr = model.trace(ids)
    if not all(np.isfinite(X).all() for X in tr.states.values()):
        raise UserError(NOT_FINITE, 1)
    tokens = [model.tokens[i] for i in ids]
    pieces = list(model.vocab.pieces(ids))  # the text each token stands for
    features = text_features(pieces)
    top_ids, top_p, logprob = next_tokens(tr, ids, min(K, len(model.tokens)))
    interpretable, constant = correlations(tr.states, features)
    return {"tokens": tokens, "pieces": pieces, "states": tr.states, "top_ids": top_ids,
            "top_p": top_p, "logprob": logprob, "features": features,
            "interpretable": interpretable, "constant": constant,
            "saturation": saturation(tr.states), "history": history,
            "samples": with_losses(samples, history or [])}


def json_data(a, vocab):
    """The --json object (its keys are documented in docs), plain lists at full precision."""
    return {"tokens": a["tokens"],
            "states": {k: X.tolist() for k, X in a["states"].items()},
            "top": [[[vocab[i], float(p)] for i, p in zip(row_i, row_p)]
                    for row_i, row_p in zip(a["top_ids"], a["top_p"])],
            "logprob": a["logprob"].tolist(),
            "features": {k: f.tolist() for k, f in a["features"].items()},
            "interpretable": a["interpretable"],
            "features_constant": a["constant"],
            "saturation": {k: s.tolist() for k, s in a["saturation"].items()},
            "history": a["history"], "samples": a["samples"]}


# ----------------------------------------------------------------------------- the page

def quantise(X, gate):
    """(T, U) float -> (lo (U,), hi (U,), (T, U) uint8): 0..255 spans lo..hi of each unit. Gates
    0..1, tanh quantities -1..1; a quantity that leaves -1..1 (the LSTM cell c) -m..m per unit,
    m the unit's largest magnitude, so one large unit does not wash out the others."""
    U = X.shape[1]
    if gate:
        lo, hi = np.zeros(U), np.ones(U)  # (U,), (U,)
    elif np.abs(X).max(initial=0.0) <= 1.0:
        lo, hi = -np.ones(U), np.ones(U)
    else:
        hi = np.abs(X).max(axis=0, initial=0.0)  # (U,)
        hi[hi == 0] = 1.0  # a unit that is 0 everywhere: any range shows it as 0
        lo = -hi
    q = np.rint((X - lo) * (255.0 / (hi - lo)))  # (T, U)
    return lo, hi, np.clip(q, 0, 255).astype(np.uint8)


def page_data(a, model, title, K):
    """The page's compact data: states 8-bit quantised and base64-encoded, the rest rounded."""
    keys = []
    for key, X in a["states"].items():
        layer, name = key.split("/")
        lo, hi, q = quantise(X, name in GATES)
        keys.append({"key": key, "layer": int(layer), "name": name, "units": X.shape[1],
                     "lo": lo.tolist(), "hi": hi.tolist(), "gate": name in GATES,
                     "b64": base64.b64encode(q.tobytes()).decode("ascii")})
    return {"title": title, "level": model.level, "unit": model.vocab.unit, "pieces": a["pieces"],
            "vocab": model.tokens,
            "keys": keys, "k": K,
            "top_ids": a["top_ids"].tolist(),
            "top_p": np.round(a["top_p"], 4).tolist(),
            "surprisal": np.round(-a["logprob"] / math.log(2), 3).tolist(),  # bits
            "interpretable": a["interpretable"], "constant": a["constant"],
            "saturation": {k: np.round(s, 4).tolist() for k, s in a["saturation"].items()},
            "history": history_rows(a["history"]), "smooth_factor": stored_smooth_factor(model.meta),
            "samples": a.get("samples", [])}


def render_page(data):
    """The self-contained HTML of one checkpoint's page (common/page.py: the data inline)."""
    return PAGE.render(data)


def check_outputs(out, json_path, reads, force=False):
    """--out and --json (or None), checked before any work: files we may write, none of them one
    this run reads (reads: [(option, path or None)]), nor both the same file; an existing file
    only if it is this output's own earlier version or with force (check_replaceable)."""
    in_place = check_output_file(out, "--out")
    check_not_read(out, "--out", reads)
    check_replaceable(out, "--out", "page", force)
    if json_path:
        check_output_file(json_path, "--json")
        # the page would replace the JSON; a device or a FIFO takes both, one after the other
        check_not_read(json_path, "--json", reads + ([] if in_place else [("--out", out)]))
        check_replaceable(json_path, "--json", "json", force)


def write_text(path, text, what):
    """Write text (UTF-8) to path atomically (checked by check_output_file before the work)."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")), what)


# ----------------------------------------------------------------------------- comparing models

PALETTE_SIZE = 6  # runs get the compare page's colours in turn
TOP_DIFFERENCES = 12  # positions of the largest difference listed on the compare page


def compared_paths(args):
    """--compare's list -> (checkpoints, TEXT_FILE or None): a last name not ending in .npz is
    the text. One line for fewer than two checkpoints or one named twice."""
    names = list(args.compare)
    text_file = names.pop() if len(names) > 1 and not names[-1].endswith(".npz") else None
    if args.checkpoint is not None or args.text_file is not None:
        raise UserError("with --compare, name every checkpoint (and the TEXT_FILE) after it: "
                        "--compare A.npz B.npz [TEXT_FILE]")
    if len(names) < 2:
        raise UserError("--compare needs two or more checkpoints: --compare A.npz B.npz "
                        "[TEXT_FILE]")
    if text_file is not None and args.text is not None:
        raise UserError("give a TEXT_FILE or --text, not both")
    for i, a in enumerate(names):
        for b in names[:i]:
            if same_file(a, b):
                raise UserError(f"{b} and {a} are the same checkpoint: compare different ones")
    return names, text_file


def run_names(paths):
    """What the page calls each run: its file name, or its path where two file names agree."""
    base = [os.path.basename(p) for p in paths]
    return [b if base.count(b) == 1 else p for b, p in zip(base, paths)]


def vocabulary_note(models, names):
    """None when every model has the first one's vocabulary; else the line saying why the page
    shows curves and scores only."""
    first = models[0]
    for model, name in zip(models[1:], names[1:]):
        if model.level != first.level:
            why = (f"{name} reads {model.vocab.unit_name}s and {names[0]} "
                   f"{first.vocab.unit_name}s")
        elif model.tokens != first.tokens:
            only = sorted(set(model.tokens) ^ set(first.tokens))
            why = (f"{name} and {names[0]} know different {first.vocab.unit_name}s ("
                   f"{len(only)} in only one of them: {shown(only, 10)})")
        else:
            continue
        return (f"{why}: their tokens are not the same, so this page compares the curves and "
                "the scores only")
    return None


def stepped_log_probs(model, ids, K, n_top):
    """Read ids one token at a time from a zero state -> (log p(ids[t+1] | ids[..t]) (T-1,),
    the top ids (n, K) after ids[t], most likely first, ties to the lower id, and their
    probabilities (n, K)) for the first n = min(shown, T - 1) positions. A model whose
    log-probabilities are not all finite is refused, as sample.py refuses its score."""
    T, n = len(ids), min(n_top, len(ids) - 1)
    logprob = np.empty(T - 1)  # (T-1,)
    top_ids = np.empty((n, K), dtype=np.int64)  # (n, K)
    top_p = np.empty((n, K))  # (n, K)
    state = model.initial_state(1)
    for t in range(T - 1):
        with np.errstate(over="ignore", invalid="ignore"):  # judged just below
            lp, state = model.log_probs(state, ids[t:t + 1])  # (1, V) after token t
        lp = lp[0]  # (V,)
        if not (np.isfinite(lp).all() and lp.min() >= MIN_LOG_PROB):
            raise UserError(NOT_FINITE, 1)
        logprob[t] = lp[ids[t + 1]]
        if t < n:
            top_ids[t] = np.argsort(-lp, kind="stable")[:K]
            top_p[t] = np.exp(lp[top_ids[t]])
    return logprob, top_ids, top_p


def compared_run(model, path, text, args, guesses):
    """One model on the text: its score (as sample.py --score gives it), the log-probability of
    every token after the first, and with `guesses` its top --top-k guesses at the first
    --max-chars positions and a sample of --sample-length tokens after the text's first token
    (--seed, --temperature)."""
    ids = model.encode(text, f"the text (for {path})")
    if len(ids) < 2:
        raise UserError(f"the text needs at least 2 {model.vocab.unit_name}s for {path} (the "
                        "first is only a context)")
    K = min(args.top_k, len(model.tokens))
    # guesses for the tokens shown after the first: 1 .. --max-chars - 1
    logprob, top_ids, top_p = stepped_log_probs(model, ids, K,
                                                args.max_chars - 1 if guesses else 0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_prob, count = model.score(ids)
    if not math.isfinite(log_prob):
        raise UserError(NOT_FINITE, 1)
    sample = None
    if guesses:  # from a zero state, the text's first token the first input, as sample.py --start
        rng = np.random.default_rng(args.seed)
        steps = model.generate(model.initial_state(1), ids[:1], rng, args.temperature)
        drawn = [int(ix[0]) for ix in itertools.islice(steps, args.sample_length)]
        sample = model.vocab.decode(np.r_[ids[:1], drawn])  # one decode: jamo join across the two
    return {"ids": ids, "logprob": logprob, "top_ids": top_ids, "top_p": top_p,
            "log_prob": log_prob, "count": count, "chars": max(model.vocab.chars_scored(text), 1),
            "sample": sample}


def compare_json(models, paths, runs, histories, samples, note):
    """The --json object of --compare (documented in docs/visualize.md), at full precision."""
    first = models[0]
    out = {"tokens": [first.tokens[i] for i in runs[0]["ids"]], "runs": [], "logprob": [],
           "delta": None if note else (runs[1]["logprob"] - runs[0]["logprob"]).tolist()}
    for model, path, r, history, kept in zip(models, paths, runs, histories, samples):
        entry = {"name": path, "kind": model.kind, "level": model.level,
                 "options": model.meta.get("options"), "history": history,
                 "samples": with_losses(kept, history or []), "log_prob": r["log_prob"],
                 "count": r["count"], "chars": r["chars"]}
        if note:  # each model reads the text in its own tokens
            entry["tokens"] = [model.tokens[i] for i in r["ids"]]
        out["runs"].append(entry)
        out["logprob"].append(r["logprob"].tolist())
    return out


def compare_page_data(models, names, runs, histories, args, note):
    """The compare page's data: per run its facts, curves, options and (one vocabulary) the
    rounded log-probabilities and guesses of the first --max-chars tokens; the text's pieces."""
    page_runs = []
    for model, name, r, history in zip(models, names, runs, histories):
        nats = -r["log_prob"] / r["count"]
        arch = ", ".join(f"{k} {v}" for k, v in model.architecture().items())
        page_runs.append({
            "name": name, "kind": model.kind, "level": model.level, "unit": model.vocab.unit,
            "arch": arch, "params": int(model.num_params), "seconds": trained_seconds(model.meta),
            "iters": model.meta.get(model.iteration_key), "log_prob": r["log_prob"],
            "count": r["count"], "nats": nats, "bits": nats / math.log(2),
            "bits_per_char": -r["log_prob"] / r["chars"] / math.log(2),
            "perplexity": finite_or_none(perplexity(nats)),
            "options": model.meta.get("options") or {}, "sample": r["sample"],
            "history": history_rows(history), "smooth_factor": stored_smooth_factor(model.meta),
            "logprob": [] if note else np.round(r["logprob"][:len(r["top_ids"])], 4).tolist(),
            "top_ids": r["top_ids"].tolist(), "top_p": np.round(r["top_p"], 4).tolist()})
    shown_ids = runs[0]["ids"][:args.max_chars]
    return {"title": " vs ".join(names), "note": note, "runs": page_runs,
            "pieces": [] if note else list(models[0].vocab.pieces(shown_ids)),
            "ids": [] if note else shown_ids.tolist(),
            "vocab": [] if note else models[0].tokens, "seed": args.seed,
            "temperature": args.temperature, "palette": PALETTE_SIZE, "top": TOP_DIFFERENCES}


def compare(args):
    """--compare: two or more checkpoints on one text -> one page (and --json); prints the page's
    name and one line per model with its score."""
    paths, text_file = compared_paths(args)
    models = [load_model(p) for p in paths]  # a missing or damaged one: its own line
    histories = [stored_records(m.meta) for m in models]
    kept = [stored_samples(m.meta) for m in models]
    out = args.out or os.path.splitext(paths[0])[0] + "-compare.html"
    reads = [("CHECKPOINT", p) for p in paths] + [("TEXT_FILE", text_file)]
    text = given_text(args, text_file)
    if text is None:  # the first model's validation text: its training files are read
        reads += [("the training text", f["name"]) for f in models[0].input_files or []]
    check_outputs(out, args.json, reads, args.force)
    if text is None:
        text = models[0].vocab.decode(validation_text(models[0]))
    names = run_names(paths)
    note = vocabulary_note(models, names)
    runs = [compared_run(m, p, text, args, note is None) for m, p in zip(models, paths)]
    if args.json:
        write_text(args.json, json.dumps(compare_json(models, paths, runs, histories, kept, note),
                                         ensure_ascii=False), "--json")
    write_text(out, COMPARE_PAGE.render(compare_page_data(models, names, runs, histories, args,
                                                          note)), "--out")
    print(out)
    for name, model, r in zip(names, models, runs):
        nats = -r["log_prob"] / r["count"]
        print(f"{name}: {nats:.4f} nats/{model.vocab.unit}, {nats / math.log(2):.4f} "
              f"bits/{model.vocab.unit} over {r['count']} predicted {model.vocab.unit_name}s")
    if note:
        print(note)
    return 0


# ----------------------------------------------------------------------------- command line

def build_parser():
    ap = argparse.ArgumentParser(
        description="Write one offline HTML page showing what a checkpoint learned: the text "
                    "coloured by a unit, the next-token guesses, units that track quotes, "
                    "brackets, line position and word starts, gate saturation, training curves.")
    ap.add_argument("checkpoint", nargs="?", default=None,
                    help="a .npz written by min_char_rnn.py or rnnlm.py")
    ap.add_argument("text_file", nargs="?", default=None,
                    help="the text to show (default: the checkpoint's validation text, when its "
                         "training file is still there and unchanged)")
    ap.add_argument("--text", default=None, help="the text to show, given on the command line")
    ap.add_argument("--out", default=None,
                    help="the page to write (default: beside the checkpoint, same name, .html)")
    ap.add_argument("--json", default=None, help="also write the numbers behind the page here")
    ap.add_argument("--force", action="store_true",
                    help="replace an --out or --json that exists but is not a page or JSON this "
                         "tool wrote (a checkpoint is never replaced)")
    ap.add_argument("--max-chars", type=positive_int, default=2000,
                    help="show at most this many tokens (characters, or words at word level) "
                         "from the start of the text (default 2000)")
    ap.add_argument("--top-k", type=positive_int, default=5,
                    help="next-token guesses listed per position (default 5)")
    ap.add_argument("--encoding", default="utf-8", help="encoding of TEXT_FILE (default utf-8)")
    cmp = ap.add_argument_group("comparing models")
    cmp.add_argument("--compare", nargs="+", default=None, metavar="CHECKPOINT",
                     help="compare two or more checkpoints (.npz; a last name without .npz is "
                          "the TEXT_FILE) on one text: their curves, scores, the text shaded by "
                          "where the second beats the first, guesses, options and samples "
                          "(default --out: beside the first, NAME-compare.html)")
    cmp.add_argument("--seed", type=nonnegative_int, default=0,
                     help="with --compare: seed of each model's sample (default 0)")
    cmp.add_argument("--temperature", type=float_range(0, 100), default=1.0,
                     help="with --compare: the samples' temperature (default 1; 0: greedy)")
    cmp.add_argument("--sample-length", type=positive_int, default=200,
                     help="with --compare: tokens per sample after the text's first (default 200)")
    return ap


def given_text(args, text_file):
    """The text of TEXT_FILE or --text, or None when neither is given; an empty one is refused."""
    if args.text is None and text_file is None:
        return None
    text = args.text if args.text is not None else \
        read_text(text_file, args.encoding, "text file")[0]
    if not text:
        raise UserError("the text is empty: give at least one character")
    return text


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.compare is not None:
        return compare(args)
    if args.checkpoint is None:
        raise UserError("give a CHECKPOINT, or --compare A.npz B.npz [TEXT_FILE]")
    if args.text is not None and args.text_file is not None:
        raise UserError("give a TEXT_FILE or --text, not both")
    model = load_model(args.checkpoint)
    history = stored_records(model.meta)
    samples = stored_samples(model.meta)
    out = args.out or os.path.splitext(args.checkpoint)[0] + ".html"
    reads = [("CHECKPOINT", args.checkpoint), ("TEXT_FILE", args.text_file)]
    if args.text is None and args.text_file is None:  # the validation text: the training files
        reads += [("the training text", f["name"]) for f in model.input_files or []]
    check_outputs(out, args.json, reads, args.force)
    text = given_text(args, args.text_file)
    if text is not None:
        ids = model.encode(text, "the text")
        if len(ids) == 0:
            raise UserError("the text holds no words: give at least one word")
    else:
        ids = validation_text(model)
    ids = np.asarray(ids[:args.max_chars])  # (T,)
    a = analyse(model, ids, args.top_k, history, samples)
    title = os.path.basename(args.checkpoint)
    if args.json:
        write_text(args.json, json.dumps(json_data(a, model.tokens), ensure_ascii=False),
                     "--json")
    write_text(out, render_page(page_data(a, model, title, args.top_k)), "--out")
    best = {}
    for item in a["interpretable"]:
        best.setdefault(item["feature"], item)
    summary = "; ".join(f"{f} {b['key']}:{b['unit']} r={b['r']:+.2f}" for f, b in best.items())
    if a["constant"]:
        summary += ("; " if summary else "") + "constant here: " + ", ".join(a["constant"])
    print(out)
    print(f"{len(ids)} tokens; best unit per feature: {summary or 'none (text too short)'}")
    return 0


if __name__ == "__main__":
    run(main, memory_hint="a smaller --max-chars or --top-k")
