"""Activation functions by Keras name, so a Keras config drops in unchanged."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp

from . import checks

Activation = Callable[[jax.Array], jax.Array]
ActivationLike = Union[str, Activation]


def hard_sigmoid(x: jax.Array) -> jax.Array:
    """Keras 3's hard sigmoid: ``relu6(x + 3) / 6``."""
    return jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


def linear(x: jax.Array) -> jax.Array:
    return x


ACTIVATIONS: dict[str, Activation] = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "linear": linear,
    "softsign": jax.nn.soft_sign,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    # Keras's "gelu" is exact; jax's default is tanh-approximate.
    "gelu": partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


def resolve(activation: ActivationLike, argname: str = "activation") -> Activation:
    """Return the function for a Keras activation name, or the callable itself."""
    return checks.named_or_callable(activation, ACTIVATIONS, argname, "activation")
