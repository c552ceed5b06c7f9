"""jaxlstm: an exact, fast, composable LSTM for JAX.

One pure function advances the LSTM by one step (``step``); ``lstm`` scans it over time under ``jit``
and batches it with ``vmap``. Parameters and states are NamedTuple pytrees in Keras layout.
"""

from . import checkpoint, plot, sharding  # submodules; matplotlib loads only when plot draws
from . import interop  # lazy: each peer is imported only when one of its converters runs
from .activations import ACTIVATIONS, hard_sigmoid
from .core import init, lstm, step, zero_state
from .pytrees import BidirectionalParams, LSTMOutput, LSTMParams, LSTMState

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BidirectionalParams",
    "LSTMOutput",
    "LSTMParams",
    "LSTMState",
    "hard_sigmoid",
    "init",
    "lstm",
    "step",
    "zero_state",
]
