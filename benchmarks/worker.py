"""One benchmark measurement in one process: ``python benchmarks/worker.py IMPL TASK [options]``.

The driver (``bench.py``) starts one of these per implementation and shape, so implementations never
share a process (they would fight over threads, caches and allocators) and each reports its own
peak RSS. Prints one JSON object on the last line of stdout.

IMPL: jaxlstm[:impl|:Ndev] | flax | flax-optimized | equinox | keras | torch[:threads] (default 2), where
``jaxlstm:2dev`` runs with the CPU as 2 XLA host devices and the batch split over them.  TASK: a shape name from
``SHAPES``, ``stream`` (single-step latency) or ``gemm`` (the single-GEMM peak).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

# (B, T, I, H)
SHAPES: dict[str, tuple[int, int, int, int]] = {
    "seed": (16, 8, 4, 2),
    "small": (32, 50, 32, 64),
    "medium": (64, 100, 128, 256),
    "long": (16, 1000, 64, 128),
    "large": (128, 100, 512, 512),
}
STREAM = (1, 256, 256)  # (B, I, H) for single-step latency


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_it(call: Callable[[], Any], budget_s: float, min_reps: int, max_reps: int) -> dict:
    """First call (compile + run) timed alone, then two warm-ups, then reps until the budget."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    for _ in range(2):
        call()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "median_ms": median * 1e3,
        "min_ms": min(times) * 1e3,
        "reps": len(times),
        "compile_s": max(first - median, 0.0),
        "rss_mib": rss_mib(),
    }


def loss_of(seq, h, c):
    """Scalar loss of all outputs (the same in every implementation)."""
    return (seq**2).mean() + (h**2).mean() + (c**2).mean()


# ---------------------------------------------------------------------------------------------
# JAX-based implementations: each builds (forward, train_step, args) with jitted functions.
# ---------------------------------------------------------------------------------------------


def _jax_block(out):
    import jax

    return jax.block_until_ready(out)


def build_jaxlstm(variant: str, B, T, I, H):
    import jax

    import jaxlstm

    params = jaxlstm.init(jax.random.PRNGKey(0), I, H)
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    devices = _devices(variant)
    kwargs = {} if not variant or devices else {"impl": variant}

    def run(p, x):
        out = jaxlstm.lstm(p, x, **kwargs)
        return out.sequence, out.state.h, out.state.c

    if devices:
        # jaxlstm:Ndev: this process sees the CPU as N devices (main sets XLA_FLAGS before jax is
        # imported); the LSTM runs on each device's share of the batch (sharding.batch_parallel).
        from jaxlstm import sharding

        assert jax.device_count() == devices, jax.devices()
        mesh = sharding.batch_mesh()
        run = sharding.batch_parallel(run, mesh)
        params, x = sharding.replicate(params, mesh), sharding.shard_batch(x, mesh)
    fwd = jax.jit(run)
    train = jax.jit(jax.value_and_grad(lambda p, x: loss_of(*run(p, x))))
    return fwd, train, (params, x)


def _devices(variant: str) -> int:
    """N for the variant "Ndev" (the batch split over N host devices), else 0."""
    return int(variant[:-3]) if variant.endswith("dev") else 0


def build_flax(optimized: bool, B, T, I, H):
    import flax.linen as nn
    import jax

    cell = nn.OptimizedLSTMCell(H) if optimized else nn.LSTMCell(H)
    rnn = nn.RNN(cell, return_carry=True)
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    variables = rnn.init(jax.random.PRNGKey(0), x)

    def run(v, x):
        (c, h), seq = rnn.apply(v, x)
        return seq, h, c

    fwd = jax.jit(run)
    train = jax.jit(jax.value_and_grad(lambda v, x: loss_of(*run(v, x))))
    return fwd, train, (variables, x)


def build_equinox(B, T, I, H):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    cell = eqx.nn.LSTMCell(I, H, key=jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))

    def one(cell, xs):
        def body(carry, x_t):
            h, c = cell(x_t, carry)
            return (h, c), h

        zero = jnp.zeros((H,))
        (h, c), seq = jax.lax.scan(body, (zero, zero), xs)
        return seq, h, c

    def run(cell, x):
        return jax.vmap(one, in_axes=(None, 0))(cell, x)

    fwd = eqx.filter_jit(run)
    train = eqx.filter_jit(eqx.filter_value_and_grad(lambda cell, x: loss_of(*run(cell, x))))
    return fwd, train, (cell, x)


def build_keras(B, T, I, H):
    import jax
    import keras

    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    layer.build((B, T, I))
    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))

    def run(tv, x):
        (seq, h, c), _ = layer.stateless_call(tv, fixed, x)
        return seq, h, c

    fwd = jax.jit(run)
    train = jax.jit(jax.value_and_grad(lambda tv, x: loss_of(*run(tv, x))))
    return fwd, train, (trainable, x)


def bench_jax(build, budget, min_reps, max_reps) -> dict:
    fwd, train, args = build()
    res = {"forward": time_it(lambda: _jax_block(fwd(*args)), budget, min_reps, max_reps)}
    res["train"] = time_it(lambda: _jax_block(train(*args)), budget, min_reps, max_reps)
    return res


