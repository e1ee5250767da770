"""
What a training run shows and keeps of itself, in small parts: the progress bar with the speed
(Progress), the --log lines (Log), and the Reporter that holds them with the history, the
printing clock, the loss lines and the live --page (common/live_page.py).
"""
import contextlib
import math
import os
import sys
import time

from tqdm import tqdm

from common.checkpoint import check_replaceable
from common.cli import UserError, json_line, perplexity, ppl_text
from common.clock import Clock
from common.history import SMOOTH_FACTOR, History, thin
from common.live_page import LivePage, live_data

# Printing follows the clock by default: at the gist's settings this code runs hundreds of
# iterations a second, so a sample every 100 iterations would be tens of lines a second.
PRINT_SECONDS = 5.0  # a sample and a loss line about this often, unless --sample-every N
PRINT_SHARE = 10  # ... or less often, so that printing takes at most about 1/10 of the time
PLAIN_PROGRESS_SECONDS = 30.0  # with no terminal (no bar), a plain progress line about this often
PAGE_SAMPLES = 1000  # samples kept for --page (thinned like the checkpoint's)


class Log:
    """--log: JSON lines appended (line-buffered), the file checked before training (it must be
    one this tool wrote, unless --force); one that cannot be written later (a full disk) is said
    once, and training goes on."""

    def __init__(self, path, force=False):
        self.path, self.file = path, None
        if path is None:
            return
        check_replaceable(path, "--log", "log", force)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.file = open(path, "a", buffering=1, encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write --log {path}: {e.strerror}") from None

    def write(self, **fields):
        if self.file:
            try:
                self.file.write(json_line(**fields))
            except OSError as e:
                self.file = None
                tqdm.write(f"warning: cannot write --log {self.path}: {e.strerror}; logging "
                           "stopped, training goes on", file=sys.stderr)


class Progress:
    """The progress bar: iteration k of total (None: open), and about once a second the
    loop's figures (describe(), e.g. "loss 1.234") with the speed in tokens per second. With no
    terminal, the same figures as a plain line about every PLAIN_PROGRESS_SECONDS."""

    def __init__(self, unit):
        self.unit = unit
        self.bar, self.describe, self.speed, self.rate = None, None, None, None
        self.start(0, None)

    def start(self, k, total):
        """Count the speed from iteration k, now."""
        self.t_last = self.t_plain = time.perf_counter()
        self.k_last, self.total = k, total

    def begin(self, k, total):
        self.bar = tqdm(total=total, initial=k, unit="it", dynamic_ncols=True, disable=None,
                        mininterval=0.5)
        self.start(k, total)

    def pause(self, seconds):
        """Leave `seconds` just spent (a validation, a save, the page) out of the speed."""
        self.t_last += seconds

    def update(self, k, tokens_per_iter, describe, now):
        """Iteration k done at `now`."""
        self.bar.update(1)
        self.describe = describe
        if now - self.t_last > 1.0:
            self.rate = (k - self.k_last) * tokens_per_iter / (now - self.t_last)
            self.speed = f"{self.rate / 1000:.1f}k {self.unit}s/s"
            self.bar.set_postfix_str(f"{describe()}, {self.speed}")
            self.t_last, self.k_last = now, k
        if self.bar.disable and now - self.t_plain >= PLAIN_PROGRESS_SECONDS:
            of = f" of {self.total}" if self.total else ""
            speed = f", {self.speed}" if self.speed else ""
            print(f"progress: iteration {k}{of}, {describe()}{speed}")
            self.t_plain = now

    def close(self):
        """Close the bar, its figures brought up to date first (they agree with the last line)."""
        if self.bar is not None:
            if self.describe is not None:
                speed = f", {self.speed}" if self.speed else ""
                self.bar.set_postfix_str(self.describe() + speed, refresh=False)
            self.bar.close()


class Reporter:
    """What a run shows and keeps of itself: a sample and a loss line now and then (print_due),
    the validation lines, the --log lines, the history stored in the checkpoint (losses and
    samples), the progress bar and the --page. clock: the run's RunClock; best: the run's Best;
    smooth_factor: the history's smoothing (see History)."""

    def __init__(self, args, unit, meta, clock, best=None, smooth_factor=SMOOTH_FACTOR):
        self.args, self.unit, self.clock, self.best = args, unit, clock, best
        force = getattr(args, "force", False)
        self.page = LivePage(args.page, force) if getattr(args, "page", None) else None
        self.log = Log(args.log, force)
        self.log_every = args.log_every
        self.sample_every = args.sample_every
        self.history = History(meta.get("history"), smooth_factor)
        self.page_samples = list(self.history.samples)  # more of them than the checkpoint keeps
        self.eval_seconds = None  # the last validation took
        self.last_sample = None  # the iteration of the last printed sample
        # tokens predicted per character predicted of the validation text as written (jamo:
        # about 2.4 letters a syllable), set by a trainer of jamo; None: one token a character
        self.tokens_per_char = None
        self.window = [0.0, 0]  # training loss per token summed since the last loss line, count
        self.progress_bar = Progress(unit)
        self.k_begin, self.total = 0, None
        self.t_done = time.perf_counter()  # when the last iteration ended
        self.print_clock = Clock(PRINT_SECONDS, PRINT_SHARE, at_start=True)
        with contextlib.suppress(AttributeError, ValueError):  # a pipe sees each line as it comes
            sys.stdout.reconfigure(line_buffering=True)

    def begin(self, k, total):
        """The bar shows iteration k of total (None: open) from here on."""
        self.progress_bar.begin(k, total)
        self.k_begin, self.total = k, total
        self.t_done = time.perf_counter()
        self.print_clock.start()
        if self.page:
            self.page.clock.start()

    def pause(self, seconds):
        """Leave `seconds` just spent (a validation, a save, the page) out of the training clock
        and the speed."""
        self.clock.pause(seconds)
        self.progress_bar.pause(seconds)

    def print_due(self, k):
        """Whether iteration k prints a sample and a loss line: every --sample-every iterations
        when given (0: never), else at the first iteration and then when PRINT_SECONDS (or
        PRINT_SHARE times the last print's duration, if longer) have passed since it ended."""
        if self.sample_every is not None:
            return self.sample_every > 0 and k % self.sample_every == 0
        return self.print_clock.due()

    def print_sample(self, k, text, shown=None):
        """Print a sample taken before iteration k between dashes (shown: how it is printed,
        default the text) and keep it in the history and for the page."""
        tqdm.write(f"----\n{text if shown is None else shown}\n----")
        self.last_sample = k
        self.history.add_sample(k, text)
        if self.page:
            self.page_samples.append({"iter": k, "text": text})
            thin(self.page_samples, PAGE_SAMPLES)

    def final_sample_due(self, k):
        """Whether a run that ends after k iterations prints one more sample, so that the last
        one shown is what the model writes now: samples are on, this run trained, and no sample
        was printed at k."""
        return self.sample_every != 0 and k > self.k_begin and self.last_sample != k

    def print_recent_loss(self, k):
        """Print the mean training loss per token since the last such line, and its perplexity."""
        total, count = self.window
        self.window = [0.0, 0]
        mean = total / max(count, 1)
        tqdm.write(f"iter {k}, loss: {mean:.4f} nats/{self.unit} (mean since the last line), "
                   f"perplexity {ppl_text(perplexity(mean))}")

    def trained(self, k, loss_per_token, smooth=None, **log_fields):
        """Iteration k's training loss (smooth: the trainer's own smoothed loss per token, else
        the history's average): into the history, and a --log line every log_every."""
        self.history.add(k, loss=loss_per_token, seconds=round(self.clock.train_seconds(), 3),
                         smooth=smooth)
        self.window[0] += loss_per_token
        self.window[1] += 1
        if self.log_every and k % self.log_every == 0:
            self.log.write(iter=k, **log_fields)

    def validated(self, k, val_loss, **log_fields):
        """A validation loss after k iterations: printed, logged, kept in the history."""
        bits, unit = val_loss / math.log(2), self.unit
        per_char = ""
        if self.tokens_per_char:  # jamo: the same loss per character of the text as written
            log_fields["val_bits_per_char"] = bits * self.tokens_per_char
            per_char = f"; {bits * self.tokens_per_char:.4f} bits/char of the text as written"
        tqdm.write(f"iter {k}: val loss {val_loss:.4f} nats/{unit}, {bits:.4f} bits/{unit}, "
                   f"perplexity {ppl_text(perplexity(val_loss), 3)}{per_char}")
        # the evaluation (since iteration k ended) is left out of the clock and the speed
        self.eval_seconds = time.perf_counter() - self.t_done
        self.pause(self.eval_seconds)
        seconds = round(self.clock.train_seconds(), 3)  # of training when iteration k ended
        self.log.write(iter=k, val_loss=val_loss, val_bits=bits,
                       val_perplexity=perplexity(val_loss), unit=unit, train_seconds=seconds,
                       **log_fields)
        if self.page:
            self.page.validated()
        self.history.add(k, val_loss=val_loss, seconds=seconds)

    def progress(self, k, tokens_per_iter, describe):
        """One more iteration (k done) on the bar (describe(): the loop's figures, see
        Progress); the page is rewritten when due."""
        self.t_done = time.perf_counter()
        self.progress_bar.update(k, tokens_per_iter, describe, self.t_done)
        if self.page and self.page.due():
            self.write_page(k)
            self.t_done = time.perf_counter()  # a validation next leaves out its own time only

    def write_page(self, k, ended=None):
        """Write --page after k iterations: live, or the final page of a run that `ended` (how,
        e.g. "finished after 500 iterations"), which no longer reloads."""
        if self.page:
            self.pause(self.page.write(lambda: live_data(self, k, ended)))

    def close(self, k=None, ended=None):
        """Close the bar; with `ended` (how the run ended, after k iterations) write the final
        --page."""
        self.progress_bar.close()
        if ended is not None:
            self.write_page(k, ended)
