"""Small helpers shared by the converters: array coercion and shape checks with clear messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..core import checks
from ..core.pytrees import BidirectionalParams, LayerParams, LSTMParams


class MissingWeightError(KeyError, ValueError):
    """A tensor the format requires is absent. A ``KeyError`` (a missing entry of a mapping) that is
    also a ``ValueError`` (malformed input), so either ``except`` catches it."""

    def __str__(self) -> str:  # KeyError would repr-quote the message
        return str(self.args[0]) if self.args else ""


def numpy(x: Any, name: str) -> np.ndarray:
    """Any array-like (jax, numpy, torch on CPU, h5py dataset) as a numpy array."""
    if hasattr(x, "detach"):  # a torch tensor: no torch import needed to read it
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name}: expected an array, found {type(x).__name__}") from exc


def expect_shape(x: Any, shape: Sequence[int], name: str) -> np.ndarray:
    """``x`` as numpy, refusing any shape other than ``shape`` (no silent broadcasting)."""
    a = numpy(x, name)
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {checks.fmt(shape)}, found {checks.fmt(a.shape)}")
    checks.float_array(a, name)  # here, before concatenation or a sum would silently make it float
    return a


def expect_rank(x: Any, rank: int, name: str) -> np.ndarray:
    a = numpy(x, name)
    if a.ndim != rank:
        raise ValueError(f"{name}: expected a rank-{rank} array, found shape {checks.fmt(a.shape)}")
    checks.float_array(a, name)
    return a


def gate_width(x: np.ndarray, axis: int, name: str) -> int:
    """The units H of an array whose ``axis`` holds 4 gate blocks."""
    n = x.shape[axis]
    if n % 4 or n == 0:
        raise ValueError(
            f"{name}: expected axis {axis} to hold 4 equal gate blocks (a positive multiple of 4), "
            f"found shape {checks.fmt(x.shape)}"
        )
    return n // 4


def to_params(
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None,
    projection: np.ndarray | None = None,
) -> LSTMParams:
    """Build jax-array ``LSTMParams`` and validate them with the core's own checks."""
    params = LSTMParams(
        jnp.asarray(kernel),
        jnp.asarray(recurrent_kernel),
        None if bias is None else jnp.asarray(bias),
        None if projection is None else jnp.asarray(projection),
    )
    checks.params(params)
    return params


def lstm_params(p: Any, name: str = "params") -> LSTMParams:
    """Check that ``p`` is a valid ``LSTMParams``; return it."""
    if not isinstance(p, LSTMParams):
        raise TypeError(f"{name}: expected LSTMParams, found {type(p).__name__}")
    checks.params(p, name)
    return p


def layer_params(p: Any, name: str = "params") -> LayerParams:
    """Check one layer's params: ``LSTMParams``, or ``BidirectionalParams`` whose directions read the
    same input size; return it."""
    if isinstance(p, BidirectionalParams):
        checks.bidirectional(p, name)
        return p
    return lstm_params(p, name)


def no_projection(p: LSTMParams, peer: str, name: str = "params") -> None:
    if p.projection is not None:
        raise ValueError(
            f"{name}: {peer} has no projected LSTM; found projection of shape "
            f"{checks.fmt(np.shape(p.projection))}"
        )


def plain_lstm(p: Any, peer: str, name: str = "params", *, allow: tuple[str, ...] = ()) -> None:
    """Refuse the LSTM variants ``peer`` has no cell for, naming the field: layer normalisation,
    peepholes, coupled input-forget gates (3 gate blocks); ``allow`` names the fields ``peer`` has
    (``"layer_norm"``, ``"peepholes"``). ``p`` is one layer's params (``BidirectionalParams``: each
    direction).

    Called before the shape checks, so that 3 gate blocks are reported as a coupled-gate LSTM, not
    as a shape mismatch; anything else about ``p`` is left to those checks.
    """
    if isinstance(p, BidirectionalParams):
        plain_lstm(p.forward, peer, f"{name}.forward", allow=allow)
        plain_lstm(p.backward, peer, f"{name}.backward", allow=allow)
        return
    if not isinstance(p, LSTMParams):
        return
    if p.layer_norm is not None and "layer_norm" not in allow:
        raise ValueError(f"{name}: {peer} has no layer-norm LSTM: {name}.layer_norm is set")
    if p.peepholes is not None and "peepholes" not in allow:
        raise ValueError(f"{name}: {peer} has no peephole LSTM: {name}.peepholes is set")
    kernel = np.shape(p.kernel) if p.kernel is not None else ()
    source = p.projection if p.projection is not None else p.recurrent_kernel
    units = np.shape(source)[0] if source is not None and np.ndim(source) == 2 else 0
    if len(kernel) == 2 and units and kernel[1] == 3 * units:
        raise ValueError(
            f"{name}: {peer} has no coupled-gate (CIFG) LSTM: {name} has 3 gate blocks "
            f"({name}.kernel {checks.fmt(kernel)} for {units} units)"
        )


def as_stack(params: Any, name: str = "params") -> tuple[LayerParams, ...]:
    """One layer's params or a stack (tuple/list of per-layer params) as a tuple."""
    if isinstance(params, (LSTMParams, BidirectionalParams)):
        return (params,)
    if (
        isinstance(params, (tuple, list))
        and params
        and all(isinstance(p, (LSTMParams, BidirectionalParams)) for p in params)
    ):
        return tuple(params)
    raise TypeError(
        f"{name}: expected LSTMParams, BidirectionalParams or a non-empty tuple of them, "
        f"found {type(params).__name__}"
    )
