"""Tests for README.md and every page under docs/: each page's command blocks run, in order, on a
fresh copy of the repository's tracked files, the way a reader meets them. Runs are shortened only
through the documented flags in SHORTER; what a reader runs but a test cannot (making a venv,
installing, the whole suite, the network, benchmarks) is listed in NOT_RUN with its reason.

What runs: fenced blocks marked sh, bash, shell or console, one command (backslash-continued lines
joined) at a time from the copy's top folder, each needing exit status 0 and no traceback; fenced
python blocks, in one interpreter per page (a later block may use an earlier one's names);
unmarked fenced or indented blocks whose first line starts with `python`. Output blocks (text, or
anything else) are only read. `python`, `python3` and `pip` in the commands are the interpreter
that runs this test, with its environment: inside a venv, that venv.
"""
import glob
import importlib.metadata
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import EXTRAS_INSTALL, ROOT, TORCH_INSTALL

PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in
                               glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
# The documented flags that bound a run's length, and the value each is lowered to (never raised)
SHORTER = {"--max-iters": 10, "--max-epochs": 1, "--time-budget": 3, "--budget-seconds": 5}
# A new training run a page leaves to a drawn seed gets this one, so that the test runs the same
# commands the same way every time (a resumed run keeps the seed stored with it)
PAGE_SEED = 0
TRAINERS = re.compile(r"\bpython3? (\S*/)?(min_char_rnn|rnnlm)\.py\b")
# (pattern, reason): the parts of a command (split at &&) that are not run. The reader's setup is
# stood in for by the test's own interpreter and environment. A `pip install` is not run either:
# when what it names is installed, the command goes on; when not, the rest of it is left out.
NOT_RUN = [
    (r"^python3? -m venv\b", "the test's interpreter stands in for the reader's venv"),
    (r"^(\.|source) \S*activate$", "the test's interpreter stands in for the reader's venv"),
    (r"^(python3? -m )?pytest( -q)?$", "the whole suite, which runs this test"),
    (r"^python3? bench\.py(?! (quality )?--help$)", "a benchmark of minutes; timing is no test"),
    (r"download_shakespeare\.py|tinyshakespeare\.txt", "needs the network for tiny Shakespeare"),
    (r"download_ptb\.py|data/ptb/", "needs the Penn Treebank (the network, or a copy) and runs "
                                     "for minutes: docs/ptb.md gives each one's time"),
]
# Lines of a page's output blocks that no shortening changes: each must be printed by a command
# of that page (the data-size line and T ln V at iteration 0)
CHECKED_OUTPUT = ("data has ", "iter 0, loss: ")
# The gist's smoothed loss at iteration 0 is 0.999 T ln V + 0.001 loss_0, and at the gist's 0.01
# initialisation loss_0 is within about 0.01 of T ln V whatever the (drawn) seed: the printed
# figure moves by about 1e-5, so a shown figure within 1e-4 of the printed one is the same line
FIRST_LOSS_TOL = 1e-4


def same_first_loss(line, printed):
    """Whether `line` is the gist's iteration-0 line ("iter 0, loss: 124.245336") and a printed
    one gives the same figure to FIRST_LOSS_TOL."""
    shown = re.fullmatch(r"iter 0, loss: ([0-9.]+)", line)
    got = [re.fullmatch(r"iter 0, loss: ([0-9.]+)", x) for x in printed]
    return bool(shown) and any(g and abs(float(g.group(1)) - float(shown.group(1))) <= FIRST_LOSS_TOL
                               for g in got)
MAX_README_LINES = 200  # a newcomer's five minutes
# what pages for readers never say: tracker numbers, development history, machine stories, test
# markers (\s keeps this file itself clear of the phrases)
NOT_FOR_READERS = re.compile(r"issue ?[0-9]|idle\smachine|busy\s(one|machine)|previous\smachine|"
                             r"this\ssession|hasw[e]ll|skipped\sby\sthe\sREADME\stest", re.I)
COMMAND_TIMEOUT = 180  # seconds for one shortened command before the test fails (not a timing test)


def page_blocks(text):
    """A page's code blocks in order -> [(language, [lines])]; language "" for a fence without
    one, "indented" for a 4-space block."""
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


def runnable(language, lines):
    """'sh', 'python' or None (only read) for a block."""
    if language in SHELL_LANGUAGES:
        return "sh"
    if language == "python":
        return "python"
    first = next((x for x in lines if x.strip()), "")
    return "sh" if language in ("", "indented") and re.match(r"python3? ", first) else None


PIP_VALUE_OPTIONS = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url",
                     "--extra-index-url", "-f", "--find-links"}


