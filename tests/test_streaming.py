"""Streaming: step by step, and in uneven chunks, equals one pass over the whole sequence."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _random_layers import random_bidirectional, random_lstm

import jaxlstm

ATOL = RTOL = 1e-5
BATCH, STEPS, FEATURES, UNITS = 3, 10, 4, 5
CHUNKS = (1, 4, 2, 3)  # four uneven chunks that add up to STEPS

_rng = np.random.default_rng(6)
MODELS = {
    "2layer_stack": (random_lstm(_rng, FEATURES, UNITS), random_lstm(_rng, UNITS, UNITS)),
    "projected_lstm": random_lstm(_rng, FEATURES, UNITS, proj_size=2),  # a single LSTMParams
}


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    params = MODELS[request.param]
    rng = np.random.default_rng(7)
    xs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    single = isinstance(params, jaxlstm.LSTMParams)  # (a NamedTuple, so test this, not tuple)
    layers = (params,) if single else params
    # Start from a non-zero state, as a stream resumed from an earlier one would.
    start = tuple(
        jaxlstm.LSTMState(
            h=rng.normal(size=(BATCH, p.output_size)).astype(np.float32),
            c=rng.normal(size=(BATCH, p.units)).astype(np.float32),
        )
        for p in layers
    )
    whole = jaxlstm.stacked_lstm(layers, xs, start)
    start = start[0] if single else start
    final = whole.state[0] if single else whole.state
    return params, xs, start, whole.sequence, final


def _assert_trees_close(ours, expected) -> None:
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(expected)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL)


def test_step_by_step_equals_one_pass(case) -> None:
    params, xs, state, sequence, final = case
    outputs = []
    for t in range(STEPS):
        state, y_t = jaxlstm.stream_step(params, state, xs[:, t])
        outputs.append(y_t)
    np.testing.assert_allclose(np.stack(outputs, axis=1), sequence, atol=ATOL, rtol=RTOL)
    _assert_trees_close(state, final)


def test_uneven_chunks_equal_one_pass(case) -> None:
    params, xs, state, sequence, final = case
    outputs, start = [], 0
    for size in CHUNKS:
        state, ys = jaxlstm.stream_chunk(params, state, xs[:, start : start + size])
        outputs.append(ys)
        start += size
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), sequence, atol=ATOL, rtol=RTOL)
    _assert_trees_close(state, final)


def test_fresh_stream_state_is_zero_and_mirrors_params() -> None:
    stack, single = MODELS["2layer_stack"], MODELS["projected_lstm"]
    state = jaxlstm.stream_state(stack, (BATCH,))
    assert isinstance(state, tuple) and len(state) == 2
    assert state[0].h.shape == (BATCH, UNITS) and not np.any(np.asarray(state[1].c))
    single_state = jaxlstm.stream_state(single, (BATCH,))
    assert isinstance(single_state, jaxlstm.LSTMState)
    assert single_state.h.shape == (BATCH, 2) and single_state.c.shape == (BATCH, UNITS)


def test_residual_stream_equals_residual_stack() -> None:
    params = MODELS["2layer_stack"]
    xs = np.random.default_rng(8).normal(size=(STEPS, FEATURES)).astype(np.float32)  # unbatched
    whole = jaxlstm.stacked_lstm(params, xs, residual=True)
    state = jaxlstm.stream_state(params)
    for t in range(STEPS):
        state, y_t = jaxlstm.stream_step(params, state, xs[t], residual=True)
        np.testing.assert_allclose(y_t, whole.sequence[t], atol=ATOL, rtol=RTOL)
    _assert_trees_close(state, whole.state)


def test_streaming_a_bidirectional_model_is_a_clear_error() -> None:
    rng = np.random.default_rng(9)
    stack = (random_bidirectional(rng, FEATURES, UNITS), random_lstm(rng, 2 * UNITS, UNITS))
    x_t = np.zeros((BATCH, FEATURES), np.float32)
    match = r"params\[0\]: a bidirectional layer cannot be streamed"
    with pytest.raises(ValueError, match=match):
        jaxlstm.stream_state(stack, (BATCH,))
    with pytest.raises(ValueError, match=match):
        jaxlstm.stream_step(stack, None, x_t)
    with pytest.raises(ValueError, match=match):
        jaxlstm.stream_chunk(stack, None, x_t[:, None])
    with pytest.raises(ValueError, match="params: a bidirectional layer cannot be streamed"):
        jaxlstm.stream_step(stack[0], None, x_t)


def test_stream_argument_errors() -> None:
    stack = MODELS["2layer_stack"]
    state = jaxlstm.stream_state(stack, (BATCH,))
    with pytest.raises(ValueError, match=r"x_t: expected shape \[..., 4\]"):
        jaxlstm.stream_step(stack, state, np.zeros((BATCH, FEATURES + 1), np.float32))
    with pytest.raises(ValueError, match="state: expected 2 per-layer states"):
        jaxlstm.stream_step(stack, state[:1], np.zeros((BATCH, FEATURES), np.float32))
    with pytest.raises(ValueError, match=r"state\[1\].c: expected shape \[3, 5\]"):
        bad = (state[0], jaxlstm.LSTMState(h=state[1].h, c=np.zeros((BATCH, UNITS + 1), np.float32)))
        jaxlstm.stream_step(stack, bad, np.zeros((BATCH, FEATURES), np.float32))
    with pytest.raises(TypeError, match="state: expected LSTMState"):
        jaxlstm.stream_step(MODELS["projected_lstm"], state, np.zeros((BATCH, FEATURES), np.float32))
