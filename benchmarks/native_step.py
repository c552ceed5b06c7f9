"""One LSTM step's latency (``bench.py``'s ``stream`` task: I = H = 256, the state fed back, one
jitted call per step) and where ``native.preferred`` should stop picking the one-step kernel. Times,
in ONE process with the implementations alternating round by round, for each batch size:

* ``empty``: a jitted function returning the state it is given (jax's dispatch floor),
* ``jax``: the pure-JAX reference step, ``core.run_step`` with ``impl="scan"`` (what ``jaxlstm.step`` ran before the kernel),
* ``step``: ``jaxlstm.step`` as it is (the default: native where ``native.preferred(B, 1, ...)``),
* ``native``: the native kernels forced (``fast.lstm_time_major`` with ``FastConfig(native=True)``
  on one step: the one-step kernel up to the rows ``native.preferred`` allows, the packed kernel above),
* ``torch``: PyTorch ``nn.LSTMCell`` under ``inference_mode`` (2 threads), as ``bench.py`` times it.

Each round times every (batch, implementation) for about ``--round-s`` seconds, call by call; the
result is the median over ``--rounds`` rounds of each round's median call.

    python benchmarks/native_step.py                   # about a minute
    python benchmarks/native_step.py --batch 1 --quick  # a smoke test (not a measurement)

Prints the CPU, versions, uptime before and after, and the table. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench import cpu_name  # noqa: E402
from worker import STREAM  # noqa: E402

IMPLS = ("empty", "jax", "step", "native", "torch")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _step_rows(native, I: int, H: int) -> int:
    """The most rows whose one step ``native.preferred`` gives to the one-step kernel."""
    return next(b for b in range(1, 1025) if not native.preferred(b, 1, I, H, "float32")) - 1


def _calls(B: int, I: int, H: int) -> dict:
    import jax
    import torch

    import jaxlstm
    from jaxlstm import core, fast
    from jaxlstm.core.options import SequenceOptions

    params = jaxlstm.init(jax.random.key(0), I, H)
    x = jax.random.normal(jax.random.key(1), (B, I))

    def forced(s, x_t):
        _, h, c = fast.lstm_time_major(params, x_t[None], s.h, s.c, config=fast.FastConfig(native=True))
        return jaxlstm.LSTMState(h=h, c=c)

    steps = {
        "empty": lambda s, x_t: jaxlstm.LSTMState(h=s.c, c=s.h),
        "jax": lambda s, x_t: core.run_step(params, s, x_t, SequenceOptions(impl="scan"))[0],
        "step": lambda s, x_t: jaxlstm.step(params, s, x_t)[0],
        "native": forced,
    }
    calls = {}
    for name, fn in steps.items():
        jitted, box = jax.jit(fn), [jaxlstm.zero_state(params, (B,))]

        def call(jitted=jitted, box=box):
            box[0] = jax.block_until_ready(jitted(box[0], x))

        calls[name] = call
    cell, tx = torch.nn.LSTMCell(I, H), torch.randn(B, I)
    tbox = [(torch.zeros(B, H), torch.zeros(B, H))]

    def torch_call():
        with torch.inference_mode():
            tbox[0] = cell(tx, tbox[0])

    calls["torch"] = torch_call
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 9, 16, 32, 128])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-s", type=float, default=0.15, help="seconds per measurement per round")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 0.01 s: checks that it runs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.round_s = 2, 0.01

    import jax
    import torch

    from jaxlstm.core import native  # the module itself: its call statistics are not exported

    torch.set_num_threads(2)
    _, I, H = STREAM
    print(f"CPU: {cpu_name()}")
    print(
        f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"native isa={native.isa()} (one-step kernel up to {_step_rows(native, I, H)} rows), I=H={H}, "
        f"rounds={args.rounds} x {args.round_s} s"
    )
    print("uptime before:", _uptime())
    start = time.perf_counter()
    calls = {(B, impl): call for B in args.batch for impl, call in _calls(B, I, H).items()}
    for call in calls.values():  # compile and warm up
        for _ in range(20):
            call()
    times: dict[tuple[int, str], list[float]] = {key: [] for key in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            per_call, t_end = [], time.perf_counter() + args.round_s
            while time.perf_counter() < t_end or len(per_call) < 5:
                t0 = time.perf_counter()
                call()
                per_call.append(time.perf_counter() - t0)
            times[key].append(statistics.median(per_call))
    print("uptime after: ", _uptime(), f"(ran {time.perf_counter() - start:.0f} s)")
    print()
    print(
        f"{'B':>4} " + " ".join(f"{impl + ' us':>10}" for impl in IMPLS) + f" {'picks':>7} {'nat/jax':>8} "
        f"{'step/torch':>10}"
    )
    for B in args.batch:
        us = {impl: 1e6 * statistics.median(times[B, impl]) for impl in IMPLS}
        picks = "native" if native.preferred(B, 1, I, H, "float32") else "jax"
        print(
            f"{B:4d} "
            + " ".join(f"{us[impl]:10.1f}" for impl in IMPLS)
            + f" {picks:>7} {us['native'] / us['jax']:8.2f} {us['step'] / us['torch']:10.2f}"
        )
    print()
    print("native calls:", native._stats())


if __name__ == "__main__":
    main()
