"""
Minimal character-level vanilla RNN language model trained with Adagrad: Karpathy's min-char-rnn
as one file you can read top to bottom, exact on its numbers, batched and several times faster.

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (the original min-char-rnn, BSD license)
  https://cs231n.github.io/neural-networks-case-study/  (softmax + cross-entropy gradient p - onehot)
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (ch. 5: truncated BPTT minibatches)
"""
import argparse
import itertools
import math
import os

import numpy as np
from tqdm import tqdm

from common import cli, training
from common.checkpoint import check_arrays
from common.cli import UserError, nonnegative_int, positive_float, positive_int
from common.generation import eval_chunk, gumbel_noise, keep_top_k, noise_block
from common.time_layers import scatter_add_rows

KIND = "min_char_rnn"
DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus.txt")
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def param_shapes(vocab_size, hidden_size):
    """The gist's parameters and their shapes, column-vector convention (x_t is (V, 1))."""
    H, V = hidden_size, vocab_size
    return {"Wxh": (H, V),   # input -> hidden
            "Whh": (H, H),   # hidden -> hidden
            "Why": (V, H),   # hidden -> output
            "bh": (H, 1),    # hidden bias
            "by": (V, 1)}    # output bias


def flat_views(flat, vocab_size, hidden_size):
    """Views of one flat buffer under the gist's names, so that clipping and Adagrad over all
    five arrays are a handful of numpy calls on `flat` instead of five of each."""
    views, start = {}, 0
    for name, shape in param_shapes(vocab_size, hidden_size).items():
        size = shape[0] * shape[1]
        views[name] = flat[start:start + size].reshape(shape)
        start += size
    return views


def num_params(vocab_size, hidden_size):
    return sum(a * b for a, b in param_shapes(vocab_size, hidden_size).values())


def init_params(vocab_size, hidden_size, seed, dtype=np.float64):
    """The gist's initialisation: randn * 0.01 drawn in the order Wxh, Whh, Why from
    RandomState(seed) (so seed S replays np.random.seed(S) in the gist), zero biases.
    Returns a dict of the gist's names; the arrays are views of one flat buffer."""
    rs = np.random.RandomState(seed)
    flat = np.zeros(num_params(vocab_size, hidden_size), dtype=dtype)  # (P,) all parameters
    params = flat_views(flat, vocab_size, hidden_size)
    for name in ("Wxh", "Whh", "Why"):
        params[name][...] = rs.randn(*params[name].shape) * 0.01
    return params


