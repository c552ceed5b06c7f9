"""Equinox: ``equinox.nn.LSTMCell`` (weight_ih ``[4H, I]``, weight_hh ``[4H, H]``, one bias ``[4H]``).

Equinox's gates are i, f, g, o (= jaxlstm's i, f, c, o) and its state is ``(h, c)``, so the kernels
are transposes and the bias is shared. Equinox has no projected LSTM.

    params = from_equinox(cell)
    cell = to_equinox(params)                       # a new LSTMCell holding params
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..core.pytrees import LSTMParams
from ._arrays import expect_rank, expect_shape, gate_width, lstm_params, no_projection, plain_lstm, to_params

__all__ = ["from_equinox", "to_equinox"]


def from_equinox(cell: Any) -> LSTMParams:
    """Params of an ``equinox.nn.LSTMCell`` (``bias=None`` when it was built with ``use_bias=False``)."""
    import equinox as eqx

    if not isinstance(cell, eqx.nn.LSTMCell):
        raise TypeError(f"cell: expected equinox.nn.LSTMCell, found {type(cell).__name__}")
    w_ih = expect_rank(cell.weight_ih, 2, "cell.weight_ih")
    units = gate_width(w_ih, 0, "cell.weight_ih")
    w_hh = expect_shape(cell.weight_hh, (4 * units, units), "cell.weight_hh")
    bias = None if cell.bias is None else expect_shape(cell.bias, (4 * units,), "cell.bias")
    return to_params(w_ih.T, w_hh.T, bias)


def to_equinox(params: LSTMParams, cell: Optional[Any] = None) -> Any:
    """An ``equinox.nn.LSTMCell`` holding ``params``.

    With ``cell`` given, a copy of it with the weights replaced (its sizes and use_bias must match);
    else a new cell of the right sizes.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    plain_lstm(params, "Equinox")
    p = lstm_params(params)
    no_projection(p, "Equinox")
    if cell is not None and not isinstance(cell, eqx.nn.LSTMCell):
        raise TypeError(f"cell: expected equinox.nn.LSTMCell or None, found {type(cell).__name__}")
    if cell is None:
        cell = eqx.nn.LSTMCell(
            p.input_size,
            p.units,
            use_bias=p.bias is not None,
            dtype=p.kernel.dtype,
            key=jax.random.PRNGKey(0),
        )
    if (cell.bias is None) != (p.bias is None):
        raise ValueError(
            f"params.bias: the cell has use_bias={cell.bias is not None}, params.bias is "
            f"{'None' if p.bias is None else 'set'}"
        )
    w_ih = jnp.asarray(
        expect_shape(np.asarray(p.kernel).T, np.shape(cell.weight_ih), "params.kernel (transposed)")
    )
    w_hh = jnp.asarray(
        expect_shape(
            np.asarray(p.recurrent_kernel).T, np.shape(cell.weight_hh), "params.recurrent_kernel (transposed)"
        )
    )
    if p.bias is None or cell.bias is None:  # both or neither, checked above
        return eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh), cell, (w_ih, w_hh))
    bias = jnp.asarray(expect_shape(p.bias, np.shape(cell.bias), "params.bias"))
    return eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias), cell, (w_ih, w_hh, bias))
