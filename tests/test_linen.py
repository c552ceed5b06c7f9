"""What only jaxlstm.linen has: Flax variables, the init path, the dropout mode a linen call must set,
the mutable state collection. What linen shares with NNX is tested once in test_flax_modules.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm.linen import LSTM, STATE_COLLECTION, get_params, to_variables

B, T, I, H = 3, 6, 4, 5
XS = jax.random.normal(jax.random.key(0), (B, T, I))


def test_variables_round_trip() -> None:
    variables = LSTM(H).init(jax.random.key(0), XS)
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(
            lambda a, b: bool(jnp.all(a == b)), to_variables(get_params(variables)), variables
        )
    )


def test_init_path_errors() -> None:
    # Before its first call a linen module does not know I: the message says "features".
    with pytest.raises(ValueError, match=r"inputs: expected shape \[\.\.\., T, features\].*rank 1"):
        LSTM(H).init(jax.random.key(0), jnp.zeros((I,)))


def test_dropout_needs_a_mode() -> None:
    # As flax.linen.Dropout: deterministic is None by default, and dropout > 0 then needs the call to say.
    params = jaxlstm.init(jax.random.key(0), I, H)
    with pytest.raises(ValueError, match="deterministic"):
        LSTM(H, dropout=0.5).apply(to_variables(params), XS)


def test_stateful_state_collection() -> None:
    layer = LSTM(H, stateful=True, return_sequences=True)
    variables = layer.init(jax.random.key(1), XS)
    np.testing.assert_array_equal(variables[STATE_COLLECTION]["state"].h, 0.0)  # init does not advance it
    with pytest.raises(ValueError, match="apply with mutable=\\['lstm_state'\\]"):
        layer.apply(variables, XS)


def test_bfloat16_compute_gives_float32_gradients() -> None:
    params = jaxlstm.init(jax.random.key(0), I, H)
    layer = LSTM(H, return_state=True, dtype=jnp.bfloat16)
    grads = jax.grad(lambda v: layer.apply(v, XS)[0].astype(jnp.float32).sum())(to_variables(params))
    assert all(g.dtype == jnp.float32 and jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_variant_variables_are_nested_dicts_and_serialise() -> None:
    from flax import serialization

    layer = LSTM(H, layer_norm=True, peepholes=True, coupled_gates=True)
    variables = layer.init(jax.random.key(0), XS)
    tree = variables["params"]
    assert set(tree) == {"kernel", "recurrent_kernel", "bias", "layer_norm", "peepholes"}
    assert set(tree["layer_norm"]) == {"x_gain", "x_offset", "h_gain", "h_offset", "c_gain", "c_offset"}
    assert set(tree["peepholes"]) == {"f", "o"}  # no input gate with coupled gates
    restored = serialization.from_bytes(
        variables, serialization.to_bytes(to_variables(get_params(variables)))
    )
    np.testing.assert_array_equal(
        layer.apply(restored, XS), jaxlstm.lstm(get_params(variables), XS).sequence[:, -1]
    )