def lossFun(inputs, targets, hprev, params, clip=5.0, out=None):
    """Forward and backward pass over T steps of B streams.
    inputs, targets: T ints (one stream) or (B, T) ints; hprev: (H, 1) or (H, B).
    Returns loss (cross-entropy summed over T, averaged over B), dWxh, dWhh, dWhy, dbh, dby
    (clipped elementwise to [-clip, clip]; clip=None leaves them raw) and hlast (like hprev).
    out: optional flat (P,) buffer that receives the gradients (they are returned as its views)."""
    Wxh, Whh, Why, bh, by = (params[name] for name in PARAM_NAMES)
    inputs = np.asarray(inputs)
    targets = np.asarray(targets)
    if inputs.ndim == 1:  # one stream, as in the gist
        inputs, targets = inputs[None, :], targets[None, :]  # (1, T)
    B, T = inputs.shape
    H, V = Wxh.shape
    dtype = Wxh.dtype

    # forward pass. The states are stored as rows: hs[t + 1] is h_t^T, (B, H), so that every
    # step reads and writes one contiguous block and the products over all T*B steps below are
    # plain matrix multiplies of (T*B, .) views, with no copies.
    ids = inputs.T.reshape(T * B)          # (T*B,) input of step t, stream b at row t*B + b
    tgt = targets.T.reshape(T * B)         # (T*B,) its target
    hs = np.empty((T + 1, B, H), dtype=dtype)  # (T+1, B, H) hs[t + 1] = h_t^T, hs[0] = h_{-1}^T
    hs[0] = hprev.T
    # x_t is one-hot, so Wxh x_t is column x_t of Wxh: picking the columns for all T steps at once
    # is the same math as the gist's V-wide one-hot products, without the (V, T, B) one-hot tensor.
    hraw = Wxh.T[ids].reshape(T, B, H)     # (T, B, H) (Wxh x_t)^T for every step, a new array
    hraw += bh.T                           # (Wxh x_t + bh)^T
    # Each step is three numpy calls writing into arrays made beforehand (the matrix product, the
    # add, tanh): at B = 1 a call's fixed cost outweighs its arithmetic. One stream takes the steps
    # as vectors (H,), so numpy asks BLAS for a matrix-vector product and reads Whh^T as a view.
    if B == 1:
        h_steps, a_steps, Whh_T = hs[:, 0], hraw[:, 0], Whh.T  # (T+1, H), (T, H), (H, H) view
    else:  # rows (B, H) times a contiguous Whh^T: BLAS's matrix product is up to 2x slower on a view
        h_steps, a_steps, Whh_T = hs, hraw, Whh.T.copy()   # (T+1, B, H), (T, B, H), (H, H)
    hWhh = np.empty_like(h_steps[0])       # (H,) or (B, H) scratch for (Whh h_{t-1})^T
    for h_prev, a, h in zip(h_steps[:-1], a_steps, h_steps[1:]):
        np.dot(h_prev, Whh_T, out=hWhh)    # (Whh h_{t-1})^T
        a += hWhh                          # (Wxh x_t + Whh h_{t-1} + bh)^T
        np.tanh(a, out=h)                  # h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)
    hs_out = hs[1:].reshape(T * B, H)      # (T*B, H) h_t^T of every step (a view)
    ys = hs_out @ Why.T                    # (T*B, V) (Why h_t)^T
    ys += by.T                             # y_t = Why h_t + by, unnormalised log-probs
    # softmax: subtracting each row's max leaves p_t unchanged and keeps exp() from overflowing
    ys -= ys.max(axis=1, keepdims=True)
    rows = np.arange(T * B)                # (T*B,)
    ps = np.exp(ys)                        # (T*B, V) unnormalised p_t
    sums = ps.sum(axis=1, keepdims=True)   # (T*B, 1)
    # loss_t = -log p_t[target] = log(sum_j exp(y_j)) - y_target
    loss = float(np.log(sums).sum() - ys[rows, tgt].sum()) / B

    # backward pass: compute gradients going backwards
    grads = np.empty(num_params(V, H), dtype=dtype) if out is None else out  # (P,)
    d = gradient_views(grads, V, H)
    dy = ps                                # (T*B, V) reuses the buffer of ps
    sums *= B                              # (T*B, 1) the loss is a mean over the B streams:
    dy /= sums                             # p_t / B
    dy[rows, tgt] -= 1 / B                 # softmax with cross-entropy gives dy = p - onehot
    np.matmul(dy.T, hs_out, out=d["Why"])  # dWhy = sum_t dy_t h_t^T
    dy.sum(axis=0, out=d["by"][:, 0])      # dby = sum_t dy_t
    dh = dy @ Why                          # (T*B, H) (Why^T dy_t)^T, the gradient into h_t from y_t
    dtanh = np.multiply(hs_out, hs_out)    # (T*B, H) h_t^2
    np.subtract(1, dtanh, out=dtanh)       # tanh' = 1 - h_t^2
    # the steps backwards, as vectors (H,) for one stream and rows (B, H) for several, as forward
    dh_steps = dh.reshape(T, B, H)[:, 0] if B == 1 else dh.reshape(T, B, H)  # view of dh
    dt_steps = dtanh.reshape(T, B, H)[:, 0] if B == 1 else dtanh.reshape(T, B, H)  # view of dtanh
    dh_steps[T - 1] *= dt_steps[T - 1]     # dhraw_{T-1} = (1 - h^2) * dh: no step T sends back
    dh_next = np.empty_like(dh_steps[0])   # (H,) or (B, H) scratch for (Whh^T dhraw_{t+1})^T
    for dhraw_next, dh_t, dt in zip(dh_steps[::-1], dh_steps[-2::-1], dt_steps[-2::-1]):
        np.dot(dhraw_next, Whh, out=dh_next)   # (Whh^T dhraw_{t+1})^T: h_t feeds h_{t+1} via Whh
        dh_t += dh_next                        # dh_t = Why^T dy_t + Whh^T dhraw_{t+1}
        dh_t *= dt                             # dhraw_t = (1 - h_t^2) * dh_t, backprop through tanh
    dhraw = dh                             # (T*B, H) gradient at the tanh inputs, every step
    np.matmul(dhraw.T, hs[:-1].reshape(T * B, H), out=d["Whh"])  # dWhh = sum_t dhraw_t h_{t-1}^T
    dhraw.sum(axis=0, out=d["bh"][:, 0])   # dbh = sum_t dhraw_t
    # dWxh = sum_t dhraw_t x_t^T adds dhraw_t into column x_t: rows of dWxh^T, summed per id
    # (a one-hot product for V <= 256, a sort-and-reduce beyond: never a (T*B, V) tensor then)
    scatter_add_rows(d["Wxh"].T, ids, dhraw)
    if clip is not None:
        np.clip(grads, -clip, clip, out=grads)  # the gist's elementwise clip, against exploding gradients
    hlast = hs[T].T.copy()                 # (H, B) h_{T-1}, the next block's hprev
    return (loss, d["Wxh"], d["Whh"], d["Why"], d["bh"], d["by"], hlast)


