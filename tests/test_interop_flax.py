"""Flax linen LSTMCell / OptimizedLSTMCell and NNX LSTMCell / OptimizedLSTMCell, both directions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import BidirectionalParams, LSTMParams, LSTMState
from jaxlstm.interop import flax as jf

TOL = dict(atol=1e-5, rtol=1e-5)
B, T, I, H = 3, 5, 4, 3
X = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)


def _randomize(tree, seed):
    """Uniform(-0.6, 0.6) leaves of the same shapes (numpy: no compilation per shape)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda l: rng.uniform(-0.6, 0.6, l.shape).astype(np.float32), tree)


def _random_variables(module, seed):
    # Only the shapes of init's variables are needed: eval_shape skips running (and compiling) init.
    return _randomize(jax.eval_shape(module.init, jax.random.PRNGKey(0), X), seed)


# Each cell class in one direction (the other direction is covered by the Bidirectional test / the
# other class): Flax's RNNs take seconds to trace, and the budget is small.
@pytest.mark.parametrize("cell_name, reverse", [("LSTMCell", False), ("OptimizedLSTMCell", True)])
def test_linen_rnn_matches_and_round_trips(cell_name, reverse):
    import flax.linen as nn

    rnn = nn.RNN(getattr(nn, cell_name)(H), return_carry=True, reverse=reverse, keep_order=reverse)
    variables = _random_variables(rnn, seed=1)
    apply = jax.jit(rnn.apply)  # traced once, reused for the round trip
    carry, y_ref = apply(variables, X)

    params = jf.from_linen(variables)
    assert isinstance(params, LSTMParams) and params.kernel.shape == (I, 4 * H)
    out = jaxlstm.lstm(params, X, reverse=reverse, keep_order=reverse)
    np.testing.assert_allclose(out.sequence, y_ref, **TOL)
    ref_state = LSTMState.from_flax_carry(carry)
    np.testing.assert_allclose(out.state.h, ref_state.h, **TOL)
    np.testing.assert_allclose(out.state.c, ref_state.c, **TOL)

    back = jf.to_linen(params, rnn=True)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(variables)
    carry2, y2 = apply(back, X)
    np.testing.assert_allclose(y2, y_ref, **TOL)
    np.testing.assert_allclose(carry2[0], carry[0], **TOL)


def test_linen_bidirectional_matches_and_round_trips():
    import flax.linen as nn

    bi = nn.Bidirectional(
        nn.RNN(nn.LSTMCell(H)), nn.RNN(nn.OptimizedLSTMCell(H), reverse=True, keep_order=True)
    )
    variables = _random_variables(bi, seed=2)
    apply = jax.jit(bi.apply)
    y_ref = apply(variables, X)
    params = jf.from_linen(variables)
    assert isinstance(params, BidirectionalParams)
    np.testing.assert_allclose(jaxlstm.bidirectional(params, X).sequence, y_ref, **TOL)
    np.testing.assert_allclose(apply(jf.to_linen(params), X), y_ref, **TOL)


def test_linen_bidirectional_with_one_shared_cell_matches_flax():
    """Flax's own case: both directions one cell, whose weights Flax stores under forward_rnn only."""
    import flax.linen as nn

    cell = nn.LSTMCell(H)
    bi = nn.Bidirectional(nn.RNN(cell), nn.RNN(cell))
    variables = _random_variables(bi, seed=7)
    assert set(variables["params"]) == {"forward_rnn"}
    params = jf.from_linen(variables)
    assert isinstance(params, BidirectionalParams)
    np.testing.assert_allclose(jaxlstm.bidirectional(params, X).sequence, bi.apply(variables, X), **TOL)


