"""Lossless checkpoints of any pytree of arrays (params, optax state, step) in one ``.npz`` file.

    save(path, tree)          write every leaf, bit for bit, plus JSON metadata (paths, shapes, dtypes)
    restore(path, like)       read it back into the structure of ``like`` (a pytree or its eval_shape)

Why not pickle: loading a pickle runs code from the file. Here the file holds only raw arrays
(``allow_pickle=False`` on both sides) and a JSON string; the structure comes from ``like``, the
caller's own template, and is checked against what was saved: the leaf paths (``jax.tree_util.keystr``),
shapes and dtypes must match, or ``restore`` raises a ``ValueError`` naming the first difference.
A checkpoint saved before ``LSTMParams`` gained its ``layer_norm`` and ``peepholes`` fields (when it
had four) restores into today's plain ``LSTMParams``: its leaves are the same, only its recorded
structure lacks the two trailing ``None`` children.

Dtypes numpy cannot name in a ``.npz`` (bfloat16, float8...) are stored as same-width unsigned
integers and viewed back, so nothing is rounded. Typed PRNG keys (``jax.random.key``) are stored as
their key data and rewrapped with their implementation. Python scalars (a step counter ``7``, a
learning rate ``1e-3``, a flag ``True``) are stored as 0-d ``int64`` / ``float64`` / ``bool`` arrays
and come back as the same Python type and value: int64 and float64 hold every Python float and every
int that fits in 64 bits exactly, whatever ``jax_enable_x64`` says (converting through jax first
would round them to int32 / float32); an int outside int64 is refused. Writes go to a temporary file that is then
renamed over ``path``, so a run killed mid-save leaves the previous checkpoint intact.

A file ``restore`` cannot read (truncated, corrupt or crafted: sizes it does not hold, pickled object
arrays, metadata over 4 MiB of JSON or nested over 100 levels) raises ``InvalidFileError``, a
``ValueError`` naming the file, before anything it claims is allocated.
"""

from __future__ import annotations

import collections
import json
import math
import os
import tempfile
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from ._safe_files import InvalidFileError, load_json_object, read_npz, reading, refuse
from .core.pytrees import LSTMParams

__all__ = ["save", "restore", "InvalidFileError"]

T = TypeVar("T")

_FORMAT = "jaxlstm.checkpoint/1"
_META = "__metadata__"
# dtypes np.load reads back as themselves; anything else is stored as raw unsigned ints of its width.
_NATIVE_KINDS = "biuf"
# Python scalar type -> the dtype it is stored as (see the module docstring for why these).
_PYTHON_DTYPES = {"bool": np.dtype(bool), "int": np.dtype(np.int64), "float": np.dtype(np.float64)}
# LSTMParams as it was before the layer_norm and peepholes fields: the same name, so that its treedef
# prints as the checkpoints saved then recorded it.
_LSTMParams4 = collections.namedtuple("LSTMParams", LSTMParams._fields[:4])


def _four_field_treedef(tree: Any) -> str:
    """``str(treedef)`` of ``tree`` as a checkpoint saved before the two fields records it: every
    ``LSTMParams`` without ``layer_norm`` and ``peepholes`` as the four-field tuple (same leaves)."""

    def old(x: Any) -> Any:
        if isinstance(x, LSTMParams) and x.layer_norm is None and x.peepholes is None:
            return _LSTMParams4(*x[:4])
        return x

    is_params = lambda x: isinstance(x, LSTMParams)
    return str(jax.tree_util.tree_structure(jax.tree_util.tree_map(old, tree, is_leaf=is_params)))


def _paths_and_leaves(tree: Any) -> tuple[list[str], list[Any], Any]:
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in with_paths], [leaf for _, leaf in with_paths], treedef


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _python_scalar(leaf: Any) -> str | None:
    """``"bool"`` / ``"int"`` / ``"float"`` for a Python scalar leaf (bool first: it is an int)."""
    for name in _PYTHON_DTYPES:
        if type(leaf) is {"bool": bool, "int": int, "float": float}[name]:
            return name
    return None