_last_views = (None, None)  # the last buffer gradient_views split, and its views


def gradient_views(grads, vocab_size, hidden_size):
    """flat_views of lossFun's gradient buffer, kept for the buffer seen last: the training loop
    passes the same one every iteration, and splitting it anew costs about two steps' time at B = 1."""
    global _last_views
    buf, views = _last_views
    if buf is not grads or views["Wxh"].shape != (hidden_size, vocab_size):
        views = flat_views(grads, vocab_size, hidden_size)
        _last_views = (grads, views)
    return views


def sample(params, h, seed_ix, rng, temperature=1.0, top_k=0):
    """Generate characters for K streams side by side, one step at a time; yields a (K,) int
    array per step, for as long as the caller takes them.
    h: (H, K) state after the inputs before seed_ix (not modified); seed_ix: K ints, the first
    inputs. temperature 0 is greedy argmax; top_k > 0 samples among the k most likely only."""
    Wxh, Whh, Why, bh, by = (params[name] for name in PARAM_NAMES)
    H, V = Wxh.shape
    K = len(seed_ix)
    dtype = Wxh.dtype
    top_k = top_k if 0 < top_k < V else 0    # k >= V keeps every character: no filtering
    # Rows again: hr is h^T, (K, H). h_t is needed twice, for y_t = Why h_t + by and for
    # Whh h_t in the next step, so one product with [Whh^T | Why^T] gives both.
    x_rows = (Wxh + bh).T.copy()             # (V, H) row i is (Wxh x + bh)^T for x = onehot(i)
    # C order: concatenating the transposed views would give Fortran order, which OpenBLAS's
    # few-row kernels multiply 2x slower (SkylakeX kernels, 8 rows: 7.8 against 3.3 us)
    W_next = np.concatenate([Whh, Why]).T.copy()  # (H, H+V) [Whh^T | Why^T]
    rec = np.asarray(h.T, dtype=dtype) @ Whh.T  # (K, H) (Whh h_{-1})^T
    ix = np.asarray(seed_ix)                 # (K,)
    block = noise_block(K, V)                # steps of noise drawn at once (bounds memory)
    while True:
        # Gumbel-max: argmax(y + temperature g), g ~ Gumbel(0, 1), draws from softmax(y / temperature)
        noise = gumbel_noise(rng, (block, K, V), temperature, dtype)  # (block, K, V)
        if not top_k:
            noise += by.T                    # fold by into the noise: one add per step less
        for g in noise:
            hr = np.tanh(x_rows.take(ix, axis=0) + rec)  # h = tanh(Wxh x + Whh h_prev + bh)
            z = hr @ W_next                  # (K, H+V) [Whh h, Why h]
            rec, y = z[:, :H], z[:, H:]      # (K, H), (K, V)
            if top_k:
                y += by.T                    # y = Why h + by
                keep_top_k(y, top_k)         # below the k-th largest logit is never drawn
            ix = (y + g).argmax(axis=1)      # (K,) the sampled characters
            yield ix


def evaluate(params, ids, h=None, chunk=None):
    """Total cross-entropy (nats) of predicting ids[1:] from ids[:-1] as one stream from state h
    (default zero), the state carried across chunks. Returns (nats, number of characters
    predicted, the state after ids[:-1])."""
    H, V = params["Wxh"].shape
    chunk = chunk or eval_chunk(V)
    if h is None:
        h = np.zeros((H, 1), dtype=params["Wxh"].dtype)  # (H, 1)
    nats = 0.0
    for s in range(0, len(ids) - 1, chunk):
        inputs = ids[s:min(s + chunk, len(ids) - 1)]
        loss, *_, h = lossFun(inputs, ids[s + 1:s + 1 + len(inputs)], h, params, clip=None)
        nats += loss
    return nats, len(ids) - 1, h


# ----------------------------------------------------------------------------- training

