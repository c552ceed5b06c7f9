"""Bidirectional LSTM (``jaxlstm.bidirectional`` and friends; under ``layers/``, so that the function
``jaxlstm.bidirectional`` shadows no module): a forward and a backward pass with independent
parameters, merged per step.

    bidirectional(params, xs) -> BidirectionalOutput(sequence [..., T, F], state.forward, state.backward)

Both passes are ``core.lstm``; the backward one runs with ``reverse=True, keep_order=True``, so its
outputs come back in input order (as Keras ``Bidirectional`` flips them back). With ``lengths``
the backward pass runs over each sequence's valid prefix only, as in PyTorch's packed sequences.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from .. import core
from ..core import checks
from ..core.activations import ActivationLike
from ..core.checks import MERGE_MODES
from ..core.options import CallInputs, SequenceOptions
from ..core.pytrees import BidirectionalParams, LSTMState

__all__ = [
    "MERGE_MODES",
    "BidirectionalOutput",
    "BidirectionalState",
    "bidirectional",
    "init_bidirectional",
    "merge",
    "merged_size",
]


class BidirectionalState(NamedTuple):
    """The states of both directions; each is an ``LSTMState`` with the same batch axes.

    ``backward`` is the backward pass's final state, i.e. its state after reading input step 0.
    """

    forward: LSTMState
    backward: LSTMState


class BidirectionalOutput(NamedTuple):
    """Everything one bidirectional pass returns.

    Attributes:
        sequence: ``[..., T, F]``, both directions merged per step, in input order: F is
            2 * output_size for ``"concat"``, output_size for ``"sum"``, ``"mul"`` and ``"ave"``.
            With ``merge_mode=None`` it is the pair ``(forward [..., T, P], backward [..., T, P])``.
        state: the final ``BidirectionalState``.
    """

    sequence: Union[jax.Array, tuple[jax.Array, jax.Array]]
    state: BidirectionalState


def init_bidirectional(
    key: jax.Array, input_size: int, units: int, **init_kwargs: Any
) -> BidirectionalParams:
    """Independent ``core.init`` parameters for the two directions (keyword arguments as ``core.init``)."""
    checks.prng_key(key)
    forward_key, backward_key = jax.random.split(key)
    return BidirectionalParams(
        forward=core.init(forward_key, input_size, units, **init_kwargs),
        backward=core.init(backward_key, input_size, units, **init_kwargs),
    )


def merged_size(output_size: int, merge_mode: Optional[str]) -> int:
    """Features per step after merging two directions of ``output_size`` features each."""
    checks.merge_mode(merge_mode)
    if merge_mode is None:
        raise ValueError("merge_mode: None returns two sequences, which have no single merged size")
    return 2 * output_size if merge_mode == "concat" else output_size


def merge(
    forward: jax.Array, backward: jax.Array, merge_mode: Optional[str] = "concat"
) -> Union[jax.Array, tuple[jax.Array, jax.Array]]:
    """Merge two directions' outputs on the last axis, as Keras ``Bidirectional`` does.

    Also merges final hidden states: ``merge(out.state.forward.h, out.state.backward.h, mode)`` is
    Keras's ``Bidirectional(LSTM(...))`` output with ``return_sequences=False``.
    """
    checks.merge_mode(merge_mode)
    if merge_mode == "concat":
        return jnp.concatenate([forward, backward], axis=-1)
    if merge_mode == "sum":
        return forward + backward
    if merge_mode == "mul":
        return forward * backward
    if merge_mode == "ave":
        return (forward + backward) / 2
    return (forward, backward)


def bidirectional(
    params: BidirectionalParams,
    xs: jax.Array,
    initial_state: Optional[BidirectionalState] = None,
    mask: Optional[jax.Array] = None,
    *,
    merge_mode: Optional[str] = "concat",
    lengths: Optional[jax.Array] = None,
    zero_output_for_mask: Optional[bool] = None,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    unroll: int | bool = 1,
    dtype: Any = None,
    impl: Any = "auto",
    time_major: bool = False,
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
    zoneout: float | tuple[float, float] = 0.0,
    carry_dtype: Any = None,
    resets: Optional[jax.Array] = None,
    reset_state: Optional[BidirectionalState] = None,
    zoneout_key: Optional[jax.Array] = None,
    weight_drop_mask: Optional[tuple[jax.Array, jax.Array]] = None,
) -> BidirectionalOutput:
    """Run a bidirectional LSTM over whole sequences.

    Args:
        params: ``BidirectionalParams(forward, backward)``, two ``LSTMParams`` with the same input
            and output sizes.
        xs: ``[..., T, input_size]``, any number of leading batch axes (``[T, ..., input_size]``
            with ``time_major``).
        initial_state: a ``BidirectionalState`` (each direction an ``LSTMState`` that broadcasts to
            the batch), or None for zeros.
        mask: ``[..., T]`` bool or 0/1, Keras semantics, applied to both directions.
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or None, as in Keras.
        lengths: ``[...]`` int, right padding: the backward pass starts at each sequence's last
            valid step; padded outputs are zero.
        zero_output_for_mask: masked steps output zeros. None (default) is Keras's default here,
            True, because Keras ``Bidirectional`` forces it on when returning sequences.
        activation, recurrent_activation, unroll, dtype, impl, time_major: as in ``core.lstm``.
        layer_norm_epsilon, layer_norm_carry, zoneout, carry_dtype: as in ``core.lstm``, for both
            directions (the variant itself is in each direction's params).
        resets: ``[..., T]`` bool, episode starts (``[T, ...]`` with ``time_major``). The forward
            direction resets before each start, as in ``lstm``; the backward direction resets
            before the last step of each episode (input step t-1 where ``resets[t]``), so that no
            information crosses an episode boundary in either direction.
        reset_state: a ``BidirectionalState`` the resets go to; None is zeros.
        zoneout_key: a PRNG key for zoneout in training (split between the directions); None is
            evaluation.
        weight_drop_mask: ``(forward [P, G*H], backward [P, G*H])`` DropConnect multipliers of each
            direction's ``recurrent_kernel``, or None.

    Returns:
        ``BidirectionalOutput(sequence, state)``; see its docstring for shapes.
    """
    options = SequenceOptions.of(locals())
    inputs = CallInputs.of(locals())
    return run(params, xs, initial_state, mask, lengths, options, merge_mode, inputs)


def run(
    params: BidirectionalParams,
    xs: jax.Array,
    initial_state: Optional[BidirectionalState],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    options: SequenceOptions,
    merge_mode: Optional[str] = "concat",
    inputs: Optional[CallInputs] = None,
) -> BidirectionalOutput:
    """``bidirectional`` with its options as one ``SequenceOptions`` and its per-call arrays as one
    ``CallInputs`` whose fields other than ``resets`` and ``zoneout_key`` hold one value per
    direction (a ``BidirectionalState``, or a ``(forward, backward)`` pair)."""
    checks.bidirectional(params, merged=True)
    checks.merge_mode(merge_mode)
    forward_state, backward_state = _directions(initial_state, "initial_state")
    options = options.replace(zero_output_for_mask=options.zero_output(True))
    forward_inputs, backward_inputs = _split_inputs(inputs, params, xs, lengths, options.time_major)
    forward = core.run(params.forward, xs, forward_state, mask, lengths, options, inputs=forward_inputs)
    backward = core.run(
        params.backward, xs, backward_state, mask, lengths, options, reverse=True, keep_order=True,
        inputs=backward_inputs,
    )  # fmt: skip
    return BidirectionalOutput(
        sequence=merge(forward.sequence, backward.sequence, merge_mode),
        state=BidirectionalState(forward=forward.state, backward=backward.state),
    )


def _directions(state: Any, name: str) -> tuple[Optional[LSTMState], Optional[LSTMState]]:
    """A ``BidirectionalState`` (or None) as its two directions."""
    if state is None:
        return None, None
    if isinstance(state, BidirectionalState):
        return state.forward, state.backward
    raise TypeError(
        f"{name}: expected BidirectionalState(forward, backward) or None, found {type(state).__name__}"
    )


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a (forward, backward) pair or None, found {type(value).__name__}")
    return value[0], value[1]


def backward_resets(resets: jax.Array, lengths: Optional[jax.Array], time_major: bool) -> jax.Array:
    """Episode starts ``[..., T]`` as the backward direction's resets: True at t-1 where ``resets[t]``
    (a reversed pass enters an episode at its last step), never on a sequence's last valid step."""
    resets = jnp.asarray(resets).astype(bool)
    axis = 0 if time_major else -1
    resets = jnp.moveaxis(resets, axis, -1)
    steps = resets.shape[-1]
    shifted = jnp.concatenate([resets[..., 1:], jnp.zeros_like(resets[..., :1])], axis=-1)
    if lengths is not None:  # the step after a sequence's last valid one is padding, not a start
        shifted = shifted & (jnp.arange(steps) + 1 < jnp.asarray(lengths)[..., None])
    return jnp.moveaxis(shifted, -1, axis)


def _split_inputs(
    inputs: Optional[CallInputs],
    params: BidirectionalParams,
    xs: jax.Array,
    lengths: Optional[jax.Array],
    time_major: bool,
) -> tuple[Optional[CallInputs], Optional[CallInputs]]:
    """One direction's ``CallInputs`` each (see ``run``); each direction's ``core.run`` checks them."""
    if inputs is None or all(value is None for value in inputs):
        return None, None
    keys: tuple[Any, Any] = (None, None)
    if inputs.zoneout_key is not None:
        checks.prng_key(inputs.zoneout_key, "zoneout_key")
        keys = tuple(jax.random.split(inputs.zoneout_key))  # type: ignore[assignment]
    resets = inputs.resets
    if resets is not None:  # checked before it is shifted (core.run checks the shifted copy again)
        batch_shape, steps = checks.sequence(xs, params.forward.input_size, time_major=time_major)
        checks.mask(resets, batch_shape, steps, time_major, name="resets")
    states = _directions(inputs.reset_state, "reset_state")
    fields = ("weight_drop_mask", "recurrent_dropout_mask", "input_dropout_mask")
    pairs = [_pair(getattr(inputs, f), f) for f in fields]
    forward = CallInputs(resets, states[0], keys[0], *(p[0] for p in pairs))
    backward = CallInputs(
        None if resets is None else backward_resets(resets, lengths, time_major),
        states[1],
        keys[1],
        *(p[1] for p in pairs),
    )
    return forward, backward
