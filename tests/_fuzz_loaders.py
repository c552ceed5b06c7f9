"""Hostile files for every jaxlstm loader: deterministic case generation and the worker that loads them.

Run by ``tests/test_fuzz_loaders.py``, never collected by pytest itself (the leading underscore). A
worker is one interpreter for one loader family; importing jax costs about a second, so it loads its
cases one after another and reports on stdout, one JSON line per event:

    {"total": N}                                   first line
    {"start": i}                                   before case i
    {"done": i, "id": ..., "outcome": ..., ...}    after it

The parent (the test) watches these lines: a worker that dies or goes silent mid-case is a crash or a
hang *of that case*, and the parent restarts a worker after it (``--start i+1``).

Case families and the loaders they call:

    keras       tests/fixtures/tf files -> keras_files.contents, load_layers (whose scan is list_layers)
    io          io.save files (.safetensors, .npz) -> io.load
    checkpoint  checkpoint.save files (.npz) -> checkpoint.restore(path, like)
    torch       torch.save / safetensors files -> torch.load_torch_file

A case passes when the loader returns normally (some mutations leave a valid file) or raises a
``ValueError`` (or subclass) raised by jaxlstm's own code whose message holds the file's path; and in
every case within 2 s of CPU time and 200 MB of peak resident memory, with no MemoryError or
RecursionError anywhere in the error's chain and no marker file created by a payload. (CPU time, not
wall time: on a shared 2-core machine a case can wait seconds for a core; the wall time is recorded
too, and the parent reports a case with no answer for 20 s of wall time as a hang.)

Memory: the peak resident set is reset before each case (``/proc/self/clear_refs``, Linux >= 4.0) and
read after it (``VmHWM``). As a backstop, so that a loader that allocates what a header claims fails
fast instead of exhausting the shared machine, the worker caps its address space (``RLIMIT_AS``) at its
warmed-up size plus 1 GiB; an allocation over that cap surfaces as a MemoryError (a failure).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import resource
import shutil
import struct
import sys
import time
import traceback
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures", "tf")
KERAS_FIXTURES = sorted(f for f in os.listdir(FIXTURES) if f.endswith((".h5", ".keras")))

TIME_BUDGET_S = 2.0
MEMORY_BUDGET_MB = 200.0
SEED = 20261201

# The pieces of a file every mutation kind starts from, and how many random variants of each kind.
N_TRUNCATE, N_FLIP1, N_FLIP8, N_HEADFLIP, N_TAILFLIP, N_REGION = 8, 10, 6, 6, 4, 5


class Case(NamedTuple):
    id: str  # "<base>/<kind>/<k>": enough to rebuild the case
    kind: str  # mutation kind, for the counts in the report
    name: str  # file name of the case (the extension picks the reader)
    build: Callable[[str], None]  # writes the case's file at the given path


# ----------------------------------------------------------------------------------------------------
# byte-level helpers


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _bytes_case(data: bytes) -> Callable[[str], None]:
    return lambda dst: _write(dst, data)


def _lazy(make: Callable[[], bytes]) -> Callable[[str], None]:
    """A builder for bytes that are costly to make (bombs, huge configs): made only when the case runs."""
    return lambda dst: _write(dst, make())


def _flip(data: bytes, rng: random.Random, n: int, lo: int = 0, hi: int | None = None) -> bytes:
    b = bytearray(data)
    hi = len(b) if hi is None else min(hi, len(b))
    for _ in range(n):
        pos = rng.randrange(lo, hi)
        b[pos] ^= 1 << rng.randrange(8)
    return bytes(b)


def _region(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    size = rng.randint(8, 256)
    pos = rng.randrange(0, max(1, len(b) - size))
    fill = rng.choice([b"\x00" * size, b"\xff" * size, bytes(rng.randrange(256) for _ in range(size))])
    b[pos : pos + size] = fill
    return bytes(b)


def byte_cases(base: str, name: str, data: bytes) -> Iterator[Case]:
    """Format-blind mutations of ``data``: truncation, bit flips (anywhere, in the first and the last
    512 bytes where headers and zip directories live), overwritten regions, garbage around it."""
    rng = random.Random(f"{SEED}/{base}")
    n = len(data)
    cuts = sorted({0, 1, 8, 16, n // 2, n - 1, *(rng.randrange(1, n) for _ in range(N_TRUNCATE - 6))})
    for k, cut in enumerate(cuts):
        yield Case(f"{base}/truncate/{k}", "truncate", name, _bytes_case(data[:cut]))
    for k in range(N_FLIP1):
        yield Case(f"{base}/bitflip/{k}", "bitflip", name, _bytes_case(_flip(data, rng, 1)))
    for k in range(N_FLIP8):
        yield Case(f"{base}/bitflip8/{k}", "bitflip8", name, _bytes_case(_flip(data, rng, 8)))
    for k in range(N_HEADFLIP):
        yield Case(f"{base}/headflip/{k}", "headflip", name, _bytes_case(_flip(data, rng, 2, 0, 512)))
    for k in range(N_TAILFLIP):
        yield Case(
            f"{base}/tailflip/{k}", "tailflip", name, _bytes_case(_flip(data, rng, 2, max(0, n - 512)))
        )
    for k in range(N_REGION):
        yield Case(f"{base}/region/{k}", "region", name, _bytes_case(_region(data, rng)))
    yield Case(
        f"{base}/garbage/append",
        "garbage",
        name,
        _bytes_case(data + bytes(rng.randrange(256) for _ in range(1000))),
    )
    yield Case(f"{base}/garbage/prepend", "garbage", name, _bytes_case(b"\x89junk" * 100 + data))
    yield Case(f"{base}/garbage/doubled", "garbage", name, _bytes_case(data + data))


# ----------------------------------------------------------------------------------------------------
# zip helpers (.keras, .npz, torch .pt)


def zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i, z.read(i)) for i in z.infolist()]


def make_zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip with fixed timestamps (so that a case's bytes never depend on when it ran)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the cases
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            z.writestr(info, payload)
    return out.getvalue()


def replace_member(
    data: bytes, name: str, payload: bytes | None, compression: int = zipfile.ZIP_STORED
) -> bytes:
    members = [(i.filename, p) for i, p in zip_members(data)]
    members = [(n, payload if n == name else p) for n, p in members if not (n == name and payload is None)]
    return make_zip(members, compression)


def normalise_zip(data: bytes) -> bytes:
    return make_zip([(i.filename, p) for i, p in zip_members(data)])


def zip_size_lie(data: bytes, name: str, size: int, field: str) -> bytes:
    """Rewrite the uncompressed (or compressed) size that the local header and the central directory
    claim for member ``name`` (zip64 not involved: the fixtures are small)."""
    b = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
        cd_offset = z.start_dir
    size = min(size, 0xFFFFFFFE)
    local_field = {"file_size": 22, "compress_size": 18}[field]
    struct.pack_into("<I", b, info.header_offset + local_field, size)
    pos = cd_offset
    while b[pos : pos + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<HHH", b, pos + 28)
        if bytes(b[pos + 46 : pos + 46 + n]).decode("utf-8", "replace") == name:
            struct.pack_into("<I", b, pos + {"file_size": 24, "compress_size": 20}[field], size)
        pos += 46 + n + m + k
    return bytes(b)


def zip_cases(base: str, name: str, data: bytes, main: str) -> Iterator[Case]:
    """Crafted zips: path traversal names beside the real members, a member claiming a huge size,
    compression bombs, unusual compression methods, a missing or duplicated main member."""
    members = [(i.filename, p) for i, p in zip_members(data)]
    for k, evil in enumerate(
        ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "..\\evil.txt", "C:/evil.txt", "./" + main]
    ):
        yield Case(
            f"{base}/zip-traversal/{k}",
            "zip-traversal",
            name,
            _bytes_case(make_zip([*members, (evil, b"x")])),
        )
    # the main member renamed with a traversal prefix (and missing under its own name)
    yield Case(
        f"{base}/zip-traversal/renamed",
        "zip-traversal",
        name,
        _bytes_case(make_zip([("../" + n if n == main else n, p) for n, p in members])),
    )
    for k, size in enumerate([2**31, 2**32 - 2, 10**9, 1]):
        for field in ("file_size", "compress_size"):
            yield Case(
                f"{base}/zip-size-lie/{field}-{k}",
                "zip-size-lie",
                name,
                _bytes_case(zip_size_lie(data, main, size, field)),
            )
    # bombs: the main member replaced by 300 MB of zeros, deflated (about 300 KB); bzip2 and lzma
    # (ratios of a million and more) with 4 MB, which they squeeze into a few hundred bytes
    yield Case(
        f"{base}/zip-bomb/deflate",
        "zip-bomb",
        name,
        _lazy(lambda: _bomb_zip(members, main, b"\x00", 300 << 20)),
    )
    for label, method in (("bzip2", zipfile.ZIP_BZIP2), ("lzma", zipfile.ZIP_LZMA)):
        yield Case(
            f"{base}/zip-bomb/{label}",
            "zip-bomb",
            name,
            _lazy(lambda method=method: _compressed_zip(members, main, bytes(4 << 20), method)),
        )
    yield Case(
        f"{base}/zip-method/deflate-good",
        "zip-method",
        name,
        _bytes_case(make_zip(members, zipfile.ZIP_DEFLATED)),
    )
    yield Case(
        f"{base}/zip-method/bzip2-good", "zip-method", name, _bytes_case(make_zip(members, zipfile.ZIP_BZIP2))
    )
    yield Case(
        f"{base}/zip-member/missing", "zip-member", name, _bytes_case(replace_member(data, main, None))
    )
    yield Case(
        f"{base}/zip-member/duplicate", "zip-member", name, _bytes_case(make_zip([*members, (main, b"junk")]))
    )
    yield Case(f"{base}/zip-member/empty", "zip-member", name, _bytes_case(replace_member(data, main, b"")))
    yield Case(
        f"{base}/zip-member/nested-zip", "zip-member", name, _bytes_case(replace_member(data, main, data))
    )
    yield Case(f"{base}/zip-member/empty-zip", "zip-member", name, _bytes_case(make_zip([])))
    many = [(f"m{k}", b"") for k in range(5000)]
    yield Case(
        f"{base}/zip-member/5000-members", "zip-member", name, _bytes_case(make_zip([*members, *many]))
    )


_DEFLATED: dict[tuple[bytes, int], tuple[Any, bytes, int]] = {}


def _deflated_fill(fill: bytes, size: int, tail: bytes) -> tuple[bytes, int]:
    """Raw deflate of ``fill * size + tail`` and its CRC-32; the costly ``fill * size`` part is
    compressed once per worker and reused (``compressobj.copy``)."""
    if (fill, size) not in _DEFLATED:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        chunk, head, crc = fill * (1 << 20), [], 0
        for _ in range(size >> 20):
            head.append(c.compress(chunk))
            crc = zlib.crc32(chunk, crc)
        _DEFLATED[(fill, size)] = (c, b"".join(head), crc)
    c, head, crc = _DEFLATED[(fill, size)]
    c = c.copy()
    return head + c.compress(tail) + c.flush(), zlib.crc32(tail, crc)


def raw_zip(entries: list[tuple[str, int, int, int, bytes]]) -> bytes:
    """A zip from (name, method, crc, uncompressed size, already-compressed data) entries."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, method, crc, size, data in entries:
        raw = name.encode()
        offset = out.tell()
        out.write(
            struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(data), size, len(raw), 0)
            + raw
            + data
        )
        central.write(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                method,
                0,
                33,
                crc,
                len(data),
                size,
                len(raw),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw
        )
    cd = central.getvalue()
    n = len(entries)
    return out.getvalue() + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(cd), out.tell(), 0)


