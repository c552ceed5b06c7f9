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


# ----------------------------------------------------------------------------------------------
# The variants (issue 15) in the Bidirectional and StackedLSTM modules, both flavours
# ----------------------------------------------------------------------------------------------

FLAGS = dict(layer_norm=True, peepholes=True, coupled_gates=True)
RESETS = _rng.random((BATCH, STEPS)) < 0.3
VARIANT_OPTIONS = dict(layer_norm_carry="normalised", layer_norm_epsilon=1e-4, zoneout=(0.2, 0.1))


def _moved(params, seed: int):
    """Every leaf moved off its initial value (gains 1 and offsets 0 would hide a misplaced one)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    )


def _direction(seed: int, input_size: int) -> jaxlstm.LSTMParams:
    return _moved(jaxlstm.init(jax.random.key(seed), input_size, UNITS, **FLAGS), seed + 50)


V_BIDIR = jaxlstm.BidirectionalParams(_direction(1, FEATURES), _direction(2, FEATURES))
V_STACK = (V_BIDIR, jaxlstm.BidirectionalParams(_direction(3, 2 * UNITS), _direction(4, 2 * UNITS)))


def _modules(flavour: str, kind: str, params, **options):
    """``call(xs, **kw)`` of the flavour's module holding ``params``, with ``options``."""
    if flavour == "linen":
        from jaxlstm import linen

        if kind == "stack":
            options = dict(num_layers=len(params), bidirectional=True, **options)
        module = (linen.StackedLSTM if kind == "stack" else linen.Bidirectional)(UNITS, **FLAGS, **options)
        variables = linen.to_variables(params)

        def call(xs, key=None, **kw):
            rngs = None if key is None else {"dropout": key}
            return module.apply(variables, xs, rngs=rngs, **kw)

        return call
    from flax import nnx

    from jaxlstm import nnx as jnnx

    kind_cls = jnnx.StackedLSTM if kind == "stack" else jnnx.Bidirectional
    module = kind_cls.from_params(params, rngs=nnx.Rngs(0), **options)
    return lambda xs, key=None, **kw: module(xs, **({} if key is None else {"rngs": key}), **kw)


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_variant_layers_equal_functional(flavour) -> None:
    require("flax")
    stack = _modules(flavour, "stack", V_STACK, **VARIANT_OPTIONS)
    want = jaxlstm.stacked_lstm(V_STACK, XS, mask=MASK, resets=RESETS, deterministic=True, **VARIANT_OPTIONS)
    _assert_trees_close(stack(XS, mask=MASK, resets=RESETS, deterministic=True), want)
    bidir = _modules(flavour, "bidir", V_BIDIR, **VARIANT_OPTIONS)
    want = jaxlstm.bidirectional(V_BIDIR, XS, lengths=LENGTHS, resets=RESETS, **VARIANT_OPTIONS)
    _assert_trees_close(bidir(XS, lengths=LENGTHS, resets=RESETS, deterministic=True), want)
    # The variant matters: the plain weights' answer differs.
    plain = jaxlstm.bidirectional(BIDIR, XS, lengths=LENGTHS, resets=RESETS)
    assert np.abs(np.asarray(want.sequence) - np.asarray(plain.sequence)).max() > 1e-2


