"""jaxlstm's own file format: lossless, pickle-free, with the config beside the weights.

One file holds the tensors and a JSON description of the params' structure (LSTMParams,
BidirectionalParams or a stack of them) plus any JSON config you pass (units, activations, ...):

* ``.safetensors``: safetensors tensors; the JSON lives in the header's metadata.
* ``.npz``: ``numpy.savez`` of the tensors; the JSON is a uint8 array named ``__jaxlstm__``. Read
  without pickle (object arrays are refused), so nothing in a file can execute code.

Arrays come back bit-identical, dtype and all (bfloat16 and other ml_dtypes included: stored as
raw bits, their dtype named in the header).

Tensor names are the fields' paths: ``kernel``, ``0.forward.bias`` (a stack's first layer),
``layer_norm.x_gain``, ``peepholes.f``; the structure in the header lists each ``LSTMParams`` as
``{"kernel": name, ..., "projection": name or null, "layer_norm": {"x_gain": name, ...} or null,
"peepholes": {"i": name or null, "f": name, "o": name} or null}``. This is format version 2;
``load`` also reads version 1 (written before ``layer_norm`` and ``peepholes`` existed), whose
params come back with both ``None``.

The options a variant's weights are meant with (``layer_norm_epsilon``, ``layer_norm_carry`` of
``jaxlstm.lstm``) are not weights: keep them in ``config``, e.g. ``config={"layer_norm_epsilon":
1e-3, "layer_norm_carry": "normalised"}`` for weights converted from TF Addons.

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

from .._safe_files import InvalidFileError, check_safetensors, load_json_object, read_npz, reading, refuse
from ..core.pytrees import BidirectionalParams, LayerNormParams, LSTMParams, PeepholeParams
from ._arrays import layer_params, lstm_params, numpy

__all__ = ["save", "load", "InvalidFileError"]

FORMAT = "jaxlstm"
VERSION = 2
_META = "__jaxlstm__"
# The LSTMParams fields each format version lists: version 1 predates layer_norm and peepholes
# (read with both None); version 2 lists all six.
_FIELDS = {1: LSTMParams._fields[:4], 2: LSTMParams._fields}
# Fields that hold a NamedTuple of tensors, stored as one tensor per sub-field.
_NESTED = {"layer_norm": LayerNormParams, "peepholes": PeepholeParams}
# The entries a structure may leave null; every other one names a tensor.
_MAY_BE_NULL = frozenset({"bias", "projection", "peepholes.i"})


def _label(prefix: str) -> str:
    """A tensor-name prefix as the argument it came from: "0.forward." -> "params[0].forward"."""
    parts = [p for p in prefix.split(".") if p]
    return "params" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)


def _describe(params: Any, tensors: dict[str, np.ndarray]) -> Any:
    def store(value: Any, name: str) -> Optional[str]:
        if value is None:
            return None
        tensors[name] = np.ascontiguousarray(numpy(value, name))
        return name

    def one(p: LSTMParams, prefix: str) -> dict[str, Any]:
        p = lstm_params(p, _label(prefix))
        names: dict[str, Any] = {}
        for field in p._fields:
            value = getattr(p, field)
            if field in _NESTED and value is not None:  # layer_norm / peepholes: one tensor per field
                names[field] = {
                    sub: store(getattr(value, sub), f"{prefix}{field}.{sub}") for sub in value._fields
                }
            else:
                names[field] = store(value, prefix + field)
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


def _rebuild(structure: Any, tensors: dict[str, np.ndarray], version: int) -> Any:
    fields = _FIELDS[version]

    def tensor(names: dict[str, Any], field: str, where: str) -> Optional[np.ndarray]:
        name = names[field]
        if name is None:
            if where not in _MAY_BE_NULL:
                raise ValueError(f"file: malformed jaxlstm structure, {where} is null (a tensor is required)")
            return None
        if not isinstance(name, str):
            raise ValueError(
                f"file: malformed jaxlstm structure, {where} is a {type(name).__name__}, not a tensor name"
            )
        if name not in tensors:
            raise ValueError(f"file: tensor {name!r} listed in the structure is missing")
        return tensors[name]  # numpy: jnp would drop float64 without x64

    def record(names: Any, expected: tuple[str, ...], where: str) -> dict[str, Any]:
        if not isinstance(names, dict) or set(names) != set(expected):
            found = sorted(map(str, names))[:10] if isinstance(names, dict) else type(names).__name__
            raise ValueError(
                f"file: malformed jaxlstm structure, {where} must have the fields {list(expected)}, found {found}"
            )
        return names

    def one(names: Any) -> LSTMParams:
        names = record(names, fields, "an LSTMParams entry")
        values: dict[str, Any] = {}
        for field in fields:
            cls = _NESTED.get(field)
            if cls is None:
                values[field] = tensor(names, field, field)
            elif names[field] is not None:
                sub = record(names[field], cls._fields, field)
                values[field] = cls(**{k: tensor(sub, k, f"{field}.{k}") for k in cls._fields})
        return LSTMParams(**values)

    def layer(d: dict[str, Any]) -> Any:
        if "lstm" in d:
            return one(d["lstm"])
        return BidirectionalParams(one(d["forward"]), one(d["backward"]))

    if "layer" in structure:
        return layer(structure["layer"])
    return tuple(layer(d) for d in structure["stack"])


def save(path: str | os.PathLike, params: Any, config: Optional[dict[str, Any]] = None) -> None:
    """Write ``params`` (one layer or a stack, variants included) and a JSON-serialisable ``config``
    to ``path``, as format version 2.

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
    """Read a file written by ``save`` (format version 1 or 2): returns ``(params, config)``.

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
    version = header.get("version")
    if header.get("format") != FORMAT or type(version) is not int or version not in _FIELDS:
        refuse(
            path,
            f"has format {str(header.get('format'))[:100]!r} version {repr(version)[:100]}, "
            f"expected {FORMAT!r} version {' or '.join(map(str, _FIELDS))}",
        )
    try:
        for k, name in header.get("dtypes", {}).items():
            if k in tensors and tensors[k].dtype.name != name:
                tensors[k] = tensors[k].view(_dtype(name))  # bfloat16 & co. were stored as raw bits
        params = _rebuild(header["params"], tensors, version)
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
