"""Fast path for whole sequences: a time-major batched scan with a hand-written backward pass.

``core._lstm`` (a ``vmap`` of a per-example ``lax.scan``) stays the reference; this module computes the
same function for the common configuration (sigmoid/tanh gates, no projection) and is tested against it.

Forward: one scan over ``[T, B, ...]``; each step computes ``x_t @ W + h @ U + b`` (options: one
fused GEMM ``[x_t, h] @ [W; U]``, or the input projection ``xs @ W`` hoisted out of the loop; both
measured slower on XLA:CPU, see benchmarks/RESULTS.md) and the gate nonlinearities. When
differentiated, each step also stores its gate pre-activations ``z_t`` and the state it starts from.

Backward (``jax.custom_vjp``), split the way cuDNN splits backward-data from backward-weights:

* a reverse scan carries ``(dh, dc)`` and emits the pre-activation gate gradients ``dz_t [B, 4H]``; its
  only GEMM per step is ``dz_t @ U^T``;
* the weight gradients are then single large GEMMs over all ``T*B`` rows:
  ``[dW; dU] = [X, H_prev]^T dZ``, ``db = sum(dZ)``, ``dX = dZ W^T``.

Plain autodiff of the scan instead accumulates ``dW``/``dU`` one ``B``-row GEMM per step inside the loop.

``custom_vjp`` functions cannot be differentiated in forward mode (``jax.jvp``/``jacfwd``); ``core.lstm``
uses the reference scan when it sees forward-mode tracers, and ``impl="scan"`` always does.

``checkpoint_chunks``: runs the sequence as ``n`` chunks under ``jax.checkpoint``, so training keeps only
the ``n`` chunk-boundary states plus one chunk's residuals: O(T/n + n) memory, O(sqrt(T)) for
``n ~ sqrt(T)``, for the price of a second forward pass (measured free at T=10000 on CPU: the smaller
working set pays for it).

Imports jax and numpy only.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ._manual_axes import sum_like, vary_like
from .pytrees import LSTMParams

__all__ = ["FastConfig", "supports", "lstm_time_major", "default_config"]


class FastConfig(NamedTuple):
    """Static choices of the fast path (hashable, so it can be a static argument).

    Attributes:
        hoist_input: compute ``xs @ W + b`` for all steps before the scan (one large GEMM) instead
            of ``x_t @ W`` in each step.
        fuse_gemm: without ``hoist_input``, one GEMM ``[x_t, h] @ [W; U]`` per step instead of
            ``x_t @ W + h @ U``.
        unroll: ``lax.scan`` unroll of the forward and backward scans.
        checkpoint_chunks: 0 for none, else the number of rematerialised chunks (see module doc).
    """

    hoist_input: bool = False
    fuse_gemm: bool = False
    unroll: int = 1
    checkpoint_chunks: int = 0


def default_config(steps: int, batch: int, input_size: int, units: int) -> FastConfig:
    """The configuration measured fastest on CPU for a shape (see benchmarks/RESULTS.md).

    On XLA:CPU (jax 0.10) the defaults won on every benchmark shape: no hoisting (2x slower forward),
    no fused GEMM (up to 20% slower), no unroll. The shape arguments are the hook for a per-shape
    rule on other backends.
    """
    del steps, batch, input_size, units
    return FastConfig()


def supports(params: LSTMParams, activation, recurrent_activation) -> bool:
    """Whether the fast path computes this configuration (else use the reference scan)."""
    return (
        params.projection is None
        and activation is jnp.tanh
        and recurrent_activation is jax.nn.sigmoid
    )


# ----------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------


def _gates(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_c), jax.nn.sigmoid(z_o)


def _forward(params, xs, h0, c0, keep, valid, zero_output, cfg: FastConfig, save: bool):
    """The scan. xs ``[T, B, I]``, h0/c0 ``[B, H]``, keep/valid ``[T, B]`` bool or None.

    Returns ``(ys [T, B, H], h_T, c_T, residuals)``; residuals (pre-activations ``[T, B, 4H]``,
    h and c states ``[T, B, H]``) only when ``save``.
    """
    kernel, recurrent, bias = params.kernel, params.recurrent_kernel, params.bias
    if cfg.hoist_input:
        step_in = xs @ kernel
        if bias is not None:
            step_in = step_in + bias
        fused = None
    else:
        step_in = xs
        fused = jnp.concatenate([kernel, recurrent], axis=0) if cfg.fuse_gemm else None

    def body(carry, inputs):
        h, c = carry
        u_t, k_t, v_t = inputs
        if cfg.hoist_input:
            z = u_t + h @ recurrent
        elif fused is None:
            z = u_t @ kernel + h @ recurrent
            if bias is not None:
                z = z + bias
        else:
            z = jnp.concatenate([u_t, h], axis=-1) @ fused
            if bias is not None:
                z = z + bias
        i, f, g, o = _gates(z)
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
    (h_T, c_T), (ys, res) = jax.lax.scan(body, (h0, c0), (step_in, keep, valid), unroll=cfg.unroll)
    return ys, h_T, c_T, res


# ----------------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------------


def _backward(params, xs, h0, c0, keep, valid, zero_output, cfg, res, cts):
    zs, h_prev, c_prev = res  # the state before each step: h_{t-1}, c_{t-1} (h0, c0 at t = 0)
    d_ys, d_hT, d_cT = cts
    recurrent_t = params.recurrent_kernel.T

    def body(carry, inputs):
        dh, dc = carry  # cotangents of the state after this step
        dy, z, c_prev_t, k_t, v_t = inputs
        if v_t is not None:
            dy = jnp.where(v_t[:, None], dy, jnp.zeros_like(dy))
        if k_t is None:
            dh_new, dc_new = dh + dy, dc
        else:
            k = k_t[:, None]
            # A kept step's output is h_new; a masked one passes the state through (and emits the
            # previous h unless zero_output), so its cotangents go straight to the previous state.
            dh_new, dc_new = jnp.where(k, dh + dy, 0.0), jnp.where(k, dc, 0.0)
            dh_skip = jnp.where(k, 0.0, dh if zero_output else dh + dy)
            dc_skip = jnp.where(k, 0.0, dc)
        # A step that is not kept has dh_new = dc_new = 0, so dz = 0 whatever c_t holds there.
        i, f, g, o = _gates(z)
        tc = jnp.tanh(f * c_prev_t + i * g)  # c_t, recomputed
        dc_tot = dc_new + dh_new * o * (1.0 - tc * tc)
        dz = jnp.concatenate(
            [
                dc_tot * g * i * (1.0 - i),
                dc_tot * c_prev_t * f * (1.0 - f),
                dc_tot * i * (1.0 - g * g),
                dh_new * tc * o * (1.0 - o),
            ],
            axis=-1,
        )
        dh_prev = dz @ recurrent_t
        dc_prev = dc_tot * f
        if k_t is not None:
            dh_prev, dc_prev = dh_prev + dh_skip, dc_prev + dc_skip
        return (dh_prev, dc_prev), dz

    d_hT, d_cT = vary_like((d_hT, d_cT), params, d_ys, zs, c_prev, keep, valid)
    (d_h0, d_c0), d_z = jax.lax.scan(
        body, (d_hT, d_cT), (d_ys, zs, c_prev, keep, valid), reverse=True, unroll=cfg.unroll
    )
    # Backward-weights: X^T dZ and H_prev^T dZ, each one GEMM over all T*B rows. They contract the
    # (t, b) axes directly: as fast as reshaping to T*B rows on one device, and a batch split over
    # devices stays local (the reshape made XLA all-gather X, H and dZ: 2.8x slower on 2 devices).
    over_time_and_batch = (((0, 1), (0, 1)), ((), ()))
    d_kernel = jax.lax.dot_general(xs, d_z, over_time_and_batch)
    d_recurrent = jax.lax.dot_general(h_prev, d_z, over_time_and_batch)
    d_bias = None if params.bias is None else d_z.sum(axis=(0, 1))
    d_xs = d_z @ params.kernel.T
    d_params = LSTMParams(d_kernel, d_recurrent, d_bias, None)
    return d_params, d_xs, d_h0, d_c0


@partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _sequence(params, xs, h0, c0, keep, valid, zero_output, cfg):
    ys, h_T, c_T, _ = _forward(params, xs, h0, c0, keep, valid, zero_output, cfg, save=False)
    return ys, h_T, c_T


def _sequence_fwd(params, xs, h0, c0, keep, valid, zero_output, cfg):
    ys, h_T, c_T, res = _forward(params, xs, h0, c0, keep, valid, zero_output, cfg, save=True)
    return (ys, h_T, c_T), (params, xs, h0, c0, keep, valid, res)


def _sequence_bwd(zero_output, cfg, saved, cts):
    params, xs, h0, c0, keep, valid, res = saved
    d_params, d_xs, d_h0, d_c0 = _backward(params, xs, h0, c0, keep, valid, zero_output, cfg, res, cts)
    # Under shard_map: a replicated input's cotangent is summed over the axes it was broadcast along.
    d_params, d_xs, d_h0, d_c0 = sum_like((d_params, d_xs, d_h0, d_c0), (params, xs, h0, c0))
    return d_params, d_xs, d_h0, d_c0, None, None


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


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
