"""TF Addons LayerNormLSTMCell / PeepholeLSTMCell weights: the converters' mapping, proven against
the numbers TensorFlow Addons computed (tests/fixtures/addons/cells.npz, made once by
tests/fixtures/make_addons_files.py with TF 2.15.1 and Addons 0.23.0) through the float64 NumPy
oracle tests/_variant_reference.py: a weight put in the wrong field changes the numbers."""

from __future__ import annotations

import os
from typing import Any

import _variant_reference as ref
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import LayerNormParams, LSTMParams, PeepholeParams
from jaxlstm.interop import addons

CELLS = os.path.join(os.path.dirname(__file__), "fixtures", "addons", "cells.npz")
# The cells' weight names in the order of cell.weights (tests/fixtures/make_addons_files.py wrote
# them in that order; the npz keeps it).
LAYER_NORM_NAMES = [
    "kernel",
    "recurrent_kernel",
    "bias",
    "kernel_norm/gamma",
    "kernel_norm/beta",
    "recurrent_norm/gamma",
    "recurrent_norm/beta",
    "state_norm/gamma",
    "state_norm/beta",
]
PEEPHOLE_NAMES = [
    "kernel",
    "recurrent_kernel",
    "bias",
    "input_gate_peephole_weights",
    "forget_gate_peephole_weights",
    "output_gate_peephole_weights",
]


@pytest.fixture(scope="module")
def cells() -> dict[str, np.ndarray]:
    with np.load(CELLS) as f:
        return dict(f)


def weights(cells: dict[str, np.ndarray], cell: str, names: list[str]) -> list[np.ndarray]:
    """The cell's weights as its get_weights() lists them."""
    stored = [k.split("/", 1)[1] for k in cells if k.startswith(f"{cell}/")]
    assert [n for n in stored if n.split("/")[0] not in ("forward", "backward")] == names  # cell order
    return [cells[f"{cell}/{n}"] for n in names]


def oracle_params(p: LSTMParams) -> ref.RefParams:
    """The oracle's names for an LSTMParams' fields (the oracle does not know jaxlstm's types)."""
    ln, peep = p.layer_norm, p.peepholes
    return ref.RefParams(
        p.kernel,
        p.recurrent_kernel,
        p.bias,
        p.projection,
        *(None,) * 6
        if ln is None
        else (ln.x_gain, ln.x_offset, ln.h_gain, ln.h_offset, ln.c_gain, ln.c_offset),
        *(None,) * 3 if peep is None else (peep.i, peep.f, peep.o),
    )


def run_oracle(cells: dict[str, np.ndarray], params: LSTMParams, variant: ref.Variant, backward: bool) -> Any:
    return ref.lstm(
        oracle_params(params),
        cells["xs"],
        cells["h0"],
        cells["c0"],
        variant,
        mask=cells["mask"],
        reverse=backward,
    )


def run_library(cells: dict[str, np.ndarray], params: LSTMParams, backward: bool, **options: Any) -> Any:
    """``jaxlstm.lstm`` on the fixture's inputs: (sequence, h, c), outputs in processing order as Keras's."""
    state = jaxlstm.LSTMState(h=cells["h0"], c=cells["c0"])
    out = jaxlstm.lstm(params, cells["xs"], state, cells["mask"], reverse=backward, **options)
    return out.sequence, out.state.h, out.state.c


