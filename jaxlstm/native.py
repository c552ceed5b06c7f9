"""Native CPU recurrences: the fast path's forward scan and backward reverse scan as XLA FFI calls.

The C++ extension ``jaxlstm._native._lstm`` (built by ``pip install``, optional) computes the same
values as ``fast._forward`` and the reverse scan of ``fast._backward``, float32 only, with packed
recurrent weights, AVX-512 or AVX2 micro-kernels and threads from XLA's intra-op pool (see
``jaxlstm/_native/lstm.cc``). The weight gradients stay XLA GEMMs (``fast._backward``).

Both entry points are jax-traceable (``jax.ffi.ffi_call``), registered for the CPU platform only
(a caller must not lower them for another backend); under ``vmap`` they run once per example
(``vmap_method="sequential"``: a caller whose weights are not batched does better folding the
mapped axis into B). Under ``shard_map`` each shard runs the kernel on its local batch (tested).
They are not registered batch-partitionable: XLA's batch partitioner splits the leading dimensions
of every operand and result alike, while here the batch is axis 1 of ``[T, B, ...]`` and the
weights have no batch axis.

Threads: each call takes up to the size of XLA's intra-op pool (the calling thread and pool tasks
from the FFI execution context; see ``_native/lstm.cc``); no call waits for a task that has not
started, and a call whose peers get descheduled finishes on one thread (and the calls of the next
200 ms start on one). Results do not depend on the number of threads, bit for bit.

Environment (read once, at import):

* ``JAXLSTM_NATIVE=0``: never use the extension (``available()`` is False and says so).
* ``JAXLSTM_NATIVE_ISA=avx2|avx512``: force an instruction set (default: the best the CPU has);
  naming one the CPU lacks makes the native path unavailable.
* ``JAXLSTM_NATIVE_THREADS=N``: at most N threads per call (default: XLA's intra-op pool size).

Imports jax and numpy only.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["available", "why_unavailable", "isa", "forward", "backward_recurrence"]

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
    return wanted, None, threads


_ISA, _WHY, _THREADS = _load()


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


def _stats() -> dict:
    """Diagnostics since import (empty when unavailable): ``calls``, ``threads`` (team sizes summed),
    ``helpers_joined`` (pool tasks that started while their call ran), ``taken_over`` (calls that one
    thread finished alone because its peers were descheduled) and ``solo_after_contention`` (calls
    started on one thread within 200 ms of a take-over)."""
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
    """A [T, B] bool mask, or a 1-element placeholder when absent (the handler ignores it)."""
    if m is None:
        return jnp.zeros((1,), jnp.bool_), False
    if tuple(m.shape) != (steps, batch):
        raise ValueError(f"{name} must have shape (T, B) = {(steps, batch)}, got {tuple(m.shape)}")
    return jnp.asarray(m, jnp.bool_), True


def forward(kernel, recurrent_kernel, bias, xs, h0, c0, keep, valid, *, zero_output: bool, save: bool):
    """The forward recurrence: the same values as ``fast._forward(..., FastConfig(), save)``.

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
    bias_a = jnp.zeros((1,), jnp.float32) if bias is None else bias
    f32 = jnp.float32
    state = jax.ShapeDtypeStruct((batch, units), f32)
    if save:
        residuals = [
            jax.ShapeDtypeStruct((steps, batch, 4 * units), f32),
            jax.ShapeDtypeStruct((steps, batch, units), f32),
            jax.ShapeDtypeStruct((steps, batch, units), f32),
        ]
    else:
        residuals = [jax.ShapeDtypeStruct((0,), f32)] * 3
    call = jax.ffi.ffi_call(
        _FORWARD_TARGET,
        [jax.ShapeDtypeStruct((steps, batch, units), f32), state, state, *residuals],
        vmap_method="sequential",
    )
    ys, h_T, c_T, z, h_prev, c_prev = call(
        kernel,
        recurrent_kernel,
        bias_a,
        xs,
        h0,
        c0,
        keep_a,
        valid_a,
        zero_output=bool(zero_output),
        save=bool(save),
        has_bias=bias is not None,
        has_keep=has_keep,
        has_valid=has_valid,
        isa=np.int32(_ISA_CODES[_isa()]),
        threads=np.int32(_THREADS),
    )
    return ys, h_T, c_T, ((z, h_prev, c_prev) if save else None)


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
    keep_a, has_keep = _mask(keep, steps, batch, "keep")
    valid_a, has_valid = _mask(valid, steps, batch, "valid")
    f32 = jnp.float32
    state = jax.ShapeDtypeStruct((batch, units), f32)
    call = jax.ffi.ffi_call(
        _BACKWARD_TARGET,
        [jax.ShapeDtypeStruct((steps, batch, 4 * units), f32), state, state],
        vmap_method="sequential",
    )
    d_z, d_h0, d_c0 = call(
        recurrent_kernel,
        z,
        c_prev,
        keep_a,
        valid_a,
        d_ys,
        d_hT,
        d_cT,
        zero_output=bool(zero_output),
        has_keep=has_keep,
        has_valid=has_valid,
        isa=np.int32(_ISA_CODES[_isa()]),
        threads=np.int32(_THREADS),
    )
    return d_z, d_h0, d_c0
