"""TensorFlow Addons' ``LayerNormLSTMCell`` and ``PeepholeLSTMCell``: their weights as ``LSTMParams``.

TF Addons (end of life in 2024) was the last maintained home of both cells; their weights live on
in users' checkpoints and ``.h5`` files. Nothing here imports TensorFlow: the functions take and
give the cell's ``get_weights()`` list, in the order ``cell.weights`` lists it. Both cells use
Keras's layout (kernel ``[I, 4H]``, recurrent_kernel ``[H, 4H]``, gate blocks i, f, c, o).

**LayerNormLSTMCell** (``tfa.rnn.LayerNormLSTMCell(units, norm_epsilon=1e-3)``), 9 weights (8 with
``use_bias=False``, which has no bias)::

    kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H],
    kernel_norm/gamma [4H], kernel_norm/beta [4H]        -> layer_norm.x_gain, x_offset
    recurrent_norm/gamma [4H], recurrent_norm/beta [4H]  -> layer_norm.h_gain, h_offset
    state_norm/gamma [H], state_norm/beta [H]            -> layer_norm.c_gain, c_offset

The cell carries the *normalised* cell state ``LN(c_t)`` to the next step (Ba et al. carry the raw
``c_t``), and its epsilon is the cell's ``norm_epsilon`` (default 1e-3), so run the weights with::

    params = addons.from_addons_layer_norm(cell.get_weights())
    out = jaxlstm.lstm(params, x, layer_norm_carry="normalised", layer_norm_epsilon=cell.norm_epsilon)

**PeepholeLSTMCell** (``tfa.rnn.PeepholeLSTMCell(units)``), 6 weights (5 without bias)::

    kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H],
    input_gate_peephole_weights [H]    -> peepholes.i   (i sees c_{t-1})
    forget_gate_peephole_weights [H]   -> peepholes.f   (f sees c_{t-1})
    output_gate_peephole_weights [H]   -> peepholes.o   (o sees the new c_t)

which ``jaxlstm.lstm(params, x)`` runs as they are. (TF1's ``LSTMCell(use_peepholes=True)`` also
added ``forget_bias=1.0`` at call time; Addons has it in the bias initialiser, so it is in the
weights.) A cell with other activations than tanh / sigmoid needs the same ``activation`` /
``recurrent_activation`` in ``jaxlstm.lstm``. A ``Bidirectional(RNN(cell))``'s ``get_weights()`` is
the forward cell's list then the backward's: convert each half into ``BidirectionalParams``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..core.pytrees import LayerNormParams, LSTMParams, PeepholeParams
from ._arrays import expect_rank, expect_shape, gate_width, no_projection, plain_lstm

__all__ = ["from_addons_layer_norm", "to_addons_layer_norm", "from_addons_peephole", "to_addons_peephole"]

# (Addons weight name, LSTMParams field path, size in units of H: 4 -> [4H], 1 -> [H]) after
# kernel, recurrent_kernel and bias, in the order of the cell's weights.
_LAYER_NORM = (
    ("kernel_norm/gamma", "layer_norm.x_gain", 4),
    ("kernel_norm/beta", "layer_norm.x_offset", 4),
    ("recurrent_norm/gamma", "layer_norm.h_gain", 4),
    ("recurrent_norm/beta", "layer_norm.h_offset", 4),
    ("state_norm/gamma", "layer_norm.c_gain", 1),
    ("state_norm/beta", "layer_norm.c_offset", 1),
)
_PEEPHOLE = (
    ("input_gate_peephole_weights", "peepholes.i", 1),
    ("forget_gate_peephole_weights", "peepholes.f", 1),
    ("output_gate_peephole_weights", "peepholes.o", 1),
)
_CELLS = {"layer_norm": ("LayerNormLSTMCell", _LAYER_NORM), "peepholes": ("PeepholeLSTMCell", _PEEPHOLE)}


def _from_weights(weights: Any, use_bias: bool | None, variant: str) -> LSTMParams:
    cell, extra = _CELLS[variant]
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            f"weights: expected a list of arrays (a {cell}'s get_weights()), found {type(weights).__name__}"
        )
    weights = list(weights)
    full = 3 + len(extra)
    if use_bias is None:
        if len(weights) not in (full, full - 1):
            raise ValueError(
                f"weights: expected {full} arrays for a {cell} (or {full - 1} with use_bias=False), "
                f"found {len(weights)}"
            )
        use_bias = len(weights) == full
    names = ["kernel", "recurrent_kernel"] + (["bias"] if use_bias else []) + [n for n, _, _ in extra]
    if len(weights) != len(names):
        raise ValueError(
            f"weights: expected {len(names)} arrays for a {cell} with use_bias={use_bias} ({', '.join(names)}), "
            f"found {len(weights)}"
        )
    kernel = expect_rank(weights[0], 2, "weights[0] (kernel)")
    units = gate_width(kernel, 1, "weights[0] (kernel)")
    recurrent = expect_shape(weights[1], (units, 4 * units), "weights[1] (recurrent_kernel)")
    bias = expect_shape(weights[2], (4 * units,), "weights[2] (bias)") if use_bias else None
    first = 3 if use_bias else 2
    values = [
        expect_shape(w, (size * units,), f"weights[{first + k}] ({name})")
        for k, (w, (name, _, size)) in enumerate(zip(weights[first:], extra))
    ]
    params = LSTMParams(
        jnp.asarray(kernel), jnp.asarray(recurrent), None if bias is None else jnp.asarray(bias)
    )
    group = {path.split(".")[1]: jnp.asarray(a) for (_, path, _), a in zip(extra, values)}
    if variant == "layer_norm":
        return params._replace(layer_norm=LayerNormParams(**group))
    return params._replace(peepholes=PeepholeParams(**group))


def _to_weights(params: Any, variant: str) -> list[np.ndarray]:
    cell, extra = _CELLS[variant]
    peer = f"TF Addons {cell}"
    if not isinstance(params, LSTMParams):
        raise TypeError(f"params: expected LSTMParams, found {type(params).__name__}")
    plain_lstm(params, peer, allow=(variant,))
    if getattr(params, variant) is None:
        kind = "a layer-norm LSTM" if variant == "layer_norm" else "a peephole LSTM"
        raise ValueError(f"params.{variant}: a {cell} is {kind}; expected it set, found None")
    no_projection(params, peer)
    recurrent = expect_rank(params.recurrent_kernel, 2, "params.recurrent_kernel")
    units = recurrent.shape[0]
    kernel = expect_rank(params.kernel, 2, "params.kernel")
    out = [
        expect_shape(kernel, (kernel.shape[0], 4 * units), "params.kernel"),
        expect_shape(recurrent, (units, 4 * units), "params.recurrent_kernel"),
    ]
    if params.bias is not None:
        out.append(expect_shape(params.bias, (4 * units,), "params.bias"))
    group = getattr(params, variant)
    for _, path, size in extra:
        value = getattr(group, path.split(".")[1])
        if value is None:
            raise ValueError(f"params.{path}: expected shape [{size * units}], found None")
        out.append(expect_shape(value, (size * units,), f"params.{path}"))
    return out


def from_addons_layer_norm(weights: Sequence[Any], *, use_bias: bool | None = None) -> LSTMParams:
    """Params of a TF Addons ``LayerNormLSTMCell`` from its ``get_weights()`` list.

    Args:
        weights: ``[kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H], kernel_norm/gamma [4H],
            kernel_norm/beta [4H], recurrent_norm/gamma [4H], recurrent_norm/beta [4H],
            state_norm/gamma [H], state_norm/beta [H]]`` (no bias with ``use_bias=False``).
        use_bias: whether the list holds the bias; inferred from its length when None.

    Returns:
        ``LSTMParams`` with ``layer_norm`` set. Run them with ``layer_norm_carry="normalised"`` and
        ``layer_norm_epsilon=`` the cell's ``norm_epsilon`` (default 1e-3): the cell carries the
        normalised cell state.

    Raises:
        TypeError: ``weights`` is not a list, or holds a non-float array.
        ValueError: the wrong number of arrays, or an array of the wrong shape (named by its index
            and Addons name, with the expected and found shapes).
    """
    return _from_weights(weights, use_bias, "layer_norm")


def to_addons_layer_norm(params: LSTMParams) -> list[np.ndarray]:
    """The ``set_weights()`` list of a TF Addons ``LayerNormLSTMCell`` holding ``params`` (the order of
    ``from_addons_layer_norm``; no bias when ``params.bias`` is None: build the cell with
    ``use_bias=False``).

    Raises:
        ValueError: ``params.layer_norm`` is None, or ``params`` has peepholes, 3 gate blocks or a
            projection (the cell has none of them), or a field has the wrong shape.
    """
    return _to_weights(params, "layer_norm")


def from_addons_peephole(weights: Sequence[Any], *, use_bias: bool | None = None) -> LSTMParams:
    """Params of a TF Addons ``PeepholeLSTMCell`` from its ``get_weights()`` list.

    Args:
        weights: ``[kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H],
            input_gate_peephole_weights [H], forget_gate_peephole_weights [H],
            output_gate_peephole_weights [H]]`` (no bias with ``use_bias=False``).
        use_bias: whether the list holds the bias; inferred from its length when None.

    Returns:
        ``LSTMParams`` with ``peepholes`` set (``jaxlstm.lstm`` runs them with no further option).

    Raises:
        TypeError: ``weights`` is not a list, or holds a non-float array.
        ValueError: the wrong number of arrays, or an array of the wrong shape (named by its index
            and Addons name, with the expected and found shapes).
    """
    return _from_weights(weights, use_bias, "peepholes")


def to_addons_peephole(params: LSTMParams) -> list[np.ndarray]:
    """The ``set_weights()`` list of a TF Addons ``PeepholeLSTMCell`` holding ``params`` (the order of
    ``from_addons_peephole``; no bias when ``params.bias`` is None).

    Raises:
        ValueError: ``params.peepholes`` is None, or ``params`` has layer norm, 3 gate blocks (no
            input gate, so no input peephole) or a projection, or a field has the wrong shape.
    """
    return _to_weights(params, "peepholes")
