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
from typing import Any, NamedTuple, Optional, Union, cast

import jax
import jax.numpy as jnp

from .. import core
from ..core import checks
from ..core.activations import ActivationLike
from ..core.options import CallInputs, SequenceOptions
from ..core.pytrees import BidirectionalParams, LayerParams, LSTMParams, LSTMState
from . import bidirectional as _bidirectional
from ._dropout import weight_drop_masks
from .bidirectional import BidirectionalState, init_bidirectional, merged_size

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


def check_stack(params: Any, merge_mode: Optional[str], residual: bool) -> list[tuple[int, int]]:
    """The layers of a stack chain (each reads what the layer below outputs), and fit residual
    connections; returns each layer's ``(input_size, output width)``."""
    sizes = []
    for index, layer in enumerate(checks.layers(params)):
        input_size, output_size, two_way = checks.layer(layer, f"params[{index}]")
        if two_way and merge_mode is None:
            raise ValueError(
                "merge_mode: a stack passes one merged sequence between layers, so None is not "
                "allowed; call bidirectional() directly for unmerged outputs"
            )
        sizes.append((input_size, merged_size(output_size, merge_mode) if two_way else output_size))
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


def _check_initial_state(
    initial_state: Any,
    params: Sequence[LayerParams],
    batch_shape: tuple[int, ...],
    what: str = "initial_state",
) -> None:
    if not isinstance(initial_state, (tuple, list)) or isinstance(
        initial_state, (LSTMState, BidirectionalState)
    ):
        raise TypeError(
            f"{what}: expected a tuple with one state per layer (LSTMState or "
            f"BidirectionalState), found {type(initial_state).__name__}"
        )
    if len(initial_state) != len(params):
        raise ValueError(
            f"{what}: expected {len(params)} per-layer states (one per layer), found {len(initial_state)}"
        )
    for index, (layer, state) in enumerate(zip(params, initial_state)):
        name = f"{what}[{index}]"
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


def _layer_inputs(
    layer: LayerParams,
    index: int,
    resets: Optional[jax.Array],
    reset_state: Optional[tuple[LayerState, ...]],
    key: Optional[jax.Array],
    weight_drop: float,
    zoneout_training: bool,
) -> Optional[CallInputs]:
    """Layer ``index``'s ``CallInputs``: the stack's resets, its reset state, and in training its
    zoneout key and weight-drop masks (one per direction), from keys of their own."""
    zoneout_key = mask_key = None
    if key is not None:
        zoneout_key = jax.random.fold_in(jax.random.fold_in(key, 1), index) if zoneout_training else None
        mask_key = jax.random.fold_in(jax.random.fold_in(key, 2), index) if weight_drop else None
    directions = (layer,) if isinstance(layer, LSTMParams) else (layer.forward, layer.backward)
    masks = None
    if mask_key is not None:
        masks = weight_drop_masks(mask_key, weight_drop, [p.recurrent_kernel for p in directions])
    state = None if reset_state is None else reset_state[index]
    inputs = CallInputs(
        resets=resets,
        reset_state=state,
        zoneout_key=zoneout_key,
        weight_drop_mask=None if masks is None else masks[0] if len(masks) == 1 else masks,
    )
    return None if all(value is None for value in inputs) else inputs


