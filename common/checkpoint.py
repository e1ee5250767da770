"""
Checkpoint files: one .npz of named arrays plus a JSON meta record, written atomically and read
without ever unpickling; the previous and best files kept beside it.
"""
import contextlib
import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile

import numpy as np

from common.cli import UserError
from common.page import PAGE_START
from common.vocabulary import check_file, counts_key

# Version 2 added the loss history (meta["history"], whose samples and seconds are optional);
# version 1 files still load (no history).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save_checkpoint(path, arrays, meta):
    """Write arrays plus a JSON meta string to one .npz, atomically (see write_atomic)."""
    # a file object, so np.savez never appends its own suffix
    write_atomic(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **arrays))


def write_atomic(path, write, what="--out"):
    """Call write(f) on a binary file: a temporary file in the folder of path (of its target,
    for a symlink), flushed to disk, then renamed over it. A crash at any moment leaves either the
    previous complete file or the new complete one; a failed write (a full disk) is a UserError
    (exit 1) naming what was kept, and `what` (the option that chose the path). A character
    device, a FIFO or /dev/stdout is written in place instead (see output_target)."""
    target, in_place = output_target(path, what)
    if in_place:
        write_in_place(path, write, what)
        return
    folder = os.path.dirname(target)
    tmp = None
    try:
        # ".<name>.<pid>.<random>.tmp": this run's own, see sweep_temporaries
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp",
                                   prefix=f".{os.path.basename(target)}.{os.getpid()}.")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it an ordinary file's mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # a symlink at path keeps pointing at the new file
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):  # e.g. the disk is full: say what was kept, no traceback
            kept = "the previous file there is intact" if os.path.exists(path) else \
                "nothing was written there"
            raise UserError(f"cannot save {path}: {e.strerror} (in {folder}); {kept}; free some "
                            f"space or choose another {what}", 1) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible everywhere)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_in_place(path, write, what):
    """Call write(f) on path opened for appending, no temporary file: for a device, a FIFO or an
    open descriptor, which a rename would replace (as root, /dev/null by a regular file).
    Appending never truncates the file behind a descriptor (`>> log` stays a log)."""
    try:
        with open(path, "ab") as f:
            write(Stream(f))
    except OSError as e:  # e.g. /dev/full, or the FIFO's reader went away
        raise UserError(f"cannot write {what} {path}: {e.strerror}; choose another {what}",
                        1) from None


class Stream(io.RawIOBase):
    """A file written in place, offered with no position: a device's (/dev/null's is always 0)
    would mislead a writer that seeks back, such as np.savez's zip file, which then streams."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def writable(self):
        return True

    def write(self, data):
        return self.f.write(data)


# /dev/fd/N or /proc/PID/fd/N: a process's open file, where /dev/stdout and /dev/stderr lead
DESCRIPTOR = re.compile(r"/(dev|proc/[^/]+)/fd/\d+")


def output_target(path, what="--out"):
    """How an output at path is written -> (target, in_place). A character device, a FIFO, or a
    name leading to an open descriptor (/dev/stdout) is written in place: (path, True). A regular
    file, a new name or a symlink to either is replaced atomically: (its real path, False), so a
    symlink's target is written, not the link. Anything else is a one-line UserError."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: what a write would reach
    except (FileNotFoundError, NotADirectoryError):  # a new file; check_output_file checks
        return os.path.realpath(path), False         # that its folder exists
    except OSError as e:  # a symlink loop, a folder we may not enter
        raise UserError(f"cannot write {what} {path}: {e.strerror}; choose another {what}"
                        ) from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder: give a file name in it")
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return path, True
    if stat.S_ISREG(mode):
        return (path, True) if leads_to_descriptor(path) else (os.path.realpath(path), False)
    raise UserError(f"{what} {path} is neither a regular file, a character device nor a FIFO: "
                    f"choose another {what}")


def leads_to_descriptor(path):
    """Whether path, or a symlink on the way from it, is /dev/fd/N or /proc/PID/fd/N (the chain
    /dev/stdout -> /proc/self/fd/1 -> the file a shell redirected to)."""
    for _ in range(40):  # the most symlinks Linux follows in one lookup
        folder, name = os.path.split(os.path.abspath(path))
        path = os.path.join(os.path.realpath(folder), name)  # /dev/fd -> /proc/PID/fd
        if DESCRIPTOR.fullmatch(path):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_stored(path):
    """Every member of the checkpoint's zip stored as save_checkpoint writes it: uncompressed, so
    no member inflates beyond the file's own size (a small deflated array could ask for
    gigabytes). A UserError naming the first that is not, before anything is read."""
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # np.load says what is wrong
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
            raise UserError(f"{path} is damaged: its member {info.filename} is compressed "
                            f"({info.file_size} bytes unpacked), which no trainer writes")


