"""Tests of rnnlm.py, the book's trainer: its minibatches, the toy corpus through the command line
and sample.py, resuming exactly, and its input errors. The models are tested in test_models.py,
the run contract both trainers share in test_training.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnlm
from common.checkpoint import load_checkpoint
from common.interface import read_checkpoint
from conftest import (CLI_TIMEOUT, GOOD_TEXT, SAMPLE, assert_error, read_log, read_npz, run, run_ok,
                      script, write_text)

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

@pytest.mark.slow
def test_word_level_toy_corpus_reaches_perplexity_below_1_2(tmp_path):
    (tmp_path / "toy.txt").write_text(" ".join([TOY] * 100), encoding="utf-8")
    result = run(SCRIPT, ["toy.txt", "--level", "word", "--max-epochs", "40", "--optimizer",
                          "adam", "--learning-rate", "0.01", "--eval-every", "200", "--seed", "0",
                          "--out", "toy.npz", "--log", "log.jsonl"], tmp_path)
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


@pytest.mark.slow
def test_char_level_scores_goodbye_above_good_die(tmp_path):
    (tmp_path / "toy.txt").write_text(" ".join([TOY] * 60), encoding="utf-8")
    result = run(SCRIPT, ["toy.txt", "--cell", "lstm", "--hidden-size", "32", "--wordvec-size",
                          "16", "--batch-size", "8", "--seq-length", "20", "--optimizer", "adam",
                          "--learning-rate", "0.01", "--max-iters", "300", "--seed", "0",
                          "--out", "c.npz"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    scores = {}
    for text in ("you say goodbye", "you say good die"):
        out = run(SAMPLE, ["c.npz", "--score", text, "--json"], tmp_path)
        assert out.returncode == 0, out.stderr
        scores[text] = json.loads(out.stdout)["log_prob"]
    assert scores["you say goodbye"] > scores["you say good die"], scores
    gen = run(SAMPLE, ["c.npz", "--length", "40", "--start", "you say", "--seed", "0"], tmp_path)
    assert gen.returncode == 0 and gen.stdout.startswith("you say"), gen.stderr


@pytest.mark.slow
def test_resume_is_bitwise_exact(tmp_path):
    (tmp_path / "t.txt").write_text("".join(chr(97 + (i * i) % 11) for i in range(3000)),
                                    encoding="utf-8")
    run_args = ["t.txt", "--cell", "lstm", "--num-layers", "2", "--dropout", "0.2", "--seed", "0",
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


@pytest.mark.slow
def test_embed_std_draws_the_embedding_and_is_kept_with_the_run(tmp_path):
    """--embed-std S draws the embedding as randn * S (the default 0.01 is the book's randn / 100,
    bit for bit: test_models.py); it is recorded, refused if changed on --resume, and a checkpoint
    written before the option existed reads as the default."""
    write_text(tmp_path / "t.txt", TOY * 40)
    run_ok(SCRIPT, ["t.txt", "--level", "word", "--wordvec-size", "300", "--embed-std", "0.5",
                    "--max-iters", "1", "--val-fraction", "0", "--seed", "0", "--out", "m.npz"],
           tmp_path)
    arrays, meta = read_npz(tmp_path / "m.npz")
    assert meta["options"]["embed_std"] == 0.5
    # 7 words x 300 = 2100 draws of N(0, 0.25), then one SGD step of 0.1 x gradients below 0.01:
    # the sample std's standard error is 0.5 / sqrt(2 x 2100) = 0.0077, so a 0.05 band is 6.5
    # standard errors wide on either side
    assert abs(arrays["embed_W"].std() - 0.5) < 0.05
    refused = run(SCRIPT, ["--resume", "m.npz", "--embed-std", "0.25"], tmp_path)
    assert refused.returncode == 2 and "--embed-std 0.25 differs from the 0.5" in refused.stderr
    old = os.path.join(os.path.dirname(__file__), "fixtures", "v2", "rnn_char.npz")
    assert "embed_std" not in read_npz(old)[1]["options"]
    assert read_checkpoint(old)[1]["options"]["embed_std"] == 0.01


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "t.txt").write_text("abc " * 100, encoding="utf-8")
    for args in (["empty.txt"], ["missing.txt"],
                 ["t.txt", "--tie-weights", "--wordvec-size", "8", "--hidden-size", "9"],
                 ["t.txt", "--batch-size", "100", "--seq-length", "50"],
                 ["t.txt", "--lr-decay", "cosine"]):
        result = run(SCRIPT, [*args, "--seed", "0", "--out", "x.npz"], tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, \
            result.stderr
        assert not (tmp_path / "x.npz").exists()


# The two paths compute one function with the same weights and dropout masks: float64 rounding
# in another order (~1e-16 a step) compounded over 20 updates stays far below 1e-9 relative
BOOK_LAYERS_TOL = 1e-9


@pytest.mark.parametrize("options", [
    ["--cell", "rnn"],
    ["--cell", "lstm", "--num-layers", "2", "--wordvec-size", "32", "--hidden-size", "32",
     "--tie-weights", "--dropout", "0.5"],
    ["--cell", "gru"]])
@pytest.mark.slow
def test_book_layers_log_the_same_losses_as_the_fast_layers(tmp_path, options):
    write_text(tmp_path / "t.txt", GOOD_TEXT * 3)
    losses = {}
    for path in ("fast", "book"):
        run_ok(SCRIPT, ["t.txt", *options, "--dtype", "float64", "--seed", "1", "--max-iters", "20",
                        "--log-every", "1", "--log", f"{path}.jsonl", "--out", f"{path}.npz",
                        *(["--book-layers"] if path == "book" else [])], tmp_path)
        losses[path] = np.array([r["loss"] for r in read_log(tmp_path / f"{path}.jsonl") if "loss" in r])
    assert len(losses["fast"]) == len(losses["book"]) == 20
    rel = np.abs(losses["book"] - losses["fast"]) / np.abs(losses["fast"])
    assert rel.max() < BOOK_LAYERS_TOL, rel.max()


def test_book_layers_name_the_books_models_for_other_options(tmp_path):
    write_text(tmp_path / "t.txt", GOOD_TEXT)
    result = run(SCRIPT, ["t.txt", "--book-layers", "--cell", "rnn", "--num-layers", "2",
                          "--seed", "0", "--out", "x.npz"], tmp_path)
    assert_error(result, 2, "--book-layers", "SimpleRnnlm", "BetterRnnlm")
    assert not (tmp_path / "x.npz").exists()


# ----------------------------------------------------------------------------- word level text

# Peak resident memory of training on LONG_WORD_TEXT: 1.69 GB measured at commit 60c19fb (a
# fixed-width string array: number of words x longest word); 41 MB now (most of it the
# interpreter, numpy and tqdm). 300 MB is a generous bound the old code exceeds 5x over.
WORD_RSS_BOUND_MB = 300
# 42 KB: 7,200 short words, then one word of 20,000 characters
LONG_WORD_TEXT = " ".join(["ab", "cd", "efg", "h"] * 1800) + "\n" + "x" * 20000 + "\n"
RSS_PROBE = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KB on Linux
sys.exit(r.returncode)
"""


