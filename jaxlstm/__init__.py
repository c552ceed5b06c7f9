"""jaxlstm: an exact, fast, composable LSTM for JAX.

One pure function advances the LSTM by one step (``step``); ``lstm`` scans it over time under ``jit``
and batches it with ``vmap``. Parameters and states are NamedTuple pytrees in Keras layout.
"""

# The package is built in layers, each importing only those below it: core/ (the math: jax and numpy
# only) <- layers/ (bidirectional, stacks, streaming, built on the core) <- the Flax modules (linen,
# nnx), interop/ and the training utilities (checkpoint, sharding, plot) at this level.
# jaxlstm.fast, native, cudnn, pytrees, activations, stack and streaming stay the public paths of
# modules of core/ and layers/: each re-exports its module's public names.
# Submodules: matplotlib loads only when plot draws; interop imports each peer only when one of its
# converters runs.
from . import activations as activations
from . import checkpoint as checkpoint
from . import cudnn as cudnn
from . import fast as fast
from . import interop as interop
from . import plot as plot
from . import pytrees as pytrees
from . import sharding as sharding
from . import stack as stack
from . import streaming as streaming
from .core import init, lstm, step, zero_state
from .core.activations import ACTIVATIONS, hard_sigmoid
from .core.pytrees import (
    BidirectionalParams,
    LayerNormParams,
    LSTMOutput,
    LSTMParams,
    LSTMState,
    PeepholeParams,
)
from .layers.bidirectional import (
    BidirectionalOutput,
    BidirectionalState,
    bidirectional,
    init_bidirectional,
    merge,
)
from .layers.stack import StackOutput, TorchState, from_torch_state, init_stack, stacked_lstm, torch_state
from .layers.streaming import stream_chunk, stream_state, stream_step

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