def load_checkpoint(path, kinds=None):
    """Read a checkpoint written by save_checkpoint -> (arrays dict, meta dict).
    Never unpickles (allow_pickle=False); checks the format version and, if given, the kind.
    The fields of the record are the kind's to check (common/interface.py read_checkpoint)."""
    check_file(path, "checkpoint", regular=True)
    if os.path.getsize(path) == 0:
        raise UserError(f"checkpoint is empty: {path}")
    if not zipfile.is_zipfile(path):  # np.load would otherwise try other formats, pickle included
        raise UserError(f"{path} is not a checkpoint: not an .npz (zip) file")
    check_stored(path)
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
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep
        raise UserError(f"{path} is not a min-char-rnn checkpoint (unreadable meta record)") from None
    if version not in READABLE_VERSIONS:
        raise UserError(f"{path} has checkpoint format version {version}, this code reads versions "
                        + " and ".join(map(str, READABLE_VERSIONS))
                        + ": use the matching version of min-char-rnn or retrain")
    if kinds is not None and meta.get("kind") not in kinds:
        raise UserError(f"{path} holds a model of kind {meta.get('kind')!r}; expected "
                        + " or ".join(repr(k) for k in kinds))
    if not isinstance(meta.get("vocab"), str) or not meta["vocab"]:
        raise UserError(f"{path} has no vocabulary in its meta record")
    return arrays, meta


MAX_META_BYTES = 1 << 26  # a meta record larger than this (64 MiB) is damage, not a run's record


def peek_meta(path):
    """The meta record of the checkpoint at path, read alone (no array is inflated) -> dict, or
    None when path holds no readable checkpoint (missing, not a zip, no or a damaged record)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("meta.npy")
            if info.file_size > MAX_META_BYTES:
                return None
            with z.open(info) as f:
                meta = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
        return meta if isinstance(meta, dict) else None
    except Exception:  # any damage at all: not a checkpoint to keep track of, only a file
        return None


# ----------------------------------------------------------------------------- the meta record
# Checks of meta fields: each kind lists the fields it writes with these (common/interface.py),
# so a checkpoint is refused unless its record is one a trainer could have written.

MAX_INT = 2 ** 62  # counts, iterations and sizes beyond this are damage, not training


def is_int(lo=0, hi=MAX_INT):
    return lambda v: type(v) is int and lo <= v <= hi


def is_num(lo=-math.inf, hi=math.inf, lo_open=False):
    """A finite number (an int no larger than MAX_INT: a bigger one is not a float) in [lo, hi]."""
    def ok(v):
        finite = math.isfinite(v) if type(v) is float else type(v) is int and abs(v) <= MAX_INT
        return finite and lo <= v <= hi and not (lo_open and v == lo)
    return ok


def one_of(*values):
    return lambda v: isinstance(v, (str, bool)) and v in values


def optional(check):
    return lambda v: v is None or check(v)


def is_str(v):
    return isinstance(v, str)


def is_rng_state(v):
    """A numpy Generator's state (as bit_generator.state gives it) that numpy takes back."""
    if not isinstance(v, dict):
        return False
    try:
        np.random.default_rng().bit_generator.state = v
    except (ValueError, TypeError, KeyError, OverflowError):
        return False
    return True


def check_fields(path, record, checks, where="", required=True):
    """Every field of `checks` (name -> check) in record and passing its check (required=False:
    checked only where present); a one-line UserError naming the first that is not."""
    for name, ok in checks.items():
        if name not in record:
            if not required:
                continue
            raise UserError(f"{path} is damaged: its meta record has no {where}{name}")
        if not ok(record[name]):
            shown = repr(record[name])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise UserError(f"{path} is damaged: {where}{name} = {shown} is not a value the "
                            "trainer writes")


def is_counts(counts, V):
    """Whether counts are V non-negative integer counts of a vocabulary's tokens, not all zero."""
    return isinstance(counts, list) and len(counts) == V and \
        all(is_int()(c) for c in counts) and 0 < sum(counts) <= MAX_INT


def check_counts(path, meta, V):
    """The token counts of the record (is_counts)."""
    key = counts_key(meta.get("level", "char"))
    if not is_counts(meta.get(key), V):
        raise UserError(f"{path} is damaged: {key} is not {V} non-negative counts of the "
                        "vocabulary's tokens")


