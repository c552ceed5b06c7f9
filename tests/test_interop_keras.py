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
    cfg = jk.lstm_options(layer)
    assert cfg["reverse"] == go_backwards
    out = jaxlstm.lstm(params, x, **cfg)
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
    assert jk.lstm_options(model.layers[0])["merge_mode"] == "concat"
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
    out = jaxlstm.lstm(jk.from_keras(layer), x, **jk.lstm_options(layer))
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


# Keras LSTM configs, each run by Keras and by jaxlstm.lstm(**lstm_options(...)) from the live layer,
# its config dict and its entry in a saved .keras file.
LSTM_CONFIGS = [
    dict(return_sequences=True, return_state=True),
    dict(go_backwards=True, use_bias=False, return_sequences=True),
    dict(activation="relu", recurrent_activation="hard_sigmoid", unit_forget_bias=False, unroll=True),
    dict(activation="softsign", dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
    dict(zero_output_for_mask=True, return_sequences=True, go_backwards=True),
    dict(stateful=False, seed=3, kernel_regularizer="l2", recurrent_constraint="non_neg"),
]


def _three_sources(keras, layer, tmp_path, x):
    """lstm_options from the live layer, its get_config() and its .keras file entry (all equal)."""
    from jaxlstm.interop import keras as jk
    from jaxlstm.interop import keras_files

    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    model.save(tmp_path / "m.keras")
    (entry,) = keras_files.list_layers(tmp_path / "m.keras")
    got = [jk.lstm_options(layer), jk.lstm_options(layer.get_config()), jk.lstm_options(entry)]
    assert got[0] == got[1] == got[2]
    return got[0], keras_files.load_layer(tmp_path / "m.keras", entry.name)


def _first(out):
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


@pytest.mark.parametrize("config", LSTM_CONFIGS, ids=lambda c: ",".join(c))
def test_lstm_options_from_any_source_reproduce_keras(keras, jk, tmp_path, config):
    x = _x(3)
    x[:, -2:] = 0.0  # padded tail, masked below
    mask = np.any(x != 0.0, axis=-1)
    layer = keras.layers.LSTM(3, **config)
    layer(x)
    _randomize(layer, seed=5)
    options, from_file = _three_sources(keras, layer, tmp_path, x)
    params = jk.from_keras(layer)
    for got, want in zip(jk.to_keras_weights(from_file), jk.to_keras_weights(params)):
        np.testing.assert_array_equal(got, want)
    for m in (None, mask):
        ref = layer(x, mask=m)  # training=False: dropout inactive
        out = jaxlstm.lstm(params, x, mask=m, **options)
        ours = out.sequence if config.get("return_sequences") else out.state.h
        np.testing.assert_allclose(ours, _first(ref), **TOL)
        if config.get("return_state"):
            np.testing.assert_allclose(out.state.c, np.asarray(ref[2]), **TOL)


@pytest.mark.parametrize(
    "merge_mode, inner",
    [
        ("concat", dict(return_sequences=True)),
        ("sum", dict(return_sequences=True, activation="softsign", use_bias=False)),
        ("ave", dict(recurrent_activation="hard_sigmoid", unroll=True)),
        ("mul", dict(return_sequences=True, dropout=0.5)),
    ],
)
def test_bidirectional_options_from_any_source_reproduce_keras(keras, jk, tmp_path, merge_mode, inner):
    x = _x(4)
    x[:, -1:] = 0.0
    mask = np.any(x != 0.0, axis=-1)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(3, **inner), merge_mode=merge_mode)
    layer(x)
    _randomize(layer, seed=6)
    options, _ = _three_sources(keras, layer, tmp_path, x)
    assert options["merge_mode"] == merge_mode
    assert options["zero_output_for_mask"] == inner.get("return_sequences", False)
    params = jk.from_keras(layer)
    for m in (None, mask):
        out = jaxlstm.bidirectional(params, x, mask=m, **options)
        last = jaxlstm.merge(out.state.forward.h, out.state.backward.h, merge_mode)
        ours = out.sequence if inner.get("return_sequences") else last
        np.testing.assert_allclose(ours, _first(layer(x, mask=m)), **TOL)


