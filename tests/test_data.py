"""Tests for data/: the bundled corpus and its generator, the Korean text, and the tiny
Shakespeare and Penn Treebank downloaders.

No network: the Shakespeare downloader's fetch() is replaced in every test that runs it; PTB's
is served by a server on 127.0.0.1 or copied from a folder.
"""
import contextlib
import functools
import hashlib
import http.server
import importlib.util
import os
import socket
import string
import sys
import threading
import urllib.error

import pytest

# The SHA-256 of the committed data/corpus.txt. If make_corpus.py changes on purpose, re-run
# `python data/make_corpus.py` and paste the printed sha256 here.
CORPUS_SHA256 = "c85c8dfee47633156b4460d600b5a70580cb783cd38c2fd48ac8e1b69de4a584"
# Bounds the corpus was designed to: about 500 KB, a small vocabulary (the 95 printable ASCII
# characters and the newline, plus a small fixed set of Hangul syllables).
MIN_BYTES, MAX_BYTES = 400_000, 600_000
MIN_V, MAX_V = 40, 160
# Every letter, digit and sign a user may type in English text (string.printable
# without its tab, carriage return, vertical tab and form feed) is in the corpus, so scoring
# one's own sentence does not fail for a missing 'z' or ':'.
TYPED = set(string.printable) - set("\t\r\x0b\x0c")
MAX_HANGUL = 60  # distinct Hangul syllables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_PATH = os.path.join(ROOT, "data", "corpus.txt")


def load(name):
    """Import data/<name>.py as a module (data/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "data", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as running data/ scripts would: one imports another
    spec.loader.exec_module(module)
    return module


load("corpus_words")  # each loaded before the scripts that import it
download_shakespeare = load("download_shakespeare")
make_corpus = load("make_corpus")
download_ptb = load("download_ptb")


def read_corpus():
    with open(CORPUS_PATH, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# The corpus.


def test_corpus_sha256_is_pinned():
    sha_file = hashlib.sha256(read_corpus()).hexdigest()
    assert sha_file == CORPUS_SHA256, "data/corpus.txt changed: re-run make_corpus.py, update pin"


def test_generator_gives_the_committed_bytes():
    data_gen = make_corpus.make_corpus().encode("utf-8")
    data_file = read_corpus()
    assert len(data_gen) == len(data_file)
    assert data_gen == data_file


def test_corpus_properties():
    data = read_corpus()
    assert MIN_BYTES <= len(data) <= MAX_BYTES, len(data)
    text = data.decode("utf-8")  # raises if the file is not UTF-8
    chars = set(text)
    assert MIN_V <= len(chars) <= MAX_V, len(chars)
    assert "\r" not in chars and "\t" not in chars
    assert text.endswith("\n") and "\n\n" in text  # newline-terminated, with paragraphs
    hangul = {ch for ch in chars if "\uac00" <= ch <= "\ud7a3"}
    assert 0 < len(hangul) <= MAX_HANGUL, len(hangul)
    # Only printable ASCII, newlines and Hangul.
    assert chars <= TYPED | hangul, sorted(chars - TYPED - hangul)


def test_corpus_covers_what_english_text_uses():
    chars = set(read_corpus().decode("utf-8"))
    assert TYPED <= chars, "missing: " + "".join(sorted(TYPED - chars))


def test_check_option(tmp_path, capsys):
    path = str(tmp_path / "corpus.txt")
    with open(path, "wb") as f:
        f.write(read_corpus())
    assert make_corpus.main(["--check", "--output", path]) == 0
    with open(path, "ab") as f:
        f.write(b"one more line\n")
    assert make_corpus.main(["--check", "--output", path]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_write_is_atomic_and_repeatable(tmp_path):
    path = str(tmp_path / "corpus.txt")
    assert make_corpus.main(["--output", path]) == 0
    with open(path, "rb") as f:
        assert f.read() == read_corpus()
    assert os.listdir(tmp_path) == ["corpus.txt"]  # no temporary file left behind


# ---------------------------------------------------------------------------------------------
# The downloader, with fetch() replaced.


def test_download_offline(tmp_path, monkeypatch, capsys):
    def offline(url):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download_shakespeare, "fetch", offline)
    path = tmp_path / "tiny.txt"
    assert download_shakespeare.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "no network" in err and download_shakespeare.URL in err and str(path) in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_download_http_error(tmp_path, monkeypatch, capsys):
    def not_found(url):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(download_shakespeare, "fetch", not_found)
    assert download_shakespeare.main([str(tmp_path / "tiny.txt")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "404" in err
    assert os.listdir(tmp_path) == []


def test_download_wrong_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download_shakespeare, "fetch", lambda url: b"<html>not the file</html>")
    assert download_shakespeare.main([str(tmp_path / "tiny.txt")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "wrong file" in err
    assert os.listdir(tmp_path) == []


def test_download_good_bytes(tmp_path, monkeypatch):
    payload = b"A small stand-in for the real file.\n"
    monkeypatch.setattr(download_shakespeare, "fetch", lambda url: payload)
    monkeypatch.setattr(download_shakespeare, "EXPECTED_SHA256",
                        hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(download_shakespeare, "EXPECTED_SIZE", len(payload))
    path = tmp_path / "tiny.txt"
    assert download_shakespeare.main([str(path)]) == 0
    assert path.read_bytes() == payload
    assert os.listdir(tmp_path) == ["tiny.txt"]  # no temporary file left behind

    # A verified copy in place is kept, even offline.
    def offline(url):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(download_shakespeare, "fetch", offline)
    assert download_shakespeare.main([str(path)]) == 0


# KoNLPy 0.6.0's wheel, konlpy/data/corpus/kolaw/constitution.txt: the SHA-256 data/README.md
# records for the file as shipped (CR LF line ends)
KONLPY_CONSTITUTION_SHA256 = "69377a88c0e577b37b1373f4496147e995209d5139a993633a8a2776bc0e2ca8"


def test_korean_text_is_the_constitution_as_shipped_with_lf_line_ends():
    with open(os.path.join(ROOT, "data", "ko-constitution.txt"), "rb") as f:
        data = f.read()
    assert b"\r" not in data
    # putting the CR back gives the very bytes of the wheel's file: nothing else was changed
    assert hashlib.sha256(data.replace(b"\n", b"\r\n")).hexdigest() == KONLPY_CONSTITUTION_SHA256
    text = data.decode("utf-8")
    assert text.startswith("대한민국헌법\n")
    assert sum("가" <= c <= "힣" for c in text) > 0.6 * len(text)  # mostly Hangul syllables


# ---------------------------------------------------------------------------------------------
# PTB's downloader: stand-in files served from 127.0.0.1, or copied from a folder; never the
# network. The expected SHA-256s are set to the stand-ins' own.

STAND_INS = {"ptb.train.txt": b" the cat sat \n a dog ran \n", "ptb.valid.txt": b" a cat ran \n",
             "ptb.test.txt": b" the dog sat \n"}


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """A folder holding the stand-in files; FILES expects their bytes."""
    monkeypatch.setattr(download_ptb, "FILES", {n: hashlib.sha256(b).hexdigest()
                                                for n, b in STAND_INS.items()})
    folder = tmp_path / "served"
    folder.mkdir()
    for name, data in STAND_INS.items():
        (folder / name).write_bytes(data)
    return folder


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server(folder):
    """An HTTP server on 127.0.0.1 serving folder -> its base URL; shut down after."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def one_line(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_ptb_from_a_local_server_is_checked_and_written(stand_ins, tmp_path):
    out = tmp_path / "ptb"
    with local_server(stand_ins) as url:
        assert download_ptb.main(["--to", str(out), "--base-url", url]) == 0
    assert {n: (out / n).read_bytes() for n in STAND_INS} == STAND_INS
    assert sorted(os.listdir(out)) == sorted(STAND_INS)  # no temporary file left
    # verified copies in place are kept, the server gone
    assert download_ptb.main(["--to", str(out), "--base-url", "http://127.0.0.1:9/"]) == 0


