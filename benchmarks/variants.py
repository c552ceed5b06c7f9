"""What each LSTM variant costs: forward pass and training step as a ratio to the plain LSTM.

    python benchmarks/variants.py [--shape medium] [--rounds 5] [--budget 1.0]

One process, the default path (``jaxlstm.lstm``, ``impl="auto"``) for every row; the variants
alternate round by round so that a change in the machine's load hits them all alike, and each row's
ratio is its median over rounds divided by the plain LSTM's median in the same rounds. The training
step is ``value_and_grad`` of the mean square of all outputs with respect to the parameters and the
inputs. Prints a markdown table with the CPU model and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_name  # noqa: E402
from worker import SHAPES, loss_of, time_it  # noqa: E402

# name -> (init keywords, lstm keywords)
ROWS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {}),
    "weight drop": ({}, {"weight_drop": 0.5}),
    "layer norm": ({"layer_norm": True}, {}),
    "layer norm (Addons carry)": ({"layer_norm": True}, {"layer_norm_carry": "normalised"}),
    "peepholes": ({"peepholes": True}, {}),
    "coupled gates (CIFG)": ({"coupled_gates": True}, {}),
    "zoneout (training)": ({}, {"zoneout": (0.15, 0.05), "zoneout_train": True}),
    "zoneout (evaluation)": ({}, {"zoneout": (0.15, 0.05)}),
    "per-gate recurrent dropout": ({}, {"per_gate_dropout": 0.25}),
    "resets": ({}, {"resets": True}),
    "bf16 compute + f32 carry": ({}, {"dtype": "bfloat16", "carry_dtype": "float32"}),
}
# The native kernels' XLA FFI target (jaxlstm/core/_native/lstm.cc): named in the lowered program iff they run.
NATIVE_TARGET = "jaxlstm_native_lstm_forward_f32"


def build(name: str, shape: str) -> tuple[dict[str, Callable[[], Any]], str]:
    """The timed calls of one row, and which implementation the forward pass lowered to."""
    import jax
    import jax.numpy as jnp

    import jaxlstm

    init_kwargs, lstm_kwargs = ROWS[name]
    B, T, I, H = SHAPES[shape]
    params = jaxlstm.init(jax.random.key(0), I, H, **init_kwargs)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    keys = jax.random.split(jax.random.key(2), 3)
    kwargs = dict(lstm_kwargs)
    # Per-call arrays drawn once, outside the timed calls (what a training loop passes in).
    if kwargs.pop("zoneout_train", False):
        kwargs["zoneout_key"] = keys[0]
    if "weight_drop" in kwargs:
        rate = kwargs.pop("weight_drop")
        keep = jax.random.bernoulli(keys[1], 1 - rate, params.recurrent_kernel.shape)
        kwargs["weight_drop_mask"] = keep / (1 - rate)
    if "per_gate_dropout" in kwargs:
        rate = kwargs.pop("per_gate_dropout")
        keep = jax.random.bernoulli(keys[1], 1 - rate, (B, params.gates, params.output_size))
        kwargs.update(dropout_masks="per_gate", recurrent_dropout_mask=keep / (1 - rate))
    if kwargs.pop("resets", False):
        kwargs["resets"] = jax.random.bernoulli(keys[2], 0.02, (B, T))
    if "dtype" in kwargs:
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
        kwargs["carry_dtype"] = jnp.dtype(kwargs["carry_dtype"])

    def loss(p, x):
        out = jaxlstm.lstm(p, x, **kwargs)
        return loss_of(out.sequence.astype(jnp.float32), out.state.h, out.state.c)

    forward = jax.jit(lambda p, x: jaxlstm.lstm(p, x, **kwargs))
    train = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    runs_on = "native kernels" if NATIVE_TARGET in forward.lower(params, xs).as_text() else "JAX (XLA)"
    calls = {
        "forward": lambda: jax.block_until_ready(forward(params, xs)),
        "train step": lambda: jax.block_until_ready(train(params, xs)),
    }
    return calls, runs_on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="medium", choices=sorted(SHAPES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--only", default=",".join(ROWS), help="comma-separated rows (plain is always run)")
    a = ap.parse_args()
    names = ["plain", *[n for n in a.only.split(",") if n and n != "plain"]]
    built = {name: build(name, a.shape) for name in names}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.rounds):
        for name in names:
            for mode, call in built[name][0].items():
                r = time_it(call, a.budget, min_reps=3, max_reps=1000)
                times.setdefault((name, mode), []).append(r["median_ms"])
    B, T, I, H = SHAPES[a.shape]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"CPU: {cpu_name()}; load average before/after: {load}")
    print(f"shape {a.shape}: B={B}, T={T}, I={I}, H={H}; {a.rounds} rounds of {a.budget} s\n")
    print("| variant | runs on | forward ms | vs plain | train step ms | vs plain |")
    print("|---|---|---|---|---|---|")
    plain = {m: statistics.median(times[("plain", m)]) for m in ("forward", "train step")}
    for name in names:
        f, t = (statistics.median(times[(name, m)]) for m in ("forward", "train step"))
        print(
            f"| {name} | {built[name][1]} | {f:.2f} | {f / plain['forward']:.2f} | {t:.2f} | "
            f"{t / plain['train step']:.2f} |"
        )


if __name__ == "__main__":
    main()
