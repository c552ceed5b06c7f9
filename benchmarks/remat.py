"""Training-step memory and time at T=10000 with and without rematerialised chunks.

    python benchmarks/remat.py [--steps 10000]

Memory is XLA's compiled temporary allocation for the training step (activations and workspace),
from ``compiled.memory_analysis()``, so it is exact and independent of load; time is the median of a
few steps.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp

import jaxlstm
from jaxlstm import fast


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    T, B, I, H = a.steps, a.batch, a.input, a.units
    params = jaxlstm.init(jax.random.PRNGKey(0), I, H)
    xs = jax.random.normal(jax.random.PRNGKey(1), (T, B, I))
    zero = jnp.zeros((B, H))
    print(f"T={T} B={B} I={I} H={H}; training step = value_and_grad of mean(ys^2) w.r.t. params")
    print("| checkpoint_chunks | temp memory MiB | median s | vs no remat |")
    print("|---|---|---|---|")
    base = None
    for chunks in (0, int(math.sqrt(T))):
        config = fast.FastConfig(checkpoint_chunks=chunks)

        def loss(p, config=config):
            ys, h, c = fast.lstm_time_major(p, xs, zero, zero, config=config)
            return (ys**2).mean()

        compiled = jax.jit(jax.value_and_grad(loss)).lower(params).compile()
        mib = compiled.memory_analysis().temp_size_in_bytes / 2**20
        jax.block_until_ready(compiled(params))
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(params))
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        base = base or med
        print(f"| {chunks or 'none'} | {mib:.1f} | {med:.3f} | {med / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
