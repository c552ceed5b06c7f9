"""``jax.shard_map`` over the batch: every entry point equals the unsplit computation.

Inside ``shard_map`` values are typed with the mesh axes they vary over; a scan whose zero initial
carry is invariant but is updated from a batch shard would change type, and a ``custom_vjp`` must
return its replicated parameters' cotangents summed over the mesh. Both broke ``jaxlstm.lstm`` in
``shard_map`` until ``_manual_axes`` handled them. ``sharding.batch_parallel`` (the shard_map helper)
is checked too, inside a ``data_parallel`` step. Two forced host devices run in a fresh process
(the device count is fixed when jax starts); the flag never touches this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from _examples import ROOT

TWO_DEVICES = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxlstm
    from jaxlstm import fast

    assert jax.device_count() == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    B, T, I, H = 4, 7, 3, 5
    params = jaxlstm.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    mask = jax.random.uniform(jax.random.key(2), (B, T)) > 0.3
    lengths = jnp.array([7, 3, 0, 5])
    h0 = jax.random.normal(jax.random.key(3), (B, H))  # per example: split with the batch
    c0 = jax.random.normal(jax.random.key(4), (H,))    # one for all: replicated, broadcast
    bi = jaxlstm.init_bidirectional(jax.random.key(5), I, H)
    stack = jaxlstm.init_stack(jax.random.key(6), I, H, num_layers=2, bidirectional=True)

    def split(fn, in_specs):
        return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P("batch")))

    def lstm_case(impl, **kw):
        def run(params, xs, h0, c0, mask, lengths):
            state = jaxlstm.LSTMState(h=h0, c=jnp.broadcast_to(c0, h0.shape))
            out = jaxlstm.lstm(params, xs, state, mask=mask, lengths=lengths, impl=impl, **kw)
            return jnp.concatenate([out.sequence.reshape(xs.shape[0], -1), out.state.h, out.state.c], -1)
        return run, (params, xs, h0, c0, mask, lengths), (P(), P("batch"), P("batch"), P(), P("batch"), P("batch"))

    def chunks_case():
        cfg = fast.FastConfig(checkpoint_chunks=3)
        def run(params, xs, h0, c0, mask, lengths):
            tm = jnp.swapaxes(xs, 0, 1)
            ys, h, c = fast.lstm_time_major(params, tm, h0, jnp.broadcast_to(c0, h0.shape),
                                            jnp.swapaxes(mask, 0, 1), config=cfg)
            return jnp.concatenate([jnp.swapaxes(ys, 0, 1).reshape(xs.shape[0], -1), h, c], -1)
        return run, (params, xs, h0, c0, mask, lengths), (P(), P("batch"), P("batch"), P(), P("batch"), P("batch"))

    def bidirectional_case():
        def run(bi, xs, mask):
            return jaxlstm.bidirectional(bi, xs, mask=mask).sequence.reshape(xs.shape[0], -1)
        return run, (bi, xs, mask), (P(), P("batch"), P("batch"))

    def stack_case():
        def run(stack, xs, lengths):
            return jaxlstm.stacked_lstm(stack, xs, lengths=lengths).sequence.reshape(xs.shape[0], -1)
        return run, (stack, xs, lengths), (P(), P("batch"), P("batch"))

    def maxdiff(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    cases = {
        "lstm auto": lstm_case("auto"),
        "lstm auto reverse": lstm_case("auto", reverse=True),
        "lstm scan": lstm_case("scan"),
        "lstm scan reverse zero_output": lstm_case("scan", reverse=True, zero_output_for_mask=True),
        "fast checkpoint_chunks": chunks_case(),
        "bidirectional": bidirectional_case(),
        "stacked bidirectional": stack_case(),
    }
    report = {}
    for name, (run, args, specs) in cases.items():
        whole = jax.jit(run)(*args)
        parts = split(run, specs)(*args)
        # Gradient of a loss over the whole batch with respect to every float argument: replicated
        # ones (parameters, c0) come back summed over the devices, split ones (xs, h0) per shard.
        floats = [i for i, a in enumerate(args) if jnp.issubdtype(jax.tree.leaves(a)[0].dtype, jnp.floating)]
        weights = jax.random.normal(jax.random.key(7), whole.shape)
        def loss(fn, *fargs):
            full = list(args)
            for i, a in zip(floats, fargs):
                full[i] = a
            return jnp.sum(fn(*full) * weights)
        fargs = [args[i] for i in floats]
        grads_whole = jax.jit(jax.grad(lambda *a: loss(run, *a), argnums=tuple(range(len(fargs)))))(*fargs)
        grads_parts = jax.jit(jax.grad(lambda *a: loss(split(run, specs), *a), argnums=tuple(range(len(fargs)))))(*fargs)
        report[name] = {
            "shape": list(parts.shape), "value": maxdiff(whole, parts), "grad": maxdiff(grads_whole, grads_parts),
            "grad_scale": max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads_whole)),
        }
    # sharding.batch_parallel: the LSTM call split over the devices, inside a data_parallel step.
    from jaxlstm import sharding
    lstm_split = sharding.batch_parallel(lambda p, x, m: jaxlstm.lstm(p, x, mask=m), mesh)
    def loss(p, x, m, lstm):
        out = lstm(p, x, m)
        return jnp.mean(out.sequence ** 2) + jnp.mean(out.state.c ** 2)
    whole = jax.value_and_grad(loss)(params, xs, mask, lambda p, x, m: jaxlstm.lstm(p, x, mask=m))
    parts = sharding.data_parallel(jax.value_and_grad(lambda p, x, m: loss(p, x, m, lstm_split)), mesh)(
        params, xs, mask)
    out = jax.jit(lstm_split)(params, xs, mask)
    # Without shard_map, XLA partitions the step itself: the fast path's backward must keep the
    # batch split local (it contracts (t, b) directly; reshaping to T*B rows made XLA all-gather).
    from jax.sharding import NamedSharding
    step = jax.jit(jax.value_and_grad(lambda p, x, m: loss(p, x, m, lambda p, x, m: jaxlstm.lstm(p, x, mask=m))),
                   in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P("batch")), NamedSharding(mesh, P("batch"))))
    hlo = step.lower(params, xs, mask).compile().as_text()
    try:
        lstm_split(params, xs[:3], mask[:3])
        error = None
    except ValueError as exc:
        error = str(exc)
    report["batch_parallel"] = {
        "shape": list(out.sequence.shape), "value": maxdiff(whole[0], parts[0]), "grad": maxdiff(whole[1], parts[1]),
        "grad_scale": max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(whole[1])),
        "output_spec": list(out.sequence.sharding.spec), "indivisible_error": error,
        "partitioned_all_gathers": hlo.count(" all-gather("),
    }
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_shard_map_over_the_batch_equals_one_device(two_devices: dict) -> None:
    # One test for the one subprocess, so that pytest-xdist does not start it once per worker.
    assert len(two_devices) == 8
    split = two_devices["batch_parallel"]
    assert split["output_spec"] == ["batch"]  # outputs stay split over the devices
    assert split["partitioned_all_gathers"] == 0
    assert split["indivisible_error"] == (
        "args[1]: a batch of 3 examples does not split evenly over the 2 devices of mesh axis "
        "'batch'; use a batch size that is a multiple of 2 (drop the remainder, or pad and weight "
        "the loss)"
    )
    for name, result in two_devices.items():
        assert result["shape"][0] == 4, name
        assert result["value"] <= 1e-5, (name, result)
        assert result["grad_scale"] > 0.1, (name, result)  # the gradients are not trivially zero
        assert result["grad"] <= 1e-5 * max(1.0, result["grad_scale"]), (name, result)
