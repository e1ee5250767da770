"""Tests for README.md: every command block runs, in order, on a fresh copy of the repository's
tracked files, the way a new user meets them (issue 14). Runs are shortened only through the
documented flags in SHORTER; a command is left out only with the visible marker SKIP_MARKER and a
reason on its line (or alone on a line of its block, for the whole block).

What runs: fenced blocks marked sh, bash, shell or console, one command (backslash-continued
lines joined) at a time from the copy's top folder, each needing exit status 0 and no traceback;
fenced python blocks, in one interpreter shared by all of them (a later block may use an earlier
one's names); unmarked fenced or indented blocks whose first line starts with `python3 `.
Output blocks (text, or anything else) are only read.
"""
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import ROOT

README = os.path.join(ROOT, "README.md")
SKIP_MARKER = "[skipped by the README test:"  # followed by the reason and "]"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
# The documented flags that bound a run's length, and the value each is lowered to (never raised)
SHORTER = {"--max-iters": 10, "--max-epochs": 1, "--time-budget": 5, "--budget-seconds": 5}
COMMAND_TIMEOUT = 180  # seconds for one shortened command before the test fails (not a timing test)
MIN_COMMANDS = 10  # the README has more runnable commands than this: a parser that finds fewer broke


def readme_blocks(text):
    """The README's code blocks in order -> [(language, [lines])]; language "" for a fence
    without one, "indented" for a 4-space block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(```+|~~~+)\s*([\w+-]*)", line)
        if fence:
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].startswith(fence.group(1))), len(lines))
            blocks.append((fence.group(2).lower(), lines[i + 1:end]))
            i = end + 1
        elif line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append(("indented", [x[4:] for x in lines[i:end]]))
            i = end
        else:
            i += 1
    return blocks


def commands(lines):
    """Shell lines -> logical commands (continuations joined), comment-only lines dropped."""
    out, pending = [], ""
    for line in lines:
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            out.append(pending.strip())
        pending = ""
    return out


def skip_reason(text):
    """The reason given with SKIP_MARKER in text, or None when there is no marker; a marker
    without a reason fails the test."""
    if SKIP_MARKER not in text:
        return None
    reason = text.split(SKIP_MARKER, 1)[1].split("]", 1)[0].strip()
    assert reason, f"a README skip marker needs a reason: {text!r}"
    return reason


def runnable(language, lines):
    """'sh', 'python' or None (only read) for a block."""
    if language in SHELL_LANGUAGES:
        return "sh"
    if language == "python":
        return "python"
    first = next((x for x in lines if x.strip()), "")
    return "sh" if language in ("", "indented") and first.startswith("python3 ") else None


def shortened(command):
    """command with each SHORTER flag's value lowered to the value there."""
    def lower(match):
        flag, value = match.group(1), match.group(2)
        return f"{flag} {min(float(value), SHORTER[flag]):g}"
    return re.sub(r"(" + "|".join(map(re.escape, SHORTER)) + r")[ =]([0-9.]+)", lower, command)


def fresh_copy(dest):
    """The repository's tracked files (as they are in the working tree) copied into dest; without
    git, every file but out/, caches and .git."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        names = [os.path.relpath(os.path.join(d, f), ROOT) for d, subdirs, files in os.walk(ROOT)
                 for f in files if not re.search(r"(^|/)(\.git|out|__pycache__|\.pytest_cache)/",
                                                 os.path.relpath(d, ROOT) + "/")]
    for name in filter(None, names):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))


class PythonBlocks:
    """One interpreter that runs the README's python blocks one after another in one namespace,
    in the copy's folder; each block's printed output comes back with its outcome."""

    DRIVER = (
        "import json, sys, traceback\n"
        "namespace = {'__name__': '__main__'}\n"
        "for line in sys.stdin:\n"
        "    try:\n"
        "        exec(compile(json.loads(line), 'README.md', 'exec'), namespace)\n"
        "        outcome = 'ok'\n"
        "    except BaseException:\n"
        "        outcome = json.dumps(traceback.format_exc())\n"
        "    print('\\n@@block ' + outcome, flush=True)\n")

    def __init__(self, cwd, env):
        self.proc = subprocess.Popen([sys.executable, "-c", self.DRIVER], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, encoding="utf-8")
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, code):
        """Run one block -> (outcome 'ok' or a traceback, its output)."""
        self.proc.stdin.write(json.dumps(code) + "\n")
        self.proc.stdin.flush()
        output = []
        while True:
            line = self.lines.get(timeout=COMMAND_TIMEOUT)
            if line is None:
                return "the interpreter ended", "".join(output)
            if line.startswith("@@block "):
                outcome = line[len("@@block "):].strip()
                return ("ok" if outcome == "ok" else json.loads(outcome)), "".join(output)
            output.append(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=COMMAND_TIMEOUT)


def python_imports(blocks):
    """The top-level modules the README's python blocks import."""
    names = set()
    for language, lines in blocks:
        if runnable(language, lines) == "python":
            for line in lines:
                m = re.match(r"\s*(?:from|import)\s+([\w]+)", line)
                if m:
                    names.add(m.group(1))
    return names