def test_keras2_time_major_config_reads_time_major_input(keras, jk):
    # Keras 3 has no time_major; a Keras 2 config's time_major=True means xs [T, B, I].
    x = _x(7)
    layer = keras.layers.LSTM(3, return_sequences=True)
    layer(x)
    _randomize(layer, seed=8)
    options = jk.lstm_options(dict(layer.get_config(), time_major=True))
    assert options["time_major"] is True
    out = jaxlstm.lstm(jk.from_keras(layer), np.swapaxes(x, 0, 1), **options)
    np.testing.assert_allclose(np.swapaxes(out.sequence, 0, 1), _first(layer(x)), **TOL)
    assert "time_major" not in jk.lstm_options(layer)


def test_lstm_options_refuse_what_jaxlstm_cannot_honour(keras, jk):
    base = keras.layers.LSTM(3).get_config()
    with pytest.raises(ValueError, match=r"config: Keras option\(s\) \['peephole'\] unknown to jaxlstm"):
        jk.lstm_options(dict(base, peephole=True))
    with pytest.raises(ValueError, match=r"config: go_backwards expected a bool, found 1"):
        jk.lstm_options(dict(base, go_backwards=1))
    with pytest.raises(
        ValueError, match=r"activation: Keras activation 'exponential' is not one jaxlstm has"
    ):
        jk.lstm_options(keras.layers.LSTM(3, activation="exponential"))
    with pytest.raises(ValueError, match=r"recurrent_activation: .* is not a built-in Keras activation"):
        jk.lstm_options(dict(base, recurrent_activation={"class_name": "function", "config": "mine"}))
    with pytest.raises(ValueError, match=r"dtype: the dtype policy 'int8_from_float32'"):
        jk.lstm_options(dict(base, dtype="int8_from_float32"))
    assert jk.lstm_options(dict(base, dtype="mixed_bfloat16"))["dtype"] == "bfloat16"
    with pytest.raises(TypeError, match=r"expected an LSTM or Bidirectional\(LSTM\) layer, found 'GRU'"):
        jk.lstm_options(keras.layers.GRU(3))
    with pytest.raises(TypeError, match=r"layer: expected a keras.layers.LSTM"):
        jk.lstm_options(3)
    # Bidirectional: Keras runs a go_backwards forward layer backwards, and a custom backward layer
    # may compute differently; jaxlstm.bidirectional runs neither.
    L = keras.layers
    with pytest.raises(ValueError, match=r"config\['layer'\]: go_backwards=True inside a Bidirectional"):
        cfg = L.Bidirectional(L.LSTM(3)).get_config()
        cfg["layer"]["config"]["go_backwards"], cfg["backward_layer"]["config"]["go_backwards"] = True, False
        jk.lstm_options(cfg)
    odd = L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3, activation="relu", go_backwards=True))
    with pytest.raises(ValueError, match=r"\['backward_layer'\]: activation='relu' differs"):
        jk.lstm_options(odd)


def test_layer_config_is_deprecated_and_still_returns_keras_names(keras, jk):
    layer = keras.layers.LSTM(3, go_backwards=True)
    with pytest.warns(DeprecationWarning, match=r"use jaxlstm.interop.keras.lstm_options\(layer\)"):
        cfg = jk.layer_config(layer)
    assert cfg["go_backwards"] is True and cfg["units"] == 3


def test_keras_files_lstm_options_is_the_same_helper_and_takes_a_live_layer(keras, jk):
    from jaxlstm.interop import keras_files

    assert keras_files.lstm_options is jk.lstm_options
    layer = keras.layers.LSTM(3, go_backwards=True)
    assert keras_files.lstm_options(layer)["reverse"] is True  # was an opaque AttributeError