# What TF computed, to this tolerance (float32 TF against the float64 oracle over 6 steps).
TOL = 1e-5


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_layer_norm_weights_reproduce_tf_addons(cells, direction: str) -> None:
    params = addons.from_addons_layer_norm(weights(cells, "layer_norm", LAYER_NORM_NAMES))
    assert isinstance(params.layer_norm, LayerNormParams) and params.peepholes is None
    assert params.bias is not None and params.gates == 4 and params.units == 4
    # Addons: normalised c carried, epsilon = norm_epsilon (1e-3, the default the fixture used)
    variant = ref.Variant(layer_norm=True, carry_normalised=True, epsilon=1e-3)
    ys, h, c = run_oracle(cells, params, variant, direction == "backward")
    for ours, key in ((ys, "ys"), (h, "h"), (c, "c")):
        np.testing.assert_allclose(ours, cells[f"layer_norm/{direction}/{key}"], rtol=0, atol=TOL)
    # The mapping is what makes it agree: the x and h norms swapped are another model.
    ln = params.layer_norm
    swapped = params._replace(layer_norm=ln._replace(x_gain=ln.h_gain, h_gain=ln.x_gain))
    ys_swapped, _, _ = run_oracle(cells, swapped, variant, direction == "backward")
    assert np.abs(ys_swapped - cells[f"layer_norm/{direction}/ys"]).max() > 1e-2
    # And the library itself on the converted weights, with Addons' carry and epsilon.
    ours = run_library(
        cells, params, direction == "backward", layer_norm_carry="normalised", layer_norm_epsilon=1e-3
    )
    for value, key in zip(ours, ("ys", "h", "c")):
        np.testing.assert_allclose(value, cells[f"layer_norm/{direction}/{key}"], rtol=0, atol=TOL)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_peephole_weights_reproduce_tf_addons(cells, direction: str) -> None:
    params = addons.from_addons_peephole(weights(cells, "peephole", PEEPHOLE_NAMES))
    assert isinstance(params.peepholes, PeepholeParams) and params.layer_norm is None
    ys, h, c = run_oracle(cells, params, ref.Variant(peepholes=True), direction == "backward")
    for ours, key in ((ys, "ys"), (h, "h"), (c, "c")):
        np.testing.assert_allclose(ours, cells[f"peephole/{direction}/{key}"], rtol=0, atol=TOL)
    # i and f swapped: another model
    peep = params.peepholes
    swapped = params._replace(peepholes=peep._replace(i=peep.f, f=peep.i))
    ys_swapped, _, _ = run_oracle(cells, swapped, ref.Variant(peepholes=True), direction == "backward")
    assert np.abs(ys_swapped - cells[f"peephole/{direction}/ys"]).max() > 1e-3
    for value, key in zip(run_library(cells, params, direction == "backward"), ("ys", "h", "c")):
        np.testing.assert_allclose(value, cells[f"peephole/{direction}/{key}"], rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "cell, names, convert",
    [
        ("layer_norm", LAYER_NORM_NAMES, (addons.from_addons_layer_norm, addons.to_addons_layer_norm)),
        ("peephole", PEEPHOLE_NAMES, (addons.from_addons_peephole, addons.to_addons_peephole)),
    ],
)
def test_weights_round_trip_with_and_without_bias(cells, cell: str, names: list[str], convert: Any) -> None:
    from_addons, to_addons = convert
    original = weights(cells, cell, names)
    for listed in (original, [w for n, w in zip(names, original) if n != "bias"]):
        params = from_addons(listed)
        assert (params.bias is None) == (len(listed) < len(names))
        back = to_addons(params)
        assert len(back) == len(listed)
        for a, b in zip(back, listed):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    # use_bias given explicitly: the list must match it
    with pytest.raises(
        ValueError, match=rf"expected {len(names) - 1} arrays .*use_bias=False .*found {len(names)}"
    ):
        from_addons(original, use_bias=False)


def test_from_addons_errors_name_the_weight(cells) -> None:
    ln = weights(cells, "layer_norm", LAYER_NORM_NAMES)
    with pytest.raises(
        TypeError,
        match=r"weights: expected a list of arrays \(a LayerNormLSTMCell's get_weights\(\)\), found dict",
    ):
        addons.from_addons_layer_norm(dict(zip(LAYER_NORM_NAMES, ln)))
    with pytest.raises(
        ValueError,
        match=r"weights: expected 9 arrays for a LayerNormLSTMCell \(or 8 with use_bias=False\), found 6",
    ):
        addons.from_addons_layer_norm(ln[:6])
    with pytest.raises(
        ValueError, match=r"weights\[5\] \(recurrent_norm/gamma\): expected shape \[16\], found \[4\]"
    ):
        addons.from_addons_layer_norm(ln[:5] + [ln[7]] + ln[6:])
    with pytest.raises(
        ValueError, match=r"weights\[1\] \(recurrent_kernel\): expected shape \[4, 16\], found \[3, 16\]"
    ):
        addons.from_addons_layer_norm([ln[0], ln[0], *ln[2:]])
    with pytest.raises(
        ValueError, match=r"weights\[0\] \(kernel\): expected axis 1 to hold 4 equal gate blocks"
    ):
        addons.from_addons_layer_norm([ln[0][:, :15], *ln[1:]])
    peep = weights(cells, "peephole", PEEPHOLE_NAMES)
    with pytest.raises(
        TypeError, match=r"weights\[4\] \(forget_gate_peephole_weights\): expected a floating-point array"
    ):
        addons.from_addons_peephole([*peep[:4], peep[4].astype(np.int32), peep[5]])
    with pytest.raises(
        ValueError, match=r"expected 6 arrays for a PeepholeLSTMCell \(or 5 with use_bias=False\), found 9"
    ):
        addons.from_addons_peephole(ln)
    # the other cell's list is refused, not misread
    with pytest.raises(ValueError, match=r"expected 9 arrays for a LayerNormLSTMCell .*found 6"):
        addons.from_addons_layer_norm(peep)


