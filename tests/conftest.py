"""pytest setup: make the scripts in the repo root importable however pytest is started
(`python -m pytest` adds the current folder to sys.path, a bare `pytest` does not)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
