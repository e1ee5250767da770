"""
The files a training run writes, checked before any training: --out and its best (one pair, a
run's), whatever stands there from other runs kept beside them (.prev, .prev2 ...), the lock that
keeps two runs from writing one --out, and the check that no output is an input.
"""
import atexit
import contextlib
import fcntl
import os
import shutil
import stat

from tqdm import tqdm

from common.checkpoint import (check_output_file, peek_meta, prepare_output, same_file,
                               save_checkpoint, sibling, write_atomic)
from common.cli import UserError
from common.vocabulary import corpus_paths


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