def _bomb_zip(
    members: list[tuple[str, bytes]], main: str, fill: bytes, size: int, tail: bytes = b""
) -> bytes:
    """``members`` (stored) with ``main`` replaced by ``fill * size + tail``, deflated."""
    entries = []
    for n, p in members:
        if n == main:
            data, crc = _deflated_fill(fill, size, tail)
            entries.append((n, zipfile.ZIP_DEFLATED, crc, size + len(tail), data))
        else:
            entries.append((n, zipfile.ZIP_STORED, zlib.crc32(p), len(p), p))
    return raw_zip(entries)


def _compressed_zip(members: list[tuple[str, bytes]], main: str, zeros: bytes, method: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compresslevel=1) as z:
        for n, p in members:
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method if n == main else zipfile.ZIP_STORED
            z.writestr(info, zeros if n == main else p)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------
# JSON payloads (configs, headers, metadata)


def deep_json(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def huge_json(megabytes: int) -> str:
    # a long but well-formed object: a cap must refuse it before it is parsed
    return json.dumps({"class_name": "Functional", "config": {"pad": "x" * (megabytes << 20)}})


def wide_json(megabytes: int) -> str:
    # many tiny containers: the most Python objects per byte of JSON
    n = (megabytes << 20) // 3
    return "[" + ",".join(["[]"] * n) + "]"


JSON_VARIANTS: list[tuple[str, Callable[[], bytes]]] = [
    ("deep-list-100k", lambda: deep_json(100_000).encode()),
    ("deep-dict-100k", lambda: deep_json(100_000, "dict").encode()),
    ("deep-list-900", lambda: deep_json(900).encode()),
    ("deep-dict-600", lambda: deep_json(600, "dict").encode()),
    ("huge-20MB", lambda: huge_json(20).encode()),
    ("wide-3MB", lambda: wide_json(3).encode()),
    ("not-json", lambda: b"{this is not json"),
    ("not-utf8", lambda: b'{"a": "\xff\xfe\xfa"}'),
    ("a-list", lambda: b"[1, 2, 3]"),
    ("a-number", lambda: b"1e999"),
    ("null", lambda: b"null"),
    ("nan", lambda: b"NaN"),
    ("empty", lambda: b""),
]


# ----------------------------------------------------------------------------------------------------
# pickles that would run code: each creates the marker file when unpickled by the full pickle module


def _unicode(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def call_pickle(module: str, name: str, *args: str, wrap_in_dict: bool = False) -> bytes:
    """Protocol-2 pickle of ``module.name(*args)`` (GLOBAL + REDUCE), optionally as a dict value."""
    body = b"c" + f"{module}\n{name}\n".encode() + b"(" + b"".join(_unicode(a) for a in args) + b"tR"
    if wrap_in_dict:
        body = b"}(" + _unicode("weight_ih_l0") + body + b"u"
    return b"\x80\x02" + body + b"."


def payload_pickles(marker: str) -> list[tuple[str, bytes]]:
    code = f"open({marker!r}, 'w').close()"
    return [
        ("builtins.open", call_pickle("builtins", "open", marker, "w")),
        ("builtins.exec", call_pickle("builtins", "exec", code)),
        ("builtins.eval-in-dict", call_pickle("builtins", "eval", code, wrap_in_dict=True)),
        ("os.system", call_pickle("os", "system", f"touch {marker}")),
        ("posix.system", call_pickle("posix", "system", f"touch {marker}")),
        ("subprocess.getoutput", call_pickle("subprocess", "getoutput", f"touch {marker}")),
        ("torch.load-nested", call_pickle("torch", "load", marker)),  # an allowed-looking module
        ("numpy.load", call_pickle("numpy", "load", marker)),
    ]


# ----------------------------------------------------------------------------------------------------
# HDF5 (Keras) mutations: edit a copy of the file with h5py


def _h5_case(src_bytes: bytes, edit: Callable[[Any, str], None], keras_zip: bool) -> Callable[[str], None]:
    """A builder that applies ``edit(h5file, case_dir)`` to a copy of the HDF5 file (for a ``.keras``
    file: to its ``model.weights.h5``, zipped back)."""

    def build(dst: str) -> None:
        import h5py

        tmp = dst + ".h5tmp"
        inner = dict((i.filename, p) for i, p in zip_members(src_bytes)) if keras_zip else None
        _write(tmp, inner["model.weights.h5"] if keras_zip else src_bytes)
        with h5py.File(tmp, "r+") as f:
            edit(f, os.path.dirname(dst))
        with open(tmp, "rb") as fh:
            h5 = fh.read()
        os.unlink(tmp)
        if keras_zip:
            _write(dst, make_zip([(n, h5 if n == "model.weights.h5" else p) for n, p in inner.items()]))
        else:
            _write(dst, h5)

    return build


def _lstm_datasets(f: Any) -> list[str]:
    """The LSTM weight datasets of a Keras file (what the loader will read), in file order."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if (
            isinstance(obj, h5py.Dataset)
            and obj.ndim in (1, 2)
            and ("lstm" in name.lower() or "/cell/vars/" in name)
        ):
            found.append(name)

    f.visititems(visit)
    return found


def _replace(f: Any, name: str, **kwargs: Any) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def h5_edits(first: str, others: list[str]) -> list[tuple[str, str, Callable[[Any, str], None]]]:
    """(kind, label, edit) for the HDF5 mutations of dataset ``first`` (an LSTM kernel or so)."""
    import h5py
    import numpy as np

    def dtype_swap(dtype: Any) -> Callable[[Any, str], None]:
        def edit(f: Any, _: str) -> None:
            shape = f[first].shape
            if dtype == "vlen-str":
                _replace(f, first, shape=shape, dtype=h5py.string_dtype())
            elif dtype == "compound":
                _replace(f, first, shape=shape, dtype=np.dtype([("a", "<f4"), ("b", "<i4")]))
            else:
                _replace(f, first, data=np.zeros(shape, dtype))

        return edit

    def shape_to(shape: tuple[int, ...]) -> Callable[[Any, str], None]:
        return lambda f, _: _replace(f, first, data=np.zeros(shape, "<f4"))

    def huge(shape: tuple[int, ...], **kw: Any) -> Callable[[Any, str], None]:
        return lambda f, _: _replace(f, first, shape=shape, dtype="<f4", **kw)

    def link(make: Callable[[str], Any]) -> Callable[[Any, str], None]:
        def edit(f: Any, case_dir: str) -> None:
            del f[first]
            f[first] = make(case_dir)

        return edit

    def virtual(f: Any, case_dir: str) -> None:
        shape = f[first].shape
        other = os.path.join(case_dir, "vds-source.h5")
        with h5py.File(other, "w") as g:
            g["x"] = np.ones(shape, "<f4")
        layout = h5py.VirtualLayout(shape=shape, dtype="<f4")
        layout[...] = h5py.VirtualSource(other, "x", shape=shape)
        del f[first]
        f.create_virtual_dataset(first, layout)

    def external_storage(shape: tuple[int, ...], target: str) -> Callable[[Any, str], None]:
        def edit(f: Any, case_dir: str) -> None:
            path = target if target.startswith("/dev") else os.path.join(case_dir, target)
            if not target.startswith("/dev"):
                _write(path, np.ones(shape, "<f4").tobytes())
            _replace(f, first, shape=shape, dtype="<f4", external=[(path, 0, h5py.h5f.UNLIMITED)])

        return edit

    def soft_loop(f: Any, _: str) -> None:
        del f[first]
        f[first] = h5py.SoftLink("/" + first)

    def as_group(f: Any, _: str) -> None:
        del f[first]
        f.create_group(first)

    def unknown_filter(f: Any, _: str) -> None:
        # a filter id no HDF5 library knows: reading it makes libhdf5 look for a plugin
        data = np.zeros(f[first].shape, "<f4")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(data.shape)
        dcpl.set_filter(32500, h5py.h5z.FLAG_OPTIONAL, ())
        del f[first]
        space = h5py.h5s.create_simple(data.shape)
        dset = h5py.h5d.create(f.id, first.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        dset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)

    edits: list[tuple[str, str, Callable[[Any, str], None]]] = []
    for dtype in ("<i4", "<i8", "|u1", "|b1", "<f2", "<f8", ">f4", "<c8", "|S8", "vlen-str", "compound"):
        edits.append(("h5-dtype", dtype, dtype_swap(dtype)))
    for shape in ((), (7,), (2, 3, 4), (0, 0), (4, 0), (0, 8)):
        edits.append(("h5-shape", "x".join(map(str, shape)) or "scalar", shape_to(shape)))
    edits.append(("h5-huge", "16TB-contiguous", huge((10**6, 4 * 10**6))))
    edits.append(
        ("h5-huge", "16TB-chunked-gzip", huge((10**6, 4 * 10**6), chunks=(100, 400), compression="gzip"))
    )
    edits.append(("h5-huge", "4GB-rank1", huge((10**9,))))
    edits.append(
        (
            "h5-link",
            "external-to-fixture",
            link(
                lambda d: h5py.ExternalLink(
                    os.path.join(FIXTURES, "seed_keras3.weights.h5"), "/layers/lstm/cell/vars/0"
                )
            ),
        )
    )
    edits.append(("h5-link", "external-to-dev-zero", link(lambda d: h5py.ExternalLink("/dev/zero", "/x"))))
    edits.append(
        (
            "h5-link",
            "external-missing",
            link(lambda d: h5py.ExternalLink(os.path.join(d, "missing.h5"), "/x")),
        )
    )
    edits.append(("h5-link", "soft-loop", soft_loop))
    if others:
        edits.append(("h5-link", "soft-to-sibling", link(lambda d: h5py.SoftLink("/" + others[0]))))
    edits.append(("h5-link", "virtual-dataset", virtual))
    edits.append(("h5-link", "external-storage-dev-zero-4GB", external_storage((10**9,), "/dev/zero")))
    edits.append(("h5-link", "external-storage-file", external_storage((4, 8), "raw.bin")))
    edits.append(("h5-structure", "group-not-dataset", as_group))
    edits.append(("h5-structure", "unknown-filter", unknown_filter))
    edits.append(("h5-structure", "deleted", lambda f, _: f.__delitem__(first)))
    return edits


def _set_attr(obj: Any, name: str, value: Any) -> None:
    if name in obj.attrs:
        del obj.attrs[name]
    obj.attrs[name] = value


def h5_attr_edits(legacy: bool, has_config: bool) -> list[tuple[str, str, Callable[[Any, str], None]]]:
    """(kind, label, edit) for the attribute mutations: configs, layer and weight names, vars names."""
    import numpy as np

    edits: list[tuple[str, str, Callable[[Any, str], None]]] = []
    if legacy:
        root = lambda f: f["model_weights"] if "model_weights" in f else f  # noqa: E731
        if has_config:
            for label, make in JSON_VARIANTS:
                if label.startswith("huge"):
                    continue  # an HDF5 attribute that large needs dense attribute storage; the zip cases cover it
                edits.append(
                    ("h5-config", label, lambda f, _, make=make: _set_attr(f, "model_config", make()))
                )
            edits.append(
                (
                    "h5-config",
                    "units-string",
                    lambda f, _: _set_attr(f, "model_config", _legacy_config(f, units="many")),
                )
            )
            edits.append(
                (
                    "h5-config",
                    "units-huge",
                    lambda f, _: _set_attr(f, "model_config", _legacy_config(f, units=10**400)),
                )
            )
            edits.append(
                (
                    "h5-config",
                    "config-a-list",
                    lambda f, _: _set_attr(f, "model_config", _legacy_config(f, config=[1])),
                )
            )
            edits.append(
                (
                    "h5-config",
                    "name-a-list",
                    lambda f, _: _set_attr(f, "model_config", _legacy_config(f, name=["a"])),
                )
            )
            edits.append(
                (
                    "h5-config",
                    "layer-a-string",
                    lambda f, _: _set_attr(f, "model_config", _legacy_config(f, layer="x")),
                )
            )
            edits.append(("h5-config", "int-array", lambda f, _: _set_attr(f, "model_config", np.arange(10))))
            edits.append(("h5-config", "keras-version-int", lambda f, _: _set_attr(f, "keras_version", 3)))
        edits.append(
            (
                "h5-names",
                "layer-missing",
                lambda f, _: _set_attr(
                    root(f), "layer_names", [b"nope", *_as_bytes(root(f).attrs["layer_names"])]
                ),
            )
        )
        edits.append(
            (
                "h5-names",
                "layer-traversal",
                lambda f, _: _set_attr(root(f), "layer_names", [b"../../etc", b"/"]),
            )
        )
        edits.append(("h5-names", "layer-ints", lambda f, _: _set_attr(root(f), "layer_names", np.arange(3))))
        edits.append(("h5-names", "layer-scalar", lambda f, _: _set_attr(root(f), "layer_names", b"lstm")))
        edits.append(
            ("h5-names", "layer-2d", lambda f, _: _set_attr(root(f), "layer_names", np.array([[b"a", b"b"]])))
        )
        edits.append(
            (
                "h5-names",
                "layer-3000",
                lambda f, _: _set_attr(root(f), "layer_names", [b"x%d" % k for k in range(3000)]),
            )
        )
        edits.append(
            (
                "h5-names",
                "weight-missing",
                lambda f, _: _edit_weight_names(root(f), lambda ws: [w + b"x" for w in ws]),
            )
        )
        edits.append(
            (
                "h5-names",
                "weight-traversal",
                lambda f, _: _edit_weight_names(root(f), lambda ws: [b"../" + w for w in ws]),
            )
        )
        edits.append(
            (
                "h5-names",
                "weight-group",
                lambda f, _: _edit_weight_names(
                    root(f),
                    lambda ws: (
                        [w.rsplit(b"/", 1)[0] + b"/kernel:0" if b"/" in w else w for w in ws][:1] + [b""]
                    ),
                ),
            )
        )
        edits.append(
            (
                "h5-names",
                "weight-ints",
                lambda f, _: _edit_weight_names(root(f), lambda ws: list(range(len(ws)))),
            )
        )
    else:
        edits.append(
            ("h5-names", "vars-name-int", lambda f, _: _each_vars(f, lambda g: _set_attr(g, "name", 7)))
        )
        edits.append(
            (
                "h5-names",
                "vars-name-array",
                lambda f, _: _each_vars(f, lambda g: _set_attr(g, "name", np.arange(4))),
            )
        )
        edits.append(
            (
                "h5-names",
                "vars-name-bytes",
                lambda f, _: _each_vars(f, lambda g: _set_attr(g, "name", np.void(b"\xff\xfe"))),
            )
        )
        edits.append(
            (
                "h5-names",
                "vars-name-long",
                lambda f, _: _each_vars(f, lambda g: _set_attr(g, "name", "n" * 60000)),
            )
        )
    return edits


def _legacy_config(f: Any, **changes: Any) -> str:
    """The file's model config with the first LSTM's config changed."""
    raw = f.attrs["model_config"]
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") in ("LSTM", "Bidirectional") and isinstance(node.get("config"), dict):
                if "config" in changes:
                    node["config"] = changes["config"]
                else:
                    node["config"].update(changes)
                break
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return json.dumps(config)


def _as_bytes(names: Any) -> list[bytes]:
    return [n.encode() if isinstance(n, str) else bytes(n) for n in names]


def _edit_weight_names(root: Any, change: Callable[[list[bytes]], list[Any]]) -> None:
    for raw in root.attrs["layer_names"]:
        group = root[raw.decode() if isinstance(raw, bytes) else raw]
        names = _as_bytes(group.attrs.get("weight_names", []))
        if names:
            _set_attr(group, "weight_names", change(names))


def _each_vars(f: Any, change: Callable[[Any], None]) -> None:
    groups: list[str] = []
    f.visit(lambda n: groups.append(n) if n.endswith("/vars") else None)
    for g in groups:
        change(f[g])


def keras_cases() -> Iterator[Case]:
    import h5py

    for fixture in KERAS_FIXTURES:
        with open(os.path.join(FIXTURES, fixture), "rb") as fh:
            data = fh.read()
        keras_zip = fixture.endswith(".keras")
        yield from byte_cases(fixture, fixture, data)
        inner = dict((i.filename, p) for i, p in zip_members(data)) if keras_zip else None
        with h5py.File(io.BytesIO(inner["model.weights.h5"] if keras_zip else data), "r") as f:
            datasets = _lstm_datasets(f)
            legacy = "layer_names" in f.attrs or "model_weights" in f
            has_config = "model_config" in f.attrs
        for kind, label, edit in h5_edits(datasets[0], datasets[1:]):
            yield Case(f"{fixture}/{kind}/{label}", kind, fixture, _h5_case(data, edit, keras_zip))
        for kind, label, edit in h5_attr_edits(legacy, has_config):
            yield Case(f"{fixture}/{kind}/{label}", kind, fixture, _h5_case(data, edit, keras_zip))
        if keras_zip:
            yield from zip_cases(fixture, fixture, data, "model.weights.h5")
            config = json.loads(inner["config.json"])
            for label, make in JSON_VARIANTS:
                for member, kind in (("config.json", "keras-config"), ("metadata.json", "keras-metadata")):
                    yield Case(
                        f"{fixture}/{kind}/{label}",
                        kind,
                        fixture,
                        _lazy(
                            lambda member=member, make=make, data=data: replace_member(
                                data, member, make(), zipfile.ZIP_DEFLATED
                            )
                        ),
                    )
            # a config that names code to run (a Lambda layer, a custom module): never imported
            evil = {
                "module": "os",
                "class_name": "system",
                "config": {"command": "touch EXECUTED"},
                "registered_name": "os>system",
                "function": {"module": "builtins", "function_name": "exec"},
            }
            yield Case(
                f"{fixture}/keras-config/code-refs",
                "keras-config",
                fixture,
                _bytes_case(
                    replace_member(data, "config.json", json.dumps({**config, "layers": [evil]}).encode())
                ),
            )
            yield Case(
                f"{fixture}/keras-config/huge-300MB-deflated",
                "keras-config",
                fixture,
                _lazy(
                    lambda inner=inner: _bomb_zip(
                        list(inner.items()), "config.json", b" ", 300 << 20, inner["config.json"]
                    )
                ),
            )
            yield Case(
                f"{fixture}/keras-config/missing",
                "keras-config",
                fixture,
                _bytes_case(replace_member(data, "config.json", None)),
            )


# ----------------------------------------------------------------------------------------------------
# jaxlstm's own files (io.save) and checkpoints


def npy_member(array_bytes: bytes, header: str) -> bytes:
    """An .npy member with a hand-written header dict (version 1.0) over the given raw data."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + array_bytes


def npz_header_cases(base: str, name: str, data: bytes, marker: str) -> Iterator[Case]:
    """.npz members with crafted .npy headers: terabyte shapes, swapped dtypes, object arrays (a
    pickle that would create the marker), Fortran order, bad magic; and the metadata blob replaced."""
    import numpy as np

    members = zip_members(data)
    target = next(
        i.filename for i, _ in members if not i.filename.startswith("__")
    )  # a tensor, not the metadata
    meta = next(i.filename for i, _ in members if i.filename.startswith("__"))
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        array = f[target[: -len(".npy")]]
    raw = array.tobytes()

    def with_member(payload: bytes, member: str = target) -> Callable[[str], None]:
        return _bytes_case(
            make_zip([(i.filename, payload if i.filename == member else p) for i, p in members])
        )

    shapes = {
        "1TB": (2**20, 2**20),
        "8EB": (2**31, 2**31, 2**2),
        "negative": (-1, 4),
        "huge-int": (10**30,),
        "bigger-by-one": (array.size + 1,),
    }
    for label, shape in shapes.items():
        yield Case(
            f"{base}/npy-shape/{label}",
            "npy-shape",
            name,
            with_member(
                npy_member(
                    raw, f"{{'descr': '{array.dtype.str}', 'fortran_order': False, 'shape': {shape}, }}"
                )
            ),
        )
    for dtype in (
        "<i4",
        "<f8",
        ">f4",
        "<c8",
        "|b1",
        "<U2",
        "|V4",
        "|S4",
        "<m8",
        "<M8[D]",
        "[('a','<f4')]",
        "'|O'",
    ):
        descr = dtype if dtype.startswith("[") or dtype.startswith("'") else repr(dtype)
        yield Case(
            f"{base}/npy-dtype/{dtype}",
            "npy-dtype",
            name,
            with_member(
                npy_member(raw, f"{{'descr': {descr}, 'fortran_order': False, 'shape': {array.shape}, }}")
            ),
        )
    yield Case(
        f"{base}/npy-header/fortran",
        "npy-header",
        name,
        with_member(
            npy_member(
                raw, f"{{'descr': '{array.dtype.str}', 'fortran_order': True, 'shape': {array.shape}, }}"
            )
        ),
    )
    yield Case(f"{base}/npy-header/not-a-dict", "npy-header", name, with_member(npy_member(raw, "[1, 2, 3]")))
    yield Case(
        f"{base}/npy-header/code",
        "npy-header",
        name,
        with_member(npy_member(raw, "__import__('os').system('touch EXECUTED')")),
    )
    yield Case(
        f"{base}/npy-header/bad-magic",
        "npy-header",
        name,
        with_member(b"\x93NUMPX" + npy_member(raw, "{}")[6:]),
    )
    yield Case(
        f"{base}/npy-header/huge-header-len",
        "npy-header",
        name,
        with_member(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}"),
    )
    yield Case(
        f"{base}/npy-header/version-9",
        "npy-header",
        name,
        with_member(b"\x93NUMPY\x09\x00" + npy_member(raw, "{}")[8:]),
    )
    # object arrays whose element, unpickled, would create the marker file
    for label, pk in payload_pickles(marker):
        obj = npy_member(pk, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }")
        yield Case(f"{base}/npz-object/{label}", "npz-object", name, with_member(obj))
    for label, make in JSON_VARIANTS:
        yield Case(
            f"{base}/npz-metadata/{label}",
            "npz-metadata",
            name,
            _lazy(lambda make=make: _with_blob(members, meta, make())),
        )


def _with_blob(members: list[tuple[zipfile.ZipInfo, bytes]], key: str, blob: bytes) -> bytes:
    member = npy_member(blob, f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({len(blob)},), }}")
    return make_zip([(i.filename, member if i.filename == key else p) for i, p in members])


def _meta_json(data: bytes) -> tuple[Any, str]:
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        key = next(k for k in f.files if k.startswith("__"))
        return json.loads(f[key].tobytes()), key


def _with_meta(data: bytes, meta: Any) -> bytes:
    members = zip_members(data)
    key = next(i.filename for i, _ in members if i.filename.startswith("__"))
    return _with_blob(members, key, json.dumps(meta).encode())


def meta_cases(
    base: str, name: str, data: bytes, edits: list[tuple[str, Callable[[Any], Any]]]
) -> Iterator[Case]:
    meta, _ = _meta_json(data)
    for label, edit in edits:
        changed = edit(json.loads(json.dumps(meta)))
        yield Case(f"{base}/meta-field/{label}", "meta-field", name, _bytes_case(_with_meta(data, changed)))


def safetensors_cases(base: str, name: str, data: bytes) -> Iterator[Case]:
    """Crafted safetensors headers: a length claiming terabytes, tensors whose shape or offsets claim
    more than the file holds, swapped dtypes, and the metadata string replaced."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = [k for k in header if k != "__metadata__"]

    def build(h: Any, b: bytes = body, raw: bytes | None = None) -> Callable[[str], None]:
        text = raw if raw is not None else json.dumps(h).encode()
        return _bytes_case(struct.pack("<Q", len(text)) + text + b)

    for label, length in {
        "1TB": 2**40,
        "max": 2**64 - 1,
        "past-end": len(data),
        "zero": 0,
        "one-short": n - 1,
    }.items():
        yield Case(
            f"{base}/st-length/{label}", "st-length", name, _bytes_case(struct.pack("<Q", length) + data[8:])
        )
    t = tensors[0]
    for label, change in {
        "shape-1TB": {"shape": [2**20, 2**20]},
        "shape-negative": {"shape": [-1, 4]},
        "shape-huge-int": {"shape": [10**30]},
        "offsets-1TB": {"data_offsets": [0, 2**40]},
        "offsets-reversed": {"data_offsets": [8, 0]},
        "offsets-float": {"data_offsets": [0.5, 8]},
        "dtype-I32": {"dtype": "I32"},
        "dtype-F64": {"dtype": "F64"},
        "dtype-BOOL": {"dtype": "BOOL"},
        "dtype-U8": {"dtype": "U8"},
        "dtype-unknown": {"dtype": "OBJECT"},
        "dtype-F8_E4M3": {"dtype": "F8_E4M3"},
    }.items():
        yield Case(
            f"{base}/st-tensor/{label}", "st-tensor", name, build({**header, t: {**header[t], **change}})
        )
    yield Case(
        f"{base}/st-tensor/deleted", "st-tensor", name, build({k: v for k, v in header.items() if k != t})
    )
    meta = header.get("__metadata__", {})
    key = next(iter(meta), "__jaxlstm__")

    def with_metadata(make: Callable[[], bytes]) -> bytes:
        text = make()
        value = text.decode("utf-8", "surrogateescape") if text.isascii() else text.decode("latin1")
        h = json.dumps({**header, "__metadata__": {**meta, key: value}}).encode()
        return struct.pack("<Q", len(h)) + h + body

    def as_header(make: Callable[[], bytes]) -> bytes:
        h = b'{"__metadata__":{"x":"' + make().replace(b'"', b"'") + b'"}}'
        return struct.pack("<Q", len(h)) + h + body

    for label, make in JSON_VARIANTS:
        if label.startswith(("huge", "wide")):
            yield Case(
                f"{base}/st-header/{label}", "st-header", name, _lazy(lambda make=make: as_header(make))
            )
        yield Case(
            f"{base}/st-metadata/{label}", "st-metadata", name, _lazy(lambda make=make: with_metadata(make))
        )
    yield Case(
        f"{base}/st-header/deep", "st-header", name, build(None, raw=deep_json(50_000, "dict").encode())
    )
    yield Case(f"{base}/st-header/not-json", "st-header", name, build(None, raw=b"{nope"))


# ----------------------------------------------------------------------------------------------------
# the per-family base files and cases


def _io_base(base_dir: str) -> dict[str, str]:
    """io.save files (both formats) of several structures; written once per test run."""
    import jax
    import jax.numpy as jnp

    import jaxlstm
    from jaxlstm.interop import io as jio

    k = jax.random.split(jax.random.key(SEED), 4)
    single = jaxlstm.init(k[0], 4, 3)
    bi = jaxlstm.BidirectionalParams(jaxlstm.init(k[1], 4, 3), jaxlstm.init(k[2], 4, 3))
    half = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), jaxlstm.init(k[3], 3, 2))
    trees = {"single": single, "bidirectional": bi, "stack": (bi, jaxlstm.init(k[3], 6, 2)), "bf16": half}
    out = {}
    for label, params in trees.items():
        for ext in ("safetensors", "npz"):
            path = os.path.join(base_dir, f"{label}.{ext}")
            if not os.path.exists(path):
                jio.save(path, params, config={"units": 3, "activation": "tanh"})
                if ext == "npz":
                    with open(path, "rb") as fh:
                        _write(path, normalise_zip(fh.read()))
            out[f"{label}.{ext}"] = path
    return out


def checkpoint_trees() -> dict[str, Any]:
    """The checkpointed trees, by file name: a training state (params, bfloat16 and int64 optimiser
    leaves, a typed PRNG key, a step, Python int / float / bool scalars), a stack of layers, and a list of raw keys and flags."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlstm

    k = jax.random.split(jax.random.key(SEED + 1), 4)
    return {
        "state.npz": {
            "params": jaxlstm.init(k[0], 4, 3),
            "opt": {"mu": jnp.zeros((4, 12), jnp.bfloat16), "count": np.asarray(3, np.int64)},
            "rng": k[1],
            "step": jnp.asarray(7, jnp.int32),
            "epoch": 3,  # Python scalars: stored as int64 / float64 / bool, restored as Python types
            "lr": 0.001,
            "done": False,
        },
        "stack.npz": (jaxlstm.init(k[2], 4, 3), jaxlstm.init(k[3], 3, 2), None),
        "keys.npz": [jax.random.key_data(k[0]), np.asarray([True, False]), np.float64(2.5)],
    }


def _checkpoint_base(base_dir: str) -> dict[str, str]:
    from jaxlstm import checkpoint

    out = {}
    for name, tree in checkpoint_trees().items():
        path = os.path.join(base_dir, name)
        if not os.path.exists(path):
            checkpoint.save(path, tree)
            with open(path, "rb") as fh:
                _write(path, normalise_zip(fh.read()))
        out[name] = path
    return out


def _torch_base(base_dir: str) -> dict[str, str]:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(SEED)
    modules = {
        "lstm": torch.nn.LSTM(4, 3),
        "bi2": torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True),
        "proj": torch.nn.LSTM(4, 5, proj_size=2),
    }
    out = {}
    for label, module in modules.items():
        sd = module.state_dict()
        for name, write in (
            (f"{label}.pt", lambda p, sd=sd: torch.save(sd, p)),
            (f"{label}.safetensors", lambda p, sd=sd: save_file(dict(sd), p)),
        ):
            path = os.path.join(base_dir, name)
            if not os.path.exists(path):
                write(path)
            out[name] = path
    path = os.path.join(base_dir, "checkpoint.pt")
    if not os.path.exists(path):
        torch.save({"state_dict": modules["lstm"].state_dict(), "epoch": 3}, path)
    out["checkpoint.pt"] = path
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def io_cases(base_dir: str) -> Iterator[Case]:
    for name, path in _io_base(base_dir).items():
        data = _read(path)
        yield from byte_cases(name, name, data)
        if name.endswith(".npz"):
            yield from npz_header_cases(name, name, data, os.path.join(base_dir, "EXECUTED-npz"))
            yield from zip_cases(
                name,
                name,
                data,
                next(i.filename for i, _ in zip_members(data) if not i.filename.startswith("__")),
            )
            yield from meta_cases(
                name,
                name,
                data,
                [
                    ("format-missing", lambda m: {k: v for k, v in m.items() if k != "format"}),
                    ("params-list", lambda m: {**m, "params": [1]}),
                    (
                        "params-stack-huge",
                        lambda m: {**m, "params": {"stack": [m["params"].get("layer", {})] * 5000}},
                    ),
                    ("fields-missing", lambda m: {**m, "params": {"layer": {"lstm": {}}}}),
                    ("tensor-renamed", lambda m: json.loads(json.dumps(m).replace('"bias"', '"nope"'))),
                    ("structure-swapped", lambda m: json.loads(json.dumps(m).replace('"lstm"', '"forward"'))),
                    ("dtypes-object", lambda m: {**m, "dtypes": {k: "object" for k in m["dtypes"]}}),
                    ("dtypes-int64", lambda m: {**m, "dtypes": {k: "int64" for k in m["dtypes"]}}),
                    ("dtypes-complex", lambda m: {**m, "dtypes": {k: "complex64" for k in m["dtypes"]}}),
                    ("dtypes-list", lambda m: {**m, "dtypes": [1, 2]}),
                    ("config-deep", lambda m: {**m, "config": json.loads(deep_json(500))}),
                    ("version-2", lambda m: {**m, "version": 2}),
                ],
            )
        else:
            yield from safetensors_cases(name, name, data)
        # the other format's bytes under this name
        other = name.rsplit(".", 1)[0] + (".npz" if name.endswith(".safetensors") else ".safetensors")
        yield Case(
            f"{name}/wrong-format/{other}",
            "wrong-format",
            name,
            _bytes_case(_read(os.path.join(base_dir, other))),
        )


