"""Tests for common/interface.py: one load_model for every checkpoint kind, and the kept
checkpoints still loading, scoring, generating and resuming to the figures the code that wrote
them recorded in expected.json: tests/fixtures/v1 (format version 1, made before the common/
restructuring) and tests/fixtures/v2 (format version 2, made by tests/fixtures/make_expected.py
before each model kind got one class)."""
import json
import math
import os
import shutil

import numpy as np
import pytest

from common.checkpoint import FORMAT_VERSION, load_checkpoint
from common.fast_model import FastRnnlm
from common.interface import GistModel, LayerModel, load_model
from conftest import FIXTURES, read_log, run_here

V1 = os.path.join(FIXTURES, "v1")
VERSIONS = ("v1", "v2")
EXPECTED = {}
for _v in VERSIONS:
    with open(os.path.join(FIXTURES, _v, "expected.json"), encoding="utf-8") as _f:
        EXPECTED[_v] = json.load(_f)
V1_NAMES = sorted(EXPECTED["v1"]["figures"])  # the six checkpoints
# (version, name) of every kept checkpoint
KEPT = [(v, name) for v in VERSIONS for name in sorted(EXPECTED[v]["figures"])]
GIST_NAMES = ("gist", "gist_b3_f32")    # made by min_char_rnn.py; the other four by rnnlm.py

# Scores of the float64 checkpoints: the old code and this one sum the same per-position losses
# in float64; 1e-9 relative leaves room for a different summation order only (5609 terms of
# ~3 nats each, rounding ~1e-16 each, can move the total by ~1e-12 relative at most).
SCORE_RTOL_F64 = 1e-9
# Scores of the float32 checkpoints (gist_b3_f32, gru_word_tied): each position's loss is computed
# in float32 (unit roundoff 2^-24 = 6e-8) through dot products of at most 10 terms, a softmax and
# a log: a few tens of roundings, ~20 float32 epsilons (2.4e-6) per position even if they all
# add with one sign, and the positions' errors add into a total of the same relative size.
# 1e-5 bounds such reorderings with a 4x margin; a wrong weight, state or token moves the total
# by far more (one changed character of the 5609 moves it by ~1e-4).
SCORE_RTOL_F32 = 1e-5
# Resumed losses: the same arithmetic in the same order as the old code, so equal exactly with
# the BLAS kernels the expected figures were made with; other kernels (another CPU, or
# OPENBLAS_CORETYPE set or not) sum products in another order. float64: 1e-12 relative allows that over these few iterations. float32 (unit
# roundoff 6e-8): each loss is ~20 roundings per position plus the weights' own drift over the
# resumed updates; 1.1e-7 was seen, 1e-5 leaves a wide margin, while a resume that lost the
# optimiser state or the carried state moves the losses by 1e-3 or more.
RESUME_RTOL_F64 = 1e-12
RESUME_RTOL_F32 = 1e-5
RESUME_FIELDS = {"min_char_rnn": ("loss", "loss_per_char", "smooth_loss"),
                 "rnnlm": ("loss", "perplexity", "lr")}


def kept_copy(tmp_path, version):
    """A copy of tests/fixtures/<version> in tmp_path: the commands run there, so nothing in
    tests/ is ever written."""
    folder = tmp_path / version
    shutil.copytree(os.path.join(FIXTURES, version), folder)
    return folder