def torch_calls(B: int, T: int, I: int, H: int) -> dict:
    """PyTorch's ``nn.LSTM`` forward and training step at this shape, as zero-argument callables."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, batch_first=True)
    x = torch.randn(B, T, I)

    def fwd():
        with torch.inference_mode():
            return lstm(x)

    def train():
        lstm.zero_grad(set_to_none=True)
        seq, (h, c) = lstm(x)
        loss = loss_of(seq, h, c)
        loss.backward()
        return loss.item()

    return {"forward": fwd, "train": train}


def bench_torch(B, T, I, H, budget, min_reps, max_reps, threads: int = 2) -> dict:
    import torch

    torch.set_num_threads(threads)
    calls = torch_calls(B, T, I, H)
    return {task: time_it(call, budget, min_reps, max_reps) for task, call in calls.items()}


# ---------------------------------------------------------------------------------------------
# Streaming: one step at B=1, state fed back, as an online model would call it.
# ---------------------------------------------------------------------------------------------


def stream_jax_step(impl: str, B, I, H):
    """Returns (step, state, x_t) with step(state, x_t) -> state."""
    import jax
    import jax.numpy as jnp

    x = jax.random.normal(jax.random.PRNGKey(1), (B, I))
    if impl.startswith("jaxlstm"):
        import jaxlstm

        params = jaxlstm.init(jax.random.PRNGKey(0), I, H)
        step = jax.jit(lambda s, x_t: jaxlstm.step(params, s, x_t)[0])
        return step, jaxlstm.zero_state(params, (B,)), x
    if impl.startswith("flax"):
        import flax.linen as nn

        cell = nn.OptimizedLSTMCell(H) if impl == "flax-optimized" else nn.LSTMCell(H)
        carry = cell.initialize_carry(jax.random.PRNGKey(2), (B, I))
        variables = cell.init(jax.random.PRNGKey(0), carry, x)
        step = jax.jit(lambda s, x_t: cell.apply(variables, s, x_t)[0])
        return step, carry, x
    if impl == "equinox":
        import equinox as eqx

        cell = eqx.nn.LSTMCell(I, H, key=jax.random.PRNGKey(0))
        step = jax.jit(jax.vmap(lambda s, x_t: cell(x_t, s)))
        return step, (jnp.zeros((B, H)), jnp.zeros((B, H))), x
    if impl == "keras":
        import keras

        cell = keras.layers.LSTMCell(H)
        cell.build((B, I))
        tv = [v.value for v in cell.trainable_variables]
        fixed = [v.value for v in cell.non_trainable_variables]

        def step(s, x_t):
            (_, new), _ = cell.stateless_call(tv, fixed, x_t, list(s))
            return tuple(new)

        return jax.jit(step), (jnp.zeros((B, H)), jnp.zeros((B, H))), x
    raise ValueError(impl)


def bench_stream(impl: str, budget, min_reps, max_reps) -> dict:
    B, I, H = STREAM
    if impl.startswith("torch"):
        import torch

        torch.set_num_threads(int(impl.partition(":")[2] or 2))
        cell = torch.nn.LSTMCell(I, H)
        x = torch.randn(B, I)
        box = [(torch.zeros(B, H), torch.zeros(B, H))]

        def call():
            with torch.inference_mode():
                box[0] = cell(x, box[0])

        return {"forward": time_it(call, budget, min_reps, max_reps)}
    step, state, x = stream_jax_step(impl, B, I, H)
    box = [state]

    def call():
        box[0] = _jax_block(step(box[0], x))

    return {"forward": time_it(call, budget, min_reps, max_reps)}


def bench_gemm(impl: str, budget) -> dict:
    """Best float32 GFLOP/s of one square GEMM in this library, over a few sizes."""
    best = 0.0
    for n in (512, 1024, 2048):
        if impl == "torch":
            import torch

            torch.set_num_threads(2)
            a, b = torch.randn(n, n), torch.randn(n, n)
            r = time_it(lambda: torch.mm(a, b), budget, 5, 1000)  # noqa: B023 - timed now
        else:
            import jax

            a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
            mm = jax.jit(lambda a, b: a @ b)
            r = time_it(lambda: mm(a, a).block_until_ready(), budget, 5, 1000)  # noqa: B023 - timed now
        best = max(best, 2 * n**3 / (r["median_ms"] * 1e-3) / 1e9)
    return {"gflops": best}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("impl")
    ap.add_argument("task")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed reps per measurement")
    ap.add_argument("--min-reps", type=int, default=7)
    ap.add_argument("--max-reps", type=int, default=500)
    a = ap.parse_args()
    devices = _devices(a.impl.partition(":")[2])
    if devices:
        # Must happen before jax is first imported (the builders import it lazily).
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    if a.task == "stream" and devices:
        result = {}  # one example per step: nothing to split
    elif a.task == "gemm":
        result = bench_gemm(a.impl, a.budget)
    elif a.task == "stream":
        result = bench_stream(a.impl, a.budget, a.min_reps, 20000)
    else:
        B, T, I, H = SHAPES[a.task]
        impl, _, variant = a.impl.partition(":")
        builders = {
            "jaxlstm": lambda: build_jaxlstm(variant, B, T, I, H),
            "flax": lambda: build_flax(False, B, T, I, H),
            "flax-optimized": lambda: build_flax(True, B, T, I, H),
            "equinox": lambda: build_equinox(B, T, I, H),
            "keras": lambda: build_keras(B, T, I, H),
        }
        if impl == "torch":
            threads = int(variant) if variant else 2
            result = bench_torch(B, T, I, H, a.budget, a.min_reps, a.max_reps, threads)
        else:
            result = bench_jax(builders[impl], a.budget, a.min_reps, a.max_reps)
    result.update(impl=a.impl, task=a.task)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
