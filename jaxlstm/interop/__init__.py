"""Weights in and out of other libraries, and jaxlstm's own save/load.

One submodule per peer; each imports its peer only inside its functions, so importing
``jaxlstm.interop`` (or any submodule) stays light:

    keras        live ``keras.layers.LSTM`` / ``Bidirectional`` layers and their ``get_weights()``
    keras_files  Keras 3 ``.keras`` / ``.weights.h5`` and legacy tf.keras ``.h5`` files, read with h5py
    torch        ``nn.LSTM`` / ``nn.LSTMCell`` state_dicts, ``.pt`` (weights_only) and ``.safetensors``
    flax         linen ``LSTMCell`` / ``OptimizedLSTMCell`` params, NNX ``LSTMCell`` / ``OptimizedLSTMCell``
    equinox      ``equinox.nn.LSTMCell``
    haiku        ``haiku.LSTM`` params
    addons       TensorFlow Addons ``LayerNormLSTMCell`` / ``PeepholeLSTMCell`` weights (no TF import)
    io           jaxlstm's own lossless format (safetensors + JSON config, no pickle)

Submodules load on first attribute access: ``jaxlstm.interop.torch.from_torch(...)``.

A converter to a peer that has no such cell refuses the LSTM variants (``layer_norm``,
``peepholes``, 3 gate blocks), naming the field: ``torch.to_torch`` of layer-normalised params raises
``ValueError("params[0]: PyTorch has no layer-norm LSTM: params[0].layer_norm is set")``.

``InvalidFileError`` (a ``ValueError`` naming the file) is what every loader raises for a file it
cannot read (truncated, corrupt or crafted): ``keras_files``, ``io.load``, ``torch.load_torch_file``
and ``jaxlstm.checkpoint.restore``; catch ``jaxlstm.interop.InvalidFileError`` for all of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .._safe_files import InvalidFileError  # numpy and the standard library only: stays light

if TYPE_CHECKING:  # type checkers see the submodules; at run time they load on first access
    from . import addons, equinox, flax, haiku, io, keras, keras_files, torch

_SUBMODULES = ("keras", "keras_files", "torch", "flax", "equinox", "haiku", "addons", "io")

__all__ = ["InvalidFileError", "keras", "keras_files", "torch", "flax", "equinox", "haiku", "addons", "io"]


def __getattr__(name: str) -> ModuleType:
    # Lazy: loading a submodule never imports its peer, but this keeps even our own code off the
    # `import jaxlstm.interop` path.
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
