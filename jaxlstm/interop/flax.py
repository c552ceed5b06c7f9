"""Flax: linen ``LSTMCell`` / ``OptimizedLSTMCell`` params and NNX ``LSTMCell`` / ``OptimizedLSTMCell``.

Flax's gates are i, f, g, o (= jaxlstm's i, f, c, o) with one ``[in, H]`` kernel per gate: the input
kernels ``ii, if, ig, io`` have no bias and the recurrent ``hi, hf, hg, ho`` carry it, so jaxlstm's
kernel is their concatenation. Linen's ``OptimizedLSTMCell`` stores the same names as ``LSTMCell``;
NNX's ``OptimizedLSTMCell`` stores fused ``dense_i`` / ``dense_h``. Flax's carry is ``(c, h)``: use
``LSTMState.from_flax_carry`` / ``to_flax_carry``. Flax cells always have a bias and no projection.

    params = from_linen(variables)              # {"params": {"ii": ..., "hi": ...}} -> LSTMParams
    cell.apply(to_linen(params), carry, x)
    params = from_nnx(cell); to_nnx(params, cell)   # also nnx.RNN, nnx.Bidirectional
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.pytrees import BidirectionalParams, LSTMParams
from ._arrays import (
    LayerParams,
    MissingWeightError,
    expect_rank,
    expect_shape,
    gate_width,
    layer_params,
    lstm_params,
    no_projection,
    numpy,
    plain_lstm,
    to_params,
)

__all__ = ["from_linen", "to_linen", "from_nnx", "to_nnx"]

_GATES = ("i", "f", "g", "o")


def _unwrap(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept ``{"params": ...}`` variables and ``nn.RNN``'s ``{"cell": ...}`` wrapper."""
    if not isinstance(tree, Mapping):
        raise TypeError(f"variables: expected a mapping of Flax params, found {type(tree).__name__}")
    for key in ("params", "cell"):
        if set(tree) == {key}:
            tree = tree[key]
    return tree


def _leaf(tree: Mapping[str, Any], module: str, leaf: str, path: str) -> np.ndarray:
    if module in tree and not isinstance(tree[module], Mapping):
        raise TypeError(
            f"variables: expected {path}{module} to be a mapping with {leaf!r}, found {type(tree[module]).__name__}"
        )
    try:
        return numpy(tree[module][leaf], f"{path}{module}.{leaf}")
    except KeyError:
        raise MissingWeightError(
            f"variables: missing {path}{module}.{leaf}; a Flax LSTMCell has ii, if, ig, io (kernel) and "
            f"hi, hf, hg, ho (kernel, bias); found {sorted(tree)}"
        ) from None


def _cell_from_linen(tree: Mapping[str, Any], path: str) -> LSTMParams:
    kernels = [expect_rank(_leaf(tree, f"i{g}", "kernel", path), 2, f"{path}i{g}.kernel") for g in _GATES]
    input_size, units = kernels[0].shape
    kernels = [expect_shape(k, (input_size, units), f"{path}i{g}.kernel") for g, k in zip(_GATES, kernels)]
    recurrent = [
        expect_shape(_leaf(tree, f"h{g}", "kernel", path), (units, units), f"{path}h{g}.kernel")
        for g in _GATES
    ]
    biases = [expect_shape(_leaf(tree, f"h{g}", "bias", path), (units,), f"{path}h{g}.bias") for g in _GATES]
    return to_params(np.concatenate(kernels, 1), np.concatenate(recurrent, 1), np.concatenate(biases))


def from_linen(variables: Mapping[str, Any]) -> LayerParams:
    """Params of a linen ``LSTMCell`` or ``OptimizedLSTMCell`` (same names), also inside ``nn.RNN``.

    Accepts ``cell.init(...)``'s variables, their ``["params"]``, or an ``nn.RNN``'s; an
    ``nn.Bidirectional`` of two LSTM RNNs (``forward_rnn`` / ``backward_rnn``) gives
    ``BidirectionalParams``. When both directions are one cell object (``nn.Bidirectional(rnn, rnn)``,
    or two RNNs of one cell), Flax stores its weights once, under ``forward_rnn`` only; both
    directions then get them (Flax runs the backward pass reversed with the same weights).
    """
    tree = _unwrap(variables)
    if "forward_rnn" in tree:
        forward = _cell_from_linen(_unwrap(tree["forward_rnn"]), "forward_rnn.cell.")
        backward = (
            _cell_from_linen(_unwrap(tree["backward_rnn"]), "backward_rnn.cell.")
            if "backward_rnn" in tree
            else forward  # one shared cell
        )
        return BidirectionalParams(forward=forward, backward=backward)
    return _cell_from_linen(tree, "")


def _cell_to_linen(params: LSTMParams) -> dict[str, Any]:
    import jax.numpy as jnp

    p = lstm_params(params)
    no_projection(p, "Flax")
    units = p.units
    bias = p.bias if p.bias is not None else jnp.zeros((4 * units,), p.kernel.dtype)
    out: dict[str, Any] = {}
    for n, g in enumerate(_GATES):
        block = slice(n * units, (n + 1) * units)
        out[f"i{g}"] = {"kernel": jnp.asarray(p.kernel[:, block])}
        out[f"h{g}"] = {"kernel": jnp.asarray(p.recurrent_kernel[:, block]), "bias": jnp.asarray(bias[block])}
    return out


