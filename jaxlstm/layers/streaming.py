"""Online inference: advance a (stacked, possibly projected) LSTM as the input arrives.

    state = stream_state(params, batch_shape)
    state, y_t = stream_step(params, state, x_t)      # one time step through every layer
    state, ys  = stream_chunk(params, state, xs)      # a chunk of steps, e.g. one audio buffer

Feeding a sequence step by step, or in chunks of any sizes, gives the same outputs and final state as
one ``stacked_lstm`` pass over the whole sequence. ``params`` is one ``LSTMParams`` (the state is then
one ``LSTMState``) or a stack's tuple of them (the state is a tuple of per-layer ``LSTMState``).
A bidirectional layer needs the whole sequence before its first output, so it cannot be streamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Optional, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from .. import core
from ..core import checks
from ..core.activations import ActivationLike
from ..core.options import CallInputs, SequenceOptions
from ..core.pytrees import BidirectionalParams, LSTMParams, LSTMState
from . import stack
from .stack import check_stack

__all__ = ["stream_chunk", "stream_state", "stream_step"]

StreamParams = Union[LSTMParams, Sequence[LSTMParams]]
StreamState = Union[LSTMState, tuple[LSTMState, ...]]


def _layers(params: Any) -> tuple[tuple[LSTMParams, ...], bool]:
    """The layers as a tuple, and whether ``params`` was a single ``LSTMParams``."""
    single = isinstance(params, (LSTMParams, BidirectionalParams))
    layers = (params,) if single else checks.layers(params)
    checked: list[LSTMParams] = []
    for index, layer in enumerate(layers):
        name = "params" if single else f"params[{index}]"
        if isinstance(layer, BidirectionalParams):
            raise ValueError(
                f"{name}: a bidirectional layer cannot be streamed: its backward direction reads the "
                "sequence from the end, so no output exists before the whole sequence has arrived; "
                "run stacked_lstm or bidirectional on the complete sequence instead"
            )
        if not isinstance(layer, LSTMParams):
            raise TypeError(f"{name}: expected LSTMParams, found {type(layer).__name__}")
        checks.params(layer)
        checked.append(layer)
    return tuple(checked), single


def _as_tuple(state: Any, layers: tuple, single: bool, what: str = "state") -> tuple[LSTMState, ...]:
    if single:
        if not isinstance(state, LSTMState):
            raise TypeError(f"{what}: expected LSTMState for one LSTMParams, found {type(state).__name__}")
        return (state,)
    if not isinstance(state, (tuple, list)) or isinstance(state, LSTMState):
        raise TypeError(f"{what}: expected a tuple of per-layer LSTMState, found {type(state).__name__}")
    if len(state) != len(layers):
        raise ValueError(f"{what}: expected {len(layers)} per-layer states, found {len(state)}")
    return tuple(state)


def _check_reset(reset: Any, batch_shape: tuple[int, ...]) -> None:
    """One step's reset flags ``[...]`` (x_t's batch axes): bool or 0/1, as ``lstm``'s resets."""
    if tuple(np.shape(reset)) != tuple(batch_shape):
        raise ValueError(
            f"reset: expected shape {checks.fmt(batch_shape)} (x_t's batch axes), found {checks.fmt(np.shape(reset))}"
        )
    # The dtype and value checks of a [..., T] flag array, on the one step.
    checks.mask(jnp.reshape(reset, (*batch_shape, 1)), batch_shape, 1, name="reset")


def stream_state(
    params: StreamParams, batch_shape: Sequence[int] = (), dtype: Any = jnp.float32
) -> StreamState:
    """The all-zero state to start a stream: per layer h ``[*batch_shape, output_size]``, c
    ``[*batch_shape, units]``; one ``LSTMState`` for one ``LSTMParams``, else a tuple."""
    layers, single = _layers(params)
    states = tuple(core.zero_state(layer, batch_shape, dtype) for layer in layers)
    return states[0] if single else states


@partial(jax.jit, static_argnames=("residual", "options"))
def _stream_step(
    layers: tuple[LSTMParams, ...],
    states: tuple[LSTMState, ...],
    x_t: jax.Array,
    reset: Optional[jax.Array],
    reset_states: Optional[tuple[LSTMState, ...]],
    *,
    residual: bool,
    options: SequenceOptions,
) -> tuple[tuple[LSTMState, ...], jax.Array]:
    # Compute in the dtype core.lstm would use, so a stream matches the whole-sequence pass.
    dtype = jnp.result_type(x_t.dtype, layers[0].kernel.dtype)
    x_t = x_t.astype(dtype)
    new_states = []
    for index, (layer, state) in enumerate(zip(layers, states)):
        if reset is not None:  # before the step, as in lstm(resets=); run_step casts what it picks
            to = core.zero_state(layer, (), dtype) if reset_states is None else reset_states[index]
            state = core.reset(state, reset, to)
        # No zoneout masks: a stream is inference, so zoneout is its expectation.
        new, y_t = core.run_step(layer, state, x_t, options, dtype)
        if residual and index > 0:
            y_t = y_t + x_t
        new_states.append(new)
        x_t = y_t
    return tuple(new_states), x_t


