"""Haiku: ``haiku.LSTM`` params (one ``Linear`` over ``[x, h]``; gates i, g, f, o; forget bias +1).

Haiku computes ``[x, h] @ w + b`` with ``w`` ``[I+H, 4H]``, splits it as i, g, f, o and adds 1 to the
forget gate *at call time*. jaxlstm keeps gates i, f, c, o and no hidden constant, so on import the +1
is folded into the forget block of the bias, and on export it is subtracted again. Haiku's LSTM always
has a bias and no projection; its state is ``LSTMState(hidden, cell)`` (= ``h``, ``c``).

    params = from_haiku(hk_params)                  # {"lstm/linear": {"w", "b"}} -> LSTMParams
    hk_params = to_haiku(params, name="lstm")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from ..core.pytrees import LSTMParams
from ._arrays import (
    MissingWeightError,
    expect_rank,
    expect_shape,
    gate_width,
    lstm_params,
    no_projection,
    numpy,
    plain_lstm,
    to_params,
)

__all__ = ["from_haiku", "to_haiku", "FORGET_BIAS"]

FORGET_BIAS = 1.0
"""The constant ``haiku.LSTM`` adds to the forget gate's pre-activation."""

# Haiku's gate blocks are (i, g, f, o); jaxlstm's are (i, f, c=g, o). Both maps are this swap.
_SWAP = (0, 2, 1, 3)


def _reorder(a: np.ndarray, units: int) -> np.ndarray:
    blocks = np.split(a, 4, axis=-1)
    return np.concatenate([blocks[k] for k in _SWAP], axis=-1)


def _lstm_shaped(linear: Any) -> bool:
    """Whether a Linear's params could be a haiku.LSTM's: w ``[I+H, 4H]`` with I >= 1, b ``[4H]``."""
    if not isinstance(linear, Mapping) or "w" not in linear or "b" not in linear:
        return False
    w, b = np.shape(linear["w"]), np.shape(linear["b"])
    return len(w) == 2 and w[1] % 4 == 0 and w[1] > 0 and w[0] > w[1] // 4 and b == (w[1],)


def _linear(params: Mapping[str, Any], module: Optional[str]) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected Haiku params (a mapping), found {type(params).__name__}")
    if set(params) <= {"w", "b"} and "w" in params:
        return "", params
    linears = sorted(k[: -len("/linear")] for k in params if k.endswith("/linear"))
    # Other Linears (an MLP's, say) are not LSTMs; with no LSTM-shaped one, keep them all so that
    # the shape check below names the bad tensor.
    lstms = [m for m in linears if _lstm_shaped(params[f"{m}/linear"])] or linears
    if module is None:
        if len(lstms) != 1:
            raise ValueError(
                f"module: params hold {len(lstms)} Haiku LSTMs {lstms}; pass module= one of them"
                if lstms
                else f"params: no Haiku LSTM (a '<name>/linear' entry) found; keys present: {sorted(params)}"
            )
        module = lstms[0]
    key = f"{module}/linear"
    if key not in params:
        raise MissingWeightError(f"module: no {key!r} in params; LSTMs present: {lstms}")
    if not isinstance(params[key], Mapping):
        raise TypeError(
            f"params: expected {key} to be a mapping with 'w' and 'b', found {type(params[key]).__name__}"
        )
    # an explicitly named module is checked by shape below, with messages that name the tensor
    return key + ".", params[key]


def from_haiku(params: Mapping[str, Any], module: Optional[str] = None) -> LSTMParams:
    """Params of a ``haiku.LSTM`` from Haiku's params.

    Args:
        params: the whole params dict (``{"<module>/linear": {"w": [I+H, 4H], "b": [4H]}, ...}``), or
            just the inner ``{"w", "b"}``.
        module: the LSTM's module name (e.g. ``"lstm"`` or ``"lstm_1"`` in an ``hk.DeepRNN``); needed only when
            params hold several LSTMs.
    """
    path, linear = _linear(params, module)
    if "w" not in linear:
        raise MissingWeightError(
            f"params: missing {path}w (haiku.LSTM's [input_size + units, 4*units] weight)"
        )
    w = expect_rank(linear["w"], 2, f"{path}w")
    units = gate_width(w, 1, f"{path}w")
    input_size = w.shape[0] - units
    if input_size < 1:
        raise ValueError(
            f"{path}w: expected shape [input_size + {units}, {4 * units}], found {list(w.shape)}"
        )
    if "b" not in linear:
        raise MissingWeightError(f"params: missing {path}b (haiku.LSTM always has a bias)")
    b = expect_shape(linear["b"], (4 * units,), f"{path}b")
    w, b = _reorder(w, units), _reorder(b, units).copy()
    b[units : 2 * units] += np.asarray(FORGET_BIAS, b.dtype)
    return to_params(w[:input_size], w[input_size:], b)


def to_haiku(params: LSTMParams, name: str = "lstm") -> dict[str, dict[str, Any]]:
    """Haiku params ``{f"{name}/linear": {"w": [I+H, 4H], "b": [4H]}}`` for ``haiku.LSTM(H, name=name)``.

    A missing bias becomes zeros; the forget block has Haiku's +1 subtracted, so Haiku computes the
    same gates.
    """
    import jax.numpy as jnp

    plain_lstm(params, "Haiku")
    p = lstm_params(params)
    no_projection(p, "Haiku")
    units = p.units
    kernel, recurrent = numpy(p.kernel, "params.kernel"), numpy(p.recurrent_kernel, "params.recurrent_kernel")
    bias = np.zeros((4 * units,), kernel.dtype) if p.bias is None else numpy(p.bias, "params.bias").copy()
    bias[units : 2 * units] -= np.asarray(FORGET_BIAS, bias.dtype)
    w = _reorder(np.concatenate([kernel, recurrent], axis=0), units)
    return {f"{name}/linear": {"w": jnp.asarray(w), "b": jnp.asarray(_reorder(bias, units))}}
