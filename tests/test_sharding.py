"""Data parallelism: a step split over 4 (forced host) devices equals the step on one device.

The device count is fixed when jax starts, so the 4-device checks run in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; the flag never touches this process.
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
from _examples import ROOT
from conftest import require

import jaxlstm
from jaxlstm import sharding

FOUR_DEVICES = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxlstm
    from jaxlstm import sharding

    assert jax.device_count() == 4, jax.devices()
    params = jaxlstm.init(jax.random.key(0), 3, 8)
    readout = jax.random.normal(jax.random.key(1), (8,))
    model = (params, readout)
    opt = optax.adam(1e-2)
    xs = jax.random.normal(jax.random.key(2), (16, 12, 3))
    ys = jax.random.normal(jax.random.key(3), (16,))

    def loss_fn(model, xs, ys):
        params, readout = model
        return jnp.mean((jaxlstm.lstm(params, xs).state.h @ readout - ys) ** 2)

    def train_step(state, xs, ys):
        model, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(model, xs, ys)
        updates, opt_state = opt.update(grads, opt_state, model)
        return (optax.apply_updates(model, updates), opt_state), loss, grads

    state = (model, opt.init(model))
    one_device = jax.jit(train_step)(state, xs, ys)
    mesh = sharding.batch_mesh()
    four = sharding.data_parallel(train_step, mesh)(state, xs, ys)

    # Per-example outputs can stay split: ask for P("batch").
    per_example = sharding.data_parallel(
        lambda model, xs: jaxlstm.lstm(model[0], xs).state.h, mesh,
        out_shardings=NamedSharding(mesh, P("batch")),
    )(model, xs)

    def maxdiff(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    placed = sharding.shard_batch(xs, mesh)
    try:
        sharding.data_parallel(train_step, mesh)(state, xs[:10], ys[:10])
        error = None
    except ValueError as exc:
        error = str(exc)
    replicated = NamedSharding(mesh, P())
    print(json.dumps({
        "devices": len(mesh.devices.flat),
        "loss": [float(one_device[1]), float(four[1])],
        "grad_diff": maxdiff(one_device[2], four[2]),
        "state_diff": maxdiff(one_device[0], four[0]),
        "outputs_replicated": all(x.sharding == replicated for x in jax.tree.leaves(four)),
        "grads_on_all_devices": all(len(x.sharding.device_set) == 4 for x in jax.tree.leaves(four[2])),
        "per_example_spec": list(per_example.sharding.spec),
        "per_example_as_asked": per_example.sharding == NamedSharding(mesh, P("batch")),
        "per_example_shards": sorted(s.data.shape[0] for s in per_example.addressable_shards),
        "per_example_diff": float(jnp.max(jnp.abs(per_example - jaxlstm.lstm(params, xs).state.h))),
        "input_shards": sorted(s.data.shape[0] for s in placed.addressable_shards),
        "indivisible_error": error,
    }))
    """
)


@pytest.fixture()
def four_devices() -> dict:
    require("optax")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_flag_does_not_leak_into_this_process() -> None:
    assert "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")


@pytest.mark.long
def test_four_devices_step_equals_one_device_step(four_devices: dict) -> None:
    # One test for the one subprocess, so that pytest-xdist does not start it once per worker.
    assert four_devices["devices"] == 4
    one, four = four_devices["loss"]
    assert abs(one - four) <= 1e-5 * max(1.0, abs(one))
    assert four_devices["grad_diff"] <= 1e-5
    assert four_devices["state_diff"] <= 1e-5  # the Adam update too

    # The output shardings are what was asked for.
    assert four_devices["input_shards"] == [4, 4, 4, 4]  # 16 examples, 4 per device
    assert four_devices["outputs_replicated"]  # default out_shardings: P()
    assert four_devices["grads_on_all_devices"]
    assert four_devices["per_example_spec"] == ["batch"]
    assert four_devices["per_example_as_asked"]
    assert four_devices["per_example_shards"] == [4, 4, 4, 4]
    assert four_devices["per_example_diff"] <= 1e-6

    # A batch that does not divide the device count is a clear error.
    assert four_devices["indivisible_error"] == (
        "args[1]: a batch of 10 examples does not split evenly over the 4 devices of mesh axis "
        "'batch'; use a batch size that is a multiple of 4 (drop the remainder, or pad and weight "
        "the loss)"
    )


