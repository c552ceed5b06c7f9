"""Where should ``impl="auto"`` pick the native kernels, and what does the default give? Times, in ONE
process with the implementations alternating round by round, the forward pass and the training
step of

* ``impl=FastConfig()`` (the pure-JAX fast path, column ``jax``),
* ``impl="native"`` (the native CPU kernels behind the same derivative rules),
* PyTorch ``nn.LSTM`` (oneDNN, 2 threads, ``batch_first``),

on the benchmark shapes (``worker.SHAPES``), with the same loss as ``bench.py``
(``mean(seq^2) + mean(h^2) + mean(c^2)``, gradient w.r.t. the parameters). Each round times every
(shape, task, implementation) for about ``--round-s`` seconds; the result is the median over
``--rounds`` rounds of the per-call time, so slow drifts of the machine's load hit all three alike.
``impl="auto"`` (the default) compiles to the same program as the column that ``native.preferred``
picks for the shape (tests/test_native_rule.py checks that), so it is not timed a second time: the
``auto`` column repeats that column's time and ``picks`` names it.

    python benchmarks/native_auto.py            # about 3 minutes (5 shapes, 7 rounds of 0.3 s)
    python benchmarks/native_auto.py --spin     # the same with a busy process pinned to one core
    python benchmarks/native_auto.py --quick    # a smoke test: 2 tiny rounds (not a measurement)

Prints the CPU (model, family, SIMD flags), cores, versions, the native ISA and thread cap, uptime
before and after, the table (ms per call and native/auto, native/torch ratios) and the native
calls' thread statistics (``native._stats()``: how many calls one thread finished alone because a
peer was descheduled). Run it on a quiet machine: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench import cpu_name  # noqa: E402
from worker import SHAPES, loss_of, torch_calls  # noqa: E402

IMPLS = ("jax", "native", "torch")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _spinner() -> subprocess.Popen:
    """A process that keeps one core busy (pinned to the last CPU where the OS allows it)."""
    code = (
        "import os\n"
        "try:\n    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})\nexcept (AttributeError, OSError):\n"
        "    pass\nwhile True:\n    pass\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def _jax_calls(impl, B: int, T: int, I: int, H: int):
    import jax

    import jaxlstm

    params = jaxlstm.init(jax.random.key(0), I, H)
    x = jax.random.normal(jax.random.key(1), (B, T, I))

    def run(p, x):
        out = jaxlstm.lstm(p, x, impl=impl)
        return out.sequence, out.state.h, out.state.c

    fwd = jax.jit(run)
    train = jax.jit(jax.value_and_grad(lambda p, x: loss_of(*run(p, x))))
    return {
        "forward": lambda: jax.block_until_ready(fwd(params, x)),
        "train": lambda: jax.block_until_ready(train(params, x)),
    }


def _calls_per_round(call, round_s: float) -> int:
    """Calls that take about ``round_s`` (after a first call that compiles and two warm-ups)."""
    for _ in range(3):
        call()
    t0 = time.perf_counter()
    call()
    once = time.perf_counter() - t0
    return max(1, int(round_s / max(once, 1e-6)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-s", type=float, default=0.3, help="seconds per measurement per round")
    ap.add_argument("--spin", action="store_true", help="a busy process on one core throughout")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 0.01 s: checks that it runs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.round_s = 2, 0.01

    import jax
    import torch

    import jaxlstm
    from jaxlstm.core import native

    if not native.available():
        sys.exit(f"the native kernels are unavailable: {native.why_unavailable()}")
    torch.set_num_threads(2)
    spinner = _spinner() if args.spin else None
    try:
        print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
        print(
            f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"jaxlstm {getattr(jaxlstm, '__version__', '?')}, native isa={native.isa()} "
            f"threads={os.environ.get('JAXLSTM_NATIVE_THREADS', 'pool')}, spin={args.spin}, "
            f"rounds={args.rounds} x {args.round_s} s"
        )
        print("uptime before:", _uptime())
        start = time.perf_counter()
        calls, reps = {}, {}
        for name in args.shapes:
            B, T, I, H = SHAPES[name]
            per_impl = {
                "jax": _jax_calls(jaxlstm.fast.FastConfig(), B, T, I, H),
                "native": _jax_calls("native", B, T, I, H),
            }
            per_impl["torch"] = torch_calls(B, T, I, H)
            for impl, tasks in per_impl.items():
                for task, call in tasks.items():
                    calls[name, task, impl] = call
                    reps[name, task, impl] = _calls_per_round(call, args.round_s)
        times: dict[tuple[str, str, str], list[float]] = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():  # the implementations alternate within each round
                n = reps[key]
                t0 = time.perf_counter()
                for _ in range(n):
                    call()
                times[key].append((time.perf_counter() - t0) / n)
        print("uptime after: ", _uptime(), f"(ran {time.perf_counter() - start:.0f} s)")
        print()
        print(
            f"{'shape B/T/I/H':24} {'task':8} {'jax ms':>9} {'native ms':>10} {'torch ms':>9} "
            f"{'nat/jax':>8} {'nat/torch':>9} {'picks':>6} {'auto/torch':>10}"
        )
        for name in args.shapes:
            B, T, I, H = SHAPES[name]
            picks = "native" if native.preferred(B, T, I, H, "float32") else "jax"
            for task in ("forward", "train"):
                ms = {impl: 1e3 * statistics.median(times[name, task, impl]) for impl in IMPLS}
                shape = f"{name} {'/'.join(map(str, SHAPES[name]))}"
                print(
                    f"{shape:24} {task:8} {ms['jax']:9.3f} {ms['native']:10.3f} {ms['torch']:9.3f} "
                    f"{ms['native'] / ms['jax']:8.2f} {ms['native'] / ms['torch']:9.2f} {picks:>6} "
                    f"{ms[picks] / ms['torch']:10.2f}"
                )
        print()
        print("native calls:", native._stats())
    finally:
        if spinner is not None:
            spinner.kill()


if __name__ == "__main__":
    main()
