"""Keras 3: live ``keras.layers.LSTM`` / ``Bidirectional(LSTM)`` layers and their ``get_weights()``.

Keras's layout *is* jaxlstm's (kernel ``[I, 4H]``, recurrent_kernel ``[H, 4H]``, bias ``[4H]``, gates
i, f, c, o), so these converters only check shapes and move arrays. Nothing here imports Keras: a live layer is
only asked for ``get_weights`` / ``set_weights`` and its config attributes.

    params = from_keras(layer)            # LSTM -> LSTMParams, Bidirectional -> BidirectionalParams
    out = jaxlstm.lstm(params, x, **lstm_options(layer))   # the layer's options, jaxlstm's names
    to_keras(params, layer)               # set a built layer's weights
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from ..core.activations import ACTIVATIONS
from ..core.pytrees import BidirectionalParams, LSTMParams
from ._arrays import (
    LayerParams,
    expect_rank,
    expect_shape,
    gate_width,
    layer_params,
    lstm_params,
    no_projection,
    plain_lstm,
    to_params,
)

__all__ = [
    "from_keras",
    "to_keras",
    "from_keras_weights",
    "to_keras_weights",
    "lstm_options",
    "layer_config",
]


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
    plain_lstm(params, "Keras")
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
    (``BidirectionalParams``). ``lstm_options(layer)`` gives the options ``jaxlstm.lstm`` needs."""
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
    plain_lstm(params, "Keras")
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
    """Deprecated (kept through 0.2.x, removed in 0.3): use ``lstm_options(layer)``, whose result feeds
    ``jaxlstm.lstm`` / ``jaxlstm.bidirectional`` directly.

    Returns the Keras-named options ``units``, ``use_bias``, ``go_backwards``, ``return_sequences``,
    ``return_state``, ``activation``, ``recurrent_activation`` (for Bidirectional: of the forward
    layer, plus ``merge_mode``). These are Keras's names, not ``jaxlstm.lstm``'s keywords.
    """
    warnings.warn(
        "jaxlstm.interop.keras.layer_config is deprecated (removed in 0.3): "
        "its keys are Keras's names, which jaxlstm.lstm does not take; use "
        "jaxlstm.interop.keras.lstm_options(layer), whose result feeds jaxlstm.lstm(params, xs, **options)",
        DeprecationWarning,
        stacklevel=2,
    )
    return _layer_config(layer)


def _layer_config(layer: Any) -> dict[str, Any]:
    if _is_bidirectional(layer):
        cfg = _layer_config(layer.forward_layer)
        cfg["merge_mode"] = layer.merge_mode
        return cfg
    return {
        "units": int(layer.units),
        "use_bias": bool(layer.use_bias),
        "go_backwards": bool(layer.go_backwards),
        "return_sequences": bool(layer.return_sequences),
        "return_state": bool(layer.return_state),
        "activation": getattr(layer.activation, "__name__", layer.activation),
        "recurrent_activation": getattr(layer.recurrent_activation, "__name__", layer.recurrent_activation),
    }


# Every key a Keras 2 / Keras 3 LSTM config may hold, by what lstm_options does with it. A key in
# none of these is refused: an option we do not know could change the numbers.
_MAPPED = frozenset(
    {
        "go_backwards",
        "activation",
        "recurrent_activation",
        "zero_output_for_mask",
        "unroll",
        "dtype",
        "time_major",
    }
)
_IN_PARAMS = frozenset({"units", "use_bias"})  # the params' shapes and their bias say these
_NO_FORWARD_EFFECT = frozenset(
    {
        # naming, bookkeeping and input-shape hints
        "name", "trainable", "class_name", "batch_input_shape", "batch_shape", "input_shape",
        # how weights are made or trained: no effect on a forward pass with given weights
        "kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias",
        "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
        "kernel_constraint", "recurrent_constraint", "bias_constraint", "seed",
        # Keras's kernel choice (same math)
        "implementation", "use_cudnn",
        # active only when Keras is called with training=True; lstm_options reproduces inference
        "dropout", "recurrent_dropout",
        # what the caller keeps: jaxlstm.lstm returns the sequence and the final state, and a
        # stateful loop passes the state back as initial_state
        "return_sequences", "return_state", "stateful",
    }
)  # fmt: skip
_BIDIRECTIONAL_KEYS = frozenset(
    {"name", "trainable", "class_name", "dtype", "merge_mode", "layer", "backward_layer", "batch_input_shape"}
)
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


# Public as ``keras_files.KerasLayer`` (what list_layers returns); defined here, beside lstm_options
# which reads it, so that keras_files imports this module and this one imports nothing back.
class KerasLayer(NamedTuple):
    """One LSTM layer found in a file.

    Attributes:
        name: the layer's name in the model (what the user called it).
        kind: ``"LSTM"`` or ``"Bidirectional"``.
        input_size, units: I and H (of each direction, for Bidirectional).
        use_bias: whether the layer has a bias.
        path: the HDF5 group that holds its weights.
        config: the layer's Keras config (for Bidirectional: its config, whose ``"layer"`` is the
            wrapped LSTM's) when the file has one (``.keras``, legacy whole-model ``.h5``), else None.
        keras_version: the Keras version that wrote the file, when it says (``"2.21.0"``, ``"3.15.1"``).
    """

    name: str
    kind: str
    input_size: int
    units: int
    use_bias: bool
    path: str
    config: Optional[dict[str, Any]]
    keras_version: Optional[str] = None


