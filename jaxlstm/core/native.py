"""Native CPU recurrences: the fast path's forward scan and backward reverse scan as XLA FFI calls.

The C++ extension ``jaxlstm._native._lstm`` (built by ``pip install``, optional) computes the same
values as ``fast._forward`` and the reverse scan of ``fast._backward``, float32 only, with packed
recurrent weights, AVX-512 or AVX2 micro-kernels and threads from XLA's intra-op pool (see
``jaxlstm/_native/lstm.cc``). The weight gradients stay XLA GEMMs (``fast._backward``).

Both entry points are jax-traceable, registered for the CPU platform only (a caller must not lower
them for another backend). Each is one primitive lowering to an XLA FFI custom call registered
batch-partitionable: under ``jit`` with batch-sharded inputs (``jaxlstm.sharding.data_parallel``)
XLA runs each call on every device's share of the batch, with no all-gather; under ``shard_map``
each shard runs it on its local batch; under ``vmap`` the mapped axis is folded into the batch (one
call) unless the weights are mapped too (then one call per example). See "The calls" below for
the operand layout this needs.

Threads: each call takes up to the size of XLA's intra-op pool (the calling thread and pool tasks
from the FFI execution context; see ``_native/lstm.cc``); no call waits for a task that has not
started, and when a peer gets descheduled (a busy core) one thread takes the call over for a lease
(5 ms, doubling with each further take-over up to 320 ms; calls that start within it start on one
thread), after which the others rejoin. Results do not depend on the number of threads, bit for bit.

Environment (read once, at import):

* ``JAXLSTM_NATIVE=0``: never use the extension (``available()`` is False and says so).
* ``JAXLSTM_NATIVE_ISA=avx2|avx512``: force an instruction set (default: the best the CPU has);
  naming one the CPU lacks makes the native path unavailable.
* ``JAXLSTM_NATIVE_THREADS=N``: at most N threads per call (default: XLA's intra-op pool size).

Imports jax and numpy only (and, when lowering, jaxlib's MLIR bindings, which jax depends on).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["available", "why_unavailable", "isa", "preferred", "forward", "backward_recurrence"]

_FORWARD_TARGET = "jaxlstm_native_lstm_forward_f32"
_BACKWARD_TARGET = "jaxlstm_native_lstm_backward_f32"
_ISA_CODES = {"avx2": 1, "avx512": 2}


def _load() -> tuple[Optional[str], Optional[str], int]:
    """(isa name or None, reason it is unavailable or None, thread cap): decided once at import."""
    if os.environ.get("JAXLSTM_NATIVE", "1").strip() == "0":
        return None, "disabled by the environment variable JAXLSTM_NATIVE=0", 0
    try:
        threads = int(os.environ.get("JAXLSTM_NATIVE_THREADS", "0") or 0)
    except ValueError:
        return None, "JAXLSTM_NATIVE_THREADS must be an integer", 0
    try:
        from ._native import _lstm  # pyright: ignore[reportAttributeAccessIssue]  (compiled, optional)
    except ImportError as e:
        return (
            None,
            (
                "the native extension jaxlstm._native._lstm was not built or does not load "
                f"({e}); reinstall with `pip install -e .` where g++ is available and read the "
                "build log"
            ),
            0,
        )
    from importlib.metadata import version

    built, running = getattr(_lstm, "built_with_jaxlib", "unknown"), version("jaxlib")
    if built != running:
        return (
            None,
            f"the native extension was built against jaxlib {built} and this process runs jaxlib "
            f"{running} (their XLA FFI versions may differ); rebuild it against the installed jaxlib "
            "with `pip install --no-build-isolation -e .`",
            0,
        )
    features = _lstm.cpu_features()
    wanted = os.environ.get("JAXLSTM_NATIVE_ISA", "").strip().lower()
    if wanted not in ("", "auto", *_ISA_CODES):
        return None, f"JAXLSTM_NATIVE_ISA={wanted!r} is not one of auto, avx2, avx512", 0
    if wanted in ("", "auto"):
        wanted = "avx512" if features["avx512"] else "avx2"
    if not features["avx2_fma" if wanted == "avx2" else "avx512"]:
        return None, f"this CPU (or OS) does not support {wanted} (needed by the native kernel)", 0
    jax.ffi.register_ffi_target(_FORWARD_TARGET, _lstm.forward, platform="cpu")
    jax.ffi.register_ffi_target(_BACKWARD_TARGET, _lstm.backward, platform="cpu")
    for target in (_FORWARD_TARGET, _BACKWARD_TARGET):  # see "The calls" below
        jax.ffi.register_ffi_target_as_batch_partitionable(target)
    return wanted, None, threads


_ISA, _WHY, _THREADS = _load()


def _step_rows() -> int:
    """The most rows (flattened batch) the one-step kernel takes, 0 when unavailable (see ``preferred``)."""
    if _ISA is None:
        return 0
    from ._native import _lstm  # pyright: ignore[reportAttributeAccessIssue]  (compiled, optional)

    return int(_lstm.step_max_rows)


_STEP_ROWS = _step_rows()


def _isa() -> str:
    """The instruction set in use; only called once ``_check`` has made sure the kernels are available."""
    assert _ISA is not None, why_unavailable()
    return _ISA


def available() -> bool:
    """Whether the native kernels can run: extension built and loaded, CPU supported, not disabled."""
    return _ISA is not None


def why_unavailable() -> Optional[str]:
    """A human-readable reason when ``available()`` is False, else None."""
    return _WHY


def isa() -> Optional[str]:
    """The instruction set the kernels use (``"avx512"`` or ``"avx2"``), None when unavailable."""
    return _ISA


# The rule (``preferred``), from benchmarks/native_auto.py on the AVX2 Zen 3 (2 cores, load 0.1-1.7,
# 2026-12-01 17:05; benchmarks/RESULTS.md): native over the pure-JAX fast path was 0.27-0.97 forward
# and 0.59-0.96 training on all five benchmark shapes, the large one (128/100/512/512, 537 MFLOP of
# GEMM per step) included, once a take-over no longer kept a long call on one thread (it was 1.45 /
# 1.14 there before, which had set a bound of 200 MFLOP per step). So no bound on the size: the
# kernels whenever they can run a step, except a single step (T = 1, ``jaxlstm.step``): the kernel
# then streams the weights in place, for up to ``_STEP_ROWS`` (16) rows; benchmarks/native_step.py
# (2026-12-01 22:24, load 4.6-4.9) timed it at 0.60 / 0.70 / 0.82 of XLA's step at B = 1 / 8 / 16
# and 1.15 / 3.3 at B = 32 / 64 (where the packed kernel's pack pass also lost to XLA's GEMM).


def preferred(batch: int, steps: int, input_size: int, units: int, dtype) -> bool:
    """Whether the native kernels are expected to be faster than the pure-JAX fast path for an LSTM
    of this shape on this CPU (``batch`` B, ``steps`` T, ``input_size`` I, ``units`` H, the
    computation's ``dtype``). False whenever they cannot run: unavailable, or not float32.

    True for float32 with at least two steps (any batch, input_size and units), or one step of at
    most 16 rows: measured faster on every benchmark shape of one AVX2 machine (see the comment
    above). The caller decides the platform: ask only for computations placed on the CPU.
    ``jaxlstm.lstm(impl="auto")`` (and every entry point built on it) asks this with the flattened
    batch as traced when jax's default backend is the CPU; ``jaxlstm.step`` and ``stream_step`` ask
    it for one step.
    """
    del input_size, units  # measured faster at every size (see above)
    if _ISA is None or jnp.dtype(dtype) != jnp.float32:
        return False
    return steps >= 2 or (steps == 1 and batch <= _STEP_ROWS)


def _stats() -> dict:
    """Diagnostics since import (empty when unavailable): ``calls``, ``threads`` (team sizes summed),
    ``helpers_joined`` (pool tasks that started while their call ran), ``taken_over`` (calls in which one
    thread took the others' work over for a lease because a peer was descheduled) and ``solo_after_contention`` (calls
    started by their caller alone, within an earlier take-over's lease)."""
    if _ISA is None:
        return {}
    from ._native import _lstm  # pyright: ignore[reportAttributeAccessIssue]  (compiled, optional)

    return _lstm.stats()


def _check(**arrays) -> None:
    if _ISA is None:
        raise RuntimeError(f"jaxlstm native kernels are unavailable: {_WHY}")
    for name, a in arrays.items():
        if a is not None and jnp.dtype(a.dtype) != jnp.float32:
            raise ValueError(f"jaxlstm.native supports float32 only; {name} has dtype {jnp.dtype(a.dtype)}")


def _mask(m, steps: int, batch: int, name: str):
    """A ``[T, B]`` bool mask as the call's ``[B, 1, 1, T]`` operand, or a 1-element placeholder when
    absent (the handler ignores it)."""
    if m is None:
        return jnp.zeros((1,), jnp.bool_), False
    if tuple(m.shape) != (steps, batch):
        raise ValueError(f"{name} must have shape (T, B) = {(steps, batch)}, got {tuple(m.shape)}")
    return _lead(jnp.asarray(m, jnp.bool_)), True


# ----------------------------------------------------------------------------------------------
# The calls: batch-partitionable FFI custom calls
# ----------------------------------------------------------------------------------------------
#
# XLA partitions a custom call registered batch-partitionable (``jax.ffi.
# register_ffi_target_as_batch_partitionable``) over its leading ``num_batch_dims`` dimensions (a
# frontend attribute): every operand and result is split along those dimensions with one common
# sharding (taken from the first operand when the operands disagree) and replicated along the rest;
# an operand or result of rank lower than ``num_batch_dims`` is replicated whole. Shardy propagates
# shardings through the call by its ``sdy.sharding_rule``. So the calls here use
#
# * num_batch_dims = 3, and per-batch operands and results of logical shape ``[B, 1, 1, ...]``
#   (rank >= 4, the batch first), first among the operands; the weights (rank <= 2) and the
#   placeholders of absent operands (rank 1) stay whole on every device;
# * row-major (batch-major) buffers: the kernels read and write ``[B][T][K]``. The fast path hands
#   time-major ``[T, B, K]`` arrays, the transposes of the user's batch-major ones, and XLA cancels
#   the two transposes: the input and the outputs move no data. (A time-major physical layout of the
#   same logical shape made XLA insert copies around the call instead, measured.) What remains is
#   XLA transposing ``d_z`` to time-major for the weight-gradient GEMMs of the fast path;
# * a sharding rule with one factor for the batch, shared by every per-batch operand and result,
#   and a factor of its own for every other dimension.
#
# Under ``vmap`` the mapped axis is folded into the batch (one call) when the weights are not
# mapped, else the call runs once per example (``lax.map``). That loop was measured no slower than
# the pure-JAX path's batched GEMMs (forward 3.0 vs 3.8 ms for 64 models of B=1 T=50 I=16 H=32,
# 16 vs 26 ms for 8 of 32/50/32/64, 337 vs 560 ms for 4 of 64/100/128/256; load 2-4), so
# ``impl="auto"`` keeps the kernels under a vmap over the weights (the backward recurrence then
# runs the pure-JAX reference, ``_recurrences._batch``).

_BATCH_DIMS = 3


def _lead(a: jax.Array) -> jax.Array:
    """``[T, B, ...]`` as the call's ``[B, 1, 1, T, ...]`` operand."""
    a = jnp.moveaxis(a, 1, 0)
    return a.reshape(a.shape[0], 1, 1, *a.shape[1:])


def _unlead(a: jax.Array) -> jax.Array:
    """The inverse of ``_lead``: ``[B, 1, 1, T, ...]`` to ``[T, B, ...]``."""
    return jnp.moveaxis(a.reshape(a.shape[0], *a.shape[3:]), 0, 1)


def _state(a: jax.Array) -> jax.Array:
    return a.reshape(a.shape[0], 1, 1, *a.shape[1:])


def _batched(aval) -> bool:
    return len(aval.shape) > _BATCH_DIMS


def _sharding_rule(avals_in, avals_out):
    """The Shardy rule: factor 0 is the batch (dimension 0 of every per-batch value), every other
    dimension gets a factor of its own (never split)."""
    from jaxlib.mlir.dialects import sdy

    sizes = [next(a.shape[0] for a in avals_in if _batched(a))]

    def mapping(aval):
        dims = []
        for d, n in enumerate(aval.shape):
            if d == 0 and _batched(aval):
                dims.append(sdy.DimMappingAttr.get([0]))
            else:
                sizes.append(n)
                dims.append(sdy.DimMappingAttr.get([len(sizes) - 1]))
        return sdy.TensorMappingAttr.get(dims)

    operands, results = [mapping(a) for a in avals_in], [mapping(a) for a in avals_out]
    return sdy.OpShardingRuleAttr.get(sizes, operands, results, is_custom=True)


class _Call:
    """One FFI target as a primitive carrying the batch-partitioning attributes described above.

    Operands: the per-batch ones first (``[B, 1, 1, ...]``), then weights and placeholders (rank
    <= 2). Results are float32 of the static ``out_shapes``.
    """

    def __init__(self, name: str, target: str):
        from jax.extend.core import Primitive
        from jax.interpreters import batching, mlir

        self.target = target
        self.prim = prim = Primitive(name)
        prim.multiple_results = True
        # Outside jit: compiled once per static configuration (the FFI call needs a compilation).
        prim.def_impl(lambda *args, **params: _eager(*args, call=self, params=tuple(sorted(params.items()))))
        prim.def_abstract_eval(self._abstract_eval)
        mlir.register_lowering(prim, self._lower, platform="cpu")
        batching.primitive_batchers[prim] = self._batch

    @staticmethod
    def _abstract_eval(*avals, out_shapes, **attrs):
        del attrs
        # Typed like a per-batch operand of the same rank, or the first one: that keeps shard_map's
        # varying type (the caller gives every operand the same one).
        like = {len(a.shape): a for a in avals if _batched(a)}
        return [
            like.get(len(s), avals[0]).update(shape=s, dtype=jnp.float32, weak_type=False) for s in out_shapes
        ]

    def _lower(self, ctx, *operands, out_shapes, **attrs):
        del out_shapes
        from jaxlib.mlir import ir

        extra: dict[str, ir.Attribute] = {
            "mhlo.frontend_attributes": ir.DictAttr.get(
                {"num_batch_dims": ir.StringAttr.get(str(_BATCH_DIMS))}
            )
        }
        if jax.config.jax_use_shardy_partitioner:  # pyright: ignore[reportAttributeAccessIssue]  (a flag)
            extra["sdy.sharding_rule"] = _sharding_rule(ctx.avals_in, ctx.avals_out)
        rule = jax.ffi.ffi_lowering(self.target, extra_attributes=extra)
        return rule(ctx, *operands, **attrs)

    def _batch(self, args, dims, *, out_shapes, **attrs):
        mapped = [d is not None for d in dims]  # None: not mapped
        size = next(a.shape[d] for a, d, m in zip(args, dims, mapped) if m)
        args = [jnp.moveaxis(a, d, 0) if m else a for a, d, m in zip(args, dims, mapped)]
        per_batch = [a.ndim - m > _BATCH_DIMS for a, m in zip(args, mapped)]
        if not any(m and not b for m, b in zip(mapped, per_batch)):
            # Only per-batch operands are mapped: fold the mapped axis into the batch, one call.
            folded = []
            for a, m, b in zip(args, mapped, per_batch):
                if b:
                    if not m:
                        a = jnp.broadcast_to(a, (size, *a.shape))
                    a = a.reshape(size * a.shape[1], *a.shape[2:])
                folded.append(a)
            shapes = tuple((size * s[0], *s[1:]) if len(s) > _BATCH_DIMS else s for s in out_shapes)
            outs = self.prim.bind(*folded, out_shapes=shapes, **attrs)
            outs = [
                o.reshape(size, o.shape[0] // size, *o.shape[1:]) if len(s) > _BATCH_DIMS else o
                for o, s in zip(outs, out_shapes)
            ]
            return outs, [0 if len(s) > _BATCH_DIMS else None for s in out_shapes]

        # Per-example weights: one call per example.
        def one(xs):
            it = iter(xs)
            return self.prim.bind(
                *[next(it) if m else a for a, m in zip(args, mapped)], out_shapes=out_shapes, **attrs
            )

        outs = jax.lax.map(one, [a for a, m in zip(args, mapped) if m])
        return outs, [0] * len(out_shapes)

    def __call__(self, *operands, out_shapes, **attrs):
        from ._manual_axes import vary_like

        operands = vary_like(list(operands), operands)
        return self.prim.bind(*operands, out_shapes=tuple(tuple(s) for s in out_shapes), **attrs)


@partial(jax.jit, static_argnames=("call", "params"))
def _eager(*args, call: _Call, params: tuple):
    return call.prim.bind(*args, **dict(params))


_forward_call = _Call("jaxlstm_native_forward", _FORWARD_TARGET)
_backward_call = _Call("jaxlstm_native_backward", _BACKWARD_TARGET)


def forward(kernel, recurrent_kernel, bias, xs, h0, c0, keep, valid, *, zero_output: bool, save: bool):
    """The forward recurrence: the same values as ``fast._forward(..., FastConfig(), save)``.

    One step (T = 1) of at most ``_STEP_ROWS`` rows (``jaxlstm.step``) runs a kernel that streams the
    weights in place; every other call packs them once and runs the recurrence on the panels.

    Args:
        kernel: ``[I, 4H]``; recurrent_kernel: ``[H, 4H]``; bias: ``[4H]`` or None.
        xs: ``[T, B, I]``; h0, c0: ``[B, H]``.
        keep, valid: ``[T, B]`` bool or None (as in ``fast.lstm_time_major``).
        zero_output: a step that is not kept emits zeros instead of the previous h.
        save: also return the residuals of the backward pass.

    Returns:
        ``(ys [T, B, H], h_T [B, H], c_T [B, H], res)``: ``res`` is None unless ``save``, else
        ``(z [T, B, 4H], h_prev [T, B, H], c_prev [T, B, H])``, the pre-activations and the state
        each step starts from.
    """
    _check(kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias, xs=xs, h0=h0, c0=c0)
    steps, batch, inputs = xs.shape
    units = recurrent_kernel.shape[0]
    if kernel.shape != (inputs, 4 * units) or recurrent_kernel.shape != (units, 4 * units):
        raise ValueError(
            f"kernel {kernel.shape} / recurrent_kernel {recurrent_kernel.shape} do not match "
            f"xs {xs.shape}: expected ({inputs}, {4 * units}) and ({units}, {4 * units})"
        )
    if bias is not None and bias.shape != (4 * units,):
        raise ValueError(f"bias must have shape ({4 * units},), got {bias.shape}")
    if h0.shape != (batch, units) or c0.shape != (batch, units):
        raise ValueError(f"h0 {h0.shape} and c0 {c0.shape} must be (B, H) = {(batch, units)}")
    keep_a, has_keep = _mask(keep, steps, batch, "keep")
    valid_a, has_valid = _mask(valid, steps, batch, "valid")
    if 0 in (steps, batch, units):  # nothing to compute: the state passes through (no call on
        # empty arrays: XLA:CPU 0.10 crashed compiling one with a non-default layout)
        from ._manual_axes import vary_like

        empty = lambda k: jnp.zeros((steps, batch, k), jnp.float32)  # noqa: E731
        res = (empty(4 * units), empty(units), empty(units)) if save else None
        return vary_like((empty(units), h0, c0, res), xs, h0, c0, kernel, recurrent_kernel)
    bias_a = jnp.zeros((1,), jnp.float32) if bias is None else bias
    seq, state = (batch, 1, 1, steps), (batch, 1, 1, units)
    residuals = [(*seq, 4 * units), (*seq, units), (*seq, units)] if save else [(0,)] * 3
    ys, h_T, c_T, z, h_prev, c_prev = _forward_call(
        _lead(xs),
        _state(h0),
        _state(c0),
        keep_a,
        valid_a,
        kernel,
        recurrent_kernel,
        bias_a,
        out_shapes=[(*seq, units), state, state, *residuals],
        zero_output=bool(zero_output),
        save=bool(save),
        has_bias=bias is not None,
        has_keep=has_keep,
        has_valid=has_valid,
        isa=np.int32(_ISA_CODES[_isa()]),
        threads=np.int32(_THREADS),
    )
    res = (_unlead(z), _unlead(h_prev), _unlead(c_prev)) if save else None
    return _unlead(ys), h_T.reshape(batch, units), c_T.reshape(batch, units), res


def backward_recurrence(recurrent_kernel, z, c_prev, keep, valid, d_ys, d_hT, d_cT, *, zero_output: bool):
    """The reverse scan of ``fast._backward`` (everything before the weight-gradient GEMMs).

    Args:
        recurrent_kernel: ``[H, 4H]``.
        z, c_prev: the residuals of ``forward(..., save=True)``: ``[T, B, 4H]``, ``[T, B, H]``.
        keep, valid: ``[T, B]`` bool or None, as given to ``forward``.
        d_ys: ``[T, B, H]``; d_hT, d_cT: ``[B, H]`` cotangents of the outputs.
        zero_output: as given to ``forward``.

    Returns:
        ``(d_z [T, B, 4H], d_h0 [B, H], d_c0 [B, H])``: the pre-activation gradients and the
        cotangents of the initial state.
    """
    _check(recurrent_kernel=recurrent_kernel, z=z, c_prev=c_prev, d_ys=d_ys, d_hT=d_hT, d_cT=d_cT)
    steps, batch, four_units = z.shape
    units = recurrent_kernel.shape[0]
    if recurrent_kernel.shape != (units, 4 * units) or four_units != 4 * units:
        raise ValueError(
            f"recurrent_kernel {recurrent_kernel.shape} and z {z.shape} do not match: "
            f"expected (H, 4H) and (T, B, 4H)"
        )
    for name, a, shape in (
        ("c_prev", c_prev, (steps, batch, units)),
        ("d_ys", d_ys, (steps, batch, units)),
        ("d_hT", d_hT, (batch, units)),
        ("d_cT", d_cT, (batch, units)),
    ):
        if tuple(a.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(a.shape)}")
    if 0 in (steps, batch, units):  # as in forward
        from ._manual_axes import vary_like

        return vary_like((jnp.zeros_like(z), d_hT, d_cT), z, d_ys, d_hT, d_cT, recurrent_kernel)
    keep_a, has_keep = _mask(keep, steps, batch, "keep")
    valid_a, has_valid = _mask(valid, steps, batch, "valid")
    state = (batch, 1, 1, units)
    d_z, d_h0, d_c0 = _backward_call(
        _lead(z),
        _lead(c_prev),
        _lead(d_ys),
        _state(d_hT),
        _state(d_cT),
        keep_a,
        valid_a,
        recurrent_kernel,
        out_shapes=[(batch, 1, 1, steps, 4 * units), state, state],
        zero_output=bool(zero_output),
        has_keep=has_keep,
        has_valid=has_valid,
        isa=np.int32(_ISA_CODES[_isa()]),
        threads=np.int32(_THREADS),
    )
    return _unlead(d_z), d_h0.reshape(batch, units), d_c0.reshape(batch, units)
