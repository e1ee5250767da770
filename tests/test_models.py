"""Tests for common/models.py and common/fast_model.py: gradient checks of whole models (a one-layer
RNN, a 2-layer LSTM with dropout masks, a tied GRU, the fused embedding, the book's BetterRnnlm),
the fast model equal to the book's SimpleRnnlm, Rnnlm and BetterRnnlm, the book model equal to
min_char_rnn's lossFun, a 2-layer LSTM copying a key from 20 steps back, and PyTorch float64 when
torch is installed."""
import math

import numpy as np
import pytest

from common import gist
import rnnlm
from common import models, optimizer
from common.fast_model import FastRnnlm
from conftest import TORCH_INSTALL, central_difference, rel_error

# Tolerances, each with where it comes from.
GRAD_REL_ERR = 1e-6    # per-array ||ana - num|| / (||ana|| + ||num||): central differences with
                       # h = 1e-5 (conftest.GRAD_STEP) are exact to O(h^2) ~ 1e-10 plus rounding
                       # ~1e-16 / h, relative to gradients of O(0.1-1): a real error is O(1)
WEIGHT_SCALE = 0.5     # weights of scale 0.5 give gradients of order 1, far from the near-zero
                       # entries where the rounding of a difference quotient dominates
EQUIV_TOL = 1e-9       # SimpleRnnlm vs lossFun, float64: one function computed by two codes, so
                       # only rounding differs (~1e-16 per term over T * H ~ 30 terms)
GENERAL_VS_BOOK_TOL = 1e-10  # FastRnnlm vs the book's models (and fused vs unfused), float64: the same
                             # function by two codes; the loss and gradients are of order 1
COPY_LOSS = 0.1        # nats per copied character: a model that remembers the key is near 0,
                       # one that guesses among 8 keys pays ln 8 = 2.08 (the test checks 20x)
TORCH_TOL = 1e-12      # float64 loss and gradients vs PyTorch: measured 4e-17 (V=7, D=5, H=6)


def grad_check(model, xs, ts, rng):
    """Compare model.grads with central differences of the loss on (xs, ts), starting every
    forward from the same non-zero carried state (so the carry-over is part of the check)."""
    for p in model.params:
        p[...] = WEIGHT_SCALE * rng.standard_normal(p.shape)
    model.forward(xs, ts)  # a first block leaves a non-zero state behind
    state = model.get_state()

    def loss():
        model.set_state(state)
        return model.forward(xs, ts)

    loss()
    model.backward()
    for name, p, g in zip(model.names, model.params, model.grads):
        g_ana = g.copy()
        g_num = central_difference(loss, p)
        err = rel_error(g_ana, g_num)
        assert err < GRAD_REL_ERR, f"{name}: rel error {err:.2e}, maxdiff " \
                                   f"{np.abs(g_ana - g_num).max():.2e}"


def test_one_layer_rnn_gradients():
    rng = np.random.default_rng(0)
    V, D, H, N, T = 7, 4, 5, 2, 3
    model = FastRnnlm(V, D, H, seed=1)
    assert model.names == ["embed_W", "rnn_Wx", "rnn_Wh", "rnn_b", "affine_W", "affine_b"]
    assert [p.shape for p in model.params] == [(V, D), (D, H), (H, H), (H,), (H, V), (V,)]
    grad_check(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), rng)


@pytest.mark.parametrize("cell, L, dropout, tied, V, book_class", [
    ("rnn", 1, 0.0, False, 5, "SimpleRnnlm"), ("rnn", 1, 0.0, False, 40, "SimpleRnnlm"),
    ("lstm", 1, 0.0, False, 5, "Rnnlm"), ("gru", 1, 0.0, False, 40, "Rnnlm"),
    ("lstm", 2, 0.5, True, 5, "BetterRnnlm"), ("gru", 2, 0.3, True, 40, "BetterRnnlm")])
