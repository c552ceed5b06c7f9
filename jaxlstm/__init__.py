"""jaxlstm: an exact, fast, composable LSTM for JAX.

One pure function advances the LSTM by one step (``step``); ``lstm`` scans it over time under ``jit``
and batches it with ``vmap``. Parameters and states are NamedTuple pytrees in Keras layout.
"""

# Submodules: matplotlib loads only when plot draws; interop imports each peer only when one of its
# converters runs.
from . import checkpoint as checkpoint
from . import interop as interop
from . import plot as plot
from . import sharding as sharding
from ._bidirectional import BidirectionalOutput, BidirectionalState, bidirectional, init_bidirectional, merge
from .activations import ACTIVATIONS, hard_sigmoid
from .core import init, lstm, step, zero_state
from .pytrees import BidirectionalParams, LayerNormParams, LSTMOutput, LSTMParams, LSTMState, PeepholeParams
from .stack import StackOutput, TorchState, from_torch_state, init_stack, stacked_lstm, torch_state
from .streaming import stream_chunk, stream_state, stream_step

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BidirectionalOutput",
    "BidirectionalParams",
    "BidirectionalState",
    "LSTMOutput",
    "LSTMParams",
    "LSTMState",
    "LayerNormParams",
    "PeepholeParams",
    "StackOutput",
    "TorchState",
    "bidirectional",
    "from_torch_state",
    "hard_sigmoid",
    "init",
    "init_bidirectional",
    "init_stack",
    "lstm",
    "merge",
    "stacked_lstm",
    "step",
    "stream_chunk",
    "stream_state",
    "stream_step",
    "torch_state",
    "zero_state",
]