def test_ptb_that_is_not_the_standard_file_writes_nothing_of_it(stand_ins, tmp_path, capsys):
    (stand_ins / "ptb.valid.txt").write_bytes(b"<html>a page, not the file</html>")
    out = tmp_path / "ptb"
    with local_server(stand_ins) as url:
        assert download_ptb.main(["--to", str(out), "--base-url", url]) == 1
    assert "ptb.valid.txt from" in one_line(capsys)
    assert os.listdir(out) == ["ptb.train.txt"]  # the one checked before it; nothing partial


def test_ptb_offline_is_one_line(stand_ins, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ptb"
    assert download_ptb.main(["--to", str(out), "--base-url", f"http://127.0.0.1:{port}/"]) == 1
    assert "cannot download ptb.train.txt" in one_line(capsys)
    assert os.listdir(out) == []


def test_ptb_from_local_copies_is_checked_the_same_way(stand_ins, tmp_path, capsys):
    out = tmp_path / "ptb"
    assert download_ptb.main(["--to", str(out), "--from", str(stand_ins)]) == 0
    assert {n: (out / n).read_bytes() for n in STAND_INS} == STAND_INS
    (stand_ins / "ptb.test.txt").write_bytes(b" changed \n")
    os.unlink(out / "ptb.test.txt")
    assert download_ptb.main(["--to", str(out), "--from", str(stand_ins)]) == 1
    assert "is not the standard file" in one_line(capsys)
    os.unlink(stand_ins / "ptb.test.txt")
    assert download_ptb.main(["--to", str(out), "--from", str(stand_ins)]) == 1
    assert "cannot read ptb.test.txt" in one_line(capsys)
    assert not (out / "ptb.test.txt").exists()
