"""
Throughput figures: training and sampling characters per second, each also as a share of this
machine's measured matrix-multiply speed. A benchmark, not a test: run it on a quiet machine.

    python bench.py            # all figures (a few minutes)
    python bench.py --quick    # fewer, shorter runs
    python bench.py --table    # only the reference table, each figure beside its reference
    python bench.py quality --input FILE --budget-seconds 70 --out CKPT   # the quality race
    python bench.py ptb                        # ch. 6 on PTB: fast vs the book's layers, words/s
    python bench.py ptb --budget-seconds 900   # the PTB recipe for 15 minutes: validation perplexity

References:
  https://gist.github.com/karpathy/d4dee566867f8291f086  (the baseline the figures compare with)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import cli, gist, gist_reference
from common.checkpoint import prepare_output, sibling
from common.fast_model import FastRnnlm
from common.vocabulary import read_text

HERE = os.path.dirname(os.path.abspath(__file__))
SHAKESPEARE = os.path.join(HERE, "data", "tinyshakespeare.txt")  # data/download_shakespeare.py


# What steers OpenBLAS away from the kernels it would pick for this CPU by itself: removed
# together from the timing children's environment unless --steered (users' machines set neither)
STEERING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CHILD_ENV = None  # the timing children's environment; None: this process's own (set by main)


def child_env(steered):
    """The environment for the timing children: this one as it is (steered), or without STEERING."""
    return dict(os.environ) if steered else {k: v for k, v in os.environ.items() if k not in STEERING}


def use_environment(steered):
    """Set the timing children's environment (see child_env) and print what they will run."""
    global CHILD_ENV
    CHILD_ENV = child_env(steered)
    print(blas_note(steered), flush=True)


# The timers: every figure is timed by both clocks, (wall seconds, CPU seconds), the work done
# here by clocked, a child process by run_child; a caller that reports one clock takes [0].

