"""Stacked LSTM layers, as PyTorch ``nn.LSTM(num_layers=...)`` or a Keras stack of (Bidirectional) LSTMs.

A stack's parameters are a tuple with one entry per layer, each ``LSTMParams`` (one direction) or
``BidirectionalParams`` (two)::

    params = init_stack(key, input_size=8, units=32, num_layers=3, bidirectional=True)
    out = stacked_lstm(params, xs)            # out.sequence [..., T, 64]; out.state[layer].forward.h
    h_n, c_n = torch_state(out.state)         # PyTorch layout [num_layers * directions, ..., hidden]

Each layer is ``core.lstm`` or ``bidirectional.bidirectional``; this module only wires them together:
inter-layer dropout (PyTorch semantics: on every layer's output but the last) and optional residual
connections between layers of equal width.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from . import checks, core
from .activations import Activation, ActivationLike, resolve
from .bidirectional import (
    BidirectionalState,
    _check_merge_mode,
    bidirectional,
    init_bidirectional,
    merged_size,
)
from .pytrees import BidirectionalParams, LayerParams, LSTMParams, LSTMState

__all__ = [
    "LayerParams",
    "LayerState",
    "StackOutput",
    "TorchState",
    "from_torch_state",
    "init_stack",
    "stacked_lstm",
    "torch_state",
]

LayerState = Union[LSTMState, BidirectionalState]


class StackOutput(NamedTuple):
    """Everything one pass through a stack returns.

    Attributes:
        sequence: ``[..., T, F]``, the last layer's outputs (F: its output size, or the merged size
            of a bidirectional layer).
        state: a tuple with one final state per layer, bottom layer first: ``LSTMState(h, c)`` for a
            one-direction layer, ``BidirectionalState(forward, backward)`` for a bidirectional one.
            ``torch_state`` turns it into PyTorch's ``(h_n, c_n)``.
    """

    sequence: jax.Array
    state: tuple[LayerState, ...]


class TorchState(NamedTuple):
    """A stack's state in PyTorch ``nn.LSTM`` layout.

    Attributes:
        h_n: ``[num_layers * directions, ..., output_size]``, index ``layer * directions + direction``
            (direction 0 forward, 1 backward).
        c_n: ``[num_layers * directions, ..., units]``, same order.
    """

    h_n: jax.Array
    c_n: jax.Array


def init_stack(
    key: jax.Array,
    input_size: int,
    units: int,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    merge_mode: str = "concat",
    proj_size: Optional[int] = None,
    **init_kwargs: Any,
) -> tuple[LayerParams, ...]:
    """Parameters for ``num_layers`` layers of equal width (keyword arguments as ``core.init``).

    Layer 0 reads ``input_size`` features; every later layer reads the previous layer's output:
    ``proj_size or units`` features, doubled for bidirectional layers merged with ``"concat"`` (as
    in PyTorch's bidirectional ``nn.LSTM``).

    Returns:
        A tuple of ``num_layers`` ``LSTMParams``, or ``BidirectionalParams`` when ``bidirectional``.
    """
    checks.prng_key(key)
    num_layers = checks.positive_int(num_layers, "num_layers")
    output_size = units if proj_size is None else proj_size
    width = merged_size(output_size, merge_mode) if bidirectional else output_size
    layers = []
    for layer, layer_key in enumerate(jax.random.split(key, num_layers)):
        layer_input = input_size if layer == 0 else width
        make = init_bidirectional if bidirectional else core.init
        layers.append(make(layer_key, layer_input, units, proj_size=proj_size, **init_kwargs))
    return tuple(layers)


# ----------------------------------------------------------------------------------------------
# Validation: the layers must chain, states must match the layers' kinds
# ----------------------------------------------------------------------------------------------


def _layer_sizes(layer: Any, index: int, merge_mode: Optional[str]) -> tuple[int, int]:
    """``(input_size, output width)`` of one layer of a stack, checking its parameters."""
    name = f"params[{index}]"
    if isinstance(layer, LSTMParams):
        input_size, _, output_size = checks.params(layer)
        return input_size, output_size
    if isinstance(layer, BidirectionalParams):
        sizes = [checks.params(direction) for direction in layer]
        if sizes[0][0] != sizes[1][0] or sizes[0][2] != sizes[1][2]:
            raise ValueError(
                f"{name}: forward and backward must have the same input and output sizes, found "
                f"(input, output) {sizes[0][0], sizes[0][2]} and {sizes[1][0], sizes[1][2]}"
            )
        if merge_mode is None:
            raise ValueError(
                "merge_mode: a stack passes one merged sequence between layers, so None is not "
                "allowed; call bidirectional() directly for unmerged outputs"
            )
        return sizes[0][0], merged_size(sizes[0][2], merge_mode)
    raise TypeError(f"{name}: expected LSTMParams or BidirectionalParams, found {type(layer).__name__}")


def _check_stack(params: Any, merge_mode: Optional[str], residual: bool) -> list[tuple[int, int]]:
    if isinstance(params, (LSTMParams, BidirectionalParams)):
        raise TypeError(
            f"params: expected a tuple of per-layer params, found a single {type(params).__name__}; "
            "pass (params,) for a one-layer stack, or call lstm / bidirectional"
        )
    if not isinstance(params, tuple) or not params:
        raise TypeError(
            "params: expected a non-empty tuple of per-layer LSTMParams / BidirectionalParams "
            f"(see init_stack), found {type(params).__name__}"
            + (" of length 0" if isinstance(params, tuple) else "")
        )
    sizes = [_layer_sizes(layer, index, merge_mode) for index, layer in enumerate(params)]
    for index in range(1, len(sizes)):
        below, (layer_input, width) = sizes[index - 1][1], sizes[index]
        if layer_input != below:
            raise ValueError(
                f"params[{index}]: reads {layer_input} features but layer {index - 1} outputs {below}"
            )
        if residual and width != layer_input:
            raise ValueError(
                f"residual: layer {index} maps {layer_input} features to {width}; residual "
                "connections need layers of equal input and output width"
            )
    return sizes


def _check_initial_state(initial_state: Any, params: tuple, batch_shape: tuple[int, ...]) -> None:
    if not isinstance(initial_state, (tuple, list)) or isinstance(
        initial_state, (LSTMState, BidirectionalState)
    ):
        raise TypeError(
            "initial_state: expected a tuple with one state per layer (LSTMState or "
            f"BidirectionalState), found {type(initial_state).__name__}"
        )
    if len(initial_state) != len(params):
        raise ValueError(
            f"initial_state: expected {len(params)} per-layer states (one per layer), "
            f"found {len(initial_state)}"
        )
    for index, (layer, state) in enumerate(zip(params, initial_state)):
        name = f"initial_state[{index}]"
        if isinstance(layer, LSTMParams):
            if not isinstance(state, LSTMState):
                raise TypeError(
                    f"{name}: expected LSTMState for a one-direction layer, found {type(state).__name__}"
                )
            checks.state(state, batch_shape, layer.units, layer.output_size, name=name)
        else:
            if not isinstance(state, BidirectionalState):
                raise TypeError(
                    f"{name}: expected BidirectionalState for a bidirectional layer, found {type(state).__name__}"
                )
            for direction in ("forward", "backward"):
                p = getattr(layer, direction)
                checks.state(
                    getattr(state, direction), batch_shape, p.units, p.output_size, name=f"{name}.{direction}"
                )


# ----------------------------------------------------------------------------------------------
# The forward pass
# ----------------------------------------------------------------------------------------------


def _dropout(key: jax.Array, rate: float, x: jax.Array) -> jax.Array:
    """Inverted dropout (PyTorch ``F.dropout`` in training mode): zero with probability ``rate``."""
    if rate == 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


@partial(
    jax.jit,
    static_argnames=(
        "merge_mode",
        "dropout",
        "residual",
        "zero_output_for_mask",
        "activation",
        "recurrent_activation",
        "unroll",
        "dtype",
        "impl",
    ),
)
def _stacked_lstm(
    params: tuple[LayerParams, ...],
    xs: jax.Array,
    initial_state: Optional[tuple[LayerState, ...]],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    key: Optional[jax.Array],
    *,
    merge_mode: str,
    dropout: float,
    residual: bool,
    zero_output_for_mask: Optional[bool],
    activation: Activation,
    recurrent_activation: Activation,
    unroll: int | bool,
    dtype: Any,
    impl: Any,
) -> StackOutput:
    common = dict(
        mask=mask,
        lengths=lengths,
        activation=activation,
        recurrent_activation=recurrent_activation,
        unroll=unroll,
        dtype=dtype,
        impl=impl,
    )
    # A dropout key per gap between layers (PyTorch: no dropout after the last layer).
    keys = None if key is None else jax.random.split(key, max(len(params) - 1, 1))
    states = []
    for index, layer in enumerate(params):
        state = None if initial_state is None else initial_state[index]
        if isinstance(layer, LSTMParams):
            # Keras's LSTM default: a masked step repeats the previous output.
            zero = bool(zero_output_for_mask)
            out = core.lstm(layer, xs, state, zero_output_for_mask=zero, **common)
        else:
            # Keras's Bidirectional default when returning sequences: a masked step outputs zeros.
            zero = True if zero_output_for_mask is None else zero_output_for_mask
            out = bidirectional(layer, xs, state, merge_mode=merge_mode, zero_output_for_mask=zero, **common)
        ys = out.sequence
        if residual and index > 0:
            ys = ys + xs.astype(ys.dtype)
        if keys is not None and index < len(params) - 1:
            ys = _dropout(keys[index], dropout, ys)
        states.append(out.state)
        xs = ys
    return StackOutput(sequence=xs, state=tuple(states))


def stacked_lstm(
    params: Sequence[LayerParams],
    xs: jax.Array,
    initial_state: Optional[Sequence[LayerState]] = None,
    *,
    merge_mode: str = "concat",
    mask: Optional[jax.Array] = None,
    lengths: Optional[jax.Array] = None,
    dropout: float = 0.0,
    key: Optional[jax.Array] = None,
    deterministic: Optional[bool] = None,
    residual: bool = False,
    zero_output_for_mask: Optional[bool] = None,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    unroll: int | bool = 1,
    dtype: Any = None,
    impl: Any = "auto",
) -> StackOutput:
    """Run a stack of LSTM layers over whole sequences, bottom layer first.

    Args:
        params: a tuple of per-layer ``LSTMParams`` / ``BidirectionalParams`` (``init_stack``); each
            layer must read what the layer below outputs.
        xs: ``[..., T, input_size]``, any number of leading batch axes.
        initial_state: a tuple with one state per layer (``LSTMState`` or ``BidirectionalState``,
            broadcastable to the batch), or None for zeros. ``from_torch_state`` builds one from
            PyTorch's ``(h_0, c_0)``.
        merge_mode: how bidirectional layers merge their directions: ``"concat"`` (PyTorch's and
            Keras's default), ``"sum"``, ``"mul"`` or ``"ave"``.
        mask: ``[..., T]`` bool (Keras semantics), applied in every layer.
        lengths: ``[...]`` int, right padding (PyTorch packed sequences), applied in every layer.
        dropout: PyTorch's inter-layer dropout: applied to the output of every layer but the last.
        key: PRNG key for dropout; needed when ``dropout > 0`` and not ``deterministic``.
        deterministic: True turns dropout off (inference). Must be given when ``dropout > 0``, so
            that forgetting it can neither silently train without dropout nor infer with it.
        residual: add each layer's input to its output, for every layer above the first (GNMT-style
            skip connections); the layers must have equal input and output width. Dropout, when on,
            applies to the sum.
        zero_output_for_mask: masked steps output zeros instead of the previous output. Default:
            Keras's per-layer default (False for one-direction layers, True for bidirectional ones).
        activation, recurrent_activation, unroll, dtype, impl: as in ``core.lstm``, for every layer.

    Returns:
        ``StackOutput(sequence [..., T, F], state)``; see its docstring for the state layout.
    """
    if isinstance(params, list):
        params = tuple(params)
    _check_merge_mode(merge_mode)
    sizes = _check_stack(params, merge_mode, residual)
    batch_shape, _ = checks.sequence(xs, sizes[0][0])
    if initial_state is not None:
        _check_initial_state(initial_state, params, batch_shape)
        initial_state = tuple(initial_state)
    dropout = checks.fraction(dropout, "dropout")
    if deterministic is None and dropout > 0:
        raise ValueError(
            f"deterministic: dropout={dropout} needs deterministic=False (training, with a key) or "
            "deterministic=True (inference, no dropout); found None"
        )
    use_dropout = dropout > 0 and not deterministic and len(params) > 1
    if use_dropout and key is None:
        raise ValueError(f"key: dropout={dropout} with deterministic=False needs a PRNG key, found None")
    if zero_output_for_mask is not None:
        zero_output_for_mask = bool(zero_output_for_mask)
    # Mask, lengths, unroll and dtype are validated by core.lstm while tracing each layer.
    return _stacked_lstm(
        params,
        jnp.asarray(xs),
        initial_state,
        None if mask is None else jnp.asarray(mask),
        None if lengths is None else _concrete_lengths(lengths, batch_shape, xs),
        key if use_dropout else None,
        merge_mode=merge_mode,
        dropout=dropout if use_dropout else 0.0,  # an unused rate must not cause a recompilation
        residual=bool(residual),
        zero_output_for_mask=zero_output_for_mask,
        activation=resolve(activation, "activation"),
        recurrent_activation=resolve(recurrent_activation, "recurrent_activation"),
        unroll=unroll,
        dtype=None if dtype is None else jnp.dtype(dtype),
        impl=checks.impl(impl),
    )


def _concrete_lengths(lengths: Any, batch_shape: tuple[int, ...], xs: Any) -> jax.Array:
    # Check the range here, where lengths may still be concrete; inside the jit it is a tracer.
    checks.lengths(lengths, batch_shape, jnp.shape(xs)[-2])
    return jnp.asarray(lengths)


# ----------------------------------------------------------------------------------------------
# PyTorch's (h_n, c_n) layout
# ----------------------------------------------------------------------------------------------


def _directions(state: LayerState) -> tuple[LSTMState, ...]:
    return (state.forward, state.backward) if isinstance(state, BidirectionalState) else (state,)


def torch_state(state: Sequence[LayerState]) -> TorchState:
    """A stack's per-layer final states in PyTorch layout: ``TorchState(h_n, c_n)``.

    ``h_n`` is ``[num_layers * directions, ..., output_size]`` and ``c_n`` ``[num_layers *
    directions, ..., units]``; entry ``layer * directions + direction`` (0 forward, 1 backward).
    """
    if isinstance(state, (LSTMState, BidirectionalState)) or not isinstance(state, (tuple, list)):
        raise TypeError(
            f"state: expected a tuple of per-layer states (StackOutput.state), found {type(state).__name__}"
        )
    flat = [direction for layer in state for direction in _directions(layer)]
    return TorchState(h_n=jnp.stack([s.h for s in flat]), c_n=jnp.stack([s.c for s in flat]))


def from_torch_state(h_0: jax.Array, c_0: jax.Array, params: Sequence[LayerParams]) -> tuple[LayerState, ...]:
    """Per-layer states for ``params`` from PyTorch's ``(h_0, c_0)`` ``[num_layers * directions, ...]``."""
    params = tuple(params)
    for index, layer in enumerate(params):
        if not isinstance(layer, (LSTMParams, BidirectionalParams)):
            raise TypeError(
                f"params[{index}]: expected LSTMParams or BidirectionalParams, found {type(layer).__name__}"
            )
    wanted = sum(2 if isinstance(layer, BidirectionalParams) else 1 for layer in params)
    for name, value in (("h_0", h_0), ("c_0", c_0)):
        if jnp.ndim(value) < 2 or jnp.shape(value)[0] != wanted:
            raise ValueError(
                f"{name}: expected shape [num_layers * directions = {wanted}, ..., features], "
                f"found {checks.fmt(jnp.shape(value))}"
            )
    states, row = [], 0
    for layer in params:
        if isinstance(layer, BidirectionalParams):
            forward = LSTMState(h=h_0[row], c=c_0[row])
            backward = LSTMState(h=h_0[row + 1], c=c_0[row + 1])
            states.append(BidirectionalState(forward=forward, backward=backward))
            row += 2
        else:
            states.append(LSTMState(h=h_0[row], c=c_0[row]))
            row += 1
    return tuple(states)
