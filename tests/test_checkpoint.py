"""Tests for common/checkpoint.py: damaged checkpoints (missing, empty, truncated, not a zip, other
version or kind, missing or misshapen arrays, NaN, a wrong vocabulary) and pickled ones, refused
with one line by sample.py and by --resume, never unpickled, nothing written."""
import io
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import rnnlm
import sample
from common import checkpoint
from common.checkpoint import READABLE_VERSIONS
from common.cli import UserError

from conftest import (FIXTURES, SAMPLE, TRAIN, assert_error, assert_nothing_changed, read_npz, run,
                      run_here, run_ok, snapshot, write_bytes, write_npz, write_text)

FIFO_WAIT = 10  # seconds for a FIFO's reader to see the end of what was written (not timing)


def make_damaged(good_path, case, dest):
    """Write a damaged copy of the good checkpoint at dest ('missing' writes nothing)."""
    arrays, meta = read_npz(good_path)
    V, H = arrays["Why"].shape
    if case == "missing":
        return
    if case == "directory":
        dest.mkdir()
    elif case == "text":
        write_bytes(dest, b"the cat sat on a mat\n")
    elif case == "empty":
        write_bytes(dest, b"")
    elif case == "truncated":
        write_bytes(dest, good_path.read_bytes()[: good_path.stat().st_size // 2])
    elif case == "not_a_zip":  # a plain .npy file, which np.load would happily read
        with open(dest, "wb") as f:
            np.save(f, arrays["Why"])
    else:
        if case == "version":
            meta["format_version"] = 99
        elif case == "no_meta":
            write_npz_without_meta(dest, arrays)
            return
        elif case == "kind":
            meta["kind"] = "transformer"  # no such model kind
        elif case == "kind_rnnlm":
            meta["kind"] = "rnnlm"  # another reader's kind, but the gist's arrays and meta
        elif case == "missing_Whh":
            del arrays["Whh"]
        elif case == "missing_by":
            del arrays["by"]
        elif case == "shape":
            arrays["Why"] = np.zeros((V, H + 1))
        elif case == "dtype":
            arrays["Why"] = arrays["Why"].astype(np.int64)
        elif case == "nan":
            arrays["Why"][1, 2] = np.nan
        elif case == "vocab":
            meta["vocab"] += "~"  # one symbol more than the weights have rows for
        write_npz(dest, arrays, meta)


def write_npz_without_meta(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


DAMAGE = {  # case: what the message must name besides the file
    "missing": ["not found"], "directory": ["directory"], "text": ["not an .npz"],
    "empty": ["empty"], "truncated": [], "not_a_zip": [], "no_meta": ["meta"],
    "version": ["99", "versions " + " and ".join(map(str, READABLE_VERSIONS))],
    "kind": ["transformer"], "kind_rnnlm": [], "missing_Whh": ["Whh"], "missing_by": ["by"],
    "shape": ["Why", "shape"], "dtype": ["Why", "dtype"], "nan": ["Why", "NaN"],
    "vocab": ["vocabulary"]}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_in_sample(tmp_path, good, case):
    make_damaged(good["ckpt"], case, tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    result = run_here(SAMPLE, ["bad.npz", "--length", "10"], cwd=tmp_path)
    assert_error(result, 2, "bad.npz", *DAMAGE[case])
    assert result.stdout == "", f"nothing may be generated: {result.stdout!r}"
    assert_nothing_changed(tmp_path, before)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_in_resume(tmp_path, good, case):
    # --out defaults to the --resume file: the damaged file must not be overwritten either
    make_damaged(good["ckpt"], case, tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    result = run_here(TRAIN, ["--resume", "bad.npz", "--max-iters", "8"], cwd=tmp_path)
    assert_error(result, 2, "bad.npz", *DAMAGE[case])
    assert_nothing_changed(tmp_path, before)


class CreatesMarker:
    """Unpickling this calls open(marker, 'w'): a harmless stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_pickled(good_path, member, dest, marker):
    """A checkpoint whose `member` is an object array holding CreatesMarker, the rest valid;
    member None writes a bare pickle instead of an .npz."""
    payload = np.empty(2, dtype=object)  # (2,) object array
    payload[0], payload[1] = CreatesMarker(str(marker)), 1.0
    if member is None:
        write_bytes(dest, pickle.dumps(payload))
        return
    arrays, meta = read_npz(good_path)
    with zipfile.ZipFile(dest, "w") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, payload if name == member else a, allow_pickle=True)
            z.writestr(name + ".npy", buf.getvalue())
        buf = io.BytesIO()
        np.save(buf, payload if member == "meta" else np.array(json.dumps(meta)),
                allow_pickle=True)
        z.writestr("meta.npy", buf.getvalue())


def unpickle_everything(path):
    """The positive control: load the file trusting it, which must create the marker."""
    if zipfile.is_zipfile(path):
        with np.load(path, allow_pickle=True) as z:
            for name in z.files:
                z[name]
    else:
        with open(path, "rb") as f:
            pickle.load(f)


@pytest.mark.parametrize("member", ["Why", "meta", None])
@pytest.mark.parametrize("script", ["sample", "resume"])
def test_pickled_checkpoint_is_refused_without_unpickling(tmp_path, good, member, script):
    marker = tmp_path / "MARKER"
    make_pickled(good["ckpt"], member, tmp_path / "evil.npz", marker)
    if script == "sample":
        result = run_here(SAMPLE, ["evil.npz", "--length", "10"], cwd=tmp_path)
    else:
        result = run_here(TRAIN, ["--resume", "evil.npz", "--max-iters", "8"], cwd=tmp_path)
    assert not marker.exists(), "the checkpoint was unpickled: the marker file was created"
    message = assert_error(result, 2, "evil.npz")
    if member is not None:
        assert "pickle" in message, f"the message should say it holds pickles: {message}"
    unpickle_everything(tmp_path / "evil.npz")
    assert marker.exists(), "test is broken: trusting the file should have created the marker"


# ----------------------------------------------------------------------------- the meta schema
# A damaged meta record of an rnnlm checkpoint: each variant is what a trainer could never have
# written. --resume and sample.py must each give one line (exit 2) naming the file, never a
# traceback, a hang or a silent acceptance.

def drop(*path):
    def change(meta, arrays):
        record = meta
        for key in path[:-1]:
            record = record[key]
        del record[path[-1]]
    return change


def put(value, *path):
    def change(meta, arrays):
        record = meta
        for key in path[:-1]:
            record = record[key]
        record[path[-1]] = value
    return change


def counts(make):
    return lambda meta, arrays: meta.__setitem__("char_counts", make(meta["char_counts"]))


RESUME_DAMAGE = {  # 44 kinds of damage
    **{f"no {name}": drop(name) for name in (
        "k", "lr", "opt_iter", "best_val_loss", "dropout_rng_state", "sample_rng_state",
        "epoch_loss_sum", "epoch_loss_count", "options",
        "level", "char_counts")},
    **{f"no option {name}": drop("options", name) for name in (
        "optimizer", "cell", "batch_size", "seq_length", "dtype")},
    # a record without input_files is an older one: then input_sha256 and input_bytes count
    "no input record": lambda meta, arrays: [meta.pop(key) for key in ("input_files",
                                                                       "input_sha256")],
    "input sha256 missing": lambda meta, arrays: meta["input_files"][0].pop("sha256"),
    "input size a string": lambda meta, arrays: meta["input_files"][0].__setitem__("size", "1"),
    "k a string": put("3", "k"), "k true": put(True, "k"), "lr a string": put("0.1", "lr"),
    "opt_iter -1": put(-1, "opt_iter"), "best_val_loss a string": put("low", "best_val_loss"),
    "epoch_loss_sum NaN": put(float("nan"), "epoch_loss_sum"),
    "rng state a string": put("x", "dropout_rng_state"),
    "optimizer rmsprop": put("rmsprop", "options", "optimizer"),
    "cell transformer": put("transformer", "options", "cell"),
    "batch_size 0": put(0, "options", "batch_size"), "seq_length 0": put(0, "options", "seq_length"),
    "hidden_size a string": put("6", "options", "hidden_size"),
    "learning_rate 0": put(0, "options", "learning_rate"),
    "dropout 2": put(2, "options", "dropout"),
    "lr_decay linear": put("linear", "options", "lr_decay"),
    "level sentence": put("sentence", "level"),
    "counts all zero": counts(lambda c: [0] * len(c)),
    "counts beyond any float": counts(lambda c: [10 ** 400] * len(c)),
    "train_seconds a string": put("abc", "train_seconds"),
    "history a number": put(5, "history"),
    "history records a string": put("abc", "history", "records"),
    "history record a list": put([[1, 2]], "history", "records"),
    "dropout rng state empty": put({}, "dropout_rng_state"),
    "sample rng state empty": put({}, "sample_rng_state"),
    "smooth loss beyond any float": put(10 ** 400, "epoch_loss_sum"),
}
SAMPLE_DAMAGE = {  # what sample.py must refuse
    "counts missing": drop("char_counts"), "counts too long": counts(lambda c: c + [1]),
    "counts all zero": counts(lambda c: [0] * len(c)), "counts a string": put("x", "char_counts"),
    "num_layers 0": put(0, "options", "num_layers"),
    "num_layers 10^9": put(10 ** 9, "options", "num_layers"),
    "level sentence": put("sentence", "level"),
    "tied but affine_W stored": put(True, "options", "tie_weights"),
    "dtype float16": put("float16", "options", "dtype"),
    "vocabulary entry twice": lambda meta, arrays: meta.__setitem__(
        "vocab", meta["vocab"][0] + meta["vocab"][:-1]),
    "counts beyond any float": counts(lambda c: [10 ** 400] * len(c)),
    "a lone surrogate in the vocabulary": lambda meta, arrays: meta.__setitem__(
        "vocab", meta["vocab"][:-1] + "\udfff"),
    "history a number": put(5, "history"),
    "train_seconds a string": put("abc", "train_seconds"),
}


@pytest.fixture(scope="module")
def book_model(tmp_path_factory):
    """A tiny rnnlm.py checkpoint (char level, untied, so it stores affine_W) and its corpus."""
    folder = tmp_path_factory.mktemp("book")
    write_text(folder / "corpus.txt", "the cat sat on the mat. " * 30)
    run_ok("rnnlm.py", ["corpus.txt", "--hidden-size", "6", "--wordvec-size", "5", "--batch-size",
                        "2", "--seq-length", "4", "--max-iters", "2", "--seed", "0", "--out",
                        "book.npz"],
           cwd=folder)
    return folder / "book.npz"


def damaged_copy(book_model, change, dest):
    arrays, meta = read_npz(book_model)
    assert "affine_W" in arrays and not meta["options"]["tie_weights"]
    change(meta, arrays)
    write_npz(dest, arrays, meta)


@pytest.mark.parametrize("case", list(RESUME_DAMAGE))
def test_damaged_meta_on_resume_is_one_error(book_model, tmp_path, case):
    """In process (36 interpreter starts would cost ~20 s): rnnlm.main raises the UserError that
    cli.run prints as one line; any other exception fails the test with its traceback."""
    damaged_copy(book_model, RESUME_DAMAGE[case], tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    with pytest.raises(UserError) as error:
        rnnlm.main(["--resume", str(tmp_path / "bad.npz"), "--max-iters", "4"])
    message = str(error.value)  # the input record's check names "the checkpoint to resume"
    assert error.value.status == 2 and "damaged" in message and "\n" not in message, message
    assert_nothing_changed(tmp_path, before)


@pytest.mark.parametrize("case", list(SAMPLE_DAMAGE))
def test_damaged_meta_in_sample_is_one_error(book_model, tmp_path, case):
    damaged_copy(book_model, SAMPLE_DAMAGE[case], tmp_path / "bad.npz")
    with pytest.raises(UserError) as error:
        sample.main([str(tmp_path / "bad.npz"), "--length", "5"])
    message = str(error.value)
    assert error.value.status == 2 and "bad.npz" in message and "\n" not in message, message


@pytest.mark.parametrize("script", ["sample.py", "visualize.py", "export.py", "rnnlm.py"])
def test_a_meta_record_nested_past_the_recursion_limit_is_one_line(book_model, tmp_path, script):
    """A meta field nested 100,000 lists deep (json.loads raises RecursionError on it): every
    script that loads the checkpoint says it is damaged in one line, exit 2."""
    arrays, meta = read_npz(book_model)
    text = json.dumps(meta)[:-1] + ', "notes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    np.savez(tmp_path / "deep.npz", meta=np.array(text), **arrays)
    argv = {"sample.py": ["deep.npz", "--length", "5"], "visualize.py": ["deep.npz", "--text", "the cat"],
            "export.py": ["deep.npz", "--to", "onnx"], "rnnlm.py": ["--resume", "deep.npz"]}[script]
    assert_error(run(script, argv, cwd=tmp_path), 2, "deep.npz")


@pytest.mark.parametrize("script, case", [("rnnlm.py", "no k"), ("rnnlm.py", "optimizer rmsprop"),
                                          ("sample.py", "num_layers 10^9")])
def test_damaged_meta_from_a_real_process_is_one_line(book_model, tmp_path, script, case):
    """The in-process checks above, once each through a real process: one line, exit 2."""
    damage = {**RESUME_DAMAGE, **SAMPLE_DAMAGE}[case]
    damaged_copy(book_model, damage, tmp_path / "bad.npz")
    args = ["--resume", "bad.npz", "--max-iters", "4"] if script == "rnnlm.py" else \
        ["bad.npz", "--length", "5"]
    assert_error(run(script, args, cwd=tmp_path), 2, "bad.npz", "damaged")


# ----------------------------------------------------------------------------- temporary files

def test_temporary_files_carry_the_pid_and_only_dead_runs_ones_are_removed(tmp_path,
                                                                           monkeypatch):
    """save_checkpoint's temporary file names its process id; prepare_output removes those of
    a process that has ended and leaves those of a live one (a second run with the same --out
    once deleted the first run's file mid-save) and other files alone."""
    renamed = []
    real_replace = checkpoint.os.replace
    monkeypatch.setattr(checkpoint.os, "replace",
                        lambda src, dst: (renamed.append(src), real_replace(src, dst)))
    checkpoint.save_checkpoint(str(tmp_path / "m.npz"), {"a": np.zeros(3)}, {"format_version": 2})
    assert os.path.basename(renamed[0]).startswith(f".m.npz.{os.getpid()}.")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"dead": f".m.npz.{ended.pid}.abc.tmp", "live": f".m.npz.{live.pid}.abc.tmp",
                 "other": f".other.npz.{ended.pid}.abc.tmp"}
        for name in names.values():
            write_bytes(tmp_path / name, b"partial")
        checkpoint.prepare_output(str(tmp_path / "m.npz"))
        left = set(os.listdir(tmp_path))
    finally:
        live.kill()
        live.wait()
    assert names["dead"] not in left and names["live"] in left and names["other"] in left
    assert "m.npz" in left


# ----------------------------------------------------------------------------- outputs that are
# not regular files: written in place, through a symlink, or refused

PAYLOAD = bytes(range(256)) * 800  # 200 KB: more than a pipe holds (64 KB), so a FIFO streams


def private_device(tmp_path, name, minor):
    """A character device node of the memory driver (major 1: minor 3 null, 7 full) made in
    tmp_path, never the system's own; skipped where mknod is not permitted (not root)."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        with open(path, "ab"):
            pass  # a filesystem mounted nodev refuses to open it
    except OSError as e:
        pytest.skip(f"cannot make and open a device node here: {e.strerror}")
    return path


def assert_same_node(path, before):
    """path is still the node os.lstat gave as before (not replaced by a regular file)."""
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode, after.st_rdev) == \
        (before.st_ino, before.st_mode, before.st_rdev), f"{path} was replaced"


def test_write_atomic_writes_a_character_device_in_place(tmp_path):
    null = private_device(tmp_path, "null", 3)
    before = os.lstat(null)
    checkpoint.write_atomic(str(null), lambda f: f.write(PAYLOAD))
    checkpoint.save_checkpoint(str(null), {"a": np.zeros(3)}, {"format_version": 2})
    assert_same_node(null, before)
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null"], "a temporary file remains"


def test_a_full_device_is_one_line_and_stays_a_device(tmp_path):
    full = private_device(tmp_path, "full", 7)
    before = os.lstat(full)
    with pytest.raises(UserError, match="No space left on device") as e:
        checkpoint.write_atomic(str(full), lambda f: f.write(PAYLOAD), "--output")
    assert e.value.status == 1 and "--output" in str(e.value)
    assert_same_node(full, before)


def test_write_atomic_streams_into_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = os.lstat(fifo)
    # a reader is there before the writer opens (O_NONBLOCK: this open does not wait for one)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    received = []

    def drain():  # until the writer closes: EOF
        while chunk := os.read(fd, 65536):
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)

    def write(f):
        reader.start()  # here, not earlier: a FIFO read before any writer opens ends at once
        f.write(PAYLOAD)

    try:
        checkpoint.write_atomic(str(fifo), write)
        reader.join(FIFO_WAIT)
    finally:
        os.close(fd)
    assert not reader.is_alive()
    assert b"".join(received) == PAYLOAD
    assert_same_node(fifo, before)
    assert sorted(os.listdir(tmp_path)) == ["fifo"], "a temporary file remains"


def test_write_atomic_through_a_symlink_replaces_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "page.html"
    write_bytes(target, b"old")
    link = tmp_path / "page.html"
    link.symlink_to(os.path.join("real", "page.html"))
    checkpoint.write_atomic(str(link), lambda f: f.write(PAYLOAD))
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "page.html")
    assert target.read_bytes() == PAYLOAD
    assert sorted(os.listdir(tmp_path / "real")) == ["page.html"], "a temporary file remains"
    # a symlink to a file not there yet: the file is made where the link points
    (tmp_path / "new.html").symlink_to(os.path.join("real", "new.html"))
    checkpoint.write_atomic(str(tmp_path / "new.html"), lambda f: f.write(b"new"))
    assert (tmp_path / "new.html").is_symlink()
    assert (tmp_path / "real" / "new.html").read_bytes() == b"new"


def test_a_name_for_an_open_descriptor_is_written_in_place(tmp_path):
    """/dev/stdout leads to /proc/self/fd/1: a symlink made here to /proc/self/fd/N (and one to
    /dev/fd/N) stands in for it, so the system's own /dev/stdout is never at stake."""
    r, w = os.pipe()
    log = tmp_path / "log.txt"
    write_bytes(log, b"earlier lines\n")
    with open(log, "ab") as shell_redirect:  # as `>> log.txt` leaves it on a descriptor
        (tmp_path / "to_pipe").symlink_to(f"/proc/self/fd/{w}")
        (tmp_path / "to_log").symlink_to(f"/dev/fd/{shell_redirect.fileno()}")
        try:
            checkpoint.write_atomic(str(tmp_path / "to_pipe"), lambda f: f.write(b"streamed"))
            os.close(w)
            assert os.read(r, 100) == b"streamed"
        finally:
            os.close(r)
        inode = log.stat().st_ino
        checkpoint.write_atomic(str(tmp_path / "to_log"), lambda f: f.write(b"page\n"))
    assert log.read_bytes() == b"earlier lines\npage\n" and log.stat().st_ino == inode
    assert (tmp_path / "to_pipe").is_symlink() and (tmp_path / "to_log").is_symlink()


def test_other_kinds_of_file_are_refused_before_any_work(tmp_path):
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    nodes = [sock_path]
    try:  # a block device node (loop device 0); made, never opened
        os.mknod(tmp_path / "block", stat.S_IFBLK | 0o600, os.makedev(7, 0))
        nodes.append(tmp_path / "block")
    except OSError:
        pass  # not root: the socket alone
    try:
        for node in nodes:
            before = os.lstat(node)
            for call in (lambda: checkpoint.check_output_file(str(node), "--out"),
                         lambda: checkpoint.write_atomic(str(node), lambda f: f.write(b"x"))):
                with pytest.raises(UserError, match="neither a regular file") as e:
                    call()
                assert e.value.status == 2 and str(node) in str(e.value)
            assert_same_node(node, before)
    finally:
        sock.close()


def test_sample_and_visualize_write_a_device_in_place(tmp_path, capsys):
    """The scripts' outputs through write_atomic: sample.py --output (no --force needed: nothing
    is replaced) and visualize.py --out and --json onto the private null device."""
    import visualize
    from common.cli import run as cli_run
    null = private_device(tmp_path, "null", 3)
    before = os.lstat(null)
    gist = os.path.join(FIXTURES, "v1", "gist.npz")
    for main, argv in ((sample.main, [gist, "--length", "20", "--output", str(null), "--force"]),
                       (sample.main, [gist, "--length", "20", "--output", str(null)]),
                       (visualize.main, [gist, "--text", "The dog", "--out", str(null),
                                         "--json", str(null)])):
        with pytest.raises(SystemExit) as e:
            cli_run(lambda: main(argv))
        assert e.value.code == 0, capsys.readouterr().err
        assert_same_node(null, before)
    assert sorted(os.listdir(tmp_path)) == ["null"]


def test_check_output_file_removes_a_dead_writers_temporary_files(tmp_path):
    """A writer killed mid-write (kill -9 during visualize or export) leaves ".NAME.PID.*.tmp";
    the next check of that output removes it, in the folder of a symlink's target too, and
    leaves those of a live writer and of other names alone."""
    (tmp_path / "real").mkdir()
    (tmp_path / "page.html").symlink_to(os.path.join("real", "page.html"))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"dead": f"real/.page.html.{ended.pid}.abc.tmp",
                 "live": f"real/.page.html.{live.pid}.abc.tmp",
                 "other": f"real/.other.html.{ended.pid}.abc.tmp"}
        for name in names.values():
            write_bytes(tmp_path / name, b"partial")
        assert checkpoint.check_output_file(str(tmp_path / "page.html"), "--out") is False
        left = {f"real/{n}" for n in os.listdir(tmp_path / "real")}
    finally:
        live.kill()
        live.wait()
    assert left == {names["live"], names["other"]}
