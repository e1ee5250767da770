"""
Text and vocabularies: reading a corpus exactly, and the tokens of a model, characters, jamo
(Hangul syllables taken apart into their letters) or words, with one way to build, encode
(unknown tokens are listed in the error) and decode them.

References:
  https://www.unicode.org/versions/latest/ch03.pdf  (section 3.12, Conjoining Jamo Behavior)
"""
import hashlib
import os
import re
import stat
import unicodedata

import numpy as np

from common.cli import UserError

EOS = "<eos>"  # the word-level token for a line end (DLFS2's PTB reader)
SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: never a character alone


def check_file(path, what="input file", regular=False):
    """A UserError naming what is wrong with the path, if anything. regular: only a regular file
    will do (a file read whole, never a stream: a FIFO would block where Ctrl-C cannot reach)."""
    if not os.path.exists(path):
        raise UserError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"{what} is a directory, not a file: {path}")
    if regular and not stat.S_ISREG(os.stat(path).st_mode):
        raise UserError(f"{what} {path} is not a regular file (a FIFO, a device or a socket): "
                        "give a file")


def read_bytes(path, what="input file", max_bytes=None):
    """The file's bytes, or a UserError naming what is wrong with the path. With max_bytes, a
    file holding more is a UserError too, after reading only max_bytes + 1 (/dev/zero ends);
    without, only a regular file is read (a device could be endless)."""
    if "\0" in path:  # a name no file has (from a damaged record): os.stat would raise
        raise UserError(f"{what} {path!r} is not a file name (it holds a NUL character)")
    check_file(path, what, regular=max_bytes is None)
    try:
        with open(path, "rb") as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise UserError(f"{what} {path} is larger than {max_bytes} bytes, the most read here: "
                        "give a shorter text")
    return data


def decode_text(data, encoding="utf-8", path="input"):
    """Bytes -> str exactly: no newline translation, no normalisation; a leading BOM is dropped."""
    try:
        text = data.decode(encoding)
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r}: give a Python codec name, e.g. "
                        "--encoding latin-1") from None
    except UnicodeDecodeError as e:
        if b"\0" in data[:8192]:  # text in any 8-bit encoding or UTF-8 has no NUL bytes
            raise UserError(f"{path} looks like a binary file, not text (it holds NUL bytes): "
                            "give a text file") from None
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


def read_text(path, encoding="utf-8", what="input file", max_bytes=None):
    """Returns (text, sha256 hex of the file's bytes, number of bytes); empty files are refused,
    and with max_bytes, larger ones (see read_bytes)."""
    data = read_bytes(path, what, max_bytes)
    if not data:
        raise UserError(f"{what} is empty: {path}")
    return decode_text(data, encoding, path), hashlib.sha256(data).hexdigest(), len(data)


