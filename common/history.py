"""
A run's record kept in its checkpoint: the loss curve (History.records, thinned so that it stays
small for any run length) and the samples printed (thinned the same way); what a stored one must
hold (is_history), and how the pages and tools read it.
"""
from common.checkpoint import is_int, is_num, is_str, optional
from common.vocabulary import SURROGATE

HISTORY_RECORDS = 1000  # at most about this many loss-history records per checkpoint
SAMPLE_RECORDS = 50  # at most this many printed samples per checkpoint, the first and last kept
# The smoothed training loss of the history and the pages: an exponential average with this
# weight on the value before (the gist's smooth_loss has 0.999 at one stream a step; rnnlm.py's
# iterations read N streams, so fewer of them make a curve)
SMOOTH_FACTOR = 0.99


class History:
    """The run's record kept in the checkpoint. records: the loss curve, {iter, loss, val_loss,
    seconds, smooth} (nats per token, None where not measured; seconds: training seconds, see
    Reporter; smooth: the training loss smoothed, an exponential average with weight
    smooth_factor on the value before, whose latest value is `smooth`).
    Training losses are kept every `stride` iterations; past HISTORY_RECORDS records the stride
    doubles and the records off it are dropped, so the history stays small for any run length
    (validation records are kept while they fit). samples: the samples printed, {iter, text},
    thinned to SAMPLE_RECORDS. to_meta adds the training seconds at the save."""

    def __init__(self, stored=None, smooth_factor=SMOOTH_FACTOR):
        stored = stored or {}
        self.stride = int(stored.get("stride", 1))
        self.records = list(stored.get("records", []))
        self.samples = list(stored.get("samples", []))
        self.smooth, self.smooth_factor = stored.get("smooth"), stored.get("smooth_factor",
                                                                           smooth_factor)

    def add(self, k, loss=None, val_loss=None, seconds=None, smooth=None):
        """Iteration k's figures. A training loss moves the smoothed one: to `smooth` when
        given (the gist's smooth_loss), else by the exponential average."""
        if loss is not None:
            f = self.smooth_factor
            self.smooth = smooth if smooth is not None else \
                loss if self.smooth is None else f * self.smooth + (1 - f) * loss
        last = self.records[-1] if self.records else None
        if last is not None and last["iter"] == k:  # the same iteration: one record
            if loss is not None:
                last["loss"], last["smooth"] = loss, self.smooth
            if val_loss is not None:
                last["val_loss"] = val_loss
        elif val_loss is not None or k % self.stride == 0:
            self.records.append({"iter": k, "loss": loss, "val_loss": val_loss, "seconds": seconds,
                                 "smooth": self.smooth if loss is not None else None})
        if len(self.records) > HISTORY_RECORDS:
            self.stride *= 2
            kept = [r for r in self.records
                    if r["iter"] % self.stride == 0 or r["val_loss"] is not None]
            if len(kept) > HISTORY_RECORDS:  # validation alone overflows: every other one
                kept = kept[::2]
            self.records = kept

    def add_sample(self, k, text):
        """A sample printed before iteration k."""
        self.samples.append({"iter": k, "text": text})
        thin(self.samples, SAMPLE_RECORDS)

    def to_meta(self, seconds):
        """The record as the checkpoint stores it, `seconds` the training seconds now."""
        return {"stride": self.stride, "records": self.records, "samples": self.samples,
                "seconds": seconds, "smooth": self.smooth, "smooth_factor": self.smooth_factor}


def thin(samples, cap):
    """Past `cap` entries, drop every other one of the list in place, the first and the last
    kept: like the loss records, what is kept stays spread over the whole run."""
    if len(samples) > cap:
        samples[:] = samples[:-1:2] + samples[-1:]


JS_INT = 2 ** 53  # iterations up to here: the pages' JavaScript reads integers exactly to there


def is_history(v):
    """The run's history: {stride, records: [{iter, loss, val_loss, seconds, smooth}], samples:
    [{iter, text}], seconds, smooth, smooth_factor}, numbers where measured. Older checkpoints
    have no samples, seconds or smoothed losses."""
    number, seconds, count = optional(is_num()), optional(is_num(0)), is_int(0, JS_INT)
    if not (isinstance(v, dict) and is_int(1)(v.get("stride"))
            and isinstance(v.get("records"), list) and isinstance(v.get("samples", []), list)
            and seconds(v.get("seconds")) and number(v.get("smooth"))
            and is_num(0, 1)(v.get("smooth_factor", 0.5))):
        return False
    return (all(isinstance(r, dict) and count(r.get("iter")) and number(r.get("loss"))
                and number(r.get("val_loss")) and seconds(r.get("seconds"))
                and number(r.get("smooth")) for r in v["records"])
            and all(isinstance(s, dict) and count(s.get("iter")) and is_str(s.get("text"))
                    and not SURROGATE.search(s["text"]) for s in v.get("samples", [])))


# What a page's history row holds, by index: the scripts read h[0] .. h[4] (lib.js points)
HISTORY_ROW = ("iter", "loss", "val_loss", "seconds", "smooth")


def history_rows(records):
    """History records [{iter, loss, val_loss, seconds, smooth}] as the pages' rows, HISTORY_ROW's
    fields in order (None where a record lacks one: older checkpoints have no smooth)."""
    return [[r.get(k) for k in HISTORY_ROW] for r in records or []]


def with_losses(samples, records):
    """The samples [{iter, text}], each with `loss`: the mean training loss per token of the
    history records after the previous sample's iteration up to its own (None without any)."""
    train = [(r["iter"], r["loss"]) for r in records if r.get("loss") is not None]
    out, j, prev = [], 0, -1
    for s in samples:
        total, count = 0.0, 0
        while j < len(train) and train[j][0] <= s["iter"]:
            if train[j][0] > prev:
                total, count = total + train[j][1], count + 1
            j += 1
        out.append({"iter": s["iter"], "text": s["text"], "loss": total / count if count else None})
        prev = s["iter"]
    return out


def stored_records(meta):
    """The loss history a checkpoint's meta record keeps (checked on load: is_history) -> its
    records, or None for checkpoints without one (format version 1)."""
    stored = meta.get("history")
    return None if stored is None else stored["records"]


def stored_samples(meta):
    """The samples printed during training that a checkpoint keeps -> [{iter, text}]."""
    return (meta.get("history") or {}).get("samples", [])


def stored_smooth_factor(meta):
    """The weight of a history's smoothed training loss on the value before, or None (older
    checkpoints keep no smoothed loss)."""
    f = (meta.get("history") or {}).get("smooth_factor")
    return f if f is not None and 0 < f < 1 else None


def trained_seconds(meta):
    """The seconds a checkpoint was trained (validation and saving left out; older checkpoints:
    the wall-clock seconds they record), or None."""
    stored = (meta.get("history") or {}).get("seconds")
    return stored if stored is not None else meta.get("train_seconds")
