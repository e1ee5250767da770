"""Tests for visualize.py: the --json figures against a forward pass written out here from the
stored arrays, sample.py's recorded scores and recomputation; bad input; the page in headless
Chromium (Debian's chromium and chromium-driver, through Selenium)."""
import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import visualize
from common.history import stored_records, stored_samples
from common.vocabulary import Vocabulary
from common.cli import run
from conftest import (GOOD_TEXT, browser_errors, options_as_read, page_payload, page_ready, run_ok,
                      write_text)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "v1")
TEXT = os.path.join(FIXTURES, "text.txt")
KINDS = ("gist", "rnn_char", "lstm2_char_dropout", "gru_word_tied", "lstm_word")

# The model's trace runs the same float64 arithmetic in another order (fused gate matmuls, sigma as
# (1 + tanh(a/2))/2 in places): measured max difference 1.8e-14 (2-layer LSTM, 300 steps); 1e-10
# leaves room for other BLAS builds. Probabilities and top-k probabilities use the same bound.
STATE_TOL_F64 = 1e-10
# gru_word_tied stores float32 weights. common.interface traces in float64 (measured 3.3e-16);
# a trace through the float32 layers (eps 1.2e-7) measured 1.6e-7 on states and 2.6e-8 on
# probabilities over 300 steps, which this bound also admits.
STATE_TOL_F32 = 1e-5
# log p = log(prob) amplifies an absolute error in p by 1/p: measured 8.9e-16 on the same 300
# steps (3.6e-7 through float32 layers); 100 x the state bound covers p down to about 0.01.
LOGPROB_TOL_FACTOR = 100
# sample.py's recorded log_prob (expected.json) against the sum of logprob over the whole text
# (5,609 characters): measured relative 1.5e-16 (float64) and 6.4e-9 (float32: sample.py's
# float32 softmax against the float64 trace here)
SCORE_RTOL_F64 = 1e-9
SCORE_RTOL_F32 = 1e-5
# np.corrcoef against visualize's own Pearson formula: both float64 over <= 2,000 values
R_TOL = 1e-9
BROWSER_WAIT = 10  # seconds a person would wait for the page to show
# visualize's peak memory (tracemalloc) for T = 1,000 tokens of a 12,000-character vocabulary
# must stay below this share of one (T, V) float64 array: measured 0.12 (T x (K + units) and
# 2 MB chunks); holding the (T, V) probabilities and their copies takes 3.0.
PEAK_SHARE_OF_TV = 0.25


def random_gist(path, chars, H, seed, **set_arrays):
    """A gist checkpoint written here with np.savez: standard normal weights (then set_arrays,
    name -> array), meta as min_char_rnn.py saves it."""
    rng = np.random.default_rng(seed)
    V = len(chars)
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    arrays = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    arrays.update(set_arrays)
    options = {"hidden_size": H, "seq_length": 5, "learning_rate": 0.1, "batch_size": 1,
               "dtype": "float64", "val_fraction": 0.0, "seed": 0, "encoding": "utf-8"}
    meta = {"format_version": 2, "kind": "min_char_rnn", "vocab": chars, "char_counts": [1] * V,
            "options": options, "n": 0, "p": 0, "smooth_loss": 0.0, "best_val_loss": None,
            "rng_state": np.random.default_rng(0).bit_generator.state}
    write_checkpoint(path, arrays, meta)
    return path


