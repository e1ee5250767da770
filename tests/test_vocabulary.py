"""Tests for common/vocabulary.py: words and the end-of-line token, Hangul syllables taken apart
into jamo and put together again (against unicodedata's NFD and NFC), and reading a training text
(missing, a folder, unreadable, empty, not UTF-8, a byte order mark, one symbol) as the trainers
do, through min_char_rnn.py's command line."""
import os
import re

import pytest

from common.cli import UserError
import unicodedata

from common.vocabulary import (Vocabulary, decode_text, from_jamo, jamo_shown, jamo_tail,
                               read_corpus, split_words, to_jamo)
from conftest import (GOOD_TEXT, SAMPLE, TINY, TRAIN, assert_error, assert_finite_checkpoint,
                      assert_nothing_changed, read_npz, reference_vocabulary, run, run_ok,
                      snapshot, train_fails, write_bytes, write_text)

TOY = "you say goodbye and i say hello ."  # DLFS2 ch.2-5's corpus


def corpus_of(tmp_path, text, level):
    """read_corpus of one file holding text -> (vocab, ids, counts)."""
    return read_corpus([str(write_text(tmp_path / "text.txt", text))], level=level)[:3]


def test_split_words_and_eos(tmp_path):
    assert split_words("a b\n c  d\n\ne") == ["a", "b", "<eos>", "c", "d", "<eos>",
                                                   "<eos>", "e"]
    vocab, ids, counts = corpus_of(tmp_path, TOY, "word")
    assert vocab.tokens == sorted(set(split_words(TOY))) and counts.sum() == len(split_words(TOY))
    words = Vocabulary(["<eos>", "a", "b", "c"], "word")
    assert words.decode([1, 2, 0, 3]) == "a b\nc"


def test_encode_known_leaves_out_what_the_vocabulary_lacks():
    chars = Vocabulary([" ", "a", "b", "c"], "char")  # sorted, as read_corpus makes it
    ids, skipped = chars.encode_known("ca zbéa")
    assert ids.tolist() == [3, 1, 0, 2, 1] and skipped == ["z", "é"]
    assert chars.encode_known("abc")[1] == [] and len(chars.encode_known("zz")[0]) == 0
    words = Vocabulary(["<eos>", "a", "say", "you"], "word")
    ids, skipped = words.encode_known("you say hi\nyou shout a")
    assert ids.tolist() == [3, 2, 0, 3, 1] and skipped == ["hi", "shout"]


# ---------------------------------------------- reading INPUT (through min_char_rnn.py)

def test_input_missing(tmp_path, good):
    train_fails(tmp_path, good, ["nothere.txt", *TINY], 2, "not found", "nothere.txt")


