"""Fetch the Penn Treebank's three standard files (the word-level language-model split of
Mikolov et al., as the book's dataset/ptb.py downloads it) into data/ptb/, each checked by its
SHA-256 before it is written.

Usage, from the repo root:
    python data/download_ptb.py                  # from the book's source into data/ptb/
    python data/download_ptb.py --from ~/ptb     # local copies, checked the same way

Each file is written to a temporary file and renamed into place only once its bytes are the
expected ones, so a failed or interrupted run leaves no partial file; files already present and
correct are kept.

References:
    https://github.com/oreilly-japan/deep-learning-from-scratch-2/blob/master/dataset/ptb.py
    https://github.com/tomsercu/lstm (the files the book fetches)
"""
import argparse
import hashlib
import os
import sys
import urllib.error
from http.client import HTTPException

from download_shakespeare import fetch, write_atomically

BASE_URL = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/"  # the book's source
FILES = {  # name -> SHA-256 of its bytes
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ptb")


def verified(data, name):
    return hashlib.sha256(data).hexdigest() == FILES[name]


def get(name, source, base_url):
    """The bytes of file `name`: read from the folder source, or fetched from base_url.
    Raises OSError (offline, missing) or HTTPException (a cut-off transfer)."""
    if source is not None:
        with open(os.path.join(source, name), "rb") as f:
            return f.read()
    return fetch(base_url + name)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fetch PTB's train, valid and test files and verify "
                                             "them by SHA-256.")
    ap.add_argument("--to", default=DEFAULT_DIR, help="the folder to write (default data/ptb)")
    ap.add_argument("--from", dest="source", default=None,
                    help="a folder holding the three files to copy instead of downloading")
    ap.add_argument("--base-url", default=BASE_URL,
                    help=f"where to download from (default {BASE_URL})")
    args = ap.parse_args(argv)
    where = args.source or args.base_url
    os.makedirs(args.to, exist_ok=True)
    for name in FILES:
        path = os.path.join(args.to, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if verified(f.read(), name):
                    print(f"{path} is already present and verified")
                    continue
        try:
            data = get(name, args.source, args.base_url)
        except urllib.error.HTTPError as e:
            return fail(f"{where} answered {e.code} {e.reason} for {name}: try again later or "
                        "pass --from a folder holding the files")
        except (OSError, HTTPException) as e:
            reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or e
            what = f"cannot read {name} in {args.source}" if args.source else \
                f"cannot download {name} (no network? {reason})"
            return fail(f"{what}: pass --from a folder holding the three files")
        if not verified(data, name):
            got = hashlib.sha256(data).hexdigest()
            return fail(f"{name} from {where} is not the standard file ({len(data):,} bytes, "
                        f"SHA-256 {got[:16]}..., expected {FILES[name][:16]}...): nothing written")
        try:
            write_atomically(path, data)
        except OSError as e:
            return fail(f"cannot write {path} ({e.strerror or e}): pass another --to")
        print(f"wrote {path}: {len(data):,} bytes, SHA-256 checked")
    return 0


def fail(message):
    """One line on stderr; the exit status 1."""
    print("download_ptb: " + message, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