def missing_modules(names, cwd):
    """Those of names that neither Python nor the repository copy in cwd provides."""
    missing = []
    for name in sorted(names):
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=cwd, capture_output=True)
        if r.returncode:
            missing.append(name)
    return missing


def test_readme_parser_finds_commands_markers_and_shortens():
    text = ("Intro\n\n```sh\npython3 a.py --max-iters 3000 \\\n    --x 1\n# a comment\n"
            f"python3 -m pytest -q  # {SKIP_MARKER} it is the suite]\n```\n\n```text\n"
            "python3 looks like a command but is output\n```\n\n    python3 b.py --max-epochs 20\n")
    blocks = readme_blocks(text)
    assert [language for language, _ in blocks] == ["sh", "text", "indented"]
    assert [runnable(*b) for b in blocks] == ["sh", None, "sh"]
    first = commands(blocks[0][1])
    assert first[0] == "python3 a.py --max-iters 3000      --x 1" and len(first) == 2
    assert skip_reason(first[0]) is None and skip_reason(first[1]) == "it is the suite"
    assert shortened(first[0]).startswith("python3 a.py --max-iters 10 ")
    assert shortened("python3 b.py --max-epochs 20 --max-iters 5") == \
        "python3 b.py --max-epochs 1 --max-iters 5"
    with pytest.raises(AssertionError):
        skip_reason(f"python3 x.py  # {SKIP_MARKER} ]")


def test_every_readme_command_runs_on_a_fresh_copy(tmp_path):
    with open(README, encoding="utf-8") as f:
        blocks = readme_blocks(f.read())
    repo = tmp_path / "repo"
    fresh_copy(repo)
    missing = missing_modules(python_imports(blocks), repo)
    if missing:
        pytest.skip("the README's examples import " + ", ".join(missing) + ", not installed "
                    "(pip install -r requirements-export.txt -r requirements-test.txt)")
    bin_dir = tmp_path / "bin"  # `python3` in the commands is the interpreter running the tests
    bin_dir.mkdir()
    for name in ("python3", "python"):
        os.symlink(sys.executable, bin_dir / name)
    # pip must find everything installed: no index, no version check over the network. One BLAS
    # thread: the same work, but the suite shares 2 cores, where threads waiting for a busy core
    # made the per-step products of validation and sampling up to 6x slower (measured here).
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    python, ran = None, []  # [(command, CompletedProcess)], with "python block" for those
    try:
        for language, lines in blocks:
            kind = runnable(language, lines)
            if kind is None or any(skip_reason(x) and not x.split("#")[0].strip()
                                   for x in lines):  # a marker alone on a line: the whole block
                continue
            if kind == "python":
                python = python or PythonBlocks(repo, env)
                outcome, output = python.run("\n".join(lines))
                assert outcome == "ok", f"README python block failed:\n{output}\n{outcome}"
                ran.append(("python block", None))
                continue
            for command in commands(lines):
                if skip_reason(command):
                    continue
                r = subprocess.run(["bash", "-c", shortened(command)], cwd=repo, env=env,
                                   capture_output=True, text=True, encoding="utf-8",
                                   errors="replace", timeout=COMMAND_TIMEOUT)
                assert r.returncode == 0 and "Traceback" not in r.stderr, \
                    f"README command failed (status {r.returncode}): {shortened(command)}\n" \
                    f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
                ran.append((command, r))
    finally:
        if python is not None:
            python.close()
    assert len(ran) >= MIN_COMMANDS, ran
    # The first training command prints the README's data-size line and iteration-0 loss,
    # which no shortening changes.
    with open(README, encoding="utf-8") as f:
        text = f.read()
    shown = [x for x in text.splitlines() if x.startswith(("data has ", "iter 0, loss: "))]
    assert len(shown) >= 2, "the README shows the first run's data line and iteration-0 loss"
    first = next(r for command, r in ran if "min_char_rnn.py" in command).stdout
    for line in shown[:2]:
        assert line in first.splitlines(), f"the README shows {line!r}; the run printed:\n{first}"
