"""The core's ``recurrent_dropout_mask``: multiplies h before the recurrent matmul, one mask per sequence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import core
from jaxlstm.activations import resolve
from jaxlstm.pytrees import LSTMState

B, T, I, H = 3, 6, 4, 5


@pytest.fixture(scope="module")
def setup():
    params = jaxlstm.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    keep = jax.random.bernoulli(jax.random.key(2), 0.6, (B, H)).astype(jnp.float32) / 0.6
    return params, xs, keep


def reference(params, xs, keep):
    """A Python loop over time that masks h only where it enters the recurrent matmul."""
    sig, tanh = resolve("sigmoid"), resolve("tanh")
    h = np.zeros((B, H), np.float32)
    c = np.zeros((B, H), np.float32)
    ys = []
    for t in range(T):
        z = xs[:, t] @ params.kernel + (h * keep) @ params.recurrent_kernel + params.bias
        zi, zf, zc, zo = np.split(np.asarray(z), 4, axis=-1)
        c = sig(zf) * c + sig(zi) * tanh(zc)
        h = sig(zo) * tanh(c)
        ys.append(np.asarray(h))
    return np.stack(ys, 1), np.asarray(h), np.asarray(c)


def test_mask_applied_to_recurrent_input_only(setup):
    params, xs, keep = setup
    out = jaxlstm.lstm(params, xs, recurrent_dropout_mask=keep)
    ys, h, c = reference(params, xs, keep)
    np.testing.assert_allclose(out.sequence, ys, atol=1e-6)
    np.testing.assert_allclose(out.state.h, h, atol=1e-6)  # the carried h is not masked
    np.testing.assert_allclose(out.state.c, c, atol=1e-6)
    assert not np.allclose(out.sequence, jaxlstm.lstm(params, xs).sequence, atol=1e-3)


def test_ones_mask_and_broadcast(setup):
    params, xs, keep = setup
    plain = jaxlstm.lstm(params, xs)
    ones = jaxlstm.lstm(params, xs, recurrent_dropout_mask=jnp.ones((H,)))
    np.testing.assert_allclose(ones.sequence, plain.sequence, atol=1e-7)
    # One [H] mask broadcast to every sequence equals that mask tiled over the batch.
    shared = jaxlstm.lstm(params, xs, recurrent_dropout_mask=keep[0])
    tiled = jaxlstm.lstm(params, xs, recurrent_dropout_mask=jnp.tile(keep[:1], (B, 1)))
    np.testing.assert_allclose(shared.sequence, tiled.sequence, atol=1e-7)


def test_mask_with_reverse_and_initial_state_and_grad(setup):
    params, xs, keep = setup
    state = LSTMState(h=jnp.full((B, H), 0.3), c=jnp.full((B, H), -0.2))
    out = jaxlstm.lstm(params, xs, state, reverse=True, recurrent_dropout_mask=keep)
    # Step by step with the same mask at every step, in processing order.
    s = state
    ys = []
    for t in reversed(range(T)):
        s, y = core.raw_step(params, s, xs[:, t], jnp.tanh, jax.nn.sigmoid, keep)
        ys.append(y)
    np.testing.assert_allclose(out.sequence, jnp.stack(ys, 1), atol=1e-6)
    g = jax.grad(lambda m: jaxlstm.lstm(params, xs, recurrent_dropout_mask=m).state.c.sum())(keep)
    assert g.shape == keep.shape and np.all(np.isfinite(g))


def test_bad_mask_shape_and_dtype(setup):
    params, xs, _ = setup
    with pytest.raises(ValueError, match=r"recurrent_dropout_mask: expected shape \[3, 5\]"):
        jaxlstm.lstm(params, xs, recurrent_dropout_mask=jnp.ones((B, H + 1)))
    with pytest.raises(ValueError, match="recurrent_dropout_mask"):
        jaxlstm.lstm(params, xs, recurrent_dropout_mask=jnp.ones((2, B, H)))
    with pytest.raises(TypeError, match="recurrent_dropout_mask"):
        jaxlstm.lstm(params, xs, recurrent_dropout_mask=jnp.ones((B, H), jnp.int32))