def _python_leaf(metadata: dict[str, Any]) -> dict[str, Any]:
    """The first leaf saved as a Python scalar (or the first leaf, in a tree without one)."""
    return next((e for e in metadata["leaves"] if "python" in e), metadata["leaves"][0])


def checkpoint_cases(base_dir: str) -> Iterator[Case]:
    for name, path in _checkpoint_base(base_dir).items():
        data = _read(path)
        yield from byte_cases(name, name, data)
        yield from npz_header_cases(name, name, data, os.path.join(base_dir, "EXECUTED-npz"))
        yield from zip_cases(name, name, data, "leaf_0.npy")
        first = lambda m: m["leaves"][0]  # noqa: E731
        yield from meta_cases(
            name,
            name,
            data,
            [
                ("format-missing", lambda m: {k: v for k, v in m.items() if k != "format"}),
                ("leaves-1M", lambda m: {**m, "leaves": m["leaves"] * 1000}),
                ("leaves-dict", lambda m: {**m, "leaves": {"a": 1}}),
                ("leaves-ints", lambda m: {**m, "leaves": [1, 2, 3]}),
                ("leaves-empty", lambda m: {**m, "leaves": []}),
                ("treedef-int", lambda m: {**m, "treedef": 3}),
                ("shape-1TB", lambda m: (first(m).update(shape=[2**20, 2**20]), m)[1]),
                ("shape-negative", lambda m: (first(m).update(shape=[-1]), m)[1]),
                ("shape-string", lambda m: (first(m).update(shape="big"), m)[1]),
                ("shape-float", lambda m: (first(m).update(shape=[1.5]), m)[1]),
                ("dtype-object", lambda m: (first(m).update(dtype="object"), m)[1]),
                ("dtype-str", lambda m: (first(m).update(dtype="<U8"), m)[1]),
                ("dtype-unknown", lambda m: (first(m).update(dtype="float1024"), m)[1]),
                ("dtype-int", lambda m: (first(m).update(dtype=5), m)[1]),
                ("dtype-float64", lambda m: (first(m).update(dtype="float64"), m)[1]),
                (
                    "key-impl-bogus",
                    lambda m: ([e.update(key_impl="os.system") for e in m["leaves"] if "key_impl" in e], m)[
                        1
                    ],
                ),
                ("key-impl-on-weights", lambda m: (first(m).update(key_impl="threefry2x32"), m)[1]),
                (
                    "key-impl-list",
                    lambda m: ([e.update(key_impl=[1]) for e in m["leaves"] if "key_impl" in e], m)[1],
                ),
                ("path-int", lambda m: (first(m).update(path=1), m)[1]),
                # the Python-scalar marker: bogus, unhashable, on an array, on a key, its dtype swapped
                ("python-bogus", lambda m: (_python_leaf(m).update(python="os.system"), m)[1]),
                ("python-list", lambda m: (_python_leaf(m).update(python=[1]), m)[1]),
                ("python-on-array", lambda m: (first(m).update(python="float"), m)[1]),
                (
                    "python-on-key",
                    lambda m: ([e.update(python="int") for e in m["leaves"] if "key_impl" in e], m)[1],
                ),
                ("python-dtype-swapped", lambda m: (_python_leaf(m).update(dtype="float16"), m)[1]),
                (
                    "python-type-swapped",
                    lambda m: (
                        _python_leaf(m).update(python="int" if "python" in _python_leaf(m) else "bool"),
                        m,
                    )[1],
                ),
                ("entry-missing-dtype", lambda m: (first(m).pop("dtype"), m)[1]),
            ],
        )


