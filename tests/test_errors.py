"""Bad input raises a clear ValueError / TypeError at call time, never an XLA error."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm

P = jaxlstm.init(jax.random.key(0), 4, 3)
X = jnp.ones((2, 5, 4))


def raises(exc: type[Exception], *fragments: str):
    """pytest.raises whose message must contain every fragment (the argument, expected, found)."""
    return pytest.raises(exc, match=".*".join(re.escape(f) for f in fragments))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "under-jit"])
def test_shape_errors_name_argument_expected_and_found(jit: bool) -> None:
    run = jax.jit(jaxlstm.lstm) if jit else jaxlstm.lstm
    with raises(ValueError, "xs", "[..., T, 4]", "[4]"):
        run(P, jnp.ones(4))
    with raises(ValueError, "xs", "4 features", "[2, 5, 6]"):
        run(P, jnp.ones((2, 5, 6)))
    with raises(ValueError, "initial_state.h", "[2, 3]", "[2, 5]"):
        run(P, X, jaxlstm.LSTMState(h=jnp.ones((2, 5)), c=jnp.ones((2, 3))))
    with raises(ValueError, "initial_state.c", "[2, 3]", "[4, 3]"):
        run(P, X, jaxlstm.LSTMState(h=jnp.ones((2, 3)), c=jnp.ones((4, 3))))


def test_mask_and_lengths_errors() -> None:
    with raises(ValueError, "mask", "[2, 5]", "[5]"):
        jaxlstm.lstm(P, X, mask=jnp.ones(5, bool))  # no silent broadcast over the batch
    with raises(ValueError, "mask", "0/1", "0.5"):  # numeric masks are 0/1 (Keras); others refused
        jaxlstm.lstm(P, X, mask=jnp.full((2, 5), 0.5))
    with raises(TypeError, "mask", "bool", "complex64"):
        jaxlstm.lstm(P, X, mask=jnp.ones((2, 5), jnp.complex64))
    with raises(ValueError, "lengths", "[2]", "[2, 1]"):
        jaxlstm.lstm(P, X, lengths=jnp.ones((2, 1), int))
    with raises(ValueError, "lengths", "[0, 5]", "max 6"):
        jaxlstm.lstm(P, X, lengths=jnp.array([2, 6]))
    with raises(TypeError, "lengths", "integer", "float32"):
        jaxlstm.lstm(P, X, lengths=jnp.array([2.0, 3.0]))


def test_dtype_errors() -> None:
    with raises(TypeError, "xs", "floating-point", "int32"):
        jaxlstm.lstm(P, jnp.ones((2, 5, 4), jnp.int32))
    with raises(TypeError, "xs", "floating-point", "bool"):
        jaxlstm.lstm(P, np.ones((2, 5, 4), bool))
    with raises(TypeError, "xs", "floating-point", "complex64"):
        jaxlstm.lstm(P, jnp.ones((2, 5, 4), jnp.complex64))
    with raises(TypeError, "initial_state", "LSTMState", "tuple"):
        jaxlstm.lstm(P, X, (jnp.zeros((2, 3)), jnp.zeros((2, 3))))


def test_params_errors() -> None:
    with raises(ValueError, "params.recurrent_kernel", "[3, 12]", "[3, 16]"):
        jaxlstm.lstm(P._replace(recurrent_kernel=jnp.ones((3, 16))), X)
    with raises(ValueError, "params.kernel", "[input_size, 4*units]", "[4, 10]"):
        jaxlstm.lstm(P._replace(kernel=jnp.ones((4, 10))), X)
    with raises(ValueError, "params.bias", "[12]", "[8]"):
        jaxlstm.lstm(P._replace(bias=jnp.ones(8)), X)
    with raises(ValueError, "params.projection", "[3, proj_size]", "[2, 2]"):
        jaxlstm.lstm(P._replace(projection=jnp.ones((2, 2))), X)
    with raises(TypeError, "params", "LSTMParams", "dict"):
        jaxlstm.lstm(dict(P._asdict()), X)
    with raises(ValueError, "params.kernel", "missing"):
        jaxlstm.lstm(P._replace(kernel=None), X)


def test_init_and_option_errors() -> None:
    with raises(ValueError, "units", "positive", "0"):
        jaxlstm.init(jax.random.key(0), 4, 0)
    with raises(TypeError, "units", "positive int", "float"):
        jaxlstm.init(jax.random.key(0), 4, 2.5)
    with raises(ValueError, "input_size", "positive", "-1"):
        jaxlstm.init(jax.random.key(0), -1, 2)
    with raises(ValueError, "activation", "unknown", "'tanhh'"):
        jaxlstm.lstm(P, X, activation="tanhh")
    with raises(ValueError, "unroll", "positive int", "0"):
        jaxlstm.lstm(P, X, unroll=0)
    with raises(ValueError, "keep_order", "reverse"):
        jaxlstm.lstm(P, X, keep_order=True)


@pytest.mark.parametrize("make", [jaxlstm.init, jaxlstm.init_bidirectional, jaxlstm.init_stack])
def test_key_errors(make) -> None:
    expected = "key: expected a PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)), found "
    with pytest.raises(TypeError, match=re.escape(expected + "int 0")):
        make(0, 4, 3)
    with pytest.raises(TypeError, match=re.escape(expected + "an array of shape [2] and dtype float32")):
        make(jnp.zeros(2), 4, 3)
    with pytest.raises(
        ValueError, match=re.escape("key: expected one PRNG key of shape (), found keys of shape [3]")
    ):
        make(jax.random.split(jax.random.key(0), 3), 4, 3)
    # Both key flavours are accepted, and the same seed gives the same parameters.
    typed, raw = make(jax.random.key(7), 4, 3), make(jax.random.PRNGKey(7), 4, 3)
    for a, b in zip(jax.tree.leaves(typed), jax.tree.leaves(raw)):
        np.testing.assert_array_equal(a, b)


def test_step_errors() -> None:
    state = jaxlstm.zero_state(P)
    with raises(ValueError, "x_t", "[4]", "[5]"):
        jaxlstm.step(P, state, jnp.ones(5))
    with raises(ValueError, "state.h", "[2, 3]", "[5, 3]"):
        jaxlstm.step(P, jaxlstm.zero_state(P, (5,)), jnp.ones((2, 4)))  # batch 5 state, batch 2 inputs


def test_step_broadcasts_an_unbatched_state_like_lstm() -> None:
    # A batch of inputs with one unbatched state: lstm broadcasts it, and so does step.
    state = jaxlstm.LSTMState(h=jnp.full(3, 0.3), c=jnp.full(3, -0.2))
    x_t = jax.random.normal(jax.random.key(1), (2, 4))
    new, y = jaxlstm.step(P, state, x_t)
    out = jaxlstm.lstm(P, x_t[:, None, :], state, impl="scan")
    np.testing.assert_allclose(y, out.sequence[:, 0], rtol=1e-6)
    np.testing.assert_allclose(new.c, out.state.c, rtol=1e-6)
