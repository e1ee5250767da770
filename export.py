"""
Take a checkpoint further: to PyTorch's layout (a safetensors file for nn.Embedding, nn.RNN or
nn.LSTM, nn.Linear), to an ONNX model for ONNX Runtime, and PyTorch weights back to a checkpoint.

References:
  https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html  (gate rows i, f, g, o)
  https://onnx.ai/onnx/operators/onnx__LSTM.html  (gates i, o, f, c; B = [Wb, Rb])
  https://onnx.ai/onnx/operators/onnx__GRU.html  (gates z, r, h; H = (1 - z) h~ + z H_prev)
  https://github.com/oreilly-japan/deep-learning-from-scratch-2  (common/time_layers.py)
  https://huggingface.co/docs/safetensors  (the tensor file; metadata is str -> str)
"""
import argparse
import importlib
import json
import os

import numpy as np

from common.checkpoint import (FORMAT_VERSION, array_problem, check_fields, check_output,
                               is_counts, is_int, save_checkpoint, write_atomic)
from common.cli import UserError, run
from common.interface import KINDS, GistModel, LayerModel, load_model
from common.models import layer_prefixes
from common.cells import CELLS
from common.vocabulary import LEVELS, SURROGATE, Vocabulary, check_file, counts_key

INSTALL = "pip install -r requirements-export.txt"
ONNX_OPSET = 17      # RNN, LSTM, GRU, Gather, Slice, Squeeze (axes as input) all exist here
ONNX_IR_VERSION = 8  # the oldest IR that carries opset 17: ONNX Runtime 1.13 and later load it

# Gate blocks. The book keeps an LSTM's columns as [f | g | i | o] and a GRU's as [z | r | h~],
# each block H wide. A target layout lists, for each of its gates in order, the book's block it
# takes and a sign (the cell table, common/cells.py CELLS, names them).
TORCH_GATES = {name: tuple((c.gates.index(g), 1) for g in c.torch_gates)
               for name, c in CELLS.items() if c.torch_gates}
ONNX_GATES = {name: tuple((c.gates.index(g), sign) for g, sign in c.onnx_gates)
              for name, c in CELLS.items()}

GRU_NO_TORCH = ("PyTorch's nn.GRU applies the reset gate after the hidden product, r * (W_hn h + "
                "b_hn), and the book's GRU before it, W_hn (r * h): no nn.GRU weights compute "
                "this model. Export it with --to onnx (ONNX's GRU with linear_before_reset = 0 "
                "is exact)")

# metadata keys of an exported file, each value a JSON text; the way back needs these
REQUIRED_META = ("kind", "level", "vocab", "cell", "num_layers", "wordvec_size", "hidden_size")


