"""Data parallelism with ``jax.sharding``: the batch split over devices, parameters replicated.

    mesh = batch_mesh()                                   # every device, one axis named "batch"
    train_step = data_parallel(train_step, mesh)          # args[1:] are batches, args[0] is state
    state, loss = train_step(state, xs, ys)               # xs, ys: [B, ...]; B % devices == 0

Nothing here knows about LSTMs: ``data_parallel`` places the arguments (batch arguments split along
their leading axis with ``NamedSharding(mesh, P("batch"))``, the rest replicated with ``P()``) and
calls ``jax.jit``; XLA's partitioner turns the mean over the batch into an all-reduce, so the step
computes what it computes on one device, and its outputs come back replicated (or as asked).

The same code runs on one CPU device, on N CPU devices made with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before jax is imported), on the GPUs of one
machine, and on several hosts: call ``jax.distributed.initialize()`` first in every process, then
``batch_mesh()`` spans all processes' devices, and each process passes its OWN share of the batch
(``B / jax.process_count()`` examples, different in every process); parameters and other replicated
arguments must be the same in every process (same seed). Outputs replicated with ``P()`` can be read
in every process. (Several CPU processes also need
``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` before ``initialize``.)

``batch_parallel(fn, mesh)`` is the other tool: ``jax.shard_map`` of a per-example function (the LSTM
call itself), so each device runs the recurrence on its own shard with no communication. On a CPU
started as N host devices it runs N recurrences at once on N cores, which XLA does not do within one
device.

Batch sizes: the global batch must be a multiple of the number of devices on the batch axis, or
``data_parallel`` raises a ``ValueError`` that says so. There is no silent padding, because padded
examples would change a mean loss; drop the remainder, or pad and weight the loss yourself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["batch_mesh", "shard_batch", "replicate", "data_parallel", "batch_parallel"]


def batch_mesh(
    devices: Optional[Sequence[jax.Device]] = None,  # pyright: ignore[reportInvalidTypeForm] (jax: Device = _xc.Device)
    axis_name: str = "batch",
) -> Mesh:
    """A one-axis ``Mesh`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices: expected at least one device, found none")
    return Mesh(np.asarray(devices), (axis_name,))


def _place(x: Any, sharding: NamedSharding, global_shape: Optional[tuple[int, ...]] = None) -> jax.Array:
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x  # already where it belongs (e.g. the replicated output of the previous step)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    # Multi-host: each process holds only its own part; assemble the global array from them.
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), global_shape)


def _axis_size(mesh: Mesh, axis_name: str) -> int:
    if axis_name not in mesh.shape:
        raise ValueError(f"axis_name: {axis_name!r} is not an axis of the mesh {dict(mesh.shape)}")
    return mesh.shape[axis_name]


def _global_batch(where: str, leaf: Any, devices: int, axis_name: str, processes: int = 1) -> int:
    """The global batch size of ``leaf`` (its leading axis times ``processes``), checked to split."""
    shape = np.shape(leaf)
    if not shape:
        raise ValueError(f"{where}: expected an array with a leading batch axis, found a scalar")
    size = shape[0] * processes
    if size % devices:
        raise ValueError(
            f"{where}: a batch of {size} examples does not split evenly over the {devices} "
            f"devices of mesh axis {axis_name!r}; use a batch size that is a multiple of "
            f"{devices} (drop the remainder, or pad and weight the loss)"
        )
    return size


def shard_batch(batch: Any, mesh: Mesh, axis_name: str = "batch", *, name: str = "batch") -> Any:
    """Split every leaf of ``batch`` along its leading axis over the mesh axis ``axis_name``.

    Args:
        batch: a pytree of arrays ``[B_local, ...]`` (one process: ``B_local`` is the whole batch;
            several: this process's share).
        mesh: the device mesh, e.g. ``batch_mesh()``.
        axis_name: the mesh axis the batch is split over.
        name: what error messages call ``batch``.

    Returns:
        The same pytree of global ``jax.Array`` ``[B_local * process_count, ...]`` with sharding
        ``NamedSharding(mesh, P(axis_name))``.

    Raises:
        ValueError: a leaf has no leading axis, or the global batch is not a multiple of the
            number of devices on ``axis_name``.
    """
    devices = _axis_size(mesh, axis_name)
    sharding = NamedSharding(mesh, PartitionSpec(axis_name))
    processes = jax.process_count()

    def place(path: Any, leaf: Any) -> jax.Array:
        where = f"{name}{jax.tree_util.keystr(path)}"
        size = _global_batch(where, leaf, devices, axis_name, processes)
        return _place(leaf, sharding, (size, *np.shape(leaf)[1:]))

    return jax.tree_util.tree_map_with_path(place, batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put a full copy of every leaf on every device of ``mesh`` (``NamedSharding(mesh, P())``).

    Under several processes, every process must pass the same values.
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(lambda leaf: _place(leaf, sharding, np.shape(leaf)), tree)


def _batch_positions(batch_argnums: Optional[int | Sequence[int]], count: int) -> frozenset[int]:
    """The positions of the batch arguments; default every argument but the first."""
    if batch_argnums is None:
        return frozenset(range(1, count))
    batch = {batch_argnums} if isinstance(batch_argnums, int) else set(batch_argnums)
    for i in batch:
        if not -count <= i < count:
            raise ValueError(f"batch_argnums: {i} is out of range for {count} arguments")
    return frozenset(i % count for i in batch)


def data_parallel(
    fn: Callable[..., Any],
    mesh: Mesh,
    *,
    batch_argnums: Optional[int | Sequence[int]] = None,
    axis_name: str = "batch",
    out_shardings: Any = None,
    donate_argnums: int | Sequence[int] = (),
) -> Callable[..., Any]:
    """Jit ``fn`` so that its batch arguments are split over ``mesh`` and the rest replicated.

    Args:
        fn: a function of pytrees of arrays, e.g. ``train_step(state, xs, ys) -> (state, loss)``.
            It is written as for one device; reductions over the batch become all-reduces.
        mesh: the device mesh, e.g. ``batch_mesh()``.
        batch_argnums: positions of the arguments whose leaves are ``[B, ...]`` batches (split along
            axis 0). Default: every argument but the first (the training state).
        axis_name: the mesh axis the batch is split over.
        out_shardings: as in ``jax.jit``; default replicated (``NamedSharding(mesh, P())``) for
            every output. Pass ``NamedSharding(mesh, P(axis_name))`` for per-example outputs.
        donate_argnums: as in ``jax.jit``.

    Returns:
        A function with ``fn``'s signature (positional arguments only) that places its arguments
        and runs the jitted ``fn``; see ``shard_batch`` for the batch-size rule.
    """
    _axis_size(mesh, axis_name)
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(axis_name))
    if out_shardings is None:
        out_shardings = replicated

    # Explicit in_shardings: one compiled program whether an argument arrives fresh from the host,
    # restored from a checkpoint, or as the previous step's output.
    @functools.cache
    def jitted(batch: frozenset[int], count: int) -> Callable[..., Any]:
        in_shardings = tuple(split if i in batch else replicated for i in range(count))
        return jax.jit(
            fn, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=donate_argnums
        )

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        batch = _batch_positions(batch_argnums, len(args))
        placed = [
            shard_batch(a, mesh, axis_name, name=f"args[{i}]") if i in batch else replicate(a, mesh)
            for i, a in enumerate(args)
        ]
        return jitted(batch, len(args))(*placed)

    return run


def batch_parallel(
    fn: Callable[..., Any],
    mesh: Mesh,
    *,
    batch_argnums: Optional[int | Sequence[int]] = None,
    axis_name: str = "batch",
) -> Callable[..., Any]:
    """``jax.shard_map`` of ``fn`` over the batch: each device runs ``fn`` on its own examples.

    Unlike ``data_parallel`` (which lets XLA partition a whole step), ``fn`` itself runs once per
    device on a ``[B / devices, ...]`` shard, with no communication; it must treat examples
    independently, as ``jaxlstm.lstm`` does. Use it around the LSTM call, inside a jitted or
    ``data_parallel`` step; gradients flow through it (a replicated argument's gradient is summed
    over the devices).

    Why: on a CPU, XLA runs the small per-step matrix products of a recurrence on one core. With
    ``jax.config.update("jax_num_cpu_devices", N)`` at the start of the program (or
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the CPU is N devices, and
    ``batch_parallel`` runs N recurrences at once (see benchmarks/RESULTS.md).

    Args:
        fn: a function of pytrees of arrays whose outputs all have the batch as their leading axis,
            e.g. ``lambda params, xs: jaxlstm.lstm(params, xs)``.
        mesh: the device mesh, e.g. ``batch_mesh()``.
        batch_argnums: positions of the arguments whose leaves are ``[B, ...]`` batches (split along
            axis 0); the others are replicated. Default: every argument but the first.
        axis_name: the mesh axis the batch is split over.

    Returns:
        A function with ``fn``'s signature (positional arguments only) returning ``fn``'s outputs
        for the whole batch, split over ``axis_name``. ``B`` must be a multiple of the number of
        devices on ``axis_name``, or it raises a ``ValueError`` naming the argument.
    """
    devices = _axis_size(mesh, axis_name)

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        batch = _batch_positions(batch_argnums, len(args))
        for i in sorted(batch):
            for path, leaf in jax.tree_util.tree_leaves_with_path(args[i]):
                _global_batch(f"args[{i}]{jax.tree_util.keystr(path)}", leaf, devices, axis_name)
        in_specs = tuple(
            PartitionSpec(axis_name) if i in batch else PartitionSpec() for i in range(len(args))
        )
        split = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec(axis_name))
        return split(*args)

    return run
