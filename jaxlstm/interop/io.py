"""jaxlstm's own file format: lossless, pickle-free, with the config beside the weights.

One file holds the tensors and a JSON description of the params' structure (LSTMParams,
BidirectionalParams or a stack of them) plus any JSON config you pass (units, activations, ...):

* ``.safetensors``: safetensors tensors; the JSON lives in the header's metadata.
* ``.npz``: ``numpy.savez`` of the tensors; the JSON is a uint8 array named ``__jaxlstm__``. Read
  without pickle (object arrays are refused), so nothing in a file can execute code.

Arrays come back bit-identical, dtype and all (bfloat16 and other ml_dtypes included: stored as
raw bits, their dtype named in the header).

    save("model.safetensors", params, config={"activation": "tanh"})
    params, config = load("model.safetensors")

A file ``load`` cannot use (truncated, corrupt, crafted, or not written by ``save``) raises
``InvalidFileError``, a ``ValueError`` naming the file; the header is limited to 4 MiB of JSON
nested at most 100 levels.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np

from ..pytrees import BidirectionalParams, LSTMParams
from ._arrays import layer_params, lstm_params, numpy
from ._safe_files import InvalidFileError, check_safetensors, load_json_object, read_npz, reading, refuse

__all__ = ["save", "load", "InvalidFileError"]

FORMAT = "jaxlstm"
VERSION = 1
_META = "__jaxlstm__"


def _label(prefix: str) -> str:
    """A tensor-name prefix as the argument it came from: "0.forward." -> "params[0].forward"."""
    parts = [p for p in prefix.split(".") if p]
    return "params" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)


def _describe(params: Any, tensors: dict[str, np.ndarray]) -> Any:
    def one(p: LSTMParams, prefix: str) -> dict[str, Optional[str]]:
        p = lstm_params(p, _label(prefix))
        names: dict[str, Optional[str]] = {}
        for field in p._fields:
            value = getattr(p, field)
            if value is None:
                names[field] = None
            else:
                names[field] = prefix + field
                tensors[prefix + field] = np.ascontiguousarray(numpy(value, prefix + field))
        return names

    def layer(p: Any, prefix: str) -> dict[str, Any]:
        if isinstance(p, BidirectionalParams):
            layer_params(p, _label(prefix))
            return {
                "forward": one(p.forward, prefix + "forward."),
                "backward": one(p.backward, prefix + "backward."),
            }
        return {"lstm": one(p, prefix)}

    if isinstance(params, (LSTMParams, BidirectionalParams)):
        return {"layer": layer(params, "")}
    if isinstance(params, (tuple, list)) and params:
        return {"stack": [layer(p, f"{k}.") for k, p in enumerate(params)]}
    raise TypeError(
        f"params: expected LSTMParams, BidirectionalParams or a non-empty tuple of them, found {type(params).__name__}"
    )


def _storable(a: np.ndarray) -> np.ndarray:
    """Dtypes numpy does not know natively (bfloat16, float8 from ml_dtypes) are stored as their raw
    bits (unsigned ints of the same width); the dtype name in the header restores them exactly."""
    if a.dtype.type.__module__ == "numpy" or a.dtype.kind not in "fV":
        return a
    return a.view(np.dtype(f"uint{8 * a.dtype.itemsize}"))


def _dtype(name: Any) -> np.dtype:
    import jax.numpy as jnp  # knows the ml_dtypes names (bfloat16, float8_*)

    if not isinstance(name, str):
        raise ValueError(f"dtype name {name!r} is not a string")
    dtype = np.dtype(jnp.dtype(name))
    if dtype.hasobject or dtype.kind not in "biufcV" or dtype.fields is not None:
        raise ValueError(f"dtype {name!r} is not a numeric dtype")
    return dtype


def _rebuild(structure: Any, tensors: dict[str, np.ndarray]) -> Any:
    def one(names: dict[str, Optional[str]]) -> LSTMParams:
        if set(names) != set(LSTMParams._fields):
            raise ValueError(f"file: malformed jaxlstm structure, fields {sorted(map(str, names))[:10]}")
        values = {}
        for field, name in names.items():
            if name is None:
                values[field] = None
            elif name not in tensors:
                raise ValueError(f"file: tensor {name!r} listed in the structure is missing")
            else:
                values[field] = tensors[name]  # numpy: jnp would drop float64 without x64
        return LSTMParams(**values)

    def layer(d: dict[str, Any]) -> Any:
        if "lstm" in d:
            return one(d["lstm"])
        return BidirectionalParams(one(d["forward"]), one(d["backward"]))

    if "layer" in structure:
        return layer(structure["layer"])
    return tuple(layer(d) for d in structure["stack"])


def save(path: str | os.PathLike, params: Any, config: Optional[dict[str, Any]] = None) -> None:
    """Write ``params`` (one layer or a stack) and a JSON-serialisable ``config`` to ``path``.

    The format follows the extension: ``.safetensors`` or ``.npz``.
    """
    path = os.fspath(path)
    tensors: dict[str, np.ndarray] = {}
    structure = _describe(params, tensors)
    dtypes = {k: a.dtype.name for k, a in tensors.items()}
    tensors = {k: _storable(a) for k, a in tensors.items()}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "params": structure,
        "dtypes": dtypes,
        "config": config or {},
    }
    try:
        text = json.dumps(header)
    except TypeError as exc:
        raise TypeError(f"config: must be JSON-serialisable: {exc}") from None
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file

        save_file(tensors, path, metadata={_META: text})
    elif path.endswith(".npz"):
        blob = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as f:
            # The keys are LSTMParams field paths and _META, never savez's own allow_pickle keyword.
            np.savez(f, **tensors, **{_META: blob})  # pyright: ignore[reportArgumentType]
    else:
        raise ValueError(f"path: expected a name ending in .safetensors or .npz, found {path!r}")


def load(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a file written by ``save``: returns ``(params, config)``.

    The params hold numpy arrays, bit-identical to the saved ones (dtype included; converting to jax
    arrays would silently turn float64 into float32 unless x64 is enabled).

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not one ``save`` wrote, or is truncated, corrupt or crafted, or its tensors
            do not form valid params.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    if path.endswith(".safetensors"):
        what = "safetensors file"
    elif path.endswith(".npz"):
        what = "pickle-free .npz file"
    else:
        raise ValueError(f"path: expected a name ending in .safetensors or .npz, found {path!r}")
    with reading(path, what):
        return _load(path, what)


def _load(path: str, what: str) -> tuple[Any, dict[str, Any]]:
    if what == "safetensors file":
        from safetensors import safe_open

        check_safetensors(path)
        with safe_open(path, framework="numpy") as f:
            text = (f.metadata() or {}).get(_META)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    else:
        tensors = read_npz(path, what)
        blob = tensors.pop(_META, None)
        text = None if blob is None else blob.tobytes()
    if text is None:
        refuse(path, f"was not written by jaxlstm.interop.io.save (no {_META} header)")
    header = load_json_object(text, path, f"{_META} header")
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        refuse(
            path,
            f"has format {str(header.get('format'))[:100]!r} version {str(header.get('version'))[:100]!r}, "
            f"expected {FORMAT!r} version {VERSION}",
        )
    try:
        for k, name in header.get("dtypes", {}).items():
            if k in tensors and tensors[k].dtype.name != name:
                tensors[k] = tensors[k].view(_dtype(name))  # bfloat16 & co. were stored as raw bits
        params = _rebuild(header["params"], tensors)
        config = header["config"]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidFileError(
            f"path: {path!r} has a malformed jaxlstm structure ({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc
    # The tensors must make valid params: a hand-edited or foreign file must not load silently.
    label = f"{path}: params"
    single = isinstance(params, (LSTMParams, BidirectionalParams))
    for k, layer in enumerate((params,) if single else params):
        layer_params(layer, label if single else f"{label}[{k}]")
    return params, config
