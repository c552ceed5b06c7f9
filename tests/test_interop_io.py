"""jaxlstm's own format: bit-exact round trips, config beside the weights, no pickle."""

from __future__ import annotations

import pickle
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

from jaxlstm import BidirectionalParams, LSTMParams
from jaxlstm.interop import io as jio


def _params(rng, i, h, p=None, bias=True, dtype=np.float32):
    out = p or h
    return LSTMParams(
        rng.normal(size=(i, 4 * h)).astype(dtype),
        rng.normal(size=(out, 4 * h)).astype(dtype),
        rng.normal(size=(4 * h,)).astype(dtype) if bias else None,
        rng.normal(size=(h, p)).astype(dtype) if p else None,
    )


def _same(a, b):
    """Bit-identical pytrees (None where None, same dtype, same bytes)."""
    if isinstance(a, (LSTMParams, BidirectionalParams, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif a is None:
        assert b is None
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_round_trip_is_bit_exact(tmp_path, ext):
    if ext == "safetensors":
        require("safetensors")
    rng = np.random.default_rng(0)
    cases = {
        "layer": _params(rng, 4, 3),
        "bidirectional": BidirectionalParams(_params(rng, 4, 3, bias=False), _params(rng, 4, 3, p=2)),
        "stack": (
            BidirectionalParams(_params(rng, 4, 3), _params(rng, 4, 3)),
            _params(rng, 6, 2, dtype=np.float64),
            _params(rng, 2, 2, dtype=np.float16),
            _params(rng, 2, 2, dtype=jnp.bfloat16),
        ),
    }
    config = {"activation": "tanh", "return_sequences": True, "units": [3, 2, 2]}
    for name, params in cases.items():
        path = tmp_path / f"{name}.{ext}"
        jio.save(path, params, config=config)
        loaded, cfg = jio.load(path)
        _same(loaded, params)
        assert cfg == config


def test_npz_is_loaded_without_pickle_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "p.npz"
    jio.save(path, _params(np.random.default_rng(1), 2, 2))
    with zipfile.ZipFile(path) as z:  # plain .npy members, no pickled objects
        assert all(n.endswith(".npy") for n in z.namelist())
    objects = tmp_path / "objects.npz"
    np.savez(objects, __jaxlstm__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable pickle-free .npz"):
        jio.load(objects)
    plain = tmp_path / "plain.npz"
    np.savez(plain, kernel=np.zeros((2, 8)))
    with pytest.raises(ValueError, match="not written by jaxlstm"):
        jio.load(plain)
    disguised = tmp_path / "p2.npz"
    disguised.write_bytes(pickle.dumps({"kernel": 1}))
    with pytest.raises(ValueError, match="not a readable pickle-free .npz"):
        jio.load(disguised)
    with pytest.raises(ValueError, match="expected a name ending in .safetensors or .npz"):
        jio.save(tmp_path / "p.pt", _params(np.random.default_rng(1), 2, 2))
    with pytest.raises(TypeError, match="config: must be JSON-serialisable"):
        jio.save(path, _params(np.random.default_rng(1), 2, 2), config={"f": np.tanh})
    with pytest.raises(ValueError, match=r"params.recurrent_kernel: expected shape"):
        jio.save(path, LSTMParams(np.zeros((2, 8), np.float32), np.zeros((3, 8), np.float32)))


def test_truncated_safetensors_is_refused(tmp_path):
    require("safetensors")
    path = tmp_path / "p.safetensors"
    jio.save(path, _params(np.random.default_rng(2), 4, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        jio.load(path)


def test_importing_interop_loads_no_peer():
    import subprocess
    import sys

    code = (
        "import sys, jaxlstm; jaxlstm.interop.torch, jaxlstm.interop.keras_files, jaxlstm.interop.keras; "
        "import jaxlstm.interop.flax, jaxlstm.interop.equinox, jaxlstm.interop.haiku, jaxlstm.interop.io; "
        "peers = ['torch', 'keras', 'tensorflow', 'h5py', 'equinox', 'haiku', 'safetensors', 'flax']; "
        "print([p for p in peers if p in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_loader_raises_the_exported_invalid_file_error(tmp_path):
    """``jaxlstm.interop.InvalidFileError`` is what each loader raises for a truncated file."""
    import jaxlstm.interop
    from jaxlstm import checkpoint

    assert "InvalidFileError" in jaxlstm.interop.__all__ and issubclass(
        jaxlstm.interop.InvalidFileError, ValueError
    )
    params = _params(np.random.default_rng(3), 4, 3)
    jio.save(tmp_path / "p.npz", params)
    checkpoint.save(tmp_path / "c.npz", (0, params))
    loaders = {"p.npz": jio.load, "c.npz": lambda p: checkpoint.restore(p, (0, params))}
    for name, load in loaders.items():
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(jaxlstm.interop.InvalidFileError, match=name):
            load(path)
    # the loaders' own modules re-export the same class
    from jaxlstm.interop import keras_files, torch

    assert keras_files.InvalidFileError is torch.InvalidFileError is jaxlstm.interop.InvalidFileError
    assert checkpoint.InvalidFileError is jio.InvalidFileError is jaxlstm.interop.InvalidFileError