def test_linen_cell_step_and_missing_bias():
    import flax.linen as nn

    cell = nn.LSTMCell(H)
    carry0 = cell.initialize_carry(jax.random.PRNGKey(0), (B, I))
    # a jaxlstm LSTM without bias exports zeros, and one step agrees with Flax's
    params = LSTMParams(*_randomize((np.zeros((I, 4 * H)), np.zeros((H, 4 * H))), 3))
    (c, h), y = cell.apply(jf.to_linen(params), carry0, X[:, 0])
    out = jaxlstm.lstm(params, X[:, :1]).state
    np.testing.assert_allclose(out.h, h, **TOL)
    np.testing.assert_allclose(out.c, c, **TOL)


@pytest.mark.parametrize("cell_name, reverse", [("LSTMCell", True), ("OptimizedLSTMCell", False)])
def test_nnx_rnn_matches_and_round_trips(cell_name, reverse):
    from flax import nnx

    cell = getattr(nnx, cell_name)(I, H, rngs=nnx.Rngs(0))
    params_state = nnx.state(cell, nnx.Param)
    nnx.update(cell, _randomize(params_state, seed=4))
    run = nnx.jit(lambda c, x: nnx.RNN(c, return_carry=True, reverse=reverse, keep_order=reverse)(x))
    carry, y_ref = run(cell, X)

    params = jf.from_nnx(cell)
    out = jaxlstm.lstm(params, X, reverse=reverse, keep_order=reverse)
    np.testing.assert_allclose(out.sequence, y_ref, **TOL)
    ref_state = LSTMState.from_flax_carry(carry)
    np.testing.assert_allclose(out.state.h, ref_state.h, **TOL)
    np.testing.assert_allclose(out.state.c, ref_state.c, **TOL)

    fresh = getattr(nnx, cell_name)(I, H, rngs=nnx.Rngs(1))
    assert jf.to_nnx(params, fresh) is fresh
    _, y2 = run(fresh, X)
    np.testing.assert_allclose(y2, y_ref, **TOL)


def test_nnx_bidirectional_matches_and_round_trips():
    from flax import nnx

    def make(seed):
        cells = [nnx.LSTMCell(I, H, rngs=nnx.Rngs(seed)), nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(seed))]
        return nnx.Bidirectional(nnx.RNN(cells[0]), nnx.RNN(cells[1]))

    bi = make(0)
    nnx.update(bi, _randomize(nnx.state(bi, nnx.Param), seed=5))
    run = nnx.jit(lambda m, x: m(x))
    y_ref = run(bi, X)
    params = jf.from_nnx(bi)
    assert isinstance(params, BidirectionalParams)
    np.testing.assert_allclose(jaxlstm.bidirectional(params, X).sequence, y_ref, **TOL)
    np.testing.assert_allclose(run(jf.to_nnx(params, make(1)), X), y_ref, **TOL)


def test_bad_flax_params_name_the_tensor():
    from flax import nnx

    good = jf.to_linen(LSTMParams(jnp.zeros((I, 4 * H)), jnp.zeros((H, 4 * H)), jnp.zeros(4 * H)))
    bad = jax.tree_util.tree_map(lambda a: a, good)
    bad["params"]["hf"]["kernel"] = jnp.zeros((H, H + 1))
    with pytest.raises(ValueError, match=r"hf.kernel: expected shape \[3, 3\], found \[3, 4\]"):
        jf.from_linen(bad)
    del bad["params"]["io"]
    with pytest.raises(KeyError, match="missing io.kernel"):
        jf.from_linen(bad)
    wide = LSTMParams(jnp.zeros((I + 1, 4 * H)), jnp.zeros((H, 4 * H)), jnp.zeros(4 * H))
    cell = nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(0))
    before = np.asarray(cell.dense_h.kernel[...])
    with pytest.raises(ValueError, match=r"params.kernel: expected shape \[4, 12\], found \[5, 12\]"):
        jf.to_nnx(wide, cell)
    np.testing.assert_array_equal(cell.dense_h.kernel[...], before)  # nothing half-written
    projected = LSTMParams(jnp.zeros((I, 4 * H)), jnp.zeros((2, 4 * H)), None, jnp.zeros((H, 2)))
    with pytest.raises(ValueError, match="Flax has no projected LSTM"):
        jf.to_linen(projected)