def requirement_names(path):
    """The distribution names a requirements file lists, following its -r lines."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith(("-r ", "--requirement ")):
                names += requirement_names(os.path.join(os.path.dirname(path), line.split()[1]))
            elif line and not line.startswith("-"):
                names.append(re.match(r"[A-Za-z0-9._-]+", line).group(0))
    return names


def pip_install_names(part, folder):
    """The distributions a `pip install ...` command names (its requirement files read from
    folder), or None for any other command."""
    m = re.match(r"(pip3?|python3? -m pip) install\s+(.*)$", part)
    if not m:
        return None
    names, option = [], None
    for word in shlex.split(m.group(2)):
        if option in ("-r", "--requirement"):
            names += requirement_names(os.path.join(folder, word))
        elif option is None and not word.startswith("-"):
            names.append(re.match(r"[A-Za-z0-9._-]+", word).group(0))
        option = word if word in PIP_VALUE_OPTIONS else None
    return names


def installed(name):
    """Whether the distribution name is installed for the interpreter running the tests."""
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def to_run(command, folder=ROOT):
    """The parts of command (split at &&, a trailing comment dropped) that the test runs, joined
    again with &&, or "" when none is; and the reasons for the parts left out."""
    kept, reasons = [], []
    for part in re.split(r"\s+&&\s+", command):
        part = re.sub(r"\s+#.*$", "", part).strip()
        names = pip_install_names(part, folder)
        if names is not None:
            missing = [name for name in names if not installed(name)]
            if missing:  # what follows needs them: left to a reader who installs them
                reasons.append("needs " + ", ".join(missing))
                break
            reasons.append("installed already")
            continue
        reason = next((why for pattern, why in NOT_RUN if re.search(pattern, part)), None)
        if reason:
            reasons.append(reason)
        else:
            kept.append(part)
    return " && ".join(kept), reasons


def shortened(command):
    """command with each SHORTER flag's value lowered to the value there."""
    def lower(match):
        flag, value = match.group(1), match.group(2)
        return f"{flag} {min(float(value), SHORTER[flag]):g}"
    return re.sub(r"(" + "|".join(map(re.escape, SHORTER)) + r")[ =]([0-9.]+)", lower, command)


def seeded(command):
    """command with `--seed PAGE_SEED` after each trainer of a new run (no --resume, no --help)
    that gives no --seed of its own."""
    parts = re.split(r"(\s+&&\s+|\s*\|\s*|\s*;\s*)", command)
    for i, part in enumerate(parts):
        if TRAINERS.search(part) and not re.search(r"\s--(seed|resume|help)\b|\s-h\b", part):
            parts[i] = TRAINERS.sub(lambda m: f"{m.group(0)} --seed {PAGE_SEED}", part, count=1)
    return "".join(parts)


def fresh_copy(dest):
    """The repository's tracked files (as they are in the working tree) copied into dest; without
    git, every file but out/, caches and .git."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        names = [os.path.relpath(os.path.join(d, f), ROOT) for d, subdirs, files in os.walk(ROOT)
                 for f in files if not re.search(r"(^|/)(\.git|\.venv|out|__pycache__|"
                                                 r"\.pytest_cache)/", os.path.relpath(d, ROOT) + "/")]
    for name in filter(None, names):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))


def interpreter_commands(bin_dir):
    """Small scripts python, python3, pip and pip3 in bin_dir that run this test's interpreter by
    its own path: a symlink to it would lose a venv (Python finds pyvenv.cfg beside the path it
    was started by)."""
    python = shlex.quote(sys.executable)
    for name, line in [("python", f'exec {python} "$@"'), ("python3", f'exec {python} "$@"'),
                       ("pip", f'exec {python} -m pip "$@"'), ("pip3", f'exec {python} -m pip "$@"')]:
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(0o755)


class PythonBlocks:
    """One interpreter that runs a page's python blocks one after another in one namespace, in
    the copy's folder; each block's printed output comes back with its outcome."""

    DRIVER = (
        "import json, sys, traceback\n"
        "namespace = {'__name__': '__main__'}\n"
        "for line in sys.stdin:\n"
        "    try:\n"
        "        exec(compile(json.loads(line), 'page', 'exec'), namespace)\n"
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
    """The top-level modules a page's python blocks import."""
    names = set()
    for language, lines in blocks:
        if runnable(language, lines) == "python":
            for line in lines:
                m = re.match(r"\s*(?:from|import)\s+([\w]+)", line)
                if m:
                    names.add(m.group(1))
    return names


def missing_modules(names, cwd, env):
    """Those of names that neither Python nor the repository copy in cwd provides."""
    return [name for name in sorted(names)
            if subprocess.run([sys.executable, "-c", f"import {name}"], cwd=cwd, env=env,
                              capture_output=True).returncode]