def code_points(text):
    """str -> (len,) uint32 array of its Unicode code points, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


# A precomposed Hangul syllable (U+AC00 .. U+D7A3) is one of 19 leading consonants (L), 21
# vowels (V) and 28 trailing consonants (T, the first of them none) in that order: syllable =
# 0xAC00 + (l * 21 + v) * 28 + t, and its conjoining jamo are U+1100 + l, U+1161 + v and, when
# t > 0, U+11A7 + t. This is what Unicode's canonical decomposition (NFD) does to a syllable.
SYLLABLES, V_COUNT, T_COUNT = 0xAC00, 21, 28
L_BASE, V_BASE, T_BASE = 0x1100, 0x1161, 0x11A7
JAMO_SYLLABLE = re.compile("([\u1100-\u1112])([\u1161-\u1175])([\u11a8-\u11c2]?)")  # L V T?
_to_jamo_table = None


def to_jamo(text):
    """Every precomposed Hangul syllable of text -> its 2 or 3 conjoining jamo (as NFD gives
    them); every other character unchanged."""
    global _to_jamo_table
    if _to_jamo_table is None:
        _to_jamo_table = {}
        for s in range(SYLLABLES, SYLLABLES + 19 * V_COUNT * T_COUNT):
            lv, t = divmod(s - SYLLABLES, T_COUNT)
            l, v = divmod(lv, V_COUNT)
            _to_jamo_table[s] = chr(L_BASE + l) + chr(V_BASE + v) + (chr(T_BASE + t) if t else "")
    return text.translate(_to_jamo_table)


def from_jamo(text):
    """The inverse of to_jamo: every leading consonant, vowel and optional trailing consonant in
    a row -> their precomposed syllable; every other character (a lone jamo included) unchanged."""
    def syllable(m):
        l, v = ord(m.group(1)) - L_BASE, ord(m.group(2)) - V_BASE
        t = ord(m.group(3)) - T_BASE if m.group(3) else 0
        return chr(SYLLABLES + (l * V_COUNT + v) * T_COUNT + t)
    return JAMO_SYLLABLE.sub(syllable, text)


def jamo_tail(text):
    """How many characters at the end of jamo text a later letter may still join to a syllable:
    2 after a leading consonant and a vowel (a trailing consonant may follow), 1 after a lone
    leading consonant, else 0."""
    if text and L_BASE <= ord(text[-1]) <= L_BASE + 18:
        return 1
    if len(text) >= 2 and V_BASE <= ord(text[-1]) <= V_BASE + 20 and \
            L_BASE <= ord(text[-2]) <= L_BASE + 18:
        return 2
    return 0


def jamo_shown(c):
    """A conjoining jamo as the standalone letter it is (U+1100 -> U+3131 'ㄱ'): alone, a
    conjoining jamo has no syllable to join and renders poorly; other characters unchanged."""
    if not 0x1100 <= ord(c) <= 0x11FF:
        return c
    letter = unicodedata.name(c, "").split(" ", 2)[-1]  # HANGUL CHOSEONG KIYEOK -> KIYEOK
    try:
        return unicodedata.lookup("HANGUL LETTER " + letter)
    except KeyError:
        return c


def counts_key(level):
    """The meta field holding the token counts of a vocabulary of this level."""
    return "token_counts" if level == "word" else "char_counts"


def split_words(text):
    """Whitespace-separated words, with an EOS token for every line end; a literal EOS word in
    the text is a UserError (it would read as a line end)."""
    lines = text.split("\n")
    words = []
    for line in lines[:-1]:
        words += line.split()
        words.append(EOS)
    words += lines[-1].split()
    if words.count(EOS) > len(lines) - 1:  # more than the line ends: one stood in the text
        raise UserError(f"the text holds the word {EOS}, which stands for a line end at word "
                        f"level: replace it (for example with <EOS>) or train at char level")
    return words


LEVELS = ("char", "jamo", "word")
UNITS = {"char": ("char", "character"), "jamo": ("jamo", "jamo letter"), "word": ("word", "word")}


class Vocabulary:
    """The tokens of a model: characters (level "char", sorted by code point), characters with
    every Hangul syllable taken apart into its jamo (level "jamo": to_jamo before encoding,
    from_jamo after decoding) or words (level "word", sorted, EOS for line ends). Sorted, so the
    same corpus always gives the same ids."""

    def __init__(self, tokens, level="char"):
        self.level = level
        self.tokens = list(tokens)  # id -> token
        self.unit, self.unit_name = UNITS[level]  # as in "nats/char", "100 characters"
        self.by_char = level != "word"  # one token a character
        self._chars = "".join(self.tokens) if self.by_char else None
        self._index = {w: i for i, w in enumerate(self.tokens)} if level == "word" else None

    def __len__(self):
        return len(self.tokens)

    @classmethod
    def from_meta(cls, meta):
        """The vocabulary stored in a checkpoint's meta record (words joined by single spaces:
        a word never holds whitespace). Raises KeyError/TypeError/ValueError when it is damaged."""
        level = meta.get("level", "char")
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}")
        tokens = meta["vocab"].split(" ") if level == "word" else list(meta["vocab"])
        if len(set(tokens)) != len(tokens) or tokens != sorted(tokens):
            raise ValueError("its vocabulary is not a sorted list of distinct tokens")
        if SURROGATE.search(meta["vocab"]):  # never read from a text: see decode_text
            raise ValueError("its vocabulary holds a lone surrogate, which is not a character")
        return cls(tokens, level)

    def to_meta(self):
        """The string stored as meta["vocab"]."""
        return " ".join(self.tokens) if self.level == "word" else self._chars

    def encode(self, text, what="text"):
        """text -> int32 ids under this vocabulary; unknown tokens are a UserError listing them."""
        if self.by_char:
            return encode_chars(self.as_read(text), self._chars, what)
        words = split_words(text)
        missing = sorted({w for w in words if w not in self._index})
        if missing:
            raise UserError(f"{what} has {len(missing)} word(s) not in the model's vocabulary of "
                            f"{len(self)}: " + ", ".join(map(repr, missing[:20]))
                            + (" ..." if len(missing) > 20 else ""))
        return np.array([self._index[w] for w in words], dtype=np.int32)  # (L,)

    def encode_known(self, text):
        """text -> (int32 ids of its known tokens, the unknown tokens left out, in text order):
        the text as the model can read it, for scoring with --unknown skip."""
        if self.by_char:
            text = self.as_read(text)
            pos, bad = char_positions(text, self._chars)  # (L,), (L,)
            return pos[~bad].astype(np.int32), [chr(c) for c in code_points(text)[bad]]
        words = split_words(text)
        ids = [self._index[w] for w in words if w in self._index]
        return np.array(ids, dtype=np.int32), [w for w in words if w not in self._index]

    def chars_scored(self, text, skipped=()):
        """The characters of text a score of it covers, for rates per character that compare
        across levels: all but the first (only a context) when tokens are characters or jamo;
        at word level every character of the text (the first word's too). skipped: tokens
        left out of the scored text."""
        return len(text) - sum(map(len, skipped)) - (1 if self.by_char else 0)

    def tokens_per_char(self, ids):
        """At level jamo: the tokens of ids after the first per character of their text after
        the first, to turn a loss per token into one per character; None at other levels."""
        if self.level != "jamo" or len(ids) < 2:
            return None
        return (len(ids) - 1) / max(len(self.decode(ids)) - 1, 1)

    def as_read(self, text):
        """text as this vocabulary's tokens spell it: Hangul syllables taken apart at level jamo."""
        return to_jamo(text) if self.level == "jamo" else text

    def pieces(self, ids, after=None):
        """Yield the text of each token of a stream of ids, one piece a token: characters as
        they are (a jamo as its standalone letter); words joined by spaces, EOS as a line break.
        after: the id of the token before ids (None: a text's start)."""
        at_line_start = after is None or self.tokens[after] == EOS
        for i in ids:
            tok = self.tokens[i]
            if self.level == "char":
                yield tok
            elif self.level == "jamo":
                yield jamo_shown(tok)
            elif tok == EOS:
                at_line_start = True
                yield "\n"
            else:
                yield tok if at_line_start else " " + tok
                at_line_start = False

    def decode(self, ids, after=None):
        """Token ids -> the text they stand for (after: as in pieces); jamo are put together
        into syllables."""
        if self.by_char:
            text = "".join([self.tokens[i] for i in ids])
            return from_jamo(text) if self.level == "jamo" else text
        return "".join(self.pieces(ids, after))


def encode_chars(text, chars, what="text"):
    """Map text onto a sorted character string -> int32 ids; unknown characters: UserError."""
    pos, bad = char_positions(text, chars)                   # (L,), (L,)
    if bad.any():
        missing = "".join(map(chr, np.unique(code_points(text)[bad])))
        raise UserError(f"{what} has {len(missing)} character(s) not in the model's vocabulary "
                        f"of {len(chars)}: {shown(missing)}")
    return pos.astype(np.int32)


def char_positions(text, chars):
    """Each character's index in the sorted string chars -> (pos (L,), unknown (L,) bool);
    pos is 0 where the character is unknown."""
    cps = code_points(text)                                  # (L,)
    known = code_points(chars)                               # (V,) sorted
    pos = np.searchsorted(known, cps)                        # (L,)
    pos[pos == len(known)] = 0
    bad = known[pos] != cps                                  # (L,) True where unknown
    pos[bad] = 0
    return pos, bad


def shown(chars, limit=40):
    """A short printable listing of characters, e.g. 'x', '\\n', '한' ... (and 12 more)."""
    items = [repr(c) for c in chars[:limit]]
    more = f" ... (and {len(chars) - limit} more)" if len(chars) > limit else ""
    return ", ".join(items) + more


# ----------------------------------------------------------------------------- several files

def corpus_paths(inputs):
    """INPUT arguments (files, or folders meaning the files directly in them, hidden ones left
    out) -> the files to read, sorted by path, each once: names that lead to one real file
    (through a symlink) count once, under the first of them in path order."""
    paths = set()
    for path in inputs:
        if not os.path.isdir(path):
            check_file(path, regular=True)
            paths.add(os.path.abspath(path))
            continue
        found = [os.path.join(path, name) for name in os.listdir(path)
                 if not name.startswith(".") and os.path.isfile(os.path.join(path, name))]
        if not found:
            raise UserError(f"directory {path} holds no text files (only the files directly in "
                            "it are read): give a folder of text files, or the files themselves")
        paths.update(os.path.abspath(p) for p in found)
    by_real = {}  # real path -> the first name of it in path order
    for path in sorted(paths):
        by_real.setdefault(os.path.realpath(path), path)
    return sorted(by_real.values())


def word_pieces(texts):
    """Texts -> pieces whose words, taken piece by piece, are the words of the texts joined with
    nothing in between: a word cut by a file's end is carried into the next piece."""
    carry = ""
    for text in texts:
        end = len(text)
        while end and not text[end - 1].isspace():  # the word the text ends in, if any
            end -= 1
        if end:
            yield carry + text[:end]  # ends in whitespace: no word spans the cut
            carry = text[end:]
        else:
            carry += text
    yield carry


class CharCounter:
    """Character counts over several texts as a code-point histogram, chunked so memory stays
    near the size of the ids; then the vocabulary, sorted by code point so the same corpus always
    gives the same one, and each text's ids in the smallest unsigned dtype that holds them."""

    def __init__(self, chunk=1 << 24):
        self.chunk = chunk
        self.counts = np.zeros(0x110000, dtype=np.int64)  # (every code point,)
        self.total = 0

    def add(self, text):
        for i in range(0, len(text), self.chunk):
            self.counts += np.bincount(code_points(text[i:i + self.chunk]),
                                       minlength=len(self.counts))
        self.total += len(text)

    def vocabulary(self, level="char"):
        """-> (Vocabulary of this level, "char" or "jamo", ids buffer to fill, counts (V,))."""
        present = np.flatnonzero(self.counts)  # (V,) sorted code points
        dtype = np.min_scalar_type(max(len(present) - 1, 0))  # uint8 for V <= 256
        self.lookup = np.zeros(len(self.counts), dtype=dtype)
        self.lookup[present] = np.arange(len(present))  # code point -> index
        ids = np.empty(self.total, dtype=self.lookup.dtype)  # (L,)
        return Vocabulary("".join(map(chr, present)), level), ids, self.counts[present]

    def ids(self, text):
        for i in range(0, len(text), self.chunk):
            yield self.lookup[code_points(text[i:i + self.chunk])]


class WordCounter:
    """Word counts over several texts (pieces from word_pieces); then the sorted vocabulary."""

    def __init__(self):
        self.counts = {}

    def add(self, text):
        for w in split_words(text):
            self.counts[w] = self.counts.get(w, 0) + 1

    def vocabulary(self, level="word"):
        tokens = sorted(self.counts)
        self.index = {w: i for i, w in enumerate(tokens)}
        ids = np.empty(sum(self.counts.values()), dtype=np.int32)  # (L,)
        return Vocabulary(tokens, "word"), ids, np.array([self.counts[w] for w in tokens])

    def ids(self, text):
        words = split_words(text)
        yield np.fromiter((self.index[w] for w in words), dtype=np.int32, count=len(words))


def read_corpus(inputs, encoding="utf-8", level="char", vocab=None, what=""):
    """Read INPUT (files and folders, see corpus_paths) as one text joined in path order ->
    (vocab, ids, counts (V,), files [{name, size, sha256}]). Without `vocab` the vocabulary is
    built over all files in two passes (counts, then ids), so memory stays near the ids' size
    rather than a copy per file; with one, each file is encoded in it (`what`: for its error)."""
    paths = corpus_paths(inputs)
    files, held = [], []  # held: the last file's text, kept from the first pass for the second

    def texts(check=False):
        for i, path in enumerate(paths):
            if check and i == len(paths) - 1:
                yield held.pop()
                continue
            text, sha, size = read_text(path, encoding)
            if check and sha != files[i]["sha256"]:
                raise UserError(f"{path} changed while it was being read: read it again")
            if not check:
                files.append({"name": path, "size": size, "sha256": sha})
                if i == len(paths) - 1:
                    held.append(text)
            yield text

    def pieces(check=False):
        if level == "jamo":
            return map(to_jamo, texts(check))
        return texts(check) if level == "char" else word_pieces(texts(check))

    if vocab is not None:
        parts = [vocab.encode(p, paths[max(len(files), 1) - 1] + what) for p in pieces()]
        ids = np.concatenate(parts)  # (L,)
        return vocab, ids, np.bincount(ids, minlength=len(vocab)), files
    counter = WordCounter() if level == "word" else CharCounter()
    for piece in pieces():
        counter.add(piece)
    vocab, ids, counts = counter.vocabulary(level)
    pos = 0
    for piece in pieces(check=True):
        for block in counter.ids(piece):  # (n,) ids of the next stretch of text
            ids[pos:pos + len(block)] = block
            pos += len(block)
    return vocab, ids, counts, files


def input_files(meta):
    """The training input recorded in a checkpoint's meta record as [{name, size, sha256}]:
    meta["input_files"], or the single-file fields input, input_bytes, input_sha256 of older
    checkpoints; [] when neither is there, None when the record is damaged."""
    if "input_files" in meta:
        files = meta["input_files"]
    elif "input" in meta:
        files = [{"name": meta["input"], "size": meta.get("input_bytes"),
                  "sha256": meta.get("input_sha256")}]
    else:
        return []
    ok = isinstance(files, list) and all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and type(f.get("size")) is int
        and isinstance(f.get("sha256"), str) for f in files)
    return files if ok else None


def check_val_split(val, val_fraction, unit="characters"):
    """A validation split, when asked for, must hold at least 2 tokens to predict one."""
    if val_fraction > 0 and len(val) < 2:
        raise UserError(f"the validation split has {len(val)} {unit}, too few to evaluate: "
                        "raise --val-fraction or use --val-fraction 0")


def split_ids(ids, val_fraction, unit_name):
    """ids -> (train, val): the last val_fraction held out; a split asked for must hold at
    least 2 tokens to predict one."""
    split = int(len(ids) * (1 - val_fraction))
    train, val = ids[:split], ids[split:]
    check_val_split(val, val_fraction, unit_name + "s")
    return train, val
