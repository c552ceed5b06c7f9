"""Keras 3: live ``keras.layers.LSTM`` / ``Bidirectional(LSTM)`` layers and their ``get_weights()``.

Keras's layout *is* jaxlstm's (kernel ``[I, 4H]``, recurrent_kernel ``[H, 4H]``, bias ``[4H]``, gates
i, f, c, o), so these converters only check shapes and move arrays. Nothing here imports Keras: a live layer is
only asked for ``get_weights`` / ``set_weights`` and its config attributes.

    params = from_keras(layer)            # LSTM -> LSTMParams, Bidirectional -> BidirectionalParams
    to_keras(params, layer)               # set a built layer's weights
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..pytrees import BidirectionalParams, LSTMParams
from ._arrays import (
    LayerParams,
    expect_rank,
    expect_shape,
    gate_width,
    layer_params,
    lstm_params,
    no_projection,
    to_params,
)

__all__ = ["from_keras", "to_keras", "from_keras_weights", "to_keras_weights", "layer_config"]


def _one(weights: Sequence[Any], use_bias: bool, name: str) -> LSTMParams:
    kernel = expect_rank(weights[0], 2, f"{name}[0] (kernel)")
    units = gate_width(kernel, 1, f"{name}[0] (kernel)")
    recurrent = expect_shape(weights[1], (units, 4 * units), f"{name}[1] (recurrent_kernel)")
    bias = expect_shape(weights[2], (4 * units,), f"{name}[2] (bias)") if use_bias else None
    return to_params(kernel, recurrent, bias)


def from_keras_weights(
    weights: Sequence[Any], *, bidirectional: bool = False, use_bias: bool | None = None
) -> LayerParams:
    """Params from an LSTM's (or a ``Bidirectional(LSTM)``'s) ``get_weights()`` list.

    Args:
        weights: ``[kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H]]`` (no bias with
            ``use_bias=False``); for a bidirectional layer the forward layer's list then the backward's.
        bidirectional: the list holds two layers.
        use_bias: whether the list holds biases; inferred from its length when None.

    Returns:
        ``LSTMParams``, or ``BidirectionalParams`` when ``bidirectional``.
    """
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            f"weights: expected a list of arrays (a layer's get_weights()), found {type(weights).__name__}"
        )
    weights = list(weights)
    layers = 2 if bidirectional else 1
    if use_bias is None:
        if len(weights) not in (2 * layers, 3 * layers):
            raise ValueError(
                f"weights: expected {3 * layers} arrays (or {2 * layers} without bias) for "
                f"{'a Bidirectional(LSTM)' if bidirectional else 'an LSTM'}, found {len(weights)}"
            )
        use_bias = len(weights) == 3 * layers
    per = 3 if use_bias else 2
    if len(weights) != per * layers:
        raise ValueError(f"weights: expected {per * layers} arrays, found {len(weights)}")
    if not bidirectional:
        return _one(weights, use_bias, "weights")
    return layer_params(
        BidirectionalParams(
            forward=_one(weights[:per], use_bias, "weights"),
            backward=_one(weights[per:], use_bias, f"weights[{per}:]"),
        ),
        "weights",
    )


def to_keras_weights(params: LayerParams) -> list[np.ndarray]:
    """The ``set_weights()`` list for an LSTM (or ``Bidirectional(LSTM)``) with these params."""
    if isinstance(params, BidirectionalParams):
        layer_params(params)
        return to_keras_weights(params.forward) + to_keras_weights(params.backward)
    params = lstm_params(params)
    no_projection(params, "Keras")
    out = [np.asarray(params.kernel), np.asarray(params.recurrent_kernel)]
    if params.bias is not None:
        out.append(np.asarray(params.bias))
    return out


def _is_bidirectional(layer: Any) -> bool:
    return hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer")


def _check_lstm_layer(layer: Any, name: str) -> None:
    if not hasattr(layer, "get_weights") or not hasattr(layer, "units"):
        raise TypeError(
            f"{name}: expected a keras.layers.LSTM or Bidirectional(LSTM), found {type(layer).__name__}"
        )
    if not getattr(layer, "built", True):
        raise ValueError(f"{name}: layer {layer.name!r} is not built; call it on an input first")


def from_keras(layer: Any) -> LayerParams:
    """Params of a built ``keras.layers.LSTM`` (``LSTMParams``) or ``Bidirectional(LSTM)``
    (``BidirectionalParams``). ``layer_config(layer)`` gives the options ``jaxlstm.lstm`` needs."""
    if _is_bidirectional(layer):
        _check_lstm_layer(layer.forward_layer, "layer.forward_layer")
        return BidirectionalParams(
            forward=lstm_params(from_keras(layer.forward_layer), "layer.forward_layer"),
            backward=lstm_params(from_keras(layer.backward_layer), "layer.backward_layer"),
        )
    _check_lstm_layer(layer, "layer")
    return from_keras_weights(layer.get_weights(), use_bias=bool(layer.use_bias))


def to_keras(params: LayerParams, layer: Any) -> Any:
    """Set a built Keras ``LSTM`` / ``Bidirectional(LSTM)`` layer's weights to ``params``; returns it.

    Shapes are checked against the layer first, so a mismatch names the tensor instead of failing
    inside Keras.
    """
    if _is_bidirectional(layer):
        if not isinstance(params, BidirectionalParams):
            raise TypeError(
                f"params: a Bidirectional layer needs BidirectionalParams, found {type(params).__name__}"
            )
        to_keras(params.forward, layer.forward_layer)
        to_keras(params.backward, layer.backward_layer)
        return layer
    _check_lstm_layer(layer, "layer")
    new = to_keras_weights(params)
    names = ["kernel", "recurrent_kernel", "bias"]
    current = layer.get_weights()
    if len(new) != len(current):
        raise ValueError(
            f"params: layer {layer.name!r} has {len(current)} weights (use_bias={layer.use_bias}), "
            f"params give {len(new)} (bias is {'None' if len(new) == 2 else 'set'})"
        )
    for n, a, b in zip(names, new, current):
        expect_shape(a, b.shape, f"params.{n}")
    layer.set_weights(new)
    return layer


def layer_config(layer: Any) -> dict[str, Any]:
    """The options of a Keras LSTM that map onto ``jaxlstm.lstm`` (for Bidirectional: of the
    forward layer, plus ``merge_mode``)."""
    if _is_bidirectional(layer):
        cfg = layer_config(layer.forward_layer)
        cfg["merge_mode"] = layer.merge_mode
        return cfg
    return {
        "units": int(layer.units),
        "use_bias": bool(layer.use_bias),
        "go_backwards": bool(layer.go_backwards),
        "return_sequences": bool(layer.return_sequences),
        "return_state": bool(layer.return_state),
        "activation": _activation_name(layer.activation),
        "recurrent_activation": _activation_name(layer.recurrent_activation),
    }


def _activation_name(fn: Any) -> Any:
    return getattr(fn, "__name__", fn)