def to_linen(params: LayerParams, *, rnn: bool = False) -> dict[str, Any]:
    """Variables ``{"params": ...}`` for ``LSTMCell.apply`` / ``OptimizedLSTMCell.apply``.

    With ``rnn=True`` the cell is wrapped as ``nn.RNN`` stores it (``{"cell": ...}``);
    ``BidirectionalParams`` give ``nn.Bidirectional``'s ``forward_rnn`` / ``backward_rnn``. A missing
    bias becomes zeros (Flax cells always have one).
    """
    plain_lstm(params, "Flax")
    if isinstance(params, BidirectionalParams):
        layer_params(params)
        return {
            "params": {
                "forward_rnn": {"cell": _cell_to_linen(params.forward)},
                "backward_rnn": {"cell": _cell_to_linen(params.backward)},
            }
        }
    cell = _cell_to_linen(params)
    return {"params": {"cell": cell} if rnn else cell}


def from_nnx(cell: Any) -> LayerParams:
    """Params of a live ``flax.nnx.LSTMCell`` (ii, if_, ..., hi, ...) or ``nnx.OptimizedLSTMCell``
    (dense_i, dense_h), also inside an ``nnx.RNN``; an ``nnx.Bidirectional`` of two gives
    ``BidirectionalParams``."""
    if hasattr(cell, "forward_rnn") and hasattr(cell, "backward_rnn"):
        return BidirectionalParams(
            lstm_params(from_nnx(cell.forward_rnn), "cell.forward_rnn"),
            lstm_params(from_nnx(cell.backward_rnn), "cell.backward_rnn"),
        )
    if hasattr(cell, "cell") and not hasattr(cell, "hi") and not hasattr(cell, "dense_h"):
        cell = cell.cell  # nnx.RNN
    if hasattr(cell, "dense_i") and hasattr(cell, "dense_h"):
        kernel = expect_rank(cell.dense_i.kernel[...], 2, "cell.dense_i.kernel")
        units = gate_width(kernel, 1, "cell.dense_i.kernel")
        recurrent = expect_shape(cell.dense_h.kernel[...], (units, 4 * units), "cell.dense_h.kernel")
        bias = expect_shape(cell.dense_h.bias[...], (4 * units,), "cell.dense_h.bias")
        return to_params(kernel, recurrent, bias)
    if not all(hasattr(cell, n) for n in ("ii", "if_", "ig", "io", "hi", "hf", "hg", "ho")):
        raise TypeError(f"cell: expected flax.nnx.LSTMCell or OptimizedLSTMCell, found {type(cell).__name__}")
    tree = {
        name.rstrip("_"): {"kernel": getattr(cell, name).kernel[...], "bias": getattr(cell, name).bias[...]}
        if name.startswith("h")
        else {"kernel": getattr(cell, name).kernel[...]}
        for name in ("ii", "if_", "ig", "io", "hi", "hf", "hg", "ho")
    }
    return _cell_from_linen(tree, "cell.")


def _nnx_updates(params: Any, cell: Any, name: str) -> list[tuple[Any, Any, str]]:
    """(variable, new value, label) for every parameter of an NNX LSTM cell / RNN / Bidirectional."""
    import jax.numpy as jnp

    if hasattr(cell, "forward_rnn") and hasattr(cell, "backward_rnn"):
        if not isinstance(params, BidirectionalParams):
            raise TypeError(
                f"{name}: an nnx.Bidirectional needs BidirectionalParams, found {type(params).__name__}"
            )
        return _nnx_updates(params.forward, cell.forward_rnn, f"{name}.forward") + _nnx_updates(
            params.backward, cell.backward_rnn, f"{name}.backward"
        )
    if hasattr(cell, "cell") and not hasattr(cell, "hi") and not hasattr(cell, "dense_h"):
        return _nnx_updates(params, cell.cell, name)  # nnx.RNN
    p = lstm_params(params, name)
    no_projection(p, "Flax", name)
    units = p.units
    bias = p.bias if p.bias is not None else jnp.zeros((4 * units,), p.kernel.dtype)
    if hasattr(cell, "dense_i") and hasattr(cell, "dense_h"):
        return [
            (cell.dense_i.kernel, p.kernel, f"{name}.kernel"),
            (cell.dense_h.kernel, p.recurrent_kernel, f"{name}.recurrent_kernel"),
            (cell.dense_h.bias, bias, f"{name}.bias"),
        ]
    if not all(hasattr(cell, n) for n in ("ii", "if_", "ig", "io", "hi", "hf", "hg", "ho")):
        raise TypeError(f"cell: expected flax.nnx.LSTMCell or OptimizedLSTMCell, found {type(cell).__name__}")
    linen = _cell_to_linen(LSTMParams(p.kernel, p.recurrent_kernel, bias))
    updates = []
    for g in _GATES:
        i_mod, h_mod = getattr(cell, "if_" if g == "f" else f"i{g}"), getattr(cell, f"h{g}")
        updates += [
            (i_mod.kernel, linen[f"i{g}"]["kernel"], f"{name}.kernel (gate {g})"),
            (h_mod.kernel, linen[f"h{g}"]["kernel"], f"{name}.recurrent_kernel (gate {g})"),
            (h_mod.bias, linen[f"h{g}"]["bias"], f"{name}.bias (gate {g})"),
        ]
    return updates


def to_nnx(params: LayerParams, cell: Any) -> Any:
    """Write ``params`` into a live ``nnx.LSTMCell`` / ``nnx.OptimizedLSTMCell`` (in place), or one
    inside an ``nnx.RNN``, or ``BidirectionalParams`` into an ``nnx.Bidirectional``; returns it.

    The cell must have matching ``in_features`` and ``hidden_features``. Every shape is checked before
    anything is written, so a mismatch leaves the module unchanged.
    """
    import jax.numpy as jnp

    plain_lstm(params, "Flax")
    updates = _nnx_updates(params, cell, "params")
    for variable, value, name in updates:
        expect_shape(value, np.shape(variable[...]), name)
    for variable, value, _ in updates:
        variable[...] = jnp.asarray(value, variable[...].dtype)
    return cell