def test_nnx_stack_training_equals_functional_with_its_key() -> None:
    """An NNX stack called with ``rngs=key`` hands that key to ``stacked_lstm``: zoneout and
    weight drop in training are the functional ones, reproducible from the key."""
    require("flax")
    options = dict(zoneout=0.3, weight_drop=0.4, inter_layer_dropout=0.2)
    stack = _modules("nnx", "stack", V_STACK, **options)
    key = jax.random.key(5)
    out = stack(XS, key=key, resets=RESETS)
    want = jaxlstm.stacked_lstm(V_STACK, XS, resets=RESETS, key=key, deterministic=False, **options)
    _assert_trees_close(out, want)
    evaluation = stack(XS, deterministic=True, resets=RESETS)
    _assert_trees_close(
        evaluation, jaxlstm.stacked_lstm(V_STACK, XS, resets=RESETS, deterministic=True, **options)
    )
    assert np.abs(np.asarray(out.sequence) - np.asarray(evaluation.sequence)).max() > 1e-3


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
@pytest.mark.long
def test_bidirectional_weight_drop_and_zoneout_in_training(flavour) -> None:
    """One DropConnect mask per direction (read back from the exact zeros of the gradient), equal
    to the functional layer with those masks; zoneout keeps h with probability z_h in training."""
    require("flax")
    rate = 0.4
    params = random_bidirectional(_rng, FEATURES, 16)
    if flavour == "linen":
        from jaxlstm import linen

        module = linen.Bidirectional(16, weight_drop=rate)
        grad = jax.grad(
            lambda v: module.apply(
                v, XS, deterministic=False, rngs={"dropout": jax.random.key(3)}
            ).sequence.sum()
        )(linen.to_variables(params))
        grads = linen.get_params(grad)
        out = module.apply(
            linen.to_variables(params), XS, deterministic=False, rngs={"dropout": jax.random.key(3)}
        )
        evaluation = module.apply(linen.to_variables(params), XS, deterministic=True)
    else:
        from flax import nnx

        from jaxlstm import nnx as jnnx

        module = jnnx.Bidirectional.from_params(params, weight_drop=rate, rngs=nnx.Rngs(0))
        key = jax.random.key(3)
        grad = nnx.grad(lambda m: m(XS, rngs=key).sequence.sum())(module)
        grads = jaxlstm.BidirectionalParams(
            *(params[d]._replace(recurrent_kernel=grad["weights"][name]["recurrent_kernel"].get_value())
              for d, name in enumerate(("forward", "backward")))
        )  # fmt: skip
        out, evaluation = module(XS, rngs=key), module(XS, deterministic=True)
    masks = [np.asarray(g.recurrent_kernel) != 0 for g in grads]
    dropped = 1 - np.mean(np.concatenate([m.ravel() for m in masks]))
    assert abs(dropped - rate) < 0.06, dropped
    assert not np.array_equal(masks[0], masks[1])  # a mask per direction
    mask_pair = tuple(m / (1 - rate) for m in masks)
    _assert_trees_close(out, jaxlstm.bidirectional(params, XS, weight_drop_mask=mask_pair))
    _assert_trees_close(evaluation, jaxlstm.bidirectional(params, XS))

    z_h = 0.3
    xs = _rng.normal(size=(64, STEPS, FEATURES)).astype(np.float32)
    zoned = _modules(flavour, "bidir", V_BIDIR, zoneout=(0.0, z_h))
    seq = np.asarray(zoned(xs, key=jax.random.key(4), deterministic=False).sequence)
    forward, backward = seq[..., :UNITS], seq[..., UNITS:]
    # forward h_t == h_{t-1} where kept; backward (processed from the end) h_t == h_{t+1}
    kept = np.concatenate(
        [(forward[:, 1:] == forward[:, :-1]).ravel(), (backward[:, :-1] == backward[:, 1:]).ravel()]
    )
    assert abs(kept.mean() - z_h) < 4 * np.sqrt(z_h * (1 - z_h) / kept.size), kept.mean()
    evaluation = zoned(xs, deterministic=True)
    _assert_trees_close(evaluation, jaxlstm.bidirectional(V_BIDIR, xs, zoneout=(0.0, z_h)))


def test_layer_modules_need_the_mode_and_refuse_other_variants() -> None:
    require("flax")
    from jaxlstm import linen
    from jaxlstm import nnx as jnnx

    for module in (
        linen.Bidirectional(UNITS, **FLAGS, zoneout=0.1),
        linen.StackedLSTM(UNITS, **FLAGS, weight_drop=0.1, bidirectional=True),
    ):
        variables = linen.to_variables(V_BIDIR if isinstance(module, linen.Bidirectional) else V_STACK[:1])
        with pytest.raises(ValueError, match="deterministic"):
            module.apply(variables, XS)
    # NNX from_params reads the variant from the params; set_params refuses another variant.
    layer = jnnx.Bidirectional.from_params(V_BIDIR)
    assert layer.params.forward.layer_norm is not None and layer.params.forward.gates == 3
    _assert_trees_close(layer.params, V_BIDIR)
    with pytest.raises(ValueError, match=r"params.forward.kernel: expected shape \[4, 15\]"):
        layer.set_params(BIDIR)
    stack = jnnx.StackedLSTM.from_params(V_STACK)
    _assert_trees_close(stack.params, V_STACK)
    _assert_trees_close(linen.get_params(linen.to_variables(V_STACK)), V_STACK)
