"""Micro-benchmark of the native CPU recurrences against the pure-JAX fast path, per LSTM step.

    python benchmarks/native_micro.py [--shapes small medium long large] [--threads N] [--spin]

Forward: ``native.forward(save=False)`` vs ``fast._forward(..., save=False)``. Backward:
the pure-JAX reverse recurrence (``_recurrences.cotangent_scan``, what ``grad`` runs) + the
weight-gradient GEMMs vs the native reverse scan plus the same GEMMs (``impl="native"``), and the
reverse scans alone (both also sum d_z into d_bias). Each number is the minimum over ``--repeats`` timings of
``--iters`` calls, divided by T. ``--threads N`` caps the native threads (JAXLSTM_NATIVE_THREADS);
``--spin`` runs a busy-looping process beside the benchmark (one core taken away). Prints
``uptime`` (timings on a shared machine are noisy) and, per shape, how the native calls ran
(``native._stats()``: threads, helper tasks that joined, calls taken over by one thread).

The native numbers here include transposes that ``jaxlstm.lstm`` does not pay: the kernels read and
write batch-major buffers (for XLA's batch partitioner, see ``native.py``), and this script hands
them time-major arrays, so each call copies its sequence inputs and outputs. Inside ``jaxlstm.lstm``
those transposes cancel against the user's batch-major layout; ``benchmarks/native_auto.py``
measures the entry point itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from functools import partial

SHAPES = {  # name: (B, T, I, H)
    "small": (32, 50, 32, 64),
    "medium": (64, 100, 128, 256),
    "long": (16, 1000, 64, 128),
    "large": (128, 100, 512, 512),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--spin", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0, help="calls per timing (default: by shape)")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="process CPU time instead of wall time (with --threads 1: the kernels' cost "
        "on a machine too loaded for wall times)",
    )
    args = ap.parse_args()
    if args.threads:
        os.environ["JAXLSTM_NATIVE_THREADS"] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxlstm.core import fast, native
    from jaxlstm.core._recurrences import cotangent_scan
    from jaxlstm.pytrees import LSTMParams

    if not native.available():
        sys.exit(f"native unavailable: {native.why_unavailable()}")
    spinner = None
    if args.spin:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        print(
            f"isa={native.isa()} threads={'pool' if not args.threads else args.threads} "
            f"spin={args.spin} clock={'cpu' if args.cpu_time else 'wall'} jax={jax.__version__}"
        )
        print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        print(
            f"{'shape':8} {'fwd jax':>9} {'fwd nat':>9} {'GF/s nat':>8} {'bwd jax':>9} "
            f"{'bwd nat':>9} {'scan jax':>9} {'scan nat':>9}   (us per step)"
        )
        cfg = fast.FastConfig()
        for name in args.shapes:
            B, T, I, H = SHAPES[name]
            rng = np.random.default_rng(0)
            f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
            W, U = f32(rng.normal(size=(I, 4 * H)) * 0.1), f32(rng.normal(size=(H, 4 * H)) * 0.1)
            b = f32(rng.normal(size=(4 * H,)) * 0.1)
            xs = f32(rng.normal(size=(T, B, I)))
            h0 = c0 = jnp.zeros((B, H), jnp.float32)
            p = LSTMParams(W, U, b, None)
            cts = (
                f32(rng.normal(size=(T, B, H))),
                f32(rng.normal(size=(B, H))),
                f32(rng.normal(size=(B, H))),
            )

            fwd_jax = jax.jit(lambda p, xs: fast._forward(p, xs, h0, c0, None, None, False, cfg, False)[:3])
            fwd_nat = jax.jit(
                lambda p, xs: native.forward(
                    p.kernel,
                    p.recurrent_kernel,
                    p.bias,
                    xs,
                    h0,
                    c0,
                    None,
                    None,
                    zero_output=False,
                    save=False,
                )[:3]
            )
            res = jax.jit(lambda p, xs: fast._forward(p, xs, h0, c0, None, None, False, cfg, True)[3])(p, xs)

            def pure_recurrence(U, z, c_prev, keep, valid, *cts, zero_output):
                return cotangent_scan(U, z, c_prev, keep, valid, *cts, zero_output=zero_output, unroll=1)

            def backward(recurrence, p, xs, res, cts, gemms=True):
                """The reverse recurrence, then (unless not ``gemms``) the weight-gradient GEMMs."""
                z, h_prev, c_prev = res
                d_z, d_h0, d_c0 = recurrence(
                    p.recurrent_kernel, z, c_prev, None, None, *cts, zero_output=False
                )
                if not gemms:
                    return d_z.sum(axis=(0, 1)), d_h0, d_c0  # d_bias keeps d_z alive
                dims = (((0, 1), (0, 1)), ((), ()))
                return (
                    jax.lax.dot_general(xs, d_z, dims),
                    jax.lax.dot_general(h_prev, d_z, dims),
                    d_z.sum(axis=(0, 1)),
                    d_z @ p.kernel.T,
                    d_h0,
                    d_c0,
                )

            bwd_jax = jax.jit(partial(backward, pure_recurrence))
            bwd_nat = jax.jit(partial(backward, native.backward_recurrence))
            scan_jax = jax.jit(partial(backward, pure_recurrence, gemms=False))
            scan_nat = jax.jit(partial(backward, native.backward_recurrence, gemms=False))

            iters = args.iters or max(3, int(2e9 / (2 * T * B * (I + H) * 4 * H)))

            clock = time.process_time if args.cpu_time else time.perf_counter

            def per_step(f, *a):
                jax.block_until_ready(f(*a))
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = clock()
                    for _ in range(iters):
                        out = f(*a)
                    jax.block_until_ready(out)
                    best = min(best, (clock() - t0) / iters)
                return best / T * 1e6

            before = native._stats()
            t_fj, t_fn = per_step(fwd_jax, p, xs), per_step(fwd_nat, p, xs)
            t_bj = per_step(bwd_jax, p, xs, res, cts)
            t_bn, t_sn = per_step(bwd_nat, p, xs, res, cts), per_step(scan_nat, p, xs, res, cts)
            t_sj = per_step(scan_jax, p, xs, res, cts)
            gflops = 2 * B * (I + H) * 4 * H / (t_fn * 1e-6) / 1e9
            print(
                f"{name:8} {t_fj:9.2f} {t_fn:9.2f} {gflops:8.1f} {t_bj:9.2f} {t_bn:9.2f} "
                f"{t_sj:9.2f} {t_sn:9.2f}",
                flush=True,
            )
            after = native._stats()
            print("         native calls:", {k: after[k] - before[k] for k in after})
        print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    finally:
        if spinner is not None:
            spinner.kill()


if __name__ == "__main__":
    main()
