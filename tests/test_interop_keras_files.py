"""Keras / TensorFlow files read with h5py alone reproduce TensorFlow's own outputs.

The files in fixtures/tf were written by real TensorFlow 2.21 (tf-keras 2.21 for the legacy .h5
formats, Keras 3.15 for .keras / .weights.h5) by fixtures/make_tf_files.py, with the outputs TF computed.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "tf")
FORMATS = ["tfkeras2.h5", "tfkeras2.weights-only.h5", "keras3.keras", "keras3.weights.h5"]
WITH_CONFIG = {"tfkeras2.h5", "keras3.keras"}
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def kf():
    require("h5py")
    from jaxlstm.interop import keras_files

    return keras_files


@pytest.fixture(scope="module")
def tf_out():
    with np.load(os.path.join(HERE, "outputs.npz"), allow_pickle=False) as f:
        return dict(f)


@pytest.mark.parametrize("fmt", FORMATS)
def test_seed_lstm_matches_tensorflow(kf, tf_out, fmt):
    path = os.path.join(HERE, f"seed_{fmt}")
    (layer,) = kf.list_layers(path)
    assert (layer.name, layer.kind, layer.input_size, layer.units, layer.use_bias) == (
        "seed_lstm",
        "LSTM",
        4,
        2,
        True,
    )
    assert (layer.config is not None) == (fmt in WITH_CONFIG)
    if layer.config is not None:
        assert layer.config["return_sequences"] and layer.config["return_state"]
        assert kf.lstm_options(layer) == dict(
            reverse=False,
            activation="tanh",
            recurrent_activation="sigmoid",
            zero_output_for_mask=False,
            unroll=1,
        )
    params = kf.load_layer(path, "seed_lstm")
    assert isinstance(params, LSTMParams) and params.kernel.shape == (4, 8)
    out = jaxlstm.lstm(params, tf_out["seed_x"], **kf.lstm_options(layer))
    np.testing.assert_allclose(out.sequence, tf_out["seed_seq"], **TOL)
    np.testing.assert_allclose(out.state.h, tf_out["seed_h"], **TOL)
    np.testing.assert_allclose(out.state.c, tf_out["seed_c"], **TOL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stacked_bidirectional_masked_model_matches_tensorflow(kf, tf_out, fmt):
    path = os.path.join(HERE, f"stack_{fmt}")
    layers = kf.list_layers(path)
    assert [(l.name, l.kind, l.input_size, l.units, l.use_bias) for l in layers] == [
        ("encoder_1", "Bidirectional", 4, 3, True),
        ("encoder_2", "Bidirectional", 6, 2, True),
        ("tail", "LSTM", 4, 2, False),
    ]
    listing = kf.contents(path)
    assert sorted(listing)[-1] == "tail" and sorted(listing["tail"].values()) == [(2, 8), (4, 8)]
    assert sum(len(v) for v in listing.values()) == 6 + 6 + 2  # every dataset, Masking has none
    stack = kf.load_layers(path)
    assert isinstance(stack[0], BidirectionalParams) and stack[2].bias is None
    if fmt in WITH_CONFIG:  # options from the file's own config
        options = [kf.lstm_options(l) for l in layers]
        assert options[2]["reverse"] and options[0]["zero_output_for_mask"]
        assert options[0]["merge_mode"] == "concat" and "reverse" not in options[0]
    else:  # weights-only files carry no config: the architecture as the generator built it
        options = [dict(zero_output_for_mask=True)] * 2 + [dict(reverse=True)]
    x = tf_out["stack_x"]
    mask = jnp.any(x != 0.0, axis=-1)  # keras.layers.Masking(mask_value=0.0)
    # A Bidirectional's options feed jaxlstm.bidirectional, an LSTM's jaxlstm.lstm.
    encoder = options[:2]
    y1 = jaxlstm.bidirectional(stack[0], x, mask=mask, **encoder[0]).sequence
    np.testing.assert_allclose(y1, tf_out["stack_encoder_1"], **TOL)
    y2 = jaxlstm.bidirectional(stack[1], y1, mask=mask, **encoder[1]).sequence
    np.testing.assert_allclose(y2, tf_out["stack_encoder_2"], **TOL)
    # The two encoders as one stack, with stacked_lstm's own defaults (Keras's, per layer kind).
    np.testing.assert_allclose(
        jaxlstm.stacked_lstm(stack[:2], x, mask=mask).sequence, tf_out["stack_encoder_2"], **TOL
    )
    state = jaxlstm.lstm(stack[2], y2, mask=mask, **options[2]).state
    np.testing.assert_allclose(state.h, tf_out["stack_tail"], **TOL)


@pytest.mark.parametrize("fmt", ["tfkeras2.h5", "keras3.keras"])
def test_hard_sigmoid_means_what_the_writing_keras_meant(kf, tf_out, fmt):
    # Same weights, same config name "hard_sigmoid", different functions in Keras 2 and Keras 3.
    path = os.path.join(HERE, f"hard_{fmt}")
    (layer,) = kf.list_layers(path)
    writer = fmt.split(".")[0]  # "tfkeras2" or "keras3"
    assert layer.keras_version.split(".")[0] == writer[-1]
    assert layer.config["recurrent_activation"] == "hard_sigmoid"
    out = jaxlstm.lstm(kf.load_layer(path, "hard_lstm"), tf_out["seed_x"], **kf.lstm_options(layer))
    np.testing.assert_allclose(out.sequence, tf_out[f"hard_seq_{writer}"], **TOL)


@pytest.mark.parametrize("fmt", ["tfkeras2.h5", "tfkeras2.weights-only.h5"])
def test_legacy_nested_model_layers_match_tensorflow(kf, fmt):
    """A model used as a layer of another: its LSTMs (one plain, one Bidirectional) are found inside
    its group, named "<model>/<layer>", and reproduce TensorFlow's outputs; the Dense between them is
    ignored as an LSTM but listed by ``contents``."""
    import h5py

    path = os.path.join(HERE, f"nested_{fmt}")
    with np.load(os.path.join(HERE, "nested_outputs.npz"), allow_pickle=False) as f:
        out = dict(f)
    layers = kf.list_layers(path)
    assert [(l.name, l.kind, l.input_size, l.units) for l in layers] == [
        ("inner/first", "LSTM", 4, 3),
        ("inner/bi", "Bidirectional", 3, 2),
        ("top", "LSTM", 2, 2),
    ]
    assert all((l.config is not None) == (fmt == "tfkeras2.h5") for l in layers)
    first, bi, top = kf.load_layers(path)
    assert isinstance(bi, BidirectionalParams) and kf.load_layer(path, "inner/first").kernel.shape == (4, 12)
    y1 = jaxlstm.lstm(first, out["x"]).sequence
    np.testing.assert_allclose(y1, out["first"], **TOL)
    y2 = jaxlstm.bidirectional(bi, y1).sequence
    np.testing.assert_allclose(y2, out["bi"], **TOL)
    # The Dense inside the nested model: listed by contents, read here with h5py to feed "top".
    dense = {k: v for k, v in kf.contents(path)["inner"].items() if "proj" in k}
    assert sorted(dense.values()) == [(2,), (4, 2)]
    with h5py.File(path, "r") as f:
        group = (f["model_weights"] if "model_weights" in f else f)["inner"]
        w, b = (np.asarray(group[k][()]) for k in sorted(dense, key=lambda k: "bias" in k))
    np.testing.assert_allclose(y2 @ w + b, out["proj"], **TOL)
    np.testing.assert_allclose(jaxlstm.lstm(top, out["proj"]).state.h, out["top"], **TOL)


def test_missing_layer_name_lists_names_present(kf):
    with pytest.raises(
        ValueError, match=r"no LSTM layer named 'decoder'.*\['encoder_1', 'encoder_2', 'tail'\]"
    ):
        kf.load_layer(os.path.join(HERE, "stack_keras3.keras"), "decoder")
    with pytest.raises(ValueError, match=r"\['seed_lstm'\]"):
        kf.load_layer(os.path.join(HERE, "seed_tfkeras2.weights-only.h5"), "lstm")


def test_truncated_and_foreign_files_raise_clear_errors(kf, tmp_path):
    src = os.path.join(HERE, "seed_tfkeras2.h5")
    with open(src, "rb") as f:
        data = f.read()
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable HDF5.*truncated"):
        kf.list_layers(truncated)
    cut_zip = tmp_path / "cut.keras"
    cut_zip.write_bytes(open(os.path.join(HERE, "seed_keras3.keras"), "rb").read()[:3000])
    with pytest.raises(ValueError, match="not a readable"):
        kf.load_layer(cut_zip, "seed_lstm")
    pickled = tmp_path / "model.h5"
    pickled.write_bytes(pickle.dumps({"kernel": [1, 2]}))
    with pytest.raises(ValueError, match="not a readable HDF5"):
        kf.list_layers(pickled)
    with pytest.raises(FileNotFoundError, match="no such file"):
        kf.list_layers(tmp_path / "absent.keras")


def test_shape_mismatch_names_the_tensor(kf, tmp_path):
    h5py = require("h5py")
    bad = tmp_path / "bad.weights.h5"
    shutil.copy(os.path.join(HERE, "seed_keras3.weights.h5"), bad)
    with h5py.File(bad, "r+") as f:
        del f["layers/lstm/cell/vars/2"]
        f["layers/lstm/cell/vars/2"] = np.zeros(7, np.float32)
    with pytest.raises(
        ValueError, match=r"layers/lstm/cell/vars/2 \(bias\): expected shape \[8\], found \[7\]"
    ):
        kf.load_layer(bad, "seed_lstm")


def test_config_units_disagreeing_with_weights_is_refused(kf, tmp_path):
    src = os.path.join(HERE, "seed_keras3.keras")
    dst = tmp_path / "edited.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                data = data.replace(b'"units": 2', b'"units": 5')
            zout.writestr(item, data)
    with pytest.raises(
        ValueError,
        match=r"layers/lstm/cell/vars/0 \(kernel\): expected shape \[4, 20\] \(config of 'seed_lstm' says units=5\), found \[4, 8\]",
    ):
        kf.load_layer(dst, "seed_lstm")
