"""Why reach for a variant: the adding problem at T = 200, plain LSTM against its variants.

The same task as ``adding_problem.py`` (sum the two marked values of a sequence of T pairs), the same
seed, batches, optimiser and number of steps for every model; only the cell changes:

* ``plain``: the classic LSTM;
* ``layer norm``: Ba et al.'s layer-normalised LSTM (``jaxlstm.init(..., layer_norm=True)``);
* ``layer norm + zoneout``: the same, with zoneout on c and h in training
  (``lstm(..., zoneout=(z_c, z_h), zoneout_key=key)``; evaluation uses the expectation);
* ``peepholes`` and ``coupled gates`` (CIFG), for comparison.

    python examples/variants.py                                   # 1500 steps, T = 200
    python examples/variants.py --steps 300 --plot examples/variants.png

Prints each model's test MSE at the end and the first step at which it fell below the target, and
plots every model's test MSE on one figure (log scale).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
from adding_problem import BASELINE_MSE, make_batch

import jaxlstm


@dataclass(frozen=True)
class Variant:
    """One model: ``init`` keywords (the weights say which cell) and ``lstm`` keywords."""

    init: dict
    zoneout: tuple[float, float] = (0.0, 0.0)


VARIANTS: dict[str, Variant] = {
    "plain": Variant({}),
    "layer norm": Variant({"layer_norm": True}),
    "layer norm + zoneout": Variant({"layer_norm": True}, zoneout=(0.15, 0.05)),
    "peepholes": Variant({"peepholes": True}),
    "coupled gates": Variant({"coupled_gates": True}),
}


class Model(NamedTuple):
    lstm: jaxlstm.LSTMParams  # input_size 2 (value, marker)
    readout: _common.Dense  # [units] -> [1]


@dataclass
class Curve:
    steps: list[int]
    test_mse: list[float]
    seconds: float


def predict(model: Model, xs: jax.Array, variant: Variant, key: Optional[jax.Array]) -> jax.Array:
    """``[B, T, 2]`` -> ``[B]``. ``key`` None is evaluation (zoneout's expectation)."""
    out = jaxlstm.lstm(model.lstm, xs, zoneout=variant.zoneout, zoneout_key=key)
    return model.readout(out.state.h)[..., 0]


def train(
    name: str,
    variant: Variant,
    *,
    seq_len: int,
    steps: int,
    units: int,
    batch_size: int,
    eval_every: int,
    seed: int,
) -> Curve:
    import optax

    init_key, data_key, test_key, zoneout_key = jax.random.split(jax.random.key(seed), 4)
    lstm_key, readout_key = jax.random.split(init_key)
    model = Model(jaxlstm.init(lstm_key, 2, units, **variant.init), _common.Dense.init(readout_key, units, 1))
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))
    opt_state = optimizer.init(model)
    training = variant.zoneout != (0.0, 0.0)

    def loss_fn(model: Model, xs: jax.Array, ys: jax.Array, key: Optional[jax.Array]) -> jax.Array:
        return jnp.mean((predict(model, xs, variant, key) - ys) ** 2)

    @jax.jit
    def train_step(model: Model, opt_state, step: jax.Array):
        xs, ys = make_batch(jax.random.fold_in(data_key, step), batch_size, seq_len)
        key = jax.random.fold_in(zoneout_key, step) if training else None
        grads = jax.grad(loss_fn)(model, xs, ys, key)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optax.apply_updates(model, updates), opt_state

    test_xs, test_ys = make_batch(test_key, 1024, seq_len)
    test_mse: Callable[[Model], jax.Array] = jax.jit(lambda m: loss_fn(m, test_xs, test_ys, None))

    curve = Curve([], [], 0.0)
    start = time.perf_counter()
    for step in range(steps):
        model, opt_state = train_step(model, opt_state, jnp.asarray(step, jnp.int32))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.steps.append(step + 1)
            curve.test_mse.append(float(test_mse(model)))
    curve.seconds = time.perf_counter() - start
    return curve


def main(argv: Optional[list[str]] = None) -> dict[str, Curve]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--seq-len", type=_common.positive_int, default=200, help="T")
    add("--steps", type=_common.positive_int, default=1500, help="training steps for every model")
    add("--units", type=_common.positive_int, default=64)
    add("--batch-size", type=_common.positive_int, default=128)
    add("--eval-every", type=_common.positive_int, default=50)
    add("--seed", type=_common.seed, default=0)
    add("--target-mse", type=_common.positive_float, default=0.01)
    add("--only", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    add("--plot", type=_common.output_file(".png"), help="save the test-MSE curves here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"argument --only: unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")

    curves = {}
    for name in names:
        curve = train(
            name,
            VARIANTS[name],
            seq_len=args.seq_len,
            steps=args.steps,
            units=args.units,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            seed=args.seed,
        )
        below = [s for s, m in zip(curve.steps, curve.test_mse) if m < args.target_mse]
        reached = f"below {args.target_mse} at step {below[0]}" if below else f"never below {args.target_mse}"
        print(
            f"{name:>22}: test MSE {curve.test_mse[-1]:.4f} after {args.steps} steps, {reached} "
            f"({curve.seconds:.1f} s wall)"
        )
        curves[name] = curve
    if args.plot:
        from jaxlstm.plot import training_curves

        training_curves(
            args.plot,
            {name: (c.steps, c.test_mse) for name, c in curves.items()},
            title=f"Adding problem, T = {args.seq_len}: test MSE, same seed and batches",
            hlines={"predict the mean": BASELINE_MSE, "target": args.target_mse},
            ylabel="test MSE",
            logy=True,
        )
        print(f"curves: {args.plot}")
    return curves


if __name__ == "__main__":
    main()
