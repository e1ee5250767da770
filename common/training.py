"""
The run contract both trainers keep around their loops, in parts: the options and how a run
starts (fresh, --resume, --init-from), the corpus, the checkpoint files (Checkpoints: --out, the
best, the earlier run's kept as .prev), the reporter that prints, logs, keeps the history of losses
and samples and writes the live page (Reporter; live_page.py), early stopping (Best), and Run, which
holds them with the stop signals, the divergence check and the training clock. Each loop stays
visible in its script and asks Run a few things.
"""
import argparse
import atexit
import contextlib
import fcntl
import math
import os
import shlex
import shutil
import signal
import stat
import sys
import time
import uuid

import numpy as np
from tqdm import tqdm

from common.checkpoint import (FORMAT_VERSION, check_output_file, check_replaceable, peek_meta,
                               prepare_output, same_file, save_checkpoint, sibling, write_atomic)
from common.cli import (UserError, fraction, json_line, nonnegative_float, nonnegative_int,
                        positive_int)
from common.cli import given_options as cli_given, new_seed
from common.interface import read_checkpoint
from common.live_page import PAGE_SECONDS, LivePage, live_data
from common.vocabulary import Vocabulary, corpus_paths, counts_key, input_files, read_corpus

HISTORY_RECORDS = 1000  # at most about this many loss-history records per checkpoint
SAMPLE_RECORDS = 50  # at most this many printed samples per checkpoint, the first and last kept
# The smoothed training loss of the history and the pages: an exponential average with this
# weight on the value before (the gist's smooth_loss has 0.999 at one stream a step; rnnlm.py's
# iterations read N streams, so fewer of them make a curve)
SMOOTH_FACTOR = 0.99
# Printing follows the clock by default: at the gist's settings this code runs hundreds of
# iterations a second, so a sample every 100 iterations would be tens of lines a second.
PRINT_SECONDS = 5.0  # a sample and a loss line about this often, unless --sample-every N
PRINT_SHARE = 10  # ... or less often, so that printing takes at most about 1/10 of the time
EVAL_SECONDS = 5.0  # a validation about this often, unless --eval-every N ...
EVAL_SHARE = 10  # ... or less often, so that validating takes at most about 1/10 of the time
MAX_EVAL_SHARE = 0.5  # an explicit --eval-every validating over this share of --time-budget is noted
PLAIN_PROGRESS_SECONDS = 30.0  # with no terminal (no bar), a plain progress line about this often
STALE_NOTICE = 3  # validations in a row without a new best before the one overfitting notice
# --page shows up to PAGE_SAMPLES samples (thinned like the checkpoint's)
PAGE_SAMPLES = 1000


class StopFlag:
    """SIGINT / SIGTERM set a flag instead of raising, so the loop stops between iterations
    and never saves a half-updated state. `signum` is the signal received, or None."""

    def __init__(self):
        self.signum = None
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        self.signum = signum

    @property
    def exit_status(self):
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