def test_word_level_memory_is_near_the_text_size_for_one_long_word(tmp_path):
    resource = pytest.importorskip("resource")  # noqa: F841 (Linux and macOS: the probe uses it)
    write_text(tmp_path / "long.txt", LONG_WORD_TEXT)
    assert 40_000 < len(LONG_WORD_TEXT) < 46_000
    # a fresh interpreter runs the trainer, so the peak is the trainer's alone
    r = subprocess.run([sys.executable, "-c", RSS_PROBE, sys.executable, script(SCRIPT),
                        "long.txt", "--level", "word", "--hidden-size", "8", "--wordvec-size", "8",
                        "--max-iters", "3", "--seed", "0", "--out", "w.npz"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert r.returncode == 0, r.stderr
    peak_mb = int(r.stdout.split()[-1]) / 1024
    assert peak_mb < WORD_RSS_BOUND_MB, f"peak RSS {peak_mb:.0f} MB"
    assert "x" * 20000 in read_npz(tmp_path / "w.npz")[1]["vocab"].split(" ")


def test_word_level_keeps_nul_characters_inside_words(tmp_path):
    """"c\\x00" is a word of its own (once merged into "c"), so the training text scores."""
    text = "c\x00 c d\x00e c\n\x00 d c\x00\n" * 20
    write_text(tmp_path / "nul.txt", text)
    run_ok(SCRIPT, ["nul.txt", "--level", "word", "--hidden-size", "5", "--wordvec-size", "4",
                    "--max-iters", "2", "--seed", "0", "--out", "w.npz"], cwd=tmp_path)
    vocab = read_npz(tmp_path / "w.npz")[1]["vocab"].split(" ")
    assert vocab == sorted({"c\x00", "c", "d\x00e", "\x00", "d", "<eos>"})
    r = run("sample.py", ["w.npz", "--score-file", "nul.txt", "--json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tokens_scored"] == len(text.split()) + text.count("\n") - 1


@pytest.mark.slow
def test_val_file_validates_on_another_text_in_the_training_vocabulary(tmp_path):
    write_text(tmp_path / "train.txt", "the cat sat on the mat\na dog ran\n" * 40)
    write_text(tmp_path / "valid.txt", "the dog sat\n")  # 4 words with the line end
    out = run_ok(SCRIPT, ["train.txt", "--level", "word", "--val-file", "valid.txt",
                          "--max-iters", "8", "--seed", "1", "--out", "w.npz"], tmp_path).stdout
    assert "(440 train, 4 validation)" in out  # all of INPUT trains
    meta = read_npz(tmp_path / "w.npz")[1]
    assert meta["options"]["val_file"] == "valid.txt" and meta["best_val_loss"] is not None
    # the same loss as sample.py's score of that text, one stream from a zero state
    score = json.loads(run_ok("sample.py", ["w.npz", "--score-file", "valid.txt", "--json"],
                              tmp_path).stdout)
    assert abs(meta["best_val_loss"] - score["nats_per_token"]) < 1e-9
    # a word the training text lacks: one line with the word and how many
    write_text(tmp_path / "bad.txt", "the bird sat\n")
    r = run(SCRIPT, ["train.txt", "--level", "word", "--val-file", "bad.txt", "--max-iters", "8",
                     "--seed", "1", "--out", "x.npz"], tmp_path)
    assert_error(r, 2, "1 word(s) not in the model's vocabulary", "'bird'")


def test_plateau_validates_once_an_epoch_and_quarters_the_rate_after_a_worse_validation(tmp_path):
    """ch.6's schedule: one validation an epoch unless --eval-every is given, and the learning
    rate divided by 4 after each validation that is not the best so far; checked against the
    logged validation losses and learning rates."""
    rng = np.random.default_rng(3)
    words = "the cat sat on a mat and dog ran to big red house".split()
    lines = [" ".join(rng.choice(words, 12)) for _ in range(300)]
    write_text(tmp_path / "t.txt", "\n".join(lines) + "\n")
    write_text(tmp_path / "v.txt", "\n".join(lines[:20]) + "\n")
    # 300 lines of 12 words and an <eos> each: 3,900 tokens; N * T = 10 * 5 (the defaults)
    per_epoch = (300 * 13 - 1) // (10 * 5)
    # SGD at 20, no clipping: the loss jumps about, so some validations are worse than earlier ones
    run_ok(SCRIPT, ["t.txt", "--val-file", "v.txt", "--level", "word", "--lr-decay", "plateau",
                    "--learning-rate", "20", "--max-epochs", "8", "--seed", "1", "--log", "log.jsonl",
                    "--log-every", "1", "--sample-every", "0", "--out", "p.npz"], tmp_path)
    records = read_log(tmp_path / "log.jsonl")
    vals = [(r["iter"], r["val_loss"]) for r in records if "val_loss" in r]
    assert [k for k, _ in vals] == [per_epoch * e for e in range(1, 9)]
    lr_at = {r["iter"]: r["lr"] for r in records if "lr" in r}
    lr, best, worse = 20.0, float("inf"), 0
    for k, val_loss in vals[:-1]:  # the last validation has no iteration after it
        if val_loss < best:
            best = val_loss
        else:
            lr, worse = lr / 4, worse + 1
        assert lr_at[k] == lr, (k, lr_at[k], lr)  # iteration k is the first after that validation
    assert 0 < worse < len(vals) - 2  # both branches of the rule were taken
    # --eval-every still decides when given
    run_ok(SCRIPT, ["t.txt", "--val-file", "v.txt", "--level", "word", "--lr-decay", "plateau",
                    "--max-iters", "30", "--eval-every", "10", "--seed", "1", "--log", "log2.jsonl",
                    "--sample-every", "0", "--out", "q.npz"], tmp_path)
    assert [r["iter"] for r in read_log(tmp_path / "log2.jsonl") if "val_loss" in r] == [10, 20, 30]


def test_first_tokens_trains_on_the_first_words_in_their_own_vocabulary(tmp_path):
    write_text(tmp_path / "t.txt", "the cat sat\non the mat\n" + "zebra yak xylophone\n" * 30)
    # the first 8 words: the cat sat <eos> on the mat <eos>
    args = ["t.txt", "--level", "word", "--first-tokens", "8", "--val-fraction", "0",
            "--seq-length", "2", "--batch-size", "2", "--seed", "1", "--out", "w.npz"]
    out = run_ok(SCRIPT, args + ["--max-iters", "2"], tmp_path).stdout
    assert "data has 8 words, 6 unique (8 train, 0 validation)" in out
    meta = read_npz(tmp_path / "w.npz")[1]
    assert meta["vocab"] == "<eos> cat mat on sat the" and meta["options"]["first_tokens"] == 8
    assert meta["token_counts"] == [2, 1, 1, 1, 1, 2]  # <eos> and "the" twice each
    # resumed in that vocabulary; another --first-tokens is refused, naming the stored one
    run_ok(SCRIPT, ["--resume", "w.npz", "--max-iters", "3"], tmp_path)
    assert read_npz(tmp_path / "w.npz")[1]["k"] == 3
    r = run(SCRIPT, ["--resume", "w.npz", "--first-tokens", "9", "--max-iters", "4"], tmp_path)
    assert_error(r, 2, "--first-tokens 9 differs from the 8 stored in w.npz")
