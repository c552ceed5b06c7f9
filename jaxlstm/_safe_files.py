"""Guards every file loader shares, so that a corrupt, truncated or crafted file ends in one clear error.

The loaders (``interop.keras_files``, ``interop.io``, ``interop.torch.load_torch_file``,
``checkpoint.restore``) read zips (``.keras``, ``.npz``, torch's ``.pt``), ``.npy`` members, HDF5,
safetensors headers and JSON. A hostile file can claim sizes it does not hold (a header saying
terabytes), nest JSON thousands deep, point outside itself (HDF5 external links, zip names with
``..``) or carry a pickle. The rules here check every claim against what the file really holds
*before* anything is allocated or followed, and turn whatever a parser raises into
``InvalidFileError`` naming the file (the parser's exception is chained as its cause).

Limits (module constants, documented in the loaders):

* ``MAX_METADATA_BYTES``: 4 MiB for any JSON or text a file carries (a Keras config, jaxlstm's
  own header, a safetensors header, HDF5 name lists); parsing JSON costs up to about 25 bytes of
  memory per byte of text, so this keeps a worst-case config near 100 MB.
* ``MAX_JSON_DEPTH``: 100 levels of nesting (a Keras config of nested models uses about four per model).
* ``MAX_INFLATED_BYTES``: 64 MiB for one *compressed* zip member. Uncompressed (stored) members are
  bounded by the file's own size; numpy.savez, torch.save and Keras store their members uncompressed.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from typing import Any, NoReturn

import numpy as np

MAX_METADATA_BYTES = 4 << 20
MAX_JSON_DEPTH = 100
MAX_INFLATED_BYTES = 64 << 20
# Deflate cannot compress better than about 1032:1; a member claiming more lies about its size.
_DEFLATE_MAX_RATIO = 1032
_NPY_MAX_HEADER = 1 << 16


class InvalidFileError(ValueError):
    """A file a loader cannot use: truncated, corrupt, crafted, or not the format it claims.

    Its message starts with ``path: '<the path>'``; the exception a parser raised, if any, is its
    ``__cause__``. Raised by ``interop.keras_files``, ``interop.io.load``,
    ``interop.torch.load_torch_file`` and ``checkpoint.restore``. Where the problem is a wrong type
    (a weight stored as int32 where floats are required), the error is also a ``TypeError``, which
    these loaders raised for it before.
    """


class _InvalidFileTypeError(InvalidFileError, TypeError):
    """``InvalidFileError`` for a wrong type inside a file (see there)."""


def refuse(path: str, problem: str) -> NoReturn:
    """Raise ``InvalidFileError`` for ``path``: ``problem`` completes "path: '<path>' ..."."""
    raise InvalidFileError(f"path: {path!r} {problem}")


def _unreadable(path: str, what: str, problem: str) -> NoReturn:
    refuse(path, f"is not a readable {what}: {problem}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 500 else line[:500] + "..."


@contextlib.contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Inside, any exception from reading ``path`` becomes ``InvalidFileError`` naming it.

    ``what`` names the format in the message (``"HDF5 / .keras file"``). The messages of jaxlstm's
    own checks (a shape, a dtype) are kept, after the path unless they already name the file. A
    ``MemoryError`` passes unchanged: the checks here exist so that no claim in a file reaches an
    allocation, and one that does is a bug to see, not a bad file to report.
    """
    try:
        yield
    except (InvalidFileError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: parsers raise anything on a hostile file
        cls = _InvalidFileTypeError if isinstance(exc, TypeError) else InvalidFileError
        if _raised_by_jaxlstm(exc):
            message = str(exc) if path in str(exc) else f"path: {path!r}: {_first_line(exc)}"
            raise cls(message) from exc
        raise cls(
            f"path: {path!r} is not a readable {what} (truncated, corrupt or crafted?): "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raised_by_jaxlstm(exc: BaseException) -> bool:
    """Whether ``exc`` is a ValueError / TypeError raised by jaxlstm's own code (its innermost frame)."""
    if not isinstance(exc, (ValueError, TypeError)):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE + os.sep)


# ----------------------------------------------------------------------------------------------------
# JSON


# A JSON string literal, escapes included. Used only on text json.loads accepted, where every string is
# terminated, so the match is linear.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _nesting(text: bytes) -> int:
    """How deep valid JSON ``text`` nests: the running count of brackets outside strings (vectorised:
    a tree walk costs half a second on a 4 MiB config of a million empty lists)."""
    steps = _BRACKET_STEP[np.frombuffer(_JSON_STRING.sub(b"", text), np.uint8)]
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


_BRACKET_STEP = np.zeros(256, np.int8)
_BRACKET_STEP[list(b"[{")], _BRACKET_STEP[list(b"]}")] = 1, -1


def load_json(raw: bytes | str, path: str, what: str) -> Any:
    """Parse ``raw`` (the text ``what`` inside ``path``), refusing more than ``MAX_METADATA_BYTES``
    or ``MAX_JSON_DEPTH`` levels of nesting."""
    size = len(raw)
    if size > MAX_METADATA_BYTES:
        refuse(path, f"has a {what} of {size} bytes, more than the {MAX_METADATA_BYTES} this loader reads")
    too_deep = f"has a {what} nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        value = json.loads(raw)  # bytes: json detects UTF-8/16/32 itself
    except RecursionError:
        value, deep = None, True  # json's parser recurses per level: refused below, outside this except
    except ValueError as exc:  # includes UnicodeDecodeError and json.JSONDecodeError
        raise InvalidFileError(
            f"path: {path!r} has a malformed {what} (not UTF-8 JSON: {_first_line(exc)})"
        ) from exc
    else:
        deep = (
            _nesting(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw))
            > MAX_JSON_DEPTH
        )
    if deep:
        refuse(path, too_deep)
    return value


