"""
One training run around a trainer's loop (Run): its files, its reporter, the best validation loss
and early stopping (Best), the stop signals (StopFlag), the divergence check, and when to
validate and save. Each loop stays visible in its script and asks Run a few things.
"""
import math
import shlex
import signal
import sys
import time
import uuid

import numpy as np
from tqdm import tqdm

from common.cli import UserError
from common.clock import Clock, EverySeconds, RunClock, budget_seconds
from common.history import SMOOTH_FACTOR, trained_seconds
from common.reporter import Reporter
from common.run_files import Checkpoints

EVAL_SECONDS = 5.0  # a validation about this often, unless --eval-every N ...
EVAL_SHARE = 10  # ... or less often, so that validating takes at most about 1/10 of the time
MAX_EVAL_SHARE = 0.5  # an explicit --eval-every validating over this share of --time-budget is noted
STALE_NOTICE = 3  # validations in a row without a new best before the one overfitting notice


class StopFlag:
    """SIGINT / SIGTERM set a flag instead of raising, so the loop stops between iterations
    and never saves a half-updated state. `signum` is the signal received, or None."""

    def __init__(self):
        self.signum = None
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        self.signum = signum

    @property
    def exit_status(self):
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


def diverged(what, k, hint="try a smaller --learning-rate"):
    """The one error both trainers give when training diverges (exit status 1)."""
    return UserError(f"{what} at iteration {k}: training diverged; the last saved checkpoint is "
                     f"untouched; {hint}", 1)


class Best:
    """The best validation loss so far and the file that keeps it; early stopping: after
    STALE_NOTICE validations without a new best the run says so once, and after --patience
    of them (when given) out_of_patience tells the loop to stop."""

    def __init__(self, path, unit, patience, meta):
        self.path, self.unit, self.patience = path, unit, patience
        self.loss = meta.get("best_val_loss")
        self.iter = meta.get("best_val_iter")  # absent in older checkpoints
        self.stale = meta.get("validations_since_best", 0)  # validations without a new best
        self.noticed = meta.get("overfit_noticed", False)

    def update(self, k, val_loss, save_best):
        """A validation loss after k iterations; a new best is saved by save_best(path).
        Returns whether it is a new best."""
        if self.loss is None or val_loss < self.loss:
            self.loss, self.iter, self.stale = val_loss, k, 0
            save_best(self.path)
            return True
        self.stale += 1
        if self.out_of_patience:
            tqdm.write(f"iter {k}: stopping early: {self.stale} validations without a new best "
                       f"(--patience {self.patience}); {self.text()}")
        elif self.stale >= STALE_NOTICE and not self.noticed:
            self.noticed = True
            tqdm.write(f"iter {k}: the validation loss has not improved for {self.stale} "
                       f"validations, so the model may be overfitting; {self.text()}; "
                       "--patience N stops after N validations without a new best")
        return False

    @property
    def out_of_patience(self):
        return bool(self.patience) and self.stale >= self.patience

    def text(self):
        where = "" if self.iter is None else f" at iteration {self.iter}"
        return f"the best, {self.loss:.4f} nats/{self.unit}{where}, is kept in {self.path}"

    def meta(self):
        return {"best_val_loss": self.loss, "best_val_iter": self.iter,
                "validations_since_best": self.stale, "overfit_noticed": self.noticed}


