"""The float64 variant reference (tests/_variant_reference.py) against real systems.

Its plain path against ``jaxlstm.lstm`` in float64 (values and gradients) and Keras 3; its per-gate
recurrent dropout against Keras 3's LSTM in training with a fixed seed; its TF Addons layer-norm flag
against the numbers Addons' own test publishes and a fixture made once by TF Addons; its resets against Haiku's ``ResetCore``; each
variant's equation against a hand-written scalar evaluation. Where no peer has a variant (zoneout,
weight drop, peepholes, CIFG) the checks are the ones the equations imply and the library can confirm.
"""

from __future__ import annotations

import itertools
import math
import os

import _variant_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm

I, H, T = 3, 4, 6
TIGHT = 1e-10  # float64 vs float64
F32 = 2e-6  # a float32 peer vs the float64 reference


def random_state(rng, batch, out, units):
    return rng.normal(size=(*batch, out)), rng.normal(size=(*batch, units))


def library(params, xs, h0, c0, **kwargs):
    """``jaxlstm.lstm`` in float64 (inside ``jax.enable_x64``), as NumPy arrays."""
    with jax.enable_x64(True):
        p = jaxlstm.LSTMParams(*(None if a is None else jnp.asarray(a, jnp.float64) for a in params[:4]))
        state = jaxlstm.LSTMState(jnp.asarray(h0, jnp.float64), jnp.asarray(c0, jnp.float64))
        out = jaxlstm.lstm(p, jnp.asarray(xs, jnp.float64), state, dtype=jnp.float64, **kwargs)
        return np.asarray(out.sequence), np.asarray(out.state.h), np.asarray(out.state.c)


def assert_close(ours, expected, atol) -> None:
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


