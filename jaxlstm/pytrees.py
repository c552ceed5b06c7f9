"""The pytrees that cross every API: parameters, state and the result of a sequence.

They are NamedTuples, so ``jit``, ``grad``, ``vmap``, checkpointing and sharding see plain pytrees.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax


class LSTMParams(NamedTuple):
    """Weights in Keras layout; each weight's last axis holds the gate blocks in order i, f, c, o.

    Attributes:
        kernel: ``[input_size, 4*units]``, applied to the input.
        recurrent_kernel: ``[output_size, 4*units]``, applied to the previous h.
        bias: ``[4*units]``, or ``None`` for an LSTM without bias.
        projection: ``[units, proj_size]`` or ``None``. With it, h is projected as in PyTorch's
            ``proj_size``: ``h_t = (o * tanh(c_t)) @ projection``, so h (and every output) has
            ``proj_size`` features while c keeps ``units``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array] = None
    projection: Optional[jax.Array] = None

    @property
    def input_size(self) -> int:
        """I, features per input step."""
        return self.kernel.shape[0]

    @property
    def units(self) -> int:
        """H, the size of the cell state c."""
        return self.kernel.shape[1] // 4

    @property
    def output_size(self) -> int:
        """The size of h and of every output: proj_size with a projection, else units."""
        return self.recurrent_kernel.shape[0]


class BidirectionalParams(NamedTuple):
    """Independent parameters for the two directions of a bidirectional layer."""

    forward: LSTMParams
    backward: LSTMParams


# One layer of a stack: a single direction, or both.
LayerParams = Union[LSTMParams, BidirectionalParams]


class LSTMState(NamedTuple):
    """The recurrent state; leading axes are batch axes.

    Attributes:
        h: ``[..., output_size]``, the hidden state, also the output (Keras: "final memory
            state"); output_size is units, or proj_size for a projected LSTM.
        c: ``[..., units]``, the cell state (Keras: "final carry state").

    Flax's carry is the tuple ``(c, h)``: use ``LSTMState.from_flax_carry`` / ``to_flax_carry``
    rather than unpacking by position.
    """

    h: jax.Array
    c: jax.Array

    def to_flax_carry(self) -> tuple[jax.Array, jax.Array]:
        """Flax ``LSTMCell``'s carry order, ``(c, h)``."""
        return (self.c, self.h)

    @classmethod
    def from_flax_carry(cls, carry: tuple[jax.Array, jax.Array]) -> LSTMState:
        c, h = carry
        return cls(h=h, c=c)


class LSTMOutput(NamedTuple):
    """Everything one pass returns.

    Attributes:
        sequence: ``[..., T, output_size]``, the output at every step (Keras ``return_sequences=True``).
        state: the final ``LSTMState``; ``state.h == sequence[..., -1, :]`` when nothing is masked
            and the pass is not reversed.
    """

    sequence: jax.Array
    state: LSTMState
