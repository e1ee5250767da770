"""Tests for common/checkpoint.py: damaged checkpoints (missing, empty, truncated, not a zip, other
version or kind, missing or misshapen arrays, NaN, a wrong vocabulary) and pickled ones, refused
with one line by sample.py and by --resume, never unpickled, nothing written."""
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from common.checkpoint import READABLE_VERSIONS

from conftest import (SAMPLE, TRAIN, assert_error, assert_nothing_changed, read_npz, run, snapshot,
                      write_bytes, write_npz)


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
    result = run(SAMPLE, ["bad.npz", "--length", "10"], cwd=tmp_path)
    assert_error(result, 2, "bad.npz", *DAMAGE[case])
    assert result.stdout == "", f"nothing may be generated: {result.stdout!r}"
    assert_nothing_changed(tmp_path, before)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_in_resume(tmp_path, good, case):
    # --out defaults to the --resume file: the damaged file must not be overwritten either
    make_damaged(good["ckpt"], case, tmp_path / "bad.npz")
    before = snapshot(tmp_path)
    result = run(TRAIN, ["--resume", "bad.npz", "--max-iters", "8"], cwd=tmp_path)
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
        result = run(SAMPLE, ["evil.npz", "--length", "10"], cwd=tmp_path)
    else:
        result = run(TRAIN, ["--resume", "evil.npz", "--max-iters", "8"], cwd=tmp_path)
    assert not marker.exists(), "the checkpoint was unpickled: the marker file was created"
    message = assert_error(result, 2, "evil.npz")
    if member is not None:
        assert "pickle" in message, f"the message should say it holds pickles: {message}"
    unpickle_everything(tmp_path / "evil.npz")
    assert marker.exists(), "test is broken: trusting the file should have created the marker"
