"""Helpers shared by test_linen.py and test_nnx.py: Keras reference layers and dropout inspection."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from conftest import require

import jaxlstm

KERAS_ATOL = 1e-5
CORE_ATOL = 1e-6
# Every Keras return_sequences / return_state combination.
RETURN_COMBOS = [(False, False), (True, False), (False, True), (True, True)]


def keras_layer(units: int, input_size: int, seed: int, **layer_kwargs: Any):
    """A built Keras 3 LSTM with random weights, and the same weights as ``LSTMParams``."""
    keras = require("keras")
    rng = np.random.default_rng(seed)
    layer = keras.layers.LSTM(units, **layer_kwargs)
    layer.build((None, None, input_size))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    kernel, recurrent_kernel, *bias = layer.get_weights()
    return layer, jaxlstm.LSTMParams(kernel, recurrent_kernel, bias[0] if bias else None)


def as_list(outputs: Any) -> list[np.ndarray]:
    """A Keras-style result (one array or ``(output, h, c)``) as a list of numpy arrays."""
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(a) for a in outputs]
    return [np.asarray(outputs)]


def assert_same_outputs(ours: Any, reference: Any, atol: float) -> None:
    ours, reference = as_list(ours), as_list(reference)
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def input_keep_pattern(grad_xs: jax.Array) -> np.ndarray:
    """Which input features survived dropout, per sequence, from d(output)/d(xs) ``[B, T, I]``.

    A dropped feature has an exactly zero gradient at every step; asserts the pattern is the same at
    every time step (one mask per sequence) and returns it, ``[B, I]`` bool.
    """
    kept = np.asarray(grad_xs) != 0
    for t in range(1, kept.shape[1]):
        np.testing.assert_array_equal(kept[:, t], kept[:, 0], err_msg=f"mask differs at step {t}")
    return kept[:, 0]


def recurrent_keep_pattern(grad_recurrent_kernel: jax.Array) -> np.ndarray:
    """Which h units survived recurrent dropout in ONE sequence, from d(output)/d(recurrent_kernel).

    Row j of that gradient is ``sum_t (h_{t-1}[j] * keep[j]) * dz_t``: zero iff unit j is dropped.
    A fresh mask per step would zero a row only if j were dropped at every step (rate**(T-1)).
    """
    return np.any(np.asarray(grad_recurrent_kernel) != 0, axis=-1)


def assert_dropped_fraction(patterns: list[np.ndarray], rate: float, tol: float = 0.05) -> None:
    """The fraction of False over all keep patterns is ``rate`` within ``tol``."""
    dropped = 1.0 - np.mean(np.concatenate([np.ravel(p) for p in patterns]))
    assert abs(dropped - rate) < tol, f"dropped fraction {dropped:.3f}, expected {rate}"


def synthetic_task(seed: int = 0, batch: int = 32, steps: int = 10, features: int = 2):
    """Inputs ``[B, T, F]`` and targets ``[B, 1]``: the running mean of feature 0 minus feature 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) - x[:, -3:, 1].mean(axis=1))[:, None]
    return jnp.asarray(x), jnp.asarray(y)
