"""``impl=FastConfig(checkpoint_chunks=n)`` through ``jaxlstm.lstm`` on batch-major inputs: a T=10000
training step's temporary memory is O(T/n + n), O(sqrt T) for n ~ sqrt T, read from the compiled
executable's memory analysis, and its gradients equal the unchunked fast path's and the scan's
(issue 12).

The training step is a sequence-level loss on the final state: a loss on every output would hold
the outputs ``[B, T, H]`` and their cotangents, O(T) by definition, whatever the LSTM does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxlstm
from jaxlstm.fast import FastConfig

B, I, H = 2, 2, 4
STATE_BYTES = B * H * 4  # one float32 [B, H] state


def _step(steps: int, impl: object):
    params = jaxlstm.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, steps, I))

    def loss(params: jaxlstm.LSTMParams, xs: jax.Array) -> jax.Array:
        state = jaxlstm.lstm(params, xs, impl=impl).state
        return jnp.sum(state.h**2) + jnp.sum(state.c**2)

    compiled = jax.jit(jax.grad(loss)).lower(params, xs).compile()
    return compiled, params, xs


def _temp_bytes(steps: int, impl: object) -> int:
    return _step(steps, impl)[0].memory_analysis().temp_size_in_bytes


def test_checkpoint_chunks_memory_is_sqrt_t() -> None:
    steps, chunks = 10_000, 100
    compiled, params, xs = _step(steps, FastConfig(checkpoint_chunks=chunks))
    chunked = compiled.memory_analysis().temp_size_in_bytes
    unchunked = _step(steps, FastConfig())[0]
    full = unchunked.memory_analysis().temp_size_in_bytes
    # Per step of the chunk being differentiated: pre-activations (4H), h and c (2H), their
    # cotangents and a few [B, H] temporaries; per chunk boundary: h and c. 16 states per
    # (T/n + n) leaves room for XLA's temporaries; the full store needs about 11 per step.
    # A batch-major input is also copied once to time-major (xs.nbytes): O(T) but no more than the
    # input the caller already holds, and with no factor of H.
    bound = 16 * STATE_BYTES * (steps // chunks + chunks) + xs.nbytes
    print(f"temp bytes: chunked {chunked}, unchunked {full}, bound {bound}, xs {xs.nbytes}")
    assert chunked <= bound, (chunked, bound, full)
    assert full > 6 * STATE_BYTES * steps, full  # the unchunked store: O(T) states
    assert chunked < full / 10, (chunked, full)
    # O(sqrt T), not O(T): a quarter of the steps in half the chunks takes about half the memory.
    quarter = _temp_bytes(steps // 4, FastConfig(checkpoint_chunks=chunks // 2)) - xs.nbytes // 4
    print(f"temp bytes less the input copy: T={steps} {chunked - xs.nbytes}, T={steps // 4} {quarter}")
    assert chunked - xs.nbytes < 2.6 * quarter, (chunked - xs.nbytes, quarter)

    # Equal gradients: the chunked step, the unchunked fast path and the reference scan.
    grads = compiled(params, xs)
    for other in (unchunked(params, xs), _step(steps, "scan")[0](params, xs)):
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(other)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