def stream_step(
    params: StreamParams,
    state: StreamState,
    x_t: jax.Array,
    *,
    residual: bool = False,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
    zoneout: float | tuple[float, float] = 0.0,
    carry_dtype: Any = None,
    reset: Optional[jax.Array] = None,
    reset_state: Optional[StreamState] = None,
) -> tuple[StreamState, jax.Array]:
    """Advance every layer by one time step.

    Args:
        params: ``LSTMParams`` or a tuple of per-layer ``LSTMParams``, bottom layer first.
        state: the matching ``LSTMState`` or tuple of them (``stream_state`` for a fresh stream);
            h ``[..., output_size]``, c ``[..., units]``, broadcastable to x_t's batch axes.
        x_t: ``[..., input_size]``, one time step; any number of leading batch axes.
        residual, activation, recurrent_activation: as in ``stacked_lstm``.
        layer_norm_epsilon, layer_norm_carry, carry_dtype: as in ``lstm``.
        zoneout: rates as in ``lstm``; a stream is inference, so every step uses zoneout's
            expectation (as ``lstm`` without a ``zoneout_key``).
        reset: ``[...]`` bool (x_t's batch axes): where True every layer's state is replaced by
            ``reset_state`` before the step (an episode starts), as ``lstm(resets=)``.
        reset_state: the state (structure of ``state``) a reset goes to; None is zeros.

    Returns:
        ``(new_state, y_t)``: the state in the same structure, and the top layer's output
        ``[..., output_size]``.
    """
    options = SequenceOptions.of(locals())
    layers, single = _layers(params)
    states = _as_tuple(state, layers, single)
    residual = checks.flag(residual, "residual")
    check_stack(layers, None, residual)  # the layers chain (and fit residual connections)
    checks.float_array(x_t, "x_t")
    x_shape = tuple(np.shape(x_t))
    if len(x_shape) < 1 or x_shape[-1] != layers[0].input_size:
        raise ValueError(
            f"x_t: expected shape [..., {layers[0].input_size}] (one time step, any batch axes), "
            f"found {checks.fmt(x_shape)}"
        )
    _check_states(states, layers, x_shape[:-1], single, "state")
    reset_states = None
    if reset is not None:
        _check_reset(reset, x_shape[:-1])
        reset = jnp.asarray(reset).astype(bool)
        if reset_state is not None:
            reset_states = _as_tuple(reset_state, layers, single, "reset_state")
            _check_states(reset_states, layers, x_shape[:-1], single, "reset_state")
    elif reset_state is not None:
        raise ValueError("reset_state: given without reset (it is the state a reset step starts from)")
    new_states, y_t = _stream_step(
        layers, states, jnp.asarray(x_t), reset, reset_states, residual=residual, options=options
    )
    return (new_states[0] if single else new_states), y_t


def _check_states(
    states: tuple[LSTMState, ...], layers: tuple[LSTMParams, ...], batch_shape: tuple, single: bool, what: str
) -> None:
    for index, (layer, layer_state) in enumerate(zip(layers, states)):
        name = what if single else f"{what}[{index}]"
        checks.state(layer_state, batch_shape, layer.units, layer.output_size, name=name)


def stream_chunk(
    params: StreamParams,
    state: StreamState,
    xs: jax.Array,
    *,
    mask: Optional[jax.Array] = None,
    residual: bool = False,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    unroll: int | bool = 1,
    impl: Any = "auto",
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
    zoneout: float | tuple[float, float] = 0.0,
    carry_dtype: Any = None,
    resets: Optional[jax.Array] = None,
    reset_state: Optional[StreamState] = None,
) -> tuple[StreamState, jax.Array]:
    """Advance every layer over a chunk of time steps, carrying ``state`` in and out.

    Args:
        params, state: as in ``stream_step``.
        xs: ``[..., T_chunk, input_size]``.
        mask: ``[..., T_chunk]`` bool (Keras semantics), or None.
        residual, activation, recurrent_activation, unroll, impl: as in ``stacked_lstm``.
        layer_norm_epsilon, layer_norm_carry, zoneout, carry_dtype, reset_state: as in ``stream_step``.
        resets: ``[..., T_chunk]`` bool, ``stream_step``'s ``reset`` for each step of the chunk.

    Returns:
        ``(new_state, ys)`` with ys ``[..., T_chunk, output_size]``, the top layer's outputs.
    """
    options = SequenceOptions.of(locals())
    layers, single = _layers(params)
    states = _as_tuple(state, layers, single)
    reset_states = None if reset_state is None else _as_tuple(reset_state, layers, single, "reset_state")
    inputs = CallInputs(resets=resets, reset_state=reset_states)
    # A stream is inference: deterministic, so zoneout is its expectation, as in stream_step.
    out = stack.run(
        layers, xs, states, mask, None, options, residual=residual, deterministic=True, inputs=inputs
    )
    # Every layer is one-direction (_layers), so every state is an LSTMState.
    new_state = cast(tuple[LSTMState, ...], out.state)
    return (new_state[0] if single else new_state), out.sequence
