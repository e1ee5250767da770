"""
Plumbing shared by the scripts: reading a corpus, its vocabulary, checkpoint files, signals,
argument checks and one-line errors. No model math lives here.
"""
import argparse
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1  # bump when the checkpoint layout changes; load() refuses other versions


class UserError(Exception):
    """A problem the user can fix; printed as one line 'error: ...', exit status `status`."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def run(main):
    """Call main() and turn UserError, Ctrl-C and a closed pipe into one line and an exit status."""
    try:
        status = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        status = e.status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as other command-line tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    except MemoryError:
        print("error: out of memory: try a smaller --batch-size, --seq-length or --hidden-size",
              file=sys.stderr)
        status = 1
    sys.exit(status or 0)


# ----------------------------------------------------------------------------- text and vocabulary

def check_file(path, what="input file"):
    """A UserError naming what is wrong with the path, if anything."""
    if not os.path.exists(path):
        raise UserError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"{what} is a directory, not a file: {path}")


def read_bytes(path, what="input file"):
    """The file's bytes, or a UserError naming what is wrong with the path."""
    check_file(path, what)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None


def decode_text(data, encoding="utf-8", path="input"):
    """Bytes -> str exactly: no newline translation, no normalisation; a leading BOM is dropped."""
    try:
        text = data.decode(encoding)
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r}: give a Python codec name, e.g. "
                        "--encoding latin-1") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid {encoding}: bad byte 0x{data[e.start]:02x} at byte "
                        f"offset {e.start}; if the file uses another encoding, pass it with "
                        "--encoding (e.g. --encoding cp949 or --encoding latin-1)") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path, encoding="utf-8", what="input file"):
    """Returns (text, sha256 hex of the file's bytes, number of bytes); empty files are refused."""
    data = read_bytes(path, what)
    if not data:
        raise UserError(f"{what} is empty: {path}")
    return decode_text(data, encoding, path), hashlib.sha256(data).hexdigest(), len(data)


def code_points(text):
    """str -> (len,) uint32 array of its Unicode code points, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def build_vocab(text, chunk=1 << 24):
    """Returns (vocab, ids, counts): vocab is sorted(set(text)) as one string (sorted, so the
    same corpus always gives the same vocabulary), ids the text as indices into it in the
    smallest unsigned dtype that holds them (uint8 for V <= 256), counts how often each character
    occurs. O(len) time via a code-point histogram, in chunks so memory stays near the ids' size."""
    counts = np.zeros(0x110000, dtype=np.int64)             # (every code point,)
    for i in range(0, len(text), chunk):
        counts += np.bincount(code_points(text[i:i + chunk]), minlength=len(counts))
    present = np.flatnonzero(counts)                         # (V,) sorted code points
    lookup = np.zeros(len(counts), dtype=np.min_scalar_type(max(len(present) - 1, 0)))
    lookup[present] = np.arange(len(present))                # code point -> index
    ids = np.empty(len(text), dtype=lookup.dtype)            # (L,)
    for i in range(0, len(text), chunk):
        ids[i:i + chunk] = lookup[code_points(text[i:i + chunk])]
    return "".join(map(chr, present)), ids, counts[present]


def encode(text, vocab, what="text"):
    """Map text onto an existing vocabulary -> int32 ids; unknown characters are a UserError."""
    cps = code_points(text)                                  # (L,)
    known = code_points(vocab)                               # (V,) sorted
    pos = np.searchsorted(known, cps)                        # (L,)
    pos[pos == len(known)] = 0
    bad = known[pos] != cps                                  # (L,) True where unknown
    if bad.any():
        missing = "".join(map(chr, np.unique(cps[bad])))
        raise UserError(f"{what} has {len(missing)} character(s) not in the model's vocabulary "
                        f"of {len(vocab)}: {shown(missing)}")
    return pos.astype(np.int32)


