"""Tests of rnnlm.py, the book's trainer: its minibatches, the toy corpus through the command line
and sample.py, resuming exactly, and its input errors. The models are tested in test_models.py,
the run contract both trainers share in test_training.py."""
import json

import numpy as np

import rnnlm
from common.checkpoint import load_checkpoint
from conftest import SAMPLE, read_log, run

SCRIPT = "rnnlm.py"
TOY = "you say goodbye and i say hello ."  # DLFS2 ch.2-5's corpus
# The book's ch.5 RNNLM reaches a perplexity near 1 on the repeated toy corpus (each word after
# "say" is one of two, every other word is determined); 1.2 is the bound the project set for it
TOY_PERPLEXITY = 1.2


def test_get_batch_offsets_and_wrap():
    xs = np.arange(100, 123)  # M = 23 ids, so jump = 23 // 3 = 7
    ts = xs + 1000
    x, t = rnnlm.get_batch(xs, ts, 3, 4, 0)
    np.testing.assert_array_equal(x, [[100, 101, 102, 103], [107, 108, 109, 110],
                                      [114, 115, 116, 117]])
    x, t = rnnlm.get_batch(xs, ts, 3, 4, 5)  # k*T = 20: rows 1 and 2 wrap past M
    np.testing.assert_array_equal(x, [[120, 121, 122, 100], [104, 105, 106, 107],
                                      [111, 112, 113, 114]])
    np.testing.assert_array_equal(t, x + 1000)


# ----------------------------------------------------------------------------- command line

def test_word_level_toy_corpus_reaches_perplexity_below_1_2(tmp_path):
    (tmp_path / "toy.txt").write_text(" ".join([TOY] * 100), encoding="utf-8")
    result = run(SCRIPT, ["toy.txt", "--level", "word", "--max-epochs", "40", "--optimizer",
                          "adam", "--learning-rate", "0.01", "--eval-every", "200", "--out",
                          "toy.npz", "--log", "log.jsonl"], tmp_path)
    assert result.returncode == 0, result.stderr
    records = read_log(tmp_path / "log.jsonl")
    last = [r for r in records if "val_perplexity" in r][-1]
    assert last["val_perplexity"] < TOY_PERPLEXITY, last
    meta = load_checkpoint(str(tmp_path / "toy.npz"))[1]
    assert meta["level"] == "word" and meta["vocab"].split(" ") == sorted(set(TOY.split()))
    score = run(SAMPLE, ["toy.npz", "--score", "you say goodbye and i say hello", "--json"],
                tmp_path)
    figures = json.loads(score.stdout)
    assert figures["tokens_scored"] == 6 and figures["perplexity"] < TOY_PERPLEXITY


def test_char_level_scores_goodbye_above_good_die(tmp_path):
    (tmp_path / "toy.txt").write_text(" ".join([TOY] * 60), encoding="utf-8")
    result = run(SCRIPT, ["toy.txt", "--cell", "lstm", "--hidden-size", "32", "--wordvec-size",
                          "16", "--batch-size", "8", "--seq-length", "20", "--optimizer", "adam",
                          "--learning-rate", "0.01", "--max-iters", "300", "--out", "c.npz"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    scores = {}
    for text in ("you say goodbye", "you say good die"):
        out = run(SAMPLE, ["c.npz", "--score", text, "--json"], tmp_path)
        assert out.returncode == 0, out.stderr
        scores[text] = json.loads(out.stdout)["log_prob"]
    assert scores["you say goodbye"] > scores["you say good die"], scores
    gen = run(SAMPLE, ["c.npz", "--length", "40", "--start", "you say"], tmp_path)
    assert gen.returncode == 0 and gen.stdout.startswith("you say"), gen.stderr


def test_resume_is_bitwise_exact(tmp_path):
    (tmp_path / "t.txt").write_text("".join(chr(97 + (i * i) % 11) for i in range(3000)),
                                    encoding="utf-8")
    run_args = ["t.txt", "--cell", "lstm", "--num-layers", "2", "--dropout", "0.2",
                "--hidden-size", "12", "--wordvec-size", "12", "--tie-weights", "--optimizer",
                "adam", "--learning-rate", "0.01", "--lr-decay", "cosine", "--decay-iters", "40",
                "--max-grad-norm", "1", "--seq-length", "7", "--batch-size", "3",
                "--eval-every", "10", "--sample-every", "10", "--sample-length", "5"]
    full = run(SCRIPT, [*run_args, "--max-iters", "30", "--out", "full.npz"], tmp_path)
    assert full.returncode == 0, full.stderr
    half = run(SCRIPT, [*run_args, "--max-iters", "15", "--out", "half.npz"], tmp_path)
    assert half.returncode == 0, half.stderr
    resumed = run(SCRIPT, ["--resume", "half.npz", "--max-iters", "30", "--eval-every", "10",
                           "--sample-every", "10", "--sample-length", "5"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, meta_a = load_checkpoint(str(tmp_path / "full.npz"))
    b, meta_b = load_checkpoint(str(tmp_path / "half.npz"))
    assert set(a) == set(b) and {"opt_m_embed_W", "opt_v_lstm2_Wh", "state"} <= set(a)
    for name in sorted(a):
        assert np.array_equal(a[name], b[name]), f"{name} differs"
    for key in ("k", "lr", "opt_iter", "best_val_loss", "dropout_rng_state", "sample_rng_state"):
        assert meta_a[key] == meta_b[key], key
    assert meta_a["k"] == 30
    refused = run(SCRIPT, ["--resume", "half.npz", "--cell", "gru"], tmp_path)
    assert refused.returncode == 2 and "--cell" in refused.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "t.txt").write_text("abc " * 100, encoding="utf-8")
    for args in (["empty.txt"], ["missing.txt"],
                 ["t.txt", "--tie-weights", "--wordvec-size", "8", "--hidden-size", "9"],
                 ["t.txt", "--batch-size", "100", "--seq-length", "50"],
                 ["t.txt", "--lr-decay", "cosine"]):
        result = run(SCRIPT, [*args, "--out", "x.npz"], tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, \
            result.stderr
        assert not (tmp_path / "x.npz").exists()
