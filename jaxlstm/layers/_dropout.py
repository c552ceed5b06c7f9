"""Keras-style sequence dropout: one mask per sequence, reused at every time step; and weight drop.

Keras's ``LSTMCell`` draws its input and recurrent masks once per call and applies the same mask at
every step (Gal & Ghahramani's variational dropout). The masks are inverted-dropout multipliers: 0 with
probability ``rate``, ``1 / (1 - rate)`` otherwise, so the expected value is unchanged.

Two shapes: one mask shared by every gate (``[..., n]``, the default), or one per gate block
(``[..., G, n]``), which is what Keras 3's ``LSTM`` draws whenever ``recurrent_dropout > 0``: 4
independent masks for h and, with ``dropout > 0``, 4 for the input. Weight drop (DropConnect on
``recurrent_kernel``, AWD-LSTM) is one ``[P, G*H]`` mask per call shared by the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp


class SequenceDropoutMasks(NamedTuple):
    """Multipliers for one call; None where the rate is 0 (dropout off).

    Attributes:
        inputs: ``[..., input_size]`` (``[..., G, input_size]`` per gate), applied to every step's
            input (broadcast over time).
        recurrent: ``[..., output_size]`` (``[..., G, output_size]``), applied to h where it enters
            the recurrent matmul.
    """

    inputs: Optional[jax.Array]
    recurrent: Optional[jax.Array]


def keep_mask(key: jax.Array, rate: float, shape: Sequence[int], dtype: Any) -> jax.Array:
    """``[*shape]`` multipliers: 0 with probability ``rate``, else ``1 / (1 - rate)``.

    ``rate == 1`` drops everything (all zeros, as ``flax.nnx.Dropout``), avoiding a division by zero.
    """
    if rate >= 1.0:
        return jnp.zeros(shape, dtype)
    keep = jax.random.bernoulli(key, 1.0 - rate, tuple(shape))
    return jnp.where(keep, 1.0 / (1.0 - rate), 0.0).astype(dtype)


def weight_drop_masks(
    key: jax.Array, rate: float, recurrent_kernels: Sequence[jax.Array]
) -> tuple[jax.Array, ...]:
    """DropConnect multipliers (AWD-LSTM weight drop), one per direction's ``recurrent_kernel``, each
    in its kernel's shape and dtype from its own split of ``key``."""
    keys = jax.random.split(key, len(recurrent_kernels))
    return tuple(keep_mask(k, rate, jnp.shape(u), u.dtype) for k, u in zip(keys, recurrent_kernels))


def sequence_masks(
    key: Optional[jax.Array],
    *,
    dropout: float,
    recurrent_dropout: float,
    batch_shape: Sequence[int],
    input_size: int,
    output_size: int,
    dtype: Any,
    gates: Optional[int] = None,
) -> SequenceDropoutMasks:
    """Draw the per-sequence masks for one call (independent keys for the two masks).

    ``gates`` None draws one mask per example shared by the gates; ``gates=G`` draws G independent
    ones (``[..., G, n]``, Keras 3's per-gate masks; one draw of that shape is G independent masks).
    ``key`` may be None only when both rates are 0.
    """
    if dropout == 0.0 and recurrent_dropout == 0.0:
        return SequenceDropoutMasks(None, None)
    if key is None:
        raise ValueError("dropout: a PRNG key is needed when dropout or recurrent_dropout is > 0")
    input_key, recurrent_key = jax.random.split(key)
    batch_shape = (*batch_shape, *(() if gates is None else (gates,)))
    inputs = None
    if dropout > 0.0:
        inputs = keep_mask(input_key, dropout, (*batch_shape, input_size), dtype)
    recurrent = None
    if recurrent_dropout > 0.0:
        recurrent = keep_mask(recurrent_key, recurrent_dropout, (*batch_shape, output_size), dtype)
    return SequenceDropoutMasks(inputs, recurrent)
