"""GPU check, prepared for a session that has a CUDA GPU: ``python benchmarks/gpu_check.py``.

1. Numerics: ``lstm(impl="cudnn")`` (cuDNN through ``jax.experimental.rnn``) against the reference
   scan (``impl="scan"``), values and parameter gradients, with lengths and an initial state, at
   ``jax.default_matmul_precision("highest")`` (no TF32), tolerance 1e-5 relative to the largest value.
2. Speed: median ms of forward and training step for the benchmark shapes, cudnn vs auto vs scan.

Prints one JSON object; exits 1 if a numerics check fails. Not a test: CI has no GPU.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import jaxlstm

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from worker import SHAPES


def numerics() -> dict:
    B, T, I, H = 8, 37, 16, 32
    params = jaxlstm.init(jax.random.key(0), I, H)
    params = params._replace(bias=jax.random.normal(jax.random.key(1), (4 * H,)))
    xs = jax.random.normal(jax.random.key(2), (B, T, I))
    lengths = jax.random.randint(jax.random.key(3), (B,), 1, T + 1).at[0].set(T)
    state = jaxlstm.LSTMState(
        h=jax.random.normal(jax.random.key(4), (B, H)), c=jax.random.normal(jax.random.key(5), (B, H))
    )
    weights = jax.random.normal(jax.random.key(6), (B, T, H))

    def loss(p, impl):
        out = jaxlstm.lstm(p, xs, state, lengths=lengths, impl=impl)
        return jnp.sum(out.sequence * weights) + jnp.sum(out.state.h) + jnp.sum(out.state.c), out

    report = {}
    with jax.default_matmul_precision("highest"):
        (_, ref), g_ref = jax.value_and_grad(lambda p: loss(p, "scan"), has_aux=True)(params)
        (_, got), g_got = jax.value_and_grad(lambda p: loss(p, "cudnn"), has_aux=True)(params)
    for name, a, b in [
        ("sequence", ref.sequence, got.sequence),
        ("h", ref.state.h, got.state.h),
        ("c", ref.state.c, got.state.c),
    ]:
        report[name] = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
    for name, a, b in zip(
        ("d_kernel", "d_recurrent_kernel", "d_bias"), jax.tree.leaves(g_ref), jax.tree.leaves(g_got)
    ):
        report[name] = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
    return report


def median_ms(fn, *args, reps: int = 20) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def speed() -> dict:
    out = {}
    for shape, (B, T, I, H) in SHAPES.items():
        params = jaxlstm.init(jax.random.key(0), I, H)
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        row = {}
        for impl in ("cudnn", "auto", "scan"):

            def run(p, x, impl=impl):
                o = jaxlstm.lstm(p, x, impl=impl)
                return o.sequence, o.state.h, o.state.c

            def loss(p, x, impl=impl):
                s, h, c = run(p, x, impl)
                return (s**2).mean() + (h**2).mean() + (c**2).mean()

            row[impl] = {
                "forward_ms": median_ms(jax.jit(run), params, xs),
                "train_ms": median_ms(jax.jit(jax.value_and_grad(loss)), params, xs),
            }
        out[shape] = row
    return out


def main() -> None:
    report = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}
    report["numerics"] = numerics()
    report["ok"] = all(v <= 1e-5 for v in report["numerics"].values())
    report["speed"] = speed()
    print(json.dumps(report, indent=1))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
