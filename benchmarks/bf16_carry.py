"""Error of bfloat16 compute at T=1000, with and without a float32 carry, against float32.

    python benchmarks/bf16_carry.py [--steps 1000]

B=16, I=32, H=128, ``jaxlstm.init`` weights (forget-gate bias 1, Keras's, or 6, a long memory),
inputs N(0, s^2). Modes: ``bf16`` is ``lstm(dtype=bfloat16)`` (everything bfloat16);
``bf16 + f32 carry`` is ``lstm(dtype=bfloat16, carry_dtype=float32)`` (bfloat16 matmul operands
accumulated in float32, float32 gates and c, h in bfloat16). The error of h against the float32
run, mean over the steps [0, 100) and the last 100, and of the final c; float64 against float32 as
the floor. Accuracy only: no timings (the reference scan runs every mode).
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlstm

    B, I, H, T = 16, 32, 128, args.steps
    base = jaxlstm.init(jax.random.key(0), I, H)
    print(f"B={B} I={I} H={H} T={T}; mean |h - h_f32| over steps [0,100) / [T-100,T), mean |c_T - c_T f32|\n")
    print("| regime | bf16 | bf16 + f32 carry | f64 vs f32 |")
    print("|---|---|---|---|")
    for forget in (1.0, 6.0):
        assert base.bias is not None
        params = base._replace(bias=base.bias.at[H : 2 * H].set(forget))
        for scale in (1.0, 0.3):
            xs = scale * jax.random.normal(jax.random.key(1), (B, T, I))
            ref = jaxlstm.lstm(params, xs, impl="scan")
            h_ref, c_ref = np.asarray(ref.sequence, np.float64), np.asarray(ref.state.c, np.float64)

            def error(out) -> str:
                h = np.abs(np.asarray(out.sequence.astype(jnp.float32), np.float64) - h_ref)
                c = np.abs(np.asarray(out.state.c.astype(jnp.float32), np.float64) - c_ref).mean()
                return f"{h[:, :100].mean():.2g} / {h[:, -100:].mean():.2g} / c {c:.2g}"

            bf16 = jaxlstm.lstm(params, xs, dtype=jnp.bfloat16)
            mixed = jaxlstm.lstm(params, xs, dtype=jnp.bfloat16, carry_dtype=jnp.float32)
            with jax.enable_x64(True):
                f64 = jaxlstm.lstm(
                    jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params),
                    jnp.asarray(xs, jnp.float64),
                    impl="scan",
                )
                floor = error(f64)
            mean_c = float(jnp.abs(ref.state.c).mean())
            regime = f"forget bias {forget:g}, s={scale:g} (mean abs c_T {mean_c:.2g})"
            print(f"| {regime} | {error(bf16)} | {error(mixed)} | {floor} |")


if __name__ == "__main__":
    main()
