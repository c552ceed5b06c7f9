"""The scan against a Python loop over ``step``, gradients, and composition with JAX transforms."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxlstm

INPUT, UNITS, STEPS = 3, 4, 6


@pytest.fixture(scope="module")
def params() -> jaxlstm.LSTMParams:
    # Non-default weights: a random bias exercises every gate's bias block.
    p = jaxlstm.init(jax.random.key(0), INPUT, UNITS)
    return p._replace(bias=jax.random.normal(jax.random.key(1), p.bias.shape))


def loop_reference(params, xs, state, *, reverse=False, mask=None, zero_output_for_mask=False):
    """A plain Python loop over ``step``, one example at a time: the definition the scan must meet."""
    xs, mask = np.asarray(xs), None if mask is None else np.asarray(mask)
    order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    outputs = []
    for t in order:
        new, y = jaxlstm.step(params, state, xs[t])
        if mask is not None and not mask[t]:
            new, y = state, (jnp.zeros_like(y) if zero_output_for_mask else state.h)
        state = new
        outputs.append(y)
    return jnp.stack(outputs), state


def loop_batched(params, xs, state, **kwargs):
    """The loop reference over every leading batch index of xs (and of mask)."""
    batch_shape = xs.shape[:-2]
    mask = kwargs.pop("mask", None)
    seqs = np.zeros((*batch_shape, xs.shape[-2], params.output_size), np.float32)
    hs = np.zeros((*batch_shape, params.output_size), np.float32)
    cs = np.zeros((*batch_shape, params.units), np.float32)
    for idx in np.ndindex(*batch_shape):
        s0 = jaxlstm.LSTMState(state.h[idx], state.c[idx])
        m = None if mask is None else mask[idx]
        seqs[idx], final = loop_reference(params, xs[idx], s0, mask=m, **kwargs)
        hs[idx], cs[idx] = final.h, final.c
    return seqs, hs, cs


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)], ids=["no-batch", "1-axis", "2-axes"])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_equals_python_loop(params, batch_shape, reverse) -> None:
    kx, kh, kc = jax.random.split(jax.random.key(2), 3)
    xs = jax.random.normal(kx, (*batch_shape, STEPS, INPUT))
    state = jaxlstm.LSTMState(
        h=jax.random.normal(kh, (*batch_shape, UNITS)), c=jax.random.normal(kc, (*batch_shape, UNITS))
    )
    out = jaxlstm.lstm(params, xs, state, reverse=reverse)
    seq, h, c = loop_batched(params, xs, state, reverse=reverse)
    np.testing.assert_allclose(out.sequence, seq, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.state.h, h, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.state.c, c, atol=1e-6, rtol=0)
    if not reverse:
        np.testing.assert_array_equal(out.sequence[..., -1, :], out.state.h)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_masked_scan_equals_python_loop(params, zero_output_for_mask) -> None:
    xs = jax.random.normal(jax.random.key(3), (2, 3, STEPS, INPUT))
    mask = jax.random.bernoulli(jax.random.key(4), 0.6, (2, 3, STEPS))
    state = jaxlstm.zero_state(params, (2, 3))
    out = jaxlstm.lstm(params, xs, state, mask=mask, zero_output_for_mask=zero_output_for_mask)
    seq, h, c = loop_batched(params, xs, state, mask=mask, zero_output_for_mask=zero_output_for_mask)
    np.testing.assert_allclose(out.sequence, seq, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.state.h, h, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.state.c, c, atol=1e-6, rtol=0)


def test_projection_scan_equals_python_loop() -> None:
    params = jaxlstm.init(jax.random.key(5), INPUT, UNITS, proj_size=2)
    xs = jax.random.normal(jax.random.key(6), (3, STEPS, INPUT))
    out = jaxlstm.lstm(params, xs)
    seq, h, c = loop_batched(params, xs, jaxlstm.zero_state(params, (3,)))
    assert out.sequence.shape == (3, STEPS, 2) and out.state.c.shape == (3, UNITS)
    np.testing.assert_allclose(out.sequence, seq, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.state.c, c, atol=1e-6, rtol=0)


def test_initial_state_broadcasts_over_batch(params) -> None:
    xs = jax.random.normal(jax.random.key(7), (2, 3, STEPS, INPUT))
    shared = jaxlstm.LSTMState(h=jnp.full((UNITS,), 0.3), c=jnp.full((UNITS,), -0.2))
    full = jaxlstm.LSTMState(*(jnp.broadcast_to(a, (2, 3, UNITS)) for a in shared))
    a, b = jaxlstm.lstm(params, xs, shared), jaxlstm.lstm(params, xs, full)
    np.testing.assert_array_equal(a.sequence, b.sequence)
    assert not np.allclose(a.sequence, jaxlstm.lstm(params, xs).sequence)


def test_init_follows_keras_defaults() -> None:
    p = jaxlstm.init(jax.random.key(8), 5, 3)
    assert p.kernel.shape == (5, 12) and p.recurrent_kernel.shape == (3, 12) and p.bias.shape == (12,)
    np.testing.assert_array_equal(p.bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # forget block SET to 1
    np.testing.assert_allclose(p.recurrent_kernel @ p.recurrent_kernel.T, np.eye(3), atol=1e-5)
    limit = np.sqrt(6 / (5 + 12))  # glorot uniform
    assert np.abs(p.kernel).max() <= limit and np.abs(p.kernel).max() > 0.5 * limit
    ones = jax.nn.initializers.ones
    q = jaxlstm.init(jax.random.key(8), 5, 3, bias_init=ones, unit_forget_bias=False)
    np.testing.assert_array_equal(q.bias, np.ones(12))
    r = jaxlstm.init(jax.random.key(8), 5, 3, bias_init=ones)  # set, not added: stays 1.0, not 2.0
    np.testing.assert_array_equal(r.bias, np.ones(12))
    assert jaxlstm.init(jax.random.key(8), 5, 3, use_bias=False).bias is None
    assert jaxlstm.init(jax.random.key(8), 5, 3, param_dtype=jnp.bfloat16).kernel.dtype == jnp.bfloat16


# ------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------


@pytest.mark.long
def test_check_grads_params_inputs_initial_state(params) -> None:
    xs = jax.random.normal(jax.random.key(9), (2, 4, INPUT))
    state = jaxlstm.LSTMState(h=0.1 * jnp.ones((2, UNITS)), c=-0.1 * jnp.ones((2, UNITS)))

    def f(p, x, s):
        out = jaxlstm.lstm(p, x, s)
        return out.sequence, out.state

    # float32: the finite-difference step and tolerances are set for single precision.
    check_grads(f, (params, xs, state), order=2, modes=("fwd", "rev"), eps=1e-2, atol=5e-2, rtol=5e-2)


def test_gradient_reaches_initial_state_through_masked_steps(params) -> None:
    xs = jax.random.normal(jax.random.key(10), (STEPS, INPUT))
    mask = jnp.zeros(STEPS, bool)  # nothing is processed: the final state IS the initial state
    g = jax.grad(lambda s: jnp.sum(jaxlstm.lstm(params, xs, s, mask=mask).state.c))(
        jaxlstm.zero_state(params)
    )
    np.testing.assert_array_equal(g.c, np.ones(UNITS))
    np.testing.assert_array_equal(g.h, np.zeros(UNITS))


def test_jacfwd_through_whole_sequence(params) -> None:
    xs = jax.random.normal(jax.random.key(11), (STEPS, INPUT))
    jac = jax.jacfwd(lambda x: jaxlstm.lstm(params, x).sequence)(xs)
    assert jac.shape == (STEPS, UNITS, STEPS, INPUT)
    # Causality: an output never depends on a later input.
    for t in range(STEPS):
        np.testing.assert_array_equal(jac[t, :, t + 1 :], 0.0)
        assert np.abs(jac[t, :, t]).max() > 0
    np.testing.assert_allclose(jac, jax.jacrev(lambda x: jaxlstm.lstm(params, x).sequence)(xs), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Composition with JAX transforms
# ------------------------------------------------------------------------------------------------


def test_jit_vmap_grad_checkpoint_compose(params) -> None:
    xs = jax.random.normal(jax.random.key(12), (4, STEPS, INPUT))

    def loss(p, x):  # one example: x [T, I]
        return jnp.sum(jaxlstm.lstm(p, x).sequence ** 2)

    eager = jaxlstm.lstm(params, xs)
    jitted = jax.jit(jaxlstm.lstm)(params, xs)
    vmapped = jax.vmap(jaxlstm.lstm, in_axes=(None, 0))(params, xs)
    remat = jax.checkpoint(jaxlstm.lstm)(params, xs)
    for other in (jitted, vmapped, remat):
        np.testing.assert_allclose(other.sequence, eager.sequence, atol=1e-6, rtol=0)
        np.testing.assert_allclose(other.state.c, eager.state.c, atol=1e-6, rtol=0)

    def batch_loss(p):
        return jnp.sum(jax.vmap(loss, in_axes=(None, 0))(p, xs))

    g_batched = jax.grad(lambda p: jnp.sum(jaxlstm.lstm(p, xs).sequence ** 2))(params)
    g_composed = jax.jit(jax.grad(batch_loss))(params)
    g_remat = jax.grad(lambda p: jnp.sum(jax.checkpoint(jaxlstm.lstm)(p, xs).sequence ** 2))(params)
    for g in (g_composed, g_remat):
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_batched), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@contextlib.contextmanager
def jax_events() -> Iterator[collections.Counter[str]]:
    """What JAX records while the block runs, counted by event name (public ``jax.monitoring``):
    one ``TRACE`` per jitted function traced, one ``COMPILE`` per executable built, none on a hit."""
    counts: collections.Counter[str] = collections.Counter()

    def listener(event: str, duration_secs: float, **kwargs: object) -> None:
        counts[event] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


TRACE, COMPILE = "/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"


def test_same_shapes_compile_once_values_never_retrace(params) -> None:
    xs = jax.random.normal(jax.random.key(13), (3, 11, INPUT))
    mask = jnp.ones((3, 11), bool)
    # New values of xs, mask and params (made before counting: their own ops compile too).
    calls = [(params, xs, mask)]
    calls += [(params, xs * (2 + i), mask.at[0, i].set(False)) for i in range(3)]
    calls += [(jax.tree_util.tree_map(lambda a: a * (2 + i), params), xs, mask) for i in range(3)]  # noqa: B023
    shorter = (params, xs[:2, :5], mask[:2, :5])
    traced = []

    def counting_tanh(x: jax.Array) -> jax.Array:  # a user activation runs the scan: count its traces
        traced.append(1)
        return jnp.tanh(x)

    for options in ({}, {"activation": counting_tanh}):  # the default path, and the scan
        with jax_events() as first:
            jaxlstm.lstm(*calls[0][:2], mask=calls[0][2], **options)
        traces = len(traced)
        with jax_events() as again:
            for p, x, m in calls[1:]:
                jaxlstm.lstm(p, x, mask=m, **options)
        assert again[TRACE] == again[COMPILE] == 0 and len(traced) == traces
        with jax_events() as new_shape:
            jaxlstm.lstm(*shorter[:2], mask=shorter[2], **options)  # a new shape compiles anew
        assert first[COMPILE] >= 1 and new_shape[COMPILE] >= 1
    assert 0 < traces < len(traced)  # the activation was traced for the first shape, then for the new one


def test_bfloat16_compute_with_float32_params(params) -> None:
    xs = jax.random.normal(jax.random.key(14), (3, STEPS, INPUT))
    low = jaxlstm.lstm(params, xs, dtype=jnp.bfloat16)
    assert low.sequence.dtype == jnp.bfloat16 and low.state.c.dtype == jnp.bfloat16
    ref = jaxlstm.lstm(params, xs)
    np.testing.assert_allclose(low.sequence.astype(np.float32), ref.sequence, atol=3e-2)


def test_activations_by_name_and_callable(params) -> None:
    xs = jax.random.normal(jax.random.key(15), (STEPS, INPUT))
    by_name = jaxlstm.lstm(params, xs, activation="relu", recurrent_activation="hard_sigmoid")
    by_fn = jaxlstm.lstm(params, xs, activation=jax.nn.relu, recurrent_activation=jaxlstm.hard_sigmoid)
    np.testing.assert_array_equal(by_name.sequence, by_fn.sequence)
    assert not np.allclose(by_name.sequence, jaxlstm.lstm(params, xs).sequence)


def test_unroll_gives_same_numbers(params) -> None:
    xs = jax.random.normal(jax.random.key(16), (2, STEPS, INPUT))
    a = jaxlstm.lstm(params, xs)
    for unroll in (2, True):
        np.testing.assert_allclose(jaxlstm.lstm(params, xs, unroll=unroll).sequence, a.sequence, atol=1e-6)
