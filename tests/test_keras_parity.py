"""The core equals Keras 3's LSTM (JAX backend) on the same weights and inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

import jaxlstm

ATOL = 1e-5


def keras_lstm(units: int, input_size: int, rng: np.random.Generator, **layer_kwargs):
    """A built Keras LSTM with random (not default-initialised) weights, and the same as LSTMParams."""
    keras = require("keras")
    layer = keras.layers.LSTM(units, return_sequences=True, return_state=True, **layer_kwargs)
    layer.build((None, None, input_size))
    weights = [rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    kernel, recurrent_kernel, *bias = layer.get_weights()
    params = jaxlstm.LSTMParams(kernel, recurrent_kernel, bias[0] if bias else None)
    return layer, params


def assert_same(keras_result, ours: jaxlstm.LSTMOutput) -> None:
    sequence, h, c = (np.asarray(a) for a in keras_result)
    np.testing.assert_allclose(ours.sequence, sequence, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.state.h, h, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.state.c, c, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "units, batch, layer_kwargs",
    [
        (2, 16, {}),  # the seed notebook's shape
        (2, 16, {"go_backwards": True}),
        (3, 5, {"unit_forget_bias": False}),
        (3, 5, {"use_bias": False}),
        (1, 4, {}),
        (64, 3, {}),
        (4, 1, {}),
    ],
    ids=["seed", "go_backwards", "no_unit_forget_bias", "no_bias", "units1", "units64", "batch1"],
)
def test_matches_keras(units: int, batch: int, layer_kwargs: dict) -> None:
    rng = np.random.default_rng(units * 100 + batch)
    layer, params = keras_lstm(units, 4, rng, **layer_kwargs)
    x = rng.normal(size=(batch, 8, 4)).astype(np.float32)
    ours = jaxlstm.lstm(params, x, reverse=layer_kwargs.get("go_backwards", False))
    assert_same(layer(x), ours)
    # Keras's default (return_sequences=False) output is the last processed step.
    np.testing.assert_allclose(ours.sequence[:, -1], np.asarray(layer(x)[1]), atol=ATOL, rtol=0)


def test_keras_default_output_shape_is_batch_by_units() -> None:
    keras = require("keras")
    rng = np.random.default_rng(0)
    layer = keras.layers.LSTM(2)
    x = rng.normal(size=(16, 8, 4)).astype(np.float32)
    keras_out = np.asarray(layer(x))
    kernel, recurrent_kernel, bias = layer.get_weights()
    ours = jaxlstm.lstm(jaxlstm.LSTMParams(kernel, recurrent_kernel, bias), x)
    assert keras_out.shape == (16, 2) == ours.state.h.shape
    np.testing.assert_allclose(ours.state.h, keras_out, atol=ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_mask_matches_keras(go_backwards: bool, zero_output_for_mask: bool) -> None:
    rng = np.random.default_rng(7)
    layer, params = keras_lstm(
        3, 4, rng, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask
    )
    x = rng.normal(size=(5, 8, 4)).astype(np.float32)
    mask = np.ones((5, 8), bool)
    mask[0, 5:] = False  # right padding
    mask[1, :3] = False  # left padding
    mask[2, ::2] = False  # holes
    mask[3, :] = False  # a fully masked row: state stays initial
    ours = jaxlstm.lstm(params, x, mask=mask, reverse=go_backwards, zero_output_for_mask=zero_output_for_mask)
    assert_same(layer(x, mask=mask), ours)
    unmasked = jaxlstm.lstm(params, x, reverse=go_backwards)
    assert not np.allclose(ours.sequence[:3], unmasked.sequence[:3], atol=1e-3)
    np.testing.assert_array_equal(ours.state.h[3], 0.0)
    np.testing.assert_array_equal(ours.state.c[3], 0.0)


@pytest.mark.parametrize("masked", [False, True])
def test_initial_state_matches_keras(masked: bool) -> None:
    rng = np.random.default_rng(11)
    layer, params = keras_lstm(3, 4, rng)
    x = rng.normal(size=(5, 8, 4)).astype(np.float32)
    h0 = rng.normal(size=(5, 3)).astype(np.float32)
    c0 = rng.normal(size=(5, 3)).astype(np.float32)
    mask = None
    if masked:  # masked leading steps must emit the initial h, as Keras does
        mask = np.ones((5, 8), bool)
        mask[:, :2] = False
        mask[4, :] = False
    ours = jaxlstm.lstm(params, x, jaxlstm.LSTMState(h=h0, c=c0), mask=mask)
    assert_same(layer(x, initial_state=[h0, c0], mask=mask), ours)
