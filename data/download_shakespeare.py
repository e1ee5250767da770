"""Download tiny Shakespeare (1.1 MB, from Karpathy's char-rnn repo) and check its SHA-256.

Usage, from the repo root:
    python data/download_shakespeare.py               # writes data/tinyshakespeare.txt
    python data/download_shakespeare.py some/path.txt

The file is checked (size and SHA-256) before anything is written, then written to a temporary
file and renamed into place, so a failed run never leaves a partial file behind.

References:
    https://github.com/karpathy/char-rnn/tree/master/data/tinyshakespeare
"""
import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from http.client import HTTPException

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
EXPECTED_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
EXPECTED_SIZE = 1_115_394  # bytes
TIMEOUT = 20  # seconds, for the connection and for each read
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tinyshakespeare.txt")


def fetch(url):
    """The bytes at url. Raises OSError (urllib.error.URLError is one) when offline."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()


def is_expected(data):
    """True if data has the expected size and SHA-256."""
    return len(data) == EXPECTED_SIZE and hashlib.sha256(data).hexdigest() == EXPECTED_SHA256


def write_atomically(path, data):
    """Write bytes to path through a temporary file in the same folder, then rename it."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise


def fail(message):
    """Print one line to stderr and return the exit status 1."""
    print("download_shakespeare: " + message, file=sys.stderr)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="Download tiny Shakespeare and verify it.")
    parser.add_argument("path", nargs="?", type=str, default=DEFAULT_PATH,
                        help="where to write the file (default: data/tinyshakespeare.txt)")
    args = parser.parse_args(argv)
    by_hand = f"download {URL} by hand and place it at {args.path}"

    # A good copy already in place: nothing to do.
    if os.path.isfile(args.path):
        with open(args.path, "rb") as f:
            if is_expected(f.read()):
                print(f"{args.path} is already present and verified")
                return 0

    try:
        data = fetch(URL)
    except urllib.error.HTTPError as e:
        return fail(f"the server answered {e.code} {e.reason}: {by_hand}")
    except (OSError, HTTPException) as e:
        # URLError, timeouts and refused connections are all OSError; a cut-off transfer is an
        # HTTPException (IncompleteRead).
        reason = getattr(e, "reason", None) or e
        return fail(f"no network ({reason}): {by_hand}")

    if not is_expected(data):
        got_sha256 = hashlib.sha256(data).hexdigest()
        return fail(f"wrong file: got {len(data):,} bytes with SHA-256 {got_sha256[:16]}..., "
                    f"expected {EXPECTED_SIZE:,} bytes with {EXPECTED_SHA256[:16]}...: "
                    f"try again, or {by_hand}")

    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.path)), exist_ok=True)
        write_atomically(args.path, data)
    except OSError as e:
        return fail(f"cannot write {args.path} ({e.strerror or e}): pick another path")
    print(f"wrote {args.path}: {len(data):,} bytes, sha256 {EXPECTED_SHA256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
