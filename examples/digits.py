"""Sequence classification of scikit-learn's bundled 8x8 handwritten digits with jaxlstm and optax Adam.

Each image is read row by row: 8 time steps of 8 pixels. An LSTM reads the rows and a dense layer
maps its final memory state h to the 10 classes. The 1797 images ship with scikit-learn (no
download); a stratified 80/20 split gives 1437 training and 360 test images.

    python examples/digits.py
    python examples/digits.py --steps 600 --plot examples/digits.png
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

import jaxlstm


@dataclass(frozen=True)
class Config:
    units: int = 64
    batch_size: int = 128
    learning_rate: float = 1e-2
    max_steps: int = 600
    eval_every: int = 50
    target_accuracy: float = 1.0  # by default train for max_steps; --target stops early
    seed: int = 0


class Model(NamedTuple):
    lstm: jaxlstm.LSTMParams  # input_size 8 (one row of pixels)
    readout: _common.Dense  # [units] -> [10]


def load(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images ``[N, 8, 8]`` scaled to [0, 1], labels ``[N]`` int32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    return x_train, y_train, x_test, y_test


def init_model(key: jax.Array, units: int) -> Model:
    lstm_key, readout_key = jax.random.split(key)
    return Model(jaxlstm.init(lstm_key, 8, units), _common.Dense.init(readout_key, units, 10))


def logits(model: Model, images: jax.Array) -> jax.Array:
    """``[B, 8, 8]`` (rows as time steps) -> ``[B, 10]``."""
    return model.readout(jaxlstm.lstm(model.lstm, images).state.h)


def loss_fn(model: Model, images: jax.Array, labels: jax.Array) -> jax.Array:
    import optax

    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(model, images), labels))


@dataclass
class Result:
    test_accuracy: float
    steps: int
    seconds: float
    history: _common.History


def train(config: Config = Config(), *, checkpoint: Optional[str] = None, progress: bool = True) -> Result:
    import optax

    x_train, y_train, x_test, y_test = load(config.seed)
    model_key, data_key = jax.random.split(jax.random.key(config.seed))
    optimizer = optax.adam(config.learning_rate)
    model = init_model(model_key, config.units)
    state = _common.TrainState(jnp.asarray(0, jnp.int32), model, optimizer.init(model))
    state = _common.resume_or(state, checkpoint)

    train_images, train_labels = jnp.asarray(x_train), jnp.asarray(y_train)
    local_batch = config.batch_size // jax.process_count()

    @jax.jit
    def draw(step: jax.Array) -> tuple[jax.Array, jax.Array]:
        # Sampled with replacement from the step number: resumable and the same in every run.
        key = jax.random.fold_in(jax.random.fold_in(data_key, step), jax.process_index())
        index = jax.random.randint(key, (local_batch,), 0, train_images.shape[0])
        return train_images[index], train_labels[index]

    test_images, test_labels = jnp.asarray(x_test), jnp.asarray(y_test)

    @jax.jit
    def accuracy(model: Model) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(model, test_images), axis=-1) == test_labels)

    state, history = _common.fit(
        state,
        loss_fn,
        optimizer,
        draw,
        lambda model: {"test_acc": float(accuracy(model))},
        max_steps=config.max_steps,
        eval_every=config.eval_every,
        done=lambda m: m["test_acc"] >= config.target_accuracy,
        checkpoint_path=checkpoint,
        progress=progress,
        description="digits",
    )
    return Result(float(accuracy(state.params)), int(state.step), history.seconds, history)


def main(argv: Optional[list[str]] = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    parser.add_argument(
        "--target",
        type=_common.positive_float,
        default=defaults.target_accuracy,
        help="stop once the test accuracy reaches this (default: run all steps)",
    )
    _common.add_training_arguments(parser, defaults)
    args = _common.parse(parser, argv)
    if args.target > 1:
        parser.error(f"argument --target: expected an accuracy in (0, 1], found {args.target}")

    config = Config(
        units=args.units,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_steps=args.steps,
        eval_every=args.eval_every,
        target_accuracy=args.target,
        seed=args.seed,
    )
    result = train(config, checkpoint=args.checkpoint, progress=not args.no_progress)
    print(
        f"digits: test accuracy {100 * result.test_accuracy:.1f}% after {result.steps} steps in "
        f"{result.seconds:.1f} s wall, {result.history.cpu_seconds:.1f} s CPU "
        f"({jax.device_count()} {jax.default_backend()} device(s))"
    )
    if args.plot:
        from jaxlstm.plot import training_curves

        h = result.history
        training_curves(
            args.plot,
            {
                "train cross-entropy": (h.steps, h.losses),
                "test error rate": (h.eval_steps, [1 - e["test_acc"] for e in h.evals]),
            },
            title="Digits (8 rows of 8 pixels), LSTM + dense",
            ylabel="cross-entropy / error rate",
            hlines={"5% error": 0.05},
            logy=True,
        )
        print(f"training curve: {args.plot}")
    return result


if __name__ == "__main__":
    main()
