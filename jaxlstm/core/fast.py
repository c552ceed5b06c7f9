"""Fast path for whole sequences: a time-major batched scan with hand-written derivative rules.

``core._lstm`` (a ``vmap`` of a per-example ``lax.scan``) stays the reference; this module computes the
same function for the common configuration (sigmoid/tanh gates, no projection) and is tested against it.

Forward: one scan over ``[T, B, ...]``; each step computes ``x_t @ W + h @ U + b`` (a fused GEMM
``[x_t, h] @ [W; U]`` and the input projection ``xs @ W`` hoisted out of the loop were both measured
slower on XLA:CPU and removed, see benchmarks/RESULTS.md) and the gate nonlinearities. When
differentiated, each step also stores its gate pre-activations ``z_t`` and the state it starts from.

Derivatives (``jax.custom_jvp``): the tangent of a step is linear, ``dz_t = dx_t W + x_t dW + h_{t-1} dU
+ db + dh_{t-1} U``. All but the last term are hoisted out of the loop as GEMMs over all ``T*B`` rows
(``_recurrences.project``); the rest is one linear recurrence over ``(dh, dc)`` (``_recurrences.tangent``).
Reverse mode is JAX's transpose of that rule, split the way cuDNN splits backward-data from
backward-weights:

* the recurrence's transpose (``_recurrences.cotangent``, a primitive registered as the tangent's
  transpose) carries ``(dh, dc)`` backwards and emits the pre-activation gradients ``dz_t [B, 4H]``;
  its only GEMM per step is ``dz_t @ U^T``;
* the hoisted GEMMs transpose into the weight gradients over all ``T*B`` rows:
  ``[dW; dU] = [X, H_prev]^T dZ``, ``db = sum(dZ)``, ``dX = dZ W^T``.

Plain autodiff of the scan instead accumulates ``dW``/``dU`` one ``B``-row GEMM per step inside the loop.
Forward mode (``jvp``, ``linearize``, ``jacfwd``), higher orders and every nesting with ``jit``,
``vmap``, ``checkpoint``, control flow and ``shard_map`` differentiate this rule like any JAX code.

``checkpoint_chunks``: runs the sequence as ``n`` chunks under ``jax.checkpoint``, so training keeps only
the ``n`` chunk-boundary states plus one chunk's residuals: O(T/n + n) memory, O(sqrt(T)) for
``n ~ sqrt(T)``, for the price of a second forward pass (measured free at T=10000 on CPU: the smaller
working set pays for it).

Imports jax and numpy only.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple, Optional, cast

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _recurrences
from ._manual_axes import vary_like
from ._recurrences import gates
from .pytrees import LSTMParams

__all__ = ["FastConfig", "supports", "variant", "lstm_time_major"]


class FastConfig(NamedTuple):
    """Static choices of the fast path (hashable, so it can be a static argument).

    Attributes:
        unroll: ``lax.scan`` unroll of the forward and backward scans.
        checkpoint_chunks: 0 for none, else the number of rematerialised chunks (see module doc).
        native: run the forward scan and the backward recurrence with the native CPU kernels
            (``jaxlstm.native``; float32 on CPU, ``jaxlstm.lstm(impl="native")``); the derivative
            rules stay the same, forward-mode tangents and higher orders run in pure JAX.
    """

    unroll: int = 1
    checkpoint_chunks: int = 0
    native: bool = False


def supports(params: LSTMParams, activation, recurrent_activation, options=None, inputs=None) -> bool:
    """Whether the fast path computes this configuration (else use the reference scan).

    ``options`` (a ``SequenceOptions``, its dtype resolved) and ``inputs`` (a ``CallInputs``) add
    the variants: see ``variant``.
    """
    plain = params.projection is None and activation is jnp.tanh and recurrent_activation is jax.nn.sigmoid
    return plain and variant(params, options, inputs) is None


def variant(params: LSTMParams, options=None, inputs=None) -> Optional[str]:
    """The first LSTM variant here that the fast path does not compute, named by the argument that
    asks for it (for error messages), or None.

    Its custom derivative rules are the plain cell's, so only the variants that leave the cell plain
    run on it: weight drop and a shared input dropout mask are applied once per call before
    dispatch (``recurrent_kernel * M``, ``xs * m``). Every other variant runs on the reference scan.
    """
    if params.gates != 4:
        return "params: 3 gate blocks (coupled input-forget gates)"
    if params.layer_norm is not None:
        return "params.layer_norm (layer normalisation)"
    if params.peepholes is not None:
        return "params.peepholes (peephole connections)"
    if options is not None:
        if options.zoneout != (0.0, 0.0):
            return "zoneout"
        if options.carry_dtype is not None and options.carry_dtype != options.dtype:
            return "carry_dtype"
    if inputs is not None:
        if inputs.resets is not None:
            return "resets"
        if inputs.recurrent_dropout_mask is not None:
            return "recurrent_dropout_mask"
        if (
            inputs.input_dropout_mask is not None
            and options is not None
            and options.dropout_masks == "per_gate"
        ):
            return "input_dropout_mask (dropout_masks='per_gate')"
    return None


# ----------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------


def _forward(params, xs, h0, c0, keep, valid, zero_output, cfg: FastConfig, save: bool):
    """The scan. xs ``[T, B, I]``, h0/c0 ``[B, H]``, keep/valid ``[T, B]`` bool or None.

    Returns ``(ys [T, B, H], h_T, c_T, residuals)``; residuals (pre-activations ``[T, B, 4H]``,
    h and c states ``[T, B, H]``) only when ``save``.
    """
    if cfg.native:
        return _native_forward(params, xs, h0, c0, keep, valid, zero_output, save)
    return _scan_forward(params, xs, h0, c0, keep, valid, zero_output, cfg, save)


@partial(jax.custom_jvp, nondiff_argnums=(6, 7))
def _native_forward(params, xs, h0, c0, keep, valid, zero_output, save):
    from . import native  # only when asked for: the extension is optional

    out = native.forward(
        params.kernel,
        params.recurrent_kernel,
        params.bias,
        xs,
        h0,
        c0,
        keep,
        valid,
        zero_output=zero_output,
        save=save,
    )
    # An FFI call's results carry no shard_map typing: they vary like its inputs (no-op elsewhere).
    return vary_like(out, params, xs, h0, c0, keep, valid)


@_native_forward.defjvp
def _native_forward_jvp(zero_output, save, primals, tangents):
    # Only reached by derivatives of the derivative rules (higher order): the kernel has no tangent,
    # the pure-JAX scan computes the same function.
    def scan(params, xs, h0, c0, keep, valid):
        return _scan_forward(params, xs, h0, c0, keep, valid, zero_output, FastConfig(), save)

    return jax.jvp(scan, primals, tangents)


def _scan_forward(params, xs, h0, c0, keep, valid, zero_output, cfg: FastConfig, save: bool):
    kernel, recurrent, bias = params.kernel, params.recurrent_kernel, params.bias

    def body(carry, inputs):
        h, c = carry
        x_t, k_t, v_t = inputs
        z = x_t @ kernel + h @ recurrent
        if bias is not None:
            z = z + bias
        i, f, g, o = gates(z)
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        h_new = o * tc
        y = h_new
        h_next, c_next = h_new, c_new
        if k_t is not None:
            k = k_t[:, None]
            h_next, c_next = jnp.where(k, h_new, h), jnp.where(k, c_new, c)
            y = jnp.where(k, h_new, jnp.zeros_like(h) if zero_output else h)
        if v_t is not None:
            y = jnp.where(v_t[:, None], y, jnp.zeros_like(y))
        # Residuals: the pre-activations and the state *before* the step (what the weight gradient
        # and dz_f read, with no shifted copy); the backward pass recomputes the gates and c_t
        # (cheaper than storing four activated blocks and tanh(c) on a memory-bound CPU).
        res = (z, h, c) if save else None
        return (h_next, c_next), (y, res)

    h0, c0 = vary_like((h0, c0), params, xs, keep, valid)
    (h_T, c_T), (ys, res) = jax.lax.scan(body, (h0, c0), (xs, keep, valid), unroll=cfg.unroll)
    return ys, h_T, c_T, res


# ----------------------------------------------------------------------------------------------
# Derivatives: a custom JVP whose linear part JAX transposes into the hand-written backward pass
# ----------------------------------------------------------------------------------------------


def _is_zero(t) -> bool:
    return t is None or isinstance(t, SymbolicZero)


def _input_tangent(params, xs, h_prev, d_params, d_xs, batch_major: bool = False):
    """Every part of ``dz_t`` but the recurrent ``dh_{t-1} U``, for all steps at once ``[T, B, 4H]``:
    ``dX W + X dW + H_prev dU + db``, large GEMMs over all T*B rows (their transposes are the
    weight gradients ``X^T dZ``, ``H_prev^T dZ``, ``sum dZ`` and ``dX = dZ W^T``). None when all zero.

    ``batch_major``: the GEMMs see ``[B, T, ...]`` views (sums over the rows in batch-major order).
    The native kernels' arrays are batch-major in memory, their time-major views transposes XLA
    cancels; contracting the weight gradients over (T, B) instead made XLA copy ``d_z`` to
    time-major (26 MB at 64/100/128/256, measured)."""
    swap = (lambda a: jnp.swapaxes(a, 0, 1)) if batch_major else (lambda a: a)  # noqa: E731

    def project(a, w):
        return swap(_recurrences.project(swap(a), w))

    terms = []
    if not _is_zero(d_xs):
        terms.append(project(d_xs, params.kernel))
    if not _is_zero(d_params.kernel):
        terms.append(project(xs, d_params.kernel))
    if not _is_zero(d_params.recurrent_kernel):
        terms.append(project(h_prev, d_params.recurrent_kernel))
    if params.bias is not None and not _is_zero(d_params.bias):
        terms.append(jnp.broadcast_to(d_params.bias, (*xs.shape[:2], d_params.bias.shape[-1])))
    return sum(terms[1:], terms[0]) if terms else None


def _zeros_if_symbolic(t, like):
    return jnp.zeros_like(like) if _is_zero(t) else t


@partial(jax.custom_jvp, nondiff_argnums=(6, 7))
def _sequence(params, xs, h0, c0, keep, valid, zero_output, cfg):
    ys, h_T, c_T, _ = _forward(params, xs, h0, c0, keep, valid, zero_output, cfg, save=False)
    return ys, h_T, c_T


def _sequence_jvp(zero_output, cfg, primals, tangents):
    """Forward: the scan, saving residuals. Tangent: the hoisted GEMMs, then the linear recurrence.

    Reverse mode transposes this: the recurrence's transpose is ``_recurrences.cotangent`` (one
    ``dz_t U^T`` per step) and the hoisted GEMMs become the weight gradients, so ``grad`` runs the same
    computation as a hand-written VJP, while ``jvp``, ``linearize``, ``jacfwd`` and every nesting of
    them differentiate this rule like any JAX function.
    """
    params, xs, h0, c0, keep, valid = primals
    d_params, d_xs, d_h0, d_c0, _, _ = tangents
    ys, h_T, c_T, residuals = _forward(params, xs, h0, c0, keep, valid, zero_output, cfg, save=True)
    # save=True: the residuals are there.
    zs, h_prev, c_prev = cast(tuple[jax.Array, jax.Array, jax.Array], residuals)
    dz_in = _input_tangent(params, xs, h_prev, d_params, d_xs, batch_major=cfg.native)
    if dz_in is None:
        dz_in = jnp.zeros_like(zs)
    d_ys, d_hT, d_cT = _recurrences.tangent(
        params.recurrent_kernel,
        zs,
        c_prev,
        keep,
        valid,
        dz_in,
        _zeros_if_symbolic(d_h0, h0),
        _zeros_if_symbolic(d_c0, c0),
        zero_output=zero_output,
        unroll=cfg.unroll,
        native=cfg.native,
    )
    return (ys, h_T, c_T), (d_ys, d_hT, d_cT)


_sequence.defjvp(_sequence_jvp, symbolic_zeros=True)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def lstm_time_major(
    params: LSTMParams,
    xs: jax.Array,
    h0: jax.Array,
    c0: jax.Array,
    keep: Optional[jax.Array] = None,
    valid: Optional[jax.Array] = None,
    *,
    zero_output_for_mask: bool = False,
    config: FastConfig = FastConfig(),
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The LSTM over time-major inputs already in processing order (sigmoid/tanh, no projection).

    Args:
        params: ``LSTMParams`` without projection.
        xs: ``[T, B, I]``.
        h0, c0: ``[B, H]``.
        keep: ``[T, B]`` bool or None: a step that is not kept leaves the state unchanged and emits
            the previous h (zeros with ``zero_output_for_mask``), as core's mask.
        valid: ``[T, B]`` bool or None: outputs of invalid (padding) steps are zero.
        config: ``FastConfig``.

    Returns:
        ``(ys [T, B, H], h_T [B, H], c_T [B, H])``.
    """
    run = partial(_sequence, zero_output=bool(zero_output_for_mask), cfg=config)
    chunks = config.checkpoint_chunks
    steps = xs.shape[0]
    if chunks <= 1 or chunks >= steps:
        return run(params, xs, h0, c0, keep, valid)
    # Rematerialised chunks: pad T to a multiple of the chunk size with steps that are not kept and
    # not valid (they pass the state through and emit zeros), scan over chunks, drop the padding.
    size = math.ceil(steps / chunks)
    n = math.ceil(steps / size)
    pad = n * size - steps
    batch = xs.shape[1]
    if pad:
        keep = jnp.ones((steps, batch), bool) if keep is None else keep
        valid = jnp.ones((steps, batch), bool) if valid is None else valid
        xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)])
        keep = jnp.concatenate([keep, jnp.zeros((pad, batch), bool)])
        valid = jnp.concatenate([valid, jnp.zeros((pad, batch), bool)])

    def split(a):
        return None if a is None else a.reshape(n, size, *a.shape[1:])

    @jax.checkpoint
    def chunk(carry, inputs):
        h, c = carry
        x_k, keep_k, valid_k = inputs
        ys, h, c = run(params, x_k, h, c, keep_k, valid_k)
        return (h, c), ys

    h0, c0 = vary_like((h0, c0), params, xs, keep, valid)
    (h_T, c_T), ys = jax.lax.scan(chunk, (h0, c0), (split(xs), split(keep), split(valid)))
    ys = ys.reshape(n * size, *ys.shape[2:])[:steps]
    return ys, h_T, c_T
