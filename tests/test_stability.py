"""Numerical stability and determinism of the core (its compile counting: test_core.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm

P = jaxlstm.init(jax.random.key(0), 4, 8)


def finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def test_ten_thousand_steps_stay_finite_and_bounded() -> None:
    xs = jax.random.normal(jax.random.key(1), (2, 10_000, 4))
    out = jaxlstm.lstm(P, xs)
    assert finite(out)
    assert float(jnp.abs(out.sequence).max()) <= 1.0  # |h| = |o * tanh(c)| < 1 always


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_saturated_gates_stay_finite(dtype) -> None:
    xs = 1e4 * jax.random.normal(jax.random.key(2), (3, 50, 4))
    out = jaxlstm.lstm(P, xs, dtype=dtype)
    assert finite(out)
    grads = jax.grad(lambda p: jnp.sum(jaxlstm.lstm(p, xs).sequence))(P)
    assert finite(grads)


# Documented tolerances of low-precision compute against float32 (docs/guarantees.md).
LOW_PRECISION_ATOL = {jnp.bfloat16: 2e-2, jnp.float16: 2e-3}


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_within_documented_tolerance(dtype) -> None:
    xs = jax.random.normal(jax.random.key(3), (8, 100, 4))
    ref = jaxlstm.lstm(P, xs)
    low = jaxlstm.lstm(P, xs, dtype=dtype)
    assert low.sequence.dtype == dtype
    err = float(jnp.abs(low.sequence.astype(jnp.float32) - ref.sequence).max())
    assert err <= LOW_PRECISION_ATOL[dtype], err


def test_gradients_finite_over_a_thousand_steps() -> None:
    xs = jax.random.normal(jax.random.key(4), (2, 1000, 4))
    state = jaxlstm.zero_state(P, (2,))
    g_params, g_state, g_xs = jax.grad(
        lambda p, s, x: jnp.sum(jaxlstm.lstm(p, x, s).sequence[:, -1]), argnums=(0, 1, 2)
    )(P, state, xs)
    assert finite((g_params, g_state, g_xs))
    assert float(jnp.abs(g_xs[:, -1]).max()) > 0


def test_bit_identical_across_runs_and_jit() -> None:
    xs = jax.random.normal(jax.random.key(5), (4, 20, 4))
    params = jaxlstm.init(jax.random.key(6), 4, 8)
    again = jaxlstm.init(jax.random.key(6), 4, 8)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(a, b)
    first, second = jaxlstm.lstm(params, xs), jaxlstm.lstm(params, xs)
    jitted = jax.jit(lambda p, x: jaxlstm.lstm(p, x))(params, xs)
    for other in (second, jitted):
        np.testing.assert_array_equal(other.sequence, first.sequence)
        np.testing.assert_array_equal(other.state.c, first.state.c)