def import_optional(module):
    """Import an optional dependency, or a UserError naming the install line."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"export needs the {module.split('.')[0]} package: "
                        f"{INSTALL}") from None


# ----------------------------------------------------------------------------- the book's layout

class Layers:
    """Any checkpoint in the book's row-vector layout: embed (V, D), per layer Wx (D or H, GH),
    Wh (H, GH) and b (GH,), head_W (H, V), head_b (V,); plus what the file's metadata carries.
    The gist's model is the book's with D = H, embed = Wxh^T and Wx = I (see checkpoint_layers)."""

    def __init__(self, kind, level, tokens, counts, cell, embed, layers, head_W, head_b, tied,
                 options):
        self.kind, self.level, self.tokens, self.counts = kind, level, tokens, counts
        self.cell, self.embed, self.layers = cell, embed, layers
        self.head_W, self.head_b, self.tied, self.options = head_W, head_b, tied, options
        self.V, self.D = embed.shape
        self.H = layers[0][1].shape[0]
        self.dtype = embed.dtype

    def metadata(self):
        """The str -> JSON-text record both files carry: enough to rebuild the checkpoint."""
        return {k: json.dumps(v) for k, v in {
            "format": "min-char-rnn export", "format_version": 1, "kind": self.kind,
            "level": self.level, "vocab": self.tokens, "cell": self.cell,
            "num_layers": len(self.layers), "wordvec_size": self.D, "hidden_size": self.H,
            "tie_weights": self.tied, "dtype": str(self.dtype), "token_counts": self.counts,
            "options": self.options}.items()}


def checkpoint_layers(path):
    """A checkpoint of either kind, loaded and checked by the model interface -> Layers."""
    model = load_model(path)
    counts = [int(c) for c in model.meta[counts_key(model.level)]]
    options = model.meta.get("options", {})
    cell, embed_W, layers, head_W, head_b, tied = model.book_layers()
    return Layers(model.kind, model.level, model.tokens, counts, cell, embed_W, layers, head_W,
                  head_b, tied, options)


def gates(W, H, order):
    """Book columns (..., GH) -> the target's gate rows (GH, ...): block j times sign s, for
    each (j, s) of `order`; a bias (GH,) stays 1-D. Only picks, transposes and negates."""
    blocks = [s * W[..., j * H:(j + 1) * H] for j, s in order]  # each (..., H)
    return np.concatenate(blocks, axis=-1).T  # (GH, ...)


def ungates(W, H, order):
    """The inverse of gates(): target rows (GH, ...) -> book columns (..., GH)."""
    blocks = [None] * len(order)
    for k, (j, s) in enumerate(order):
        blocks[j] = s * W[k * H:(k + 1) * H]  # (H, ...) target block k is book block j
    return np.concatenate(blocks, axis=0).T  # (..., GH)


# ----------------------------------------------------------------------------- PyTorch

def torch_tensors(m):
    """Layers -> {name: array} in the layout of nn.Embedding(V, D), nn.RNN or nn.LSTM(D, H,
    num_layers=L, batch_first=True), nn.Linear(H, V), in the checkpoint's dtype. PyTorch computes
    x W_ih^T + b_ih + h W_hh^T + b_hh: W_ih = Wx^T with the gates reordered, b_hh = 0."""
    if m.cell == "gru":
        raise UserError(GRU_NO_TORCH)
    order = TORCH_GATES[m.cell]
    out = {"embed.weight": m.embed}  # (V, D)
    for l, (Wx, Wh, b) in enumerate(m.layers):
        out[f"rnn.weight_ih_l{l}"] = gates(Wx, m.H, order)  # (GH, D or H)
        out[f"rnn.weight_hh_l{l}"] = gates(Wh, m.H, order)  # (GH, H)
        out[f"rnn.bias_ih_l{l}"] = gates(b, m.H, order)     # (GH,)
        out[f"rnn.bias_hh_l{l}"] = np.zeros_like(b)         # (GH,) the book has one bias
    out["head.weight"] = m.head_W.T  # (V, H) a tied model repeats embed.weight here
    out["head.bias"] = m.head_b      # (V,)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def read_torch_file(path):
    """A safetensors file -> ({name: array}, metadata parsed from JSON), with one-line errors."""
    check_file(path, "safetensors file", regular=True)
    st = import_optional("safetensors")
    import_optional("safetensors.numpy")
    try:
        with st.safe_open(path, framework="np") as f:
            raw = f.metadata()
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # e.g. "F32", "BF16"
            if dtypes <= {"F32", "F64"}:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # the Rust reader's SafetensorError on a damaged file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not a usable safetensors file ({reason}): export "
                        "it again with save_file") from None
    if not dtypes <= {"F32", "F64"}:
        raise UserError(f"{path} holds {', '.join(sorted(dtypes))} tensors: save them all as "
                        "float32 or all as float64 (model.float() or model.double())")
    if not raw:
        raise UserError(f"{path} has no metadata: write it with save_file(..., "
                        "metadata=...) passing on the metadata of the exported file")
    meta = {}
    for key in REQUIRED_META:
        if key not in raw:
            raise UserError(f"{path} has no {key!r} in its metadata: pass on the exported "
                            "file's metadata when you save")
    for key, text in raw.items():
        try:
            meta[key] = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise UserError(f"{path}: metadata {key!r} is not JSON text: {text[:40]!r}"
                            ) from None
    return tensors, meta


def layers_from_torch(path, tensors, meta):
    """The way back: PyTorch tensors and their metadata -> (checkpoint arrays, meta, notes)."""
    kind, level, tokens, cell = meta["kind"], meta["level"], meta["vocab"], meta["cell"]
    if kind not in KINDS:
        raise UserError(f"{path}: metadata kind {kind!r} is not one of "
                        + ", ".join(map(repr, KINDS)))
    if cell == "gru":
        raise UserError(f"{path} holds a GRU: there is no nn.GRU layout to come from. "
                        + GRU_NO_TORCH.split(": ", 1)[0])
    if cell not in ("rnn", "lstm"):
        raise UserError(f"{path}: metadata cell {cell!r} is not \"rnn\" or \"lstm\"")
    check_tokens(path, tokens, level)
    L, D, H = (meta[k] for k in ("num_layers", "wordvec_size", "hidden_size"))
    if not all(is_int(1)(n) for n in (L, D, H)):
        raise UserError(f"{path}: metadata num_layers, wordvec_size and hidden_size must be "
                        "positive integers")
    if not LayerModel.OPTIONS["num_layers"][1](L):  # before any tensor name is made from L
        raise UserError(f"{path}: metadata num_layers = {L} is more layers than a trainer "
                        "makes (at most 64)")
    G, V = len(CELLS[cell].gates), len(tokens)
    shapes = {"embed.weight": (V, D)}
    for l in range(L):
        shapes.update({f"rnn.weight_ih_l{l}": (G * H, D if l == 0 else H),
                       f"rnn.weight_hh_l{l}": (G * H, H),
                       f"rnn.bias_ih_l{l}": (G * H,), f"rnn.bias_hh_l{l}": (G * H,)})
    shapes.update({"head.weight": (V, H), "head.bias": (V,)})
    check_tensors(path, tensors, shapes)
    counts = meta.get("token_counts")
    if counts is None:
        counts = [1] * V  # a file without counts: the first sampled token is drawn uniformly
    elif not is_counts(counts, V):
        raise UserError(f"{path}: metadata token_counts must be a list of {V} counts (integers "
                        ">= 0), one per token; or leave it out")
    order, notes = TORCH_GATES[cell], []
    layers = []
    for l in range(L):
        Wx = ungates(tensors[f"rnn.weight_ih_l{l}"], H, order)  # (D or H, GH)
        Wh = ungates(tensors[f"rnn.weight_hh_l{l}"], H, order)  # (H, GH)
        b_ih, b_hh = tensors[f"rnn.bias_ih_l{l}"], tensors[f"rnn.bias_hh_l{l}"]  # (GH,) each
        # the book has one bias; b_ih + 0 would turn a -0.0 into +0.0, so add only when needed
        b = ungates(b_ih + b_hh if b_hh.any() else b_ih, H, order)  # (GH,)
        if b_hh.any():
            notes.append(f"layer {l}: bias_hh is not zero: summed into the one bias of the book's "
                         "layer (the same function, to float rounding)")
        layers.append((Wx, Wh, b))
    cls = KINDS[kind]
    make = gist_arrays if cls is GistModel else layer_arrays
    arrays, model_options = make(path, meta, tensors, layers, notes)
    options = run_options(path, cls, meta)
    options.update(model_options, dtype=str(tensors["embed.weight"].dtype))
    # weights brought home start new runs (--init-from): a run that has not begun, no optimiser
    # memory to --resume
    ck_meta = {"format_version": FORMAT_VERSION, "kind": kind, "level": level,
               "vocab": Vocabulary(tokens, level).to_meta(), counts_key(level): counts,
               "options": options, **cls.run_state(options, V),
               "imported_from": os.path.abspath(path)}
    cls.check_meta(path, ck_meta)  # the record every reader checks: never write one they refuse
    return arrays, ck_meta, notes


def run_options(path, cls, meta):
    """The kind's run-defining options: those the exported file carried, the kind's defaults
    for any it did not (a file made by hand); each checked before anything is made from it."""
    stored = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    options = {name: stored.get(name, default) for name, default in cls.defaults().items()}
    check_fields(path, options, {name: ok for name, (_, ok) in cls.OPTIONS.items()},
                 "metadata option ")
    return options


def layer_arrays(path, meta, tensors, layers, notes):
    """rnnlm's arrays and model options from the book layers; tied only while head.weight still
    equals embed.weight. Returns (arrays, options)."""
    embed, head_W = tensors["embed.weight"], tensors["head.weight"]  # (V, D), (V, H)
    tied = bool(meta.get("tie_weights")) and np.array_equal(head_W, embed)
    if meta.get("tie_weights") and not tied:
        notes.append("head.weight no longer equals embed.weight: the model comes back untied")
    arrays = {"embed_W": embed}  # (V, D)
    for name, (Wx, Wh, b) in zip(layer_prefixes(meta["cell"], len(layers)), layers):
        arrays.update({name + "_Wx": Wx, name + "_Wh": Wh, name + "_b": b})
    if not tied:
        arrays["affine_W"] = head_W.T  # (H, V)
    arrays["affine_b"] = tensors["head.bias"]  # (V,)
    options = {"level": meta["level"], "cell": meta["cell"], "num_layers": len(layers),
               "wordvec_size": embed.shape[1], "hidden_size": head_W.shape[1],
               "tie_weights": tied}
    return arrays, options


def gist_arrays(path, meta, tensors, layers, notes):
    """The gist's arrays from the book layers; a weight_ih that is no longer I is folded into
    Wxh = weight_ih embed^T (x picks a column: weight_ih (embed^T x) = (weight_ih embed^T) x).
    Returns (arrays, options)."""
    embed = tensors["embed.weight"]  # (V, H)
    if len(layers) != 1 or meta["cell"] != "rnn" or meta["level"] != "char" \
            or embed.shape[1] != layers[0][1].shape[0]:
        raise UserError(f"{path}: a {GistModel.kind} model is one tanh RNN layer over characters with "
                        "wordvec_size equal to hidden_size")
    Wx, Wh, b = layers[0]  # (H, H), (H, H), (H,)
    H = Wh.shape[0]
    if np.array_equal(Wx, np.eye(H, dtype=Wx.dtype)):
        Wxh = embed.T  # (H, V) exactly as exported
    else:
        Wxh = Wx.T @ embed.T  # (H, V) (embed Wx)^T
        notes.append("weight_ih is no longer the identity: folded into Wxh = weight_ih "
                     "embed.weight^T (the same function, to float rounding)")
    arrays = {"Wxh": Wxh, "Whh": Wh.T, "Why": tensors["head.weight"],  # (H, V) (H, H) (V, H)
              "bh": b[:, None], "by": tensors["head.bias"][:, None]}   # (H, 1) (V, 1)
    return arrays, {"hidden_size": H}


def check_tokens(path, tokens, level):
    """The vocabulary of the metadata: a list of distinct strings, sorted as the trainers sort
    (encoding looks characters up by binary search), characters or words without spaces."""
    if level not in LEVELS:
        raise UserError(f"{path}: metadata level must be one of " + ", ".join(map(json.dumps, LEVELS)))
    ok = isinstance(tokens, list) and tokens and all(isinstance(t, str) and t for t in tokens)
    ok = ok and tokens == sorted(set(tokens)) and all(
        t.split() == [t] if level == "word" else len(t) == 1 for t in tokens)
    if not ok:
        raise UserError(f"{path}: metadata vocab must be a JSON list of the model's "
                        "tokens in order (sorted single characters, or words)")
    if any(SURROGATE.search(t) for t in tokens):  # not a character: never in a text read
        raise UserError(f"{path}: metadata vocab holds a lone surrogate (U+D800 to U+DFFF), "
                        "which is not a character")


def check_tensors(path, tensors, shapes):
    """Exactly the expected names (as load_state_dict(strict=True)), shapes, one float dtype."""
    missing = [k for k in shapes if k not in tensors]
    extra = sorted(k for k in tensors if k not in shapes)
    if missing or extra:
        raise UserError(f"{path} does not hold this model's tensors: missing "
                        f"{', '.join(missing) or 'none'}; unexpected "
                        f"{', '.join(extra) or 'none'}")
    dtypes = {str(t.dtype) for t in tensors.values()}
    if len(dtypes) != 1:
        raise UserError(f"{path} holds {' and '.join(sorted(dtypes))} tensors: save them all "
                        "as float32 or all as float64 (model.float() or model.double())")
    for name, shape in shapes.items():
        problem = array_problem(name, tensors[name], shape)
        if problem:
            raise UserError(f"{path}: {problem}")


# ----------------------------------------------------------------------------- ONNX

def onnx_model(m):
    """Layers -> an ONNX ModelProto: tokens int64 (N, T), h0 (L, N, H) [, c0] -> logits
    (N, T, V), hT [, cT], float32, N and T dynamic; one RNN/LSTM/GRU operator per layer."""
    onnx = import_optional("onnx")
    helper, numpy_helper, f32 = onnx.helper, onnx.numpy_helper, np.float32
    H, lstm = m.H, "c" in CELLS[m.cell].states  # an LSTM carries c beside h
    order, op = ONNX_GATES[m.cell], m.cell.upper()
    inits, nodes = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    def node(op_type, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs[0]

    const("embed", m.embed.astype(f32))  # (V, D)
    x = node("Gather", ["embed", "tokens"], ["x_ntd"], axis=0)  # (N, T, D) rows picked
    x = node("Transpose", [x], ["x_0"], perm=[1, 0, 2])  # (T, N, D) ONNX's layout 0 is time-major
    const("axis0", np.array([0], dtype=np.int64))
    const("axis1", np.array([1], dtype=np.int64))
    h_last, c_last = [], []
    for l, (Wx, Wh, b) in enumerate(m.layers):
        const(f"W_{l}", gates(Wx, H, order)[None].astype(f32))  # (1, GH, D or H)
        const(f"R_{l}", gates(Wh, H, order)[None].astype(f32))  # (1, GH, H)
        # B = [Wb | Rb]: the book's one bias as Wb, Rb = 0 (ONNX adds both)
        B = np.concatenate([gates(b, H, order), np.zeros_like(b)])  # (2GH,)
        const(f"B_{l}", B[None].astype(f32))  # (1, 2GH)
        const(f"l_{l}", np.array([l], dtype=np.int64))
        const(f"l1_{l}", np.array([l + 1], dtype=np.int64))
        ins = [x, f"W_{l}", f"R_{l}", f"B_{l}", "",
               node("Slice", ["h0", f"l_{l}", f"l1_{l}", "axis0"], [f"h0_{l}"])]  # (1, N, H)
        outs = [f"y_{l}", f"hT_{l}"]
        if lstm:
            ins.append(node("Slice", ["c0", f"l_{l}", f"l1_{l}", "axis0"], [f"c0_{l}"]))
            outs.append(f"cT_{l}")
        attrs = {"linear_before_reset": 0} if m.cell == "gru" else {}
        node(op, ins, outs, hidden_size=H, **attrs)  # y (T, 1, N, H), hT [, cT] (1, N, H)
        x = node("Squeeze", [f"y_{l}", "axis1"], [f"x_{l + 1}"])  # (T, N, H)
        h_last.append(f"hT_{l}")
        c_last.append(f"cT_{l}")
    hs = node("Transpose", [x], ["hs"], perm=[1, 0, 2])  # (N, T, H)
    const("head_W", m.head_W.astype(f32))  # (H, V) hidden -> scores
    const("head_b", m.head_b.astype(f32))  # (V,)
    node("Add", [node("MatMul", [hs, "head_W"], ["hW"]), "head_b"], ["logits"])  # (N, T, V)
    node("Concat", h_last, ["hT"], axis=0)  # (L, N, H)
    if lstm:
        node("Concat", c_last, ["cT"], axis=0)  # (L, N, H)
    return onnx_wrap(onnx, m, nodes, inits)


def onnx_wrap(onnx, m, nodes, inits):
    """The graph of onnx_model's nodes and initialisers, with its inputs and outputs, as a
    checked ModelProto carrying m's metadata."""
    helper, TP = onnx.helper, onnx.TensorProto
    states = CELLS[m.cell].states  # h (and c): each (L, N, H) in and out
    state = lambda name: helper.make_tensor_value_info(name, TP.FLOAT, [len(m.layers), "N", m.H])
    inputs = [helper.make_tensor_value_info("tokens", TP.INT64, ["N", "T"]),
              *(state(s + "0") for s in states)]
    outputs = [helper.make_tensor_value_info("logits", TP.FLOAT, ["N", "T", m.V]),
               *(state(s + "T") for s in states)]
    graph = helper.make_graph(nodes, f"min_char_rnn_{m.cell}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="min-char-rnn export.py",
                              doc_string="next-token logits of a min-char-rnn checkpoint")
    model.ir_version = ONNX_IR_VERSION
    helper.set_model_props(model, m.metadata())
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------- files