def save(path: str | os.PathLike, tree: Any) -> None:
    """Write ``tree`` (a pytree of arrays and scalars) to ``path`` (an ``.npz`` file), losslessly.

    ``save(path, (step, params, opt_state))`` with a Python int ``step`` works: Python ``int``,
    ``float`` and ``bool`` leaves are stored as 0-d ``int64``, ``float64`` and ``bool`` (exact for
    every float and every int in the int64 range, whatever ``jax_enable_x64`` says) and restored as
    the same Python type.

    Arrays are gathered to the host (``jax.device_get``); under multi-host sharding call it from
    every process on fully replicated state, or from one process after gathering.

    Raises:
        TypeError: a leaf is neither an array nor a scalar, or a Python int outside int64 (the
            message names the leaf).
    """
    paths, leaves, treedef = _paths_and_leaves(tree)
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, (name, leaf) in enumerate(zip(paths, leaves)):
        entry: dict[str, Any] = {"path": name}
        if _is_key(leaf):
            entry["key_impl"] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        python = _python_scalar(leaf)
        if python is not None:
            entry["python"] = python
            if python == "int" and not -(2**63) <= leaf < 2**63:
                raise TypeError(f"tree{name}: the Python int {leaf} does not fit in int64, which stores it")
            leaf = np.asarray(leaf, _PYTHON_DTYPES[python])
        if not hasattr(leaf, "dtype"):
            raise TypeError(
                f"tree{name}: expected an array, a numpy/jax scalar or a Python int / float / bool, "
                f"found {type(leaf).__name__}"
            )
        array = np.asarray(jax.device_get(leaf))
        entry["dtype"], entry["shape"] = array.dtype.name, list(array.shape)
        if array.dtype.kind not in _NATIVE_KINDS:
            # bfloat16 & co.: numpy's npz would write an anonymous void dtype; keep the bits instead.
            array = array.view(np.dtype(f"u{array.dtype.itemsize}"))
        arrays[f"leaf_{i}"] = array
        entries.append(entry)
    metadata = {"format": _FORMAT, "treedef": str(treedef), "leaves": entries}
    arrays[_META] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            # The keys are leaf_<i> and _META, never savez's own allow_pickle keyword.
            np.savez(f, **arrays)  # pyright: ignore[reportArgumentType]
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def restore(path: str | os.PathLike, like: T) -> T:
    """Read the checkpoint at ``path`` into the structure of ``like``.

    Args:
        path: a file written by ``save``.
        like: a pytree with the saved structure; its leaves may be arrays or ``jax.ShapeDtypeStruct``
            (e.g. ``jax.eval_shape(make_state)``), and only their shapes and dtypes are used. A plain
            ``LSTMParams`` in it also matches one saved before the ``layer_norm`` / ``peepholes``
            fields existed.

    Returns:
        A pytree like ``like`` whose leaves are bit-identical to the saved ones: ``jax.Array`` on the
        default device, or ``np.ndarray`` where ``like`` has a numpy leaf (so an int64 stays int64);
        a saved Python scalar comes back as the same Python type and value. Its template may be a
        Python scalar of that type, or the weakly typed ``ShapeDtypeStruct`` ``jax.eval_shape``
        makes of one (any dtype of the same kind: ``eval_shape`` says int32 for an int).
        Place them with ``jaxlstm.sharding.replicate`` (or ``jax.device_put``) for sharded runs.

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            not a jaxlstm checkpoint, or truncated, corrupt or crafted.
        ValueError: its leaf paths, shapes or dtypes differ from ``like`` (the message names the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    with reading(path, "jaxlstm checkpoint"):
        treedef_text, entries, arrays = _read(path)
    where = f"path: {path!r}: "

    paths, templates, treedef = _paths_and_leaves(like)
    saved_paths = [e["path"] for e in entries]
    same = treedef_text == str(treedef) or treedef_text == _four_field_treedef(like)
    if saved_paths != paths or not same:
        missing = ", ".join(p for p in paths if p not in saved_paths) or "none"
        extra = ", ".join(p for p in saved_paths if p not in paths) or "none"
        detail = f"leaves only in like: {missing}; only in the checkpoint: {extra}"
        if missing == extra == "none":  # same leaves, different containers or order
            detail = f"checkpoint {treedef_text[:1000]}, like {treedef}"
        raise ValueError(f"{where}like: its structure differs from the checkpoint's ({detail})")

    leaves = []
    for entry, template, array in zip(entries, templates, arrays):
        name, dtype = entry["path"], array.dtype
        shape = array.shape
        if "key_impl" in entry:
            # Key data has trailing axes (2 for threefry) that the key array itself hides.
            shape = shape[: len(shape) - entry["key_ndim"]]
        if tuple(np.shape(template)) != shape:
            raise ValueError(
                f"{where}like{name}: expected shape {list(np.shape(template))} (from like), "
                f"the checkpoint has {list(shape)}"
            )
        want = getattr(template, "dtype", None)
        if "python" in entry:
            kind, found = _python_scalar(template), f"a Python {entry['python']}"
            if kind is not None:
                matches, want = kind == entry["python"], f"a Python {kind}"
            else:  # an eval_shape template: a weakly typed scalar of the same kind (bools are not weak)
                weak = bool(getattr(template, "weak_type", False)) or entry["python"] == "bool"
                matches = want is None or (weak and _same_kind(want, entry["python"]))
        elif "key_impl" in entry:
            found, matches = f"key<{entry['key_impl']}>", want is None or _is_key(template)
        else:
            found = dtype.name
            matches = want is None or (not _is_key(template) and jax.numpy.dtype(want) == dtype)
        if not matches:
            raise ValueError(
                f"{where}like{name}: expected dtype {want} (from like), the checkpoint has {found}"
            )
        if "python" in entry:
            leaves.append({"bool": bool, "int": int, "float": float}[entry["python"]](array.item()))
        elif isinstance(template, (np.ndarray, np.generic)):
            leaves.append(array)  # numpy in, numpy out: no silent int64 -> int32 on the way
        elif "key_impl" in entry:
            leaves.append(jax.random.wrap_key_data(jax.numpy.asarray(array), impl=entry["key_impl"]))
        else:
            leaves.append(jax.numpy.asarray(array))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _same_kind(dtype: Any, python: str) -> bool:
    """Whether ``dtype`` (of a weakly typed template scalar) can stand for a saved Python scalar."""
    if dtype is None:
        return False
    kind = np.dtype(dtype).kind
    return {"bool": kind == "b", "int": kind in "iu", "float": kind == "f"}[python]


def _read(path: str) -> tuple[str, list[dict[str, Any]], list[np.ndarray]]:
    """The saved treedef (its text), the leaves' metadata entries and their arrays (dtype and shape
    restored), after checking that the file's metadata and arrays agree."""
    data = read_npz(path, "jaxlstm checkpoint")
    if _META not in data:
        refuse(path, "is not a jaxlstm checkpoint (no metadata)")
    metadata = load_json_object(data[_META].tobytes(), path, "checkpoint metadata")
    if metadata.get("format") != _FORMAT:
        refuse(
            path,
            f"is not a jaxlstm checkpoint: expected format {_FORMAT!r}, found {str(metadata.get('format'))[:100]!r}",
        )
    entries, treedef = metadata.get("leaves"), metadata.get("treedef")
    if not isinstance(entries, list) or not isinstance(treedef, str):
        refuse(path, "has malformed checkpoint metadata (leaves must be a list, treedef a string)")
    arrays = []
    for i, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in entry["shape"])
            and isinstance(entry.get("key_impl", ""), str)
            and isinstance(entry.get("python", "int"), str)
            and entry.get("python", "int") in _PYTHON_DTYPES
            and not ("python" in entry and ("key_impl" in entry or entry["shape"] != []))
        ):
            refuse(path, f"has malformed checkpoint metadata for leaf {i}: {str(entry)[:200]}")
        if f"leaf_{i}" not in data:
            refuse(path, f"lists leaf {i} ({entry['path'][:200]}) but holds no array leaf_{i}")
        dtype = np.dtype(jax.numpy.dtype(entry["dtype"]))
        if dtype.hasobject or dtype.kind not in _NATIVE_KINDS + "cV" or dtype.fields is not None:
            refuse(path, f"has leaf {i} of dtype {entry['dtype']!r} (numeric arrays only)")
        if "python" in entry and dtype != _PYTHON_DTYPES[entry["python"]]:
            refuse(path, f"has leaf {i} marked a Python {entry['python']} with dtype {dtype}")
        array = data[f"leaf_{i}"]
        if array.dtype != dtype:
            if array.dtype.kind != "u" or array.dtype.itemsize != dtype.itemsize:
                refuse(path, f"has leaf {i} stored as {array.dtype}, which does not hold {dtype}")
            array = array.view(dtype)  # stored as raw unsigned ints of the same width
        if array.size != math.prod(entry["shape"]):
            refuse(
                path, f"has leaf {i} of {array.size} elements, its metadata says shape {entry['shape'][:10]}"
            )
        array = array.reshape(entry["shape"])
        if "key_impl" in entry:
            # the impl is looked up by name among jax's registered PRNG implementations
            entry["key_ndim"] = jax.random.key_data(jax.random.key(0, impl=entry["key_impl"])).ndim
        arrays.append(array)
    return treedef, entries, arrays
