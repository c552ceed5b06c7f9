"""Stack wiring: init_stack shapes, masks through a Keras stack, residual connections, dropout flags,
PyTorch state layout, and clear errors. (Numbers against torch.nn.LSTM: test_torch_parity.py.)"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _random_layers import random_bidirectional, random_lstm
from conftest import require

import jaxlstm

ATOL = RTOL = 1e-5
BATCH, STEPS, FEATURES, UNITS = 3, 6, 4, 5


@pytest.fixture(scope="module")
def xs():
    return np.random.default_rng(10).normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)


def test_init_stack_shapes() -> None:
    key = jax.random.PRNGKey(0)
    # Shapes from eval_shape: no initialiser runs or compiles.
    shapes = lambda **kw: jax.eval_shape(lambda k: jaxlstm.init_stack(k, FEATURES, UNITS, **kw), key)
    params = shapes(num_layers=3, bidirectional=True, proj_size=2)
    assert len(params) == 3 and all(isinstance(p, jaxlstm.BidirectionalParams) for p in params)
    assert params[0].forward.kernel.shape == (FEATURES, 4 * UNITS)
    for layer in params[1:]:  # later layers read both directions' projected outputs, concatenated
        assert layer.backward.kernel.shape == (4, 4 * UNITS)
        assert layer.backward.recurrent_kernel.shape == (2, 4 * UNITS)
        assert layer.backward.projection.shape == (UNITS, 2)
    summed = shapes(num_layers=2, bidirectional=True, merge_mode="sum")
    assert summed[1].forward.kernel.shape == (UNITS, 4 * UNITS)
    plain = shapes(num_layers=2, use_bias=False)
    assert isinstance(plain[1], jaxlstm.LSTMParams) and plain[1].bias is None
    # Values: every layer and direction draws its own weights; Keras's forget bias of 1.
    values = jaxlstm.init_stack(key, FEATURES, FEATURES, 2, bidirectional=True, merge_mode="sum")
    kernels = [np.asarray(d.kernel) for layer in values for d in layer]
    assert all(not np.allclose(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1 :])
    np.testing.assert_array_equal(values[1].backward.bias[FEATURES : 2 * FEATURES], 1.0)


def test_masked_stack_equals_keras_layers_in_sequence(xs) -> None:
    """Keras passes the mask up the stack; a Bidirectional layer returning sequences zeroes masked
    steps, a plain LSTM repeats the previous output: our per-layer defaults follow both."""
    keras = require("keras")
    rng = np.random.default_rng(11)
    params = (random_bidirectional(rng, FEATURES, UNITS), random_lstm(rng, UNITS, UNITS))
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, 1] = mask[1, 4:] = mask[2, 0] = False
    cheap = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
    bottom = keras.layers.Bidirectional(
        keras.layers.LSTM(UNITS, return_sequences=True, **cheap), merge_mode="sum"
    )
    top = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True, **cheap)
    bottom.build((None, STEPS, FEATURES))
    top.build((None, STEPS, UNITS))
    for layer, ours in (
        (bottom.forward_layer, params[0].forward),
        (bottom.backward_layer, params[0].backward),
        (top, params[1]),
    ):
        layer.set_weights([np.asarray(w) for w in ours[:3]])
    sequence, h, c = top(bottom(xs, mask=mask), mask=mask)
    out = jaxlstm.stacked_lstm(params, xs, merge_mode="sum", mask=mask)
    np.testing.assert_allclose(out.sequence, sequence, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(out.state[1].h, h, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(out.state[1].c, c, atol=ATOL, rtol=RTOL)


def test_residual_adds_each_upper_layer_input(xs) -> None:
    rng = np.random.default_rng(12)
    params = (
        random_lstm(rng, FEATURES, UNITS),
        random_lstm(rng, UNITS, UNITS),
        random_lstm(rng, UNITS, UNITS),
    )
    out = jaxlstm.stacked_lstm(params, xs, residual=True)
    below = jaxlstm.lstm(params[0], xs).sequence  # the first layer has no residual: widths differ
    for layer in params[1:]:
        below = jaxlstm.lstm(layer, below).sequence + below
    np.testing.assert_allclose(out.sequence, below, atol=ATOL, rtol=RTOL)
    with pytest.raises(ValueError, match="residual: layer 1 maps 5 features to 2"):
        jaxlstm.stacked_lstm((params[0], random_lstm(rng, UNITS, UNITS, proj_size=2)), xs, residual=True)


def test_dropout_flags(xs) -> None:
    rng = np.random.default_rng(13)
    params = (random_lstm(rng, FEATURES, UNITS), random_lstm(rng, UNITS, UNITS))
    plain = jaxlstm.stacked_lstm(params, xs).sequence
    inference = jaxlstm.stacked_lstm(params, xs, inter_layer_dropout=0.5, deterministic=True).sequence
    np.testing.assert_array_equal(inference, plain)
    run = lambda seed: (
        jaxlstm.stacked_lstm(
            params, xs, inter_layer_dropout=0.5, deterministic=False, key=jax.random.PRNGKey(seed)
        ).sequence
    )
    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, again)
    assert np.abs(np.asarray(first) - np.asarray(plain)).max() > 1e-3
    assert np.abs(np.asarray(first) - np.asarray(other)).max() > 1e-3
    # One layer: PyTorch applies no dropout after the last layer, so there is none at all.
    single = jaxlstm.stacked_lstm(
        params[:1], xs, inter_layer_dropout=0.5, deterministic=False, key=jax.random.PRNGKey(0)
    )
    np.testing.assert_array_equal(single.sequence, jaxlstm.stacked_lstm(params[:1], xs).sequence)
    with pytest.raises(ValueError, match="deterministic: inter_layer_dropout=0.5 needs deterministic=False"):
        jaxlstm.stacked_lstm(params, xs, inter_layer_dropout=0.5)
    with pytest.raises(
        ValueError, match="key: inter_layer_dropout=0.5 with deterministic=False needs a PRNG key"
    ):
        jaxlstm.stacked_lstm(params, xs, inter_layer_dropout=0.5, deterministic=False)
    with pytest.raises(ValueError, match=r"inter_layer_dropout: expected a float in \[0, 1\], found 1.5"):
        jaxlstm.stacked_lstm(params, xs, inter_layer_dropout=1.5, deterministic=False)


def test_torch_state_layout_round_trip() -> None:
    rng = np.random.default_rng(14)
    params = (
        random_bidirectional(rng, FEATURES, UNITS, proj_size=2),
        random_lstm(rng, 4, UNITS, proj_size=2),
    )
    h_0 = rng.normal(size=(3, BATCH, 2)).astype(np.float32)
    c_0 = rng.normal(size=(3, BATCH, UNITS)).astype(np.float32)
    state = jaxlstm.from_torch_state(h_0, c_0, params)
    np.testing.assert_array_equal(state[0].backward.h, h_0[1])  # row = layer * directions + direction
    np.testing.assert_array_equal(state[1].c, c_0[2])
    back = jaxlstm.torch_state(state)
    np.testing.assert_array_equal(back.h_n, h_0)
    np.testing.assert_array_equal(back.c_n, c_0)
    with pytest.raises(ValueError, match=r"h_0: expected shape \[num_layers \* directions = 3"):
        jaxlstm.from_torch_state(h_0[:2], c_0, params)
    with pytest.raises(TypeError, match="state: expected a tuple of per-layer states"):
        jaxlstm.torch_state(state[1])


def test_stack_argument_errors(xs) -> None:
    rng = np.random.default_rng(15)
    bidir, top = random_bidirectional(rng, FEATURES, UNITS), random_lstm(rng, 2 * UNITS, UNITS)
    with pytest.raises(ValueError, match="params\\[1\\]: reads 10 features but layer 0 outputs 5"):
        jaxlstm.stacked_lstm((bidir, top), xs, merge_mode="ave")
    with pytest.raises(ValueError, match="merge_mode: a stack passes one merged sequence"):
        jaxlstm.stacked_lstm((bidir, top), xs, merge_mode=None)
    with pytest.raises(ValueError, match="merge_mode: expected one of"):
        jaxlstm.stacked_lstm((random_lstm(rng, FEATURES, UNITS),), xs, merge_mode="max")
    with pytest.raises(
        TypeError, match="params: expected a tuple of per-layer params, found a single LSTMParams"
    ):
        jaxlstm.stacked_lstm(top, xs)
    with pytest.raises(ValueError, match="initial_state: expected 2 per-layer states"):
        jaxlstm.stacked_lstm((bidir, top), xs, (jaxlstm.zero_state(top),))
    with pytest.raises(TypeError, match=r"initial_state\[0\]: expected BidirectionalState"):
        jaxlstm.stacked_lstm((bidir, top), xs, (jaxlstm.zero_state(top), jaxlstm.zero_state(top)))
    with pytest.raises(ValueError, match="xs: expected 4 features"):
        jaxlstm.stacked_lstm((bidir, top), xs[..., :3])


def test_old_dropout_spelling_still_works_with_a_deprecation_warning(xs) -> None:
    params = jaxlstm.init_stack(jax.random.key(0), 4, 3, num_layers=2)
    key = jax.random.key(1)
    new = jaxlstm.stacked_lstm(params, xs, inter_layer_dropout=0.5, deterministic=False, key=key)
    with pytest.warns(DeprecationWarning, match="inter_layer_dropout"):
        old = jaxlstm.stacked_lstm(params, xs, dropout=0.5, deterministic=False, key=key)
    np.testing.assert_array_equal(old.sequence, new.sequence)
    with pytest.raises(TypeError, match="pass only inter_layer_dropout"):
        jaxlstm.stacked_lstm(params, xs, dropout=0.5, inter_layer_dropout=0.2, deterministic=True)