def test_fast_model_equals_the_books_models(cell, L, dropout, tied, V, book_class):
    # V = 5 < N T: the fast model fuses the embedding with Wx; V = 40 > N T picks rows first. The
    # book's model on the plain layers: the same draws, the same dropout masks (generators of one
    # seed), the same loss and every gradient, block after block from the carried state
    rng = np.random.default_rng(11)
    D = H = 6
    N, T = 3, 4
    book = models.book_model(V, D, H, cell, L, dropout, tied, seed=2, rng=np.random.default_rng(7))
    fast = FastRnnlm(V, D, H, cell, L, dropout, tied, seed=2, rng=np.random.default_rng(7))
    assert type(book).__name__ == book_class and book.names == fast.names
    for p, q in zip(book.params, fast.params):
        np.testing.assert_array_equal(p, q)  # the same draws in the same order
        p[...] = q[...] = WEIGHT_SCALE * rng.standard_normal(p.shape)
    for _ in range(3):  # later blocks start from the state the one before carried
        xs, ts = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
        loss_book, loss_fast = book.forward(xs, ts), fast.forward(xs, ts)
        book.backward()
        fast.backward()
        assert abs(loss_book - loss_fast) < GENERAL_VS_BOOK_TOL
        for name, g, h in zip(fast.names, book.grads, fast.grads):
            assert np.abs(g - h).max() < GENERAL_VS_BOOK_TOL, name
        assert np.abs(book.get_state() - fast.get_state()).max() < GENERAL_VS_BOOK_TOL
    # evaluation (dropout off) gives the same scores too
    xs = rng.integers(0, V, (N, T))
    assert np.abs(book.predict(xs) - fast.predict(xs)).max() < GENERAL_VS_BOOK_TOL
    book.reset_state()
    assert book.get_state() is None


def test_book_model_names_what_the_book_has_for_other_options():
    for cell, L, dropout, tied in [("rnn", 2, 0.0, False), ("lstm", 1, 0.5, False),
                                   ("gru", 2, 0.0, False), ("lstm", 3, 0.5, True)]:
        with pytest.raises(ValueError, match="SimpleRnnlm .* Rnnlm .* BetterRnnlm"):
            models.book_model(9, 4, 4, cell, L, dropout, tied)


def test_two_layer_lstm_gradients_with_fixed_dropout_masks():
    rng = np.random.default_rng(1)
    V, D, H, N, T = 6, 3, 4, 2, 5
    model = FastRnnlm(V, D, H, cell="lstm", num_layers=2, dropout=0.4, seed=2,
                        rng=np.random.default_rng(3))
    for drop, shape in zip(model.dropouts, [(N, T, D), (N, T, H), (N, T, H)]):
        drop.set_mask(rng.random(shape) >= 0.4)
    assert model.get_state() is None
    grad_check(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), rng)
    assert model.get_state().shape == (4, N, H)  # h and c of two layers


def test_book_better_rnnlm_gradients_with_fixed_dropout_masks():
    rng = np.random.default_rng(4)
    V, H, N, T = 7, 5, 2, 3
    model = models.BetterRnnlm(V, H, H, dropout_ratio=0.5, seed=5, rng=np.random.default_rng(6))
    assert model.names == ["embed_W", "lstm1_Wx", "lstm1_Wh", "lstm1_b", "lstm2_Wx", "lstm2_Wh",
                           "lstm2_b", "affine_b"]
    for drop in model.drop_layers:
        drop.set_mask(rng.random((N, T, H)) >= 0.5)
    grad_check(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), rng)


def test_tied_gru_gradients_sum_both_uses():
    rng = np.random.default_rng(2)
    V, H, N, T = 8, 5, 3, 4
    model = FastRnnlm(V, H, H, cell="gru", num_layers=2, tie_weights=True, seed=3)
    assert "affine_W" not in model.names  # one array, updated once
    assert np.shares_memory(model.affine.params[0], model.params[0])
    grad_check(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), rng)


def test_fused_embedding_gradients_for_each_cell():
    # V = 5 < N T = 12: the embedding and the first layer's Wx run as one (V, GH) table
    for seed, cell in enumerate(models.CELLS):
        rng = np.random.default_rng(40 + seed)
        V, D, H, N, T = 5, 3, 4, 3, 4
        model = FastRnnlm(V, D, H, cell=cell, seed=seed)
        assert model.embed_proj is not None and model.embed_proj._by_table(N * T)
        grad_check(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), rng)