def output_path(args, default, source):
    """--out or the default, checked before any work: a file name in an existing folder, never
    the input itself (symlinks and other spellings included), an existing file only with
    --force."""
    path = args.out or default
    check_output(path, "--out", args.force, [("the input", source)])
    return path


def build_parser():
    ap = argparse.ArgumentParser(
        description="Export a checkpoint to PyTorch (safetensors) or ONNX, or import PyTorch "
                    "weights (safetensors) back into a checkpoint. Needs: " + INSTALL)
    ap.add_argument("checkpoint", nargs="?", help="a .npz written by min_char_rnn.py or rnnlm.py")
    ap.add_argument("--to", choices=("torch", "onnx"), default=None,
                    help="torch: a .safetensors file for nn.Embedding, nn.RNN/nn.LSTM, nn.Linear; "
                         "onnx: an .onnx model (float32) for ONNX Runtime")
    ap.add_argument("--from-torch", default=None, metavar="FILE",
                    help="a .safetensors file in the layout --to torch writes, with its metadata: "
                         "written back as a checkpoint")
    ap.add_argument("--out", default=None, help="output file (default: the input's name with "
                    ".safetensors or .onnx; with --from-torch, .from-torch.npz, so the way back "
                    "never lands on the checkpoint the file came from)")
    ap.add_argument("--force", action="store_true", help="let --out replace an existing file")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if (args.checkpoint is None) == (args.from_torch is None):
        raise UserError("give a CHECKPOINT with --to torch|onnx, or --from-torch FILE")
    if args.from_torch is not None:
        if args.to is not None:
            raise UserError("--to goes with a CHECKPOINT, not with --from-torch")
        out = output_path(args, os.path.splitext(args.from_torch)[0] + ".from-torch.npz",
                          args.from_torch)
        if not out.endswith(".npz"):
            raise UserError(f"--out {out}: a checkpoint's name ends in .npz")
        tensors, meta = read_torch_file(args.from_torch)
        arrays, ck_meta, notes = layers_from_torch(args.from_torch, tensors, meta)
        save_checkpoint(out, arrays, ck_meta)
        for note in notes:
            print("note: " + note)
        print(f"wrote {out}: a {ck_meta['kind']} checkpoint ({ck_meta['options']['dtype']}, "
              f"{len(arrays)} arrays)")
        return 0
    if args.to is None:
        raise UserError("give --to torch or --to onnx")
    suffix = ".safetensors" if args.to == "torch" else ".onnx"
    out = output_path(args, os.path.splitext(args.checkpoint)[0] + suffix, args.checkpoint)
    m = checkpoint_layers(args.checkpoint)
    if args.to == "torch":
        tensors = torch_tensors(m)  # refuses a GRU before anything is written
        data = import_optional("safetensors.numpy").save(tensors, metadata=m.metadata())
        write_atomic(out, lambda f: f.write(data))
        print(f"wrote {out}: {len(tensors)} tensors, {m.dtype}, for nn.Embedding({m.V}, {m.D}), "
              f"nn.{m.cell.upper()}({m.D}, {m.H}, num_layers="
              f"{len(m.layers)}, batch_first=True), nn.Linear({m.H}, {m.V})")
    else:
        write_atomic(out, lambda f: f.write(onnx_model(m).SerializeToString()))
        print(f"wrote {out}: ONNX opset {ONNX_OPSET}, float32, {m.cell.upper()} x "
              f"{len(m.layers)}, inputs tokens (N, T), "
              f"{', '.join(s + '0' for s in CELLS[m.cell].states)} "
              f"({len(m.layers)}, N, {m.H})")
    return 0


if __name__ == "__main__":
    # export has no option that needs less: it holds a few copies of the model's weights
    run(main, memory_hint="freeing memory (export.py holds a few copies of the model's weights)")
