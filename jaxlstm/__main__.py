"""``python -m jaxlstm``: the seed walk-through of Keras's "Understanding LSTM's Output", in JAX.

An LSTM with 2 units over 16 random sequences of 8 steps with 4 features.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlstm", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--plot", metavar="PATH", help="also draw h and c over time for 3 sequences (.png)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxlstm

    np.set_printoptions(precision=4, suppress=True)
    batch, steps, features, units = 16, 8, 4, 2
    params_key, data_key = jax.random.split(jax.random.key(args.seed))
    params = jaxlstm.init(params_key, features, units)
    xs = jax.random.normal(data_key, (batch, steps, features))

    print(f"inputs: {list(xs.shape)}  (batch, time steps, features); LSTM with {units} units")
    print("params:", {k: list(v.shape) for k, v in params._asdict().items() if v is not None})

    out = jaxlstm.lstm(params, xs)
    print("\n1. A plain LSTM returns the last output, as Keras LSTM(2)(x) does:")
    print(f"   out.sequence[:, -1]  shape {list(out.sequence[:, -1].shape)}")
    print(f"   first two rows:\n{np.asarray(out.sequence[:2, -1])}")

    print("\n2. Asking for sequences and states (return_sequences=True, return_state=True):")
    print(f"   whole_seq_output    out.sequence  shape {list(out.sequence.shape)}")
    print(f"   final_memory_state  out.state.h   shape {list(out.state.h.shape)}")
    print(f"   final_carry_state   out.state.c   shape {list(out.state.c.shape)}")
    same = bool(jnp.array_equal(out.sequence[:, -1], out.state.h))
    print(f"\n3. The last step of the sequence equals h: {same}")
    print(f"   sequence[0, -1] = {np.asarray(out.sequence[0, -1])}   h[0] = {np.asarray(out.state.h[0])}")
    print(f"   c[0] = {np.asarray(out.state.c[0])}  (the carry: not squashed by the output gate)")

    # Beyond the notebook: differentiate through the states.
    def loss(params: jaxlstm.LSTMParams, initial: jaxlstm.LSTMState) -> jax.Array:
        result = jaxlstm.lstm(params, xs, initial)
        return jnp.mean(result.sequence**2) + jnp.mean(result.state.c**2)

    initial = jaxlstm.zero_state(params, (batch,))
    value, (g_params, g_initial) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, initial)
    print("\n4. Beyond the notebook: gradients of mean(sequence**2) + mean(c**2)")
    print(f"   loss = {float(value):.6f}")
    for name, g in g_params._asdict().items():
        if g is not None:
            print(
                f"   d loss / d params.{name:<16} shape {list(g.shape)}  norm {float(jnp.linalg.norm(g)):.6f}"
            )
    print(
        f"   d loss / d initial_state.h     shape {list(g_initial.h.shape)}  norm {float(jnp.linalg.norm(g_initial.h)):.6f}"
    )
    print(
        f"   d loss / d initial_state.c     shape {list(g_initial.c.shape)}  norm {float(jnp.linalg.norm(g_initial.c)):.6f}"
    )
    if args.plot:
        from jaxlstm.plot import plot_states

        plot_states(params, xs, args.plot, sequences=3)
        print(f"\n5. h and c over time, final states marked: {args.plot}")
    print(f"\ndone in {time.perf_counter() - start:.1f} s (jax {jax.__version__}, {jax.default_backend()})")


if __name__ == "__main__":
    main()