def test_fused_and_unfused_give_the_same_loss_and_gradients():
    # V = 5 (one-hot matmul), V = 300 (sorted reduction, > 256), both below N T = 320; tied too
    for k, (cell, V, L, tied) in enumerate([("rnn", 5, 1, False), ("lstm", 300, 1, False),
                                            ("gru", 5, 2, True), ("rnn", 300, 2, False)]):
        rng = np.random.default_rng(50 + k)
        D, H, N, T = 4, 4, 16, 20
        xs, ts = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
        fused, unfused = (FastRnnlm(V, D, H, cell, L, tie_weights=tied, seed=k) for _ in range(2))
        for p in fused.params:
            p[...] = WEIGHT_SCALE * rng.standard_normal(p.shape)  # gradients of order 1
        for p, q in zip(unfused.params, fused.params):
            p[...] = q
        unfused.embed_proj = None  # the book's path: TimeEmbedding, then the cell's own x Wx
        for _ in range(2):  # the second block starts from the carried state
            loss_f, loss_u = fused.forward(xs, ts), unfused.forward(xs, ts)
            assert abs(loss_f - loss_u) < GENERAL_VS_BOOK_TOL
            fused.backward()
            unfused.backward()
            for name, g, h in zip(fused.names, fused.grads, unfused.grads):
                assert np.abs(g - h).max() < GENERAL_VS_BOOK_TOL, name


# float32 sums of order 1 over 256-term products: unit roundoff 6e-8 times 256 terms is 1.5e-5
# at most; 1e-4 leaves a margin while a wrong weight or state moves the scores by 1e-2 or more
FROZEN_TOL_F32 = 1e-4


def test_frozen_weights_predict_as_the_plain_path():
    # frozen(K) makes the table, halved gate columns and (float32, K = 4, H = 512: the LSTM's 4 MiB
    # and the GRU's 2 MiB z, r columns of Wh) turned products once; float64, the RNN's 1 MiB Wh and
    # K = 1 keep the plain product. The same math in another BLAS order: GENERAL_VS_BOOK_TOL in
    # float64, FROZEN_TOL_F32 in float32
    for k, (cell, L, tied, K, turned, dtype) in enumerate([
            ("rnn", 1, False, 4, None, np.float64),
            ("lstm", 2, False, 4, "times_Wh_half", np.float32),
            ("gru", 1, True, 4, "times_Wh_zr", np.float32),
            ("lstm", 1, False, 4, None, np.float64),
            ("lstm", 1, False, 1, None, np.float32)]):
        rng = np.random.default_rng(60 + k)
        V, H = 7, 512
        tol = FROZEN_TOL_F32 if dtype == np.float32 else GENERAL_VS_BOOK_TOL
        model = FastRnnlm(V, H, H, cell, L, tie_weights=tied, seed=k, dtype=dtype)
        for p in model.params:
            p[...] = 0.1 * rng.standard_normal(p.shape)  # sums of order 1 through 256-wide products
        start = 0.5 * rng.standard_normal(model.zero_state(K).shape)  # (S, K, H)
        frozen = model.frozen(K)
        product = {"rnn": "times_Wh", "lstm": "times_Wh_half", "gru": "times_Wh_zr"}[cell]
        assert getattr(frozen[1][0], product).turned is (turned is not None)
        plain_state, frozen_state = start, start
        for step in range(3):
            ids = rng.integers(0, V, (K, 1))
            model.set_state(plain_state)
            y_plain, plain_state = model.predict(ids), model.get_state()
            model.set_state(frozen_state)
            y_frozen, frozen_state = model.predict(ids, frozen=frozen), model.get_state()
            assert np.abs(y_plain - y_frozen).max() < tol, (cell, step)
            assert np.abs(plain_state - frozen_state).max() < tol, (cell, step)


def test_book_init_and_initial_loss_is_ln_V():
    V, D, H = 9, 6, 7
    model = models.SimpleRnnlm(V, D, H, seed=4)
    init = np.random.default_rng(4)  # the book's draws, in order: embed, Wx, Wh, affine
    np.testing.assert_array_equal(model.params[0], init.standard_normal((V, D)) / 100)
    np.testing.assert_array_equal(model.params[1], init.standard_normal((D, H)) / np.sqrt(D))
    np.testing.assert_array_equal(model.params[2], init.standard_normal((H, H)) / np.sqrt(H))
    np.testing.assert_array_equal(model.params[4], init.standard_normal((H, V)) / np.sqrt(H))
    assert not model.params[3].any() and not model.params[5].any()
    xs = np.arange(12).reshape(2, 6) % V
    # embed /100 makes every score ~1e-2: the loss is ln V to about 1e-2 relative
    assert abs(model.forward(xs, xs) - math.log(V)) < 0.02 * math.log(V)