def test_to_addons_refuses_what_the_cell_does_not_have(cells) -> None:
    ln = addons.from_addons_layer_norm(weights(cells, "layer_norm", LAYER_NORM_NAMES))
    peep = addons.from_addons_peephole(weights(cells, "peephole", PEEPHOLE_NAMES))
    plain = LSTMParams(ln.kernel, ln.recurrent_kernel, ln.bias)
    cases = [
        (addons.to_addons_layer_norm, plain, r"params\.layer_norm: a LayerNormLSTMCell is a layer-norm LSTM; expected it set, found None"),
        (addons.to_addons_peephole, plain, r"params\.peepholes: a PeepholeLSTMCell is a peephole LSTM; expected it set, found None"),
        (addons.to_addons_layer_norm, ln._replace(peepholes=peep.peepholes), r"params: TF Addons LayerNormLSTMCell has no peephole LSTM: params\.peepholes is set"),
        (addons.to_addons_peephole, peep._replace(layer_norm=ln.layer_norm), r"params: TF Addons PeepholeLSTMCell has no layer-norm LSTM: params\.layer_norm is set"),
        (addons.to_addons_layer_norm, ln._replace(kernel=ln.kernel[:, :12], recurrent_kernel=ln.recurrent_kernel[:, :12]), r"params: TF Addons LayerNormLSTMCell has no coupled-gate \(CIFG\) LSTM: params has 3 gate blocks"),
        (addons.to_addons_peephole, peep._replace(kernel=peep.kernel[:, :12], recurrent_kernel=peep.recurrent_kernel[:, :12], peepholes=peep.peepholes._replace(i=None)), r"has no coupled-gate \(CIFG\) LSTM"),
        (addons.to_addons_layer_norm, ln._replace(recurrent_kernel=ln.recurrent_kernel[:2], projection=np.ones((4, 2), np.float32)), r"params: TF Addons LayerNormLSTMCell has no projected LSTM"),
        (addons.to_addons_layer_norm, ln._replace(layer_norm=ln.layer_norm._replace(c_offset=ln.layer_norm.x_offset)), r"params\.layer_norm\.c_offset: expected shape \[4\], found \[16\]"),
        (addons.to_addons_peephole, peep._replace(peepholes=peep.peepholes._replace(i=None)), r"params\.peepholes\.i: expected shape \[4\], found None"),
    ]  # fmt: skip
    for convert, params, message in cases:
        with pytest.raises(ValueError, match=message):
            convert(params)
    with pytest.raises(TypeError, match=r"params: expected LSTMParams, found tuple"):
        addons.to_addons_peephole(tuple(peep))


def test_importing_addons_loads_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, jaxlstm.interop; jaxlstm.interop.addons.from_addons_peephole; "
        "print([p for p in ('tensorflow', 'tensorflow_addons', 'keras', 'tf_keras') if p in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ----------------------------------------------------------------------------------------------
# A tf.keras 2 .h5 model with Addons cells (tests/fixtures/make_addons_h5.py)
# ----------------------------------------------------------------------------------------------

