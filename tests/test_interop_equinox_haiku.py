"""Equinox LSTMCell and Haiku LSTM: same outputs and states as the peer, forward and reverse, and back."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import LSTMParams

TOL = dict(atol=1e-5, rtol=1e-5)
B, T, I, H = 3, 5, 4, 3
X = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)


def _randomize(tree, seed):
    """Uniform(-0.6, 0.6) leaves of the same shapes (numpy: no compilation per shape)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda l: rng.uniform(-0.6, 0.6, l.shape).astype(np.float32), tree)


# ---------------------------------------------------------------------------------------- Equinox


def _eqx_run(cell, xs, reverse):
    """Equinox's documented pattern: lax.scan over time of one example; vmap over the batch."""

    def one(x):
        def body(carry, x_t):
            h, c = cell(x_t, carry)
            return (h, c), h

        (h, c), ys = jax.lax.scan(
            body, (jnp.zeros(cell.hidden_size), jnp.zeros(cell.hidden_size)), x, reverse=reverse
        )
        return ys, h, c

    return jax.vmap(one)(xs)


_eqx_run_jit = None


def _eqx_runner():
    """``_eqx_run`` under ``eqx.filter_jit`` (compiled once per cell structure and direction)."""
    global _eqx_run_jit
    if _eqx_run_jit is None:
        _eqx_run_jit = require("equinox").filter_jit(_eqx_run)
    return _eqx_run_jit


@pytest.mark.parametrize("use_bias, reverse", [(True, False), (False, True)])
def test_equinox_cell_matches_and_round_trips(use_bias, reverse):
    eqx = require("equinox")
    from jaxlstm.interop import equinox as je

    cell = eqx.nn.LSTMCell(I, H, use_bias=use_bias, key=jax.random.PRNGKey(1))
    cell = _randomize(cell, seed=2)
    run = _eqx_runner()
    ys_ref, h_ref, c_ref = run(cell, X, reverse)

    params = je.from_equinox(cell)
    assert (params.bias is None) == (not use_bias)
    out = jaxlstm.lstm(params, X, reverse=reverse, keep_order=reverse)  # scan(reverse) keeps order
    np.testing.assert_allclose(out.sequence, ys_ref, **TOL)
    np.testing.assert_allclose(out.state.h, h_ref, **TOL)
    np.testing.assert_allclose(out.state.c, c_ref, **TOL)

    for back in (
        je.to_equinox(params),
        je.to_equinox(params, eqx.nn.LSTMCell(I, H, use_bias=use_bias, key=jax.random.PRNGKey(9))),
    ):
        assert isinstance(back, eqx.nn.LSTMCell)
        np.testing.assert_allclose(run(back, X, reverse)[0], ys_ref, **TOL)


def test_equinox_errors():
    eqx = require("equinox")
    from jaxlstm.interop import equinox as je

    def shaped(cls, *args, **kwargs):  # a cell of ShapeDtypeStructs: no init to run or compile
        return eqx.filter_eval_shape(cls, *args, key=jax.random.PRNGKey(0), **kwargs)

    params = LSTMParams(np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H))
    with pytest.raises(
        ValueError, match=r"params.kernel \(transposed\): expected shape \[12, 5\], found \[12, 4\]"
    ):
        je.to_equinox(params, shaped(eqx.nn.LSTMCell, I + 1, H))
    with pytest.raises(ValueError, match="the cell has use_bias=False"):
        je.to_equinox(params, shaped(eqx.nn.LSTMCell, I, H, use_bias=False))
    with pytest.raises(TypeError, match="expected equinox.nn.LSTMCell, found GRUCell"):
        je.from_equinox(shaped(eqx.nn.GRUCell, I, H))


# ------------------------------------------------------------------------------------------ Haiku


def _haiku_fn(hk, reverse, stacked):
    def forward(xs):
        if stacked:
            core = hk.DeepRNN([hk.LSTM(H, name="lstm"), hk.LSTM(2, name="lstm_top")])
        else:
            core = hk.LSTM(H, name="lstm")
        # Haiku's unroll is time-major.
        ys, state = hk.dynamic_unroll(
            core, jnp.swapaxes(xs, 0, 1), core.initial_state(xs.shape[0]), reverse=reverse
        )
        return jnp.swapaxes(ys, 0, 1), state

    return hk.without_apply_rng(hk.transform(forward))


