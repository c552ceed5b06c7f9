"""The pytrees that cross every API: parameters, state and the result of a sequence.

They are NamedTuples, so ``jit``, ``grad``, ``vmap``, checkpointing and sharding see plain pytrees.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax


class LayerNormParams(NamedTuple):
    """Gains (init 1) and offsets (init 0) of a layer-normalised LSTM (Ba, Kiros & Hinton 2016).

    Each normalisation is over one whole vector: the pre-activations of all G gates together, or the
    new cell.

    Attributes:
        x_gain, x_offset: ``[G*units]``, for ``x_t @ kernel`` (TF Addons ``kernel_norm``).
        h_gain, h_offset: ``[G*units]``, for ``h_{t-1} @ recurrent_kernel`` (Addons ``recurrent_norm``).
        c_gain, c_offset: ``[units]``, for the new cell (Addons ``state_norm``).
    """

    x_gain: jax.Array
    x_offset: jax.Array
    h_gain: jax.Array
    h_offset: jax.Array
    c_gain: jax.Array
    c_offset: jax.Array


class PeepholeParams(NamedTuple):
    """Diagonal peephole weights (Gers & Schmidhuber 2000; TF1 ``LSTMCell(use_peepholes=True)``).

    Attributes:
        i: ``[units]``, the input gate's view of ``c_{t-1}``; ``None`` with coupled gates (no input gate).
        f: ``[units]``, the forget gate's view of ``c_{t-1}``.
        o: ``[units]``, the output gate's view of the new cell ``c_t``.
    """

    i: Optional[jax.Array]
    f: jax.Array
    o: jax.Array


class LSTMParams(NamedTuple):
    """Weights in Keras layout; each weight's last axis holds the G gate blocks in order i, f, c, o
    (G = 4), or f, c, o with coupled input and forget gates (CIFG, G = 3: ``i = 1 - f``).

    The variant is the weights: a present ``layer_norm`` or ``peepholes`` field, or 3 gate blocks,
    switches it on; plain parameters have no leaves in those fields.

    Attributes:
        kernel: ``[input_size, G*units]``, applied to the input.
        recurrent_kernel: ``[output_size, G*units]``, applied to the previous h.
        bias: ``[G*units]``, or ``None`` for an LSTM without bias.
        projection: ``[units, proj_size]`` or ``None``. With it, h is projected as in PyTorch's
            ``proj_size``: ``h_t = (o * tanh(c_t)) @ projection``, so h (and every output) has
            ``proj_size`` features while c keeps ``units``.
        layer_norm: ``LayerNormParams`` for a layer-normalised LSTM, or ``None``.
        peepholes: ``PeepholeParams`` for peephole connections, or ``None``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: Optional[jax.Array] = None
    projection: Optional[jax.Array] = None
    layer_norm: Optional[LayerNormParams] = None
    peepholes: Optional[PeepholeParams] = None

    @property
    def input_size(self) -> int:
        """I, features per input step."""
        return self.kernel.shape[0]

    @property
    def units(self) -> int:
        """H, the size of the cell state c."""
        if self.projection is not None:
            return self.projection.shape[0]
        return self.recurrent_kernel.shape[0]

    @property
    def gates(self) -> int:
        """G, the number of gate blocks: 4, or 3 with coupled input and forget gates."""
        return self.kernel.shape[1] // self.units

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