def load_json_object(raw: bytes | str, path: str, what: str) -> dict[str, Any]:
    value = load_json(raw, path, what)
    if not isinstance(value, dict):
        refuse(path, f"has a malformed {what} (a JSON {type(value).__name__}, expected an object)")
    return value


# ----------------------------------------------------------------------------------------------------
# zips


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or (len(name) > 1 and name[1] == ":")
        or any(p in (".", "..") for p in parts)
    )


def open_zip(path: str, what: str) -> zipfile.ZipFile:
    """The zip at ``path``, after checking every member: a plain relative name (no ``..``, absolute
    path, drive or backslash), no duplicate, no encryption, stored or deflated, and sizes that fit
    (a stored member within the file; a deflated one within what deflate can reach and
    ``MAX_INFLATED_BYTES``)."""
    archive = os.path.getsize(path)
    z = zipfile.ZipFile(path)
    try:
        seen: set[str] = set()
        for info in z.infolist():
            name = info.filename
            if _unsafe_name(name):
                _unreadable(
                    path, what, f"zip member named {name!r} (absolute or leaving the archive: refused)"
                )
            if name in seen:
                _unreadable(path, what, f"two zip members named {name!r}")
            seen.add(name)
            if info.flag_bits & 0x1:
                _unreadable(path, what, f"encrypted zip member {name!r}")
            if info.compress_size > archive:
                _unreadable(
                    path,
                    what,
                    f"zip member {name!r} claims {info.compress_size} bytes in a file of {archive}",
                )
            if info.compress_type == zipfile.ZIP_STORED:
                if info.file_size != info.compress_size:
                    _unreadable(
                        path,
                        what,
                        f"stored zip member {name!r} has sizes that disagree ({info.file_size} vs {info.compress_size})",
                    )
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                limit = min(MAX_INFLATED_BYTES, _DEFLATE_MAX_RATIO * info.compress_size + 1024)
                if info.file_size > limit:
                    _unreadable(
                        path,
                        what,
                        f"deflated zip member {name!r} claims {info.file_size} bytes from {info.compress_size} "
                        f"(compressed members inflate to at most {MAX_INFLATED_BYTES} bytes; store large members uncompressed)",
                    )
            else:
                _unreadable(
                    path,
                    what,
                    f"zip member {name!r} is compressed with method {info.compress_type} (only stored and deflate are read)",
                )
        return z
    except BaseException:
        z.close()
        raise