def read_page(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def test_parser_finds_commands_leaves_out_setup_and_shortens():
    text = ("Intro\n\n```sh\npython3 -m venv .venv && . .venv/bin/activate && python a.py "
            "--max-iters 3000 \\\n    --x 1\n# a comment\npip install -r requirements-test.txt "
            "&& python -m pytest -q\n```\n\n```text\npython3 looks like a command but is output\n"
            "```\n\n    python b.py --max-epochs 20\n")
    blocks = page_blocks(text)
    assert [language for language, _ in blocks] == ["sh", "text", "indented"]
    assert [runnable(*b) for b in blocks] == ["sh", None, "sh"]
    first, second = commands(blocks[0][1])
    assert first.endswith("python a.py --max-iters 3000      --x 1")
    kept, reasons = to_run(first)
    assert kept == "python a.py --max-iters 3000      --x 1" and len(reasons) == 2
    assert to_run(second)[0] == ""
    assert to_run("pip install -r requirements.txt && python x.py")[0] == "python x.py"
    assert to_run("pip install no-such-package-here && python x.py") == \
        ("", ["needs no-such-package-here"])
    assert pip_install_names("pip install torch --index-url https://x/cpu", ROOT) == ["torch"]
    assert pip_install_names("pip install -r requirements-test.txt", ROOT)[:2] == \
        ["numpy", "tqdm"]  # -r requirements.txt first
    assert to_run("python -m pytest -q tests/test_x.py -k grad")[0]  # a selection runs
    assert to_run("python bench.py --help") == ("python bench.py --help", [])
    assert to_run("python bench.py --quick")[0] == ""
    assert shortened(kept).startswith("python a.py --max-iters 10 ")
    assert shortened("python b.py --max-epochs 20 --max-iters 5") == \
        "python b.py --max-epochs 1 --max-iters 5"
    assert seeded("cd x && python min_char_rnn.py a.txt --max-iters 10 | head -3") == \
        "cd x && python min_char_rnn.py --seed 0 a.txt --max-iters 10 | head -3"
    for kept in ("python3 rnnlm.py a.txt --seed 4", "python min_char_rnn.py --resume m.npz",
                 "python rnnlm.py --help", "python sample.py m.npz"):
        assert seeded(kept) == kept


def test_pages_speak_to_readers():
    assert len(read_page("README.md").splitlines()) <= MAX_README_LINES
    for page in PAGES:
        for number, line in enumerate(read_page(page).splitlines(), 1):
            assert not NOT_FOR_READERS.search(line), f"{page}:{number}: {line}"


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.slow
def test_every_command_of_a_page_runs_on_a_fresh_copy(page, tmp_path):
    blocks = page_blocks(read_page(page))
    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    fresh_copy(repo)
    bin_dir.mkdir()
    interpreter_commands(bin_dir)
    # pip must find everything installed: no index, no version check over the network. One BLAS
    # thread: the same work, but the suite shares its cores, where threads waiting for a busy core
    # made the per-step products of validation and sampling up to 6x slower (measured).
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    missing = missing_modules(python_imports(blocks), repo, env)
    if missing:
        install = [line for line, wanted in [(EXTRAS_INSTALL, set(missing) - {"torch"}),
                                             (TORCH_INSTALL, {"torch"} & set(missing))] if wanted]
        pytest.skip(f"{page}'s examples import {', '.join(missing)}: {'; '.join(install)}")
    python, printed, ran = None, [], 0
    try:
        for language, lines in blocks:
            kind = runnable(language, lines)
            if kind == "python":
                python = python or PythonBlocks(repo, env)
                outcome, output = python.run("\n".join(lines))
                assert outcome == "ok", f"{page}: a python block failed:\n{output}\n{outcome}"
                ran += 1
            elif kind == "sh":
                for command in commands(lines):
                    command = seeded(shortened(to_run(command, repo)[0]))
                    if not command:
                        continue
                    r = subprocess.run(["bash", "-c", command], cwd=repo, env=env,
                                       capture_output=True, text=True, encoding="utf-8",
                                       errors="replace", timeout=COMMAND_TIMEOUT)
                    assert r.returncode == 0 and "Traceback" not in r.stderr, \
                        f"{page}: command failed (status {r.returncode}): {command}\n" \
                        f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
                    printed += r.stdout.splitlines()
                    ran += 1
    finally:
        if python is not None:
            python.close()
    assert ran or not any(runnable(*b) for b in blocks), f"{page}: nothing ran"
    shown = [x for language, lines in blocks if runnable(language, lines) is None
             for x in lines if x.startswith(CHECKED_OUTPUT)]
    for line in shown:
        assert line in printed or same_first_loss(line, printed), \
            f"{page} shows {line!r}; its commands printed:\n" + "\n".join(printed[:40])