class Run:
    """One training run around a trainer's loop: its checkpoint files (files), what it prints
    and logs (report), the best validation loss and early stopping (best), the stop signals, the
    divergence check, and when to validate and save. resumed_meta: the meta record of the run
    being resumed, or None for a fresh one. unit: "char", "jamo" or "word"; hint: the divergence
    advice; smooth_factor: the history's smoothing (see History)."""

    def __init__(self, args, unit, resumed_meta=None, hint="try a smaller --learning-rate",
                 smooth_factor=SMOOTH_FACTOR):
        meta = resumed_meta or {}
        self.args, self.hint = args, hint
        # the run's id, in every checkpoint it writes: drawn now, or the resumed run's own
        self.run_id = meta.get("run_id") or uuid.uuid4().hex
        self.files = Checkpoints(args, self.run_id, getattr(args, "resume", None))
        self.best = Best(self.files.best, unit, args.patience, meta)
        self.clock = RunClock(trained_seconds(meta) or 0.0)  # counting on from the runs before
        self.report = Reporter(args, unit, meta, self.clock, self.best, smooth_factor)
        self.eval_clock = Clock(EVAL_SECONDS, EVAL_SHARE, at_start=False)
        self.eval_seconds_clock = EverySeconds(getattr(args, "eval_every_seconds", 0))
        self.stop, self.total = None, None  # the StopFlag and the iterations of a loop begun
        self.budget_checked = False  # check_eval_share has looked

    def begin(self, k, total):
        """From here on signals stop the loop; the bar shows iteration k of total (None: open).
        Returns finished(k): a resumed run may be done already."""
        self.stop = StopFlag()
        self.total = total
        self.clock.start()
        self.report.begin(k, total)
        self.eval_clock.start()
        return self.finished(k)

    def finished(self, k):
        """Whether the run is done after k iterations: the total given to begin() reached, or
        --time-budget seconds passed since this run's training began (budget_seconds)."""
        budget = self.args.time_budget
        return (self.total is not None and k >= self.total) or \
            bool(budget and self.budget_seconds() >= budget)

    def budget_seconds(self):
        """This run's seconds as --time-budget counts them (clock.budget_seconds)."""
        return budget_seconds(self.args, self.clock)

    def end_iteration(self, k, validate, save):
        """After iteration k: validate() when due (None: no validation text), then save() when
        due -> whether the run is finished (the iteration limit, --time-budget or --patience).
        A finished run validates and saves once more."""
        finished = self.finished(k)
        if validate is not None and (finished or self.eval_due(k)):
            validate()
            finished = finished or self.out_of_patience  # no new best for --patience validations
        if finished or self.save_due(k):
            save()
        return finished

    def check(self, value, what, k):
        """Stop with the divergence error when value (a loss) is NaN or infinite."""
        if not math.isfinite(value):
            self.report.close(k, f"stopped at iteration {k}: training diverged")
            raise diverged(f"{what} became {value}", k, self.hint)

    def eval_due(self, k):
        """Whether to validate after k iterations: every --eval-every iterations (0: only at the
        end) or --eval-every-seconds of training when given; else by the clock, about every
        EVAL_SECONDS, less often if validating would take over 1/EVAL_SHARE of the time."""
        every, seconds = self.args.eval_every, getattr(self.args, "eval_every_seconds", 0)
        if every is None and not seconds:
            return self.eval_clock.due()
        return self.eval_seconds_clock.due(self.clock.train_seconds()) or \
            bool(every and k % every == 0)

    def save_due(self, k):
        """Whether to save after k iterations: at a signal, or every --save-every."""
        every = self.args.save_every
        return self.stop_requested or bool(every and k % every == 0)

    @property
    def stop_requested(self):
        """A SIGINT or SIGTERM has come: save and stop after this iteration."""
        return self.stop is not None and self.stop.signum is not None

    def validated(self, k, val_loss, save_best, **log_fields):
        """A validation loss after k iterations: printed, logged, kept in the history; a new
        best is saved by save_best(path) (returns True). A non-finite loss stops the run before
        any save. out_of_patience then tells the loop to stop."""
        self.check(val_loss, "the validation loss", k)
        self.report.validated(k, val_loss, **log_fields)
        if not self.budget_checked:
            self.budget_checked = True
            self.check_eval_share(k)
        return self.best.update(k, val_loss, save_best)

    def check_eval_share(self, k):
        """After the first validation of a run with --time-budget and --eval-every: one line
        when validating that often would take over half the budget."""
        every, budget, report = self.args.eval_every, self.args.time_budget, self.report
        if not (budget and every) or k <= report.k_begin:
            return
        per_iter = (self.clock.train_seconds() - self.clock.seconds_before) / (k - report.k_begin)
        share = report.eval_seconds / (report.eval_seconds + every * per_iter)
        if share > MAX_EVAL_SHARE:
            tqdm.write(f"note: one validation takes {report.eval_seconds:.2f} s and {every} "
                       f"iterations {every * per_iter:.2f} s, so --eval-every {every} spends "
                       f"about {share:.0%} of --time-budget {budget:g} validating; a larger "
                       "--eval-every leaves more of it to training")

    @property
    def out_of_patience(self):
        return self.best.out_of_patience

    def meta(self):
        """The run's part of the checkpoint's meta record."""
        seconds = round(self.clock.train_seconds(), 3)
        return {**self.best.meta(), "history": self.report.history.to_meta(seconds),
                "run_id": self.run_id, "train_seconds": seconds}

    def save(self, path, arrays, meta, k):
        """Write a checkpoint (never one with a non-finite array); its time is left out of the
        training clock."""
        if not all(np.isfinite(a).all() for a in arrays.values()):
            self.report.close(k, f"stopped at iteration {k}: training diverged")
            raise diverged("the weights became non-finite", k, self.hint + "; not saved")
        t0 = time.perf_counter()
        try:
            self.files.save(path, arrays, meta)
        except UserError:
            self.report.close(k, f"stopped at iteration {k}: {path} could not be saved")
            raise
        self.report.pause(time.perf_counter() - t0)

    def interrupted(self, k):
        """After a signal's save: the message, and the exit status to return."""
        self.report.close(k, f"interrupted at iteration {k}")
        out = shlex.quote(self.files.out)
        print(f"interrupted at iteration {k}: saved to {self.files.out}; --resume {out} "
              "continues the run", file=sys.stderr)
        return self.stop.exit_status

    def finish(self, k, figures=""):
        """After the last iteration: close the bar and say how the run ended (on the page too,
        early stopping with its reason); returns 0."""
        best = self.best
        ended = (f"stopped early after {k} iterations: {best.stale} validations without a new "
                 f"best (--patience {best.patience})") if best.out_of_patience else \
            f"finished after {k} iterations"
        self.report.close(k, ended)
        where = f"saved to {self.files.out}" if self.files.out in self.files.saved else "nothing saved"
        print(f"done: {k} iterations{figures}; {where}")
        return 0
