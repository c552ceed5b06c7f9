"""What only jaxlstm.nnx has: set_params on a built module, the train / eval modes and the module's
own RNG stream, the KeptState variable, in_features. What NNX shares with linen is tested once in
test_flax_modules.py."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm.nnx import LSTM, KeptState

B, T, I, H = 3, 6, 4, 5
XS = jax.random.normal(jax.random.key(0), (B, T, I))
PARAMS = jaxlstm.init(jax.random.key(0), I, H)


def test_set_params_refuses_other_shapes() -> None:
    no_bias = LSTM(I, H, use_bias=False, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="params.bias: this module has use_bias=False"):
        no_bias.set_params(PARAMS)
    with pytest.raises(ValueError, match=r"params.kernel: expected shape \[4, 20\]"):
        LSTM(I, H, rngs=nnx.Rngs(0)).set_params(jaxlstm.init(jax.random.key(0), I + 1, H))
    with pytest.raises(ValueError, match="in_features: expected a positive int"):
        LSTM(0, H, rngs=nnx.Rngs(0))


def test_dropout_modes() -> None:
    plain = LSTM.from_params(PARAMS, return_sequences=True)(XS)
    layer = LSTM(I, H, dropout=0.4, recurrent_dropout=0.4, return_sequences=True, rngs=nnx.Rngs(0))
    layer.set_params(PARAMS)
    first, second = layer(XS), layer(XS)  # train mode by default (as nnx.Dropout): a new key each call
    assert not np.allclose(first, plain, atol=1e-3) and not np.allclose(first, second, atol=1e-3)
    layer.eval()
    np.testing.assert_array_equal(layer(XS), plain)
    np.testing.assert_array_equal(nnx.view(layer, deterministic=True)(XS), plain)
    layer.train()
    assert not np.allclose(layer(XS), plain, atol=1e-3)
    explicit = layer(XS, rngs=nnx.Rngs(dropout=7))
    np.testing.assert_array_equal(explicit, layer(XS, rngs=nnx.Rngs(dropout=7)))
    from_params = LSTM.from_params(PARAMS, dropout=0.4)
    with pytest.raises(ValueError, match="rngs: dropout is on"):
        from_params(XS)


def test_kept_state_is_a_kept_state_variable() -> None:
    layer = LSTM(I, H, stateful=True, rngs=nnx.Rngs(0))
    layer(XS)
    assert isinstance(nnx.state(layer, KeptState)["kept_state"], KeptState)
    assert layer.kept_state.get_value().h.shape == (B, H)


def test_optimizer_and_split_merge_reach_the_nested_variant_params() -> None:
    """nnx.Optimizer updates the layer_norm / peepholes nnx.Dicts like the flat weights: one SGD step
    on the module equals one on the functional params; nnx.split / merge keep them."""
    from conftest import require

    optax = require("optax")
    layer = LSTM(
        I, H, layer_norm=True, peepholes=True, coupled_gates=True, return_sequences=True, rngs=nnx.Rngs(0)
    )
    before = layer.params
    loss = lambda p: jax.numpy.sum(jaxlstm.lstm(p, XS).sequence ** 2)  # noqa: E731
    want = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, before, jax.grad(loss)(before))
    optimizer = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)
    optimizer.update(layer, nnx.grad(lambda m: jax.numpy.sum(m(XS) ** 2))(layer))
    after = layer.params
    assert jax.tree_util.tree_structure(after) == jax.tree_util.tree_structure(want)
    for got, expected in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert not np.allclose(after.peepholes.f, before.peepholes.f)  # the nested ones moved too
    graphdef, state = nnx.split(layer)
    np.testing.assert_array_equal(nnx.merge(graphdef, state)(XS), layer(XS))