def test_equivalence_with_min_char_rnn():
    rng = np.random.default_rng(5)
    V, H, T = 7, 5, 6
    params = {name: WEIGHT_SCALE * rng.standard_normal(shape)
              for name, shape in gist.param_shapes(V, H).items()}
    inputs, targets = rng.integers(0, V, T), rng.integers(0, V, T)
    hprev = 0.5 * rng.standard_normal((H, 1))
    loss, dWxh, dWhh, dWhy, dbh, dby, hlast = gist.lossFun(inputs, targets, hprev, params, clip=None)
    model = models.SimpleRnnlm(V, H, H)
    # the mapping, once: the gist's one-hot x_t times Wxh is row x_t of embed_W = Wxh^T, so the
    # RNN's own input weights are the identity; the rest are transposes (row vs column vectors)
    embed_W, rnn_Wx, rnn_Wh, rnn_b, affine_W, affine_b = model.params
    embed_W[...], rnn_Wx[...], rnn_Wh[...] = params["Wxh"].T, np.eye(H), params["Whh"].T
    rnn_b[...], affine_b[...] = params["bh"][:, 0], params["by"][:, 0]
    affine_W[...] = params["Why"].T
    model.rnn_layer.set_state(hprev.T)  # (1, H)
    loss_book = model.forward(inputs[None], targets[None])
    model.backward()
    # the book takes the mean over N*T positions, the gist the sum over T: a factor of T
    assert abs(loss_book * T - loss) < EQUIV_TOL * loss
    g = model.grads
    for name, ana, ref in [("dWxh", g[0].T, dWxh), ("dWhh", g[2].T, dWhh), ("dbh", g[3], dbh[:, 0]),
                           ("dWhy", g[4].T, dWhy), ("dby", g[5], dby[:, 0])]:
        np.testing.assert_allclose(ana * T, ref, rtol=EQUIV_TOL, atol=EQUIV_TOL, err_msg=name)
    np.testing.assert_allclose(model.rnn_layer.h.T, hlast, rtol=EQUIV_TOL, atol=EQUIV_TOL)


def copy_corpus(rng, segments, keys=8, lag=20):
    """A key, lag - 2 fillers, the cue, the key again, `segments` times after one leading key:
    the character after each cue is a copy of the one lag steps back. Ids: keys 0..keys-1, then
    the filler, then the cue."""
    filler, cue = keys, keys + 1
    seg = np.full((segments, lag + 1), filler)
    seg[:, 0] = seg[:, lag] = rng.integers(0, keys, segments)  # (segments,) the keys
    seg[:, lag - 1] = cue
    return np.concatenate([rng.integers(0, keys, 1), seg.reshape(-1)])


@pytest.mark.slow
def test_two_layer_lstm_copies_a_key_from_20_steps_back():
    # Recipe, measured: windows of T = 21 aligned to the period, so each holds the key and its
    # copy, state reset per window; the loss only on the copied characters (label -1 elsewhere);
    # unit-scale embeddings (the book's randn/100 mutes the key) and forget-gate bias 2; Adam lr
    # 0.01, clip 1.0. Below 0.1 nats after 100-400 iterations for model seeds 1-10, and stays
    # there. With the loss on every position it sits near ln 8 for 850-1,500+ iterations, in
    # PyTorch too (2,800 with PyTorch's default init): the recipe, not the layers, set the pace.
    keys, lag, N, T = 8, 20, 32, 21  # T = lag + 1 inputs: the previous copy, key, fillers, cue
    cue = keys + 1
    ids = copy_corpus(np.random.default_rng(20), N * 25, keys, lag)
    xs, ts = ids[:-1], ids[1:]  # len(xs) = N * 25 * T: get_batch's rows start on a window edge
    ts_copy = np.where(xs == cue, ts, -1)  # the copied characters only; -1: ignored
    test = copy_corpus(np.random.default_rng(21), 200, keys, lag)
    x_test, t_test = test[:-1].reshape(200, T), test[1:].reshape(200, T)  # windows as in training
    assert (x_test[:, -1] == cue).all() and (t_test[:, -1] == x_test[:, -lag]).all()
    # a model without memory does no better than the bigram p(key | cue), uniform over the keys
    bigram = np.log(keys)
    assert bigram > 20 * COPY_LOSS
    model = FastRnnlm(cue + 1, 8, 32, cell="lstm", num_layers=2, seed=3)
    params = dict(zip(model.names, model.params))
    params["embed_W"][...] = np.random.default_rng(22).standard_normal(params["embed_W"].shape)
    for name in ("lstm1_b", "lstm2_b"):
        params[name][:32] = 2.0  # columns [f | g | i | o]: f = sigma(2) = 0.88 at the start
    opt = optimizer.Adam(0.01)

    def copy_loss():
        model.reset_state()
        scores = model.predict(x_test)[:, -1]  # (200, V) after each cue
        scores -= scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))  # (200, V)
        return -log_p[np.arange(200), t_test[:, -1]].mean()

    losses = [copy_loss()]
    assert losses[0] > 1.5  # at init the model has not seen the key either
    for k in range(400):
        x, t = rnnlm.get_batch(xs, ts_copy, N, T, k)  # (N, T): one window of each row
        model.reset_state()
        model.forward(x, t)
        model.backward()
        optimizer.clip_grads(model.grads, 1.0)
        opt.update(model.params, model.grads)
        if k % 50 == 49:
            losses.append(copy_loss())
            if losses[-1] < COPY_LOSS:
                break
    assert losses[-1] < COPY_LOSS, f"copy loss per 50 iterations {np.round(losses, 3)}"


