"""
How a training run starts: the options both trainers share, fresh or --resume or --init-from
(the stored options taken, the input checked to be the very bytes trained on), the corpus read,
and the first lines printed.
"""
import argparse
import collections
import os

import numpy as np

from common.checkpoint import FORMAT_VERSION
from common.cli import UserError, fraction, nonnegative_float, nonnegative_int, positive_int
from common.cli import given_options as cli_given, new_seed
from common.interface import read_checkpoint
from common.live_page import PAGE_SECONDS
from common.reporter import PRINT_SECONDS
from common.run import EVAL_SECONDS, STALE_NOTICE
from common.vocabulary import Vocabulary, counts_key, input_files, read_corpus


# What a trainer reads: the vocabulary, token counts and input files, the training and validation
# ids, and the line that says what they hold
Corpus = collections.namedtuple("Corpus", "vocab counts files train val summary")


def trainer_parser(description, input_help, examples):
    """A trainer's command line: its description, the INPUT files, the group of options stored
    in the checkpoint, and examples at the end of --help -> (parser, that group)."""
    ap = argparse.ArgumentParser(description=description, epilog="examples:\n" + examples,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="*", help="UTF-8 text files or folders (their files) to train "
                    f"on, joined in sorted path order ({input_help})")
    return ap, ap.add_argument_group("model, data and optimiser (stored in the checkpoint)")


def add_sizes(group, defaults, options):
    """Options given as (flag, type, what it is): each flag names its variable (--hidden-size
    gives hidden_size), its default the kind's, its help ending in that default."""
    for flag, kind, what in options:
        name = flag[2:].replace("-", "_")
        group.add_argument(flag, type=kind, default=defaults[name],
                           help=f"{what} (default {defaults[name]})")


def add_data_options(group, seed_use, defaults):
    """The model-group options both trainers share: --dtype, --val-fraction, --seed (seed_use:
    what it seeds) and --encoding, with the kind's defaults."""
    group.add_argument("--dtype", choices=("float64", "float32"), default=defaults["dtype"],
                       help="float64 (default; reference-exact, matches the gist) or float32 "
                            "(~2x faster)")
    group.add_argument("--val-fraction", type=fraction, default=defaults["val_fraction"],
                       help="fraction of the tokens, from the end of the text, held out for "
                            f"validation (default {defaults['val_fraction']}; 0 trains on all of "
                            "it, as the gist)")
    group.add_argument("--seed", type=nonnegative_int, default=None,
                       help=f"seed for {seed_use} (default: a new one each run, printed so that "
                            "--seed repeats the run)")
    group.add_argument("--encoding", default=defaults["encoding"],
                       help=f"text encoding of INPUT (default {defaults['encoding']})")


def add_run_options(run):
    """The run-control options both trainers share, on an argparse group."""
    run.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    run.add_argument("--init-from", default=None,
                     help="start a new run from this checkpoint's weights (and vocabulary, which "
                          "must hold every token of INPUT) with a fresh optimiser and position")
    run.add_argument("--save-every", type=nonnegative_int, default=1000,
                     help="save a checkpoint every N iterations (default 1000; 0: only at the end)")
    run.add_argument("--eval-every", type=nonnegative_int, default=None,
                     help="validation loss every N iterations (default: by the clock, about every "
                          f"{EVAL_SECONDS:g} seconds, less often if validating would take over a "
                          "tenth of the time; 0: only at the end)")
    run.add_argument("--time-budget", type=nonnegative_float, default=0,
                     help="stop when this many seconds of wall time have passed since this run's "
                          "training began (validation, saving and --page included), then "
                          "validate and save once more (default 0: no limit)")
    run.add_argument("--log", default=None, help="append JSON lines of training figures here")
    run.add_argument("--force", action="store_true",
                     help="replace a --page, or append to a --log, that exists but is not one "
                          "this tool wrote (a checkpoint is never replaced)")
    run.add_argument("--page", default=None,
                     help="write a live HTML page of the run here: the loss curves, the samples, "
                          "speed and time; rewritten at the first validation, then about every "
                          f"{PAGE_SECONDS:g} seconds and at the end (default: none)")
    run.add_argument("--log-every", type=nonnegative_int, default=100,
                     help="write a --log line every N iterations (default 100; 0: never)")
    run.add_argument("--patience", type=nonnegative_int, default=0,
                     help="stop early after N validations in a row without a new best "
                          "validation loss (default 0: never stop early; after "
                          f"{STALE_NOTICE} such validations the run says so once)")


