"""
What both model kinds share for evaluating and sampling: a long text evaluated in chunks, Gumbel-max
noise for drawing from softmax(y / temperature), the top-k cut, and a sample's text as it grows
(Sample: held-back jamo letters, the stop string).

References:
  https://en.wikipedia.org/wiki/Gumbel_distribution  (the Gumbel-max trick)
"""
import numpy as np

from common.vocabulary import from_jamo, jamo_tail, to_jamo


def eval_chunk(V):
    """Positions evaluated per call: keeps the (chunk, V) softmax near 32 MB."""
    return max(64, min(8192, 2 ** 22 // V))


def chunked_nats(ids, chunk, nats_of):
    """Total cross-entropy of ids[1:] given ids[:-1], `chunk` positions a call: nats_of(x, t)
    returns the nats of predicting t from x, the model's state carried from call to call ->
    (nats, count)."""
    nats = 0.0
    for s in range(0, len(ids) - 1, chunk):
        x = ids[s:min(s + chunk, len(ids) - 1)]  # (chunk,)
        nats += nats_of(x, ids[s + 1:s + 1 + len(x)])  # the next token of each
    return nats, max(len(ids) - 1, 0)


def gumbel_noise(rng, shape, temperature, dtype):
    """temperature * g with g ~ Gumbel(0, 1), `shape` (e.g. (steps, K, V)); zeros when temperature
    is 0. argmax(y + temperature g) = argmax(y / temperature + g) draws from softmax(y /
    temperature) without forming probabilities, and stays finite for any tiny temperature."""
    if not temperature:
        return np.zeros(shape, dtype=dtype)  # temperature 0: plain argmax
    noise = rng.random(shape)  # U ~ uniform [0, 1)
    with np.errstate(divide="ignore"):  # U = 0 (p = 2^-53) gives -inf: never drawn
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        np.log(noise, out=noise)  # -g = log(-log U), in place: faster than rng.gumbel
    noise *= -temperature
    return noise.astype(dtype, copy=False)


def keep_top_k(y, top_k):
    """Set every score of y (K, V) below each row's k-th largest to -inf, in place; top_k 0 or
    >= V keeps all."""
    V = y.shape[1]
    if 0 < top_k < V:
        kth = np.partition(y, V - top_k, axis=1)[:, V - top_k, None]  # (K, 1) k-th largest
        y[y < kth] = -np.inf  # below the k-th largest score is never drawn
    return y


def noise_block(K, V):
    """Steps of noise drawn at once for K streams over V tokens (bounds memory near 8 MB)."""
    return max(1, min(1024, 2 ** 20 // (K * V)))


class Sample:
    """One sample's text as it grows: the start text (or, without one, the drawn first token),
    then generated tokens, ended right after the first `stop` that ends in generated text.
    ids: the generated tokens kept (the first input excluded), for their log-probability. At
    level jamo the letters of a syllable that may still grow are held back (held) until the
    next block or finish()."""

    def __init__(self, vocab, prefix, first, stop):
        self.vocab, self.stop, self.done = vocab, stop, False
        self.parts, self.ids, self.tail, self.held = [], [], "", ""
        if prefix is None:  # the drawn first token is generated text, though not predicted
            self.last = None
            self.add(np.array([first]), predicted=False)
        else:
            self.parts.append(prefix)
            self.tail = self.keep_tail(prefix)  # a stop may begin in the start text
        self.last = first

    def keep_tail(self, text):
        """The end of text a stop string could still complete: its last len(stop) - 1 chars."""
        return text[max(0, len(text) - len(self.stop) + 1):] if self.stop else ""

    def add(self, block, predicted=True):
        """Take the next generated ids (n,) -> the text they add, cut right after a stop."""
        if self.done:
            return ""
        held = self.held
        if self.vocab.level == "jamo":  # the letters put together; a growing syllable held back
            letters = held + "".join([self.vocab.tokens[i] for i in block])
            self.held = letters[len(letters) - jamo_tail(letters):]
            piece = from_jamo(letters[:len(letters) - len(self.held)])
        else:
            piece = self.vocab.decode(block, after=self.last)
        cut = self.stop_cut(piece)
        if cut is not None:
            piece, block, self.held = piece[:cut], block[:self.tokens_in(block, cut, held)], ""
        if predicted:
            self.ids.append(block)
        if len(block):
            self.last = block[-1]
        self.parts.append(piece)
        return piece

    def finish(self):
        """The end of generation: the text of the letters still held back (jamo), as add gives."""
        if self.done or not self.held:
            return ""
        piece, self.held = from_jamo(self.held), ""
        cut = self.stop_cut(piece)
        self.parts.append(piece[:cut])
        return piece[:cut]

    def stop_cut(self, piece):
        """The characters of the next piece to keep: None for all, or up to the end of the first
        stop that ends in it (the sample is then done)."""
        window = self.tail + piece
        at = window.find(self.stop) if self.stop else -1
        # window's tail is shorter than stop: a match ends in the new piece
        cut = None if at < 0 else at + len(self.stop) - len(self.tail)
        self.tail = self.keep_tail(window)
        self.done = self.done or cut is not None
        return cut

    def tokens_in(self, block, cut, held=""):
        """How many tokens of block it takes to produce the first `cut` characters of its text
        (held: the letters held back before block, at level jamo)."""
        if self.vocab.level == "jamo":
            piece = from_jamo(held + "".join([self.vocab.tokens[i] for i in block]))
            return max(len(to_jamo(piece[:cut])) - len(held), 0)
        size = 0
        for n, piece in enumerate(self.vocab.pieces(block, after=self.last), 1):
            size += len(piece)
            if size >= cut:
                return n
        return len(block)

    @property
    def text(self):
        return "".join(self.parts)

    def kept_ids(self):
        return np.concatenate(self.ids) if self.ids else np.zeros(0, dtype=np.int64)  # (n,)