def clocked(fn):
    """(wall seconds, CPU seconds of this process and its threads) that fn() takes."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_child(cmd):
    """Run cmd with the timing children's environment, output discarded -> (wall seconds, CPU
    seconds of the child and its threads, from getrusage: less disturbed by other processes)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, errors="replace")
    wall = time.perf_counter() - t0
    if done.returncode:  # the child's own last line says why (its progress bars are dropped)
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise cli.UserError(f"{os.path.basename(cmd[1])} failed (exit {done.returncode}): {last}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def rates(amount, short, long_):
    """amount / (long_ - short) for each clock of two (wall, CPU) runs: per second of that clock."""
    return [amount / (b - a) for a, b in zip(short, long_)]


def in_child(call):
    """Evaluate `call`, an expression over this module (e.g. "gist_sample_clocks(65)"), in a
    child process with the timing children's environment -> its value, sent back as JSON."""
    code = f"import json, bench; print(json.dumps(bench.{call}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=CHILD_ENV, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def kernels():
    """What BLAS numpy runs in this process and with which kernels (threadpoolctl reads
    OpenBLAS's own answer; without it, numpy's build record), and PyTorch's CPU kernels."""
    try:
        from threadpoolctl import threadpool_info
        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        blas = ", ".join(f"{i['internal_api']} {i['version']} with {i.get('architecture')} kernels, "
                         f"{i['num_threads']} threads" for i in info)
    except ImportError:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{build['name']} {build.get('version')} (kernels: pip install threadpoolctl to see)"
    line = f"numpy {np.__version__}, {blas}"
    try:
        import torch
        line += (f"; PyTorch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} kernels, "
                 f"{torch.get_num_threads()} threads")
    except ImportError:
        pass
    return line


def blas_note(steered):
    """One line: the environment's steering, what the timing children run and, where they differ,
    what this process runs."""
    set_here = ", ".join(f"{k}={os.environ[k]}" for k in STEERING if k in os.environ)
    children = in_child("kernels()")
    if not set_here:
        return f"timing children run {children} (no steering in the environment)"
    if steered:
        return f"timing children keep {set_here} (--steered) and run {children}"
    return (f"timing children run without {set_here}: {children}; with them (tests, CI) this "
            f"process runs {kernels()}")


def bench_text(path=None):
    """Tiny Shakespeare when present, else a generated text of 65 symbols (the same V)."""
    if path is None and os.path.exists(SHAKESPEARE):
        path = SHAKESPEARE
    if path is not None:
        return path, read_text(path)[0]
    rng = np.random.default_rng(0)
    symbols = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?\n"[:65]))
    text = "".join(symbols[rng.zipf(1.3, size=1_000_000) % 65])
    path = os.path.join(tempfile.mkdtemp(), "bench65.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, text


def matmul_gflops(dtype, n=1024, repeats=10):
    """Best-of-repeats speed of an n x n matrix multiply, in GFLOP/s (2 n^3 flops). On a shared
    machine one slow run is common; the best of ten is this machine's peak, as the shares use it."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)  # (n, n)
    a @ a  # warm up the BLAS threads
    best = min(clocked(lambda: a @ a)[0] for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def flops_per_char(H, V):
    """6 (H^2 + H V): forward and backward of the recurrence and the output layer (the input
    projection is a column pick)."""
    return 6 * (H * H + H * V)


def train_cli_chars_per_s(path, B, H, T, dtype, iters):
    """Training speed of the whole min_char_rnn.py process: two runs of different length, so
    start-up (imports, reading the corpus) cancels in the difference."""
    def run(n):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, os.path.join(HERE, "min_char_rnn.py"), path,
                   "--batch-size", str(B), "--hidden-size", str(H), "--seq-length", str(T),
                   "--dtype", dtype, "--max-iters", str(n), "--sample-every", "0",
                   "--val-fraction", "0", "--save-every", "0", "--out", os.path.join(tmp, "c.npz")]
            return run_child(cmd)[0]
    short, long_ = run(iters // 5), run(iters)
    return (iters - iters // 5) * B * T / (long_ - short)


def gist_iteration_seconds(V, H=100, T=25, iters=200, clocks=False):
    """Seconds per iteration of the original gist's algorithm (common/gist_reference.py: one-hot
    vectors, per-step np.dot, per-array clip and Adagrad), the baseline to compare with; clocks:
    both (wall, CPU) seconds."""
    rs = np.random.RandomState(0)
    params = gist_reference.init(V, H, rs)
    mems = [np.zeros_like(a) for a in params]
    data = rs.randint(V, size=T * iters + 1)
    h = np.zeros((H, 1))

    def loop():
        nonlocal h
        for n in range(iters):
            p = n * T
            loss, *grads, h = gist_reference.lossFun(data[p:p + T], data[p + 1:p + T + 1], h, *params)
            gist_reference.adagrad(params, grads, mems, 0.1)
    seconds = [s / iters for s in clocked(loop)]
    return seconds if clocks else seconds[0]


def torch_chars_per_s(V, B, H, T, iters):
    """Training speed of PyTorch's nn.RNN on the same model (one-hot inputs, tanh RNN, linear
    output, cross-entropy summed over T and averaged over B, gradients clipped to +-5,
    Adagrad), float32, or None when torch is not installed (it is never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    rnn, out = torch.nn.RNN(V, H, batch_first=True), torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.Adagrad(params, lr=0.1)
    data = torch.randint(V, (B, T * iters + 1))
    h = torch.zeros(1, B, H)

    def iteration(k):
        nonlocal h
        x = torch.nn.functional.one_hot(data[:, k * T:(k + 1) * T], V).float()  # (B, T, V)
        y = data[:, k * T + 1:(k + 1) * T + 1]                                   # (B, T)
        hs, h_last = rnn(x, h)
        loss = torch.nn.functional.cross_entropy(out(hs).reshape(B * T, V), y.reshape(B * T),
                                                 reduction="sum") / B
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        h = h_last.detach()

    iteration(0)  # warm-up
    seconds = clocked(lambda: [iteration(k) for k in range(1, iters)])[0]
    return (iters - 1) * B * T / seconds


def gist_sample_chars_per_s(V, H=100, n=5000, clocks=False):
    """Characters per second of the original gist's sample(): one-hot input vector, three
    matrix-vector products, softmax, np.random.choice over range(V) (rewritten here); clocks:
    by both (wall, CPU) clocks."""
    rs = np.random.RandomState(0)
    Wxh, Whh, Why = rs.randn(H, V) * 0.01, rs.randn(H, H) * 0.01, rs.randn(V, H) * 0.01
    bh, by = np.zeros((H, 1)), np.zeros((V, 1))

    def loop():
        h = np.zeros((H, 1))
        x = np.zeros((V, 1))
        x[0] = 1
        for _ in range(n):
            h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
            y = np.dot(Why, h) + by
            p = np.exp(y) / np.sum(np.exp(y))
            ix = np.random.choice(range(V), p=p.ravel())
            x = np.zeros((V, 1))
            x[ix] = 1
    rate = [n / s for s in clocked(loop)]
    return rate if clocks else rate[0]


def sample_cli_chars_per_s(path, H, K, n, dtype="float64"):
    """Generation speed of the whole sample.py process for K samples side by side (chars in
    all): two lengths, so start-up and loading cancel in the difference."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "m.npz")
        subprocess.run([sys.executable, os.path.join(HERE, "min_char_rnn.py"), path,
                        "--hidden-size", str(H), "--max-iters", "1", "--sample-every", "0",
                        "--val-fraction", "0", "--dtype", dtype, "--out", ckpt],
                       check=True, env=CHILD_ENV, stdout=subprocess.DEVNULL)

        def run(length):
            cmd = [sys.executable, os.path.join(HERE, "sample.py"), ckpt, "--length", str(length),
                   "--num-samples", str(K)]
            return run_child(cmd)[0]
        short, long_ = run(n // 10), run(n)
    return (n - n // 10) * K / (long_ - short)


def startup_100mb():
    """Seconds and peak memory (MB) of a min_char_rnn.py process that reads, checks and splits
    a 100 MB corpus (the bundled corpus repeated) and stops before training."""
    import resource
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.txt")
        with open(os.path.join(HERE, "data", "corpus.txt"), "rb") as f:
            corpus = f.read()
        with open(path, "wb") as f:
            f.write(corpus * (100_000_000 // len(corpus)))
        size = os.path.getsize(path)
        cmd = [sys.executable, os.path.join(HERE, "min_char_rnn.py"), path, "--max-iters", "0",
               "--out", os.path.join(tmp, "c.npz")]
        seconds = run_child(cmd)[0]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    return size, seconds, peak_mb


def layers_vs_lossfun(N=32, T=100, H=512, V=65, repeats=5):
    """Seconds for one forward + backward of the layer system's FastRnnlm (rnn cell, D = H: the
    general model, tested equal to the book's SimpleRnnlm) and of lossFun on the same sizes,
    float32, best of `repeats`, measured alternately so both see the same machine."""
    rng = np.random.default_rng(0)
    xs, ts = rng.integers(V, size=(N, T)), rng.integers(V, size=(N, T))  # (N, T)
    model = FastRnnlm(V, H, H, seed=0, dtype=np.float32)
    params = gist.init_params(V, H, 0, np.float32)
    h = np.zeros((H, N), dtype=np.float32)  # (H, B)

    def layers():
        model.forward(xs, ts)
        model.backward()

    def gist_math():
        gist.lossFun(xs, ts, h, params)

    best = {layers: float("inf"), gist_math: float("inf")}
    for _ in range(repeats):
        for fn in best:
            best[fn] = min(best[fn], clocked(fn)[0])
    return best[layers], best[gist_math]


# The configurations for the quality race, by training budget: the best found on 2 cores (see
# docs/speed.md). rnnlm.py options, float32, cosine decay over the time budget.
QUALITY_SHORT = {"cell": "gru", "num_layers": 1, "hidden_size": 384, "wordvec_size": 128,
                 "embed_std": 0.5, "seq_length": 20, "batch_size": 48, "optimizer": "adam",
                 "learning_rate": 0.004, "lr_decay": "cosine", "max_grad_norm": 1,
                 "dtype": "float32"}
QUALITY_LONG = {"cell": "gru", "num_layers": 1, "hidden_size": 384, "wordvec_size": 64,
                "dropout": 0.1, "seq_length": 40, "batch_size": 32, "optimizer": "adam",
                "learning_rate": 0.005, "lr_decay": "cosine", "max_grad_norm": 1,
                "dtype": "float32"}
LONG_BUDGET = 180  # seconds: from here on the wider, regularised model pays off
QUALITY_EVALS = 6  # validation points on the curve (each one pass over the validation text)


def as_flags(config):
    """rnnlm.py's options by name -> its command line: {"hidden_size": 100, "tie_weights": ""}
    gives ["--hidden-size", "100", "--tie-weights"] (an empty value: a switch)."""
    return [x for k, v in config.items() for x in ("--" + k.replace("_", "-"), str(v)) if x]


def raced(inputs, config, budget, seed, out, evals):
    """rnnlm.py on inputs (its input file and validation option) with config (its options by name)
    for `budget` seconds of training, validated `evals` times on the way and once at the end; the
    best-validation checkpoint goes to out (None: dropped) -> (the log's validation records,
    wall seconds of the whole command)."""
    folder = os.path.dirname(os.path.abspath(out)) if out else None
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        run_path = os.path.join(tmp, "run.npz")
        cmd = [sys.executable, os.path.join(HERE, "rnnlm.py"), *inputs, *as_flags(config), "--seed", str(seed),
               "--time-budget", str(budget), "--budget-clock", "training",
               "--eval-every-seconds", str(budget / evals), "--eval-every", "0",
               "--save-every", "0", "--log", run_path[:-4] + ".log", "--log-every", "0",
               "--out", run_path]
        print("running: " + " ".join(cmd[1:]), flush=True)
        wall = run_child(cmd)[0]
        with open(run_path[:-4] + ".log", encoding="utf-8") as f:
            records = [json.loads(line) for line in f if '"val_loss"' in line]
        if out:
            os.replace(sibling(run_path, "best"), out)
    return records, wall


def quality(argv):
    """Train the race configuration for --budget-seconds of training on the first 90% of the
    text, keep the best-validation checkpoint at --out, print the (time, val loss) curve and
    finally val_loss=<x>: nats/char over text[int(0.9 len):], one stream from a zero state."""
    ap = argparse.ArgumentParser(prog="bench.py quality", description=quality.__doc__)
    ap.add_argument("--input", required=True, help="text file (e.g. tiny Shakespeare)")
    ap.add_argument("--budget-seconds", type=cli.positive_float, default=70.0,
                    help="seconds of training, evaluations excluded (default 70)")
    ap.add_argument("--out", required=True, help="where the best-validation checkpoint goes")
    ap.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ap.add_argument("--steered", action="store_true",
                    help=f"train with the environment as it is (default: without {' and '.join(STEERING)})")
    args = ap.parse_args(argv)
    use_environment(args.steered)
    text = read_text(args.input)[0]
    prepare_output(args.out)
    val_path = args.out[:-4] + ".val.txt" if args.out.endswith(".npz") else args.out + ".val.txt"
    with open(val_path, "w", encoding="utf-8", newline="") as f:
        f.write(text[int(0.9 * len(text)):])  # the validation text, for sample.py --score-file
    config = QUALITY_SHORT if args.budget_seconds < LONG_BUDGET else QUALITY_LONG
    records, wall = raced([args.input, "--val-fraction", "0.1"], config, args.budget_seconds,
                          args.seed, args.out, QUALITY_EVALS)
    print(f"{'train seconds':>13s}  {'iteration':>9s}  val loss (nats/char)")
    for r in records:
        print(f"{r['train_seconds']:13.1f}  {r['iter']:9d}  {r['val_loss']:.4f}")
    chars = records[-1]["iter"] * config["batch_size"] * config["seq_length"] if records else 0
    seconds = records[-1]["train_seconds"] if records else float("nan")
    print(f"{chars / seconds / 1000:.1f}k chars/s of training; whole command {wall:.0f} s; "
          f"best checkpoint {args.out}; validation text {val_path}")
    print(f"val_loss={min(r['val_loss'] for r in records):.6f}")
    return 0


USAGE = ("bench.py [-h] [--quick] [--table | --book-layers] [--steered] [--input INPUT]\n"
         "       bench.py quality --input FILE [--budget-seconds S] --out CKPT [--seed N] "
         "[--steered]\n"
         "       bench.py ptb [--data DIR] [--iters N] [--repeats R] [--budget-seconds S] "
         "[--seed N] [--out CKPT] [--steered]")
SUBCOMMANDS = ("bench.py quality: the quality race. Trains the best configuration found for\n"
               "the budget for S seconds on the first 90% of FILE, keeps the best-validation\n"
               "checkpoint at CKPT and prints the validation-loss curve, then val_loss=<x>\n"
               "(bench.py quality --help for its options).\n"
               "bench.py ptb: the book's chapter 6 model on the Penn Treebank, training words/s\n"
               "on the fast and the book's layers side by side; --budget-seconds S trains the\n"
               "project's recipe S seconds and prints its validation perplexity curve.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    subcommand = {"quality": quality, "ptb": ptb}.get(argv[0]) if argv else None
    if subcommand:
        return subcommand(argv[1:])
    ap = argparse.ArgumentParser(
        usage=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SUBCOMMANDS,
        description="Throughput figures: training and sampling characters per second, each also\n"
                    "as a share of this machine's measured matrix-multiply speed and as a ratio\n"
                    "against the gist (and PyTorch when installed). A benchmark, not a test: run\n"
                    "it on a quiet machine (a few minutes; --quick for less).")
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer configurations")
    ap.add_argument("--input", default=None,
                    help="text to train on (default: tiny Shakespeare if present, else generated)")
    ap.add_argument("--table", action="store_true",
                    help="only the reference table: each figure beside its reference (a few "
                         "minutes)")
    ap.add_argument("--steered", action="store_true",
                    help="time with the environment as it is; by default the timing children "
                         f"run without {' and '.join(STEERING)}, as users' machines do")
    ap.add_argument("--book-layers", action="store_true",
                    help="only rnnlm.py's fast layers against the book's plain ones "
                         "(--book-layers), for each cell")
    args = ap.parse_args(argv)
    use_environment(args.steered)
    if args.book_layers:
        fast_vs_book_layers(bench_text(args.input)[0], args.quick)
        return 0
    if args.table:
        path, text = bench_text(args.input)
        reference_table(path, len(set(text)), args.quick)
        return 0
    # first, while no other child process has raised the children's peak memory figure
    size, seconds, peak_mb = startup_100mb()
    print(f"start-up on a {size / 1e6:.0f} MB corpus: {seconds:.1f} s, peak memory {peak_mb:.0f} MB")
    path, text = bench_text(args.input)
    V = len(set(text))
    peak = {d: in_child(f"matmul_gflops({d!r})") for d in ("float64", "float32")}
    print(f"corpus {path}: {len(text)} chars, V = {V}")
    print(f"matrix multiply (1024^3): float64 {peak['float64']:.1f} GFLOP/s, "
          f"float32 {peak['float32']:.1f} GFLOP/s")
    scale = 0.3 if args.quick else 1.0
    training_rows(path, V, peak, scale)
    generation_rows(path, V, scale)
    layers, gist_math = in_child("layers_vs_lossfun()")
    print(f"Rnnlm (rnn cell, equal to SimpleRnnlm) forward + backward (N=32, T=100, D=H=512, "
          f"V=65, float32): {layers * 1e3:.1f} ms; lossFun on the same sizes: {gist_math * 1e3:.1f} ms; "
          f"ratio {layers / gist_math:.2f}")
    reference_table(path, V, args.quick)
    return 0


def training_rows(path, V, peak, scale):
    """Training speed of the whole min_char_rnn.py process at a few sizes, against the gist's
    work, the matrix-multiply peak (raised where a run beats it) and PyTorch's nn.RNN."""
    gist = in_child(f"gist_iteration_seconds({V})")
    gist_cps = 25 / gist
    print(f"gist baseline (B=1, H=100, T=25, float64): {gist_cps / 1000:.1f}k chars/s "
          f"({gist * 1e3:.3f} ms per iteration)")
    configs = [(1, 100, 25, 4000), (32, 100, 25, 1500), (32, 512, 100, 100)]
    print("training, whole min_char_rnn.py process (start-up removed):")
    for B, H, T, iters in configs:
        for dtype in ("float64", "float32"):
            cps = train_cli_chars_per_s(path, B, H, T, dtype, max(10, int(iters * scale)))
            achieved = cps * flops_per_char(H, V) / 1e9  # GFLOP/s of this training run
            peak[dtype] = max(peak[dtype], achieved)  # a measured rate is never above the peak
            share = achieved / peak[dtype]
            line = (f"  B={B:<3d} H={H:<4d} T={T:<4d} {dtype}: {cps / 1000:8.1f}k chars/s  "
                    f"{cps / gist_cps:5.2f}x gist  {100 * share:5.1f}% of matmul peak")
            torch_cps = in_child(f"torch_chars_per_s({V}, {B}, {H}, {T}, {max(10, iters // 20)})") \
                if dtype == "float32" and B > 1 else None
            if torch_cps:
                line += f"  {cps / torch_cps:5.2f}x PyTorch nn.RNN ({torch_cps / 1000:.1f}k)"
            print(line)


def generation_rows(path, V, scale):
    """Generation speed of the whole sample.py process, one and 8 streams, against the gist's
    sample()."""
    gist_sample = in_child(f"gist_sample_chars_per_s({V})")
    print(f"generation, whole sample.py process (start-up removed; chars/s, all samples "
          f"together); the gist's sample() (H=100) does {gist_sample / 1000:.1f}k chars/s here:")
    n = int(200_000 * scale)
    for H in (100, 512):
        for K in (1, 8):
            cps = sample_cli_chars_per_s(path, H, K, n // K if H == 100 else n // (4 * K))
            print(f"  H={H:<4d} K={K}: {cps / 1000:8.1f}k chars/s  {cps / gist_sample:5.2f}x the "
                  f"gist's sample()")


# ----------------------------------------------------------------------------- the reference table

TABLE_SIZES = {"D": 256, "H": 256, "N": 32, "T": 20}  # the rnnlm.py rows against PyTorch


def rnnlm_run(path, iters, options):
    """(wall, CPU) seconds of a whole rnnlm.py process training iters iterations on path with
    options: no validation, saving or log."""
    with tempfile.TemporaryDirectory() as tmp:
        return run_child([sys.executable, os.path.join(HERE, "rnnlm.py"), path, *options,
                          "--val-fraction", "0", "--max-iters", str(iters), "--save-every", "0",
                          "--eval-every", "0", "--log-every", "0", "--out", os.path.join(tmp, "c.npz")])


def rnnlm_rates(path, iters, tokens, options):
    """Training speed of rnnlm.py on path with options (`tokens` a step) in tokens/s by (wall,
    CPU) clock: runs of iters // 5 and iters iterations, so start-up cancels in the difference."""
    return rates((iters - iters // 5) * tokens, rnnlm_run(path, iters // 5, options),
                 rnnlm_run(path, iters, options))


def rnnlm_cli_rates(path, cell, iters, D, H, N, T, *options):
    """rnnlm_rates of one layer of `cell`, float32, Adam, no clipping, more rnnlm.py options after
    T: chars/s by (wall, CPU) clock."""
    return rnnlm_rates(path, iters, N * T, ["--cell", cell, "--wordvec-size", str(D),
                                            "--hidden-size", str(H), "--batch-size", str(N),
                                            "--seq-length", str(T), "--optimizer", "adam",
                                            "--learning-rate", "0.003", "--dtype", "float32",
                                            *options])


def torch_rnnlm_rates(V, cell, iters, D, H, N, T):
    """The same model in PyTorch: embedding, nn.LSTM or nn.GRU (oneDNN's fused cells on a CPU),
    linear output, mean cross-entropy, Adam, the state carried from batch to batch, float32,
    torch's own thread count -> chars/s by (wall, CPU) clock; None without torch (never a
    dependency)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    cells = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
    embed, layer, out = torch.nn.Embedding(V, D), cells[cell](D, H, batch_first=True), \
        torch.nn.Linear(H, V)
    params = [*embed.parameters(), *layer.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=0.003)
    data = torch.randint(V, (N, T * iters + 1))
    state = None

    def iteration(k):
        nonlocal state
        x, y = data[:, k * T:(k + 1) * T], data[:, k * T + 1:(k + 1) * T + 1]  # (N, T) each
        hs, state = layer(embed(x), state)
        loss = torch.nn.functional.cross_entropy(out(hs).reshape(N * T, V), y.reshape(N * T))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()

    iteration(0)  # warm-up
    return rates((iters - 1) * N * T, (0, 0),
                 clocked(lambda: [iteration(k) for k in range(1, iters)]))


def gist_iteration_rates(V, iters):
    """The gist's training iterations per second, by (wall, CPU) clock (gist_iteration_seconds)."""
    return [1 / s for s in gist_iteration_seconds(V, iters=iters, clocks=True)]


def min_char_rnn_rates(path, steps):
    """Iterations per second of the whole min_char_rnn.py process at the gist's settings (B=1,
    H=100, T=25, float64), by (wall, CPU) clock, start-up removed."""
    def run(n):
        with tempfile.TemporaryDirectory() as tmp:
            return run_child([sys.executable, os.path.join(HERE, "min_char_rnn.py"), path,
                              "--max-iters", str(n), "--sample-every", "0", "--val-fraction", "0",
                              "--save-every", "0", "--out", os.path.join(tmp, "c.npz")])
    return rates(steps - steps // 5, run(steps // 5), run(steps))


def sample_cli_rates(ckpt, K, length):
    """Runs per second of the whole sample.py process making K samples of `length` characters
    side by side, by (wall, CPU) clock: start-up and loading removed (a run of length / 10
    subtracted, scaled back)."""
    def run(n):
        return run_child([sys.executable, os.path.join(HERE, "sample.py"), ckpt, "--length", str(n),
                          "--num-samples", str(K)])
    return [r / length for r in rates(length - length // 10, run(length // 10), run(length))]


def best_of(fns, repeats):
    """For each of fns, the best (highest) of its rates by each clock over `repeats` rounds run
    alternately, so that all see the same machine and a busy moment spoils none."""
    best = [[0.0, 0.0] for _ in fns]
    for _ in range(repeats):
        for b, fn in zip(best, fns):
            b[:] = [max(x, y) for x, y in zip(b, fn() or (float("nan"),) * 2)]
    return best


def ratio(a, b):
    """'1.23x (1.30x by CPU time)': a / b by wall clock, then by the CPU clock ('n/a' when b
    was not measured, e.g. PyTorch not installed)."""
    if not (b[0] and b[1]):
        return "n/a (no reference measured)"
    return f"{a[0] / b[0]:.2f}x ({a[1] / b[1]:.2f}x by CPU time)"


def fast_vs_book_layers(path, quick):
    """rnnlm.py's training speed on the fast layers and on the book's plain ones (--book-layers),
    for each cell at the table's sizes, in alternating rounds: training alone (no samples
    printed), runs long enough that start-up's spread of a few tenths of a second hardly moves
    the fast rate."""
    repeats = 2 if quick else 3
    D, H, N, T = (TABLE_SIZES[k] for k in "DHNT")
    iters = 30 if quick else 150
    print(f"fast layers against the book's: best of {repeats} alternating rounds of {iters // 5} "
          f"and {iters} iterations, rates by wall clock (and by CPU time)")
    for cell in ("rnn", "lstm", "gru"):
        fast, book = best_of([lambda: rnnlm_cli_rates(path, cell, iters, D, H, N, T,
                                                      "--sample-every", "0"),
                              lambda: rnnlm_cli_rates(path, cell, iters, D, H, N, T,
                                                      "--sample-every", "0", "--book-layers")],
                             repeats)
        print(f"  rnnlm.py {cell.upper()} H={H} D={D} N={N} T={T} float32 Adam: fast "
              f"{fast[0] / 1000:.1f}k chars/s, book layers {book[0] / 1000:.1f}k chars/s; "
              f"ratio {ratio(fast, book)}")


def reference_table(path, V, quick):
    """The reference rows: each project figure beside its reference, measured side by side in
    alternating rounds; ratios by wall clock, then by the children's CPU time."""
    repeats = 2 if quick else 3
    D, H, N, T = (TABLE_SIZES[k] for k in "DHNT")
    iters = 60 if quick else 200
    peak32 = in_child("matmul_gflops('float32')")
    print(f"reference table: best of {repeats} alternating rounds, rates by wall clock (and by "
          f"CPU time); float32 matmul peak {peak32:.1f} GFLOP/s in a timing child")
    for cell in ("lstm", "gru"):
        ours, ref = best_of([lambda: rnnlm_cli_rates(path, cell, iters, D, H, N, T),
                             lambda: in_child(f"torch_rnnlm_rates({V}, {cell!r}, {iters}, {D}, "
                                              f"{H}, {N}, {T})")], repeats)
        print(f"  rnnlm.py {cell.upper()} training H={H} D={D} N={N} T={T} float32 Adam: "
              f"{ours[0] / 1000:.1f}k chars/s; PyTorch nn.{cell.upper()}: {ref[0] / 1000:.1f}k "
              f"chars/s; ratio {ratio(ours, ref)}")
    # long enough that one sample takes about a second here (--quick: a third of one): the start-up
    # subtracted (a run of a tenth the length) varies by tens of milliseconds between runs
    length = 60000 if quick else 200000
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "gist.npz")
        run_child([sys.executable, os.path.join(HERE, "min_char_rnn.py"), path, "--max-iters", "1",
                   "--val-fraction", "0", "--out", ckpt])
        many, one, ref = best_of([lambda: sample_cli_rates(ckpt, 8, length),
                                  lambda: sample_cli_rates(ckpt, 1, length),
                                  lambda: in_child(f"gist_sample_chars_per_s({V}, n={length // 20}, clocks=True)")],
                                 repeats)
        print(f"  sample.py H=100, 8 samples of {length} characters side by side: "
              f"{1 / many[0]:.2f} s; one: {1 / one[0]:.2f} s; {ratio(one, many)} the time of one")
        print(f"  sample.py H=100, one stream: {one[0] * length / 1000:.0f}k chars/s; the gist's "
              f"sample() work: {ref[0] / 1000:.0f}k chars/s; ratio "
              f"{ratio([x * length for x in one], ref)}")
    steps = 1500 if quick else 6000
    ours, ref = best_of([lambda: min_char_rnn_rates(path, steps),
                         lambda: in_child(f"gist_iteration_rates({V}, {steps // 10})")], repeats)
    print(f"  min_char_rnn.py B=1 H=100 T=25 float64: {1e3 / ours[0]:.3f} ms/iter; the gist's "
          f"per-step work: {1e3 / ref[0]:.3f} ms/iter; ratio {ratio(ours, ref)}")
    print("  quality race: python bench.py quality --input tinyshakespeare.txt "
          "--budget-seconds 70 --out q.npz (about 100 s a run; report the median of 3 seeds)")


# ----------------------------------------------------------------------------- the Penn Treebank

# The book's chapter 6 Rnnlm on PTB (docs/ptb.md): one LSTM layer, D = H = 100, T = 35, N = 20,
# SGD at 20, the gradients' norm clipped to 0.25, float32; samples off, which it times
PTB_CH6 = {"level": "word", "cell": "lstm", "wordvec_size": 100, "hidden_size": 100,
           "seq_length": 35, "batch_size": 20, "optimizer": "sgd", "learning_rate": 20,
           "max_grad_norm": 0.25, "dtype": "float32"}
# The recipe for a training budget of minutes on 2 cores (docs/ptb.md): chapter 6's model twice as
# wide, its output weights tied to the embedding, dropout 0.25, SGD decayed by a cosine over the
# budget. Chapter 6's own width, tied, overfits within 5 epochs: its validation stalls near 137
PTB_RACE = {**PTB_CH6, "wordvec_size": 200, "hidden_size": 200, "tie_weights": "", "dropout": 0.25,
            "lr_decay": "cosine"}
PTB_EVALS = 6  # validation points on the curve (each one pass over ptb.valid.txt)


def ptb_files(folder):
    """(ptb.train.txt, ptb.valid.txt) in folder; a one-line UserError naming the download when
    one is missing."""
    paths = [os.path.join(folder, f"ptb.{name}.txt") for name in ("train", "valid")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise cli.UserError(f"{missing[0]} not found: fetch the Penn Treebank with "
                            f"`python data/download_ptb.py`, or name its folder with --data")
    return paths


def ptb_speed(train, iters, repeats):
    """The chapter 6 recipe's training words/s on the fast layers and on the book's
    (--book-layers): runs of iters // 5 and iters iterations, each length's quickest of
    `repeats` alternating rounds by each clock, their difference (start-up cancels)."""
    N, T = PTB_CH6["batch_size"], PTB_CH6["seq_length"]
    flags = as_flags(PTB_CH6) + ["--sample-every", "0"]
    print(f"chapter 6 Rnnlm on {os.path.relpath(train)} (LSTM, D=H=100, N={N}, T={T}, SGD, "
          f"float32): words/s of training, runs of {iters // 5} and {iters} iterations, the "
          f"quickest of each in {repeats} alternating rounds, by wall clock (and by CPU time)",
          flush=True)
    paths = {"fast layers": flags, "book layers": flags + ["--book-layers"]}
    runs = {(name, n): [] for name in paths for n in (iters // 5, iters)}  # -> [(wall, CPU)]
    for _ in range(repeats):
        for (name, n), done in runs.items():
            done.append(rnnlm_run(train, n, paths[name]))
    quickest = {key: [min(clock) for clock in zip(*done)] for key, done in runs.items()}
    fast, book = (rates((iters - iters // 5) * N * T, quickest[name, iters // 5],
                        quickest[name, iters]) for name in paths)
    print(f"  fast layers {fast[0]:,.0f} words/s ({fast[1]:,.0f} by CPU time); book layers "
          f"{book[0]:,.0f} words/s ({book[1]:,.0f}); ratio {ratio(fast, book)}")


def ptb_race(train, valid, args):
    """PTB_RACE for args.budget_seconds of training: the validation perplexity curve, then
    val_ppl=<x>, the best (ptb.valid.txt as one stream from a zero state)."""
    records, wall = raced([train, "--val-file", valid], PTB_RACE, args.budget_seconds, args.seed,
                          args.out, PTB_EVALS)
    print(f"{'train seconds':>13s}  {'iteration':>9s}  {'epoch':>5s}  val perplexity")
    words_per_iter = PTB_RACE["batch_size"] * PTB_RACE["seq_length"]
    with open(train, encoding="utf-8") as f:
        train_words = sum(len(line.split()) + 1 for line in f)  # + <eos> per line
    for r in records:
        epoch = r["iter"] * words_per_iter / train_words
        print(f"{r['train_seconds']:13.1f}  {r['iter']:9d}  {epoch:5.2f}  "
              f"{np.exp(r['val_loss']):.2f}")
    last = records[-1]
    print(f"{last['iter'] * words_per_iter / last['train_seconds']:,.0f} words/s of training; "
          f"whole command {wall:.0f} s" + (f"; best checkpoint {args.out}" if args.out else ""))
    print(f"val_ppl={np.exp(min(r['val_loss'] for r in records)):.2f}")


def ptb(argv):
    """The Penn Treebank: the chapter 6 recipe's training words/s on the fast and the book's
    layers side by side, or with --budget-seconds, the project's recipe trained that long and
    the validation perplexity it reaches."""
    ap = argparse.ArgumentParser(prog="bench.py ptb", description=ptb.__doc__)
    ap.add_argument("--data", default=os.path.join(HERE, "data", "ptb"),
                    help="folder holding ptb.train.txt and ptb.valid.txt (default data/ptb)")
    ap.add_argument("--iters", type=cli.positive_int, default=200,
                    help="iterations of the longer timed run; the shorter runs a fifth, and the "
                         "time between them must dwarf start-up's spread (default 200)")
    ap.add_argument("--repeats", type=cli.positive_int, default=3,
                    help="alternating rounds, the best counts (default 3)")
    ap.add_argument("--budget-seconds", type=cli.positive_float, default=None,
                    help="train the project's recipe this many seconds (evaluations excluded) "
                         "and print its validation perplexity curve instead")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --budget-seconds run (default 0)")
    ap.add_argument("--out", default=None,
                    help="where the --budget-seconds run's best checkpoint goes (default: dropped)")
    ap.add_argument("--steered", action="store_true",
                    help=f"run with the environment as it is (default: without {' and '.join(STEERING)})")
    args = ap.parse_args(argv)
    train, valid = ptb_files(args.data)
    if args.out:
        prepare_output(args.out)
    use_environment(args.steered)
    if args.budget_seconds:
        ptb_race(train, valid, args)
    else:
        ptb_speed(train, args.iters, args.repeats)
    return 0


if __name__ == "__main__":
    cli.run(main)
