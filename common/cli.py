"""
Command-line plumbing shared by the scripts: one-line errors and exit statuses, argument types,
and JSON-lines records.
"""
import argparse
import contextlib
import json
import math
import os
import secrets
import sys


class UserError(Exception):
    """A problem the user can fix; printed as one line 'error: ...', exit status `status`."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def run(main, memory_hint="a smaller --batch-size, --seq-length or --hidden-size"):
    """Call main() and turn UserError, Ctrl-C and a closed pipe into one line and an exit status.
    memory_hint names the options of the calling script that would use less memory. Text that
    cannot be written as it is (a file name's undecodable bytes) is printed escaped."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        status = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        status = e.status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as other command-line tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    except MemoryError:
        print(f"error: out of memory: try {memory_hint}", file=sys.stderr)
        status = 1
    sys.exit(status or 0)


def positive_int(s):
    return _checked(int, s, lambda v: v > 0, "a positive integer")


def nonnegative_int(s):
    return _checked(int, s, lambda v: v >= 0, "an integer >= 0")


def positive_float(s):
    return _checked(float, s, lambda v: 0 < v < float("inf"), "a positive number")


def nonnegative_float(s):
    return _checked(float, s, lambda v: 0 <= v < float("inf"), "a number >= 0")


def fraction(s):
    return _checked(float, s, lambda v: 0 <= v < 1, "a number in [0, 1)")


def int_range(lo, hi):
    """An argparse type: an integer from lo to hi."""
    return lambda s: _checked(int, s, lambda v: lo <= v <= hi, f"an integer from {lo} to {hi}")


def float_range(lo, hi):
    """An argparse type: a number from lo to hi (never NaN)."""
    return lambda s: _checked(float, s, lambda v: lo <= v <= hi, f"a number from {lo:g} to {hi:g}")


def _checked(convert, s, ok, wanted):
    try:
        v = convert(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not {wanted}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{s!r} is not {wanted}")
    return v


def given_options(parser, argv, names):
    """{name: value} for the options among `names` typed on the command line, defaults left
    out (how --resume tells a value the user gave from a default). argparse fills in a default
    only where the namespace has no value yet, so a pre-filled marker survives untyped options."""
    unset = object()
    parsed = parser.parse_args(argv, namespace=argparse.Namespace(**{n: unset for n in names}))
    return {n: getattr(parsed, n) for n in names if getattr(parsed, n) is not unset}


MAX_NATS = math.log(sys.float_info.max)  # exp() of more than this is not a float: ~709.8


def perplexity(nats):
    """exp(nats), the perplexity of a mean loss in nats per token; inf where that overflows (a
    diverging run, or weights near the float's limits)."""
    return math.exp(nats) if nats < MAX_NATS else math.inf


def ppl_text(ppl, places=2):
    """A perplexity for a line of output: `places` decimals, or 4 significant digits from a
    million up (a diverging run's 1e+108 is not printed as 109 digits)."""
    return f"{ppl:.{places}f}" if ppl < 1e6 else f"{ppl:.4g}"


def finite_or_none(x):
    """x, or None where x is a float NaN or infinity (strict JSON has neither)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def json_line(**fields):
    """One strict JSON-lines record, newline included; non-finite numbers become null."""
    return json.dumps({k: finite_or_none(v) for k, v in fields.items()}, ensure_ascii=False,
                      allow_nan=False) + "\n"


def new_seed():
    """A seed for a run given none: from the operating system's entropy, below a million so that
    it is short to type back as --seed."""
    return secrets.randbelow(10 ** 6)