@partial(
    jax.jit,
    static_argnames=("merge_mode", "dropout", "weight_drop", "zoneout_training", "residual", "options"),
)
def _stacked_lstm(
    params: tuple[LayerParams, ...],
    xs: jax.Array,
    initial_state: Optional[tuple[LayerState, ...]],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    key: Optional[jax.Array],
    resets: Optional[jax.Array],
    reset_state: Optional[tuple[LayerState, ...]],
    *,
    merge_mode: str,
    dropout: float,
    weight_drop: float,
    zoneout_training: bool,
    residual: bool,
    options: SequenceOptions,
) -> StackOutput:
    # A dropout key per gap between layers (PyTorch: no dropout after the last layer).
    keys = None if key is None or not dropout else jax.random.split(key, max(len(params) - 1, 1))
    states: list[LayerState] = []
    for index, layer in enumerate(params):
        # _check_initial_state matched each state's kind to its layer's. Each layer fills in Keras's
        # default zero_output_for_mask for its kind when it is None.
        state = None if initial_state is None else initial_state[index]
        inputs = _layer_inputs(layer, index, resets, reset_state, key, weight_drop, zoneout_training)
        if isinstance(layer, LSTMParams):
            out = core.run(layer, xs, cast(Optional[LSTMState], state), mask, lengths, options, inputs=inputs)
            ys = out.sequence
        else:
            bi_state = cast(Optional[BidirectionalState], state)
            out = _bidirectional.run(layer, xs, bi_state, mask, lengths, options, merge_mode, inputs)
            # A stack's merge_mode is never None (check_stack rejects it), so this is one array.
            ys = cast(jax.Array, out.sequence)
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
    mask: Optional[jax.Array] = None,
    *,
    merge_mode: str = "concat",
    lengths: Optional[jax.Array] = None,
    inter_layer_dropout: float = 0.0,
    key: Optional[jax.Array] = None,
    deterministic: Optional[bool] = None,
    residual: bool = False,
    zero_output_for_mask: Optional[bool] = None,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    unroll: int | bool = 1,
    dtype: Any = None,
    impl: Any = "auto",
    time_major: bool = False,
    dropout: Optional[float] = None,
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
    zoneout: float | tuple[float, float] = 0.0,
    carry_dtype: Any = None,
    resets: Optional[jax.Array] = None,
    reset_state: Optional[Sequence[LayerState]] = None,
    weight_drop: float = 0.0,
) -> StackOutput:
    """Run a stack of LSTM layers over whole sequences, bottom layer first.

    Args:
        params: a tuple of per-layer ``LSTMParams`` / ``BidirectionalParams`` (``init_stack``); each
            layer must read what the layer below outputs.
        xs: ``[..., T, input_size]``, any number of leading batch axes (``[T, ..., input_size]``
            with ``time_major``).
        initial_state: a tuple with one state per layer (``LSTMState`` or ``BidirectionalState``,
            broadcastable to the batch), or None for zeros. ``from_torch_state`` builds one from
            PyTorch's ``(h_0, c_0)``.
        mask: ``[..., T]`` bool or 0/1 (Keras semantics), applied in every layer.
        merge_mode: how bidirectional layers merge their directions: ``"concat"`` (PyTorch's and
            Keras's default), ``"sum"``, ``"mul"`` or ``"ave"``.
        lengths: ``[...]`` int, right padding (PyTorch packed sequences), applied in every layer.
        inter_layer_dropout: PyTorch ``nn.LSTM``'s ``dropout``: applied to the output of every layer
            but the last (not Keras's input ``dropout`` of the LSTM modules).
        key: PRNG key for dropout; needed when ``inter_layer_dropout > 0`` and not ``deterministic``.
        deterministic: True turns dropout off (inference). Must be given when dropout is on, so
            that forgetting it can neither silently train without dropout nor infer with it.
        residual: add each layer's input to its output, for every layer above the first (GNMT-style
            skip connections); the layers must have equal input and output width. Dropout, when on,
            applies to the sum.
        zero_output_for_mask: masked steps output zeros instead of the previous output. Default:
            Keras's per-layer default (False for one-direction layers, True for bidirectional ones).
        activation, recurrent_activation, unroll, dtype, impl, time_major: as in ``core.lstm``, for
            every layer.
        dropout: deprecated spelling of ``inter_layer_dropout``.
        layer_norm_epsilon, layer_norm_carry, carry_dtype: as in ``core.lstm``, for every layer (the
            variant itself is in each layer's params).
        zoneout: rates ``z`` or ``(z_c, z_h)``, as in ``core.lstm``, in every layer: in training
            (``deterministic=False``) each layer draws its masks from ``key``; with
            ``deterministic=True`` every layer uses the expectation. Needs ``deterministic``.
        resets: ``[..., T]`` bool episode starts (``[T, ...]`` with ``time_major``), the same for
            every layer: each layer's state goes to its ``reset_state`` before a start (a
            bidirectional layer's backward direction before the step that ends an episode).
        reset_state: a tuple with one state per layer, as ``initial_state``; None is zeros.
        weight_drop: DropConnect rate on every direction's ``recurrent_kernel`` (AWD-LSTM): in
            training one mask per call and direction, drawn from ``key``. Needs ``deterministic``.

    Returns:
        ``StackOutput(sequence [..., T, F], state)``; see its docstring for the state layout
        (``[T, ..., F]`` with ``time_major``).
    """
    rate = checks.renamed("dropout", dropout, "inter_layer_dropout", inter_layer_dropout, 0.0)
    options = SequenceOptions.of(locals())
    inputs = CallInputs(resets=resets, reset_state=reset_state)
    return run(params, xs, initial_state, mask, lengths, options, merge_mode=merge_mode,
               inter_layer_dropout=rate, key=key, deterministic=deterministic, residual=residual,
               weight_drop=weight_drop, inputs=inputs)  # fmt: skip