def read_text_file(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


@pytest.mark.parametrize("version,name", KEPT)
def test_kept_checkpoint_loads_and_scores_the_old_figure(version, name):
    model = load_model(os.path.join(FIXTURES, version, f"{name}.npz"))
    assert model.meta["format_version"] == int(version[1:])
    assert isinstance(model, GistModel if name in GIST_NAMES else LayerModel)
    expected = EXPECTED[version]["figures"][name]["score"]
    text = read_text_file(os.path.join(FIXTURES, version, EXPECTED[version]["score_file"]))
    log_prob, count = model.score(model.encode(text))
    assert count == expected.get("chars_scored" if model.level == "char" else "tokens_scored")
    float32 = model.meta["options"]["dtype"] == "float32"
    rtol = SCORE_RTOL_F32 if float32 else SCORE_RTOL_F64
    assert math.isclose(log_prob, expected["log_prob"], rel_tol=rtol), \
        (log_prob, expected["log_prob"], abs(log_prob / expected["log_prob"] - 1))


@pytest.mark.parametrize("version,name", KEPT)
def test_kept_checkpoint_greedy_text_is_unchanged(version, name, tmp_path):
    r = run_here("sample.py", [f"{name}.npz", "--start", "The", "--temperature", "0",
                               "--length", "40"], cwd=kept_copy(tmp_path, version))
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED[version]["figures"][name]["greedy"]


# Of version 1, only the gist kind's seeded samples are compared: the layer models' sampler now
# draws its Gumbel noise through the one implementation it shares with the gist's sampler
# (common/generation.py), which consumes the generator differently from the version-1 layer-model
# sampler, so their seeded samples changed on purpose. Version 2's were made by the shared one.
@pytest.mark.parametrize("version,name", [(v, n) for v, n in KEPT
                                          if v != "v1" or n in GIST_NAMES])
def test_kept_checkpoint_seeded_samples_are_unchanged(version, name, tmp_path):
    r = run_here("sample.py", [f"{name}.npz", "--seed", "3", "--length", "40", "--num-samples",
                               "2"], cwd=kept_copy(tmp_path, version))
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED[version]["figures"][name]["sampled"]


@pytest.mark.parametrize("version,name", KEPT)
def test_kept_checkpoint_resumes_to_the_old_losses(version, name, tmp_path):
    """--resume a copy to iteration 35: the same --log loss lines as the old code, and the file
    written back is a current-version checkpoint."""
    folder, expected_json = kept_copy(tmp_path, version), EXPECTED[version]
    ckpt = f"resumed_{name}.npz"
    shutil.copyfile(folder / f"{name}.npz", folder / ckpt)
    meta = load_checkpoint(str(folder / ckpt))[1]
    kind = meta["kind"]
    rtol = RESUME_RTOL_F32 if meta["options"]["dtype"] == "float32" else RESUME_RTOL_F64
    script, extra = ("min_char_rnn.py", ["--sample-every", "0"]) if kind == "min_char_rnn" \
        else ("rnnlm.py", [])
    r = run_here(script, ["--resume", ckpt, expected_json["score_file"],
                          "--max-iters", expected_json["resume_max_iters"], "--log", "resume.log",
                          "--log-every", "1", "--eval-every", "0", *extra], cwd=folder)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    got = {r["iter"]: r for r in read_log(folder / "resume.log") if "loss" in r}
    expected = {r["iter"]: r for r in expected_json["figures"][name]["resume_log"] if "loss" in r}
    assert sorted(got) == sorted(expected) and expected
    for k, want in expected.items():
        for field in RESUME_FIELDS[kind]:
            assert math.isclose(got[k][field], want[field], rel_tol=rtol), \
                (k, field, got[k][field], want[field])
    val_got = [r["val_loss"] for r in read_log(folder / "resume.log") if "val_loss" in r]
    val_want = [r["val_loss"] for r in expected_json["figures"][name]["resume_log"] if "val_loss" in r]
    np.testing.assert_allclose(val_got, val_want, rtol=rtol)
    arrays, meta = load_checkpoint(str(folder / ckpt))
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["k" if kind == "rnnlm" else "n"] == expected_json["resume_max_iters"]
    assert load_model(str(folder / ckpt)).meta["format_version"] == 2


# ----------------------------------------------------------------------------- the layer models

def test_sampler_is_greedy_at_temperature_zero_and_streams_are_independent():
    rng = np.random.default_rng(7)
    model = FastRnnlm(11, 4, 6, cell="lstm", seed=8)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape)
    state = 0.3 * rng.standard_normal((2, 3, 6))  # (S, K, H)
    steps = LayerModel(model, None).generate(state, [1, 2, 3], None, 0)
    seq = [ix.copy() for _, ix in zip(range(5), steps)]
    model.set_state(state)
    ix = np.array([1, 2, 3])
    for step in seq:  # the same model's predict, argmax by hand
        ix = model.predict(ix[:, None])[:, 0].argmax(axis=1)
        np.testing.assert_array_equal(step, ix)
    two = LayerModel(model, None).generate(state, [1, 2, 3], np.random.default_rng(9), 1.0)
    one = LayerModel(model, None).generate(state[:, 1:2], [2], np.random.default_rng(9), 1.0)
    assert next(two).shape == (3,) and next(one).shape == (1,)


# ----------------------------------------------------------------------------- next-token
# log-probabilities of K streams one step at a time, the checkpoint's description

STEP_TOL_F64 = 1e-10  # log_probs (the time layers one step at a time) vs trace (the single-step
                      # cells): the same float64 math in another order, ~1e-15 measured
STEP_TOL_F32 = 1e-4   # float32 weights: log_probs computes in float32 (~1e-7 relative per logit,
                      # logits of O(1)), trace in float64 from the same weights


@pytest.mark.parametrize("name", V1_NAMES)
def test_log_probs_of_K_streams_match_each_stream_traced_alone(name):
    m = load_model(os.path.join(V1, name + ".npz"))
    with open(os.path.join(V1, "text.txt"), encoding="utf-8") as f:
        text = f.read(300).rsplit(" ", 1)[0]  # the training text's first whole words
    ids = m.encode(text)
    streams = np.stack([np.roll(ids, -s)[:8] for s in (0, 3, 5)])  # (K, T) three different texts
    K, T = streams.shape
    state = m.initial_state(K)
    tol = STEP_TOL_F32 if m.meta["options"]["dtype"] == "float32" else STEP_TOL_F64
    for t in range(T):
        lp, new_state = m.log_probs(state, streams[:, t])  # (K, V)
        assert lp.shape == (K, len(m.vocab)) and lp.dtype == np.float64
        np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, atol=STEP_TOL_F64)
        for k in range(K):
            ref = np.log(m.trace(streams[k, :t + 1]).probs[-1])  # (V,)
            np.testing.assert_allclose(lp[k], ref, atol=tol)
        assert new_state.shape == state.shape
        state = new_state


@pytest.mark.parametrize("name", V1_NAMES)
def test_info_describes_the_checkpoint(name):
    path = os.path.join(V1, name + ".npz")
    m = load_model(path)
    arrays, meta = load_checkpoint(path)
    info = m.info()
    weights = [a for k, a in arrays.items()  # not the optimizer memory nor the carried state
               if not k.startswith(("opt_", "m")) and k not in ("hprev", "state")]
    assert info["num_params"] == m.num_params == sum(a.size for a in weights)
    assert info["kind"] == meta["kind"] and info["vocab_size"] == len(m.vocab)
    assert info["iterations"] == meta["n" if meta["kind"] == "min_char_rnn" else "k"]
    assert info["input_files"] == [{"name": meta["input"], "size": meta["input_bytes"],
                                    "sha256": meta["input_sha256"]}]
    assert info["train_seconds"] is None  # not recorded by version 1
