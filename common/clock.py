"""
A run's clocks: when a recurring thing (a printed sample, a validation, the live page) is due,
when the next multiple of N training seconds is passed, how many seconds a run has trained and
how many it has left.
"""
import time


class Clock:
    """When something recurring is due: at the first ask if at_start, then once `seconds` have
    passed since the last one ended, or `share` times its duration if that is longer, so that it
    takes at most about 1/share of the run's time. Its duration is measured from the ask that
    said yes to the next ask (the thing and one iteration), or told by done(spent)."""

    def __init__(self, seconds, share, at_start):
        self.seconds, self.share, self.at_start = seconds, share, at_start
        self.start()

    def start(self):
        """Count from now (a loop begins)."""
        self.t_last = None if self.at_start else time.perf_counter()
        self.interval, self.busy = self.seconds, False  # busy: the last ask said yes

    def due(self):
        now = time.perf_counter()
        if self.busy:  # the interval starts after the thing, and is longer after a slow one
            self.interval = max(self.seconds, self.share * (now - self.t_last))
            self.t_last, self.busy = now, False
        if self.t_last is None or now - self.t_last >= self.interval:
            self.t_last, self.busy = now, True
            return True
        return False

    def done(self, spent):
        """The thing just ended, after `spent` seconds measured by the caller."""
        self.interval = max(self.seconds, self.share * spent)
        self.t_last, self.busy = time.perf_counter(), False

    def due_now(self):
        """Make the next ask say yes."""
        self.t_last, self.busy = None, False


class EverySeconds:
    """--eval-every-seconds: due(seconds) is True once each time the training seconds pass the
    next multiple of `every` (never when every is 0)."""

    def __init__(self, every):
        self.every, self.next = every, every

    def due(self, seconds):
        if not self.every or seconds < self.next:
            return False
        self.next = (seconds // self.every + 1) * self.every
        return True


class RunClock:
    """A run's seconds. train_seconds(): seconds of training, this run's and those of the runs
    it continues (seconds_before), validation, saving and --page left out (paused).
    wall_seconds(): wall seconds since this run's training began, everything included."""

    def __init__(self, seconds_before=0.0):
        self.seconds_before = seconds_before
        self.start()

    def start(self):
        """This run's training begins now."""
        self.t_begin, self.paused = time.perf_counter(), 0.0

    def pause(self, seconds):
        """Leave `seconds` just spent (a validation, a save, the page) out of training."""
        self.paused += seconds

    def train_seconds(self):
        return self.seconds_before + self.wall_seconds() - self.paused

    def wall_seconds(self):
        return time.perf_counter() - self.t_begin


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
