"""jaxlstm.nnx: the core's numbers, Keras 3's outputs, dropout, state, nnx.RNN, transforms, training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax import nnx, serialization
from flax_cases import (
    CORE_ATOL,
    KERAS_ATOL,
    RETURN_COMBOS,
    assert_dropped_fraction,
    assert_same_outputs,
    input_keep_pattern,
    keras_layer,
    synthetic_task,
)

import jaxlstm
from jaxlstm import LSTMState
from jaxlstm import linen as jlinen
from jaxlstm.nnx import LSTM, KeptState, LSTMCell

B, T, I, H = 3, 6, 4, 5


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
    params = jaxlstm.init(jax.random.key(0), I, H)
    mask = np.ones((B, T), bool)
    mask[0, 4:] = False
    mask[1, ::2] = False
    state = LSTMState(h=jnp.asarray(rng.normal(size=(B, H)), jnp.float32), c=jnp.full((B, H), 0.5))
    return xs, params, jnp.asarray(mask), state


def test_params_round_trip_and_keras_layout(data):
    xs, params, _, _ = data
    layer = LSTM(I, H, rngs=nnx.Rngs(0))
    assert layer.kernel.get_value().shape == (I, 4 * H)
    assert layer.recurrent_kernel.get_value().shape == (H, 4 * H)
    np.testing.assert_array_equal(layer.bias.get_value()[H : 2 * H], 1.0)  # unit_forget_bias
    layer.set_params(params)
    for got, want in zip(layer.params, params):
        np.testing.assert_array_equal(got, want)
    # The same LSTMParams move between functional, NNX and linen with no conversion.
    linen_out = jlinen.LSTM(H).apply(jlinen.to_variables(layer.params), xs)
    np.testing.assert_allclose(layer(xs), linen_out, atol=CORE_ATOL, rtol=0)
    no_bias = LSTM(I, H, use_bias=False, rngs=nnx.Rngs(0))
    assert no_bias.bias is None and no_bias.params.bias is None
    with pytest.raises(ValueError, match="params.bias: this module has use_bias=False"):
        no_bias.set_params(params)
    with pytest.raises(ValueError, match=r"params.kernel: expected shape \[4, 20\]"):
        layer.set_params(jaxlstm.init(jax.random.key(0), I + 1, H))


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
    xs, params, mask, state = data
    initial_state = state if call.get("initial_state") else None
    mask = mask if call.get("mask") else None
    layer = LSTM.from_params(params, return_sequences=True, return_state=True, **kwargs)
    sequence, h, c = layer(xs, initial_state, mask)
    ref = jaxlstm.lstm(
        params,
        xs,
        initial_state,
        reverse=kwargs.get("go_backwards", False),
        mask=mask,
        zero_output_for_mask=kwargs.get("zero_output_for_mask", False),
    )
    np.testing.assert_allclose(sequence, ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)
    last = LSTM.from_params(params, **kwargs)(xs, initial_state, mask)
    np.testing.assert_allclose(last, ref.sequence[:, -1], atol=CORE_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lengths_match_core(data, go_backwards):
    xs, params, _, state = data
    lengths = jnp.array([6, 0, 3])
    layer = LSTM.from_params(params, return_sequences=True, return_state=True, go_backwards=go_backwards)
    sequence, h, c = layer(xs, state, lengths=lengths)
    ref = jaxlstm.lstm(params, xs, state, lengths=lengths, reverse=go_backwards)
    np.testing.assert_allclose(sequence, ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)
    last = LSTM.from_params(params, go_backwards=go_backwards)(xs, state, lengths=lengths)
    np.testing.assert_allclose(last, ref.state.h, atol=CORE_ATOL, rtol=0)
    assert not np.allclose(last[2], ref.sequence[2, -1])


@pytest.mark.parametrize("return_sequences, return_state", RETURN_COMBOS)
def test_matches_keras(return_sequences, return_state):
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    keras_lstm, params = keras_layer(2, 4, seed=5, **flags)
    x = np.random.default_rng(6).normal(size=(16, 8, 4)).astype(np.float32)
    ours = LSTM.from_params(params, **flags)(x)
    assert_same_outputs(ours, keras_lstm(x), KERAS_ATOL)


def test_batch_axes_and_bfloat16(data):
    xs, params, _, _ = data
    layer = LSTM.from_params(params, return_sequences=True)
    ref = layer(xs)
    np.testing.assert_allclose(layer(xs[1]), ref[1], atol=CORE_ATOL, rtol=0)  # no batch axis
    np.testing.assert_allclose(layer(jnp.stack([xs, xs]))[1], ref, atol=CORE_ATOL, rtol=0)
    half = LSTM(I, H, dtype=jnp.bfloat16, return_sequences=True, rngs=nnx.Rngs(0))
    half.set_params(params)
    assert half.kernel.get_value().dtype == jnp.float32
    out = half(xs)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=3e-2)


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------


def test_dropout_modes(data):
    xs, params, _, _ = data
    plain = LSTM.from_params(params, return_sequences=True)(xs)
    layer = LSTM(I, H, dropout=0.4, recurrent_dropout=0.4, return_sequences=True, rngs=nnx.Rngs(0))
    layer.set_params(params)
    np.testing.assert_array_equal(layer(xs, deterministic=True), plain)
    np.testing.assert_array_equal(layer(xs, training=False), plain)
    first, second = layer(xs), layer(xs)  # train mode by default (as nnx.Dropout): a new key each call
    assert not np.allclose(first, plain, atol=1e-3) and not np.allclose(first, second, atol=1e-3)
    layer.eval()
    np.testing.assert_array_equal(layer(xs), plain)
    np.testing.assert_array_equal(nnx.view(layer, deterministic=True)(xs), plain)
    layer.train()
    assert not np.allclose(layer(xs), plain, atol=1e-3)
    explicit = layer(xs, rngs=nnx.Rngs(dropout=7))
    np.testing.assert_array_equal(explicit, layer(xs, rngs=nnx.Rngs(dropout=7)))
    from_params = LSTM.from_params(params, dropout=0.4)
    with pytest.raises(ValueError, match="rngs: dropout is on"):
        from_params(xs)


def test_dropout_one_mask_per_sequence():
    # Recurrent dropout shares this code path (jaxlstm._keras_surface); test_linen.py checks its mask.
    rate = 0.3
    xs = jax.random.normal(jax.random.key(0), (200, 4, 8))
    layer = LSTM(8, H, dropout=rate, return_sequences=True, rngs=nnx.Rngs(1))

    @jax.jit
    def grad_xs(key):
        return jax.grad(lambda x: layer(x, rngs=key).sum())(xs)

    patterns = [input_keep_pattern(grad_xs(jax.random.key(k))) for k in (2, 3)]
    assert_dropped_fraction(patterns, rate)
    assert not np.array_equal(patterns[0], patterns[1])
    out = layer(xs, rngs=jax.random.key(2))
    ref = jaxlstm.lstm(layer.params, xs * (patterns[0][:, None, :] / (1 - rate))).sequence
    np.testing.assert_allclose(out, ref, atol=CORE_ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------
# Stateful use
# ----------------------------------------------------------------------------------------------


def test_stateful_chunks_equal_one_pass():
    xs = jax.random.normal(jax.random.key(0), (2, 15, I))
    layer = LSTM(I, H, stateful=True, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    call = nnx.jit(lambda m, x: m(x))
    chunks = []
    for start in (0, 5, 10):
        sequence, h, c = call(layer, xs[:, start : start + 5])
        chunks.append(sequence)
    ref = jaxlstm.lstm(layer.params, xs)
    np.testing.assert_allclose(jnp.concatenate(chunks, axis=1), ref.sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(layer.kept_state.get_value().h, ref.state.h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref.state.c, atol=CORE_ATOL, rtol=0)
    assert isinstance(nnx.state(layer, KeptState)["kept_state"], KeptState)

    with pytest.raises(ValueError, match=r"batch shape \[2\].*batch shape \[3\]"):
        layer(jnp.zeros((3, 5, I)))
    layer.reset_state()
    kept = layer.kept_state.get_value()
    assert kept.h.shape == (2, H) and jnp.all(kept.h == 0) and jnp.all(kept.c == 0)
    np.testing.assert_allclose(call(layer, xs[:, :5])[0], ref.sequence[:, :5], atol=CORE_ATOL, rtol=0)
    layer.reset_state(batch_shape=(3,))
    assert layer(jnp.zeros((3, 5, I)))[1].shape == (3, H)


# ----------------------------------------------------------------------------------------------
# flax.nnx.RNN cell
# ----------------------------------------------------------------------------------------------


def test_rnn_cell_matches_layer(data):
    xs, params, _, _ = data
    cell = LSTMCell(I, H, rngs=nnx.Rngs(0))
    cell.set_params(params)
    (c, h), sequence = nnx.RNN(cell, return_carry=True)(xs)
    ref_sequence, ref_h, ref_c = jlinen.LSTM(H, return_sequences=True, return_state=True).apply(
        jlinen.to_variables(params), xs
    )
    np.testing.assert_allclose(sequence, ref_sequence, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(h, ref_h, atol=CORE_ATOL, rtol=0)
    np.testing.assert_allclose(c, ref_c, atol=CORE_ATOL, rtol=0)
    carry = cell.initialize_carry((B, I))
    assert carry[0].shape == carry[1].shape == (B, H) and cell.num_feature_axes == 1
    assert jnp.all(carry[0] == 0)


# ----------------------------------------------------------------------------------------------
# Transforms, serialisation, training
# ----------------------------------------------------------------------------------------------


def test_nnx_jit_and_grad_match_core(data):
    xs, params, mask, _ = data
    layer = LSTM.from_params(params, return_sequences=True)
    out = nnx.jit(lambda m, x, k: m(x, mask=k))(layer, xs, mask)
    np.testing.assert_allclose(out, jaxlstm.lstm(params, xs, mask=mask).sequence, atol=CORE_ATOL, rtol=0)
    grads = nnx.grad(lambda m: (m(xs, mask=mask) ** 2).sum())(layer)
    ref = jax.grad(lambda p: (jaxlstm.lstm(p, xs, mask=mask).sequence ** 2).sum())(params)
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(grads[name].get_value(), getattr(ref, name), atol=1e-5, rtol=1e-5)


def test_nnx_scan_over_layers(data):
    xs = data[0]

    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return LSTM(I, I, return_sequences=True, rngs=rngs)

    stack = create(nnx.Rngs(0))

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, layer):
        return layer(x)

    out = forward(xs, stack)
    ref = xs
    for layer in range(3):
        ref = jaxlstm.lstm(jax.tree_util.tree_map(lambda a: a[layer], stack.params), ref).sequence  # noqa: B023
    np.testing.assert_allclose(out, ref, atol=CORE_ATOL, rtol=0)


def test_serialization_round_trip(data):
    xs = data[0]
    layer = LSTM(I, H, return_sequences=True, rngs=nnx.Rngs(0))
    payload = serialization.to_bytes(nnx.to_pure_dict(nnx.state(layer)))
    other = LSTM(I, H, return_sequences=True, rngs=nnx.Rngs(1))
    assert not np.allclose(other(xs), layer(xs))
    state = nnx.state(other)
    nnx.replace_by_pure_dict(state, serialization.from_bytes(nnx.to_pure_dict(state), payload))
    nnx.update(other, state)
    np.testing.assert_array_equal(other(xs), layer(xs))


class _TwoLayers(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.first = LSTM(2, 8, return_sequences=True, rngs=rngs)
        self.second = LSTM(8, 8, rngs=rngs)
        self.head = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.head(self.second(self.first(x)))


def test_two_layer_model_trains():
    optax = require("optax")
    x, y = synthetic_task(seed=1)
    model = _TwoLayers(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    def loss_fn(model):
        return jnp.mean((model(x) - y) ** 2)

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    # Each step returns the loss before its update: the 51st is the loss after 50 Adam steps.
    losses = [float(train_step(model, optimizer)) for _ in range(51)]
    assert losses[50] < 0.5 * losses[0], f"loss {losses[0]:.4f} -> {losses[50]:.4f}"


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_errors(data):
    xs, params, _, _ = data
    layer = LSTM.from_params(params)
    with pytest.raises(ValueError, match=r"inputs: expected shape \[\.\.\., T, 4\].*rank 1"):
        layer(jnp.zeros((I,)))
    with pytest.raises(ValueError, match=r"inputs: expected 4 features.*\[3, 6, 7\]"):
        layer(jnp.zeros((B, T, 7)))
    with pytest.raises(ValueError, match=r"initial_state.c: expected shape \[3, 5\].*found \[2, 5\]"):
        layer(xs, LSTMState(h=jnp.zeros((B, H)), c=jnp.zeros((2, H))))
    with pytest.raises(ValueError, match=r"initial_state.h: expected shape \[3, 5\]"):
        layer(xs, [jnp.zeros((B, H + 1)), jnp.zeros((B, H))])  # Keras-style [h, c]
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\]"):
            LSTM(I, H, dropout=bad, rngs=nnx.Rngs(0))
        with pytest.raises(ValueError, match=r"recurrent_dropout: expected a float in \[0, 1\]"):
            LSTM(I, H, recurrent_dropout=bad, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features: expected a positive int"):
        LSTM(0, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unroll: expected a bool or a positive int"):
        LSTM(I, H, unroll=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="reset_state: this LSTM is not stateful"):
        layer.reset_state()
