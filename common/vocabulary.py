"""
Text and vocabularies: reading a corpus exactly, and the tokens of a model, characters or words,
with one way to build, encode (unknown tokens are listed in the error) and decode them.
"""
import hashlib
import os
import re

import numpy as np

from common.cli import UserError

EOS = "<eos>"  # the word-level token for a line end (DLFS2's PTB reader)
SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: never a character alone


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
    except (UnicodeError, ValueError, TypeError) as e:  # a codec that fails in its own way
        raise UserError(f"cannot decode {path} with --encoding {encoding}: {e}; give a text "
                        "encoding such as utf-8, cp949 or latin-1") from None
    if not isinstance(text, str):
        raise UserError(f"--encoding {encoding} does not decode to text: give a text encoding "
                        "such as utf-8, cp949 or latin-1")
    # a lone surrogate (U+D800-DFFF) is not a character: it cannot be written as UTF-8 (in a
    # sample, or in the checkpoint's vocabulary), so such text is refused here, once
    lone = SURROGATE.search(text)
    if lone:
        raise UserError(f"{path} decoded with --encoding {encoding} holds a lone surrogate "
                        f"(U+{ord(lone.group()):04X}) at character offset {lone.start()}, which "
                        "is not a character: use an encoding that yields whole characters, e.g. "
                        "--encoding utf-8")
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


def build_chars(text, chunk=1 << 24):
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


def split_words(text):
    """Whitespace-separated words, with an EOS token for every line end."""
    lines = text.split("\n")
    words = []
    for line in lines[:-1]:
        words += line.split()
        words.append(EOS)
    return words + lines[-1].split()


class Vocabulary:
    """The tokens of a model: characters (level "char", sorted by code point) or words (level
    "word", sorted, EOS for line ends). Sorted, so the same corpus always gives the same ids."""

    def __init__(self, tokens, level="char"):
        self.level = level
        self.tokens = list(tokens)  # id -> token
        self.unit = "word" if level == "word" else "char"  # as in "nats/char"
        self.unit_name = "word" if level == "word" else "character"
        self._chars = "".join(self.tokens) if level == "char" else None
        self._index = {w: i for i, w in enumerate(self.tokens)} if level == "word" else None

    def __len__(self):
        return len(self.tokens)

    @classmethod
    def build(cls, text, level="char"):
        """text -> (vocabulary, ids, counts): ids the text's token ids (uint8/uint16/... for
        characters, int32 for words), counts (V,) how often each token occurs."""
        if level == "char":
            chars, ids, counts = build_chars(text)
            return cls(chars, "char"), ids, counts
        words = split_words(text)
        tokens = sorted(set(words))
        index = {w: i for i, w in enumerate(tokens)}
        ids = np.fromiter((index[w] for w in words), dtype=np.int32, count=len(words))  # (L,)
        return cls(tokens, "word"), ids, np.bincount(ids, minlength=len(tokens))

    @classmethod
    def from_meta(cls, meta):
        """The vocabulary stored in a checkpoint's meta record (words joined by single spaces:
        a word never holds whitespace). Raises KeyError/TypeError/ValueError when it is damaged."""
        level = meta.get("level", "char")
        if level not in ("char", "word"):
            raise ValueError(f"unknown level {level!r}")
        tokens = meta["vocab"].split(" ") if level == "word" else list(meta["vocab"])
        if len(set(tokens)) != len(tokens) or tokens != sorted(tokens):
            raise ValueError("its vocabulary is not a sorted list of distinct tokens")
        return cls(tokens, level)

    def to_meta(self):
        """The string stored as meta["vocab"]."""
        return " ".join(self.tokens) if self.level == "word" else self._chars

    def encode(self, text, what="text"):
        """text -> int32 ids under this vocabulary; unknown tokens are a UserError listing them."""
        if self.level == "char":
            return encode_chars(text, self._chars, what)
        words = split_words(text)
        missing = sorted({w for w in words if w not in self._index})
        if missing:
            raise UserError(f"{what} has {len(missing)} word(s) not in the model's vocabulary of "
                            f"{len(self)}: " + ", ".join(map(repr, missing[:20]))
                            + (" ..." if len(missing) > 20 else ""))
        return np.array([self._index[w] for w in words], dtype=np.int32)  # (L,)

    def pieces(self, ids, after=None):
        """Yield the text of a stream of token ids: characters as they are; words joined by
        spaces, EOS as a line break. after: the id of the token before ids (None: a text's start)."""
        at_line_start = after is None or self.tokens[after] == EOS
        for i in ids:
            tok = self.tokens[i]
            if self.level == "char":
                yield tok
            elif tok == EOS:
                at_line_start = True
                yield "\n"
            else:
                yield tok if at_line_start else " " + tok
                at_line_start = False

    def decode(self, ids, after=None):
        """Token ids -> the text they stand for (after: as in pieces)."""
        if self.level == "char":
            return "".join([self.tokens[i] for i in ids])
        return "".join(self.pieces(ids, after))


def encode_chars(text, chars, what="text"):
    """Map text onto a sorted character string -> int32 ids; unknown characters: UserError."""
    cps = code_points(text)                                  # (L,)
    known = code_points(chars)                               # (V,) sorted
    pos = np.searchsorted(known, cps)                        # (L,)
    pos[pos == len(known)] = 0
    bad = known[pos] != cps                                  # (L,) True where unknown
    if bad.any():
        missing = "".join(map(chr, np.unique(cps[bad])))
        raise UserError(f"{what} has {len(missing)} character(s) not in the model's vocabulary "
                        f"of {len(chars)}: {shown(missing)}")
    return pos.astype(np.int32)


def shown(chars, limit=40):
    """A short printable listing of characters, e.g. 'x', '\\n', '한' ... (and 12 more)."""
    items = [repr(c) for c in chars[:limit]]
    more = f" ... (and {len(chars) - limit} more)" if len(chars) > limit else ""
    return ", ".join(items) + more
