"""The linen and NNX ``StackedLSTM`` / ``Bidirectional`` equal the functional API on the same weights
(which test_torch_parity.py and test_bidirectional_keras.py compare with PyTorch and Keras)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _random_layers import random_bidirectional, random_lstm
from conftest import require

import jaxlstm

ATOL = RTOL = 1e-6
BATCH, STEPS, FEATURES, UNITS, PROJ = 3, 6, 4, 5, 3

_rng = np.random.default_rng(20)
XS = _rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
LENGTHS = np.array([6, 2, 4])
MASK = _rng.random((BATCH, STEPS)) > 0.3
# A projected bidirectional 2-layer stack, and a Bidirectional layer.
STACK = (
    random_bidirectional(_rng, FEATURES, UNITS, proj_size=PROJ),
    random_bidirectional(_rng, 2 * PROJ, UNITS, proj_size=PROJ),
)
BIDIR = random_bidirectional(_rng, FEATURES, UNITS)


def _assert_trees_close(ours, expected) -> None:
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(expected)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL)


@pytest.fixture(scope="module")
def reference():
    return {
        "stack": jaxlstm.stacked_lstm(STACK, XS, lengths=LENGTHS),
        "bidir": jaxlstm.bidirectional(BIDIR, XS, merge_mode="ave", mask=MASK),
    }


# ----------------------------------------------------------------------------------------------
# linen
# ----------------------------------------------------------------------------------------------


def test_linen_stack_and_bidirectional_equal_functional(reference) -> None:
    require("flax")
    from jaxlstm import linen

    model = linen.StackedLSTM(UNITS, num_layers=2, bidirectional=True, proj_size=PROJ)
    variables = linen.to_variables(STACK)
    # The module's own init builds the same tree (names, shapes) that layer_variables writes.
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), XS))
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(variables)
    assert jax.tree_util.tree_map(jnp.shape, shapes) == jax.tree_util.tree_map(jnp.shape, variables)
    _assert_trees_close(model.apply(variables, XS, lengths=LENGTHS), reference["stack"])
    _assert_trees_close(linen.get_params(variables), STACK)

    layer = linen.Bidirectional(UNITS, merge_mode="ave")
    out = layer.apply(linen.to_variables(BIDIR), XS, mask=MASK)
    _assert_trees_close(out, reference["bidir"])


def test_linen_dropout_and_init() -> None:
    require("flax")
    from jaxlstm import linen

    params = (random_lstm(_rng, FEATURES, UNITS), random_lstm(_rng, UNITS, UNITS))
    variables = linen.to_variables(params)
    # (A glorot recurrent initialiser only saves compiling a QR for the fresh init below.)
    model = linen.StackedLSTM(
        UNITS, num_layers=2, inter_layer_dropout=0.5, recurrent_initializer="glorot_uniform"
    )
    plain = jaxlstm.stacked_lstm(params, XS).sequence
    np.testing.assert_allclose(
        model.apply(variables, XS, deterministic=True).sequence, plain, atol=ATOL, rtol=RTOL
    )
    dropped = lambda seed: (
        model.apply(variables, XS, deterministic=False, rngs={"dropout": jax.random.key(seed)}).sequence
    )
    np.testing.assert_array_equal(dropped(1), dropped(1))
    assert np.abs(np.asarray(dropped(1)) - np.asarray(plain)).max() > 1e-3
    with pytest.raises(ValueError, match="deterministic: inter_layer_dropout=0.5 needs"):
        model.apply(variables, XS)
    # init draws Keras's defaults: the forget bias is 1 in every layer.
    fresh = linen.get_params(jax.jit(lambda key: model.init(key, XS, deterministic=True))(jax.random.key(0)))
    for layer in fresh:
        np.testing.assert_array_equal(layer.bias[UNITS : 2 * UNITS], 1.0)


# ----------------------------------------------------------------------------------------------
# NNX
# ----------------------------------------------------------------------------------------------


def test_nnx_stack_and_bidirectional_equal_functional(reference) -> None:
    nnx = require("flax.nnx")
    from jaxlstm import nnx as jnnx

    model = jnnx.StackedLSTM.from_params(STACK)
    assert model.layers[1].forward.projection.shape == (UNITS, PROJ)
    _assert_trees_close(model.params, STACK)
    _assert_trees_close(model(XS, lengths=LENGTHS), reference["stack"])

    # Under nnx.jit, with gradients flowing into the nnx.Params (one compilation for both).
    def loss(m):
        out = m(XS, lengths=LENGTHS)
        return jnp.sum(out.sequence**2), out

    (_, out), grads = nnx.jit(nnx.value_and_grad(loss, has_aux=True))(model)
    _assert_trees_close(out, reference["stack"])
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    assert np.abs(np.asarray(grads["layers"][0]["backward"]["projection"].get_value())).max() > 0

    layer = jnnx.Bidirectional.from_params(BIDIR, merge_mode="ave")
    _assert_trees_close(layer(XS, mask=MASK), reference["bidir"])


def test_nnx_dropout_train_eval_and_fresh_init() -> None:
    nnx = require("flax.nnx")
    from jaxlstm import nnx as jnnx

    model = jnnx.StackedLSTM(
        FEATURES, UNITS, 2, bidirectional=True, merge_mode="sum", inter_layer_dropout=0.5,
        recurrent_initializer="glorot_uniform", rngs=nnx.Rngs(0),
    )  # fmt: skip
    assert model.layers[1].forward.kernel.shape == (UNITS, 4 * UNITS)  # "sum" keeps the width
    plain = jaxlstm.stacked_lstm(model.params, XS, merge_mode="sum").sequence
    first, second = model(XS).sequence, model(XS).sequence  # training: a fresh mask per call
    assert np.abs(np.asarray(first) - np.asarray(plain)).max() > 1e-3
    assert np.abs(np.asarray(first) - np.asarray(second)).max() > 1e-3
    model.eval()
    np.testing.assert_allclose(model(XS).sequence, plain, atol=ATOL, rtol=RTOL)
    model.train()
    assert np.abs(np.asarray(model(XS).sequence) - np.asarray(plain)).max() > 1e-3
    no_stream = jnnx.StackedLSTM.from_params(model.params, merge_mode="sum", inter_layer_dropout=0.5)
    with pytest.raises(ValueError, match="rngs: dropout is on"):
        no_stream(XS)
    np.testing.assert_allclose(no_stream(XS, deterministic=True).sequence, plain, atol=ATOL, rtol=RTOL)


def test_flax_argument_errors() -> None:
    require("flax")
    from jaxlstm import linen
    from jaxlstm import nnx as jnnx

    with pytest.raises(ValueError, match=r"params\[0\].forward.recurrent_kernel: expected shape \[3, 20\]"):
        jnnx.StackedLSTM.from_params(STACK).set_params((BIDIR, STACK[1]))
    with pytest.raises(ValueError, match="inputs: expected shape"):
        linen.StackedLSTM(UNITS).init(jax.random.key(0), XS[0, 0])
    with pytest.raises(ValueError, match="inputs: expected 4 features"):
        model = linen.StackedLSTM(UNITS, bidirectional=True, proj_size=PROJ)
        model.apply(linen.to_variables(STACK[:1]), XS[..., :3])


# ----------------------------------------------------------------------------------------------
# Streaming through the Flax stacks: chunks with the carried state, and the step API on their params
# ----------------------------------------------------------------------------------------------

# A one-direction projected 2-layer stack: what streaming supports.
UNI_STACK = (
    random_lstm(_rng, FEATURES, UNITS, proj_size=PROJ),
    random_lstm(_rng, PROJ, UNITS, proj_size=PROJ),
)
CHUNKS = [(0, 1), (1, 4), (4, 6)]


def test_flax_stacks_stream_in_chunks_and_steps() -> None:
    require("flax")
    from jaxlstm import linen
    from jaxlstm import nnx as jnnx

    whole = jaxlstm.stacked_lstm(UNI_STACK, XS)
    linen_model = linen.StackedLSTM(UNITS, num_layers=2, proj_size=PROJ)
    variables = linen.to_variables(UNI_STACK)
    nnx_model = jnnx.StackedLSTM.from_params(UNI_STACK)
    for run in (lambda x, s: linen_model.apply(variables, x, s), lambda x, s: nnx_model(x, s)):
        pieces, state = [], None
        for start, stop in CHUNKS:
            out = run(XS[:, start:stop], state)
            pieces.append(out.sequence)
            state = out.state
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole.sequence, atol=ATOL, rtol=RTOL)
        _assert_trees_close(state, whole.state)

    # Step at a time on the modules' parameters (jaxlstm.stream_step), for online inference.
    for params in (linen.get_params(variables), nnx_model.params):
        state, outputs = jaxlstm.stream_state(params, (BATCH,)), []
        for t in range(STEPS):
            state, y = jaxlstm.stream_step(params, state, XS[:, t])
            outputs.append(y)
        np.testing.assert_allclose(np.stack(outputs, axis=1), whole.sequence, atol=1e-5, rtol=1e-5)
