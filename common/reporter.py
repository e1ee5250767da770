"""
What a training run shows and keeps of itself, in small parts: the progress bar with the speed
(Progress), the --log lines (Log), the live --page (LivePage), and the Reporter that holds them
with the history, the printing clock and the loss lines.
"""
import contextlib
import math
import os
import sys
import time

from tqdm import tqdm

from common import page
from common.checkpoint import check_output_file, check_replaceable, write_atomic
from common.cli import UserError, finite_or_none, json_line, perplexity
from common.clock import Clock
from common.history import SMOOTH_FACTOR, History, thin

# Printing follows the clock by default: at the gist's settings this code runs hundreds of
# iterations a second, so a sample every 100 iterations would be tens of lines a second.
PRINT_SECONDS = 5.0  # a sample and a loss line about this often, unless --sample-every N
PRINT_SHARE = 10  # ... or less often, so that printing takes at most about 1/10 of the time
PLAIN_PROGRESS_SECONDS = 30.0  # with no terminal (no bar), a plain progress line about this often
# --page: written at the first validation, then about every PAGE_SECONDS, or less often so
# that writing it takes at most 1/PAGE_SHARE of the time; it reloads every
# RELOAD_SECONDS while the run lives and shows up to PAGE_SAMPLES samples (thinned like the
# checkpoint's)
PAGE_SECONDS = 10.0
PAGE_SHARE = 50
RELOAD_SECONDS = 3
PAGE_SAMPLES = 1000


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


class LivePage:
    """--page: the run's page (common/page.py LIVE), its folder made now if missing. due():
    whether to rewrite it, about every PAGE_SECONDS after the last write (PAGE_SHARE times as
    long as that write took, if longer), and at once after the first validation (validated()).
    write(data) writes the page of data() atomically and returns the seconds both took; a page
    that cannot be written (a full disk) is said once and training goes on."""

    def __init__(self, path, force=False):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(path):  # a folder is refused by check_output_file, naming --page
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot write --page {path}: {e.strerror} (making {folder}); "
                                "choose another --page") from None
        if check_output_file(path, "--page"):
            raise UserError(f"--page {path} is not a regular file (a FIFO or a device): a page "
                            "is a file to open in a browser; give a file name")
        check_replaceable(path, "--page", "page", force)
        self.clock = Clock(PAGE_SECONDS, PAGE_SHARE, at_start=False)
        self.written = False
        self.seconds = 0.0  # spent writing it so far

    def due(self):
        return self.path is not None and self.clock.due()

    def validated(self):
        """A validation: the page is due at once, the first time."""
        if not self.written:
            self.clock.due_now()

    def write(self, data):
        if self.path is None:  # it could not be written before
            return 0.0
        t0 = time.perf_counter()
        try:
            html = page.LIVE.render(data()).encode("utf-8")
            write_atomic(self.path, lambda f: f.write(html), "--page")
        except (UserError, ValueError) as e:  # ValueError: data no page can hold, never fatal
            tqdm.write(f"warning: {e}; the page is no longer written, training goes on",
                       file=sys.stderr)
            self.path = None
        spent = time.perf_counter() - t0
        self.clock.done(spent)
        self.written = True
        self.seconds += spent
        return spent


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
                   f"perplexity {perplexity(mean):.2f}")

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
                   f"perplexity {perplexity(val_loss):.3f}{per_char}")
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
            self.pause(self.page.write(lambda: self.page_data(k, ended)))

    def page_data(self, k, ended=None):
        """What the page shows (common/page.py LIVE)."""
        records, best = self.history.records, self.best
        return {"live": ended is None, "status": ended or "running", "title": self.args.out,
                "written": time.strftime("%H:%M:%S"), "reload_seconds": RELOAD_SECONDS,
                "unit": self.unit, "iter": k, "total": self.total,
                "speed": finite_or_none(self.progress_bar.rate),
                "wall_seconds": self.clock.wall_seconds(),
                "train_seconds": self.clock.train_seconds(), "page_seconds": self.page.seconds,
                "left": None if ended else time_left(self.args, self.clock, k, self.k_begin,
                                                       self.total),
                "best": None if best is None or best.loss is None else
                {"loss": best.loss, "iter": best.iter, "path": best.path},
                "options": dict(vars(self.args)),
                "history": page.history_rows(records),
                "smooth_factor": self.history.smooth_factor,
                "samples": page.with_losses(self.page_samples, records)}

    def close(self, k=None, ended=None):
        """Close the bar; with `ended` (how the run ended, after k iterations) write the final
        --page."""
        self.progress_bar.close()
        if ended is not None:
            self.write_page(k, ended)


def budget_seconds(args, clock):
    """This run's seconds as --time-budget counts them: its wall time, or (--budget-clock
    training) its training time with validation, saving and --page left out."""
    if getattr(args, "budget_clock", "wall") == "training":
        return clock.train_seconds() - clock.seconds_before
    return clock.wall_seconds()


def time_left(args, clock, k, k_begin, total):
    """{seconds, by}: the time a run has left after k iterations (k_begin of them done before
    it began), by --max-iters (total, at this run's pace so far) or --time-budget, whichever ends
    it first; None without either."""
    left = []
    if getattr(args, "time_budget", 0):
        left.append((max(args.time_budget - budget_seconds(args, clock), 0.0), "--time-budget"))
    if total is not None and k > k_begin:
        pace = clock.wall_seconds() / (k - k_begin)  # seconds per iteration
        left.append((max(total - k, 0) * pace, f"{total - k} more iterations at this run's pace"))
    return None if not left else dict(zip(("seconds", "by"), min(left)))
