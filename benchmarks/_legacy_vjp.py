"""The fast path's previous differentiation (a ``custom_vjp``), kept only for the benchmark's A/B
against the ``custom_jvp`` design; ``install()`` swaps it in. Reverse mode only.

Delete once the A/B is recorded in RESULTS.md.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxlstm import fast
from jaxlstm._manual_axes import sum_like, vary_like
from jaxlstm._recurrences import gates as _gates
from jaxlstm.fast import _forward
from jaxlstm.pytrees import LSTMParams


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


def install() -> None:
    """Make ``jaxlstm.fast`` (and so ``lstm(impl="auto")``) use the old ``custom_vjp``."""
    fast._sequence = _sequence