@pytest.mark.parametrize("reverse", [False, True])
def test_haiku_lstm_matches_and_round_trips(reverse):
    hk = require("haiku")
    from jaxlstm.interop import haiku as jh

    fn = _haiku_fn(hk, reverse, stacked=False)
    hk_params = _randomize(jax.eval_shape(fn.init, jax.random.PRNGKey(0), X), seed=3)
    apply = jax.jit(fn.apply)  # traced once, reused for the round trip
    ys_ref, state_ref = apply(hk_params, X)

    params = jh.from_haiku(hk_params)
    # Haiku adds 1 to the forget gate at call time; jaxlstm holds it in the bias.
    np.testing.assert_allclose(
        params.bias[H : 2 * H], hk_params["lstm/linear"]["b"][2 * H : 3 * H] + 1.0, **TOL
    )
    out = jaxlstm.lstm(params, X, reverse=reverse, keep_order=reverse)
    np.testing.assert_allclose(out.sequence, ys_ref, **TOL)
    np.testing.assert_allclose(out.state.h, state_ref.hidden, **TOL)
    np.testing.assert_allclose(out.state.c, state_ref.cell, **TOL)

    back = jh.to_haiku(params, name="lstm")
    np.testing.assert_allclose(back["lstm/linear"]["b"], hk_params["lstm/linear"]["b"], atol=1e-6)
    np.testing.assert_allclose(apply(back, X)[0], ys_ref, **TOL)


def test_haiku_deep_rnn_stack_matches_and_round_trips():
    hk = require("haiku")
    from jaxlstm.interop import haiku as jh

    fn = _haiku_fn(hk, reverse=False, stacked=True)
    hk_params = _randomize(jax.eval_shape(fn.init, jax.random.PRNGKey(0), X), seed=4)
    apply = jax.jit(fn.apply)
    ys_ref, states_ref = apply(hk_params, X)
    names = ["lstm", "lstm_top"]
    with pytest.raises(ValueError, match=r"params hold 2 Haiku LSTMs \['lstm', 'lstm_top'\]"):
        jh.from_haiku(hk_params)
    # another Linear (say an MLP's) is not mistaken for an LSTM
    one = jh.from_haiku(
        {"mlp/linear": {"w": np.zeros((3, 5)), "b": np.zeros(5)}, "lstm/linear": hk_params["lstm/linear"]}
    )
    np.testing.assert_array_equal(one.kernel, jh.from_haiku(hk_params, module="lstm").kernel)
    stack = tuple(jh.from_haiku(hk_params, module=n) for n in names)
    out = jaxlstm.stacked_lstm(stack, X)
    np.testing.assert_allclose(out.sequence, ys_ref, **TOL)
    assert len(out.state) == len(states_ref) == 2
    for s, r in zip(out.state, states_ref):
        np.testing.assert_allclose(s.h, r.hidden, **TOL)
        np.testing.assert_allclose(s.c, r.cell, **TOL)
    back = {}
    for p, n in zip(stack, names):
        back.update(jh.to_haiku(p, name=n))
    np.testing.assert_allclose(apply(back, X)[0], ys_ref, **TOL)


def test_haiku_errors():
    from jaxlstm.interop import haiku as jh

    with pytest.raises(ValueError, match=r"lstm/linear.b: expected shape \[12\], found \[11\]"):
        jh.from_haiku({"lstm/linear": {"w": np.zeros((7, 12), np.float32), "b": np.zeros(11, np.float32)}})
    with pytest.raises(KeyError, match=r"no 'rnn/linear' in params; LSTMs present: \['lstm'\]"):
        jh.from_haiku({"lstm/linear": {"w": np.zeros((7, 12)), "b": np.zeros(12)}}, module="rnn")
    projected = LSTMParams(np.zeros((I, 4 * H)), np.zeros((2, 4 * H)), None, np.zeros((H, 2)))
    with pytest.raises(ValueError, match="Haiku has no projected LSTM"):
        jh.to_haiku(projected)
