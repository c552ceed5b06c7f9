"""Every transformation of ``jax.shard_map`` over the batch (2 host devices) around the entry
points equals the reference scan on one device, in float64 (issue 12).

Two forced host devices need a fresh process (the device count is fixed when jax starts), as in
``test_shard_map.py``; the subprocess reuses ``_transform_cases`` and reports one line per cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from _examples import ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)  # this process only
    import numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxlstm
    import _transform_cases as tc

    assert jax.device_count() == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    batch = P("batch")

    def sharded(name, fn, tree, impl=tc.AUTO):
        # The call under test runs split over the batch; the reference runs whole, with the scan.
        # Mask and lengths are split with the batch too (arguments, not differentiated).
        extra = (tc.MASK, tc.LENGTHS)
        def run(impl, tree):
            if impl == "scan":
                return fn(impl, *tree, *extra)
            specs = (P(), batch, batch, batch, batch)
            split = jax.shard_map(lambda *a: fn(impl, *a), mesh=mesh, in_specs=specs, out_specs=batch)
            return split(*tree, *extra)
        return lambda: tc._case(name, tree, run, impl=impl)

    def lstm(impl, params, xs, state, mask, lengths):
        return jaxlstm.lstm(params, xs, state, **tc.impl_kwargs(impl))

    def lstm_chunks(impl, params, xs, state, mask, lengths):
        kw = tc.impl_kwargs(impl)
        return jaxlstm.lstm(params, xs, state, mask=mask, lengths=lengths, reverse=True, **kw)

    def lstm_variant(impl, params, xs, state, mask, lengths):
        # Layer norm, peepholes and zoneout's expectation, with the mask's flags as episode starts
        # (each shard gets its own rows of them).
        kw = tc.impl_kwargs(impl)
        return jaxlstm.lstm(params, xs, state, resets=mask, zoneout=(0.2, 0.1), **kw)

    one = (tc._params(0), tc._xs(), tc._state(10))
    variant = (tc._variant_params(0, layer_norm=True, peepholes=True), tc._xs(), tc._state(10))
    factories = {
        "lstm": sharded("lstm", lstm, one),
        "lstm_chunks": sharded("lstm_chunks", lstm_chunks, one, tc.CHUNKS),
        "lstm_variant": sharded("lstm_variant", lstm_variant, variant),
    }
    CELLS = {
        # (test_shard_map.py checks grad of every entry point under shard_map; the other entry
        # points call lstm, so forward and second order through lstm stand for them here)
        "lstm": ("linearize", "hvp"),
        "lstm_chunks": ("linearize",),
        "lstm_variant": ("linearize",),
    }
    report = {}
    for name, factory in factories.items():
        tc._FACTORIES["shard_map:" + name] = factory
        # The reference is looked up by the case's own name: a case of its own (scan, unsharded).
        tc._FACTORIES.setdefault(name, factory)
        transforms = CELLS[name]
        for transform in transforms:
            try:
                tc.check("shard_map:" + name, transform, "none")
                report[f"{name}-{transform}"] = "ok"
            except Exception as exc:  # one line per failing cell, for the report
                report[f"{name}-{transform}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    print(json.dumps(report))
    """
)


@pytest.mark.long
def test_shard_map_over_the_batch() -> None:
    # One test for the one subprocess, so that pytest-xdist does not start it once per worker.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == 4, report
    failing = {cell: result for cell, result in report.items() if result != "ok"}
    assert not failing, json.dumps(failing, indent=1)
