"""``lengths`` (right padding) through a stack with a bidirectional and a projected layer.

Two leading batch axes must equal looping over the batch, and each padded sequence must give what
the same model gives on the sequence cut to its length (PyTorch parity is in test_torch_parity.py).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _random_layers import random_bidirectional, random_lstm

import jaxlstm

ATOL = RTOL = 1e-5
BATCH, STEPS, FEATURES, UNITS = (2, 3), 5, 3, 4
# Lengths 0 and T included, unsorted.
LENGTHS = np.array([[5, 0, 3], [1, 5, 3]])


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    params = (random_bidirectional(rng, FEATURES, UNITS), random_lstm(rng, 2 * UNITS, UNITS, proj_size=2))
    xs = rng.normal(size=(*BATCH, STEPS, FEATURES)).astype(np.float32)
    # A different, non-zero initial state per example: length 0 must return it unchanged.
    h0, c0 = rng.normal(size=(2, 3, *BATCH, UNITS)).astype(np.float32)
    initial = (
        jaxlstm.BidirectionalState(jaxlstm.LSTMState(h0[0], c0[0]), jaxlstm.LSTMState(h0[1], c0[1])),
        jaxlstm.LSTMState(h0[2][..., :2], c0[2]),
    )
    return params, xs, initial


def _example(tree, index):
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def _assert_trees_close(ours, expected) -> None:
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(expected)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL)


@pytest.fixture(scope="module")
def batched(model):
    params, xs, initial = model
    return jaxlstm.stacked_lstm(params, xs, initial, lengths=LENGTHS)


def test_two_batch_axes_equal_looping_over_the_batch(model, batched) -> None:
    params, xs, initial = model
    assert batched.sequence.shape == (*BATCH, STEPS, 2)
    for index in np.ndindex(*BATCH):
        alone = jaxlstm.stacked_lstm(params, xs[index], _example(initial, index), lengths=LENGTHS[index])
        _assert_trees_close(_example(batched, index), alone)


def test_padded_equals_the_sequence_cut_to_its_length(model, batched) -> None:
    params, xs, initial = model
    for index in [(0, 2), (1, 2)]:  # both of length 3; one compilation
        alone = jaxlstm.stacked_lstm(params, xs[index][:3], _example(initial, index))
        np.testing.assert_allclose(batched.sequence[index][:3], alone.sequence, atol=ATOL, rtol=RTOL)
        _assert_trees_close(_example(batched.state, index), alone.state)


def test_length_zero_and_padding(model, batched) -> None:
    _, _, initial = model
    for index in np.ndindex(*BATCH):
        np.testing.assert_array_equal(batched.sequence[index][LENGTHS[index] :], 0.0)  # padding is zero
    # Length 0 reads nothing: the initial state comes back unchanged and every output is zero.
    _assert_trees_close(_example(batched.state, (0, 1)), _example(initial, (0, 1)))


def test_full_length_equals_no_lengths(model) -> None:
    params, xs, initial = model
    full = jaxlstm.stacked_lstm(params, xs, initial, lengths=np.full(BATCH, STEPS))
    plain = jaxlstm.stacked_lstm(params, xs, initial)
    _assert_trees_close(full, plain)


def test_traced_lengths_under_jit(model) -> None:
    params, xs, initial = model
    run = jax.jit(lambda lengths: jaxlstm.stacked_lstm(params, xs, initial, lengths=lengths).sequence)
    eager = jaxlstm.stacked_lstm(params, xs, initial, lengths=LENGTHS).sequence
    np.testing.assert_allclose(run(LENGTHS), eager, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("impl", ["auto", "scan"])
def test_traced_lengths_outside_range_count_as_clamped(model, impl) -> None:
    # Under jit the values are unknown at call time, so they cannot raise; they must not gather out
    # of range either (reverse did: NaN from the fast path, wrong numbers from the scan).
    params, xs, initial = model
    wild = LENGTHS.copy()
    wild[0, 0], wild[0, 1] = STEPS + 4, -3
    clamped = np.clip(wild, 0, STEPS)
    plain = jaxlstm.init(jax.random.key(4), FEATURES, UNITS)  # no projection: the fast path too
    for reverse in (False, True):
        run = jax.jit(lambda lengths: jaxlstm.lstm(plain, xs, lengths=lengths, reverse=reverse, impl=impl))  # noqa: B023
        _assert_trees_close(run(wild), run(clamped))
    run = jax.jit(lambda lengths: jaxlstm.stacked_lstm(params, xs, initial, lengths=lengths))
    _assert_trees_close(run(wild), jaxlstm.stacked_lstm(params, xs, initial, lengths=clamped))


@pytest.mark.parametrize("bad", [-1, STEPS + 1])
def test_length_outside_range_is_a_clear_error(model, bad) -> None:
    params, xs, _ = model
    lengths = LENGTHS.copy()
    lengths[1, 2] = bad
    match = rf"lengths: expected every length in \[0, {STEPS}\]"
    with pytest.raises(ValueError, match=match):
        jaxlstm.stacked_lstm(params, xs, lengths=lengths)
    with pytest.raises(ValueError, match=match):
        jaxlstm.bidirectional(params[0], xs, lengths=lengths)


def test_lengths_shape_and_dtype_errors(model) -> None:
    params, xs, _ = model
    with pytest.raises(ValueError, match=r"lengths: expected shape \[2, 3\]"):
        jaxlstm.stacked_lstm(params, xs, lengths=LENGTHS[0])
    with pytest.raises(TypeError, match="lengths: expected an integer dtype"):
        jaxlstm.stacked_lstm(params, xs, lengths=LENGTHS.astype(np.float32))