def run(
    params: Sequence[LayerParams],
    xs: jax.Array,
    initial_state: Optional[Sequence[LayerState]],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    options: SequenceOptions,
    *,
    merge_mode: str = "concat",
    inter_layer_dropout: float = 0.0,
    key: Optional[jax.Array] = None,
    deterministic: Optional[bool] = None,
    residual: bool = False,
    weight_drop: float = 0.0,
    inputs: Optional[CallInputs] = None,
) -> StackOutput:
    """``stacked_lstm`` with its options as one ``SequenceOptions``; ``inputs`` carries the stack's
    ``resets`` and its per-layer ``reset_state`` (its other fields must be None: the stack draws
    zoneout and weight-drop masks itself)."""
    checks.merge_mode(merge_mode)
    residual = checks.flag(residual, "residual")
    params = checks.layers(params)
    sizes = check_stack(params, merge_mode, residual)
    batch_shape, steps = checks.sequence(xs, sizes[0][0], time_major=options.time_major)
    if initial_state is not None:
        _check_initial_state(initial_state, params, batch_shape)
        initial_state = tuple(initial_state)
    inputs = CallInputs() if inputs is None else inputs
    drawn_here = ("zoneout_key", "weight_drop_mask", "recurrent_dropout_mask", "input_dropout_mask")
    for field in drawn_here:
        if getattr(inputs, field) is not None:
            raise ValueError(
                f"{field}: a stack draws its own masks (zoneout=, weight_drop=, key=); found one"
            )
    reset_state = inputs.reset_state
    if reset_state is not None:
        _check_initial_state(reset_state, params, batch_shape, "reset_state")
        reset_state = tuple(reset_state)
    dropout = checks.fraction(inter_layer_dropout, "inter_layer_dropout")
    weight_drop = checks.fraction(weight_drop, "weight_drop")
    deterministic = checks.optional_flag(deterministic, "deterministic")
    # Every regulariser that behaves differently in training and inference needs to be told which.
    rates = {"inter_layer_dropout": dropout, "weight_drop": weight_drop, "zoneout": max(options.zoneout)}
    on = ", ".join(f"{name}={rate}" for name, rate in rates.items() if rate > 0)
    if deterministic is None and on:
        raise ValueError(
            f"deterministic: {on} needs deterministic=False (training, with a key) or "
            "deterministic=True (inference); found None"
        )
    use_dropout = dropout > 0 and not deterministic and len(params) > 1
    use_weight_drop = weight_drop > 0 and not deterministic
    zoneout_training = max(options.zoneout) > 0 and not deterministic
    if (use_dropout or use_weight_drop or zoneout_training) and key is None:
        raise ValueError(f"key: {on} with deterministic=False needs a PRNG key, found None")
    # Mask and lengths are validated by each layer while tracing (lengths' range here, concretely).
    return _stacked_lstm(
        params,
        jnp.asarray(xs),
        initial_state,
        None if mask is None else jnp.asarray(mask),
        None if lengths is None else _concrete_lengths(lengths, batch_shape, steps),
        key if use_dropout or use_weight_drop or zoneout_training else None,
        None if inputs.resets is None else jnp.asarray(inputs.resets),
        reset_state,
        merge_mode=merge_mode,
        # An unused rate must not cause a recompilation.
        dropout=dropout if use_dropout else 0.0,
        weight_drop=weight_drop if use_weight_drop else 0.0,
        zoneout_training=zoneout_training,
        residual=residual,
        options=options,
    )


def _concrete_lengths(lengths: Any, batch_shape: tuple[int, ...], steps: int) -> jax.Array:
    # Check the range here, where lengths may still be concrete; inside the jit it is a tracer.
    checks.lengths(lengths, batch_shape, steps)
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
