"""The fast path (``jaxlstm.fast``, ``lstm(impl="auto")``) against the reference scan (``impl="scan"``).

Every case compares the outputs and the vector-Jacobian products (random cotangents on the sequence and
both final state arrays) with respect to the parameters, the inputs and the initial state, to 1e-5.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import fast
from jaxlstm.pytrees import LSTMState

B, T, I, H = 3, 7, 4, 5
TOL = dict(rtol=1e-5, atol=1e-5)


def _data(batch_shape=(B,), proj=None, use_bias=True):
    """Parameters, inputs and initial state from numpy (no per-op compilation at set-up)."""
    rng = np.random.default_rng(0)
    out = H if proj is None else proj
    normal = lambda *shape: jnp.asarray(0.5 * rng.standard_normal(shape), jnp.float32)  # noqa: E731
    params = jaxlstm.LSTMParams(
        kernel=normal(I, 4 * H),
        recurrent_kernel=normal(out, 4 * H),
        bias=normal(4 * H) if use_bias else None,
        projection=None if proj is None else normal(H, proj),
    )
    xs = normal(*batch_shape, T, I)
    state = LSTMState(h=normal(*batch_shape, out), c=normal(*batch_shape, H))
    return params, xs, state


def _vjp_both(params, xs, state, **kwargs):
    """(outputs, vjps) for impl auto and scan, with the same random cotangents."""
    results = []
    for impl in ("auto", "scan"):

        @jax.jit
        def run(params, xs, state):
            def f(params, xs, state):
                out = jaxlstm.lstm(params, xs, state, impl=impl, **kwargs)
                return out.sequence, out.state.h, out.state.c

            outs, vjp = jax.vjp(f, params, xs, state)
            keys = jax.random.split(jax.random.PRNGKey(7), 3)
            cts = tuple(jax.random.normal(k, o.shape, o.dtype) for k, o in zip(keys, outs))
            return outs, vjp(cts)

        results.append(run(params, xs, state))  # noqa: PERF401
    return results


def _assert_close(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


@pytest.fixture(scope="module")
def data():
    return _data()


def _mask():
    return np.random.default_rng(3).random((B, T)) < 0.6


LENGTHS = np.array([7, 3, 0])  # full, partial and empty sequences

# Each case compiles two functions (fast and reference), so the cases combine features.
CASES = {
    "plain_unroll": dict(unroll=2),
    "reverse_keep_order": dict(reverse=True, keep_order=True),
    "mask_reverse": dict(mask="mask", reverse=True),
    "mask_lengths_zero_output": dict(mask="mask", lengths=LENGTHS, zero_output_for_mask=True),
    "lengths_reverse": dict(lengths=LENGTHS, reverse=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(data, name):
    params, xs, state = data
    kwargs = dict(CASES[name])
    if kwargs.get("mask") == "mask":
        kwargs["mask"] = _mask()
    fast_result, ref_result = _vjp_both(params, xs, state, **kwargs)
    _assert_close(fast_result, ref_result)
    # The parameter, input and state gradients are all non-trivial (the comparison is not vacuous).
    grads = jax.tree_util.tree_leaves(fast_result[1])
    assert all(float(jnp.abs(g).max()) > 1e-3 for g in grads)


@pytest.mark.long
def test_two_batch_axes_broadcast_state_no_bias():
    params, xs, _ = _data(batch_shape=(2, 3), use_bias=False)
    state = LSTMState(h=jnp.full((H,), 0.2), c=jnp.full((3, H), -0.1))  # broadcasts to [2, 3, H]
    fast_result, ref_result = _vjp_both(
        params, xs, state, mask=jnp.broadcast_to(jnp.arange(T) % 3 != 1, (2, 3, T))
    )
    _assert_close(fast_result, ref_result)


def test_projection_uses_reference():
    """The fast path does not cover projection; there auto runs (and equals) the reference."""
    params, xs, state = _data(proj=3)
    assert not fast.supports(params, jnp.tanh, jax.nn.sigmoid)
    auto, ref = (jaxlstm.lstm(params, xs, state, impl=impl) for impl in ("auto", "scan"))
    _assert_close(auto, ref)


def test_supports_only_default_activations(data):
    params = data[0]
    assert fast.supports(params, jnp.tanh, jax.nn.sigmoid)
    assert not fast.supports(params, jax.nn.relu, jax.nn.sigmoid)
    assert not fast.supports(params, jnp.tanh, jaxlstm.hard_sigmoid)


@pytest.mark.parametrize(
    "config",
    [
        fast.FastConfig(unroll=3),
        fast.FastConfig(checkpoint_chunks=3),  # T=7: chunks of 3 with padding
        fast.FastConfig(checkpoint_chunks=2, unroll=2),
    ],
    ids=["unroll3", "remat3", "remat2_unroll2"],
)
def test_configs_match_reference(data, config):
    """Every FastConfig lever, called directly on time-major inputs with mask and lengths."""
    params, xs, state = data
    mask = _mask()
    valid = jnp.arange(T) < jnp.asarray(LENGTHS)[:, None]

    def fst(params, xs, state):
        tm = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
        ys, h, c = fast.lstm_time_major(
            params, tm(xs), state.h, state.c, tm(mask & valid), tm(valid), config=config
        )
        return tm(ys), h, c

    _assert_close(jax.jit(partial(_vjp, fst))(params, xs, state), _reference_mask_lengths(params, xs, state))


def _vjp(f, params, xs, state):
    outs, vjp = jax.vjp(f, params, xs, state)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    return outs, vjp(tuple(jax.random.normal(k, o.shape, o.dtype) for k, o in zip(keys, outs)))


@jax.jit
def _reference_mask_lengths(params, xs, state):
    """Reference outputs and VJPs with mask and lengths (compiled once for all configs)."""

    def ref(params, xs, state):
        out = jaxlstm.lstm(params, xs, state, impl="scan", mask=_mask(), lengths=LENGTHS)
        return out.sequence, out.state.h, out.state.c

    return _vjp(ref, params, xs, state)


def test_forward_mode_through_jit_equals_reverse_mode(data):
    """jacfwd of the fast path, outside and inside jit, equals jacrev through its backward pass."""
    params, xs, _ = data
    x = xs[:1, :3]
    expected = jax.jacrev(lambda x: jaxlstm.lstm(params, x).sequence)(x)
    inside = jax.jit(jax.jacfwd(lambda x: jaxlstm.lstm(params, x).sequence))(x)
    outside = jax.jacfwd(jax.jit(lambda x: jaxlstm.lstm(params, x).sequence))(x)
    _assert_close(inside, expected)
    _assert_close(outside, expected)


def test_remat_memory_is_sublinear():
    """Training memory at T=4096: checkpointed chunks keep far fewer activations than a full store."""
    steps, batch, units = 4096, 4, 32
    params = jaxlstm.LSTMParams(
        jnp.zeros((8, 4 * units)), jnp.zeros((units, 4 * units)), jnp.zeros(4 * units)
    )
    xs = jnp.zeros((steps, batch, 8))
    zero = jnp.zeros((batch, units))

    def temp_bytes(config):
        def loss(p):
            ys, h, c = fast.lstm_time_major(p, xs, zero, zero, config=config)
            return (ys**2).sum()

        return jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis().temp_size_in_bytes

    full, remat = temp_bytes(fast.FastConfig()), temp_bytes(fast.FastConfig(checkpoint_chunks=64))
    # Full store: 6 floats of [B, H] per step (pre-activations 4, h, c) ~ 3.1 MB plus the outputs.
    assert full > 6 * steps * batch * units * 4
    assert remat < full / 4


def test_rejects_unknown_impl(data):
    params, xs, _ = data
    with pytest.raises(ValueError, match="impl"):
        jaxlstm.lstm(params, xs, impl="cudnn")
