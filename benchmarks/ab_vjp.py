"""A/B of the fast path's training step: the custom_jvp design against the previous custom_vjp.

    python benchmarks/ab_vjp.py [--shapes seed,small,medium,long,large] [--rounds 15]

Both compiled executables live in one process and are called in alternation (A B A B ...), so a burst
of load from elsewhere hits both alike; per shape it prints the median of the per-round time ratios
(new / old) and each variant's median. Delete with ``_legacy_vjp.py`` once the A/B is recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_name  # noqa: E402
from worker import SHAPES, loss_of  # noqa: E402


def compiled_train_step(params, x):
    import jax

    import jaxlstm

    def loss(p, x):
        out = jaxlstm.lstm(p, x)
        return loss_of(out.sequence, out.state.h, out.state.c)

    return jax.jit(jax.value_and_grad(loss)).lower(params, x).compile()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="seed,small,medium,long,large")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=0.3, help="timed calls per variant per round")
    a = ap.parse_args()

    import jax

    import _legacy_vjp
    import jaxlstm

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load before: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"jax {jax.__version__}; {a.rounds} alternating rounds per shape\n")
    print("| shape | custom_jvp ms | custom_vjp ms | ratio jvp/vjp (median of rounds) | rounds within 3% |")
    print("|---|---|---|---|---|")
    for shape in a.shapes.split(","):
        B, T, I, H = SHAPES[shape]
        params = jaxlstm.init(jax.random.PRNGKey(0), I, H)
        x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
        new = compiled_train_step(params, x)
        jax.clear_caches()
        saved = jaxlstm.fast._sequence
        _legacy_vjp.install()
        old = compiled_train_step(params, x)
        jaxlstm.fast._sequence = saved
        jax.clear_caches()
        for f in (new, old):  # warm-up
            jax.block_until_ready(f(params, x))
        reps = max(1, round(a.seconds / _time(new, params, x, 1)))
        times = {"new": [], "old": []}
        for r in range(a.rounds):
            order = (("new", new), ("old", old)) if r % 2 == 0 else (("old", old), ("new", new))
            for name, f in order:
                times[name].append(_time(f, params, x, reps))
        ratios = [n / o for n, o in zip(times["new"], times["old"])]
        within = sum(abs(q - 1) <= 0.03 for q in ratios)
        print(
            f"| {shape} | {statistics.median(times['new']) * 1e3:.3f} | {statistics.median(times['old']) * 1e3:.3f} | "
            f"{statistics.median(ratios):.3f} | {within}/{len(ratios)} |",
            flush=True,
        )
    print("\nload after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


def _time(f, params, x, reps: int) -> float:
    import jax

    t0 = time.perf_counter()
    for _ in range(reps):
        out = f(params, x)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / reps


if __name__ == "__main__":
    main()