H5 = os.path.join(os.path.dirname(__file__), "fixtures", "addons", "rnn_tfkeras2.h5")
LN_LAYER, PEEP_LAYER = "ln_rnn/ln_rnn/layer_norm_lstm_cell", "peep_rnn/peep_rnn/peephole_lstm_cell"


def test_keras_files_refuses_addons_cells_instead_of_dropping_their_weights() -> None:
    """Their kernel, recurrent_kernel and bias look like an LSTM's: read as one, the layer norms or
    peepholes would be silently dropped."""
    require("h5py")
    from jaxlstm.interop import InvalidFileError, keras_files

    layers = {layer.name: layer.kind for layer in keras_files.list_layers(H5)}
    assert layers == {LN_LAYER: "LSTM", PEEP_LAYER: "LSTM", "bi": "Bidirectional"}
    ln = r"kernel_norm/gamma:0, kernel_norm/beta:0, recurrent_norm/gamma:0, .*state_norm/beta:0"
    with pytest.raises(
        InvalidFileError,
        match=rf"rnn_tfkeras2\.h5'?: name: layer '{LN_LAYER}' is not a Keras LSTM: its cell also has {ln} "
        r"\(read its weights with h5py from 'model_weights/ln_rnn'\); a TF Addons LayerNormLSTMCell's: "
        r"convert them with interop\.addons\.from_addons_layer_norm",
    ):
        keras_files.load_layer(H5, LN_LAYER)
    with pytest.raises(
        InvalidFileError,
        match=r"is not a Keras LSTM: its cell also has input_gate_peephole_weights:0, "
        r"forget_gate_peephole_weights:0, output_gate_peephole_weights:0 .*interop\.addons\.from_addons_peephole",
    ):
        keras_files.load_layer(H5, PEEP_LAYER)
    with pytest.raises(
        InvalidFileError,
        match=r"layer 'bi' is not a Keras LSTM: its cell also has kernel_norm/gamma:0, .*, state_norm/beta:0 \(",
    ):
        keras_files.load_layer(H5, "bi")
    with pytest.raises(InvalidFileError, match="is not a Keras LSTM"):  # the whole stack
        keras_files.load_layers(H5)


def test_weights_read_from_a_tf_keras_file_reproduce_its_model() -> None:
    """What the refusal tells a user to do: the layer's weights, in its weight_names order, through
    the converter, reproduce what TensorFlow computed with the model (oracle, zero initial state)."""
    h5py = require("h5py")
    with np.load(os.path.join(os.path.dirname(H5), "rnn_outputs.npz")) as f:
        out = dict(f)
    with h5py.File(H5, "r") as f:

        def layer_weights(group: str) -> list[np.ndarray]:
            g = f["model_weights"][group]
            return [np.asarray(g[name]) for name in g.attrs["weight_names"]]

        ln = addons.from_addons_layer_norm(layer_weights("ln_rnn"))
        peep = addons.from_addons_peephole(layer_weights("peep_rnn"))
        bi = layer_weights("bi")  # a Bidirectional's list: the forward cell's, then the backward's
        forward, backward = addons.from_addons_layer_norm(bi[:9]), addons.from_addons_layer_norm(bi[9:])
    ln_ys, _, _ = ref.lstm(
        oracle_params(ln), out["xs"], variant=ref.Variant(layer_norm=True, carry_normalised=True)
    )
    np.testing.assert_allclose(ln_ys, out["ln_ys"], rtol=0, atol=TOL)
    peep_ys, _, _ = ref.lstm(oracle_params(peep), out["ln_ys"], variant=ref.Variant(peepholes=True))
    np.testing.assert_allclose(peep_ys, out["peep_ys"], rtol=0, atol=TOL)
    addons_ln = ref.Variant(layer_norm=True, carry_normalised=True)
    fwd_ys, _, _ = ref.lstm(oracle_params(forward), out["peep_ys"], variant=addons_ln)
    bwd_ys, _, _ = ref.lstm(
        oracle_params(backward), out["peep_ys"], variant=addons_ln, reverse=True, keep_order=True
    )
    np.testing.assert_allclose(np.concatenate([fwd_ys, bwd_ys], -1), out["bi_ys"], rtol=0, atol=TOL)