def build_parser():
    ap = argparse.ArgumentParser(
        description="Train Karpathy's min-char-rnn (tanh RNN, Adagrad) on a text file.")
    i, f = positive_int, nonnegative_int
    ap.add_argument("input", nargs="*", help="UTF-8 text files or folders (their files) to train "
                    "on, joined in sorted path order (default: the bundled data/corpus.txt, or "
                    "the input stored in the --resume checkpoint)")
    model = ap.add_argument_group("model, data and optimiser (stored in the checkpoint)")
    model.add_argument("--hidden-size", type=i, default=100, help="hidden units H (default 100)")
    model.add_argument("--seq-length", type=i, default=25,
                       help="characters per stream per iteration, T (default 25)")
    model.add_argument("--learning-rate", type=positive_float, default=0.1,
                       help="Adagrad learning rate (default 0.1)")
    model.add_argument("--batch-size", type=i, default=1,
                       help="streams B trained side by side, cut from B offsets (default 1)")
    training.add_data_options(model, "the initial weights and the samples")
    run_group = ap.add_argument_group("run control (may change on --resume)")
    run_group.add_argument("--max-iters", type=f, default=None,
                           help="stop after this many iterations in all, resumed ones included "
                                "(default: run until interrupted, as the gist)")
    run_group.add_argument("--out", default=None, help="checkpoint file (default: "
                           "out/min_char_rnn-<input name>.npz, or the --resume file); the best by "
                           "validation loss is kept beside it as <name>.best.npz")
    training.add_print_options(run_group, "a sample and the loss")
    run_group.add_argument("--eval-max-chars", type=f, default=0,
                           help="evaluate on at most this many validation characters (default 0: "
                                "all)")
    training.add_run_options(run_group)
    return ap


# options that define the model, the data or the optimiser: fixed for the life of a run
RUN_DEFINING = ("hidden_size", "seq_length", "learning_rate", "batch_size", "dtype",
                "val_fraction", "seed", "encoding")


