"""The Flax modules are deterministic: the same key and inputs give bit-identical parameters and
outputs across calls, and the same bits with and without ``jit`` (dropout, per-gate masks, weight drop
and zoneout included: their masks come from the key)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

B, T, I, H = 3, 7, 4, 5
X = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)
DROPOUT = dict(
    dropout=0.3,
    recurrent_dropout=0.2,
    dropout_masks="per_gate",
    weight_drop=0.2,
    zoneout=(0.1, 0.2),
    return_sequences=True,
    return_state=True,
)


def assert_same_bits(a, b) -> None:
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.long
def test_linen_same_key_same_bits_with_and_without_jit() -> None:
    from jaxlstm import linen as jl

    layer = jl.LSTM(H, **DROPOUT)
    variables = layer.init(jax.random.key(0), X, deterministic=True)
    assert_same_bits(variables, layer.init(jax.random.key(0), X, deterministic=True))
    run = lambda v, x, k: layer.apply(v, x, deterministic=False, rngs={"dropout": k})
    key = jax.random.key(1)
    eager = run(variables, X, key)
    assert_same_bits(eager, run(variables, X, key))
    assert_same_bits(eager, jax.jit(run)(variables, X, key))
    # the key matters: another key drops other units (so the comparison above can fail)
    assert not np.array_equal(eager[0], run(variables, X, jax.random.key(2))[0])


def test_nnx_same_key_same_bits_with_and_without_jit() -> None:
    from flax import nnx

    from jaxlstm import nnx as jn

    layer = jn.LSTM(I, H, **DROPOUT, rngs=nnx.Rngs(0))
    assert_same_bits(layer.params, jn.LSTM(I, H, **DROPOUT, rngs=nnx.Rngs(0)).params)
    key = jax.random.key(1)
    eager = layer(X, rngs=key)
    assert_same_bits(eager, layer(X, rngs=key))
    assert_same_bits(eager, nnx.jit(lambda m, x, k: m(x, rngs=k))(layer, X, key))
    assert not np.array_equal(eager[0], layer(X, rngs=jax.random.key(2))[0])