def test_input_is_a_directory(tmp_path, good):
    (tmp_path / "adir").mkdir()
    train_fails(tmp_path, good, ["adir", *TINY], 2, "directory", "adir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_input_unreadable(tmp_path, good):
    path = write_text(tmp_path / "secret.txt", GOOD_TEXT)
    path.chmod(0)
    try:
        train_fails(tmp_path, good, ["secret.txt", *TINY], 2, "secret.txt")
    finally:
        path.chmod(0o644)


def test_input_empty(tmp_path, good):
    write_bytes(tmp_path / "empty.txt", b"")
    train_fails(tmp_path, good, ["empty.txt", *TINY], 2, "empty")


@pytest.mark.slow
def test_non_utf8_names_offset_and_encoding_then_latin1_trains(tmp_path, good):
    data = GOOD_TEXT[:50].encode() + b"\xe9" + GOOD_TEXT[50:].encode()  # bad byte at offset 50
    write_bytes(tmp_path / "latin.txt", data)
    message = train_fails(tmp_path, good, ["latin.txt", *TINY], 2, "--encoding")
    assert re.search(r"\b50\b", message), f"the message should name byte offset 50: {message}"
    result = run(TRAIN, ["latin.txt", *TINY, "--encoding", "latin-1", "--max-iters", "2",
                         "--out", "latin.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "latin.npz")
    assert "\u00e9" in meta["vocab"], "latin-1 byte 0xe9 should be the character U+00E9"


def test_a_binary_file_is_named_as_such(tmp_path, good):
    """An executable's first bytes (NUL bytes and invalid UTF-8): the error says it is not text
    rather than suggesting another --encoding."""
    write_bytes(tmp_path / "prog", b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe" * 20)
    message = train_fails(tmp_path, good, ["prog", *TINY], 2, "binary file")
    assert "--encoding" not in message


def test_leading_bom_is_dropped(tmp_path):
    write_text(tmp_path / "bom.txt", "\ufeff" + GOOD_TEXT)
    result = run(TRAIN, ["bom.txt", *TINY, "--max-iters", "2", "--out", "bom.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "bom.npz")
    assert "\ufeff" not in meta["vocab"], "the byte order mark became a vocabulary symbol"
    assert meta["vocab"] == "".join(sorted(set(GOOD_TEXT)))
    assert f"data has {len(GOOD_TEXT)} characters" in result.stdout, result.stdout


@pytest.mark.slow
def test_one_distinct_character_trains(tmp_path):
    write_text(tmp_path / "aaa.txt", "a" * 300)
    result = run(TRAIN, ["aaa.txt", *TINY, "--max-iters", "3", "--out", "a.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, meta = assert_finite_checkpoint(tmp_path / "a.npz")
    assert meta["vocab"] == "a" and meta["n"] == 3
    sampled = run(SAMPLE, ["a.npz", "--length", "5"], cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout == "aaaaa\n", repr(sampled.stdout)


# ----------------------------------------------------------------------------- several files
# read as one text joined with nothing in between

import hashlib  # noqa: E402 (this section's own imports, kept with it)

import numpy as np  # noqa: E402

from common.vocabulary import corpus_paths  # noqa: E402

# File names in sorted order with their texts: words cut by file ends ("ca" + "t" + "s" is "cats",
# "ab" + "cd" + "e f" is "abcde f"), one-word files, a file ending in whitespace, a BOM dropped.
PARTS = {"1.txt": "the ca", "2.txt": "t", "3.txt": "\ufeffs sat\non ", "4.txt": "ab",
         "5.txt": "cd", "6.txt": "e f\n"}


@pytest.mark.parametrize("level", ["char", "word"])
def test_read_corpus_equals_building_the_joined_text(tmp_path, level):
    folder = tmp_path / "texts"
    folder.mkdir()
    for name, text in PARTS.items():
        write_text(folder / name, text)
    write_text(folder / ".hidden", "zzz")  # left out, as is the subfolder
    (folder / "sub").mkdir()
    write_text(folder / "sub" / "x.txt", "QQQ")
    joined = "".join(t.lstrip("\ufeff") for t in PARTS.values())
    vocab_ref, ids_ref, counts_ref = reference_vocabulary(joined, level)
    order = [folder / n for n in ("6.txt", "2.txt")] + [folder]  # any order, a file given twice
    vocab, ids, counts, files = read_corpus([str(p) for p in order], level=level)
    assert vocab.tokens == vocab_ref.tokens and np.iinfo(ids.dtype).max >= len(vocab) - 1
    assert np.array_equal(ids, ids_ref) and np.array_equal(counts, counts_ref)
    if level == "word":
        assert "cats" in vocab.tokens and "abcde" in vocab.tokens and "ca" not in vocab.tokens
    assert files == [{"name": str(folder / n), "size": len(t.encode("utf-8")),
                      "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()}
                     for n, t in PARTS.items()]
    # encoded in a given vocabulary (--init-from) it gives the same ids
    _, ids_in, _, _ = read_corpus([str(folder)], level=level, vocab=vocab_ref)
    assert np.array_equal(ids_in, ids_ref)


def test_a_file_reached_through_a_symlink_is_read_once(tmp_path):
    """INPUT d/alink.txt and the folder d/c, alink.txt a symlink to c/a.txt, and c/b.txt a
    symlink to a.txt beside it: a.txt is read once, under the first name in path order."""
    folder = tmp_path / "c"
    folder.mkdir()
    text = GOOD_TEXT[:90]
    write_text(folder / "a.txt", text)
    (tmp_path / "alink.txt").symlink_to(folder / "a.txt")
    (folder / "b.txt").symlink_to("a.txt")
    inputs = [str(tmp_path / "alink.txt"), str(folder)]
    assert corpus_paths(inputs) == [str(tmp_path / "alink.txt")]
    _, ids, _, files = read_corpus(inputs)
    assert len(ids) == len(text) and [f["name"] for f in files] == [str(tmp_path / "alink.txt")]
    # the trainer records the one file it read
    run_ok("min_char_rnn.py", [*inputs, *TINY, "--max-iters", "1", "--out", "m.npz"],
           cwd=tmp_path)
    _, meta = read_npz(tmp_path / "m.npz")
    assert [f["name"] for f in meta["input_files"]] == [str(tmp_path / "alink.txt")]


# ----------------------------------------------------------------------------- lone surrogates,
# and a codec that raises

# r"\ud800" is six ASCII bytes; --encoding unicode_escape decodes them to a lone surrogate, which
# is no character (it cannot be written as UTF-8: once a checkpoint no script could load)
SURROGATE_TEXT = GOOD_TEXT[:300] + "\\ud800" + GOOD_TEXT[300:]
TEXT_CASES = {"surrogate": ("unicode_escape", ["surrogate", "U+D800", "offset 300"]),
              "undefined": ("undefined", ["undefined"])}  # the codec that always raises
SCRIPT_CASES = {  # script -> its arguments, the text file being t.txt
    "min_char_rnn.py": ["t.txt", *TINY, "--max-iters", "2", "--out", "m.npz"],
    "rnnlm.py": ["t.txt", "--hidden-size", "5", "--wordvec-size", "4", "--max-iters", "2",
                 "--seed", "0", "--out", "m.npz"],
    "sample.py --score-file": ["CKPT", "--score-file", "t.txt"],
    "sample.py --start FILE:": ["CKPT", "--start", "FILE:t.txt", "--length", "3"],
    "visualize.py": ["CKPT", "t.txt", "--out", "page.html"],
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
@pytest.mark.parametrize("script", list(SCRIPT_CASES))
def test_lone_surrogates_and_a_raising_codec_are_one_line(tmp_path, good, script, case):
    encoding, needles = TEXT_CASES[case]
    write_text(tmp_path / "t.txt", SURROGATE_TEXT if case == "surrogate" else GOOD_TEXT)
    args = [str(good["ckpt"]) if a == "CKPT" else a for a in SCRIPT_CASES[script]]
    before = snapshot(tmp_path)
    r = run(script.split()[0], [*args, "--encoding", encoding], cwd=tmp_path)
    assert_error(r, 2, "t.txt", *needles)
    assert r.stdout == "" or script.startswith(("min_char", "rnnlm"))
    assert_nothing_changed(tmp_path, before)


def test_decode_text_refuses_what_is_not_whole_characters():
    with pytest.raises(UserError, match="U\\+DC80.* offset 2"):
        decode_text(b"ab\\udc80", "unicode_escape", "x.txt")
    with pytest.raises(UserError, match="--encoding undefined"):
        decode_text(b"abc", "undefined", "x.txt")
    assert decode_text("a\U0001F600b".encode("utf-8")) == "a\U0001F600b"  # a pair is one char


# ----------------------------------------------------------------------------- jamo

ALL_SYLLABLES = "".join(map(chr, range(0xAC00, 0xD7A4)))  # the 11,172 precomposed syllables


def test_to_jamo_and_back_agree_with_unicodes_nfd_and_nfc_on_every_syllable():
    letters = to_jamo(ALL_SYLLABLES)
    assert letters == unicodedata.normalize("NFD", ALL_SYLLABLES)
    assert from_jamo(letters) == ALL_SYLLABLES == unicodedata.normalize("NFC", letters)


def test_other_characters_pass_through_unchanged():
    # NFD would take é and Å apart, and NFC put a decomposed e + accent together: neither here
    text = "Café Å e\u0301 abc 123 \n\t ㄱㅏ 漢字 ①"
    assert to_jamo(text) == text and from_jamo(text) == text
    mixed = "한국어 text, 한글!"
    assert from_jamo(to_jamo(mixed)) == mixed
    assert len(to_jamo("한글")) == 6  # ㅎ ㅏ ㄴ, ㄱ ㅡ ㄹ


def test_lone_and_growing_jamo():
    h, a, n = to_jamo("한")  # leading, vowel, trailing
    assert from_jamo(h) == h and from_jamo(h + a) == "하" and from_jamo(a + n) == a + n
    assert [jamo_tail(x) for x in ("", "x", h, h + a, h + a + n, a)] == [0, 0, 1, 2, 0, 0]
    assert [jamo_shown(c) for c in (h, a, n, "x")] == ["ㅎ", "ㅏ", "ㄴ", "x"]


def test_jamo_vocabulary_encodes_syllables_as_letters_and_decodes_them_whole(tmp_path):
    text = "나라는 나라다.\n"
    vocab, ids, counts = corpus_of(tmp_path, text, "jamo")
    assert vocab.level == "jamo" and vocab.unit == "jamo" and len(ids) == len(to_jamo(text))
    assert sorted(vocab.tokens) == vocab.tokens and "나" not in vocab.tokens
    assert vocab.decode(ids) == text and vocab.encode(text).tolist() == ids.tolist()
    assert "".join(vocab.pieces(ids[:3])) == "ㄴㅏㄹ"  # one readable letter a token
    assert vocab.chars_scored(text) == len(text) - 1
    assert vocab.tokens_per_char(ids) == (len(ids) - 1) / (len(text) - 1)
    assert corpus_of(tmp_path, text, "char")[0].tokens_per_char(ids) is None
    assert Vocabulary.from_meta({"level": "jamo", "vocab": vocab.to_meta()}).tokens == vocab.tokens
