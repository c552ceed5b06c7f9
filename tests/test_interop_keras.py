"""Live Keras 3 layers: LSTM / Bidirectional(LSTM) -> jaxlstm gives Keras's outputs, and back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams

TOL = dict(atol=1e-5, rtol=1e-5)
B, T, I = 3, 5, 4


@pytest.fixture(scope="module")
def keras():
    return require("keras")


@pytest.fixture(scope="module")
def jk():
    from jaxlstm.interop import keras as jk

    return jk


def _randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, I)).astype(np.float32)


@pytest.mark.parametrize("go_backwards, use_bias", [(False, True), (True, False)])
def test_lstm_layer_matches_keras_and_round_trips(keras, jk, go_backwards, use_bias):
    make = lambda: keras.layers.LSTM(
        3, return_sequences=True, return_state=True, go_backwards=go_backwards, use_bias=use_bias
    )
    x = _x()
    layer = make()
    layer(x)
    _randomize(layer, seed=1)
    seq_ref, h_ref, c_ref = (np.asarray(a) for a in layer(x))

    params = jk.from_keras(layer)
    assert isinstance(params, LSTMParams) and (params.bias is None) == (not use_bias)
    cfg = jk.layer_config(layer)
    assert cfg["go_backwards"] == go_backwards and cfg["units"] == 3
    out = jaxlstm.lstm(params, x, reverse=cfg["go_backwards"])
    np.testing.assert_allclose(out.sequence, seq_ref, **TOL)
    np.testing.assert_allclose(out.state.h, h_ref, **TOL)
    np.testing.assert_allclose(out.state.c, c_ref, **TOL)

    fresh = make()
    fresh(x)
    jk.to_keras(params, fresh)
    for a, b in zip(fresh(x), (seq_ref, h_ref, c_ref)):
        np.testing.assert_allclose(np.asarray(a), b, **TOL)


def test_stacked_bidirectional_model_matches_keras_and_round_trips(keras, jk, tmp_path):
    L = keras.layers

    def make():
        return keras.Sequential(
            [
                keras.Input((T, I)),
                L.Bidirectional(L.LSTM(3, return_sequences=True)),
                L.LSTM(2, return_sequences=True),
            ]
        )

    x = _x(1)
    model = make()
    for layer in model.layers:
        _randomize(layer, seed=2)
    y_ref = np.asarray(model(x))

    stack = tuple(jk.from_keras(layer) for layer in model.layers)
    assert isinstance(stack[0], BidirectionalParams) and isinstance(stack[1], LSTMParams)
    assert jk.layer_config(model.layers[0])["merge_mode"] == "concat"
    np.testing.assert_allclose(jaxlstm.stacked_lstm(stack, x).sequence, y_ref, **TOL)

    fresh = make()
    for params, layer in zip(stack, fresh.layers):
        jk.to_keras(params, layer)
    np.testing.assert_allclose(np.asarray(fresh(x)), y_ref, **TOL)
    # files this Keras (JAX backend) writes, read back with h5py alone, give the same params
    from jaxlstm.interop import keras_files

    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    names = [layer.name for layer in model.layers]
    for path in (tmp_path / "m.keras", tmp_path / "m.weights.h5"):
        assert [l.name for l in keras_files.list_layers(path)] == names
        for a, b in zip(keras_files.load_layers(path, names), stack):
            np.testing.assert_array_equal(jk.to_keras_weights(a)[0], jk.to_keras_weights(b)[0])
            np.testing.assert_array_equal(jk.to_keras_weights(a)[-1], jk.to_keras_weights(b)[-1])
    # get_weights() lists convert too
    assert isinstance(
        jk.from_keras_weights(model.layers[0].get_weights(), bidirectional=True), BidirectionalParams
    )
    np.testing.assert_array_equal(jk.to_keras_weights(stack[0])[3], model.layers[0].get_weights()[3])


def test_keras_activation_names_mean_what_keras_means(keras, jk):
    # "gelu" in Keras is the exact erf form; jax.nn.gelu defaults to the tanh approximation (4e-4 off).
    x = _x(2)
    layer = keras.layers.LSTM(
        3, activation="gelu", recurrent_activation="hard_sigmoid", return_sequences=True
    )
    layer(x)
    _randomize(layer, seed=4)
    cfg = jk.layer_config(layer)
    out = jaxlstm.lstm(
        jk.from_keras(layer),
        x,
        activation=cfg["activation"],
        recurrent_activation=cfg["recurrent_activation"],
    )
    np.testing.assert_allclose(out.sequence, np.asarray(layer(x)), **TOL)


def test_bad_weights_name_the_tensor(keras, jk):
    with pytest.raises(
        ValueError, match=r"weights\[1\] \(recurrent_kernel\): expected shape \[3, 12\], found \[4, 12\]"
    ):
        jk.from_keras_weights([np.zeros((4, 12)), np.zeros((4, 12)), np.zeros(12)])
    with pytest.raises(ValueError, match="expected 3 arrays"):
        jk.from_keras_weights([np.zeros((4, 12))])
    layer = keras.layers.LSTM(3)
    layer(_x())
    wrong = LSTMParams(np.zeros((5, 12), np.float32), np.zeros((3, 12), np.float32), np.zeros(12, np.float32))
    with pytest.raises(ValueError, match=r"params.kernel: expected shape \[4, 12\], found \[5, 12\]"):
        jk.to_keras(wrong, layer)