def run_main(argv):
    """visualize.main as the script runs it -> exit status (common.run turns errors into lines)."""
    with pytest.raises(SystemExit) as e:
        run(lambda: visualize.main(argv))
    return e.value.code


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_checkpoint(path, arrays, meta):
    """A checkpoint file as the trainers write it: the arrays plus a JSON meta string."""
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def read_raw(name):
    """The stored arrays and meta of a fixture, read here without the code under test."""
    with np.load(os.path.join(FIXTURES, name + ".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def raw_tokens(meta):
    return meta["vocab"].split(" ") if meta.get("level") == "word" else list(meta["vocab"])


# ----------------------------------------------------------------------------- a reference

def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference(name, ids):
    """Forward pass of a fixture from its raw arrays, in float64 -> (states dict, (T, V) probs).
    The gist: h_t = tanh(Wxh[:, x_t] + Whh h_{t-1} + bh), column vectors. The book's layers (row
    vectors): x_t = embed_W[id]; LSTM columns [f | g | i | o], GRU columns [z | r | h~]."""
    A, meta = read_raw(name)
    A = {k: v.astype(np.float64) for k, v in A.items()}
    T = len(ids)
    states = {}
    if meta["kind"] == "min_char_rnn":
        H = A["Whh"].shape[0]
        h = np.zeros(H)
        hs = np.zeros((T, H))
        for t in range(T):
            h = np.tanh(A["Wxh"][:, ids[t]] + A["Whh"] @ h + A["bh"][:, 0])
            hs[t] = h
        states["0/h"] = hs
        scores = hs @ A["Why"].T + A["by"][:, 0]  # (T, V)
    else:
        o = meta["options"]
        cell, L, H = o["cell"], o["num_layers"], o["hidden_size"]
        xs = A["embed_W"][ids]  # (T, D)
        for l in range(L):
            p = cell if L == 1 else f"{cell}{l + 1}"
            Wx, Wh, b = A[p + "_Wx"], A[p + "_Wh"], A[p + "_b"]
            h, c = np.zeros(H), np.zeros(H)
            rec = {n: np.zeros((T, H)) for n in ("h", "c", "f", "g", "i", "o", "z", "r", "cand")}
            for t in range(T):
                if cell == "rnn":
                    h = np.tanh(xs[t] @ Wx + h @ Wh + b)
                elif cell == "lstm":
                    a = xs[t] @ Wx + h @ Wh + b
                    f, g = sig(a[:H]), np.tanh(a[H:2 * H])
                    i, og = sig(a[2 * H:3 * H]), sig(a[3 * H:])
                    c = f * c + g * i
                    h = og * np.tanh(c)
                    for n, v in (("c", c), ("f", f), ("g", g), ("i", i), ("o", og)):
                        rec[n][t] = v
                else:  # gru: r multiplies h_{t-1} before the candidate's matmul
                    z = sig(xs[t] @ Wx[:, :H] + h @ Wh[:, :H] + b[:H])
                    r = sig(xs[t] @ Wx[:, H:2 * H] + h @ Wh[:, H:2 * H] + b[H:2 * H])
                    cand = np.tanh(xs[t] @ Wx[:, 2 * H:] + (r * h) @ Wh[:, 2 * H:] + b[2 * H:])
                    h = (1 - z) * h + z * cand
                    for n, v in (("z", z), ("r", r), ("cand", cand)):
                        rec[n][t] = v
                rec["h"][t] = h
            names = {"rnn": ["h"], "lstm": ["h", "c", "f", "g", "i", "o"],
                     "gru": ["h", "z", "r", "cand"]}[cell]
            states.update({f"{l}/{n}": rec[n] for n in names})
            xs = rec["h"]
        W = A["embed_W"].T if o["tie_weights"] else A["affine_W"]  # (H, V)
        scores = xs @ W + A["affine_b"]
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return states, e / e.sum(axis=1, keepdims=True)


def fixture_ids(name, text):
    """The text's token ids under a fixture's vocabulary, worked out here."""
    _, meta = read_raw(name)
    tokens = raw_tokens(meta)
    index = {tok: i for i, tok in enumerate(tokens)}
    if meta.get("level") == "word":
        words = []
        for line in text.split("\n")[:-1]:
            words += line.split() + ["<eos>"]
        words += text.split("\n")[-1].split()
        return np.array([index[w] for w in words]), tokens, meta
    return np.array([index[ch] for ch in text]), tokens, meta


@pytest.fixture(scope="module")
def fixture_text():
    with open(TEXT, encoding="utf-8") as f:
        return f.read()


# ----------------------------------------------------------------------------- the JSON figures

@pytest.mark.parametrize("name", KINDS)
def test_json_states_top_and_logprob_match_a_forward_pass(name, tmp_path, fixture_text):
    out, js = tmp_path / "page.html", tmp_path / "data.json"
    assert run_main([os.path.join(FIXTURES, name + ".npz"), TEXT, "--max-chars", "300",
                     "--top-k", "4", "--out", str(out), "--json", str(js)]) == 0
    data = load_json(js)
    ids, tokens, meta = fixture_ids(name, fixture_text)
    ids = ids[:300]
    states_ref, probs_ref = reference(name, ids)
    tol = STATE_TOL_F32 if meta["options"]["dtype"] == "float32" else STATE_TOL_F64
    assert data["tokens"] == [tokens[i] for i in ids]
    assert sorted(data["states"]) == sorted(states_ref)
    for key, ref in states_ref.items():
        got = np.array(data["states"][key])
        assert got.shape == ref.shape, key
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=key)
    # top: the K largest reference probabilities, in order, each under its own token
    for t, row in enumerate(data["top"]):
        assert len(row) == 4
        np.testing.assert_allclose([p for _, p in row], np.sort(probs_ref[t])[::-1][:4],
                                   rtol=0, atol=tol)
        for tok, p in row:
            assert abs(probs_ref[t, tokens.index(tok)] - p) <= tol
    logprob_ref = np.log(probs_ref[np.arange(len(ids) - 1), ids[1:]])
    np.testing.assert_allclose(data["logprob"], logprob_ref, rtol=0, atol=LOGPROB_TOL_FACTOR * tol)
    assert out.exists()


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.slow
def test_logprob_sums_to_sample_py_score(name, tmp_path):
    """expected.json holds what sample.py --score printed for text.txt with each fixture."""
    expected = load_json(os.path.join(FIXTURES, "expected.json"))["figures"][name]["score"]
    js = tmp_path / "d.json"
    assert run_main([os.path.join(FIXTURES, name + ".npz"), TEXT, "--max-chars", "100000",
                     "--out", str(tmp_path / "p.html"), "--json", str(js)]) == 0
    logprob = load_json(js)["logprob"]
    count = expected.get("tokens_scored", expected.get("chars_scored"))  # word level: tokens
    assert len(logprob) == count
    rtol = SCORE_RTOL_F32 if read_raw(name)[1]["options"]["dtype"] == "float32" else SCORE_RTOL_F64
    assert math.isclose(math.fsum(logprob), expected["log_prob"], rel_tol=rtol), \
        (math.fsum(logprob), expected["log_prob"])


def test_features_by_hand():
    pieces = list('a "b(c)"\nd [e')
    f = visualize.text_features(pieces)
    # characters:      a   ␣  "  b  (  c  )  "  ↵  d  ␣  [  e
    assert f["in_quotes"].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert f["bracket_depth"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    assert f["line_position"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4]
    assert f["word_start"].tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]
    vocab = Vocabulary(sorted(["Hi", '"there', "<eos>", "(x)"]), "word")
    words = list(vocab.pieces([vocab.tokens.index(w) for w in ["Hi", '"there', "<eos>", "(x)"]]))
    assert words == ["Hi", ' "there', "\n", "(x)"]
    f = visualize.text_features(words)
    assert f["in_quotes"].tolist() == [0, 1, 1, 1]
    assert f["line_position"].tolist() == [2, 9, 0, 3]
    assert f["word_start"].tolist() == [1, 1, 0, 1]


def test_correlations_and_saturation_recomputed_from_states(tmp_path):
    js = tmp_path / "d.json"
    assert run_main([os.path.join(FIXTURES, "lstm2_char_dropout.npz"), TEXT, "--max-chars", "700",
                     "--out", str(tmp_path / "p.html"), "--json", str(js)]) == 0
    data = load_json(js)
    states = {k: np.array(v) for k, v in data["states"].items()}
    # every unit's r by numpy's own routine; constant units have no r
    for feature, values in data["features"].items():
        f = np.array(values)
        listed = [it for it in data["interpretable"] if it["feature"] == feature]
        if np.all(f == f[0]):
            assert feature in data["features_constant"] and not listed
            continue
        every = []
        for key, X in states.items():
            for u in range(X.shape[1]):
                if X[:, u].std() > visualize.CONSTANT_STD:  # a constant unit has no r
                    every.append(abs(np.corrcoef(X[:, u], f)[0, 1]))
        assert len(listed) == visualize.TOP_UNITS
        for it in listed:
            r_ref = np.corrcoef(states[it["key"]][:, it["unit"]], f)[0, 1]
            assert abs(it["r"] - r_ref) <= R_TOL
        np.testing.assert_allclose(sorted((abs(it["r"]) for it in listed), reverse=True),
                                   sorted(every, reverse=True)[:visualize.TOP_UNITS], atol=R_TOL)
    assert data["features_constant"] == ["bracket_depth"]  # text.txt has no brackets
    assert "(" not in open(TEXT, encoding="utf-8").read()[:700]
    # saturation: the gates only, counted one value at a time
    assert sorted(data["saturation"]) == ["0/f", "0/i", "0/o", "1/f", "1/i", "1/o"]
    for key, pairs in data["saturation"].items():
        X = states[key]
        for u, (low, high) in enumerate(pairs):
            assert low == sum(1 for v in X[:, u] if v < 0.1) / len(X)
            assert high == sum(1 for v in X[:, u] if v > 0.9) / len(X)


def test_validation_text_is_the_default(tmp_path, fixture_text):
    arrays, meta = read_raw("rnn_char")
    text_path = tmp_path / "train.txt"
    shutil.copy(TEXT, text_path)
    meta["input"] = str(text_path)
    ckpt = tmp_path / "m.npz"
    write_checkpoint(ckpt, arrays, meta)
    js = tmp_path / "d.json"
    assert run_main([str(ckpt), "--json", str(js), "--max-chars", "5000"]) == 0
    split = int(len(fixture_text) * (1 - meta["options"]["val_fraction"]))
    assert "".join(load_json(js)["tokens"]) == fixture_text[split:]
    assert (tmp_path / "m.html").exists()  # the default page sits beside the checkpoint


def test_validation_text_missing_or_changed(tmp_path, capsys):
    arrays, meta = read_raw("rnn_char")
    meta["input"] = str(tmp_path / "train.txt")
    ckpt = tmp_path / "m.npz"
    write_checkpoint(ckpt, arrays, meta)
    assert run_main([str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no longer there" in err and "TEXT_FILE or --text" in err
    (tmp_path / "train.txt").write_text("a changed text\n", encoding="utf-8")
    assert run_main([str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has changed" in err
    assert not (tmp_path / "m.html").exists()


CORPUS = ('"Where is the cat?" asked Ann.\n"On the mat," said Bob.\n(The cat sleeps.)\n'
          'Ann [and Bob] sit by the door.\n') * 12


@pytest.mark.parametrize("trainer", ["rnnlm", "min_char_rnn"])
def test_history_matches_the_log_of_the_same_run(trainer, tmp_path):
    import min_char_rnn
    import rnnlm
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    ckpt, log = tmp_path / "m.npz", tmp_path / "log.jsonl"
    options = ["--max-iters", "30", "--eval-every", "10", "--log", str(log), "--log-every", "1",
               "--sample-every", "0", "--hidden-size", "8", "--seq-length", "6", "--seed", "0",
               "--out", str(ckpt)]
    if trainer == "rnnlm":
        assert rnnlm.main([str(corpus), "--cell", "gru", "--wordvec-size", "5", "--batch-size", "3",
                           *options]) in (0, None)
    else:
        assert min_char_rnn.main([str(corpus), *options]) in (0, None)
    js = tmp_path / "d.json"
    assert run_main([str(ckpt), "--json", str(js), "--max-chars", "50"]) == 0
    history = load_json(js)["history"]
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    val = {r["iter"]: r["val_loss"] for r in lines if "val_loss" in r}
    # the training loss per token: rnnlm logs it as loss, the gist's log as loss_per_char
    train = {r["iter"]: r.get("loss_per_char", r.get("loss")) for r in lines if "val_loss" not in r}
    assert sorted(val) == [10, 20, 30] and len(train) == 30
    assert [h["iter"] for h in history if h["val_loss"] is not None] == [10, 20, 30]
    for h in history:
        if h["val_loss"] is not None:
            assert h["val_loss"] == val[h["iter"]]  # the same float, written at full precision
        if h["loss"] is not None:
            assert h["loss"] == train[h["iter"]]
    assert sum(h["loss"] is not None for h in history) == 30


def test_training_samples_reach_the_json_and_the_page(tmp_path):
    import min_char_rnn
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    ckpt = tmp_path / "m.npz"
    assert min_char_rnn.main([str(corpus), "--max-iters", "30", "--eval-every", "10",
                              "--sample-every", "7", "--sample-length", "9", "--hidden-size", "8",
                              "--seq-length", "6", "--seed", "0", "--out", str(ckpt)]) == 0
    js, out = tmp_path / "d.json", tmp_path / "p.html"
    assert run_main([str(ckpt), "--json", str(js), "--out", str(out), "--max-chars", "50"]) == 0
    with np.load(ckpt, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    kept = meta["history"]["samples"]
    assert [s["iter"] for s in kept] == [0, 7, 14, 21, 28]
    assert all(len(s["text"]) == 9 for s in kept)
    records = {r["iter"]: r["loss"] for r in meta["history"]["records"]}
    samples = load_json(js)["samples"]
    assert [(s["iter"], s["text"]) for s in samples] == [(s["iter"], s["text"]) for s in kept]
    # each with the mean training loss of the iterations since the sample before, its own included
    assert samples[0]["loss"] == records[0]
    assert samples[1]["loss"] == pytest.approx(np.mean([records[k] for k in range(1, 8)]),
                                               rel=1e-12)
    assert page_payload(out.read_text(encoding="utf-8"))["samples"] == samples


def test_bad_input_is_one_line(tmp_path, capsys):
    good = os.path.join(FIXTURES, "rnn_char.npz")
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(open(good, "rb").read()[:5000])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "p.html"
    cases = [([str(damaged), "--text", "abc"], "damaged"),
             ([str(tmp_path / "none.npz"), "--text", "abc"], "not found"),
             ([good, "--text", "snow \u2603 man"], "not in the model's vocabulary"),
             ([good, str(empty)], "empty"),
             ([good, "--text", ""], "empty"),
             ([good, TEXT, "--text", "ab"], "not both"),
             ([good, "--text", "ab", "--out", str(tmp_path / "no" / "p.html")], "does not exist"),
             ([good, "--text", "ab", "--out", str(tmp_path)], "is a folder"),
             ([good, "--text", "ab", "--json", str(tmp_path)], "is a folder")]
    for argv, words in cases:
        assert run_main(argv + (["--out", str(out)] if "--out" not in argv else [])) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err, (argv, err)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.npz", "empty.txt"]
    # argparse refuses --max-chars 0 with status 2 and an 'error:' line, before any work
    r = subprocess.run([sys.executable, "visualize.py", good, "--text", "ab", "--max-chars", "0",
                        "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("'0' is not a positive integer")
    assert not out.exists()


def test_outputs_onto_a_file_it_reads_are_refused(tmp_path, capsys):
    """--out and --json never replace the checkpoint, the text, the training text the page shows
    by default, or each other: symlinks and other spellings included; one line, exit 2."""
    arrays, meta = read_raw("rnn_char")
    shutil.copy(TEXT, tmp_path / "train.txt")
    meta["input"] = str(tmp_path / "train.txt")
    ckpt = tmp_path / "m.npz"
    write_checkpoint(ckpt, arrays, meta)
    shutil.copy(TEXT, tmp_path / "t.txt")
    (tmp_path / "link.npz").symlink_to("m.npz")
    os.mkdir(tmp_path / "sub")
    spelled = os.path.join(str(tmp_path), "sub", "..", "t.txt")
    cases = [([str(ckpt), "--text", "The dog", "--json", str(ckpt)], "--json", "CHECKPOINT"),
             ([str(ckpt), "--text", "The dog", "--out", str(tmp_path / "link.npz")], "--out",
              "CHECKPOINT"),
             ([str(ckpt), str(tmp_path / "t.txt"), "--out", spelled], "--out", "TEXT_FILE"),
             ([str(ckpt), str(tmp_path / "t.txt"), "--json", str(tmp_path / "t.txt"),
               "--out", str(tmp_path / "p.html")], "--json", "TEXT_FILE"),
             ([str(ckpt), "--out", str(tmp_path / "train.txt")], "--out", "the training text"),
             ([str(ckpt), "--text", "The dog", "--out", str(tmp_path / "p.html"), "--json",
               str(tmp_path / "p.html")], "--json", "--out")]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for argv, what, other in cases:
        assert run_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert f"{what} " in err and f"same file as {other}" in err, err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert (tmp_path / "link.npz").is_symlink()


def test_a_killed_writers_temporary_files_are_removed(tmp_path):
    """kill -9 during a write leaves ".NAME.PID.*.tmp" beside --out and --json: the next run
    removes those whose writer is gone."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    for name in (f".p.html.{ended.pid}.x1.tmp", f".d.json.{ended.pid}.x2.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    assert run_main([os.path.join(FIXTURES, "gist.npz"), "--text", "The dog", "--out",
                     str(tmp_path / "p.html"), "--json", str(tmp_path / "d.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "p.html"]


def overflowing(arrays, case):
    """The gist fixture's arrays with finite weights whose scores are not usable: one score near
    the largest float (its log-probability has no finite value in bits), or scores that overflow
    to infinity (softmax gives NaN)."""
    arrays = dict(arrays)
    arrays["by"] = np.zeros_like(arrays["by"])
    if case == "one score 1.7e308":
        arrays["by"][3] = 1.7e308
    else:
        arrays["by"][:] = 1.7e308
        arrays["Why"] = arrays["Why"] * 1e307
    return arrays


@pytest.mark.parametrize("case", ["one score 1.7e308", "scores overflow"])
@pytest.mark.slow
def test_non_finite_model_output_is_refused_as_sample_py_refuses_it(case, tmp_path):
    from conftest import assert_error, run
    arrays, meta = read_raw("gist")
    write_checkpoint(tmp_path / "huge.npz", overflowing(arrays, case), meta)
    said = assert_error(run("sample.py", ["huge.npz", "--score", "The dog"], cwd=tmp_path), 1)
    r = run("visualize.py", ["huge.npz", "--text", "The dog", "--out", "p.html", "--json",
                             "d.json"], cwd=tmp_path)
    assert assert_error(r, 1, "not finite") == said  # one line: no warnings before it
    assert r.stdout == "" and sorted(os.listdir(tmp_path)) == ["huge.npz"]


@pytest.mark.slow
def test_memory_stays_near_tokens_times_top_k_and_units(tmp_path):
    """A 12,000-character vocabulary: the page needs each token's top K and one log-probability,
    so the peak stays far below even one (T, V) float64 array of probabilities."""
    import tracemalloc
    V, T = 12000, 1000
    chars = "".join(chr(0x4E00 + i) for i in range(V))  # CJK ideographs, sorted
    path = random_gist(tmp_path / "cjk.npz", chars, H=6, seed=5)
    text = "".join(np.random.default_rng(6).choice(list(chars), T))
    tracemalloc.start()
    try:
        status = run_main([str(path), "--text", text, "--out", str(tmp_path / "p.html"),
                           "--json", str(tmp_path / "d.json")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 0
    assert peak < PEAK_SHARE_OF_TV * T * V * 8, f"peak {peak / 1e6:.1f} MB"
    data = load_json(tmp_path / "d.json")
    assert len(data["logprob"]) == T - 1 and len(data["top"]) == T


def test_out_of_memory_names_visualize_options(tmp_path):
    """A MemoryError in visualize.py run as a script prints its own options, not a trainer's."""
    from conftest import assert_error, run_short_of_memory
    r = run_short_of_memory("visualize.py", [os.path.join(FIXTURES, "gist.npz"), "--text",
                                             "The dog"], cwd=tmp_path)
    line = assert_error(r, 1, "out of memory", "--max-chars", "--top-k")
    assert "--batch-size" not in line, line


# markup whose onerror handler runs script, as a history record's iteration or any other string
HOSTILE = '<img src=x onerror="alert(1)">'
BAD_HISTORY = {  # case -> the history stored in the checkpoint's meta record
    "iter holds markup": {"stride": 1, "records": [{"iter": HOSTILE, "loss": 4.5,
                                                     "val_loss": None}]},
    "history a number": 5,
    "records a string": {"stride": 1, "records": "abc"},
    "records of lists": {"stride": 1, "records": [[1, 2]]},
    "loss NaN": {"stride": 1, "records": [{"iter": 1, "loss": float("nan"), "val_loss": None}]},
    "iter 10^400": {"stride": 1, "records": [{"iter": 10 ** 400, "loss": 4.5, "val_loss": None}]},
    "loss 10^400": {"stride": 1, "records": [{"iter": 1, "loss": 10 ** 400, "val_loss": None}]},
    "val_loss a string": {"stride": 1, "records": [{"iter": 1, "loss": 4.5, "val_loss": "1.5"}]},
    "iter true": {"stride": 1, "records": [{"iter": True, "loss": 4.5, "val_loss": None}]},
    "seconds negative": {"stride": 1, "records": [{"iter": 1, "loss": 4.5, "val_loss": None,
                                                    "seconds": -1.0}]},
    "samples a string": {"stride": 1, "records": [], "samples": "abc"},
    "sample without text": {"stride": 1, "records": [], "samples": [{"iter": 3}]},
    "sample text a number": {"stride": 1, "records": [], "samples": [{"iter": 3, "text": 5}]},
    "sample iter markup": {"stride": 1, "records": [], "samples": [{"iter": HOSTILE,
                                                                    "text": "abc"}]},
    "sample iter 10^400": {"stride": 1, "records": [], "samples": [{"iter": 10 ** 400,
                                                                    "text": "abc"}]},
}


@pytest.mark.parametrize("case", list(BAD_HISTORY))
def test_a_history_that_is_not_numbers_is_refused_on_load(case, tmp_path, capsys):
    arrays, meta = read_raw("gist")
    meta["history"] = BAD_HISTORY[case]
    write_checkpoint(tmp_path / "m.npz", arrays, meta)
    assert run_main([str(tmp_path / "m.npz"), "--text", "The dog", "--json",
                     str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "history" in err, err
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_the_csp_allows_the_pages_own_script_and_style_by_hash_only(tmp_path):
    out = tmp_path / "p.html"
    assert run_main([os.path.join(FIXTURES, "gist.npz"), "--text", "The dog", "--out",
                     str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "unsafe" not in csp and "default-src 'none'" in csp
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    style = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(script) == 1 and len(style) == 1
    sha = lambda text: base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{sha(script[0])}';" in csp
    assert f"style-src 'sha256-{sha(style[0])}'" in csp
    # the script builds no markup from text: no HTML parsing sinks at all
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script[0])


def test_page_data_cannot_close_its_script_element():
    data = {"pieces": ["</script><script>alert(1)</script>", "<!--", "&amp;", "\u2028"]}
    page = visualize.render_page(data)
    assert page.count("</script>") == 2 and "<!--" not in page  # the data block and the script
    assert page_payload(page) == data


def test_page_is_self_contained_and_its_states_decode(tmp_path, fixture_text):
    out, js = tmp_path / "p.html", tmp_path / "d.json"
    text = fixture_text[:500]
    assert run_main([os.path.join(FIXTURES, "lstm2_char_dropout.npz"), "--text", text,
                     "--out", str(out), "--json", str(js)]) == 0
    page = out.read_text(encoding="utf-8")
    # nothing to fetch (SVG's namespace name is an identifier, never fetched)
    assert not re.search(r"https?://", page.replace('"http://www.w3.org/2000/svg"', ""))
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    payload, data = page_payload(page), load_json(js)
    assert "".join(payload["pieces"]) == text
    cells = False
    for k in payload["keys"]:
        q = np.frombuffer(base64.b64decode(k["b64"]), dtype=np.uint8).reshape(len(text), k["units"])
        lo, hi = np.array(k["lo"]), np.array(k["hi"])  # (U,) each unit's range
        got = lo + q * (hi - lo) / 255  # (T, U) back to values
        # 8 bits over lo..hi: rounding moves a value by at most half a step of its unit
        err = np.abs(got - np.array(data["states"][k["key"]]))
        assert (err <= (hi - lo) / 510 + 1e-12).all(), (k["key"], err.max())
        X = np.array(data["states"][k["key"]])
        if k["gate"]:
            assert (lo == 0).all() and (hi == 1).all()
        elif np.abs(X).max() > 1:  # e.g. the LSTM cell: each unit spans its own largest magnitude
            assert np.allclose(hi, np.abs(X).max(axis=0)) and np.allclose(lo, -hi)
            cells = True
        else:
            assert (lo == -1).all() and (hi == 1).all()
    assert cells  # this fixture's cell state does leave -1..1


# ----------------------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def page(tmp_path_factory, fixture_text):
    """A page of 400 characters of the 2-layer LSTM fixture with a made-up loss history."""
    folder = tmp_path_factory.mktemp("page")
    model = visualize.load_model(os.path.join(FIXTURES, "lstm2_char_dropout.npz"))
    # a version-1 checkpoint has no history: give this one a made-up curve of 21 records
    model.meta["history"] = {"stride": 10, "records": [
        {"iter": k, "loss": 4.5 - k / 100, "val_loss": 4.6 - k / 110 if k % 50 == 0 else None}
        for k in range(0, 201, 10)], "samples": [{"iter": k, "text": f"sample at {k}"}
                                                   for k in (0, 100, 200)]}
    ids = model.encode(fixture_text[:400], "text")
    a = visualize.analyse(model, ids, 3, stored_records(model.meta), stored_samples(model.meta))
    path = folder / "page.html"
    path.write_text(visualize.render_page(visualize.page_data(a, model, "lstm2", 3)),
                    encoding="utf-8")
    return path, a, model


def open_page(browser, path, spans="#text > span"):
    """Load the page and wait until its text (the elements `spans`) is there."""
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(path.as_uri())
    WebDriverWait(browser, BROWSER_WAIT).until(
        lambda d: d.find_elements("css selector", spans + ":first-child"))


def backgrounds(browser, spans):
    """The background colour the page's script gave each element `spans` selects, e.g.
    "rgb(255, 200, 200)" ("" for none), read in one call rather than one per element."""
    return browser.execute_script("return arguments[0].map((s) => s.style.backgroundColor)",
                                  browser.find_elements("css selector", spans))


def colours(browser):
    return backgrounds(browser, "#text > span")


def test_browser_text_units_guesses_curves(browser, page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    path, a, model = page
    open_page(browser, path)
    spans = browser.find_elements(By.CSS_SELECTOR, "#text > span")
    assert len(spans) == len(a["pieces"])
    shown = browser.find_element(By.ID, "text").text
    assert shown.replace("\u21b5", "").rstrip("\n") == "".join(a["pieces"]).rstrip("\n")
    # the colours follow the unit: the darkest red sits where the unit is largest
    before = colours(browser)
    assert len(set(before)) > 1
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "unit").get_attribute("value") == "1"
    after = colours(browser)
    assert after != before
    h1 = a["states"]["0/h"][:, 1]
    rgb = [[int(v) for v in re.findall(r"\d+", c)] for c in after]
    # red minus blue rises with the value: -255 at the bottom of the scale, 255 at the top
    reddest = max(range(len(rgb)), key=lambda t: rgb[t][0] - rgb[t][2])
    assert h1[reddest] >= h1.max() - 2 / 255  # quantised: within one 8-bit step of the largest
    # another quantity (a gate) gives other colours again
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.ID, "name")).select_by_visible_text("f")
    assert colours(browser) != after
    # hovering a character shows the model's top guesses after it
    t = 5
    ActionChains(browser).move_to_element(spans[t]).perform()
    guesses = browser.find_element(By.ID, "guesses").text
    top_tok = model.tokens[a["top_ids"][t][0]]
    assert f"{100 * a['top_p'][t][0]:.1f}%" in guesses
    assert ({"\n": "\u21b5", " ": "\u2423"}.get(top_tok, top_tok)) in guesses
    # the curves: one point per history record, validation where evaluated
    pts = len(browser.find_element(By.ID, "train-curve").get_dom_attribute("points").split())
    vpts = len(browser.find_element(By.ID, "val-curve").get_dom_attribute("points").split())
    assert pts == 21 and vpts == 5
    # the samples, newest first, each with the training loss around it
    samples = browser.find_elements(By.CSS_SELECTOR, "#samples .sample")
    assert [s.find_element(By.TAG_NAME, "pre").text for s in samples] == \
        ["sample at 200", "sample at 100", "sample at 0"]
    # 4.5 - k / 100 over the records k = 10 .. 100 since the sample at 0: mean 4.5 - 0.55
    assert samples[1].text.startswith("iteration 100, training loss 3.950 nats/char")
    assert browser.find_element(By.ID, "train-curve").size["width"] > 100
    # gate saturation: one dot per gate unit
    assert len(browser.find_elements(By.CSS_SELECTOR, "#saturation circle")) == 2 * 3 * 10
    # clicking a listed unit selects it
    btn = browser.find_elements(By.CSS_SELECTOR, "#features button")[0]
    btn.click()
    it = a["interpretable"][0]
    assert browser.find_element(By.ID, "unit").get_attribute("value") == str(it["unit"])
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10000
    # no console errors, and nothing was fetched (the CSP would also have refused it)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_browser_page_without_history(browser, tmp_path):
    out = tmp_path / "p.html"
    assert run_main([os.path.join(FIXTURES, "gist.npz"), "--text", "Hello there.\nHi.",
                     "--out", str(out)]) == 0
    open_page(browser, out)
    from selenium.webdriver.common.by import By
    assert "no training history" in browser.find_element(By.ID, "curves").text
    assert "have gates" in browser.find_element(By.ID, "saturation").text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def open_ready_page(browser, path, spans="#text > span"):
    """Load the page; fail if an alert opened (script from its data ran) -> whether the page's
    own script finished (page_ready)."""
    from selenium.common.exceptions import UnexpectedAlertPresentException
    try:
        open_page(browser, path, spans)
        return page_ready(browser)
    except UnexpectedAlertPresentException:
        pytest.fail("an alert opened: the page ran script taken from its data")


def test_browser_page_builds_no_markup_from_its_data(browser, page, tmp_path):
    """Markup in every string the page shows (title, text, vocabulary, features, a history
    iteration that skipped the checks on load) stays text: no element is made from it."""
    _, a, model = page
    data = visualize.page_data(a, model, HOSTILE, 3)
    data["pieces"][0] = HOSTILE
    data["vocab"] = [HOSTILE + tok for tok in data["vocab"]]
    data["interpretable"][0]["feature"] = HOSTILE
    data["constant"] = [HOSTILE]
    data["history"][0][0] = HOSTILE
    data["samples"] = [{"iter": 3, "text": HOSTILE, "loss": None}]
    path = tmp_path / "hostile.html"
    path.write_text(visualize.render_page(data), encoding="utf-8")
    browser_errors(browser)
    assert open_ready_page(browser, path)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    ActionChains(browser).move_to_element(
        browser.find_elements(By.CSS_SELECTOR, "#text > span")[0]).perform()  # the guesses
    assert browser.find_elements("tag name", "img") == []
    assert browser.title == "min-char-rnn: what the model learned"
    assert browser.find_element(By.ID, "title").text == HOSTILE
    for box in ("features", "curves", "guesses", "samples"):
        assert HOSTILE in browser.find_element(By.ID, box).text, box


def test_browser_csp_blocks_script_that_reaches_the_markup(browser, tmp_path):
    """Were markup from the data ever to reach the page, the CSP (the page's own script by its
    hash, no 'unsafe-inline') keeps its handlers and scripts from running."""
    out = tmp_path / "p.html"
    assert run_main([os.path.join(FIXTURES, "gist.npz"), "--text", "The dog", "--out",
                     str(out)]) == 0
    injected = ('<img src=x onerror="window.handler = 1">'
                '<script>window.inline = 1</script></body>')
    out.write_text(out.read_text(encoding="utf-8").replace("</body>", injected), encoding="utf-8")
    assert open_ready_page(browser, out)  # the page's own script still runs
    assert browser.execute_script("return [window.handler, window.inline]") == [None, None]


def test_browser_renders_more_tokens_than_the_call_stack_holds_as_arguments(browser, tmp_path,
                                                                           fixture_text):
    """150,000 tokens: Math.max(...surprisal) would pass each as an argument, more than the call
    stack holds (RangeError, the page half drawn)."""
    T = 150_000
    text_path = tmp_path / "long.txt"
    text_path.write_text((fixture_text * (T // len(fixture_text) + 1))[:T], encoding="utf-8")
    out = tmp_path / "long.html"
    assert run_main([os.path.join(FIXTURES, "gist.npz"), str(text_path), "--max-chars", str(T),
                     "--out", str(out)]) == 0
    browser_errors(browser)
    assert open_ready_page(browser, out)
    assert browser_errors(browser) == []
    row = browser.find_element("id", "surprisal")
    assert row.get_property("childElementCount") == T  # a span per token, nothing else
    last = browser.find_element("css selector", "#surprisal > span:last-child")
    assert last.value_of_css_property("background-color").startswith("rgba(255, ")  # shaded


def test_browser_renders_a_200000_record_history(browser, page, tmp_path):
    _, a, model = page
    records = 200_000
    history = [{"iter": k, "loss": 4.5 - k / 1e6, "val_loss": 4.6 - k / 1e6 if k % 1000 == 0
                else None} for k in range(records)]
    path = tmp_path / "history.html"
    path.write_text(visualize.render_page(visualize.page_data({**a, "history": history}, model,
                                                              "long run", 3)), encoding="utf-8")
    browser_errors(browser)
    assert open_ready_page(browser, path)
    assert browser_errors(browser) == []
    pts = browser.find_element("id", "train-curve").get_dom_attribute("points").split()
    assert len(pts) == records


# ----------------------------------------------------------------------------- --compare

def sample_py(args, cwd=ROOT):
    """sample.py's one JSON line for args (run as the script, as a reader would)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), *map(str, args)],
                       cwd=cwd, capture_output=True, text=True, encoding="utf-8")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def compare_files(tmp_path, *names, text=TEXT):
    """--compare of the v1 fixtures `names` on `text` (a file) -> (the JSON, the page's data)."""
    js, out = tmp_path / "c.json", tmp_path / "c.html"
    paths = [os.path.join(FIXTURES, n + ".npz") for n in names]
    assert run_main(["--compare", *paths, str(text), "--json", str(js), "--out", str(out),
                     "--max-chars", "400", "--sample-length", "30", "--seed", "3"]) == 0
    return load_json(js), page_payload(out.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_compare_json_matches_sample_py_and_a_forward_pass(tmp_path, fixture_text):
    """The gist's model against a 2-layer LSTM on one text: every token's log-probability, their
    sums, sample.py --score's log_prob and the differences."""
    data, _ = compare_files(tmp_path, "gist", "lstm2_char_dropout")
    ids, tokens, _ = fixture_ids("gist", fixture_text)
    assert data["tokens"] == [tokens[i] for i in ids] == list(fixture_text)
    assert [(r["kind"], r["level"]) for r in data["runs"]] == [("min_char_rnn", "char"),
                                                              ("rnnlm", "char")]
    for i, name in enumerate(["gist", "lstm2_char_dropout"]):
        run_i, logprob = data["runs"][i], data["logprob"][i]
        assert run_i["name"] == os.path.join(FIXTURES, name + ".npz")
        assert run_i["options"] == options_as_read(read_raw(name)[1])
        assert run_i["count"] == len(logprob) == len(ids) - 1
        score = sample_py([run_i["name"], "--score-file", TEXT, "--json"])["log_prob"]
        assert math.isclose(math.fsum(logprob), run_i["log_prob"], rel_tol=SCORE_RTOL_F64)
        assert math.isclose(run_i["log_prob"], score, rel_tol=SCORE_RTOL_F64)
        # token t + 1's log-probability given tokens 0..t, from a forward pass written here
        _, probs_ref = reference(name, ids)
        logprob_ref = np.log(probs_ref[np.arange(len(ids) - 1), ids[1:]])
        np.testing.assert_allclose(logprob, logprob_ref, rtol=0,
                                   atol=LOGPROB_TOL_FACTOR * STATE_TOL_F64)
    assert data["delta"] == [b - a for a, b in zip(*data["logprob"])]


@pytest.mark.slow
def test_compare_page_data_scores_guesses_and_samples(tmp_path, fixture_text):
    """The page's rows: each model's score, its guesses at the first --max-chars positions (from
    the forward pass), and a sample equal to sample.py --start at the same seed and temperature."""
    data, page = compare_files(tmp_path, "gist", "lstm2_char_dropout", "rnn_char")
    ids, tokens, _ = fixture_ids("gist", fixture_text)
    assert page["pieces"] == list(fixture_text[:400]) and page["note"] is None
    for i, (r, name) in enumerate(zip(page["runs"], ["gist", "lstm2_char_dropout", "rnn_char"])):
        assert r["name"] == name + ".npz" and r["count"] == len(ids) - 1
        assert r["log_prob"] == data["runs"][i]["log_prob"]
        assert math.isclose(r["nats"], -r["log_prob"] / r["count"], rel_tol=1e-15)
        assert math.isclose(r["perplexity"], math.exp(r["nats"]), rel_tol=1e-15)
        _, probs_ref = reference(name, ids[:400])
        assert len(r["top_ids"]) == 399  # the guesses for tokens 1..399
        for t in (0, 57, 398):
            order = np.argsort(-probs_ref[t], kind="stable")[:5]
            assert r["top_ids"][t] == order.tolist()
            np.testing.assert_allclose(r["top_p"][t], probs_ref[t][order], atol=1e-4)
        drawn = sample_py([os.path.join(FIXTURES, name + ".npz"), "--start", fixture_text[0],
                           "--length", "30", "--seed", "3", "--json"])
        assert r["sample"] == drawn["text"] and len(r["sample"]) == 31


@pytest.mark.slow
def test_compare_of_different_vocabularies_gives_curves_and_scores(tmp_path, capsys):
    data, page = compare_files(tmp_path, "gist", "lstm_word")
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert note == page["note"] and "lstm_word.npz reads words and gist.npz characters" in note
    assert data["delta"] is None and page["pieces"] == [] and page["runs"][1]["top_ids"] == []
    word = data["runs"][1]
    assert word["level"] == "word" and len(word["tokens"]) == word["count"] + 1
    score = sample_py([os.path.join(FIXTURES, "lstm_word.npz"), "--score-file", TEXT, "--json"])
    assert math.isclose(math.fsum(data["logprob"][1]), score["log_prob"], rel_tol=SCORE_RTOL_F64)
    # two character models that know different characters
    a = random_gist(tmp_path / "a.npz", " abc", H=3, seed=1)
    b = random_gist(tmp_path / "b.npz", " abcd", H=4, seed=2)
    assert run_main(["--compare", str(a), str(b), "--text", "abc cab", "--out",
                     str(tmp_path / "ab.html")]) == 0
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert "b.npz and a.npz know different characters (1 in only one of them: 'd')" in note


@pytest.mark.slow
def test_compare_curves_come_from_each_history(tmp_path):
    data, page = compare_files(tmp_path, "gist", "rnn_char")
    for i, name in enumerate(["gist", "rnn_char"]):
        assert data["runs"][i]["history"] is None  # version-1 checkpoints have none
    v2 = os.path.join(ROOT, "tests", "fixtures", "v2")
    js = tmp_path / "v2.json"
    assert run_main(["--compare", os.path.join(v2, "gist.npz"), os.path.join(v2, "rnn_char.npz"),
                     "--text", "The dog.", "--json", str(js), "--out",
                     str(tmp_path / "v2.html")]) == 0
    for r in load_json(js)["runs"]:
        with np.load(r["name"], allow_pickle=False) as z:
            records = json.loads(str(z["meta"]))["history"]["records"]
        assert [(h["iter"], h["loss"], h["val_loss"]) for h in r["history"]] == \
            [(h["iter"], h["loss"], h["val_loss"]) for h in records]


def test_compare_bad_input_is_one_line(tmp_path, capsys):
    gist, lstm = (os.path.join(FIXTURES, n + ".npz") for n in ("gist", "lstm2_char_dropout"))
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(open(lstm, "rb").read()[:3000])
    shutil.copy(TEXT, tmp_path / "t.txt")
    (tmp_path / "same.npz").symlink_to(gist)
    out = str(tmp_path / "c.html")
    cases = [(["--compare", gist, str(tmp_path / "none.npz"), "--text", "ab"], "none.npz"),
             (["--compare", gist, str(damaged), "--text", "ab"], "damaged.npz"),
             (["--compare", gist, gist, "--text", "ab"], "the same checkpoint"),
             (["--compare", gist, str(tmp_path / "same.npz"), "--text", "ab"],
              "the same checkpoint"),
             (["--compare", gist, "--text", "ab"], "two or more"),
             (["--compare", gist, str(tmp_path / "t.txt")], "two or more"),
             (["--compare", gist, lstm, str(tmp_path / "t.txt"), "--text", "ab"], "not both"),
             ([gist, "--compare", lstm, "--text", "ab"], "after it"),
             (["--compare", gist, lstm, "--text", "ab", "--out", lstm], "same file as CHECKPOINT"),
             (["--compare", gist, lstm, str(tmp_path / "t.txt"), "--json",
               str(tmp_path / "t.txt")], "same file as TEXT_FILE"),
             (["--compare", gist, lstm, "--text", "a"], "at least 2"),
             (["--compare", gist, lstm, "--text", "snow \u2603"], "vocabulary"),
             (["--compare", gist, lstm, "--text", "ab", "--out",
               str(tmp_path / "no" / "c.html")], "does not exist")]
    before = sorted(os.listdir(tmp_path))
    for argv, words in cases:
        assert run_main(argv + (["--out", out] if "--out" not in argv else [])) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err, (argv, err)
        assert sorted(os.listdir(tmp_path)) == before


def test_browser_compare_page(browser, tmp_path):
    """The scores table, the text shaded by the difference, a click showing every model's
    guesses, the run chosen against the first; no console errors, nothing fetched."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    _, page = compare_files(tmp_path, "gist", "lstm2_char_dropout", "rnn_char")
    browser_errors(browser)
    browser.get((tmp_path / "c.html").as_uri())
    WebDriverWait(browser, BROWSER_WAIT).until(page_ready)
    rows = browser.find_elements(By.CSS_SELECTOR, "#scores tr")
    assert len(rows) == 4 and "gist.npz" in rows[1].text
    assert "lstm2_char_dropout.npz" in rows[2].text
    assert f"{page['runs'][0]['nats']:.4f} nats/char" in rows[1].text
    spans = browser.find_elements(By.CSS_SELECTOR, "#diff-text > span")
    assert len(spans) == 400

    def shading():
        return backgrounds(browser, "#diff-text > span")

    before = shading()
    # green where the second model gave the token the higher probability, red where lower
    lp0, lp1 = page["runs"][0]["logprob"], page["runs"][1]["logprob"]
    for t in (5, 100, 399):
        r, g, b = map(int, re.findall(r"\d+", before[t]))
        assert (g > r) == (lp1[t - 1] > lp0[t - 1]) and (r > g) == (lp1[t - 1] < lp0[t - 1])
    spans[57].click()
    cols = browser.find_elements(By.CSS_SELECTOR, "#compare-guesses .col")
    assert [c.text.splitlines()[0] for c in cols] == [r["name"] for r in page["runs"]]
    for c, r in zip(cols, page["runs"]):  # the probability of the token there, the top guess's
        assert f"{100 * math.exp(r['logprob'][56]):.2f}%" in c.text
        assert f"{100 * r['top_p'][56][0]:.1f}%" in c.text
    actual = {"\n": "\u21b5", " ": "\u2423"}.get(page["pieces"][57], page["pieces"][57])
    assert f"token 57, {actual}:" in browser.find_element(By.ID, "compare-guesses").text
    # the listed largest differences: the largest first, a click selects the token
    first = browser.find_elements(By.CSS_SELECTOR, "#top-diffs button")[0]
    t = int(first.get_attribute("data-t"))
    deltas = [b - a for a, b in zip(lp0, lp1)]
    assert abs(deltas[t - 1]) == max(abs(d) for d in deltas[:399])
    first.click()
    assert "sel" in spans[t].get_attribute("class")
    # the third model against the first: other colours
    Select(browser.find_element(By.ID, "against")).select_by_visible_text("rnn_char.npz")
    assert shading() != before
    assert len(browser.find_elements(By.CSS_SELECTOR, "#options tr.diff")) > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#compare-samples .sample")) == 3
    assert browser_errors(browser) == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_browser_compare_page_builds_no_markup_from_its_data(browser, tmp_path):
    _, page = compare_files(tmp_path, "gist", "rnn_char")
    page["title"] = HOSTILE
    for r in page["runs"]:
        r["name"], r["arch"], r["sample"] = HOSTILE, HOSTILE, HOSTILE
        r["options"][HOSTILE] = HOSTILE
    page["pieces"][1] = HOSTILE
    page["vocab"] = [HOSTILE + tok for tok in page["vocab"]]
    path = tmp_path / "hostile.html"
    path.write_text(visualize.COMPARE_PAGE.render(page), encoding="utf-8")
    browser_errors(browser)
    assert open_ready_page(browser, path, "#diff-text > span")
    browser.find_elements("css selector", "#diff-text > span")[1].click()
    assert browser.find_elements("tag name", "img") == []
    for box in ("title", "scores", "options", "compare-samples", "compare-guesses", "diff-text"):
        assert HOSTILE in browser.find_element("id", box).text, box
    assert browser_errors(browser) == []


def test_browser_pages_draw_the_smoothed_training_loss_over_a_faint_band(browser, tmp_path):
    """A model's page and a comparison: the training loss as the trainers smoothed it (the
    gist's smooth_loss, rnnlm.py's exponential average) over each iteration's, faint."""
    write_text(tmp_path / "t.txt", GOOD_TEXT * 2)
    for trainer, name in (("min_char_rnn.py", "g"), ("rnnlm.py", "r")):
        run_ok(trainer, ["t.txt", "--hidden-size", "8", "--max-iters", "60", "--eval-every", "20",
                         "--sample-every", "0", "--seed", "2", "--out", f"{name}.npz"], tmp_path)
    run_ok("visualize.py", ["g.npz", "t.txt", "--out", "g.html"], tmp_path)
    run_ok("visualize.py", ["--compare", "g.npz", "r.npz", "--text", GOOD_TEXT[:80], "--out",
                            "c.html"], tmp_path)

    def curve(curve_id, attr="points"):
        found = browser.find_elements("id", curve_id)
        return found[0].get_dom_attribute(attr) if found else None

    browser_errors(browser)
    assert open_ready_page(browser, tmp_path / "g.html")
    assert len(curve("train-curve").split()) == len(curve("train-raw").split()) == 60
    assert curve("train-raw", "stroke-opacity") == "0.25" and curve("train-curve", "stroke-opacity") is None
    assert "smoothed (exponential average, 0.999" in \
        browser.find_element("id", "curves").get_property("textContent")
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get((tmp_path / "c.html").as_uri())
    WebDriverWait(browser, BROWSER_WAIT).until(page_ready)
    for i in (0, 1):
        assert curve(f"train-raw-i-{i}", "stroke-opacity") == "0.25"
        assert len(curve(f"train-curve-i-{i}").split()) == 60
    assert browser_errors(browser) == []
