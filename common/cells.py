"""The three recurrent cells (RNN, LSTM, GRU) as one table: each cell's plain layers
(common/time_layers.py), its fast twin (common/fast_layers.py), its gate blocks and carried
states, and how PyTorch and ONNX order its gates.

References:
  https://github.com/oreilly-japan/deep-learning-from-scratch-2 (DLFS2 ch.5-6 and appendix C)
  https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html, https://onnx.ai/onnx/operators/
"""
from typing import NamedTuple

from common import fast_layers, time_layers


class Cell(NamedTuple):
    """What the models, the trace, export and bench know of a recurrent cell, in one place."""
    step: type          # one step as the book writes it (RNN, LSTM, GRU): the trace runs it
    time: type          # the book's T steps, a loop over step layers (TimeRNN, ...)
    fast: type          # its fast twin over T steps: the default models stack these
    gates: tuple        # the blocks of H columns in Wx, Wh and b, in the book's order
    states: tuple       # the carried states, in the order a model's state array stacks them
    quantities: tuple   # the named values step.quantities() gives for each position
    torch_gates: tuple  # PyTorch's gate rows, as the book's gates; None: no nn module computes it
    onnx_gates: tuple   # ONNX's gate rows as (the book's gate, sign)


# ONNX's GRU keeps the previous state with weight z (H = (1 - z) h~ + z H_prev) where the book
# keeps it with 1 - z; sigmoid(-a) = 1 - sigmoid(a), so ONNX's z block is the book's negated.
# PyTorch's nn.GRU applies the reset gate after the hidden product, r * (W_hn h + b_hn), the
# book's GRU before it, W_hn (r * h): no nn.GRU weights compute the book's GRU.
CELLS = {
    "rnn": Cell(time_layers.RNN, time_layers.TimeRNN, fast_layers.TimeRNN, ("a",), ("h",), ("h",),
                ("a",), (("a", 1),)),
    "lstm": Cell(time_layers.LSTM, time_layers.TimeLSTM, fast_layers.TimeLSTM, ("f", "g", "i", "o"),
                 ("h", "c"), ("h", "c", "f", "g", "i", "o"), ("i", "f", "g", "o"),
                 (("i", 1), ("o", 1), ("f", 1), ("g", 1))),
    "gru": Cell(time_layers.GRU, time_layers.TimeGRU, fast_layers.TimeGRU, ("z", "r", "cand"),
                ("h",), ("h", "z", "r", "cand"), None, (("z", -1), ("r", 1), ("cand", 1))),
}
