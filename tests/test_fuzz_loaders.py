"""Hostile files: every loader, fed a few thousand corrupted, truncated and crafted files.

The cases and the worker that loads them live in ``tests/_fuzz_loaders.py`` (see its docstring for the
families and what each case must do). Here, one worker subprocess per family loads its cases one after
another; this parent watches it, so that a crash (the worker dies) or a hang (no word for
``HANG_S``) is reported as a failure of the case that caused it, and a fresh worker carries on after it.

Every case must end, within 2 s of CPU time and 200 MB of peak resident memory, either in a normal
return (some mutations leave a valid file) or in a ``ValueError`` (or subclass) raised by jaxlstm whose
message names the file; never a crash, hang, MemoryError, foreign exception, or code from the file
running. About 3100 cases, about a minute of CPU in all.

Set ``FUZZ_REPORT=<dir>`` to keep each family's results as JSON lines there.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "_fuzz_loaders.py")
START_S = 180.0  # imports, case generation and warm-up of a worker on a busy 2-core machine
HANG_S = 20.0  # no answer for this long after "start": the case hung (the budget itself is 2 s)
PEERS = {"keras": ["h5py"], "io": ["safetensors"], "checkpoint": [], "torch": ["torch", "safetensors"]}


def _run_worker(
    family: str, base_dir: str, start: int, results: list[dict[str, Any]]
) -> tuple[int | None, int]:
    """Run one worker from case ``start``; append its results. Returns (the case it crashed or hung
    on, or None when it finished; the total number of cases)."""
    env = dict(
        os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), KERAS_BACKEND="jax"
    )
    proc = subprocess.Popen(
        [sys.executable, WORKER, family, base_dir, "--start", str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=base_dir,
        env=env,
    )
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    total, current, buffer = 0, None, b""
    deadline = time.monotonic() + START_S
    try:
        while True:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not selector.select(timeout):
                proc.kill()
                proc.wait()
                if current is None:
                    raise AssertionError(f"fuzz worker {family} did not start within {START_S} s")
                results.append(
                    {
                        "done": current[0],
                        "id": current[1],
                        "kind": "?",
                        "outcome": "FAIL",
                        "detail": f"hang: no answer within {HANG_S} s",
                    }
                )
                return current[0], total
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                proc.wait()
                stderr = proc.stderr.read().decode(errors="replace")[-2000:]
                if current is None:
                    if total and not results:
                        return None, total
                    if proc.returncode == 0:
                        return None, total
                    raise AssertionError(f"fuzz worker {family} failed before its first case:\n{stderr}")
                results.append(
                    {
                        "done": current[0],
                        "id": current[1],
                        "kind": "?",
                        "outcome": "FAIL",
                        "detail": f"crash: the worker died (exit status {proc.returncode}): {stderr[-500:]}",
                    }
                )
                return current[0], total
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                if "total" in event:
                    total = event["total"]
                elif "start" in event:
                    current = (event["start"], event["id"])
                    deadline = time.monotonic() + HANG_S
                elif "done" in event:
                    results.append(event)
                    current = None
                    deadline = time.monotonic() + HANG_S
    finally:
        selector.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def run_family(family: str, base_dir: str) -> tuple[list[dict[str, Any]], int]:
    results: list[dict[str, Any]] = []
    start = 0
    while True:
        stopped, total = _run_worker(family, base_dir, start, results)
        if stopped is None:
            return results, total
        start = stopped + 1
        if start >= total:
            return results, total


@pytest.mark.parametrize("family", sorted(PEERS))
@pytest.mark.long
def test_hostile_files_end_in_a_clear_error(family: str, tmp_path) -> None:
    for peer in PEERS[family]:
        require(peer)
    t0 = time.monotonic()
    results, total = run_family(family, str(tmp_path))
    wall = time.monotonic() - t0
    report = os.environ.get("FUZZ_REPORT")
    if report:
        os.makedirs(report, exist_ok=True)
        with open(os.path.join(report, f"{family}.jsonl"), "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    counts = collections.Counter((r.get("kind", "?"), r["outcome"]) for r in results)
    timed = [r for r in results if "time" in r]
    slowest = max(timed, key=lambda r: r["time"])
    largest = max(timed, key=lambda r: r["mb"])
    print(
        f"\n{family}: {len(results)} cases in {wall:.1f} s; slowest {slowest['time']:.3f} s ({slowest['id']}), "
        f"most memory +{largest['mb']:.0f} MB ({largest['id']})"
    )
    for (kind, outcome), n in sorted(counts.items()):
        print(f"  {kind:16s} {outcome:6s} {n}")
    assert len(results) == total and total > 100
    failures = [f"{r['id']}: {r['detail']}" for r in results if r["outcome"] == "FAIL"]
    assert not failures, f"{len(failures)} of {total} hostile {family} files were mishandled:\n" + "\n".join(
        failures[:60]
    )


# ----------------------------------------------------------------------------------------------------
# What the fuzzing changed for valid files, checked directly.

FIXTURES = os.path.join(HERE, "fixtures", "tf")


def test_big_endian_weights_load_with_their_values(tmp_path) -> None:
    # Found by the fuzzing: an HDF5 dataset stored big-endian reached jnp.asarray, which refuses it.
    h5py = require("h5py")
    import numpy as np

    from jaxlstm.interop import keras_files as kf

    src = os.path.join(FIXTURES, "seed_keras3.weights.h5")
    dst = tmp_path / "big-endian.weights.h5"
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            data = f[n][()]
            del f[n]
            f[n] = data.astype(data.dtype.newbyteorder(">"))
        assert f["layers/lstm/cell/vars/0"].dtype.str == ">f4"
    want, got = kf.load_layer(src, "seed_lstm"), kf.load_layer(dst, "seed_lstm")
    for a, b in zip(want, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_deflated_zips_still_load(tmp_path) -> None:
    """Keras, numpy and torch store zip members uncompressed; a file someone recompressed (deflate)
    is still read, within the documented inflation limit."""
    import zipfile

    import numpy as np

    import jaxlstm
    from jaxlstm.interop import io as jio
    from jaxlstm.interop import keras_files as kf

    require("h5py")
    src = os.path.join(FIXTURES, "seed_keras3.keras")
    dst = tmp_path / "deflated.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
    for a, b in zip(kf.load_layer(src, "seed_lstm"), kf.load_layer(dst, "seed_lstm")):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    params = jaxlstm.init(__import__("jax").random.key(0), 4, 3)
    plain, packed = tmp_path / "p.npz", tmp_path / "packed.npz"
    jio.save(plain, params)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
    for a, b in zip(jio.load(packed)[0], params):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_hostile_claims_are_refused_with_what_they_claim(tmp_path) -> None:
    """A few of the fuzz cases, with the exact refusal: the claim, the file, the cause."""
    import zipfile

    import _fuzz_loaders as cases
    import numpy as np

    from jaxlstm.interop import InvalidFileError
    from jaxlstm.interop import io as jio

    huge = cases.npy_member(
        b"\0" * 16, "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }"
    )
    (tmp_path / "huge.npz").write_bytes(cases.make_zip([("kernel.npy", huge)]))
    with pytest.raises(
        InvalidFileError,
        match=r"huge.npz.*'kernel.npy' claims shape \[1048576, 1048576\] of float32 \(4398046511104 bytes\) but holds 16 bytes",
    ):
        jio.load(tmp_path / "huge.npz")
    marker = tmp_path / "EXECUTED"
    obj = cases.npy_member(
        cases.call_pickle("builtins", "open", str(marker), "w"),
        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
    )
    (tmp_path / "obj.npz").write_bytes(cases.make_zip([("__jaxlstm__.npy", obj)]))
    with pytest.raises(
        InvalidFileError,
        match=r"not a readable pickle-free .npz file: member '__jaxlstm__.npy' holds Python objects",
    ):
        jio.load(tmp_path / "obj.npz")
    assert not marker.exists()
    (tmp_path / "evil.npz").write_bytes(cases.make_zip([("../evil.npy", np.lib.format.__name__.encode())]))
    with pytest.raises(
        InvalidFileError, match=r"zip member named '../evil.npy' \(absolute or leaving the archive"
    ):
        jio.load(tmp_path / "evil.npz")
    deep = tmp_path / "deep.npz"
    blob = np.frombuffer(cases.deep_json(100_000).encode(), np.uint8)
    np.savez(deep, __jaxlstm__=blob)
    with pytest.raises(InvalidFileError, match="header nested deeper than 100 levels") as info:
        jio.load(deep)
    assert info.value.__cause__ is None and info.value.__context__ is None  # no RecursionError trail
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("kernel.npy", b"\0" * (65 << 20))
    with pytest.raises(InvalidFileError, match=r"deflated zip member 'kernel.npy' claims 68157440 bytes"):
        jio.load(tmp_path / "bomb.npz")


def test_legacy_torch_files_are_refused_without_unpickling(tmp_path) -> None:
    torch = require("torch")
    from jaxlstm.interop import torch as jt

    path = tmp_path / "legacy.pt"
    torch.save(torch.nn.LSTM(4, 3).state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(
        jt.InvalidFileError,
        match=r"legacy.pt' is not a readable weights-only PyTorch file \(nothing from it was executed\): not in the zip format",
    ):
        jt.load_torch_file(path)