def lstm_options(layer: Any) -> dict[str, Any]:
    """Keyword arguments for ``jaxlstm.lstm`` (an LSTM) or ``jaxlstm.bidirectional`` (a
    ``Bidirectional(LSTM)``) that compute what the Keras layer computes at inference.

        params = from_keras(layer)                          # or keras_files.load_layer(path, name)
        out = jaxlstm.lstm(params, x, **lstm_options(layer))

    Args:
        layer: a live ``keras.layers.LSTM`` / ``Bidirectional(LSTM)``; its config dict
            (``layer.get_config()``, or the serialized ``{"class_name": ..., "config": ...}``); or a
            ``keras_files.KerasLayer`` from ``list_layers`` (pass the entry rather than its config,
            so that a file written by Keras 2 gets Keras 2's ``hard_sigmoid``, which differs from
            Keras 3's).

    Returns:
        For an LSTM: ``reverse`` (go_backwards), ``activation``, ``recurrent_activation``,
        ``zero_output_for_mask``, ``unroll`` (``True`` for Keras's full unroll, else 1), and
        ``dtype`` when Keras computes in another dtype than float32 (``"mixed_bfloat16"`` computes
        in bfloat16). For a Bidirectional: ``merge_mode``, ``activation``, ``recurrent_activation``,
        ``zero_output_for_mask`` (Keras forces it to ``return_sequences``), ``unroll`` (and
        ``dtype``). ``{}`` for a file entry without a config (weights-only files).

    Keys that do not change a forward pass with given weights are accepted: ``units`` and
    ``use_bias`` (the params carry them), initialisers, regularisers, constraints, ``seed``,
    ``implementation`` / ``use_cudnn``, ``dropout`` / ``recurrent_dropout`` (inactive at inference,
    which is what this reproduces; for training use the ``jaxlstm.linen`` / ``jaxlstm.nnx`` modules'
    dropout), and ``return_sequences`` / ``return_state`` / ``stateful`` (``jaxlstm.lstm`` returns
    the sequence and the final state; a stateful loop passes the state back as ``initial_state``).

    Raises:
        ValueError: naming the option, for one jaxlstm cannot honour: an activation jaxlstm does
            not have or a custom (serialized) one, a non-float dtype policy, a Bidirectional whose
            forward layer has ``go_backwards=True`` or whose backward layer computes differently
            from its forward layer, or a key this function does not know.
        TypeError: ``layer`` is none of the above, or is another kind of layer (GRU, ...).
    """
    version: Optional[str] = None
    if isinstance(layer, KerasLayer):
        if layer.config is None:
            return {}
        config, version, name = layer.config, layer.keras_version, f"layer {layer.name!r} (config)"
        kind = layer.kind
    elif isinstance(layer, Mapping):
        config, name = dict(layer), "config"
        kind = config.get("class_name")
        if set(config) <= {
            "class_name",
            "config",
            "module",
            "registered_name",
            "build_config",
        } and isinstance(config.get("config"), Mapping):  # the serialized form
            config = dict(config["config"])
        kind = kind if kind is not None else ("Bidirectional" if "layer" in config else "LSTM")
    elif hasattr(layer, "get_config"):
        config, name = layer.get_config(), f"layer {getattr(layer, 'name', '')!r}"
        kind = "Bidirectional" if _is_bidirectional(layer) else type(layer).__name__
        # The Keras that made the layer (keras 3, or tf_keras 2): its hard_sigmoid is the one meant.
        package = sys.modules.get(type(layer).__module__.split(".")[0])
        version = getattr(package, "__version__", None)
    else:
        raise TypeError(
            "layer: expected a keras.layers.LSTM / Bidirectional(LSTM), its config dict or a "
            f"keras_files.KerasLayer, found {type(layer).__name__}"
        )
    if kind not in ("LSTM", "Bidirectional"):
        raise TypeError(f"layer: expected an LSTM or Bidirectional(LSTM) layer, found {kind!r} ({name})")
    if kind == "LSTM":
        options = _lstm_options(config, version, name)
        return {"reverse": options.pop("go_backwards"), **options}
    return _bidirectional_options(config, version, name)