def test_two_layer_lstm_matches_pytorch():
    torch = pytest.importorskip("torch", reason=f"needs torch: {TORCH_INSTALL}")
    V, D, H, N, T = 7, 5, 6, 3, 9
    rng = np.random.default_rng(23)
    model = FastRnnlm(V, D, H, cell="lstm", num_layers=2, seed=24)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape) * WEIGHT_SCALE
    x1, x2, t2 = (rng.integers(0, V, (N, T)) for _ in range(3))
    model.predict(x1)  # a first block: the second starts from its state
    loss = model.forward(x2, t2)
    model.backward()
    params = dict(zip(model.names, model.params))

    def to_pt(W):  # our gate columns [f | g | i | o] -> PyTorch's rows [i | f | g | o]
        f, g, i, o = np.split(W, 4, axis=-1)
        return torch.tensor(np.concatenate([i, f, g, o], axis=-1).T.copy())

    def from_pt(G):  # the inverse, for gradients
        i, f, g, o = np.split(G.numpy().T, 4, axis=-1)
        return np.concatenate([f, g, i, o], axis=-1)

    lstm = torch.nn.LSTM(D, H, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for l in range(2):
            getattr(lstm, f"weight_ih_l{l}").copy_(to_pt(params[f"lstm{l + 1}_Wx"]))
            getattr(lstm, f"weight_hh_l{l}").copy_(to_pt(params[f"lstm{l + 1}_Wh"]))
            getattr(lstm, f"bias_ih_l{l}").copy_(to_pt(params[f"lstm{l + 1}_b"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()  # PyTorch's second bias: ours is the sum
    embed_pt = torch.tensor(params["embed_W"], requires_grad=True)
    W_pt = torch.tensor(params["affine_W"], requires_grad=True)
    b_pt = torch.tensor(params["affine_b"], requires_grad=True)
    with torch.no_grad():
        _, state = lstm(embed_pt[torch.tensor(x1)])
    hs, _ = lstm(embed_pt[torch.tensor(x2)], state)  # state detached: our backward stops there
    loss_pt = torch.nn.functional.cross_entropy((hs @ W_pt + b_pt).reshape(-1, V),
                                                torch.tensor(t2).reshape(-1))
    loss_pt.backward()
    assert abs(loss - loss_pt.item()) < TORCH_TOL
    grads_pt = {"embed_W": embed_pt.grad.numpy(), "affine_W": W_pt.grad.numpy(),
                "affine_b": b_pt.grad.numpy()}
    for l in range(2):
        grads_pt[f"lstm{l + 1}_Wx"] = from_pt(getattr(lstm, f"weight_ih_l{l}").grad)
        grads_pt[f"lstm{l + 1}_Wh"] = from_pt(getattr(lstm, f"weight_hh_l{l}").grad)
        grads_pt[f"lstm{l + 1}_b"] = from_pt(getattr(lstm, f"bias_ih_l{l}").grad)
    for name, g in zip(model.names, model.grads):
        np.testing.assert_allclose(g, grads_pt[name], rtol=0, atol=TORCH_TOL, err_msg=name)
