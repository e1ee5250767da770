"""
A run's record kept in its checkpoint: the loss curve (History.records, thinned so that it stays
small for any run length) and the samples printed (thinned the same way).
"""

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