# ----------------------------------------------------------------------------------------------
# The plain path against the library
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (2, 3)], ids=["no-batch", "2-axes"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("which", ["plain", "mask", "mask-zeros", "lengths", "projection"])
def test_plain_equals_library_float64(batch, reverse, which) -> None:
    rng = np.random.default_rng(0)
    proj = 2 if which == "projection" else None
    params = ref.init_variant_params(rng, I, H, ref.Variant(), proj_size=proj)
    xs = rng.normal(size=(*batch, T, I))
    h0, c0 = random_state(rng, batch, H if proj is None else proj, H)
    kwargs: dict = {}
    if which.startswith("mask"):
        kwargs = dict(mask=rng.random((*batch, T)) < 0.6, zero_output_for_mask=which == "mask-zeros")
    if which == "lengths":
        kwargs = dict(lengths=rng.integers(0, T + 1, size=batch))
    for keep_order in [False, True] if reverse else [False]:
        expected = library(params, xs, h0, c0, reverse=reverse, keep_order=keep_order, **kwargs)
        ours = ref.lstm(params, xs, h0, c0, reverse=reverse, keep_order=keep_order, **kwargs)
        assert_close(ours, expected, TIGHT)


def test_shared_recurrent_mask_and_weight_drop_equal_library() -> None:
    rng = np.random.default_rng(1)
    params = ref.init_variant_params(rng, I, H, ref.Variant())
    xs, (h0, c0) = rng.normal(size=(2, T, I)), random_state(rng, (2,), H, H)
    keep = (rng.random((2, H)) < 0.7) / 0.7
    expected = library(params, xs, h0, c0, recurrent_dropout_mask=keep)
    assert_close(ref.lstm(params, xs, h0, c0, recurrent_mask=keep), expected, TIGHT)
    # Weight drop is the plain LSTM with recurrent_kernel * M: one mask per call, shared by the batch.
    drop = (rng.random(params.recurrent_kernel.shape) < 0.6) / 0.6
    dropped = params._replace(recurrent_kernel=params.recurrent_kernel * drop)
    expected = library(dropped, xs, h0, c0)
    assert_close(ref.lstm(params, xs, h0, c0, weight_drop_mask=drop), expected, TIGHT)


def test_numeric_gradients_equal_library_gradients() -> None:
    """``numeric_grad`` of the reference (used for every variant's gradients) meets ``jax.grad``."""
    rng = np.random.default_rng(2)
    batch, steps = (2,), 4
    params = ref.init_variant_params(rng, 2, 3, ref.Variant())
    xs, (h0, c0) = rng.normal(size=(*batch, steps, 2)), random_state(rng, batch, 3, 3)
    mask = np.array([[True, False, True, True], [True, True, True, False]])
    wy, wh, wc = (
        rng.normal(size=(*batch, steps, 3)),
        rng.normal(size=(*batch, 3)),
        rng.normal(size=(*batch, 3)),
    )

    def ref_loss(kernel, recurrent_kernel, bias, xs, h0, c0):
        p = ref.RefParams(kernel, recurrent_kernel, bias)
        ys, h, c = ref.lstm(p, xs, h0, c0, mask=mask, reverse=True)
        return float((ys * wy).sum() + (h * wh).sum() + (c * wc).sum())

    args = dict(
        kernel=params.kernel, recurrent_kernel=params.recurrent_kernel, bias=params.bias, xs=xs, h0=h0, c0=c0
    )
    numeric = ref.numeric_grad(ref_loss, args)
    with jax.enable_x64(True):

        def lib_loss(a):
            p = jaxlstm.LSTMParams(a["kernel"], a["recurrent_kernel"], a["bias"])
            out = jaxlstm.lstm(p, a["xs"], jaxlstm.LSTMState(a["h0"], a["c0"]), mask=mask, reverse=True)
            return (out.sequence * wy).sum() + (out.state.h * wh).sum() + (out.state.c * wc).sum()

        exact = jax.grad(lib_loss)({k: jnp.asarray(v, jnp.float64) for k, v in args.items()})
    for name in args:
        np.testing.assert_allclose(numeric[name], exact[name], atol=1e-8, rtol=1e-7, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Keras 3: the plain layer, and recurrent dropout as Keras draws it
# ----------------------------------------------------------------------------------------------


def keras_lstm(params, **kwargs):
    keras = require("keras")
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True, **kwargs)
    layer.build((None, T, I))
    layer.set_weights([np.asarray(a, np.float32) for a in params[:3]])
    return layer


@pytest.mark.parametrize("go_backwards", [False, True])
def test_plain_equals_keras_with_mask_and_initial_state(go_backwards) -> None:
    rng = np.random.default_rng(3)
    params = ref.init_variant_params(rng, I, H, ref.Variant())
    xs = rng.normal(size=(3, T, I)).astype(np.float32)
    h0, c0 = (a.astype(np.float32) for a in random_state(rng, (3,), H, H))
    mask = rng.random((3, T)) < 0.6
    layer = keras_lstm(params, go_backwards=go_backwards)
    ys, h, c = layer(xs, initial_state=[h0, c0], mask=mask)
    ours = ref.lstm(params, xs, h0, c0, mask=mask, reverse=go_backwards)
    assert_close(ours, (ys, h, c), F32)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_keras_recurrent_dropout_is_one_mask_per_gate_per_call(dropout) -> None:
    """Keras 3, ``recurrent_dropout > 0``: 4 masks (i, f, c, o) per call, for h and (if dropout > 0)
    for the input, drawn from the layer's SeedGenerator in that order; ``ref.keras_masks`` states how."""
    rng = np.random.default_rng(4)
    seed, rate, batch = 1234, 0.4, 3
    params = ref.init_variant_params(rng, I, H, ref.Variant())
    xs = rng.normal(size=(batch, T, I)).astype(np.float32)
    layer = keras_lstm(params, dropout=dropout, recurrent_dropout=rate, seed=seed)
    n_input = 4 if dropout else 0
    for call in range(2):  # the second call draws the next masks: one draw per call, not per step
        ys, h, c = layer(xs, training=True)
        first = call * (n_input + 4)
        rec = np.moveaxis(ref.keras_masks(seed, rate, (batch, H), first_draw=first + n_input, count=4), 0, 1)
        inp = None
        if dropout:
            inp = np.moveaxis(ref.keras_masks(seed, dropout, (batch, I), first_draw=first, count=4), 0, 1)
        ours = ref.lstm(params, xs, input_mask=inp, recurrent_mask=rec, per_gate_masks=True)
        assert_close(ours, (ys, h, c), F32)
        # One shared mask (today's jaxlstm recurrent_dropout_mask) is a different model.
        shared = ref.lstm(params, xs, input_mask=None if inp is None else inp[:, 0], recurrent_mask=rec[:, 0])
        assert np.abs(shared[0] - np.asarray(ys)).max() > 1e-3
    # Evaluation: no mask at all (the masks are still drawn, and only applied in training).
    ys, h, c = layer(xs, training=False)
    assert_close(ref.lstm(params, xs), (ys, h, c), F32)


def test_layer_norm_equals_keras_layer_normalization() -> None:
    keras = require("keras")
    rng = np.random.default_rng(5)
    a = rng.normal(size=(5, 16)).astype(np.float32) * 3 + 1
    gain, offset = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    for eps in (1e-3, 1e-5):
        norm = keras.layers.LayerNormalization(epsilon=eps)
        norm.build((None, 16))
        norm.set_weights([gain, offset])
        np.testing.assert_allclose(ref.layer_norm(ref.f64(a), gain, offset, eps), norm(a), atol=F32 * 3)


# ----------------------------------------------------------------------------------------------
# TF Addons LayerNormLSTMCell: its own published test numbers
# ----------------------------------------------------------------------------------------------


def test_addons_layer_norm_cell_published_numbers() -> None:
    """Addons' test_cell_output: 2 units, x = ones [2] (and [3]), every weight 0.5, norm_epsilon 1e-12,
    h0 = [0.2, 0.3], c0 = [0, 0.1] -> h = [-0.47406167, 0.47406143], carried c = [-1, 1]."""
    for inputs in (2, 3):
        params = ref.RefParams(
            kernel=np.full((inputs, 8), 0.5), recurrent_kernel=np.full((2, 8), 0.5), bias=np.full(8, 0.5)
        )
        addons = ref.Variant(layer_norm=True, carry_normalised=True, epsilon=1e-12)
        h, c = ref.step(params, np.array([0.2, 0.3]), np.array([0.0, 0.1]), np.ones(inputs), addons)
        np.testing.assert_allclose(h, [-0.47406167, 0.47406143], rtol=1e-5)
        np.testing.assert_allclose(c, [-1.0, 1.0], rtol=1e-5)
        # Ba et al. emit the same h but carry the unnormalised cell f*c0 + i*g.
        ba = ref.Variant(layer_norm=True, epsilon=1e-12)
        h_ba, c_ba = ref.step(params, np.array([0.2, 0.3]), np.array([0.0, 0.1]), np.ones(inputs), ba)
        s = 1 / (1 + math.exp(-0.5))
        np.testing.assert_allclose(h_ba, h, rtol=1e-9)
        np.testing.assert_allclose(
            c_ba, [s * 0.0 + s * math.tanh(0.5), s * 0.1 + s * math.tanh(0.5)], rtol=1e-12
        )


ADDONS = os.path.join(os.path.dirname(__file__), "fixtures", "addons", "cells.npz")


@pytest.fixture(scope="module")
def addons():
    with np.load(ADDONS) as f:  # made once by tests/fixtures/make_addons_files.py (TF 2.15.1, Addons 0.23.0)
        return dict(f)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_addons_layer_norm_cell_fixture(addons, go_backwards) -> None:
    """TF Addons LayerNormLSTMCell (norm_epsilon 1e-3, random gains and offsets) under keras RNN with
    a mask and an initial state: the reference with the carried-normalised flag reproduces it."""
    w = lambda name: addons[f"layer_norm/{name}"]
    params = ref.RefParams(
        w("kernel"), w("recurrent_kernel"), w("bias"),
        ln_x_gain=w("kernel_norm/gamma"), ln_x_offset=w("kernel_norm/beta"),
        ln_h_gain=w("recurrent_norm/gamma"), ln_h_offset=w("recurrent_norm/beta"),
        ln_c_gain=w("state_norm/gamma"), ln_c_offset=w("state_norm/beta"),
    )  # fmt: skip
    direction = "backward" if go_backwards else "forward"
    expected = [addons[f"layer_norm/{direction}/{k}"] for k in ("ys", "h", "c")]
    run = lambda variant: ref.lstm(
        params, addons["xs"], addons["h0"], addons["c0"], variant, mask=addons["mask"], reverse=go_backwards
    )
    assert_close(run(ref.Variant(layer_norm=True, carry_normalised=True, epsilon=1e-3)), expected, 1e-5)
    ba = run(ref.Variant(layer_norm=True, epsilon=1e-3))  # Ba et al.: another model
    assert np.abs(ba[0] - expected[0]).max() > 1e-2


@pytest.mark.parametrize("go_backwards", [False, True])
def test_addons_peephole_cell_fixture(addons, go_backwards) -> None:
    w = lambda name: addons[f"peephole/{name}"]
    params = ref.RefParams(
        w("kernel"), w("recurrent_kernel"), w("bias"),
        peep_i=w("input_gate_peephole_weights"), peep_f=w("forget_gate_peephole_weights"),
        peep_o=w("output_gate_peephole_weights"),
    )  # fmt: skip
    direction = "backward" if go_backwards else "forward"
    expected = [addons[f"peephole/{direction}/{k}"] for k in ("ys", "h", "c")]
    ours = ref.lstm(
        params, addons["xs"], addons["h0"], addons["c0"], ref.Variant(peepholes=True),
        mask=addons["mask"], reverse=go_backwards,
    )  # fmt: skip
    assert_close(ours, expected, 1e-5)


# ----------------------------------------------------------------------------------------------
# Haiku ResetCore
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("initial", ["zeros", "nonzero"])
def test_resets_equal_haiku_reset_core(reverse, initial) -> None:
    """``hk.ResetCore(hk.LSTM)`` under ``hk.dynamic_unroll``: at a True step the state becomes the
    core's initial state (zeros, whatever state the unroll started from) before the step."""
    hk = require("haiku")
    from jaxlstm.interop.haiku import from_haiku

    batch, steps = 3, 7
    rng = np.random.default_rng(6)
    xs = rng.normal(size=(steps, batch, I)).astype(np.float32)  # Haiku is time-major
    resets = rng.random((steps, batch)) < 0.3
    resets[0, 0] = resets[3, 1] = True
    h0, c0 = (a.astype(np.float32) for a in random_state(rng, (batch,), H, H))
    if initial == "zeros":
        h0, c0 = np.zeros_like(h0), np.zeros_like(c0)

    def net(xs, resets):
        core = hk.ResetCore(hk.LSTM(H))
        return hk.dynamic_unroll(core, (xs, resets), hk.LSTMState(h0, c0), reverse=reverse)

    f = hk.transform(net)
    hk_params = f.init(jax.random.key(0), xs, resets)
    hk_params = jax.tree_util.tree_map(
        lambda a: a + 0.3 * rng.normal(size=a.shape).astype(np.float32), hk_params
    )
    ys, state = f.apply(hk_params, None, xs, resets)
    params = from_haiku(hk_params)
    # dynamic_unroll(reverse=True) returns outputs in input order: keep_order.
    ours = ref.lstm(
        params, np.swapaxes(xs, 0, 1), h0, c0, resets=resets.T, reverse=reverse, keep_order=reverse
    )
    assert_close(ours, (np.swapaxes(np.asarray(ys), 0, 1), state.hidden, state.cell), F32)
    # And the library itself, time-major as Haiku: resets= is ResetCore.
    out = jaxlstm.lstm(
        params, xs, jaxlstm.LSTMState(h0, c0), resets=resets, time_major=True, reverse=reverse,
        keep_order=reverse,
    )  # fmt: skip
    assert_close((out.sequence, out.state.h, out.state.c), (ys, state.hidden, state.cell), F32)
    no_resets = ref.lstm(params, np.swapaxes(xs, 0, 1), h0, c0, reverse=reverse, keep_order=reverse)
    assert np.abs(no_resets[0] - ours[0]).max() > 1e-2  # the resets mattered


def test_reset_restarts_from_the_reset_state_like_a_fresh_call() -> None:
    """After a reset at t the outputs are those of the library run on xs[t:] from the reset state,
    and masks/lengths compose: a masked reset step holds the reset state."""
    rng = np.random.default_rng(7)
    params = ref.init_variant_params(rng, I, H, ref.Variant())
    xs, (h0, c0) = rng.normal(size=(T, I)), random_state(rng, (), H, H)
    resets = np.zeros(T, bool)
    resets[3] = True
    ys, _, _ = ref.lstm(params, xs, h0, c0, resets=resets, reset_h=h0, reset_c=c0)
    tail = library(params, xs[3:], h0, c0)
    np.testing.assert_allclose(ys[3:], tail[0], atol=TIGHT)
    mask = np.ones(T, bool)
    mask[3] = False
    ys_m, _, _ = ref.lstm(params, xs, h0, c0, resets=resets, reset_h=h0, reset_c=c0, mask=mask)
    np.testing.assert_allclose(ys_m[3], h0, atol=TIGHT)  # the held (reset) state's h
    np.testing.assert_allclose(ys_m[4:], library(params, xs[4:], h0, c0)[0], atol=TIGHT)
    # No gradient reaches the inputs before a reset from anything after it.
    loss = lambda xs: float(ref.lstm(params, xs, h0, c0, resets=resets)[0][3:].sum())  # to zeros
    assert np.all(ref.numeric_grad(loss, dict(xs=xs))["xs"][:3] == 0.0)


# ----------------------------------------------------------------------------------------------
# Each variant's equation, by hand, with one unit (no splits, no broadcasting to get wrong)
# ----------------------------------------------------------------------------------------------

sig = lambda z: 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("cifg", [False, True])
@pytest.mark.parametrize("peepholes", [False, True])
def test_one_unit_step_by_hand(cifg, peepholes) -> None:
    rng = np.random.default_rng(8)
    variant = ref.Variant(cifg=cifg, peepholes=peepholes)
    p = ref.init_variant_params(rng, 1, 1, variant)
    x, h, c = 0.7, -0.4, 0.9
    z = [x * p.kernel[0, k] + h * p.recurrent_kernel[0, k] + p.bias[k] for k in range(variant.gates)]
    z_i, z_f, z_c, z_o = ([None] if cifg else []) + z
    w = lambda name: float(getattr(p, name)[0]) if peepholes else 0.0
    f = sig(z_f + w("peep_f") * c)
    i = 1 - f if cifg else sig(z_i + (w("peep_i") if not cifg else 0.0) * c)
    c_new = f * c + i * math.tanh(z_c)
    h_new = sig(z_o + w("peep_o") * c_new) * math.tanh(c_new)
    ours = ref.step(p, np.array([h]), np.array([c]), np.array([x]), variant)
    np.testing.assert_allclose(ours, ([h_new], [c_new]), rtol=1e-13)


@pytest.mark.parametrize("carry_normalised", [False, True])
def test_layer_norm_step_by_hand(carry_normalised) -> None:
    rng = np.random.default_rng(9)
    variant = ref.Variant(layer_norm=True, carry_normalised=carry_normalised, epsilon=1e-3)
    p = ref.init_variant_params(rng, 2, 2, variant)
    x, h, c = [0.3, -1.2], [0.5, 0.1], [-0.2, 0.8]

    def ln(v, g, b):
        mean = sum(v) / len(v)
        var = sum((e - mean) ** 2 for e in v) / len(v)
        return [g[k] * (v[k] - mean) / math.sqrt(var + 1e-3) + b[k] for k in range(len(v))]

    a_x = [sum(x[r] * p.kernel[r, k] for r in range(2)) for k in range(8)]
    a_h = [sum(h[r] * p.recurrent_kernel[r, k] for r in range(2)) for k in range(8)]
    z = [
        u + v + b
        for u, v, b in zip(ln(a_h, p.ln_h_gain, p.ln_h_offset), ln(a_x, p.ln_x_gain, p.ln_x_offset), p.bias)
    ]
    c_new = [sig(z[2 + k]) * c[k] + sig(z[k]) * math.tanh(z[4 + k]) for k in range(2)]
    n = ln(c_new, p.ln_c_gain, p.ln_c_offset)
    h_new = [sig(z[6 + k]) * math.tanh(n[k]) for k in range(2)]
    ours = ref.step(p, np.array(h), np.array(c), np.array(x), variant)
    np.testing.assert_allclose(ours, (h_new, n if carry_normalised else c_new), rtol=1e-12)


def test_zoneout_training_masks_and_evaluation_expectation() -> None:
    """d = 0 is the plain LSTM, d = 1 holds the state; the evaluation form (d = rate) is the mean of
    the training form over all 2^(2H) Bernoulli(rate) draws of one step."""
    rng = np.random.default_rng(10)
    units, rate_c, rate_h = 2, 0.3, 0.6
    params = ref.init_variant_params(rng, I, units, ref.Variant())
    xs, (h0, c0) = rng.normal(size=(T, I)), random_state(rng, (), units, units)
    zeros = np.zeros((T, units))
    plain = library(params, xs, h0, c0)
    assert_close(ref.lstm(params, xs, h0, c0, zoneout_c=zeros, zoneout_h=zeros), plain, TIGHT)
    ys, h, c = ref.lstm(params, xs, h0, c0, zoneout_c=zeros + 1, zoneout_h=zeros + 1)
    assert_close((ys, h, c), (np.broadcast_to(h0, ys.shape), h0, c0), TIGHT)
    x = xs[0]
    mean_h, mean_c = np.zeros(units), np.zeros(units)
    for bits in itertools.product([0, 1], repeat=2 * units):
        dc, dh = np.array(bits[:units], float), np.array(bits[units:], float)
        weight = np.prod(np.where(dc == 1, rate_c, 1 - rate_c)) * np.prod(
            np.where(dh == 1, rate_h, 1 - rate_h)
        )
        h1, c1 = ref.step(params, h0, c0, x, zoneout_c=dc, zoneout_h=dh)
        mean_h, mean_c = mean_h + weight * h1, mean_c + weight * c1
    eval_h, eval_c = ref.step(
        params, h0, c0, x, zoneout_c=np.full(units, rate_c), zoneout_h=np.full(units, rate_h)
    )
    np.testing.assert_allclose((eval_h, eval_c), (mean_h, mean_c), atol=1e-12)
    # h~ is o * tanh(c~) of the candidate cell, not of the zoned-out c (Krueger et al., section 3.2).
    h_c_only, _ = ref.step(params, h0, c0, x, zoneout_c=np.ones(units))
    h_plain, _ = ref.step(params, h0, c0, x)
    np.testing.assert_allclose(h_c_only, h_plain, atol=TIGHT)


@pytest.mark.parametrize("reverse", [False, True])
def test_neutral_variants_equal_library_over_batch_axes_and_lengths(reverse) -> None:
    """Zero peepholes, zero zoneout, an all-ones weight drop, four identical per-gate masks and
    all-False resets are the plain LSTM: the variant plumbing (per-gate splits, mask broadcasting over
    two batch axes, per-step indexing under reverse and lengths) against the library."""
    rng = np.random.default_rng(12)
    batch = (2, 3)
    params = ref.init_variant_params(rng, I, H, ref.Variant(peepholes=True))
    zero_peep = params._replace(peep_i=0 * params.peep_i, peep_f=0 * params.peep_f, peep_o=0 * params.peep_o)
    xs, (h0, c0) = rng.normal(size=(*batch, T, I)), random_state(rng, batch, H, H)
    lengths = rng.integers(0, T + 1, size=batch)
    keep = (rng.random((*batch, H)) < 0.7) / 0.7
    plain = ref.RefParams(*params[:3])
    expected = library(plain, xs, h0, c0, lengths=lengths, reverse=reverse, recurrent_dropout_mask=keep)
    ours = ref.lstm(
        zero_peep, xs, h0, c0, ref.Variant(peepholes=True), lengths=lengths, reverse=reverse,
        recurrent_mask=np.stack([keep] * 4, axis=-2), per_gate_masks=True,
        weight_drop_mask=np.ones(params.recurrent_kernel.shape), resets=np.zeros((*batch, T), bool),
        zoneout_c=np.zeros((*batch, T, H)), zoneout_h=np.zeros((*batch, T, H)),
    )  # fmt: skip
    assert_close(ours, expected, TIGHT)


def test_zoneout_masks_travel_with_their_step_under_reverse() -> None:
    rng = np.random.default_rng(13)
    params = ref.init_variant_params(rng, I, H, ref.Variant())
    xs, (h0, c0) = rng.normal(size=(T, I)), random_state(rng, (), H, H)
    dc, dh = (rng.random((2, T, H)) < 0.5).astype(float)
    backward = ref.lstm(params, xs, h0, c0, reverse=True, zoneout_c=dc, zoneout_h=dh)
    flipped = ref.lstm(params, xs[::-1], h0, c0, zoneout_c=dc[::-1], zoneout_h=dh[::-1])
    assert_close(backward, flipped, TIGHT)
    # and they matter: the same masks on the unflipped steps give another result
    unflipped = ref.lstm(params, xs[::-1], h0, c0, zoneout_c=dc, zoneout_h=dh)
    assert np.abs(unflipped[0] - flipped[0]).max() > 1e-3


def test_variant_shape_checks_name_the_weight() -> None:
    rng = np.random.default_rng(11)
    p = ref.init_variant_params(rng, I, H, ref.Variant())
    with pytest.raises(ValueError, match="peep"):
        ref.step(p, np.zeros(H), np.zeros(H), np.zeros(I), ref.Variant(peepholes=True))
    with pytest.raises(ValueError, match="kernel"):
        ref.step(p._replace(kernel=p.kernel[:, :-1]), np.zeros(H), np.zeros(H), np.zeros(I))
    cifg = ref.init_variant_params(rng, I, H, ref.Variant(cifg=True, peepholes=True))
    assert cifg.kernel.shape == (I, 3 * H) and cifg.peep_i is None
