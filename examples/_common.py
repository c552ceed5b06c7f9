"""What both examples share: the training state, the loop (progress bar, evaluation, checkpoints,
data-parallel step) and command-line argument checks. Needs optax and tqdm (the ``examples`` extra).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlstm import checkpoint, sharding


class TrainState(NamedTuple):
    """Everything a run needs to continue: a checkpoint stores exactly this."""

    step: jax.Array  # int32 scalar: optimiser steps taken so far
    params: Any
    opt_state: Any


class Dense(NamedTuple):
    """A linear readout: ``y = x @ kernel + bias``, kernel ``[in, out]``, bias ``[out]``."""

    kernel: jax.Array
    bias: jax.Array

    @staticmethod
    def init(key: jax.Array, fan_in: int, fan_out: int) -> Dense:
        kernel = jax.nn.initializers.glorot_uniform()(key, (fan_in, fan_out), jnp.float32)
        return Dense(kernel, jnp.zeros((fan_out,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel + self.bias


@dataclass
class History:
    """Training loss at every step, evaluation metrics every ``eval_every`` steps, and the time
    taken: wall-clock seconds, and this process's CPU seconds (less sensitive to a busy machine)."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def fit(
    state: TrainState,
    loss_fn: Callable[[Any, Any, Any], jax.Array],
    optimizer: Any,
    next_batch: Callable[[jax.Array], tuple[Any, Any]],
    evaluate: Callable[[Any], dict[str, float]],
    *,
    max_steps: int,
    eval_every: int,
    done: Callable[[dict[str, float]], bool],
    checkpoint_path: Optional[str] = None,
    progress: bool = True,
    description: str = "training",
) -> tuple[TrainState, History]:
    """Train until ``done(metrics)`` or ``max_steps``; returns the final state and the history.

    ``next_batch(step)`` gives the batch of a step from the step number alone, so a run resumed
    from a checkpoint sees exactly the batches the uninterrupted run would have seen. The step is
    split over all devices with ``jaxlstm.sharding.data_parallel`` (one device: a plain jit).
    ``checkpoint_path`` is written after every evaluation and at the end.
    """
    from tqdm.auto import tqdm

    def train_step(state: TrainState, xs: Any, ys: Any) -> tuple[TrainState, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(state.params, xs, ys)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = jax.tree_util.tree_map(jnp.add, state.params, updates)
        return TrainState(state.step + 1, params, opt_state), loss

    step_fn = sharding.data_parallel(train_step, sharding.batch_mesh())
    history = History()
    start, start_cpu = time.perf_counter(), time.process_time()
    first = int(state.step)
    bar = tqdm(total=max_steps, initial=first, desc=description, disable=not progress, dynamic_ncols=True)
    metrics: dict[str, float] = {}
    with bar:
        for step in range(first, max_steps):
            xs, ys = next_batch(jnp.asarray(step, jnp.int32))
            state, loss = step_fn(state, xs, ys)
            history.steps.append(step + 1)
            history.losses.append(float(loss))  # syncs each step: honest wall times
            bar.update(1)
            if (step + 1) % eval_every == 0 or step + 1 == max_steps:
                metrics = evaluate(state.params)
                history.eval_steps.append(step + 1)
                history.evals.append(metrics)
                bar.set_postfix(
                    loss=f"{history.losses[-1]:.4f}", **{k: f"{v:.4f}" for k, v in metrics.items()}
                )
                if checkpoint_path:
                    checkpoint.save(checkpoint_path, state)
                if done(metrics):
                    break
    if checkpoint_path:
        checkpoint.save(checkpoint_path, state)
    history.seconds = time.perf_counter() - start
    history.cpu_seconds = time.process_time() - start_cpu
    return state, history


def resume_or(state: TrainState, checkpoint_path: Optional[str]) -> TrainState:
    """The checkpoint at ``checkpoint_path`` if it exists (restored into ``state``'s structure)."""
    if checkpoint_path and os.path.exists(checkpoint_path):
        return checkpoint.restore(checkpoint_path, state)
    return state


# ----------------------------------------------------------------------------------------------
# Command-line arguments: argparse reports an ArgumentTypeError's message as it is.
# ----------------------------------------------------------------------------------------------


def add_training_arguments(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """The options both examples share; ``defaults`` is the example's ``Config()``."""
    add = parser.add_argument
    add("--steps", type=positive_int, default=defaults.max_steps, help="at most this many steps")
    add("--batch-size", type=positive_int, default=defaults.batch_size, help="a multiple of the device count")
    add("--units", type=positive_int, default=defaults.units, help="LSTM units")
    add("--learning-rate", type=positive_float, default=defaults.learning_rate, help="Adam's")
    add("--eval-every", type=positive_int, default=defaults.eval_every, help="steps between evaluations")
    add("--seed", type=seed, default=defaults.seed)
    add("--checkpoint", type=output_file(".npz"), help="save here; resume from it if it exists")
    add("--plot", type=output_file(".png"), help="save the training curve here")
    add("--no-progress", action="store_true", help="no progress bar")
    add(
        "--cpu-devices",
        type=positive_int,
        default=None,
        help="run the CPU as this many devices (jax_num_cpu_devices); the step is split over them",
    )


def parse(parser: argparse.ArgumentParser, argv: Optional[list[str]]) -> argparse.Namespace:
    """Parse, and check the batch splits evenly over the devices (see ``jaxlstm.sharding``)."""
    args = parser.parse_args(argv)
    if args.cpu_devices is not None:
        try:  # only possible before jax has started its backends
            jax.config.update("jax_num_cpu_devices", args.cpu_devices)
        except RuntimeError as exc:
            parser.error(f"argument --cpu-devices: {exc}")
    devices = jax.device_count()
    if args.batch_size % devices:
        parser.error(
            f"argument --batch-size: expected a multiple of the {devices} devices, found {args.batch_size}"
        )
    return args


def _number(cast: Callable[[str], Any], expected: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """An argparse ``type``: ``cast`` the text, and refuse it unless ``ok``, saying what was expected."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, found {value}")
        return value

    return parse


positive_int = _number(int, "a positive integer", lambda v: v > 0)
positive_float = _number(float, "a positive number", lambda v: bool(np.isfinite(v)) and v > 0)
seed = _number(int, "a non-negative integer", lambda v: v >= 0)


def output_file(suffix: str) -> Callable[[str], str]:
    """A path ending in ``suffix`` whose folder exists."""

    def check(text: str) -> str:
        if not text.endswith(suffix):
            raise argparse.ArgumentTypeError(f"expected a file name ending in {suffix}, found {text!r}")
        folder = os.path.dirname(os.path.abspath(text))
        if not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
        return text

    return check