def array_problem(name, a, shape):
    """What is wrong with the array `name` (its shape not `shape`, not float32 or float64, a
    value not finite), or None."""
    if a.shape != tuple(shape):
        return f"{name} has shape {a.shape}, expected {tuple(shape)} from the sizes and the " \
            "vocabulary"
    if a.dtype not in (np.float32, np.float64):
        return f"{name} has dtype {a.dtype}, expected float32 or float64"
    if not np.isfinite(a).all():
        return f"{name} holds NaN or infinite values"
    return None


def check_arrays(path, arrays, shapes):
    """Every named array present and as expected (array_problem)."""
    for name, shape in shapes.items():
        a = arrays.get(name)
        problem = f"array {name!r} is missing" if a is None else array_problem(name, a, shape)
        if problem:
            raise UserError(f"{path} is damaged: {problem}")


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
    sweep_temporaries(path)


def sweep_temporaries(path):
    """Remove the temporary files that a killed writer left behind while writing path (or its
    symlink's target): never read, and each names its writer's process id, so those of a
    writer still alive are left to it."""
    target = os.path.realpath(path)
    folder, prefix = os.path.dirname(target), "." + os.path.basename(target) + "."
    with contextlib.suppress(OSError):  # a folder we cannot list: nothing to sweep there
        for name in os.listdir(folder):
            if name.startswith(prefix) and name.endswith(".tmp"):
                pid = name[len(prefix):].split(".")[0]
                if pid.isdigit() and _alive(int(pid)):
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


def check_output_file(path, what):
    """A UserError now, before any work, unless path can be an output we write (see
    output_target): in a folder that exists; a dead writer's temporary files for it are removed.
    what: the option that named it (e.g. --output). Returns whether it is written in place."""
    target, in_place = output_target(path, what)
    if in_place:
        return True
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {what} {path}: the folder {folder} does not exist; create "
                        "it first or write elsewhere")
    sweep_temporaries(target)
    return False


# What the start of a file says about whose it is: a page's (TEMPLATE's text before its CSP), a
# --log's JSON lines, a --json object
OURS = {"page": lambda head: head.startswith(PAGE_START),
        "log": lambda head: head == b"" or head.startswith(b'{"'),
        "json": lambda head: head.startswith(b"{")}


def check_replaceable(path, what, kind, force=False):
    """An output of kind "page", "log" or "json" that may exist already: a checkpoint there is
    never replaced (nor appended to), --force or not; any other regular file only when it is
    this kind's own earlier output (its first bytes, OURS) or with --force. A one-line UserError
    otherwise, before any work."""
    if not os.path.isfile(path) or leads_to_descriptor(path):
        return
    if peek_meta(path) is not None:
        raise UserError(f"{what} {path} is a checkpoint: it is never written over by another "
                        f"output; choose another {what}")
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return  # unreadable: the write itself will say why
    if not force and not OURS[kind](head):
        raise UserError(f"{what} {path} exists and is not a {kind} this tool wrote: pass --force "
                        f"to replace it, or choose another {what}")


def _alive(pid):
    """Whether a process with this id is running (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def sibling(path, tag):
    """out/model.npz -> out/model.<tag>.npz (the best and previous checkpoints live beside it)."""
    stem = path[:-4] if path.endswith(".npz") else path
    return f"{stem}.{tag}.npz"


def same_file(a, b):
    """a and b name one file: the same real path, or one existing file under two names (a
    name holding a NUL names no file)."""
    if "\0" in a or "\0" in b:
        return False
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return False


def check_not_read(path, what, reads):
    """A UserError unless output `path` (named by option `what`) is none of the files the run
    reads, reads: [(option, path or None)]; symlinks and other spellings included."""
    for other, other_path in reads:
        if other_path and same_file(path, other_path):
            raise UserError(f"{what} {path} is the same file as {other} {other_path}: choose "
                            f"another {what}")


def check_output(path, what, force, reads):
    """An output named by option `what` must be a file in an existing folder, never one of the
    files the run reads (reads: [(option, path or None)]) whatever --force says, and replaces an
    existing file only with --force (a device or a FIFO is written in place: nothing is lost)."""
    in_place = check_output_file(path, what)
    check_not_read(path, what, reads)
    if not in_place and os.path.exists(path) and not force:
        raise UserError(f"{what} {path} exists: pass --force to replace it, or choose another "
                        "name")