def read_member(z: zipfile.ZipFile, name: str, path: str, limit: int | None = None) -> bytes:
    """The bytes of member ``name`` (already checked by ``open_zip``), at most ``limit`` of them."""
    info = z.getinfo(name)
    if limit is not None and info.file_size > limit:
        refuse(
            path,
            f"has a zip member {name!r} of {info.file_size} bytes, more than the {limit} this loader reads",
        )
    return z.read(info)


# ----------------------------------------------------------------------------------------------------
# .npz (numpy.savez) without numpy.load: nothing is allocated before its size is checked against the
# member that holds it, and object (pickled) arrays are refused before a byte of them is read.

_NPY_KINDS = "biufc"


def _npy_header(fp: Any, name: str, path: str, what: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    magic = fp.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY":
        _unreadable(path, what, f"member {name!r} is not an .npy array")
    major = magic[6]
    if major not in (1, 2):
        _unreadable(
            path, what, f"member {name!r} is in .npy format version {major}.{magic[7]} (1.0 and 2.0 are read)"
        )
    width = 2 if major == 1 else 4
    raw = fp.read(width)
    if len(raw) != width:
        _unreadable(path, what, f"member {name!r} is truncated")
    length = int.from_bytes(raw, "little")
    if length > _NPY_MAX_HEADER:
        _unreadable(path, what, f"member {name!r} has a {length}-byte .npy header")
    text = fp.read(length)
    if len(text) != length:
        _unreadable(path, what, f"member {name!r} is truncated")
    try:
        header = ast.literal_eval(text.decode("latin1"))  # literals only: nothing is evaluated
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise InvalidFileError(
            f"path: {path!r} is not a readable {what}: member {name!r} has a malformed .npy header"
        ) from exc
    malformed = f"member {name!r} has a malformed .npy header {str(header)[:200]!r}"
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        _unreadable(path, what, malformed)
    shape, fortran = header["shape"], header["fortran_order"]
    if (
        not isinstance(shape, tuple)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        or not isinstance(fortran, bool)
    ):
        _unreadable(path, what, malformed)
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad descr
        raise InvalidFileError(
            f"path: {path!r} is not a readable {what}: member {name!r} has an unknown dtype {str(header['descr'])[:100]!r}"
        ) from exc
    if dtype.hasobject:
        _unreadable(
            path, what, f"member {name!r} holds Python objects (a pickle: refused, nothing from it was run)"
        )
    if dtype.kind not in _NPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        _unreadable(path, what, f"member {name!r} has dtype {dtype} (numeric arrays only)")
    return shape, fortran, dtype, 2 + 6 + width + length


def read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name (``numpy.load`` names, ``.npy`` dropped),
    as writable numpy arrays. Each member's header must claim exactly the bytes the member holds.
    ``what`` names the format in messages (``"pickle-free .npz file"``)."""
    with open_zip(path, what) as z:
        out: dict[str, np.ndarray] = {}
        for info in z.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                _unreadable(path, what, f"member {name!r} is not an .npy array")
            with z.open(info) as fp:
                shape, fortran, dtype, offset = _npy_header(fp, name, path, what)
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes != info.file_size - offset:
                    _unreadable(
                        path,
                        what,
                        f"member {name!r} claims shape {list(shape)} of {dtype} ({nbytes} bytes) "
                        f"but holds {info.file_size - offset} bytes",
                    )
                data = bytearray(fp.read(nbytes))
                fp.read()  # to the end: zipfile checks the member's CRC there
            array = np.frombuffer(data, dtype)
            out[name[: -len(".npy")]] = native(
                array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
            )
        return out


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order (same values): jax refuses big-endian arrays, which
    HDF5 and .npy files may hold."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


# ----------------------------------------------------------------------------------------------------
# safetensors


def check_safetensors(path: str) -> None:
    """A safetensors file starts with the length of its JSON header: it must fit in the file and in
    ``MAX_METADATA_BYTES`` (the safetensors library itself allows 100 MB)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        refuse(path, f"is not a safetensors file ({size} bytes, shorter than its header length)")
    (length,) = struct.unpack("<Q", head)
    if length > size - 8:
        refuse(
            path,
            f"is not a safetensors file: its header claims {length} bytes, the file holds {size - 8} after it",
        )
    if length > MAX_METADATA_BYTES:
        refuse(
            path,
            f"has a safetensors header of {length} bytes, more than the {MAX_METADATA_BYTES} this loader reads",
        )


# ----------------------------------------------------------------------------------------------------
# HDF5 (h5py objects; h5py is imported by the caller)

# HDF5's built-in filters: deflate, shuffle, fletcher32, szip, nbit, scaleoffset. Any other id makes
# libhdf5 search its plugin path for a shared library to load.
_H5_FILTERS = {1, 2, 3, 4, 5, 6}


def check_hdf5_links(f: Any, path: str) -> None:
    """Refuse links that leave the file (external links, user-defined links): following one would
    open, and read, another file. (``H5Lvisit``, through h5py's low-level API: it walks every
    link of the file without following any, and exists in every h5py the project supports.)"""
    import h5py
    import h5py.h5l  # loaded by h5py already; named so that type checkers see the submodule

    allowed = (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT)

    def visit(name: bytes, info: Any) -> Any:
        # a non-None return stops the walk (raising inside h5py's callback would become a SystemError)
        return (name, info.type) if info.type not in allowed else None

    found = f.id.links.visit(visit, info=True)
    if found is not None:
        name, kind = found
        what = "external" if kind == h5py.h5l.TYPE_EXTERNAL else f"user-defined (type {kind})"
        refuse(
            path,
            f"has an HDF5 link {name.decode(errors='replace')!r} that is {what} (links to other files are refused)",
        )


def read_dataset(dataset: Any, path: str, available: int) -> np.ndarray:
    """The array of an h5py dataset, after checking that it is stored in the file itself (no
    external raw storage or virtual mapping to other files), uses only built-in filters, has a
    numeric dtype, and that the bytes it claims fit in the ``available`` bytes of the file (times
    what deflate can reach, for compressed chunks)."""
    name = dataset.name
    if dataset.is_virtual or dataset.external:
        refuse(path, f"has an HDF5 dataset {name!r} stored in other files (refused)")
    dcpl = dataset.id.get_create_plist()
    filters = [dcpl.get_filter(k)[0] for k in range(dcpl.get_nfilters())]
    unknown = sorted(set(filters) - _H5_FILTERS)
    if unknown:
        refuse(
            path,
            f"has an HDF5 dataset {name!r} with filter ids {unknown} (only HDF5's built-in filters are read)",
        )
    dtype = dataset.dtype
    if dtype.kind not in _NPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        refuse(path, f"has an HDF5 dataset {name!r} of dtype {dtype} (numeric arrays only)")
    nbytes = math.prod(dataset.shape or ()) * dtype.itemsize
    stored = dataset.id.get_storage_size()
    bound = min(available, stored) * (_DEFLATE_MAX_RATIO if filters else 1)
    if nbytes > bound:
        refuse(
            path,
            f"has an HDF5 dataset {name!r} claiming shape {list(dataset.shape)} of {dtype} ({nbytes} bytes) "
            f"but storing {stored} bytes",
        )
    return native(np.asarray(dataset[()]))


def read_attr(obj: Any, name: str, path: str, default: Any = None) -> Any:
    """HDF5 attribute ``name`` of ``obj`` (or ``default`` when absent), refusing one whose declared
    size exceeds ``MAX_METADATA_BYTES`` before reading it."""
    if name not in obj.attrs:
        return default
    attr = obj.attrs.get_id(name)
    count = math.prod(attr.shape or ())
    if count * max(attr.dtype.itemsize, 1) > MAX_METADATA_BYTES:
        refuse(
            path,
            f"has an HDF5 attribute {name!r} of {count} x {attr.dtype.itemsize} bytes, more than this loader reads",
        )
    value = obj.attrs[name]
    size = len(value) if isinstance(value, (bytes, str)) else getattr(value, "nbytes", 0)
    if size > MAX_METADATA_BYTES:
        refuse(
            path,
            f"has an HDF5 attribute {name!r} of {size} bytes, more than the {MAX_METADATA_BYTES} this loader reads",
        )
    return value