def open_log(path, force=False):
    """Open a JSON-lines log for appending (line-buffered), failing before training if it can't
    or if the file there is not a log (check_replaceable; force: --force)."""
    if path is None:
        return None
    check_replaceable(path, "--log", "log", force)
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        return open(path, "a", buffering=1, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write --log {path}: {e.strerror}") from None



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


def load_corpus(args, level="char", meta=None, init_meta=None):
    """Read INPUT (a list of files and folders) and make its token ids -> (vocab, ids, counts,
    files). With `meta` (a run to resume) they must be the very files trained on; with
    `init_meta` (--init-from) they are encoded in that checkpoint's vocabulary."""
    vocab = Vocabulary.from_meta(init_meta) if init_meta is not None else None
    what = f" (for --init-from {args.init_from})" if init_meta is not None else ""
    vocab, ids, counts, files = read_corpus(args.input, args.encoding, level, vocab, what)
    if meta is not None:
        check_same_input(files, meta, args.resume)
    names = ", ".join(args.input)
    if not len(ids):
        raise UserError(f"{names} holds no {vocab.unit_name}s")
    if meta is not None and meta["vocab"] != vocab.to_meta():  # same bytes: a damaged checkpoint
        raise UserError(f"{args.resume} is damaged: its vocabulary is not that of {names} "
                        f"({len(vocab)} {vocab.unit_name}s)")
    return vocab, ids, counts, files


def input_stem(inputs):
    """The name a default --out is made from: the first INPUT's file or folder name, no suffix."""
    return os.path.splitext(os.path.basename(os.path.normpath(inputs[0])))[0]


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


def perplexity(loss):
    """exp(mean loss), inf where that overflows (a diverging run)."""
    return math.exp(loss) if loss < 700 else float("inf")


def check_paths(args):
    """No file a run writes (--out, its best and previous files, --log) may be the input, a
    checkpoint it reads, or another of them: symlinks and other spellings included."""
    stem = args.out[:-4] if args.out.endswith(".npz") else args.out
    if stem == args.out and args.out != args.resume:
        raise UserError(f"--out {args.out}: a checkpoint's name ends in .npz (its best and "
                        f"previous files go beside it): use --out {args.out}.npz")
    outputs = [("--out", args.out), ("the best checkpoint", sibling(args.out, "best")),
               ("the previous checkpoint", sibling(args.out, "prev")),
               ("the previous best", sibling(args.out, "prev.best")), ("--log", args.log),
               ("--page", getattr(args, "page", None))]
    outputs = [(what, path) for what, path in outputs if path]
    val_file = getattr(args, "val_file", None)
    for what, path in outputs:  # an output onto the validation text would destroy it
        if val_file and same_file(path, val_file):
            raise UserError(f"{what} {path} is the same file as --val-file {val_file}: choose "
                            f"another {what}")
    for folder in (p for p in args.input if os.path.isdir(p)):
        for what, path in outputs:  # written there, it would be read as text by the next run
            if same_file(os.path.dirname(os.path.abspath(path)), folder):
                choose = "a --page" if what == "--page" else "an --out and --log"
                raise UserError(f"{what} {path} is in the INPUT folder {folder}, whose files are "
                                f"all read as text: choose {choose} outside it")
    inputs = [("INPUT", p) for p in corpus_paths(args.input)]
    for i, (what, path) in enumerate(outputs):
        # --out may be the checkpoint it resumes or starts from (that one is kept as .prev)
        reads = inputs + ([("--resume", args.resume), ("--init-from", args.init_from)]
                          if what in ("--log", "--page") else [])
        for other, other_path in reads + outputs[:i]:
            if other_path and same_file(path, other_path):
                choose = "--page" if what == "--page" else "--out or --log"
                raise UserError(f"{what} {path} is the same file as {other} {other_path}: "
                                f"choose another {choose}")






class History:
    """The run's record kept in the checkpoint. records: the loss curve, {iter, loss, val_loss,
    seconds, smooth} (nats per token, None where not measured; seconds: training seconds, see
    Reporter; smooth: the training loss smoothed, an exponential average with weight
    smooth_factor on the value before, whose latest value is `smooth`).
    Training losses are kept every `stride` iterations; past HISTORY_RECORDS records the stride
    doubles and the records off it are dropped, so the history stays small for any run length
    (validation records are kept while they fit). samples: the samples printed, {iter, text},
    thinned to SAMPLE_RECORDS. to_meta adds the training seconds at the save."""

    def __init__(self, stored=None, smooth_factor=SMOOTH_FACTOR):
        stored = stored or {}
        self.stride = int(stored.get("stride", 1))
        self.records = list(stored.get("records", []))
        self.samples = list(stored.get("samples", []))
        self.smooth, self.smooth_factor = stored.get("smooth"), stored.get("smooth_factor",
                                                                           smooth_factor)

    def add(self, k, loss=None, val_loss=None, seconds=None, smooth=None):
        """Iteration k's figures. A training loss moves the smoothed one: to `smooth` when
        given (the gist's smooth_loss), else by the exponential average."""
        if loss is not None:
            f = self.smooth_factor
            self.smooth = smooth if smooth is not None else \
                loss if self.smooth is None else f * self.smooth + (1 - f) * loss
        last = self.records[-1] if self.records else None
        if last is not None and last["iter"] == k:  # the same iteration: one record
            if loss is not None:
                last["loss"], last["smooth"] = loss, self.smooth
            if val_loss is not None:
                last["val_loss"] = val_loss
        elif val_loss is not None or k % self.stride == 0:
            self.records.append({"iter": k, "loss": loss, "val_loss": val_loss, "seconds": seconds,
                                 "smooth": self.smooth if loss is not None else None})
        if len(self.records) > HISTORY_RECORDS:
            self.stride *= 2
            kept = [r for r in self.records
                    if r["iter"] % self.stride == 0 or r["val_loss"] is not None]
            if len(kept) > HISTORY_RECORDS:  # validation alone overflows: every other one
                kept = kept[::2]
            self.records = kept

    def add_sample(self, k, text):
        """A sample printed before iteration k."""
        self.samples.append({"iter": k, "text": text})
        thin(self.samples, SAMPLE_RECORDS)

    def to_meta(self, seconds):
        """The record as the checkpoint stores it, `seconds` the training seconds now."""
        return {"stride": self.stride, "records": self.records, "samples": self.samples,
                "seconds": seconds, "smooth": self.smooth, "smooth_factor": self.smooth_factor}


def thin(samples, cap):
    """Past `cap` entries, drop every other one of the list in place, the first and the last
    kept: like the loss records, what is kept stays spread over the whole run."""
    if len(samples) > cap:
        samples[:] = samples[:-1:2] + samples[-1:]


def diverged(what, k, hint="try a smaller --learning-rate"):
    """The one error both trainers give when training diverges (exit status 1)."""
    return UserError(f"{what} at iteration {k}: training diverged; the last saved checkpoint is "
                     f"untouched; {hint}", 1)


class Clock:
    """When something recurring (a printed sample, a validation) is due: at the first ask if
    at_start, then once `seconds` have passed since the last one ended, or `share` times its
    duration if that is longer, so that it takes at most about 1/share of the run's time."""

    def __init__(self, seconds, share, at_start):
        self.seconds, self.share, self.at_start = seconds, share, at_start
        self.interval, self.busy = seconds, False  # busy: the last ask said yes
        self.t_last = None if at_start else time.perf_counter()

    def start(self):
        """Count from now (a loop begins)."""
        self.t_last = None if self.at_start else time.perf_counter()

    def due(self):
        now = time.perf_counter()
        if self.busy:  # the interval starts after the event, and is longer after a slow one
            # (the event plus one iteration)
            self.interval = max(self.seconds, self.share * (now - self.t_last))
            self.t_last, self.busy = now, False
        if self.t_last is None or now - self.t_last >= self.interval:
            self.t_last, self.busy = now, True
            return True
        return False


class EvalClock:
    """--eval-every-seconds: due() is True once each time training time passes the next multiple
    of `every` seconds (never when every is 0)."""

    def __init__(self, every):
        self.every, self.next = every, every

    def due(self, train_seconds):
        if not self.every or train_seconds < self.next:
            return False
        self.next = (train_seconds // self.every + 1) * self.every
        return True


class Checkpoints:
    """--out and its best, checked before any training: none may be the input or another output,
    the folder must take a file, and no other run may be writing them (a lock beside --out,
    held while this process lives). --out and its best are one pair, a run's: each checkpoint
    carries its run's id (meta run_id: drawn when a fresh run begins, kept by --resume). At this
    run's first save, whatever stands at --out and at its best that is not this run's own is
    kept, each run's files together, under the first free pair of names beside --out
    (m.prev.npz and m.prev.best.npz, then m.prev2.npz ...), and said in one line naming the run."""

    def __init__(self, args, run_id, resumed=None):
        self.out, self.best = args.out, sibling(args.out, "best")
        check_paths(args)
        prepare_output(self.out)  # the folder made, a killed writer's temporary files removed
        for path, what in ((self.out, "--out"), (self.best, "the best checkpoint")):
            check_checkpoint_output(path, what)  # the best's temporary files removed too
        hold_lock(self.out)  # for this process's life
        self.run_id, self.resumed = run_id, resumed
        self.kept = False  # the files of other runs are put aside (at the first save)
        self.saved = set()  # paths written by this run

    def own(self, role, path, meta):
        """Whether the file at --out or its best (role "out" or "best"; meta: its record, or
        None) is this run's to replace: at --out, the very checkpoint this run resumes; at the
        best, this run's best (its id; one written before run ids, beside the resumed --out)."""
        if self.resumed is None:
            return False
        if role == "out" or same_file(path, self.resumed):  # the resumed file only at --out
            return role == "out" and same_file(path, self.resumed)
        if meta is not None and meta.get("run_id") is not None:
            return meta["run_id"] == self.run_id
        return meta is not None and same_file(self.out, self.resumed)

    def keep_others(self):
        """Put aside the files at --out and its best that belong to other runs (see above)."""
        runs = {}  # run id (or the path, for a file without one) -> {"out"/"best": (path, meta)}
        for role, path in (("out", self.out), ("best", self.best)):
            if not os.path.isfile(path):  # devices are written in place, never moved
                continue
            meta = peek_meta(path)
            if self.own(role, path, meta):
                continue
            key = (meta or {}).get("run_id") or ("legacy" if meta is not None else path)
            runs.setdefault(key, {})[role] = (path, meta)
        for files in runs.values():
            k = 1
            while any(os.path.lexists(p) for p in kept_names(self.out, k)):
                k += 1
            said = []
            for role, name in zip(("out", "best"), kept_names(self.out, k)):
                if role in files:
                    path, meta = files[role]
                    try:
                        keep_file(path, name)
                    except OSError as e:
                        raise UserError(f"cannot keep the earlier run's {path} as {name}: "
                                        f"{e.strerror}; nothing was replaced; choose another "
                                        "--out", 1) from None
                    said.append(f"{path} as {name}")
            path, meta = next(iter(files.values()))
            tqdm.write(f"kept the earlier run {describe_run(meta)}: " + " and ".join(said))

    def save(self, path, arrays, meta):
        if not self.kept:
            self.keep_others()
            self.kept = True
        save_checkpoint(path, arrays, meta)
        self.saved.add(path)


def kept_names(out, k):
    """The k-th pair of names (1, 2, ...) under which an earlier run's --out and best are kept."""
    tag = "prev" if k == 1 else f"prev{k}"
    return sibling(out, tag), sibling(out, tag + ".best")


def keep_file(path, name):
    """Keep the file at path under name (in the same folder): renamed, or for a symlink its
    target's bytes copied there (the link and its target stay; the next save writes through)."""
    if not os.path.islink(path):
        os.replace(path, name)
        return
    with open(path, "rb") as src:
        write_atomic(name, lambda f: shutil.copyfileobj(src, f))


def describe_run(meta):
    """A kept run as the message names it: (N iterations, seed S), or (not a readable
    checkpoint)."""
    if meta is None:
        return "(not a readable checkpoint)"
    iters = meta.get("n", meta.get("k"))
    seed = (meta.get("options") or {}).get("seed") if isinstance(meta.get("options"), dict) else None
    return f"({iters} iterations, seed {seed})"


def check_checkpoint_output(path, what):
    """A checkpoint is written to a regular file (or a new name, a symlink to one, a character
    device): a FIFO would block at the first save, a socket or a folder cannot take it; each
    refused here, before any work."""
    check_output_file(path, what)
    with contextlib.suppress(OSError):
        if stat.S_ISFIFO(os.stat(path).st_mode):
            raise UserError(f"{what} {path} is a FIFO: a checkpoint goes to a file; choose "
                            "another --out")


HELD_LOCKS = {}  # lock file path -> the open file holding its lock, in this process


def hold_lock(out):
    """Lock the hidden file .NAME.lock beside --out for this process's life: the kernel releases
    it when the process ends, kill -9 included, and a normal exit removes the file. A one-line
    UserError when another live run holds it."""
    folder, name = os.path.split(os.path.abspath(out))
    lock_path = os.path.join(folder, f".{name}.lock")
    if lock_path in HELD_LOCKS:  # this process holds it already (one run after another)
        return HELD_LOCKS[lock_path]
    while True:
        try:
            f = open(lock_path, "a+")
        except OSError as e:
            raise UserError(f"cannot lock --out {out}: {e.strerror}; choose another --out") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise UserError(f"another run is writing --out {out} now (it holds {lock_path}): "
                            "let it finish or stop it, or choose another --out") from None
        # the file locked must still be the one at lock_path: an exiting holder removes it
        with contextlib.suppress(OSError):
            if os.stat(lock_path).st_ino == os.fstat(f.fileno()).st_ino:
                break
        f.close()
    atexit.register(release_lock, f, lock_path)
    HELD_LOCKS[lock_path] = f  # kept open: closing it would release the lock
    return f


def release_lock(f, lock_path):
    """Remove the lock file while still holding it (a run that opens it then finds it gone and
    tries again), then let it go."""
    with contextlib.suppress(OSError):
        if os.stat(lock_path).st_ino == os.fstat(f.fileno()).st_ino:
            os.unlink(lock_path)
    f.close()


class Reporter:
    """What a run shows and keeps of itself: a sample and a loss line now and then (print_due),
    the validation lines, the --log lines, the history stored in the checkpoint (losses and
    samples), the progress bar with the training speed (a plain line now and then without a
    terminal), the training clock (train_seconds) and the --page. best: the run's Best;
    smooth_factor: the history's smoothing (see History)."""

    def __init__(self, args, unit, meta, best=None, smooth_factor=SMOOTH_FACTOR):
        self.args, self.unit, self.best = args, unit, best
        force = getattr(args, "force", False)
        self.page = LivePage(args.page, force) if getattr(args, "page", None) else None
        self.log_file, self.log_path = open_log(args.log, force), args.log
        self.log_every = args.log_every
        self.sample_every = args.sample_every
        self.history = History(meta.get("history"), smooth_factor)
        self.page_samples = list(self.history.samples)  # more of them than the checkpoint keeps
        self.page_seconds = 0.0  # spent writing the page so far
        self.eval_seconds = None  # the last validation took
        self.last_sample = None  # the iteration of the last printed sample
        # tokens predicted per character predicted of the validation text as written (jamo:
        # about 2.4 letters a syllable), set by a trainer of jamo; None: one token a character
        self.tokens_per_char = None
        self.window = [0.0, 0]  # training loss per token summed since the last loss line, count
        self.bar, self.describe, self.speed, self.rate, self.total = None, None, None, None, None
        now = time.perf_counter()
        self.t_last, self.k_last, self.t_prev, self.t_plain = now, 0, now, now  # speed clock
        self.print_clock = Clock(PRINT_SECONDS, PRINT_SHARE, at_start=True)
        # the training clock: seconds since begin() with validation, saving and --page left
        # out (paused), continuing the seconds of the runs before this one
        self.t_begin, self.k_begin, self.paused = now, 0, 0.0
        stored = meta.get("history") or {}  # older checkpoints: the wall-clock seconds they record
        self.seconds_before = stored.get("seconds", meta.get("train_seconds") or 0.0)
        with contextlib.suppress(AttributeError, ValueError):  # a pipe sees each line as it comes
            sys.stdout.reconfigure(line_buffering=True)

    def begin(self, k, total):
        """The bar shows iteration k of total (None: open) from here on."""
        self.bar = tqdm(total=total, initial=k, unit="it", dynamic_ncols=True, disable=None,
                        mininterval=0.5)
        self.t_last = self.t_prev = self.t_plain = self.t_begin = time.perf_counter()
        self.k_last, self.k_begin, self.total, self.paused = k, k, total, 0.0
        self.print_clock.start()
        if self.page:
            self.page.t_next = self.t_begin + PAGE_SECONDS

    def train_seconds(self):
        """Seconds of training so far, this run's and those before it: validation, saving and
        writing --page are left out."""
        return self.seconds_before + time.perf_counter() - self.t_begin - self.paused

    def run_seconds(self):
        """Wall seconds since this run's training began, everything included."""
        return time.perf_counter() - self.t_begin

    def budget_seconds(self):
        """This run's seconds as --time-budget counts them: its wall time, or (--budget-clock
        training) its training time with validation, saving and --page left out."""
        if getattr(self.args, "budget_clock", "wall") == "training":
            return self.train_seconds() - self.seconds_before
        return self.run_seconds()

    def pause(self, seconds):
        """Leave `seconds` just spent (a save, the page) out of the training clock and the speed."""
        self.paused += seconds
        self.t_last += seconds

    def print_due(self, k):
        """Whether iteration k prints a sample and a loss line: every --sample-every iterations
        when given (0: never), else at the first iteration and then when PRINT_SECONDS (or
        PRINT_SHARE times the last print's duration, if longer) have passed since it ended."""
        if self.sample_every is not None:
            return self.sample_every > 0 and k % self.sample_every == 0
        return self.print_clock.due()

    def print_sample(self, k, text, shown=None):
        """Print a sample taken before iteration k between dashes (shown: how it is printed,
        default the text) and keep it in the history and for the page."""
        tqdm.write(f"----\n{text if shown is None else shown}\n----")
        self.last_sample = k
        self.history.add_sample(k, text)
        if self.page:
            self.page_samples.append({"iter": k, "text": text})
            thin(self.page_samples, PAGE_SAMPLES)

    def final_sample_due(self, k):
        """Whether a run that ends after k iterations prints one more sample, so that the last
        one shown is what the model writes now: samples are on, this run trained, and no sample
        was printed at k."""
        return self.sample_every != 0 and k > self.k_begin and self.last_sample != k

    def print_recent_loss(self, k):
        """Print the mean training loss per token since the last such line, and its perplexity."""
        total, count = self.window
        self.window = [0.0, 0]
        mean = total / max(count, 1)
        tqdm.write(f"iter {k}, loss: {mean:.4f} nats/{self.unit} (mean since the last line), "
                   f"perplexity {perplexity(mean):.2f}")

    def log(self, **fields):
        """A --log line; when it cannot be written (a full disk), say so once and train on."""
        if self.log_file:
            try:
                self.log_file.write(json_line(**fields))
            except OSError as e:
                self.log_file = None
                tqdm.write(f"warning: cannot write --log {self.log_path}: {e.strerror}; logging "
                           "stopped, training goes on", file=sys.stderr)

    def trained(self, k, loss_per_token, smooth=None, **log_fields):
        """Iteration k's training loss (smooth: the trainer's own smoothed loss per token, else
        the history's average): into the history, and a --log line every log_every."""
        self.history.add(k, loss=loss_per_token, seconds=round(self.train_seconds(), 3),
                         smooth=smooth)
        self.window[0] += loss_per_token
        self.window[1] += 1
        if self.log_every and k % self.log_every == 0:
            self.log(iter=k, **log_fields)

    def validated(self, k, val_loss, **log_fields):
        """A validation loss after k iterations: printed, logged, kept in the history."""
        bits, unit = val_loss / math.log(2), self.unit
        per_char = ""
        if self.tokens_per_char:  # jamo: the same loss per character of the text as written
            log_fields["val_bits_per_char"] = bits * self.tokens_per_char
            per_char = f"; {bits * self.tokens_per_char:.4f} bits/char of the text as written"
        tqdm.write(f"iter {k}: val loss {val_loss:.4f} nats/{unit}, {bits:.4f} bits/{unit}, "
                   f"perplexity {perplexity(val_loss):.3f}{per_char}")
        # the evaluation (since iteration k ended) is left out of the clock and the speed
        self.eval_seconds = time.perf_counter() - self.t_prev
        self.pause(self.eval_seconds)
        seconds = round(self.train_seconds(), 3)  # of training when iteration k ended
        self.log(iter=k, val_loss=val_loss, val_bits=bits, val_perplexity=perplexity(val_loss),
                 unit=unit, train_seconds=seconds, **log_fields)
        if self.page:
            self.page.validated()
        self.history.add(k, val_loss=val_loss, seconds=seconds)

    def progress(self, k, tokens_per_iter, describe):
        """One more iteration (k done) on the bar; about once a second its figures become
        describe() (e.g. "loss 1.234") and the training speed in tokens per second. With no
        terminal, the same figures as a plain line about every PLAIN_PROGRESS_SECONDS. The
        page is rewritten when due."""
        self.bar.update(1)
        self.describe = describe
        now = self.t_prev = time.perf_counter()  # when iteration k ended
        if now - self.t_last > 1.0:
            self.rate = (k - self.k_last) * tokens_per_iter / (now - self.t_last)
            self.speed = f"{self.rate / 1000:.1f}k {self.unit}s/s"
            self.bar.set_postfix_str(f"{describe()}, {self.speed}")
            self.t_last, self.k_last = now, k
        if self.bar.disable and now - self.t_plain >= PLAIN_PROGRESS_SECONDS:
            of = f" of {self.total}" if self.total else ""
            speed = f", {self.speed}" if self.speed else ""
            print(f"progress: iteration {k}{of}, {describe()}{speed}")
            self.t_plain = now
        if self.page and self.page.due(now):
            self.write_page(k)
            self.t_prev = time.perf_counter()  # a validation next leaves out its own time only

    def write_page(self, k, ended=None):
        """Write --page after k iterations: live, or the final page of a run that `ended` (how,
        e.g. "finished after 500 iterations"), which no longer reloads."""
        if self.page:
            spent = self.page.write(lambda: self.page_data(k, ended))
            self.pause(spent)
            self.page_seconds += spent

    def page_data(self, k, ended=None):
        """What the page shows (common/live_page.py)."""
        return live_data(self, k, ended)

    def time_left(self, k):
        """{seconds, by}: the time the run has left after k iterations, by --max-iters (at this
        run's pace so far) or --time-budget, whichever ends it first; None without either."""
        left = []
        budget = getattr(self.args, "time_budget", 0)
        if budget:
            left.append((max(budget - self.budget_seconds(), 0.0), "--time-budget"))
        if self.total is not None and k > self.k_begin:
            pace = (time.perf_counter() - self.t_begin) / (k - self.k_begin)  # seconds/iteration
            left.append((max(self.total - k, 0) * pace, f"{self.total - k} more iterations at "
                         "this run's pace"))
        return None if not left else dict(zip(("seconds", "by"), min(left)))

    def close(self, k=None, ended=None):
        """Close the bar, its figures brought up to date first (they agree with the last line);
        with `ended` (how the run ended, after k iterations) write the final --page."""
        if self.bar is not None:
            if self.describe is not None:
                speed = f", {self.speed}" if self.speed else ""
                self.bar.set_postfix_str(self.describe() + speed, refresh=False)
            self.bar.close()
        if ended is not None:
            self.write_page(k, ended)


class Best:
    """The best validation loss so far and the file that keeps it; early stopping: after
    STALE_NOTICE validations without a new best the run says so once, and after --patience
    of them (when given) out_of_patience tells the loop to stop."""

    def __init__(self, path, unit, patience, meta):
        self.path, self.unit, self.patience = path, unit, patience
        self.loss = meta.get("best_val_loss")
        self.iter = meta.get("best_val_iter")  # absent in older checkpoints
        self.stale = meta.get("validations_since_best", 0)  # validations without a new best
        self.noticed = meta.get("overfit_noticed", False)

    def update(self, k, val_loss, save_best):
        """A validation loss after k iterations; a new best is saved by save_best(path).
        Returns whether it is a new best."""
        if self.loss is None or val_loss < self.loss:
            self.loss, self.iter, self.stale = val_loss, k, 0
            save_best(self.path)
            return True
        self.stale += 1
        if self.out_of_patience:
            tqdm.write(f"iter {k}: stopping early: {self.stale} validations without a new best "
                       f"(--patience {self.patience}); {self.text()}")
        elif self.stale >= STALE_NOTICE and not self.noticed:
            self.noticed = True
            tqdm.write(f"iter {k}: the validation loss has not improved for {self.stale} "
                       f"validations, so the model may be overfitting; {self.text()}; "
                       "--patience N stops after N validations without a new best")
        return False

    @property
    def out_of_patience(self):
        return bool(self.patience) and self.stale >= self.patience

    def text(self):
        where = "" if self.iter is None else f" at iteration {self.iter}"
        return f"the best, {self.loss:.4f} nats/{self.unit}{where}, is kept in {self.path}"

    def meta(self):
        return {"best_val_loss": self.loss, "best_val_iter": self.iter,
                "validations_since_best": self.stale, "overfit_noticed": self.noticed}


class Run:
    """One training run around a trainer's loop: its checkpoint files (files), what it prints
    and logs (report), the best validation loss and early stopping (best), the stop signals, the
    divergence check, and when to validate and save. resumed_meta: the meta record of the run
    being resumed, or None for a fresh one. unit: "char", "jamo" or "word"; hint: the divergence
    advice; smooth_factor: the history's smoothing (see History)."""

    def __init__(self, args, unit, resumed_meta=None, hint="try a smaller --learning-rate",
                 smooth_factor=SMOOTH_FACTOR):
        meta = resumed_meta or {}
        self.args, self.hint = args, hint
        # the run's id, in every checkpoint it writes: drawn now, or the resumed run's own
        self.run_id = meta.get("run_id") or uuid.uuid4().hex
        self.files = Checkpoints(args, self.run_id, getattr(args, "resume", None))
        self.best = Best(self.files.best, unit, args.patience, meta)
        self.report = Reporter(args, unit, meta, self.best, smooth_factor)
        self.eval_clock = Clock(EVAL_SECONDS, EVAL_SHARE, at_start=False)
        self.train_clock = EvalClock(getattr(args, "eval_every_seconds", 0))
        self.stop, self.total = None, None  # the StopFlag and the iterations of a loop begun
        self.budget_checked = False  # check_eval_share has looked
        # wall-clock seconds of the runs before this one (none stored before this field existed)
        self.seconds_before = meta.get("train_seconds") or 0.0
        self.began = time.perf_counter()

    def begin(self, k, total):
        """From here on signals stop the loop; the bar shows iteration k of total (None: open).
        Returns finished(k): a resumed run may be done already."""
        self.stop = StopFlag()
        self.began = time.perf_counter()
        self.total = total
        self.report.begin(k, total)
        self.eval_clock.start()
        return self.finished(k)

    def finished(self, k):
        """Whether the run is done after k iterations: the total given to begin() reached, or
        --time-budget seconds passed since this run's training began (report.budget_seconds)."""
        budget = self.args.time_budget
        return (self.total is not None and k >= self.total) or \
            bool(budget and self.report.budget_seconds() >= budget)

    def check(self, value, what, k):
        """Stop with the divergence error when value (a loss) is NaN or infinite."""
        if not math.isfinite(value):
            self.report.close(k, f"stopped at iteration {k}: training diverged")
            raise diverged(f"{what} became {value}", k, self.hint)

    def eval_due(self, k):
        """Whether to validate after k iterations: every --eval-every iterations (0: only at the
        end) or --eval-every-seconds of training when given; else by the clock, about every
        EVAL_SECONDS, less often if validating would take over 1/EVAL_SHARE of the time."""
        every, seconds = self.args.eval_every, getattr(self.args, "eval_every_seconds", 0)
        if every is None and not seconds:
            return self.eval_clock.due()
        return self.train_clock.due(self.report.train_seconds()) or bool(every and k % every == 0)

    def save_due(self, k):
        """Whether to save after k iterations: at a signal, or every --save-every."""
        every = self.args.save_every
        return self.stop_requested or bool(every and k % every == 0)

    @property
    def stop_requested(self):
        """A SIGINT or SIGTERM has come: save and stop after this iteration."""
        return self.stop is not None and self.stop.signum is not None

    def validated(self, k, val_loss, save_best, **log_fields):
        """A validation loss after k iterations: printed, logged, kept in the history; a new
        best is saved by save_best(path) (returns True). A non-finite loss stops the run before
        any save. out_of_patience then tells the loop to stop."""
        self.check(val_loss, "the validation loss", k)
        self.report.validated(k, val_loss, **log_fields)
        if not self.budget_checked:
            self.budget_checked = True
            self.check_eval_share(k)
        return self.best.update(k, val_loss, save_best)

    def check_eval_share(self, k):
        """After the first validation of a run with --time-budget and --eval-every: one line
        when validating that often would take over half the budget."""
        every, budget, report = self.args.eval_every, self.args.time_budget, self.report
        if not (budget and every) or k <= report.k_begin:
            return
        per_iter = (report.train_seconds() - report.seconds_before) / (k - report.k_begin)
        share = report.eval_seconds / (report.eval_seconds + every * per_iter)
        if share > MAX_EVAL_SHARE:
            tqdm.write(f"note: one validation takes {report.eval_seconds:.2f} s and {every} "
                       f"iterations {every * per_iter:.2f} s, so --eval-every {every} spends "
                       f"about {share:.0%} of --time-budget {budget:g} validating; a larger "
                       "--eval-every leaves more of it to training")

    @property
    def out_of_patience(self):
        return self.best.out_of_patience

    def meta(self):
        """The run's part of the checkpoint's meta record."""
        history = self.report.history.to_meta(round(self.report.train_seconds(), 3))
        return {**self.best.meta(), "history": history, "run_id": self.run_id,
                "train_seconds": self.seconds_before + time.perf_counter() - self.began}

    def save(self, path, arrays, meta, k):
        """Write a checkpoint (never one with a non-finite array); its time is left out of the
        training clock."""
        if not all(np.isfinite(a).all() for a in arrays.values()):
            self.report.close(k, f"stopped at iteration {k}: training diverged")
            raise diverged("the weights became non-finite", k, self.hint + "; not saved")
        t0 = time.perf_counter()
        try:
            self.files.save(path, arrays, meta)
        except UserError:
            self.report.close(k, f"stopped at iteration {k}: {path} could not be saved")
            raise
        self.report.pause(time.perf_counter() - t0)

    def interrupted(self, k):
        """After a signal's save: the message, and the exit status to return."""
        self.report.close(k, f"interrupted at iteration {k}")
        out = shlex.quote(self.files.out)
        print(f"interrupted at iteration {k}: saved to {self.files.out}; --resume {out} "
              "continues the run", file=sys.stderr)
        return self.stop.exit_status

    def finish(self, k, figures=""):
        """After the last iteration: close the bar and say how the run ended (on the page too,
        early stopping with its reason); returns 0."""
        best = self.best
        ended = (f"stopped early after {k} iterations: {best.stale} validations without a new "
                 f"best (--patience {best.patience})") if best.out_of_patience else \
            f"finished after {k} iterations"
        self.report.close(k, ended)
        where = f"saved to {self.files.out}" if self.files.out in self.files.saved else "nothing saved"
        print(f"done: {k} iterations{figures}; {where}")
        return 0