def add_print_options(run, what):
    """--sample-every (what: what is printed) and --sample-length, on an argparse group."""
    run.add_argument("--sample-every", type=nonnegative_int, default=None,
                     help=f"print {what} every N iterations (default: by the clock, at the "
                          f"first iteration and then about every {PRINT_SECONDS:g} seconds, less "
                          "often if printing would take over a tenth of the time; 0: never)")
    run.add_argument("--sample-length", type=positive_int, default=200,
                     help="tokens (characters or words) per printed sample (default 200)")


def start_options(parser, argv, cls):
    """Parse the command line of a trainer of the kind (class cls) and start the run: returns
    (args, resumed (arrays, meta) or None, init (arrays, meta) or None). --resume takes the
    kind's run-defining options from the checkpoint (refusing a different value typed on the
    command line); --init-from takes the options that shape the weights the same way."""
    args = parser.parse_args(argv)
    given = cli_given(parser, argv, cls.OPTIONS)
    if args.resume is not None and args.init_from is not None:
        raise UserError("give --resume (continue a run) or --init-from (new run from saved "
                        "weights), not both")
    if args.resume is not None:
        return args, resume_run(args, given, cls), None
    init = None
    if args.init_from is not None:
        arrays, meta, _ = read_checkpoint(args.init_from, kinds=(cls.kind,))
        take_stored(args, given, meta, cls.SHAPE_OPTIONS, args.init_from)
        init = (arrays, meta)
    args.seed_drawn = args.seed is None  # a new run each time, as the gist's (printed to repeat)
    if args.seed_drawn:
        args.seed = new_seed()
    return args, None, init


def resume_run(args, given, cls):
    """--resume: load args.resume, take the run-defining options of the kind (class cls) from
    it, and default INPUT and --out to the stored input and the checkpoint. -> (arrays, meta)."""
    arrays, meta, _ = read_checkpoint(args.resume, kinds=(cls.kind,))
    # no input recorded: e.g. brought home by export.py, weights with no run to continue
    if "input" not in meta and "input_files" not in meta:
        raise UserError(f"{args.resume} holds weights but no training run to resume: start a "
                        f"new run from it with --init-from {args.resume}")
    take_stored(args, given, meta, cls.OPTIONS, args.resume)
    if not args.input:
        args.input = [f["name"] for f in stored_inputs(meta, args.resume)]
    if args.out is None:
        args.out = args.resume
    return arrays, meta


def take_stored(args, given, meta, names, path):
    """Set the options `names` to the values stored in meta; a different value typed on the
    command line is refused, naming it."""
    stored = meta.get("options")
    for name in names:
        if not isinstance(stored, dict) or name not in stored:
            raise UserError(f"{path} is damaged: its meta record has no {name}")
        if name in given and given[name] != stored[name]:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {given[name]} differs from the {stored[name]} stored in "
                            f"{path}: drop {flag} (the stored value is used)")
        setattr(args, name, stored[name])


def stored_inputs(meta, path):
    """The input files a checkpoint to resume records ([{name, size, sha256}], see input_files),
    or the one-line error for a record that is missing or damaged."""
    stored = input_files(meta)
    if not stored:
        raise UserError(f"{path} is damaged: its meta record has no input files with their size "
                        "and SHA-256")
    return stored


def check_same_input(files, meta, path):
    """A resumed run must read the very bytes it was trained on: the same number of files, each
    with the size and SHA-256 stored in meta (input_files, or an older checkpoint's input)."""
    stored = stored_inputs(meta, path)
    if len(files) != len(stored):
        raise UserError(f"INPUT is {len(files)} file(s) now, {len(stored)} in the checkpoint ("
                        + ", ".join(os.path.basename(f["name"]) for f in stored)
                        + "): resume with the original files, or start a new run")
    for now, then in zip(files, stored):
        if now["sha256"] != then["sha256"] or now["size"] != then["size"]:
            raise UserError(f"{now['name']} is not the text this run was trained on "
                            f"({now['size']} bytes now, {then['size']} in the checkpoint, SHA-256 "
                            "differs): resume with the original file, or start a new run")


