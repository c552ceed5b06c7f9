"""jaxlstm.linen: the core's numbers, Keras 3's outputs, dropout, state, nn.RNN, transforms, training."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax import serialization
from flax_cases import (
    CORE_ATOL,
    KERAS_ATOL,
    RETURN_COMBOS,
    as_list,
    assert_dropped_fraction,
    assert_same_outputs,
    input_keep_pattern,
    keras_layer,
    recurrent_keep_pattern,
    synthetic_task,
)

import jaxlstm
from jaxlstm import LSTMState
from jaxlstm.linen import LSTM, STATE_COLLECTION, LSTMCell, get_params, to_variables

B, T, I, H = 3, 6, 4, 5


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
    variables = LSTM(H).init(jax.random.key(0), xs)
    mask = np.ones((B, T), bool)
    mask[0, 4:] = False
    mask[1, ::2] = False
    state = LSTMState(h=jnp.asarray(rng.normal(size=(B, H)), jnp.float32), c=jnp.full((B, H), 0.5))
    return xs, variables, jnp.asarray(mask), state


def test_parameters_are_keras_layout_and_round_trip(data):
    xs, variables, _, _ = data
    shapes = jax.tree_util.tree_map(jnp.shape, variables["params"])
    assert shapes == {"kernel": (I, 4 * H), "recurrent_kernel": (H, 4 * H), "bias": (4 * H,)}
    params = get_params(variables)
    np.testing.assert_array_equal(params.bias[H : 2 * H], 1.0)  # unit_forget_bias sets the forget block
    np.testing.assert_array_equal(params.bias[:H], 0.0)
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), to_variables(params), variables)
    )
    no_bias = LSTM(H, use_bias=False).init(jax.random.key(0), xs)
    assert "bias" not in no_bias["params"] and get_params(no_bias).bias is None


@pytest.mark.parametrize(
    "kwargs, call",
    [
        ({}, {}),
        ({}, {"mask": True}),
        ({"go_backwards": True}, {}),
        ({"go_backwards": True, "zero_output_for_mask": True}, {"mask": True}),
        ({}, {"initial_state": True}),
    ],
    ids=["plain", "mask", "reverse", "reverse_mask_zero", "initial_state"],
)
def test_matches_core(data, kwargs, call):
    xs, variables, mask, state = data
    initial_state = state if call.get("initial_state") else None
    mask = mask if call.get("mask") else None
    layer = LSTM(H, return_sequences=True, return_state=True, **kwargs)
    sequence, h, c = layer.apply(variables, xs, initial_state=initial_state, mask=mask)
    ref = jaxlstm.lstm(
        get_params(variables),
        xs,
        initial_state,
        reverse=kwargs.get("go_backwards", False),
        mask=mask,
        zero_output_for_mask=kwargs.get("zero_output_for_mask", False),
    )
    np.testing.assert_allclose(sequence, ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)
    # The default output is the last output, [B, H].
    last = LSTM(H, **kwargs).apply(variables, xs, initial_state, mask)
    np.testing.assert_allclose(last, ref.sequence[:, -1], atol=CORE_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lengths_match_core(data, go_backwards):
    xs, variables, _, state = data
    lengths = jnp.array([6, 0, 3])
    layer = LSTM(H, return_sequences=True, return_state=True, go_backwards=go_backwards)
    sequence, h, c = layer.apply(variables, xs, state, lengths=lengths)
    ref = jaxlstm.lstm(get_params(variables), xs, state, lengths=lengths, reverse=go_backwards)
    np.testing.assert_allclose(sequence, ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)
    np.testing.assert_array_equal(h[1], state.h[1])  # length 0 keeps the initial state
    # With lengths, the last output is each sequence's own last step (step T-1 may be padding).
    last = LSTM(H, go_backwards=go_backwards).apply(variables, xs, state, lengths=lengths)
    np.testing.assert_allclose(last, ref.state.h, atol=CORE_ATOL, rtol=0)
    assert not np.allclose(last[2], ref.sequence[2, -1])


@pytest.mark.parametrize("return_sequences, return_state", RETURN_COMBOS)
def test_matches_keras(return_sequences, return_state):
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    mask = None
    if return_sequences and return_state:  # the full output also checks masking and go_backwards
        flags.update(go_backwards=True, zero_output_for_mask=True)
        mask = np.random.default_rng(4).random((16, 8)) > 0.3
    keras_lstm, params = keras_layer(2, 4, seed=1, **flags)
    x = np.random.default_rng(2).normal(size=(16, 8, 4)).astype(np.float32)
    ours = LSTM(2, **flags).apply(to_variables(params), x, mask=None if mask is None else jnp.asarray(mask))
    assert_same_outputs(ours, keras_lstm(x, mask=mask), KERAS_ATOL)
    sequence, *_ = as_list(ours)
    assert sequence.shape == ((16, 8, 2) if return_sequences else (16, 2))


def test_batch_axes_any_number(data):
    xs, variables, _, _ = data
    layer = LSTM(H, return_sequences=True)
    ref = layer.apply(variables, xs)
    assert layer.apply(variables, xs[0]).shape == (T, H)  # no batch axis
    np.testing.assert_allclose(layer.apply(variables, xs[0]), ref[0], atol=CORE_ATOL, rtol=0)
    two = jnp.stack([xs, xs[::-1]])  # [2, B, T, I]
    out = layer.apply(variables, two)
    assert out.shape == (2, B, T, H)
    np.testing.assert_allclose(out[1], ref[::-1], atol=CORE_ATOL, rtol=0)


def test_bfloat16_compute_float32_params(data):
    xs, variables, _, _ = data
    layer = LSTM(H, return_state=True, dtype=jnp.bfloat16)
    fresh = layer.init(jax.random.key(0), xs)
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(fresh))
    out, h, c = layer.apply(variables, xs)
    assert out.dtype == h.dtype == c.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), LSTM(H).apply(variables, xs), atol=3e-2)
    grads = jax.grad(lambda v: layer.apply(v, xs)[0].astype(jnp.float32).sum())(variables)
    assert all(g.dtype == jnp.float32 and jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------


def test_deterministic_equals_no_dropout(data):
    xs, variables, _, _ = data
    plain = LSTM(H, return_sequences=True).apply(variables, xs)
    dropping = LSTM(H, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    np.testing.assert_array_equal(dropping.apply(variables, xs, deterministic=True), plain)
    np.testing.assert_array_equal(dropping.apply(variables, xs, training=False), plain)
    on = dropping.apply(variables, xs, training=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(on, plain, atol=1e-3)
    with pytest.raises(ValueError, match="deterministic"):
        dropping.apply(variables, xs)  # dropout configured, mode not given
    with pytest.raises(ValueError, match="disagree"):
        dropping.apply(variables, xs, deterministic=True, training=True)


def test_input_dropout_one_mask_per_sequence():
    rate, batch, features = 0.3, 200, 8
    xs = jax.random.normal(jax.random.key(0), (batch, 4, features))
    layer = LSTM(H, dropout=rate, return_sequences=True)
    variables = layer.init(jax.random.key(1), xs, deterministic=True)

    @jax.jit
    def grad_xs(key):
        loss = lambda x: layer.apply(variables, x, deterministic=False, rngs={"dropout": key}).sum()
        return jax.grad(loss)(xs)

    patterns = [input_keep_pattern(grad_xs(jax.random.key(k))) for k in (2, 3)]
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])  # another key, another mask
    # Kept features are scaled by 1 / (1 - rate), as in Keras: the output is the core's on xs * mask.
    out = layer.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(2)})
    scaled = xs * (patterns[0][:, None, :] / (1 - rate))
    ref = jaxlstm.lstm(get_params(variables), scaled).sequence
    np.testing.assert_allclose(out, ref, atol=CORE_ATOL, rtol=0)


def test_recurrent_dropout_one_mask_per_sequence():
    rate, units = 0.25, 128
    xs = jax.random.normal(jax.random.key(0), (6, 3))  # one sequence, no batch axis
    layer = LSTM(units, recurrent_dropout=rate, return_sequences=True)
    variables = layer.init(jax.random.key(1), xs, deterministic=True)

    @jax.jit
    def grad_recurrent(key):
        loss = lambda v: layer.apply(v, xs, deterministic=False, rngs={"dropout": key}).sum()
        return jax.grad(loss)(variables)["params"]["recurrent_kernel"]

    patterns = [recurrent_keep_pattern(grad_recurrent(jax.random.key(k))) for k in range(2, 10)]
    # A fresh mask per step would zero a row with probability rate**5 ~ 0.001, not rate.
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])
    out = layer.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(2)})
    ref = jaxlstm.lstm(get_params(variables), xs, recurrent_dropout_mask=patterns[0] / (1 - rate))
    np.testing.assert_allclose(out, ref.sequence, atol=CORE_ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------
# Stateful use
# ----------------------------------------------------------------------------------------------


def test_stateful_chunks_equal_one_pass():
    xs = jax.random.normal(jax.random.key(0), (2, 15, I))
    layer = LSTM(H, stateful=True, return_sequences=True, return_state=True)
    variables = layer.init(jax.random.key(1), xs[:, :5])
    np.testing.assert_array_equal(variables[STATE_COLLECTION]["state"].h, 0.0)  # init does not advance it
    apply = jax.jit(lambda v, x: layer.apply(v, x, mutable=[STATE_COLLECTION]))
    chunks = []
    for start in (0, 5, 10):
        (sequence, h, c), updates = apply(variables, xs[:, start : start + 5])
        variables = {**variables, **updates}
        chunks.append(sequence)
    ref = jaxlstm.lstm(get_params(variables), xs)
    np.testing.assert_allclose(jnp.concatenate(chunks, axis=1), ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)

    with pytest.raises(ValueError, match="apply with mutable=\\['lstm_state'\\]"):
        layer.apply(variables, xs[:, :5])
    with pytest.raises(ValueError, match=r"batch shape \[2\].*batch shape \[3\]"):
        layer.apply(variables, jnp.zeros((3, 5, I)), mutable=[STATE_COLLECTION])

    _, reset = layer.apply(variables, method="reset_state", mutable=[STATE_COLLECTION])
    zeroed = reset[STATE_COLLECTION]["state"]
    assert zeroed.h.shape == (2, H) and jnp.all(zeroed.h == 0) and jnp.all(zeroed.c == 0)
    (sequence, _, _), _ = apply({**variables, **reset}, xs[:, :5])
    np.testing.assert_allclose(sequence, ref.sequence[:, :5], atol=CORE_ATOL, rtol=0)
    # A new batch shape after reset_state(batch_shape=...).
    _, reset3 = layer.apply(variables, (3,), method="reset_state", mutable=[STATE_COLLECTION])
    (_, h3, _), _ = layer.apply({**variables, **reset3}, jnp.zeros((3, 5, I)), mutable=[STATE_COLLECTION])
    assert h3.shape == (3, H)


# ----------------------------------------------------------------------------------------------
# flax.linen.RNN cell
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_cell_matches_layer(data, reverse):
    xs, variables, _, _ = data
    rnn = nn.RNN(LSTMCell(H), return_carry=True, reverse=reverse, keep_order=False)
    rnn_variables = rnn.init(jax.random.key(0), xs)
    assert jax.tree_util.tree_map(jnp.shape, rnn_variables["params"]["cell"]) == jax.tree_util.tree_map(
        jnp.shape, variables["params"]
    )
    (c, h), sequence = rnn.apply({"params": {"cell": variables["params"]}}, xs)
    reference = LSTM(H, return_sequences=True, return_state=True, go_backwards=reverse)
    ref_sequence, ref_h, ref_c = reference.apply(variables, xs)
    np.testing.assert_allclose(sequence, ref_sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref_h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref_c, atol=CORE_ATOL, rtol=0)
    carry = LSTMCell(H).initialize_carry(jax.random.key(0), (B, I))
    assert carry[0].shape == carry[1].shape == (B, H) and LSTMCell(H).num_feature_axes == 1


# ----------------------------------------------------------------------------------------------
# Transforms, serialisation, training
# ----------------------------------------------------------------------------------------------


def test_jit_and_grad_match_core(data):
    xs, variables, mask, _ = data
    layer = LSTM(H, return_sequences=True)
    jitted = jax.jit(layer.apply)(variables, xs, mask=mask)
    np.testing.assert_allclose(jitted, layer.apply(variables, xs, mask=mask), atol=CORE_ATOL, rtol=0)
    grads = jax.grad(lambda v: (layer.apply(v, xs, mask=mask) ** 2).sum())(variables)
    ref = jax.grad(lambda p: (jaxlstm.lstm(p, xs, mask=mask).sequence ** 2).sum())(get_params(variables))
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(grads["params"][name], getattr(ref, name), atol=1e-5, rtol=1e-5)


class _Layer(nn.Module):
    """One scanned layer: the carry is the sequence."""

    @nn.compact
    def __call__(self, xs, _):
        return LSTM(I, return_sequences=True)(xs), None


def test_nn_scan_over_layers(data):
    xs = data[0]
    stack = nn.scan(_Layer, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)()
    (out, _), variables = stack.init_with_output(jax.random.key(0), xs, None)
    stacked = variables["params"]["LSTM_0"]
    ref = xs
    for layer in range(3):
        ref = jaxlstm.lstm(get_params(jax.tree_util.tree_map(lambda a: a[layer], stacked)), ref).sequence  # noqa: B023
    np.testing.assert_allclose(out, ref, atol=CORE_ATOL, rtol=0)


def test_serialization_round_trip(data):
    xs, variables, _, _ = data
    layer = LSTM(H, return_sequences=True)
    restored = serialization.from_bytes(
        jax.tree_util.tree_map(jnp.zeros_like, variables), serialization.to_bytes(variables)
    )
    np.testing.assert_array_equal(layer.apply(restored, xs), layer.apply(variables, xs))


class _TwoLayers(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic):
        x = LSTM(8, return_sequences=True, dropout=0.1)(x, deterministic=deterministic)
        x = LSTM(8)(x)
        return nn.Dense(1)(x)


def test_two_layer_model_trains():
    optax = require("optax")
    x, y = synthetic_task()
    model = _TwoLayers()
    params = model.init(jax.random.key(0), x, True)["params"]
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params, key):
        pred = model.apply({"params": params}, x, False, rngs={"dropout": key})
        return jnp.mean((pred - y) ** 2)

    @jax.jit
    def train_step(params, opt_state, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    # Each step returns the (dropout) loss before its update: the 51st is after 50 Adam steps.
    losses = []
    for step in range(51):
        params, opt_state, loss = train_step(params, opt_state, jax.random.key(step))
        losses.append(float(loss))
    assert losses[50] < 0.5 * losses[0], f"loss {losses[0]:.4f} -> {losses[50]:.4f}"


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_errors(data):
    xs, variables, _, _ = data
    layer = LSTM(H)
    with pytest.raises(ValueError, match=r"inputs: expected shape \[\.\.\., T, features\].*rank 1"):
        layer.init(jax.random.key(0), jnp.zeros((I,)))
    with pytest.raises(ValueError, match=r"inputs: expected 4 features.*\[3, 6, 7\]"):
        layer.apply(variables, jnp.zeros((B, T, 7)))
    with pytest.raises(TypeError, match="inputs: expected a floating-point array"):
        layer.apply(variables, jnp.zeros((B, T, I), jnp.int32))
    with pytest.raises(ValueError, match=r"initial_state.h: expected shape \[3, 5\].*found \[3, 4\]"):
        layer.apply(variables, xs, initial_state=LSTMState(h=jnp.zeros((B, 4)), c=jnp.zeros((B, H))))
    with pytest.raises(TypeError, match="initial_state: expected LSTMState"):
        layer.apply(variables, xs, initial_state=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match=r"mask: expected shape \[3, 6\]"):
        layer.apply(variables, xs, mask=jnp.ones((B, T + 1), bool))
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\]"):
            LSTM(H, dropout=bad).init(jax.random.key(0), xs, deterministic=True)
        with pytest.raises(ValueError, match=r"recurrent_dropout: expected a float in \[0, 1\]"):
            LSTM(H, recurrent_dropout=bad).init(jax.random.key(0), xs, deterministic=True)
    with pytest.raises(ValueError, match="units: expected a positive int"):
        LSTM(0).init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match="kernel_initializer: unknown initializer"):
        LSTM(H, kernel_initializer="nope").init(jax.random.key(0), xs)