def test_one_device_runs_unchanged_and_errors_are_clear() -> None:
    mesh = sharding.batch_mesh(jax.devices()[:1])
    params = jaxlstm.init(jax.random.key(0), 3, 4)
    xs = jax.random.normal(jax.random.key(1), (5, 6, 3))

    def loss(params, xs):
        return jnp.mean(jaxlstm.lstm(params, xs).sequence ** 2)

    value, grads = sharding.data_parallel(jax.value_and_grad(loss), mesh)(params, xs)
    expected, expected_grads = jax.jit(jax.value_and_grad(loss))(params, xs)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grads.kernel, expected_grads.kernel, rtol=1e-5, atol=1e-7)

    with pytest.raises(ValueError, match=r"axis_name: 'data' is not an axis of the mesh \{'batch': 1\}"):
        sharding.data_parallel(loss, mesh, axis_name="data")
    with pytest.raises(ValueError, match="batch_argnums: 5 is out of range for 2 arguments"):
        sharding.data_parallel(loss, mesh, batch_argnums=5)(params, xs)
    with pytest.raises(
        ValueError, match=r"batch\['lr'\]: expected an array with a leading batch axis, found a scalar"
    ):
        sharding.shard_batch({"lr": 0.1}, mesh)
    with pytest.raises(ValueError, match="devices: expected at least one device, found none"):
        sharding.batch_mesh([])


TWO_PROCESSES = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    process, port = int(sys.argv[1]), sys.argv[2]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process)
    import jax.numpy as jnp, numpy as np
    import jaxlstm
    from jaxlstm import sharding

    params = jaxlstm.init(jax.random.key(0), 3, 4)
    xs = np.asarray(jax.random.normal(jax.random.key(1), (8, 6, 3)))
    mine = xs[4 * process : 4 * (process + 1)]  # each process passes only its own share

    def loss(params, xs):
        return jnp.mean(jaxlstm.lstm(params, xs).sequence ** 2)

    value, grads = sharding.data_parallel(jax.value_and_grad(loss), sharding.batch_mesh())(params, mine)
    print(json.dumps({
        "devices": jax.device_count(), "local_devices": jax.local_device_count(),
        "loss": float(value), "kernel_grad": np.asarray(grads.kernel).tolist(),
    }))
    """
)


@pytest.mark.long
def test_multi_process_data_parallel_after_distributed_initialize() -> None:
    """Two processes, one CPU device each, joined by jax.distributed.initialize (the multi-host path)."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(i), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    params = jaxlstm.init(jax.random.key(0), 3, 4)
    xs = jax.random.normal(jax.random.key(1), (8, 6, 3))
    value, grads = jax.value_and_grad(lambda p: jnp.mean(jaxlstm.lstm(p, xs).sequence ** 2))(params)
    for result in results:
        assert result["devices"] == 2 and result["local_devices"] == 1
        np.testing.assert_allclose(result["loss"], float(value), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(result["kernel_grad"]), grads.kernel, rtol=1e-5, atol=1e-6)


def test_batch_parallel_on_one_device_equals_lstm_and_checks_its_arguments() -> None:
    mesh = sharding.batch_mesh(jax.devices()[:1])
    params = jaxlstm.init(jax.random.key(0), 3, 4)
    xs = jax.random.normal(jax.random.key(1), (5, 6, 3))
    split = sharding.batch_parallel(lambda p, x: jaxlstm.lstm(p, x), mesh)
    out, expected = split(params, xs), jaxlstm.lstm(params, xs)
    np.testing.assert_allclose(out.sequence, expected.sequence, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.state.c, expected.state.c, rtol=1e-6, atol=1e-7)

    with pytest.raises(
        ValueError, match=r"args\[1\]\.h: expected an array with a leading batch axis, found a scalar"
    ):
        sharding.batch_parallel(lambda p, s: s, mesh)(params, jaxlstm.LSTMState(h=jnp.float32(0), c=xs))
    with pytest.raises(ValueError, match="batch_argnums: 2 is out of range for 2 arguments"):
        sharding.batch_parallel(lambda p, x: x, mesh, batch_argnums=2)(params, xs)
    with pytest.raises(ValueError, match=r"axis_name: 'data' is not an axis of the mesh \{'batch': 1\}"):
        sharding.batch_parallel(lambda p, x: x, mesh, axis_name="data")