def input_meta(files):
    """The checkpoint's record of the input: every file's name, size and SHA-256; a single
    file is also recorded as input, input_bytes, input_sha256 (the fields older readers use)."""
    meta = {"input_files": files}
    if len(files) == 1:
        meta.update(input=files[0]["name"], input_bytes=files[0]["size"],
                    input_sha256=files[0]["sha256"])
    return meta


def load_corpus(args, resumed=None, init=None):
    """Read INPUT (a list of files and folders) at --level and make its token ids -> (vocab,
    ids, counts, files). With `resumed` (the (arrays, meta) of a run to resume) they must be the
    very files trained on; with `init` (--init-from's) they are encoded in its vocabulary."""
    meta = resumed[1] if resumed else None
    vocab = Vocabulary.from_meta(init[1]) if init else None
    what = f" (for --init-from {args.init_from})" if init else ""
    vocab, ids, counts, files = read_corpus(args.input, args.encoding, args.level, vocab, what)
    if getattr(args, "first_tokens", None):
        vocab, ids, counts = take_first(vocab, ids, args.first_tokens, keep_vocabulary=bool(init))
    if meta is not None:
        check_same_input(files, meta, args.resume)
    names = ", ".join(args.input)
    if not len(ids):
        raise UserError(f"{names} holds no {vocab.unit_name}s")
    if meta is not None and meta["vocab"] != vocab.to_meta():  # same bytes: a damaged checkpoint
        raise UserError(f"{args.resume} is damaged: its vocabulary is not that of {names} "
                        f"({len(vocab)} {vocab.unit_name}s)")
    return vocab, ids, counts, files


def take_first(vocab, ids, n, keep_vocabulary=False):
    """The first n token ids, in the vocabulary of the tokens among them (renumbered, sorted as
    every vocabulary is), or still in vocab (keep_vocabulary: --init-from's) -> (vocab, ids,
    counts (V,))."""
    ids = ids[:n]
    if not keep_vocabulary:
        present = np.unique(ids)  # (V,) the ids that occur, sorted
        vocab = Vocabulary([vocab.tokens[i] for i in present], vocab.level)
        ids = np.searchsorted(present, ids).astype(ids.dtype)  # (n,) renumbered
    return vocab, ids, np.bincount(ids, minlength=len(vocab))


def default_out(script, inputs):
    """The --out a trainer writes when given none: out/<script>-<the first INPUT's file or
    folder name, no suffix>.npz."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(inputs[0])))[0]
    return os.path.join("out", f"{script}-{stem}.npz")


def data_meta(cls, vocab, counts, args, files):
    """The part of a checkpoint's meta record that says what was trained on what: format
    version, kind (class cls), level, vocabulary, token counts, the kind's run-defining options,
    and every input file's name, size and SHA-256 (input_meta)."""
    return {"format_version": FORMAT_VERSION, "kind": cls.kind, "level": vocab.level,
            "vocab": vocab.to_meta(), counts_key(vocab.level): counts.tolist(),
            "options": {name: getattr(args, name) for name in cls.OPTIONS},
            **input_meta(files)}


def print_start(data_line, args, cls):
    """The first lines of a run: what the data holds, then the run-defining options of the kind
    (class cls) as resolved, and where the checkpoint goes."""
    print(data_line)
    print("options: " + ", ".join(f"{name}={getattr(args, name)}" for name in cls.OPTIONS)
          + f"; out={args.out}")
    if getattr(args, "seed_drawn", False):
        print(f"seed {args.seed} was drawn for this run: --seed {args.seed} repeats it")
    if getattr(args, "page", None):
        print(f"live page: {args.page} (open it in a browser: it reloads itself while the run "
              "trains)")
