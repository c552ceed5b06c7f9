"""``bidirectional`` against Keras 3 ``Bidirectional(LSTM)`` on the same weights, every merge mode.

Each mode is checked with return_sequences True and False (with return_state), on a mask that has
holes in the middle of sequences, a masked first and last step, and right padding.
"""

from __future__ import annotations

import numpy as np
import pytest
from _random_layers import random_bidirectional
from conftest import require

import jaxlstm

ATOL = RTOL = 1e-5
BATCH, STEPS, FEATURES, UNITS = 3, 6, 4, 5
MODES = ["concat", "sum", "mul", "ave", None]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    params = random_bidirectional(rng, FEATURES, UNITS)
    xs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, 2] = mask[0, 5] = False  # holes and a masked last step
    mask[1, 0] = False  # a masked first step (the backward pass's last)
    mask[2, 3:] = False  # right padding
    return params, xs, mask


def _keras_layer(params, merge_mode, return_sequences: bool):
    keras = require("keras")
    layer = keras.layers.Bidirectional(
        # Zeros initialisers only make building cheap; the weights are set right after.
        keras.layers.LSTM(
            UNITS,
            return_sequences=return_sequences,
            return_state=True,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
        ),
        merge_mode=merge_mode,
    )
    layer.build((None, STEPS, FEATURES))
    for keras_direction, ours in (
        (layer.forward_layer, params.forward),
        (layer.backward_layer, params.backward),
    ):
        keras_direction.set_weights(
            [np.asarray(ours.kernel), np.asarray(ours.recurrent_kernel), np.asarray(ours.bias)]
        )
    return layer


def _split(result, merge_mode):
    """Keras returns [output(s), forward h, forward c, backward h, backward c]."""
    result = [np.asarray(r) for r in result]
    if merge_mode is None:
        return (result[0], result[1]), result[2:]
    return result[0], result[1:]


def _assert_close(ours, theirs) -> None:
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == 2
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL)
    else:
        np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=RTOL)


def _assert_states(ours: jaxlstm.BidirectionalState, states) -> None:
    expected = [ours.forward.h, ours.forward.c, ours.backward.h, ours.backward.c]
    for a, b in zip(expected, states):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("merge_mode", MODES)
def test_every_merge_mode_with_mask(data, merge_mode) -> None:
    """return_sequences=True and False, both with return_state, on a mask with holes."""
    params, xs, mask = data
    ours = jaxlstm.bidirectional(params, xs, merge_mode=merge_mode, mask=mask)

    sequence, states = _split(_keras_layer(params, merge_mode, True)(xs, mask=mask), merge_mode)
    _assert_close(ours.sequence, sequence)
    _assert_states(ours.state, states)

    # return_sequences=False: Keras merges the two directions' final outputs, i.e. the final h.
    last, states = _split(_keras_layer(params, merge_mode, False)(xs, mask=mask), merge_mode)
    _assert_close(jaxlstm.merge(ours.state.forward.h, ours.state.backward.h, merge_mode), last)
    _assert_states(ours.state, states)


def test_initial_state_split_as_keras(data) -> None:
    """Unmasked, with Keras's initial_state [fh, fc, bh, bc] split between the directions."""
    params, xs, _ = data
    rng = np.random.default_rng(5)
    fh, fc, bh, bc = (rng.normal(size=(BATCH, UNITS)).astype(np.float32) for _ in range(4))
    layer = _keras_layer(params, "concat", return_sequences=True)
    sequence, states = _split(layer(xs, initial_state=[fh, fc, bh, bc]), "concat")
    initial = jaxlstm.BidirectionalState(jaxlstm.LSTMState(h=fh, c=fc), jaxlstm.LSTMState(h=bh, c=bc))
    ours = jaxlstm.bidirectional(params, xs, initial)
    _assert_close(ours.sequence, sequence)
    _assert_states(ours.state, states)


def test_bad_merge_mode_and_params(data) -> None:
    params, xs, _ = data
    with pytest.raises(ValueError, match="merge_mode: expected one of"):
        jaxlstm.bidirectional(params, xs, merge_mode="max")
    with pytest.raises(TypeError, match="params: expected BidirectionalParams"):
        jaxlstm.bidirectional(params.forward, xs)
    with pytest.raises(TypeError, match="initial_state: expected BidirectionalState"):
        jaxlstm.bidirectional(params, xs, jaxlstm.zero_state(params.forward, (BATCH,)))