def _bidirectional_options(config: Mapping[str, Any], version: Optional[str], name: str) -> dict[str, Any]:
    _known(config, _BIDIRECTIONAL_KEYS, name)
    inner = _wrapped(config.get("layer"), f"{name}['layer']")
    forward = _lstm_options(inner, version, f"{name}['layer']")
    if forward.pop("go_backwards"):
        raise ValueError(
            f"{name}['layer']: go_backwards=True inside a Bidirectional (Keras then runs the forward "
            "layer backwards and the backward one forwards) is not something jaxlstm.bidirectional runs; "
            "rebuild the Keras layer with go_backwards=False"
        )
    if config.get("backward_layer") is not None:
        backward = _lstm_options(
            _wrapped(config["backward_layer"], f"{name}['backward_layer']"),
            version,
            f"{name}['backward_layer']",
        )
        backward.pop("go_backwards")
        for key in forward:
            if key != "zero_output_for_mask" and backward[key] != forward[key]:
                raise ValueError(
                    f"{name}['backward_layer']: {key}={backward[key]!r} differs from the forward "
                    f"layer's {forward[key]!r}; jaxlstm.bidirectional runs both directions with one "
                    "set of options (run jaxlstm.lstm per direction instead)"
                )
    _dtype(config.get("dtype"), f"{name}: dtype")  # checked only: Keras computes in the wrapped layer's
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise ValueError(
            f"{name}: merge_mode={merge_mode!r} is not one of 'concat', 'sum', 'mul', 'ave', None"
        )
    # Keras's Bidirectional forces zero_output_for_mask to return_sequences on both directions.
    forward["zero_output_for_mask"] = bool(inner.get("return_sequences", False))
    return {"merge_mode": merge_mode, **forward}


def _wrapped(config: Any, name: str) -> dict[str, Any]:
    """The config of the LSTM a Bidirectional wraps (``{"class_name": "LSTM", "config": {...}}``)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ValueError(f"{name}: expected a serialized layer {{'class_name': 'LSTM', 'config': {{...}}}}")
    if config.get("class_name") != "LSTM":
        raise TypeError(f"{name}: expected a wrapped LSTM, found {config.get('class_name')!r}")
    return dict(config["config"])


def _known(config: Mapping[str, Any], known: frozenset[str], name: str) -> None:
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise ValueError(
            f"{name}: Keras option(s) {unknown} unknown to jaxlstm; refused rather than ignored "
            "(they might change the numbers)"
        )


def _lstm_options(config: Mapping[str, Any], version: Optional[str], name: str) -> dict[str, Any]:
    """The computation options of one Keras LSTM config, ``go_backwards`` still under its Keras name."""
    _known(config, _MAPPED | _IN_PARAMS | _NO_FORWARD_EFFECT, name)
    options: dict[str, Any] = {
        "go_backwards": _flag(config, "go_backwards", name),
        "activation": _activation(config.get("activation", "tanh"), version, f"{name}: activation"),
        "recurrent_activation": _activation(
            config.get("recurrent_activation", "sigmoid"), version, f"{name}: recurrent_activation"
        ),
        "zero_output_for_mask": _flag(config, "zero_output_for_mask", name),
        "unroll": True if _flag(config, "unroll", name) else 1,
    }
    if _flag(config, "time_major", name):  # Keras 2 only: xs [T, B, I], as jaxlstm's time_major
        options["time_major"] = True
    options.update(_dtype(config.get("dtype"), f"{name}: dtype"))
    return options


def _flag(config: Mapping[str, Any], key: str, name: str) -> bool:
    value = config.get(key, False)
    if value is None:
        return False
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: {key} expected a bool, found {value!r}")
    return bool(value)


def _dtype(policy: Any, name: str) -> dict[str, Any]:
    """``{"dtype": ...}`` for a Keras dtype policy computing in another dtype than float32, else ``{}``."""
    if policy is None:
        return {}
    if isinstance(policy, Mapping):  # Keras 3 DTypePolicy / Keras 2 Policy, serialized
        policy = policy.get("config", {}).get("name") if isinstance(policy.get("config"), Mapping) else None
    compute = policy[len("mixed_") :] if isinstance(policy, str) and policy.startswith("mixed_") else policy
    if compute not in _FLOAT_DTYPES:
        raise ValueError(
            f"{name}: the dtype policy {policy!r} is not one jaxlstm computes in ({_FLOAT_DTYPES})"
        )
    return {} if compute == "float32" else {"dtype": compute}


def _keras2_hard_sigmoid(x: Any) -> Any:
    """Keras 2's hard sigmoid, ``clip(0.2 x + 0.5, 0, 1)`` (Keras 3 and jaxlstm use relu6(x + 3) / 6)."""
    import jax.numpy as jnp

    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _activation(value: Any, version: Optional[str], name: str) -> Any:
    if not isinstance(value, str):
        raise ValueError(
            f"{name}: {value!r} is not a built-in Keras activation name; jaxlstm cannot rebuild a "
            "custom activation from a config: pass activation= / recurrent_activation= yourself"
        )
    # The same name meant a different function before Keras 3: map it, never silently change numerics.
    if value == "hard_sigmoid" and version is not None and version.split(".")[0] in ("1", "2"):
        return _keras2_hard_sigmoid
    if value not in ACTIVATIONS:
        raise ValueError(
            f"{name}: Keras activation {value!r} is not one jaxlstm has (it has {sorted(ACTIVATIONS)}); "
            "pass the function yourself"
        )
    return value
