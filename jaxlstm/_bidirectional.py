"""Bidirectional LSTM (``jaxlstm.bidirectional`` and friends; the file is private so that the
function ``jaxlstm.bidirectional`` does not shadow a module of the same name): a forward and a backward pass with independent parameters, merged per step.

    bidirectional(params, xs) -> BidirectionalOutput(sequence [..., T, F], state.forward, state.backward)

Both passes are ``core.lstm``; the backward one runs with ``reverse=True, keep_order=True``, so its
outputs come back in input order (as Keras ``Bidirectional`` flips them back). With ``lengths``
the backward pass runs over each sequence's valid prefix only, as in PyTorch's packed sequences.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from . import checks, core
from ._options import SequenceOptions
from .activations import ActivationLike
from .checks import MERGE_MODES
from .pytrees import BidirectionalParams, LSTMState

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

    Returns:
        ``BidirectionalOutput(sequence, state)``; see its docstring for shapes.
    """
    options = SequenceOptions.of(locals())
    return run(params, xs, initial_state, mask, lengths, options, merge_mode)


def run(
    params: BidirectionalParams,
    xs: jax.Array,
    initial_state: Optional[BidirectionalState],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    options: SequenceOptions,
    merge_mode: Optional[str] = "concat",
) -> BidirectionalOutput:
    """``bidirectional`` with its options as one ``SequenceOptions``."""
    checks.bidirectional(params, merged=True)
    checks.merge_mode(merge_mode)
    if initial_state is None:
        forward_state = backward_state = None
    elif isinstance(initial_state, BidirectionalState):
        forward_state, backward_state = initial_state
    else:
        raise TypeError(
            "initial_state: expected BidirectionalState(forward, backward) or None, "
            f"found {type(initial_state).__name__}"
        )
    options = options.replace(zero_output_for_mask=options.zero_output(True))
    forward = core.run(params.forward, xs, forward_state, mask, lengths, options)
    backward = core.run(
        params.backward, xs, backward_state, mask, lengths, options, reverse=True, keep_order=True
    )
    return BidirectionalOutput(
        sequence=merge(forward.sequence, backward.sequence, merge_mode),
        state=BidirectionalState(forward=forward.state, backward=backward.state),
    )
