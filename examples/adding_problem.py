"""The adding problem (Hochreiter & Schmidhuber 1997, section 5.4), trained with jaxlstm and optax Adam.

Each input is a sequence of T pairs (value, marker): values uniform in [0, 1], and the marker is 1 at
two positions (one in each half of the sequence) and 0 elsewhere. The target is the sum of the two
marked values. Predicting the mean (1.0) scores an MSE of 1/6 ~= 0.167; the run stops when the test
MSE falls below 0.01, and reports the paper's criterion, the share of test sequences predicted to
within 0.04.

    python examples/adding_problem.py                          # T = 100
    python examples/adding_problem.py --seq-len 200 --plot examples/adding_problem.png
    python examples/adding_problem.py --checkpoint run.npz     # resumes from run.npz if it exists

The model is ``jaxlstm.lstm`` followed by a dense readout of the final memory state h. Batches are
drawn from the step number, so a run resumed from a checkpoint is bit-identical to an uninterrupted
one; the training step is data-parallel over all devices (see ``jaxlstm.sharding``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

import jaxlstm

BASELINE_MSE = 1 / 6  # variance of the sum of two independent U[0, 1] values


@dataclass(frozen=True)
class Config:
    seq_len: int = 100
    units: int = 64
    batch_size: int = 128
    learning_rate: float = 3e-3
    max_steps: int = 10_000
    eval_every: int = 100
    test_size: int = 1024
    target_mse: float = 0.01
    tolerance: float = 0.04
    seed: int = 0


class Model(NamedTuple):
    lstm: jaxlstm.LSTMParams  # input_size 2 (value, marker)
    readout: _common.Dense  # [units] -> [1]


def make_batch(key: jax.Array, batch_size: int, seq_len: int) -> tuple[jax.Array, jax.Array]:
    """``batch_size`` sequences: inputs ``[B, T, 2]`` (value, marker) and targets ``[B]``."""
    value_key, first_key, second_key = jax.random.split(key, 3)
    values = jax.random.uniform(value_key, (batch_size, seq_len))
    half = seq_len // 2
    first = jax.random.randint(first_key, (batch_size,), 0, half)
    second = jax.random.randint(second_key, (batch_size,), half, seq_len)
    t = jnp.arange(seq_len)
    markers = ((t == first[:, None]) | (t == second[:, None])).astype(jnp.float32)
    return jnp.stack([values, markers], axis=-1), jnp.sum(values * markers, axis=-1)


def init_model(key: jax.Array, units: int) -> Model:
    lstm_key, readout_key = jax.random.split(key)
    return Model(jaxlstm.init(lstm_key, 2, units), _common.Dense.init(readout_key, units, 1))


def predict(model: Model, xs: jax.Array) -> jax.Array:
    """``[B, T, 2]`` -> ``[B]``: the readout of the final memory state."""
    return model.readout(jaxlstm.lstm(model.lstm, xs).state.h)[..., 0]


def loss_fn(model: Model, xs: jax.Array, ys: jax.Array) -> jax.Array:
    return jnp.mean((predict(model, xs) - ys) ** 2)


def make_optimizer(config: Config) -> optax.GradientTransformation:  # noqa: F821
    import optax

    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config.learning_rate))


def init_state(config: Config) -> _common.TrainState:
    """The state at step 0: a fresh model and optimiser state from ``config.seed``."""
    model = init_model(jax.random.split(jax.random.key(config.seed), 3)[0], config.units)
    return _common.TrainState(jnp.asarray(0, jnp.int32), model, make_optimizer(config).init(model))


@dataclass
class Result:
    reached: bool  # test MSE < target
    steps: int
    seconds: float
    test_mse: float
    within_tolerance: float  # share of test sequences with |error| < tolerance
    history: _common.History


def train(
    config: Config = Config(),
    *,
    checkpoint: Optional[str] = None,
    progress: bool = True,
) -> Result:
    _, data_key, test_key = jax.random.split(jax.random.key(config.seed), 3)
    optimizer = make_optimizer(config)
    state = _common.resume_or(init_state(config), checkpoint)

    # Each process draws its own share of the batch (one process: all of it).
    local_batch = config.batch_size // jax.process_count()

    @jax.jit
    def draw(step: jax.Array) -> tuple[jax.Array, jax.Array]:
        key = jax.random.fold_in(jax.random.fold_in(data_key, step), jax.process_index())
        return make_batch(key, local_batch, config.seq_len)

    test_xs, test_ys = make_batch(test_key, config.test_size, config.seq_len)

    @jax.jit
    def test_errors(model: Model) -> jax.Array:
        return predict(model, test_xs) - test_ys

    def evaluate(model: Model) -> dict[str, float]:
        errors = test_errors(model)
        return {
            "test_mse": float(jnp.mean(errors**2)),
            "within_tol": float(jnp.mean(jnp.abs(errors) < config.tolerance)),
        }

    state, history = _common.fit(
        state,
        loss_fn,
        optimizer,
        draw,
        evaluate,
        max_steps=config.max_steps,
        eval_every=config.eval_every,
        done=lambda m: m["test_mse"] < config.target_mse,
        checkpoint_path=checkpoint,
        progress=progress,
        description=f"adding T={config.seq_len}",
    )
    last = history.evals[-1] if history.evals else evaluate(state.params)
    return Result(
        reached=last["test_mse"] < config.target_mse,
        steps=int(state.step),
        seconds=history.seconds,
        test_mse=last["test_mse"],
        within_tolerance=last["within_tol"],
        history=history,
    )


def main(argv: Optional[list[str]] = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    parser.add_argument("--seq-len", type=_common.positive_int, default=defaults.seq_len, help="T")
    parser.add_argument("--target-mse", type=_common.positive_float, default=defaults.target_mse)
    _common.add_training_arguments(parser, defaults)
    args = _common.parse(parser, argv)
    if args.seq_len < 2:
        parser.error(f"argument --seq-len: expected at least 2 (one marker per half), found {args.seq_len}")

    config = Config(
        seq_len=args.seq_len,
        units=args.units,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_steps=args.steps,
        eval_every=args.eval_every,
        target_mse=args.target_mse,
        seed=args.seed,
    )
    result = train(config, checkpoint=args.checkpoint, progress=not args.no_progress)
    verdict = "reached" if result.reached else "did NOT reach"
    print(
        f"adding problem T={config.seq_len}: {verdict} test MSE < {config.target_mse} "
        f"(MSE {result.test_mse:.4f}, baseline {BASELINE_MSE:.3f}) after {result.steps} steps "
        f"in {result.seconds:.1f} s wall, {result.history.cpu_seconds:.1f} s CPU; "
        f"{100 * result.within_tolerance:.1f}% of {config.test_size} test sequences within "
        f"{config.tolerance} ({jax.device_count()} {jax.default_backend()} device(s))"
    )
    if args.plot:
        from jaxlstm.plot import training_curves

        h = result.history
        training_curves(
            args.plot,
            {"train MSE": (h.steps, h.losses), "test MSE": (h.eval_steps, [e["test_mse"] for e in h.evals])},
            title=f"Adding problem, T = {config.seq_len}",
            hlines={"predict the mean": BASELINE_MSE, "target": config.target_mse},
            ylabel="MSE",
            logy=True,
        )
        print(f"training curve: {args.plot}")
    return result


if __name__ == "__main__":
    main()