def parse(argv):
    """The options, and the checkpoints of --resume and --init-from (arrays, meta) or None."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = cli.given_options(parser, argv, RUN_DEFINING)
    resumed, init = training.start_options(args, given, RUN_DEFINING, ("hidden_size",), KIND)
    if not args.input:
        args.input = [DEFAULT_INPUT]
    if args.out is None:
        stem = training.input_stem(args.input)
        args.out = os.path.join("out", f"min_char_rnn-{stem}.npz")
    return args, resumed, init


def load_data(args, meta=None, init_meta=None):
    """Read and split the corpus -> (vocab, counts, train ids, val ids, input files)."""
    vocab, ids, counts, files = training.load_corpus(args, "char", meta, init_meta)
    train, val = training.split_ids(ids, args.val_fraction, "character")
    B, T = args.batch_size, args.seq_length
    if len(train) // B < T + 1:
        raise UserError(
            f"the training text has {len(train)} characters, too few for --batch-size {B} and "
            f"--seq-length {T}: each of the {B} streams needs at least T + 1 = {T + 1}, so at "
            f"least {B * (T + 1)} characters; use a longer text or smaller values")
    return vocab, counts, train, val, files


def main(argv=None):
    np.seterr(all="ignore")  # overflow is checked explicitly (run.check below), not warned about
    args, resumed, init = parse(argv)
    meta = resumed and resumed[1]
    vocab, counts, train, val, files = load_data(args, meta, init and init[1])
    run = training.Run(args, "char", meta)  # checks --out and --log before any training
    H, T, B, V = args.hidden_size, args.seq_length, args.batch_size, len(vocab)
    dtype = np.dtype(args.dtype)
    ix_to_char = dict(enumerate(vocab.tokens))
    print(f"data has {len(train) + len(val)} characters, {V} unique "
          f"({len(train)} train, {len(val)} validation); {num_params(V, H)} parameters.")
    print("options: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))
    # B streams of S characters each, cut from B offsets of the training text: (B, S)
    S = len(train) // B
    streams = train[:B * S].reshape(B, S)
    eval_ids = val[:args.eval_max_chars] if args.eval_max_chars else val

    # state: parameters and Adagrad memory as flat buffers (P,), the gist's names as views
    flat, mem, n, p, smooth_loss, hprev, rng = start_state(args, V, resumed, init)
    params = flat_views(flat, V, H)
    grads = np.empty_like(flat)  # (P,) dWxh ... dby, written by lossFun
    step = np.empty_like(flat)   # (P,) scratch for the Adagrad step
    run.begin(n, args.max_iters)

    def save(path):
        arrays = {name: params[name] for name in PARAM_NAMES}
        arrays.update({"m" + k: v for k, v in flat_views(mem, V, H).items()})
        arrays["hprev"] = hprev
        run.save(path, arrays, {
            **training.data_meta(KIND, vocab, counts, args, RUN_DEFINING, files),
            "n": n, "p": p, "smooth_loss": smooth_loss, "rng_state": rng.bit_generator.state,
            **run.meta()}, n)

    while args.max_iters is None or n < args.max_iters:
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + T + 1 >= S or n == 0:
            hprev = np.zeros((H, B), dtype=dtype)  # reset RNN memory
            p = 0  # go from start of data
        inputs = streams[:, p:p + T]           # (B, T)
        targets = streams[:, p + 1:p + T + 1]  # (B, T) the next character of each input

        # sample from the model now and then (every --sample-every iterations, or by the clock)
        print_now = run.print_due(n)
        if print_now:
            sample_ix = sample(params, hprev[:, :1], inputs[:1, 0], rng)
            txt = "".join(ix_to_char[ix[0]] for ix in itertools.islice(sample_ix, args.sample_length))
            tqdm.write(f"----\n {txt} \n----")

        # forward seq_length characters through the net and fetch gradient
        loss, *_, hprev = lossFun(inputs, targets, hprev, params, out=grads)
        run.check(loss, "the loss", n)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        if print_now:
            tqdm.write(f"iter {n}, loss: {smooth_loss:f}")  # print progress
        run.trained(n, loss / T, loss=loss, loss_per_char=loss / T, smooth_loss=smooth_loss)

        # perform parameter update with Adagrad: mem += g^2, param -= lr g / sqrt(mem + 1e-8)
        np.multiply(grads, grads, out=step)
        mem += step
        np.add(mem, 1e-8, out=step)
        np.sqrt(step, out=step)
        np.divide(grads, step, out=step)
        step *= args.learning_rate
        flat -= step
        run.check(float(flat.max()) + float(flat.min()), "the weights", n)  # NaN or inf anywhere

        p += T  # move data pointer
        n += 1  # iteration counter
        run.progress(n, B * T, lambda: f"loss {smooth_loss:.3f}")
        finished = args.max_iters is not None and n >= args.max_iters
        if len(val) and (finished or (args.eval_every and n % args.eval_every == 0)):
            nats, count, _ = evaluate(params, eval_ids)
            run.validated(n, nats / count, save, val_bits_per_char=nats / count / math.log(2))
            finished = finished or run.out_of_patience  # --patience: no new best for a while
        if finished or run.stop.signum or (args.save_every and n % args.save_every == 0):
            save(args.out)
        if run.stop.signum:
            return run.interrupted(n)
        if finished:
            break
    run.close()
    where = f"; saved to {args.out}" if args.out in run.saved else ""  # no iterations: nothing saved
    print(f"done: {n} iterations, smooth loss {smooth_loss:.4f}{where}")
    return 0


def initial_loss(V, T):
    """The loss at iteration 0, where every character is equally likely: T ln V."""
    return -math.log(1.0 / V) * T


def start_state(args, V, resumed, init):
    """The parameters and Adagrad memory as flat (P,) buffers, and the loop's state: fresh, from
    --init-from's weights, or as a resumed run saved it -> (flat, mem, n, p, smooth_loss, hprev,
    rng)."""
    H, B, dtype = args.hidden_size, args.batch_size, np.dtype(args.dtype)
    flat = np.empty(num_params(V, H), dtype=dtype)  # (P,) Wxh, Whh, Why, bh, by
    mem = np.zeros_like(flat)                        # (P,) Adagrad memory mWxh ... mby
    params, mems = flat_views(flat, V, H), flat_views(mem, V, H)
    if resumed:
        arrays, meta = resumed
        shapes = param_shapes(V, H)
        check_arrays(args.resume, arrays, {**shapes, **{"m" + k: s for k, s in shapes.items()},
                                           "hprev": (H, B)})
        for name in PARAM_NAMES:
            params[name][...] = arrays[name]
            mems[name][...] = arrays["m" + name]
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        print(f"resuming {args.resume} at iteration {meta['n']}")
        hprev = arrays["hprev"].astype(dtype)  # (H, B)
        return flat, mem, meta["n"], meta["p"], meta["smooth_loss"], hprev, rng
    start = init_params(V, H, args.seed, dtype)
    if init:
        check_arrays(args.init_from, init[0], param_shapes(V, H))
        start = init[0]
        print(f"starting from the weights of {args.init_from}")
    for name in PARAM_NAMES:
        params[name][...] = start[name]
    smooth_loss = initial_loss(V, args.seq_length)
    return flat, mem, 0, 0, smooth_loss, np.zeros((H, B), dtype=dtype), np.random.default_rng(args.seed)


if __name__ == "__main__":
    cli.run(main)