def shown(chars, limit=40):
    """A short printable listing of characters, e.g. 'x', '\\n', '한' ... (and 12 more)."""
    items = [repr(c) for c in chars[:limit]]
    more = f" ... (and {len(chars) - limit} more)" if len(chars) > limit else ""
    return ", ".join(items) + more


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, arrays, meta):
    """Write arrays plus a JSON meta string to one .npz, atomically: a temporary file in the
    same folder, flushed to disk, then renamed over `path`. A crash at any moment leaves
    either the previous complete file or the new complete one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it an ordinary file's mode
        with os.fdopen(fd, "wb") as f:
            # a file object, so np.savez never appends its own suffix
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible everywhere)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_checkpoint(path, kinds=None):
    """Read a checkpoint written by save_checkpoint -> (arrays dict, meta dict).
    Never unpickles (allow_pickle=False); checks the format version and, if given, the kind."""
    check_file(path, "checkpoint")
    if os.path.getsize(path) == 0:
        raise UserError(f"checkpoint is empty: {path}")
    if not zipfile.is_zipfile(path):  # np.load would otherwise try other formats, pickle included
        raise UserError(f"{path} is not a checkpoint: not an .npz (zip) file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        reason = "it holds Python objects (pickles), which are never loaded" \
            if "pickle" in str(e) or "Object arrays" in str(e) else "not a complete .npz file"
        raise UserError(f"{path} is not a usable checkpoint: {reason}") from None
    except Exception as e:  # zlib.error and friends from a damaged archive
        raise UserError(f"{path} is not a usable checkpoint: damaged ({type(e).__name__})") from None
    meta_arr = arrays.pop("meta", None)
    if meta_arr is None or meta_arr.dtype.kind != "U" or meta_arr.shape != ():
        raise UserError(f"{path} is not a min-char-rnn checkpoint (no meta record)")
    try:
        meta = json.loads(str(meta_arr))
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a min-char-rnn checkpoint (unreadable meta record)") from None
    if version != FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format version {version}, this code reads version "
                        f"{FORMAT_VERSION}: use the matching version of min-char-rnn or retrain")
    if kinds is not None and meta.get("kind") not in kinds:
        raise UserError(f"{path} holds a model of kind {meta.get('kind')!r}; expected "
                        + " or ".join(repr(k) for k in kinds))
    if not isinstance(meta.get("vocab"), str) or not meta["vocab"]:
        raise UserError(f"{path} has no vocabulary in its meta record")
    return arrays, meta


def check_arrays(path, arrays, shapes):
    """Every named array present, with the expected shape, a float dtype and finite values."""
    for name, shape in shapes.items():
        a = arrays.get(name)
        if a is None:
            raise UserError(f"{path} is damaged: array {name!r} is missing")
        if a.shape != tuple(shape):
            raise UserError(f"{path} is damaged: {name} has shape {a.shape}, expected "
                            f"{tuple(shape)} (does the vocabulary match the weights?)")
        if a.dtype not in (np.float32, np.float64):
            raise UserError(f"{path} is damaged: {name} has dtype {a.dtype}, expected float32 "
                            "or float64")
        if not np.isfinite(a).all():
            raise UserError(f"{path} is damaged: {name} holds NaN or infinite values")


def prepare_output(path):
    """Create the checkpoint's folder and check it can be written, before any training."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"--out {path} is a directory: give a file name such as {path}/model.npz")
    parent = folder
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"cannot save to --out {path}: {parent} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"cannot write checkpoints to {folder}: {e.strerror}; choose another "
                        "--out") from None
    # temporary files that a killed run left behind while saving to this path (never loaded)
    prefix = "." + os.path.basename(path) + "."
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def sibling(path, tag):
    """out/model.npz -> out/model.<tag>.npz (the best and previous checkpoints live beside it)."""
    stem = path[:-4] if path.endswith(".npz") else path
    return f"{stem}.{tag}.npz"


# ----------------------------------------------------------------------------- run control

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


def open_log(path):
    """Open a JSON-lines log for appending (line-buffered), failing before training if it can't."""
    if path is None:
        return None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        return open(path, "a", buffering=1, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write --log {path}: {e.strerror}") from None


def given_options(parser, argv, names):
    """{name: value} for the options among `names` typed on the command line, defaults left
    out (how --resume tells a value the user gave from a default). argparse fills in a default
    only where the namespace has no value yet, so a pre-filled marker survives untyped options."""
    unset = object()
    parsed = parser.parse_args(argv, namespace=argparse.Namespace(**{n: unset for n in names}))
    return {n: getattr(parsed, n) for n in names if getattr(parsed, n) is not unset}


def add_run_options(run):
    """The run-control options both trainers share, on an argparse group."""
    run.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    run.add_argument("--save-every", type=nonnegative_int, default=1000,
                     help="save a checkpoint every N iterations (default 1000; 0: only at the end)")
    run.add_argument("--eval-every", type=nonnegative_int, default=1000,
                     help="validation loss every N iterations (default 1000; 0: only at the end)")
    run.add_argument("--log", default=None, help="append JSON lines of training figures here")
    run.add_argument("--log-every", type=nonnegative_int, default=100,
                     help="write a --log line every N iterations (default 100; 0: never)")


def resume_run(args, given, names, kind):
    """--resume: load args.resume, take the run-defining options `names` from it (a different
    value typed on the command line is refused, naming it), and default INPUT and --out to the
    stored input and the checkpoint itself. Returns (arrays, meta)."""
    arrays, meta = load_checkpoint(args.resume, kinds=(kind,))
    stored = meta["options"]
    for name in names:
        if name in given and given[name] != stored[name]:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {given[name]} differs from the {stored[name]} stored in "
                            f"{args.resume}: drop {flag} to resume, or start a new run")
        setattr(args, name, stored[name])
    if args.input is None:
        args.input = meta["input"]
    if args.out is None:
        args.out = args.resume
    return arrays, meta


def check_val_split(val, val_fraction, unit="characters"):
    """A validation split, when asked for, must hold at least 2 tokens to predict one."""
    if val_fraction > 0 and len(val) < 2:
        raise UserError(f"the validation split has {len(val)} {unit}, too few to evaluate: "
                        "raise --val-fraction or use --val-fraction 0")


def check_same_input(path, sha, nbytes, meta):
    """A resumed run must read the very bytes it was trained on (size and SHA-256 in meta)."""
    if sha != meta["input_sha256"] or nbytes != meta["input_bytes"]:
        raise UserError(f"{path} is not the text this run was trained on ({nbytes} bytes now, "
                        f"{meta['input_bytes']} in the checkpoint, SHA-256 differs): resume with "
                        "the original file, or start a new run")


def positive_int(s):
    return _checked(int, s, lambda v: v > 0, "a positive integer")


def nonnegative_int(s):
    return _checked(int, s, lambda v: v >= 0, "an integer >= 0")


def positive_float(s):
    return _checked(float, s, lambda v: 0 < v < float("inf"), "a positive number")


def nonnegative_float(s):
    return _checked(float, s, lambda v: 0 <= v < float("inf"), "a number >= 0")


def fraction(s):
    return _checked(float, s, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _checked(convert, s, ok, wanted):
    try:
        v = convert(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not {wanted}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{s!r} is not {wanted}")
    return v


def json_line(**fields):
    """One JSON-lines record, newline included."""
    return json.dumps(fields, ensure_ascii=False) + "\n"