def _torch_zip_parts(data: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    members = [(i.filename, p) for i, p in zip_members(data)]
    pkl = next(n for n, _ in members if n.endswith("/data.pkl"))
    return pkl, members


def torch_cases(base_dir: str) -> Iterator[Case]:
    import pickletools

    for name, path in _torch_base(base_dir).items():
        data = _read(path)
        yield from byte_cases(name, name, data)
        if name.endswith(".safetensors"):
            yield from safetensors_cases(name, name, data)
            continue
        pkl, members = _torch_zip_parts(data)
        yield from zip_cases(name, name, data, pkl)
        pickled = dict(members)[pkl]

        def with_pickle(new: bytes) -> Callable[[str], None]:
            return _bytes_case(make_zip([(n, new if n == pkl else p) for n, p in members]))

        for label, pk in payload_pickles(os.path.join(base_dir, "EXECUTED-torch")):
            yield Case(f"{name}/pickle-code/zip-{label}", "pickle-code", name, with_pickle(pk))
            yield Case(f"{name}/pickle-code/raw-{label}", "pickle-code", name, _bytes_case(pk))
        # numbers inside the pickle: storage sizes, shapes, strides, offsets
        ints = [
            (pos, arg)
            for op, arg, pos in pickletools.genops(pickled)
            if op.name in ("BININT1", "BININT2", "BININT")
        ]
        rng = random.Random(f"{SEED}/{name}/pickle-int")
        for k in range(12):
            pos, _ = rng.choice(ints)
            value = rng.choice([0, 2**31 - 1, 2**30, -1, 2**20])
            op = pickled[pos : pos + 1]
            width = {b"K": 2, b"M": 3, b"J": 5}[op]
            new = pickled[:pos] + b"J" + struct.pack("<i", value) + pickled[pos + width :]
            yield Case(f"{name}/pickle-int/{k}", "pickle-int", name, with_pickle(new))
        # stride 0: a tensor claiming 2^40 elements over a 4-byte storage
        stride0 = pickled.replace(b"K\x04K\x01\x86", b"K\x00K\x00\x86", 1)
        yield Case(
            f"{name}/pickle-int/stride0",
            "pickle-int",
            name,
            with_pickle(stride0.replace(b"K\x0cK\x04\x86", b"J\x00\x00\x10\x00J\x00\x00\x10\x00\x86", 1)),
        )
        for label, dtype in (
            ("long", b"LongStorage"),
            ("bool", b"BoolStorage"),
            ("half", b"HalfStorage"),
            ("complex", b"ComplexFloatStorage"),
            ("bogus", b"Bogus"),
        ):
            yield Case(
                f"{name}/pickle-dtype/{label}",
                "pickle-dtype",
                name,
                with_pickle(pickled.replace(b"FloatStorage", dtype)),
            )
        deep = b"\x80\x02" + b"]" * 1 + b"(]" * 50_000 + b"e" * 50_000 + b"."
        yield Case(f"{name}/pickle-deep/list-50k", "pickle-deep", name, with_pickle(deep))
        yield Case(f"{name}/pickle-deep/raw-list-50k", "pickle-deep", name, _bytes_case(deep))
        bigstr = b"\x80\x02X" + struct.pack("<I", 2**32 - 1) + b"abc."
        yield Case(f"{name}/pickle-length/unicode-4GB", "pickle-length", name, with_pickle(bigstr))
        yield Case(
            f"{name}/pickle-length/binbytes8",
            "pickle-length",
            name,
            with_pickle(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc."),
        )
        yield Case(f"{name}/pickle-length/raw-unicode-4GB", "pickle-length", name, _bytes_case(bigstr))
        yield Case(f"{name}/pickle-type/a-list", "pickle-type", name, with_pickle(b"\x80\x02]K\x01a."))
        yield Case(f"{name}/pickle-type/an-int", "pickle-type", name, with_pickle(b"\x80\x02K\x01."))
        yield Case(
            f"{name}/pickle-type/dict-of-ints",
            "pickle-type",
            name,
            with_pickle(b"\x80\x02}X\x01\x00\x00\x00aK\x01s."),
        )
    # legacy (non-zip) torch.save format
    import torch

    legacy = os.path.join(base_dir, "legacy.pt")
    if not os.path.exists(legacy):
        torch.manual_seed(SEED)
        torch.save(torch.nn.LSTM(4, 3).state_dict(), legacy, _use_new_zipfile_serialization=False)
    data = _read(legacy)
    yield from byte_cases("legacy.pt", "legacy.pt", data)
    for k, (old, new) in enumerate(
        [
            (b"K0", b"\x8a\x05\x00\x00\x00\x00\x01"),
            (b"K0", b"J\x00\x00\x00\x40"),
            (b"K0", b"J\x00\x00\x00\x10"),
        ]
    ):
        yield Case(
            f"legacy.pt/legacy-numel/{k}", "legacy-numel", "legacy.pt", _bytes_case(data.replace(old, new, 1))
        )


FAMILIES: dict[str, Callable[[str], Iterator[Case]]] = {
    "keras": lambda base_dir: keras_cases(),
    "io": io_cases,
    "checkpoint": checkpoint_cases,
    "torch": torch_cases,
}


# ----------------------------------------------------------------------------------------------------
# the worker


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmSize", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # kB
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _loader(family: str, base_dir: str) -> Callable[[str], Any]:
    if family == "keras":
        from jaxlstm.interop import keras_files as kf

        def run(path: str) -> Any:
            # list_layers is load_layers' first half (the same scan); contents walks the file its own way
            kf.contents(path)
            return kf.load_layers(path)

        return run
    if family == "io":
        from jaxlstm.interop import io as jio

        return jio.load
    if family == "checkpoint":
        from jaxlstm import checkpoint

        likes = checkpoint_trees()
        return lambda path: checkpoint.restore(path, likes[os.path.basename(path)])
    if family == "torch":
        from jaxlstm.interop import torch as jt

        return jt.load_torch_file
    raise ValueError(f"family: unknown {family!r}")


def _own_raise_site(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost traceback frame's file."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename if tb is not None else "?"


def classify(exc: BaseException | None, path: str) -> tuple[str, str]:
    """("ok" | "error" | "FAIL", detail) for what a loader did with the file at ``path``."""
    if exc is None:
        return "ok", ""
    chain, seen = [], exc
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:400]}"
    if any(isinstance(e, (MemoryError, RecursionError)) for e in chain):
        return (
            "FAIL",
            f"{text} (a {'MemoryError' if any(isinstance(e, MemoryError) for e in chain) else 'RecursionError'} in the chain)",
        )
    if any("allocate" in str(e) and "memory" in str(e) for e in chain):
        return "FAIL", f"{text} (an allocation failure in the chain)"
    if not isinstance(exc, ValueError):
        return "FAIL", f"{text} (not a ValueError)"
    import jaxlstm

    site = _own_raise_site(exc)
    if not site.startswith(os.path.dirname(os.path.abspath(jaxlstm.__file__)) + os.sep):
        return "FAIL", f"{text} (raised in {site}, not by jaxlstm)"
    if path not in str(exc):
        return "FAIL", f"{text} (the message does not name the file)"
    return "error", text


def worker(family: str, base_dir: str, start: int, only: str | None) -> None:
    os.makedirs(base_dir, exist_ok=True)
    cases = list(FAMILIES[family](base_dir))
    if only:
        cases = [c for c in cases if only in c.id]
    load = _loader(family, base_dir)
    emit = lambda obj: print(json.dumps(obj), flush=True)  # noqa: E731
    emit({"total": len(cases)})
    # warm up on the unmutated base files, so that a case's time and memory are the loader's own (no
    # first-call imports or compilation) and the address-space cap is set above the warmed-up size
    case_dir = os.path.join(base_dir, "case")
    for base in {c.id.split("/")[0] for c in cases}:
        src = os.path.join(FIXTURES, base) if family == "keras" else os.path.join(base_dir, base)
        try:
            load(src)
        except Exception:  # noqa: BLE001 - a base file may be one the loader refuses (legacy.pt)
            pass
    gc.collect()
    gc.freeze()  # the warmed-up heap (jax, torch) is never garbage: later collections skip it
    vm = _status()["VmSize"] * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
    for index in range(start, len(cases)):
        case = cases[index]
        emit({"start": index, "id": case.id})
        shutil.rmtree(case_dir, ignore_errors=True)
        os.makedirs(case_dir)
        path = os.path.join(case_dir, case.name)
        tb = time.perf_counter()
        try:
            case.build(path)
        except Exception as e:  # noqa: BLE001 - a bug of this harness, reported as a failure
            emit(
                {
                    "done": index,
                    "id": case.id,
                    "kind": case.kind,
                    "outcome": "FAIL",
                    "detail": f"harness: could not build the case: {e!r}",
                }
            )
            continue
        tg = time.perf_counter()
        gc.collect()
        tg = time.perf_counter() - tg
        tb = time.perf_counter() - tb - tg
        before = _status()["VmRSS"]
        _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        exc: BaseException | None = None
        try:
            load(path)
        except BaseException as e:  # noqa: BLE001 - everything is classified, even SystemExit
            exc = e
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = _status()["VmHWM"]
        outcome, detail = classify(exc, path)
        markers = [
            m for d in (base_dir, case_dir, os.getcwd()) for m in os.listdir(d) if m.startswith("EXECUTED")
        ]
        if markers:
            outcome, detail = "FAIL", f"code from the file ran (created {markers}); {detail}"
            for d in (base_dir, case_dir, os.getcwd()):
                for m in os.listdir(d):
                    if m.startswith("EXECUTED"):
                        os.unlink(os.path.join(d, m))
        if outcome != "FAIL" and cpu > TIME_BUDGET_S:
            outcome, detail = "FAIL", f"took {cpu:.2f} s of CPU ({elapsed:.2f} s wall); {detail}"
        if outcome != "FAIL" and (peak - before) / 1024 > MEMORY_BUDGET_MB:
            outcome, detail = "FAIL", f"peak memory +{(peak - before) / 1024:.0f} MB; {detail}"
        if outcome == "FAIL" and exc is not None and os.environ.get("FUZZ_TRACEBACK"):
            detail += "\n" + "".join(traceback.format_exception(exc))
        emit(
            {
                "done": index,
                "id": case.id,
                "kind": case.kind,
                "outcome": outcome,
                "detail": detail,
                "time": round(elapsed, 4),
                "cpu": round(cpu, 4),
                "mb": round((peak - before) / 1024, 1),
                "build_s": round(tb, 4),
                "gc_s": round(tg, 4),
            }
        )
        del exc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("base_dir")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--only", default=None, help="run only the cases whose id contains this")
    args = parser.parse_args()
    sys.setrecursionlimit(1000)
    worker(args.family, args.base_dir, args.start, args.only)


if __name__ == "__main__":
    main()
