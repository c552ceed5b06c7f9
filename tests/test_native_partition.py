"""The native calls partition over the batch: ``jit`` with batch-sharded inputs on 2 host devices
runs each call on its local batch, with no all-gather, and computes what one device computes.

The check reads the compiled HLO (the custom calls' local shapes, the collectives) under both of
XLA's partitioners (Shardy, the default, and GSPMD), for a training step with a mask and for a
forward pass with lengths, and compares the values and gradients with the same step on one device
and with ``impl="scan"``. Also here: ``vmap`` of the calls, with shared and with per-example
weights. The 2-device run is a subprocess (the device count is fixed when jax starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlstm import fast, native
from jaxlstm.pytrees import LSTMParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_native = pytest.mark.skipif(
    not native.available(), reason=f"native extension unavailable: {native.why_unavailable()}"
)

_TWO_DEVICES = textwrap.dedent(
    """
    import json, re, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxlstm
    from jaxlstm import sharding

    assert jax.device_count() == 2, jax.devices()
    mesh = sharding.batch_mesh()
    rep, bat = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
    B, T, I, H = 6, 7, 3, 37  # H not a multiple of the vector width; 3 examples per device
    params = jaxlstm.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    mask = jax.random.uniform(jax.random.key(2), (B, T)) > 0.3
    lengths = jnp.array([7, 0, 3, 1, 7, 5])

    def step(impl):
        def loss(p, x, m):
            out = jaxlstm.lstm(p, x, mask=m, impl=impl)
            return jnp.mean(out.sequence ** 2) + jnp.mean(out.state.c ** 2)
        return jax.value_and_grad(loss, argnums=(0, 1))

    def forward(impl):
        return lambda p, x, n: jaxlstm.lstm(p, x, lengths=n, reverse=True, impl=impl).sequence

    def maxdiff(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    report = {}
    for partitioner in ("shardy", "gspmd"):
        jax.config.update("jax_use_shardy_partitioner", partitioner == "shardy")
        for name, make, args in (("step", step, (params, xs, mask)), ("forward", forward, (params, xs, lengths))):
            split = jax.jit(make("native"), in_shardings=(rep, bat, bat))
            hlo = split.lower(*args).compile().as_text()
            calls = [l for l in hlo.splitlines() if "custom-call(" in l and "jaxlstm_native" in l]
            local = [re.findall(r"f32\\[(\\d+),1,1,", l.split("custom-call(")[0]) for l in calls]
            out = split(*args)
            report[f"{partitioner} {name}"] = {
                "calls": len(calls),
                "local_batches": sorted({int(b) for bs in local for b in bs}),
                "all_gathers": hlo.count(" all-gather("),
                "all_to_alls": hlo.count(" all-to-all("),
                "vs_one_device": maxdiff(out, jax.jit(make("native"))(*args)),
                "vs_scan": maxdiff(out, jax.jit(make("scan"))(*args)),
            }
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    run = subprocess.run(
        [sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@needs_native
@pytest.mark.long
def test_data_parallel_calls_run_on_the_local_batch_without_gathering(two_devices: dict) -> None:
    assert sorted(two_devices) == ["gspmd forward", "gspmd step", "shardy forward", "shardy step"]
    for name, r in two_devices.items():
        # The step has the forward and the backward call, the forward pass one; each on 3 of 6.
        assert r["calls"] == (2 if name.endswith("step") else 1), (name, r)
        assert r["local_batches"] == [3], (name, r)
        assert r["all_gathers"] == 0 and r["all_to_alls"] == 0, (name, r)
        assert r["vs_one_device"] <= 1e-6, (name, r)
        assert r["vs_scan"] <= 1e-5, (name, r)


def _problem(T, B, I, H, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.normal(size=s) * 0.4, jnp.float32)  # noqa: E731
    return f(I, 4 * H), f(H, 4 * H), f(4 * H), f(T, B, I), f(B, H), f(B, H)


def _fast_path(W, U, b, xs, h0, c0, keep=None):
    """``(ys, h_T, c_T)`` of the pure-JAX fast path (public entry point, no native kernels)."""
    return fast.lstm_time_major(LSTMParams(W, U, b, None), xs, h0, c0, keep)


@needs_native
def test_vmap_folds_shared_weights_into_one_call() -> None:
    W, U, b, _, h0, c0 = _problem(5, 3, 4, 9)
    xs = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3, 4)), jnp.float32)
    keep = jnp.asarray(np.random.default_rng(2).random((2, 5, 3)) > 0.3)

    def run(x, k):
        return native.forward(W, U, b, x, h0, c0, k, None, zero_output=False, save=True)

    jaxpr = str(jax.make_jaxpr(jax.vmap(run))(xs, keep))
    assert jaxpr.count("jaxlstm_native_forward") == 1 and "while" not in jaxpr
    got = jax.jit(jax.vmap(run))(xs, keep)
    want = jax.vmap(lambda x, k: _fast_path(W, U, b, x, h0, c0, k))(xs, keep)
    for g, w in zip(got[:3], want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # The residuals: those of one call per example (test_native.py checks those against a scan).
    for i in range(2):
        for g, w in zip(got[3], run(xs[i], keep[i])[3]):
            np.testing.assert_allclose(g[i], w, rtol=1e-6, atol=1e-6)
    # The backward call folds the same way.
    _, _, _, (z, _, c_prev) = got
    d_ys = jnp.ones_like(got[0])
    d_h = jnp.ones_like(got[1])
    back = jax.vmap(
        lambda z, cp, dy, dh, k: native.backward_recurrence(U, z, cp, k, None, dy, dh, dh, zero_output=False)
    )
    jaxpr = str(jax.make_jaxpr(back)(z, c_prev, d_ys, d_h, keep))
    assert jaxpr.count("jaxlstm_native_backward") == 1
    per_example = [
        native.backward_recurrence(
            U, z[i], c_prev[i], keep[i], None, d_ys[i], d_h[i], d_h[i], zero_output=False
        )
        for i in range(2)
    ]
    for g, w in zip(back(z, c_prev, d_ys, d_h, keep), zip(*per_example)):
        np.testing.assert_allclose(g, jnp.stack(w), rtol=1e-6, atol=1e-6)


@needs_native
def test_vmap_with_per_example_weights_runs_one_call_per_example() -> None:
    W, U, b, xs, h0, c0 = _problem(4, 2, 3, 6)
    scale = jnp.asarray([0.5, 1.0, 1.5], jnp.float32)

    def run(s):
        return native.forward(W * s, U * s, b, xs, h0, c0, None, None, zero_output=False, save=False)[:3]

    got = jax.jit(jax.vmap(run))(scale)
    want = jax.vmap(lambda s: _fast_path(W * s, U * s, b, xs, h0, c0))(scale)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
