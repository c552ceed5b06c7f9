"""Cost of forward-mode and second-order derivatives relative to a forward pass and a training step.

    python benchmarks/ad_cost.py [--shapes small,medium,long,large]

Per shape, in one process on the default path (``jaxlstm.lstm``): the forward pass, the training step
(``value_and_grad`` with respect to the parameters), a ``jvp`` (a tangent direction in the parameters
and the inputs), and a Hessian-vector product with respect to the parameters (``jvp`` of ``grad``).
Medians of jitted calls; prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_name  # noqa: E402
from worker import SHAPES, loss_of, time_it  # noqa: E402


def measure(shape: str, budget: float) -> dict[str, float]:
    import jax

    import jaxlstm

    B, T, I, H = SHAPES[shape]
    params = jaxlstm.init(jax.random.PRNGKey(0), I, H)
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    direction = jax.tree_util.tree_map(lambda a: 0.01 * a, params)

    def loss(p, x):
        out = jaxlstm.lstm(p, x)
        return loss_of(out.sequence, out.state.h, out.state.c)

    calls = {
        "forward": jax.jit(lambda p, x: jaxlstm.lstm(p, x)),
        "train step": jax.jit(jax.value_and_grad(loss)),
        "jvp": jax.jit(lambda p, x: jax.jvp(loss, (p, x), (direction, x))),
        "hvp": jax.jit(lambda p, x: jax.jvp(jax.grad(lambda q: loss(q, x)), (p,), (direction,))[1]),
    }
    return {
        name: time_it(lambda f=f: jax.block_until_ready(f(params, x)), budget, 5, 200)["median_ms"]
        for name, f in calls.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="small,medium,long,large")
    ap.add_argument("--budget", type=float, default=1.0)
    a = ap.parse_args()
    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average before: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(
        "\n| shape | forward ms | train step ms | jvp ms | HVP ms | jvp / forward | HVP / forward | HVP / train step |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in a.shapes.split(","):
        t = measure(shape, a.budget)
        print(
            f"| {shape} | {t['forward']:.2f} | {t['train step']:.2f} | {t['jvp']:.2f} | {t['hvp']:.2f} | "
            f"{t['jvp'] / t['forward']:.2f} | {t['hvp'] / t['forward']:.2f} | {t['hvp'] / t['train step']:.2f} |",
            flush=True,
        )
    print("\nload average after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
