"""Bad input to the interop converters: a ValueError / TypeError naming the tensor or argument, the
expected and the found shape or dtype; nothing silently converted (integer weights made float by a
concatenation, a file whose tensors do not form valid params, directions or layers that do not fit)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams
from jaxlstm.interop import equinox as je
from jaxlstm.interop import flax as jf
from jaxlstm.interop import haiku as jh
from jaxlstm.interop import io as jio
from jaxlstm.interop import keras as jk
from jaxlstm.interop import keras_files as jkf
from jaxlstm.interop import torch as jt

I, H = 4, 3
P = jaxlstm.init(jax.random.key(0), I, H)
P5 = jaxlstm.init(jax.random.key(1), 5, H)  # another input size
HERE = os.path.join(os.path.dirname(__file__), "fixtures", "tf")


def z(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


def _match(*fragments: str) -> str:
    return ".*".join(re.escape(f) for f in fragments)


def check(case: tuple[type[Exception], tuple[str, ...], Callable[[], Any]]) -> None:
    exc, fragments, call = case
    with pytest.raises(exc, match=_match(*fragments)):
        call()


def _torch_sd(**changes: Any) -> dict[str, Any]:
    sd = {"weight_ih_l0": z(12, I), "weight_hh_l0": z(12, H), "bias_ih_l0": z(12), "bias_hh_l0": z(12)}
    sd.update(changes)
    return {k: v for k, v in sd.items() if v is not None}


LINEN = jf.to_linen(P)["params"]


def _linen(**changes: Any) -> dict[str, Any]:
    return {"params": {k: v for k, v in {**LINEN, **changes}.items() if v is not None}}


CASES = {
    # Keras get_weights() lists
    "keras int kernel": (
        TypeError,
        ("weights[0] (kernel)", "floating-point", "int32"),
        lambda: jk.from_keras_weights([z(I, 12, dtype=np.int32), z(H, 12), z(12)]),
    ),
    "keras complex kernel": (
        TypeError,
        ("weights[0] (kernel)", "floating-point", "complex64"),
        lambda: jk.from_keras_weights([z(I, 12, dtype=np.complex64), z(H, 12), z(12)]),
    ),
    "keras gate width": (
        ValueError,
        ("weights[0] (kernel)", "4 equal gate blocks", "[4, 10]"),
        lambda: jk.from_keras_weights([z(I, 10), z(H, 12), z(12)]),
    ),
    "keras recurrent width": (
        ValueError,
        ("weights[1] (recurrent_kernel)", "[3, 12]", "[3, 16]"),
        lambda: jk.from_keras_weights([z(I, 12), z(H, 16), z(12)]),
    ),
    "keras bias shape": (
        ValueError,
        ("weights[2] (bias)", "[12]", "[8]"),
        lambda: jk.from_keras_weights([z(I, 12), z(H, 12), z(8)]),
    ),
    "keras not a list": (TypeError, ("weights", "list of arrays", "int"), lambda: jk.from_keras_weights(5)),
    "keras count": (
        ValueError,
        ("weights", "6 arrays", "found 3"),
        lambda: jk.from_keras_weights([z(I, 12), z(H, 12), z(12)], bidirectional=True),
    ),
    "keras directions' input sizes": (
        ValueError,
        ("weights.backward.kernel", "[4, 4*units]", "[5, 8]"),
        lambda: jk.from_keras_weights(
            [z(I, 12), z(H, 12), z(12), z(5, 8), z(2, 8), z(8)], bidirectional=True
        ),
    ),
    "keras export bad params": (
        ValueError,
        ("params.bias", "[12]", "[8]"),
        lambda: jk.to_keras_weights(P._replace(bias=z(8))),
    ),
    "keras export directions": (
        ValueError,
        ("params.backward.kernel", "[4, 4*units]", "[5, 12]"),
        lambda: jk.to_keras_weights(BidirectionalParams(P, P5)),
    ),
    "keras export dict": (
        TypeError,
        ("params", "LSTMParams", "dict"),
        lambda: jk.to_keras_weights(P._asdict()),
    ),
    "keras not a layer": (
        TypeError,
        ("layer", "keras.layers.LSTM", "object"),
        lambda: jk.from_keras(object()),
    ),
    # PyTorch state_dicts
    "torch missing weight_hh": (
        ValueError,
        ("state_dict", "missing 'weight_hh_l0'", "['bias_hh_l0', 'bias_ih_l0', 'weight_ih_l0']"),
        lambda: jt.from_torch(_torch_sd(weight_hh_l0=None)),
    ),
    "torch int weight": (
        TypeError,
        ("weight_ih_l0", "floating-point", "int64"),
        lambda: jt.from_torch(_torch_sd(weight_ih_l0=z(12, I, dtype=np.int64))),
    ),
    "torch int bias (summed)": (
        TypeError,
        ("bias_hh_l0", "floating-point", "int32"),
        lambda: jt.from_torch(_torch_sd(bias_hh_l0=z(12, dtype=np.int32))),
    ),
    "torch complex weight": (
        TypeError,
        ("weight_hh_l0", "floating-point", "complex64"),
        lambda: jt.from_torch(_torch_sd(weight_hh_l0=z(12, H, dtype=np.complex64))),
    ),
    "torch gate width": (
        ValueError,
        ("weight_ih_l0", "4 equal gate blocks", "[10, 4]"),
        lambda: jt.from_torch(_torch_sd(weight_ih_l0=z(10, I))),
    ),
    "torch rank 3": (
        ValueError,
        ("weight_ih_l0", "rank-2", "[12, 4, 1]"),
        lambda: jt.from_torch(_torch_sd(weight_ih_l0=z(12, I, 1))),
    ),
    "torch bias shape": (
        ValueError,
        ("bias_hh_l0", "[12]", "[8]"),
        lambda: jt.from_torch(_torch_sd(bias_hh_l0=z(8))),
    ),
    "torch projection": (
        ValueError,
        ("weight_hr_l0", "[2, 3]", "[2, 5]"),
        lambda: jt.from_torch(_torch_sd(weight_hr_l0=z(2, 5), weight_hh_l0=z(12, 2))),
    ),
    "torch layer chain": (
        ValueError,
        ("weight_ih_l1", "[12, 3]", "[12, 5]"),
        lambda: jt.from_torch(_torch_sd(weight_ih_l1=z(12, 5), weight_hh_l1=z(12, H))),
    ),
    "torch not a mapping": (TypeError, ("state_dict", "mapping", "list"), lambda: jt.from_torch([1])),
    "torch cell int": (
        TypeError,
        ("weight_ih", "floating-point", "int32"),
        lambda: jt.from_torch_cell({"weight_ih": z(12, I, dtype=np.int32), "weight_hh": z(12, H)}),
    ),
    "torch export layer chain": (
        ValueError,
        ("params[1]", "input_size 3", "[5, 12]"),
        lambda: jt.to_torch((P, P5)),
    ),
    "torch export hidden sizes": (
        ValueError,
        ("params[0].backward", "one hidden_size", "units 3", "found 5"),
        lambda: jt.to_torch(BidirectionalParams(P, LSTMParams(z(I, 20), z(5, 20), z(20)))),
    ),
    "torch export directions": (
        ValueError,
        ("params[0].backward.kernel", "[4, 4*units]", "[5, 12]"),
        lambda: jt.to_torch(BidirectionalParams(P, P5)),
    ),
    "torch export bad params": (
        ValueError,
        ("params[0].recurrent_kernel", "[3, 12]", "[3, 16]"),
        lambda: jt.to_torch(P._replace(recurrent_kernel=z(H, 16))),
    ),
    "torch cell export projection": (
        ValueError,
        ("params", "no projection"),
        lambda: jt.to_torch_cell(P._replace(recurrent_kernel=z(2, 12), projection=z(H, 2))),
    ),
    # Flax linen
    "flax int kernel (one gate)": (
        TypeError,
        ("ii.kernel", "floating-point", "int32"),
        lambda: jf.from_linen(_linen(ii={"kernel": z(I, H, dtype=np.int32)})),
    ),
    "flax gate width": (
        ValueError,
        ("hf.kernel", "[3, 3]", "[3, 4]"),
        lambda: jf.from_linen(_linen(hf={"kernel": z(H, 4), "bias": z(H)})),
    ),
    "flax missing gate": (
        ValueError,
        ("variables", "missing hi.kernel", "found ['hf'"),
        lambda: jf.from_linen(_linen(hi=None)),
    ),
    "flax gate not a mapping": (
        TypeError,
        ("variables", "hi", "mapping", "int"),
        lambda: jf.from_linen(_linen(hi=3)),
    ),
    "flax not a mapping": (TypeError, ("variables", "mapping", "list"), lambda: jf.from_linen([1])),
    "flax export bad params": (
        ValueError,
        ("params.bias", "[12]", "[8]"),
        lambda: jf.to_linen(P._replace(bias=z(8))),
    ),
    "flax export directions": (
        ValueError,
        ("params.backward.kernel", "[4, 4*units]", "[5, 12]"),
        lambda: jf.to_linen(BidirectionalParams(P, P5)),
    ),
    "flax export not params": (
        TypeError,
        ("params", "LSTMParams", "dict"),
        lambda: jf.to_linen({"kernel": 1}),
    ),
    "flax nnx not a cell": (
        TypeError,
        ("cell", "flax.nnx.LSTMCell", "object"),
        lambda: jf.from_nnx(object()),
    ),
    # Haiku
    "haiku int w": (
        TypeError,
        ("lstm/linear.w", "floating-point", "int32"),
        lambda: jh.from_haiku({"lstm/linear": {"w": z(7, 12, dtype=np.int32), "b": z(12)}}),
    ),
    "haiku gate width": (
        ValueError,
        ("lstm/linear.w", "4 equal gate blocks", "[7, 10]"),
        lambda: jh.from_haiku({"lstm/linear": {"w": z(7, 10), "b": z(10)}}),
    ),
    "haiku missing b": (
        ValueError,
        ("params", "missing lstm/linear.b"),
        lambda: jh.from_haiku({"lstm/linear": {"w": z(7, 12)}}),
    ),
    "haiku missing w": (
        ValueError,
        ("params", "missing lstm/linear.w"),
        lambda: jh.from_haiku({"lstm/linear": {"b": z(12)}}),
    ),
    "haiku linear not a mapping": (
        TypeError,
        ("params", "lstm/linear", "mapping", "int"),
        lambda: jh.from_haiku({"lstm/linear": 3}),
    ),
    "haiku no input": (
        ValueError,
        ("lstm/linear.w", "[input_size + 3, 12]", "[3, 12]"),
        lambda: jh.from_haiku({"lstm/linear": {"w": z(3, 12), "b": z(12)}}),
    ),
    "haiku export int bias": (
        TypeError,
        ("params.bias", "floating-point", "int32"),
        lambda: jh.to_haiku(P._replace(bias=z(12, dtype=np.int32))),
    ),
    "haiku export gate width": (
        ValueError,
        ("params.recurrent_kernel", "[3, 12]", "[3, 16]"),
        lambda: jh.to_haiku(P._replace(recurrent_kernel=z(H, 16))),
    ),
    # Equinox (tensors are read from the cell: a stand-in object needs no equinox to build)
    "equinox export bad params": (
        ValueError,
        ("params.bias", "[12]", "[8]"),
        lambda: je.to_equinox(P._replace(bias=z(8))),
    ),
    "equinox export not params": (
        TypeError,
        ("params", "LSTMParams", "dict"),
        lambda: je.to_equinox({"kernel": 1}),
    ),
    # jaxlstm's own files
    "io save bad params": (
        ValueError,
        ("params.bias", "[12]", "[8]"),
        lambda: jio.save("/nonexistent/x.npz", P._replace(bias=z(8))),
    ),
    "io save stack entry": (
        TypeError,
        ("params[1]", "LSTMParams", "dict"),
        lambda: jio.save("/nonexistent/x.npz", (P, {"kernel": 1})),
    ),
    "io save directions": (
        ValueError,
        ("params.backward.kernel", "[4, 4*units]", "[5, 12]"),
        lambda: jio.save("/nonexistent/x.npz", BidirectionalParams(P, P5)),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_converter_input(case) -> None:
    check(case)


def test_missing_weights_are_key_and_value_errors() -> None:
    """A missing tensor is a KeyError (a missing mapping entry, as before) and a ValueError."""
    for call in (lambda: jf.from_linen(_linen(hi=None)), lambda: jt.from_torch(_torch_sd(weight_ih_l0=None))):
        with pytest.raises(KeyError):
            call()
        with pytest.raises(ValueError):
            call()


def test_equinox_int_weights_refused() -> None:
    eqx = require("equinox")
    cell = eqx.nn.LSTMCell(I, H, key=jax.random.key(0))
    bad = eqx.tree_at(lambda c: c.weight_ih, cell, np.zeros((12, I), np.int32))
    with pytest.raises(TypeError, match=_match("cell.weight_ih", "floating-point", "int32")):
        je.from_equinox(bad)


# ------------------------------------------------------------------------------------------------
# Files whose tensors do not form valid params are refused on load, naming the file and the tensor
# ------------------------------------------------------------------------------------------------

_HEADER = {
    "format": "jaxlstm",
    "version": 1,
    "params": {
        "layer": {
            "lstm": {
                "kernel": "kernel",
                "recurrent_kernel": "recurrent_kernel",
                "bias": "bias",
                "projection": None,
            }
        }
    },
    "dtypes": {},
    "config": {},
}


def _write_npz(path: Any, tensors: dict[str, np.ndarray], header: Any) -> Any:
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **tensors, __jaxlstm__=blob)
    return path


FILES = {
    "bias shape": (
        ValueError,
        ("bad.npz: params.bias", "[12]", "[8]"),
        {"kernel": z(I, 12), "recurrent_kernel": z(H, 12), "bias": z(8)},
        _HEADER,
    ),
    "int kernel": (
        TypeError,
        ("bad.npz: params.kernel", "floating-point", "int32"),
        {"kernel": z(I, 12, dtype=np.int32), "recurrent_kernel": z(H, 12), "bias": z(12)},
        _HEADER,
    ),
    "recurrent width": (
        ValueError,
        ("bad.npz: params.recurrent_kernel", "[3, 12]", "[3, 16]"),
        {"kernel": z(I, 12), "recurrent_kernel": z(H, 16), "bias": z(12)},
        _HEADER,
    ),
    "malformed structure": (
        ValueError,
        ("path", "bad.npz", "malformed jaxlstm structure"),
        {"kernel": z(I, 12)},
        {**_HEADER, "params": {"weird": 1}},
    ),
    "unknown dtype name": (
        ValueError,
        ("path", "bad.npz", "malformed", "nonsense"),
        {"kernel": z(I, 12), "recurrent_kernel": z(H, 12), "bias": z(12)},
        {**_HEADER, "dtypes": {"kernel": "nonsense"}},
    ),
    "header not an object": (
        ValueError,
        ("path", "bad.npz", "malformed __jaxlstm__ header", "list"),
        {},
        [1, 2],
    ),
}


@pytest.mark.parametrize("case", FILES.values(), ids=FILES.keys())
def test_io_load_refuses_invalid_contents(case, tmp_path) -> None:
    exc, fragments, tensors, header = case
    path = _write_npz(tmp_path / "bad.npz", tensors, header)
    with pytest.raises(exc, match=_match(*fragments)):
        jio.load(path)


def test_io_load_refuses_a_stack_with_a_bad_layer(tmp_path) -> None:
    path = tmp_path / "stack.npz"
    jio.save(path, (P, LSTMParams(z(H, 12), z(H, 12), z(12))))
    with np.load(path) as f:
        tensors = {k: f[k] for k in f.files}
    tensors["1.bias"] = z(8)
    _write_npz(
        path,
        {k: v for k, v in tensors.items() if k != "__jaxlstm__"},
        json.loads(tensors["__jaxlstm__"].tobytes()),
    )
    with pytest.raises(ValueError, match=_match("stack.npz: params[1].bias", "[12]", "[8]")):
        jio.load(path)


def test_keras_file_with_integer_weights_is_refused(tmp_path) -> None:
    h5py = require("h5py")
    bad = tmp_path / "int.weights.h5"
    shutil.copy(os.path.join(HERE, "seed_keras3.weights.h5"), bad)
    with h5py.File(bad, "r+") as f:
        shape = f["layers/lstm/cell/vars/0"].shape
        del f["layers/lstm/cell/vars/0"]
        f["layers/lstm/cell/vars/0"] = np.zeros(shape, np.int32)
    with pytest.raises(
        TypeError, match=_match("layers/lstm/cell/vars/0 (kernel)", "floating-point", "int32")
    ):
        jkf.load_layer(bad, "seed_lstm")
