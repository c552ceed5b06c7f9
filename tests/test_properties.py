"""Property-based tests: hypothesis searches shapes, masks, lengths and states for a counterexample.

The reference is an independent float64 NumPy loop, not the library's own step.
"""

from __future__ import annotations

import numpy as np
from conftest import require

import jaxlstm

hypothesis = require("hypothesis")
st = require("hypothesis.strategies")
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

# Each new shape compiles anew: keep the example budget bounded so the suite stays CI-sized.
BUDGET = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ATOL = 2e-5  # float32 vs a float64 reference
ROUNDOFF = 1e-5  # two float32 paths that XLA may fuse differently


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm(params, xs, h, c, valid=None, *, zero_output_for_mask=False):
    """One sequence, float64, forward order. valid [T] bool: False keeps the state (Keras mask)."""
    # np.asarray, not np.float64(...): NumPy 2.0 turns a one-element array into a scalar there.
    f64 = lambda a: np.asarray(a, np.float64)
    k, r = f64(params.kernel), f64(params.recurrent_kernel)
    b = 0.0 if params.bias is None else f64(params.bias)
    h, c = f64(h), f64(c)
    ys = []
    for t, x in enumerate(f64(xs)):
        zi, zf, zc, zo = np.split(x @ k + h @ r + b, 4)
        c_new = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zc)
        h_new = sigmoid(zo) * np.tanh(c_new)
        if valid is None or valid[t]:
            h, c = h_new, c_new
            ys.append(h)
        else:
            ys.append(np.zeros_like(h) if zero_output_for_mask else h)
    return np.stack(ys), h, c


@st.composite
def problems(draw, with_state=True):
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    steps, features, units = draw(st.integers(1, 40)), draw(st.integers(1, 16)), draw(st.integers(1, 32))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    params = jaxlstm.LSTMParams(
        kernel=rng.normal(scale=0.5, size=(features, 4 * units)).astype(np.float32),
        recurrent_kernel=rng.normal(scale=0.5, size=(units, 4 * units)).astype(np.float32),
        bias=draw(st.sampled_from([None, rng.normal(size=4 * units).astype(np.float32)])),
    )
    xs = rng.normal(size=(*batch_shape, steps, features)).astype(np.float32)
    state = None
    if with_state and draw(st.booleans()):
        state = jaxlstm.LSTMState(
            h=rng.normal(size=(*batch_shape, units)).astype(np.float32),
            c=rng.normal(size=(*batch_shape, units)).astype(np.float32),
        )
    return params, xs, state, rng


def states_or_zeros(params, xs, state):
    batch_shape = xs.shape[:-2]
    if state is None:
        state = jaxlstm.zero_state(params, batch_shape)
    return np.asarray(state.h), np.asarray(state.c)


@BUDGET
@given(problems(), st.booleans(), st.booleans())
def test_scan_equals_loop_reference(problem, use_mask, zero_output_for_mask) -> None:
    params, xs, state, rng = problem
    batch_shape, steps = xs.shape[:-2], xs.shape[-2]
    mask = rng.random((*batch_shape, steps)) < 0.7 if use_mask else None
    out = jaxlstm.lstm(params, xs, state, mask=mask, zero_output_for_mask=zero_output_for_mask)
    h0, c0 = states_or_zeros(params, xs, state)
    for idx in np.ndindex(*batch_shape):
        valid = None if mask is None else mask[idx]
        ys, h, c = numpy_lstm(
            params, xs[idx], h0[idx], c0[idx], valid, zero_output_for_mask=zero_output_for_mask
        )
        np.testing.assert_allclose(out.sequence[idx], ys, atol=ATOL, rtol=ATOL)
        np.testing.assert_allclose(out.state.h[idx], h, atol=ATOL, rtol=ATOL)
        np.testing.assert_allclose(out.state.c[idx], c, atol=ATOL, rtol=ATOL)


@BUDGET
@given(problems())
def test_all_true_mask_equals_no_mask(problem) -> None:
    params, xs, state, _ = problem
    mask = np.ones(xs.shape[:-1], bool)
    a, b = jaxlstm.lstm(params, xs, state), jaxlstm.lstm(params, xs, state, mask=mask)
    np.testing.assert_allclose(a.sequence, b.sequence, atol=ROUNDOFF)
    np.testing.assert_allclose(a.state.c, b.state.c, atol=ROUNDOFF)


@BUDGET
@given(problems())
def test_reverse_equals_forward_over_flipped(problem) -> None:
    params, xs, state, _ = problem
    backward = jaxlstm.lstm(params, xs, state, reverse=True)
    flipped = jaxlstm.lstm(params, np.flip(xs, axis=-2), state)
    np.testing.assert_allclose(backward.sequence, flipped.sequence, atol=ROUNDOFF)
    np.testing.assert_allclose(backward.state.c, flipped.state.c, atol=ROUNDOFF)


@BUDGET
@given(problems(), st.booleans())
def test_lengths_equal_slicing_each_sequence(problem, reverse) -> None:
    params, xs, state, rng = problem
    batch_shape, steps = xs.shape[:-2], xs.shape[-2]
    lengths = rng.integers(0, steps + 1, size=batch_shape)
    out = jaxlstm.lstm(params, xs, state, lengths=lengths, reverse=reverse)
    h0, c0 = states_or_zeros(params, xs, state)
    for idx in np.ndindex(*batch_shape):
        n = int(lengths[idx])
        if n == 0:  # nothing processed: the initial state, all-zero outputs
            np.testing.assert_array_equal(out.state.h[idx], h0[idx])
            np.testing.assert_array_equal(out.state.c[idx], c0[idx])
            np.testing.assert_array_equal(out.sequence[idx], 0.0)
            continue
        valid_prefix = xs[idx][:n][::-1] if reverse else xs[idx][:n]
        ys, h, c = numpy_lstm(params, valid_prefix, h0[idx], c0[idx])
        np.testing.assert_allclose(out.sequence[idx][:n], ys, atol=ATOL, rtol=ATOL)
        np.testing.assert_array_equal(out.sequence[idx][n:], 0.0)
        np.testing.assert_allclose(out.state.h[idx], h, atol=ATOL, rtol=ATOL)
        np.testing.assert_allclose(out.state.c[idx], c, atol=ATOL, rtol=ATOL)


@BUDGET
@given(problems(), st.data())
def test_chunked_streaming_equals_one_pass(problem, data) -> None:
    params, xs, state, _ = problem
    steps = xs.shape[-2]
    cuts = (
        sorted(set(data.draw(st.lists(st.integers(1, max(steps - 1, 1)), max_size=2)))) if steps > 1 else []
    )
    whole = jaxlstm.lstm(params, xs, state)
    pieces, carried = [], state
    for start, stop in zip([0, *cuts], [*cuts, steps]):
        out = jaxlstm.lstm(params, xs[..., start:stop, :], carried)
        pieces.append(out.sequence)
        carried = out.state
    np.testing.assert_allclose(np.concatenate(pieces, axis=-2), whole.sequence, atol=ROUNDOFF)
    np.testing.assert_allclose(carried.h, whole.state.h, atol=ROUNDOFF)
    np.testing.assert_allclose(carried.c, whole.state.c, atol=ROUNDOFF)
