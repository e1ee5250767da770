"""Tests for data/: the bundled corpus and its generator, and the tiny Shakespeare downloader.

No network: the downloader's fetch() is replaced in every test that runs it.
"""
import hashlib
import importlib.util
import os
import string
import urllib.error

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
    spec.loader.exec_module(module)
    return module


make_corpus = load("make_corpus")
download_shakespeare = load("download_shakespeare")


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
