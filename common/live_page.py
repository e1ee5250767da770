"""
A training run's live page (--page): when the trainer rewrites it, how (atomically, never fatal),
and the data it shows; the page itself is pages/live.html, live.js and live.css.
"""
import os
import sys
import time

from tqdm import tqdm

from common.checkpoint import check_output_file, check_replaceable, write_atomic
from common.cli import UserError, finite_or_none
from common.clock import Clock, time_left
from common.history import history_rows, with_losses
from common.page import Page

# --page: written at the first validation, then about every PAGE_SECONDS, or less often so that
# writing it takes at most 1/PAGE_SHARE of the time; it reloads every RELOAD_SECONDS while the
# run lives
PAGE_SECONDS = 10.0
PAGE_SHARE = 50
RELOAD_SECONDS = 3

LIVE = Page("live", "min-char-rnn: a training run")


class LivePage:
    """--page: the run's page (LIVE), its folder made now if missing. due():
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
            html = LIVE.render(data()).encode("utf-8")
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


def live_data(report, k, ended=None):
    """What the page shows after k iterations of the run whose Reporter is `report`:
    live, or the final page of a run that `ended` (how, e.g. "finished after 500 iterations")."""
    records, best = report.history.records, report.best
    return {"live": ended is None, "status": ended or "running", "title": report.args.out,
            "written": time.strftime("%H:%M:%S"), "reload_seconds": RELOAD_SECONDS,
            "unit": report.unit, "iter": k, "total": report.total,
            "speed": finite_or_none(report.progress_bar.rate),
            "wall_seconds": report.clock.wall_seconds(),
            "train_seconds": report.clock.train_seconds(), "page_seconds": report.page.seconds,
            "left": None if ended else time_left(report.args, report.clock, k, report.k_begin,
                                                 report.total),
            "best": None if best is None or best.loss is None else
            {"loss": best.loss, "iter": best.iter, "path": best.path},
            "options": dict(vars(report.args)),
            "history": history_rows(records),
            "smooth_factor": report.history.smooth_factor,
            "samples": with_losses(report.page_samples, records)}
