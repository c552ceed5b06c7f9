"""The LSTM variants of issue 15 in ``jaxlstm.lstm`` / ``step`` / ``init``, against real systems.

Values and gradients against the independent float64 NumPy oracle (tests/_variant_reference.py),
with masks, lengths, reverse and two batch axes; TF Addons' LayerNormLSTMCell and PeepholeLSTMCell
from the fixture TF Addons wrote once (Haiku's ``ResetCore``, run for real, is compared with both the
oracle and ``lstm`` in test_variant_reference.py); Keras 3's per-gate dropout
masks; zoneout's training masks by statistics with a fixed key. The plain path is covered by the
existing tests (test_core, test_fast, test_native, test_lengths, test_variant_reference), unchanged.
"""

from __future__ import annotations

import os

import _variant_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm.fast import FastConfig
from jaxlstm.pytrees import LayerNormParams, PeepholeParams

I, H, T = 3, 4, 6
TIGHT = 1e-10  # float64 library vs float64 oracle
F32 = 1e-5  # a float32 run vs a float32 peer


def lib_params(p, dtype=jnp.float64) -> jaxlstm.LSTMParams:
    """The oracle's ``RefParams`` (or a dict of its fields) as ``LSTMParams``."""
    get = (lambda name: p.get(name)) if isinstance(p, dict) else (lambda name: getattr(p, name))
    a = lambda name: None if get(name) is None else jnp.asarray(get(name), dtype)  # noqa: E731
    ln = None
    if get("ln_x_gain") is not None:
        ln = LayerNormParams(*(a(f"ln_{field}") for field in LayerNormParams._fields))
    peep = None if get("peep_f") is None else PeepholeParams(a("peep_i"), a("peep_f"), a("peep_o"))
    return jaxlstm.LSTMParams(a("kernel"), a("recurrent_kernel"), a("bias"), a("projection"), ln, peep)


def ref_params(a: dict) -> ref.RefParams:
    return ref.RefParams(**{field: a.get(field) for field in ref.RefParams._fields})


def library(params, xs, h0, c0, **kwargs):
    """``jaxlstm.lstm`` in float64 as NumPy ``(ys, h, c)``."""
    with jax.enable_x64(True):
        state = jaxlstm.LSTMState(jnp.asarray(h0, jnp.float64), jnp.asarray(c0, jnp.float64))
        out = jaxlstm.lstm(lib_params(params), jnp.asarray(xs, jnp.float64), state, **kwargs)
        return np.asarray(out.sequence), np.asarray(out.state.h), np.asarray(out.state.c)


def assert_close(ours, expected, atol) -> None:
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def contract_masks(key, rate, batch, steps, size):
    """Zoneout's training masks as the contract states them: ``[*batch, T, size]``, step t drawing
    ``bernoulli(fold_in(key, t), rate, (*batch, size))`` (one call per step, not the library's vmap).
    Drawn in float64 mode like the float64 library runs here (jax's bernoulli compares a uniform of
    the default float width, so its bits depend on that mode)."""
    with jax.enable_x64(True):
        draws = [jax.random.bernoulli(jax.random.fold_in(key, t), rate, (*batch, size)) for t in range(steps)]
        return np.stack([np.asarray(d) for d in draws], axis=len(batch)).astype(np.float64)


# Each variant: the oracle's Variant and the library keywords that mean the same.
VARIANTS = {
    "layer_norm": (ref.Variant(layer_norm=True, epsilon=1e-2), dict(layer_norm_epsilon=1e-2)),
    "layer_norm_addons": (
        ref.Variant(layer_norm=True, carry_normalised=True),
        dict(layer_norm_carry="normalised"),
    ),
    "peepholes": (ref.Variant(peepholes=True), {}),
    "cifg": (ref.Variant(cifg=True), {}),
    "ln_x_cifg": (ref.Variant(layer_norm=True, cifg=True), {}),
    "peepholes_x_cifg": (ref.Variant(peepholes=True, cifg=True), {}),
    "ln_x_peepholes": (
        ref.Variant(layer_norm=True, carry_normalised=True, peepholes=True),
        dict(layer_norm_carry="normalised"),
    ),
}


# ----------------------------------------------------------------------------------------------
# Values against the oracle
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_equals_reference(name) -> None:
    variant, kwargs = VARIANTS[name]
    rng = np.random.default_rng(sorted(VARIANTS).index(name))
    proj = 2 if name in ("cifg", "ln_x_peepholes") else None
    out = H if proj is None else proj
    p = ref.init_variant_params(rng, I, H, variant, proj_size=proj)
    batch = (2, 3)
    xs = rng.normal(size=(*batch, T, I))
    h0, c0 = rng.normal(size=(*batch, out)), rng.normal(size=(*batch, H))
    mask = rng.random((*batch, T)) < 0.7
    lengths = rng.integers(0, T + 1, size=batch)
    for reverse, keep_order in [(False, False), (True, True)]:
        expected = ref.lstm(
            p, xs, h0, c0, variant, mask=mask, lengths=lengths, reverse=reverse, keep_order=keep_order
        )
        ours = library(
            p, xs, h0, c0, mask=mask, lengths=lengths, reverse=reverse, keep_order=keep_order, **kwargs
        )
        assert_close(ours, expected, TIGHT)
    if name not in ("layer_norm_addons", "peepholes_x_cifg"):
        return
    # No batch axis, reversed without lengths, outputs in processing order.
    expected = ref.lstm(p, xs[0, 0], h0[0, 0], c0[0, 0], variant, reverse=True)
    assert_close(library(p, xs[0, 0], h0[0, 0], c0[0, 0], reverse=True, **kwargs), expected, TIGHT)


def test_step_runs_every_variant_like_lstm() -> None:
    """``jaxlstm.step`` takes the variant from the params (and its two layer-norm keywords)."""
    rng = np.random.default_rng(20)
    for variant, kwargs in (VARIANTS["ln_x_peepholes"], VARIANTS["peepholes_x_cifg"], VARIANTS["layer_norm"]):
        p = ref.init_variant_params(rng, I, H, variant)
        xs, h, c = rng.normal(size=(2, T, I)), rng.normal(size=(2, H)), rng.normal(size=(2, H))
        expected = ref.lstm(p, xs, h, c, variant)
        with jax.enable_x64(True):
            state = jaxlstm.LSTMState(jnp.asarray(h), jnp.asarray(c))
            for t in range(T):
                state, y = jaxlstm.step(lib_params(p), state, jnp.asarray(xs[:, t]), **kwargs)
                np.testing.assert_allclose(y, expected[0][:, t], atol=TIGHT, rtol=0)
        assert_close((state.h, state.c), expected[1:], TIGHT)


@pytest.mark.long
def test_regularisers_equal_reference_with_projection_and_reverse() -> None:
    """Zoneout (training masks from the key as the contract states them, and evaluation), per-gate
    and shared dropout masks, weight drop; zoneout with a projection acts on the projected h."""
    rng = np.random.default_rng(21)
    batch, proj = (2, 3), 2
    p = ref.init_variant_params(rng, I, H, ref.Variant(), proj_size=proj)
    xs, h0, c0 = (
        rng.normal(size=(*batch, T, I)),
        rng.normal(size=(*batch, proj)),
        rng.normal(size=(*batch, H)),
    )
    lengths = rng.integers(0, T + 1, size=batch)
    key = jax.random.key(5)
    key_c, key_h = jax.random.split(key)
    dc, dh = contract_masks(key_c, 0.3, batch, T, H), contract_masks(key_h, 0.2, batch, T, proj)
    # Reversed with lengths: each mask travels with its input step.
    expected = ref.lstm(p, xs, h0, c0, zoneout_c=dc, zoneout_h=dh, reverse=True, lengths=lengths)
    ours = library(p, xs, h0, c0, zoneout=(0.3, 0.2), zoneout_key=key, reverse=True, lengths=lengths)
    assert_close(ours, expected, TIGHT)
    # Evaluation: the expectation, d = z at every step.
    expected = ref.lstm(
        p, xs, h0, c0, zoneout_c=np.full((*batch, T, H), 0.3), zoneout_h=np.full((*batch, T, proj), 0.2)
    )
    assert_close(library(p, xs, h0, c0, zoneout=(0.3, 0.2)), expected, TIGHT)
    # One rate for both; only c.
    expected = ref.lstm(p, xs, h0, c0, zoneout_c=contract_masks(key_c, 0.25, batch, T, H))
    assert_close(library(p, xs, h0, c0, zoneout=(0.25, 0.0), zoneout_key=key), expected, TIGHT)
    # Dropout masks: per gate [..., G, n], shared [..., n], and weight drop [P, 4H].
    rec = (rng.random((*batch, 4, proj)) < 0.7) / 0.7
    inp = (rng.random((*batch, 4, I)) < 0.7) / 0.7
    drop = (rng.random((proj, 4 * H)) < 0.6) / 0.6
    expected = ref.lstm(
        p,
        xs,
        h0,
        c0,
        input_mask=inp,
        recurrent_mask=rec,
        per_gate_masks=True,
        weight_drop_mask=drop,
        reverse=True,
    )
    ours = library(
        p, xs, h0, c0, dropout_masks="per_gate", recurrent_dropout_mask=rec, input_dropout_mask=inp,
        weight_drop_mask=drop, reverse=True,
    )  # fmt: skip
    assert_close(ours, expected, TIGHT)
    expected = ref.lstm(
        p, xs, h0, c0, input_mask=inp[..., 0, :], recurrent_mask=rec[..., 1, :], weight_drop_mask=drop
    )
    ours = library(
        p,
        xs,
        h0,
        c0,
        input_dropout_mask=inp[..., 0, :],
        recurrent_dropout_mask=rec[..., 1, :],
        weight_drop_mask=drop,
    )
    assert_close(ours, expected, TIGHT)


def test_resets_equal_reference_with_mask_lengths_reverse_and_time_major() -> None:
    rng = np.random.default_rng(22)
    batch = (2, 3)
    p = ref.init_variant_params(rng, I, H, ref.Variant(peepholes=True))
    xs, h0, c0 = rng.normal(size=(*batch, T, I)), rng.normal(size=(*batch, H)), rng.normal(size=(*batch, H))
    mask, resets = rng.random((*batch, T)) < 0.7, rng.random((*batch, T)) < 0.35
    resets[0, 0, 2] = mask[0, 0, 2] = False  # a masked step without reset ...
    resets[0, 1, 3], mask[0, 1, 3] = True, False  # ... and a masked reset step (holds the reset state)
    lengths = rng.integers(0, T + 1, size=batch)
    rh, rc = rng.normal(size=H), rng.normal(size=H)  # one reset state for the whole batch
    variant = ref.Variant(peepholes=True)
    for reverse in (False, True):
        common = dict(mask=mask, lengths=lengths, reverse=reverse, keep_order=reverse)
        expected = ref.lstm(p, xs, h0, c0, variant, resets=resets, **common)  # resets to zeros
        assert_close(library(p, xs, h0, c0, resets=resets, **common), expected, TIGHT)
        expected = ref.lstm(p, xs, h0, c0, variant, resets=resets, reset_h=rh, reset_c=rc, **common)
        ours = library(
            p,
            xs,
            h0,
            c0,
            resets=resets,
            reset_state=jaxlstm.LSTMState(rh, rc),
            **common,
        )
        assert_close(ours, expected, TIGHT)
    # time_major: xs [T, ...], resets [T, ...], outputs [T, ...]
    expected = ref.lstm(p, xs, h0, c0, variant, resets=resets)
    ys, h, c = library(p, np.moveaxis(xs, -2, 0), h0, c0, resets=np.moveaxis(resets, -1, 0), time_major=True)
    assert_close((np.moveaxis(ys, 0, -2), h, c), expected, TIGHT)


# ----------------------------------------------------------------------------------------------
# Gradients against the oracle's central differences
# ----------------------------------------------------------------------------------------------

GRAD_BATCH, GRAD_T, GRAD_I, GRAD_H = (2,), 4, 2, 2


def check_gradients(variant, seed, lib_kwargs, ref_kwargs, *, proj=None, extra=None) -> None:
    """``jax.grad`` of the library (float64) against ``ref.numeric_grad`` of the oracle, for every
    weight, the inputs, the initial state and ``extra`` arrays; the two ``*_kwargs`` are functions
    of the argument dict."""
    rng = np.random.default_rng(seed)
    p = ref.init_variant_params(rng, GRAD_I, GRAD_H, variant, proj_size=proj)
    out = GRAD_H if proj is None else proj
    args = {k: v for k, v in p._asdict().items() if v is not None}
    args.update(
        xs=rng.normal(size=(*GRAD_BATCH, GRAD_T, GRAD_I)),
        h0=rng.normal(size=(*GRAD_BATCH, out)),
        c0=rng.normal(size=(*GRAD_BATCH, GRAD_H)),
        **(extra or {}),
    )
    wy = rng.normal(size=(*GRAD_BATCH, GRAD_T, out))
    wh, wc = rng.normal(size=(*GRAD_BATCH, out)), rng.normal(size=(*GRAD_BATCH, GRAD_H))

    def ref_loss(**a):
        ys, h, c = ref.lstm(ref_params(a), a["xs"], a["h0"], a["c0"], variant, **ref_kwargs(a))
        return float((ys * wy).sum() + (h * wh).sum() + (c * wc).sum())

    numeric = ref.numeric_grad(ref_loss, args)
    with jax.enable_x64(True):

        def lib_loss(a):
            state = jaxlstm.LSTMState(a["h0"], a["c0"])
            o = jaxlstm.lstm(lib_params(a), a["xs"], state, **lib_kwargs(a))
            return (o.sequence * wy).sum() + (o.state.h * wh).sum() + (o.state.c * wc).sum()

        exact = jax.grad(lib_loss)({k: jnp.asarray(v, jnp.float64) for k, v in args.items()})
    for name in args:
        np.testing.assert_allclose(exact[name], numeric[name], atol=1e-8, rtol=1e-6, err_msg=name)


MASK = np.array([[True, False, True, True], [True, True, True, False]])
LENGTHS = np.array([4, 3])


@pytest.mark.parametrize("name", ["layer_norm_addons", "ln_x_cifg", "peepholes_x_cifg", "ln_x_peepholes"])
def test_variant_gradients(name) -> None:
    variant, kwargs = VARIANTS[name]
    common = dict(mask=MASK, reverse=True)
    check_gradients(
        variant,
        30,
        lambda a: dict(common, **kwargs),
        lambda a: common,
        proj=2 if name == "ln_x_cifg" else None,
    )


@pytest.mark.long
def test_regulariser_gradients() -> None:
    """Zoneout in training (masks from the key) and evaluation, with a projection; per-gate masks
    (their own gradient too); weight drop."""
    key = jax.random.key(7)
    key_c, key_h = jax.random.split(key)
    dc = contract_masks(key_c, 0.4, GRAD_BATCH, GRAD_T, GRAD_H)
    dh = contract_masks(key_h, 0.4, GRAD_BATCH, GRAD_T, 1)
    common = dict(lengths=LENGTHS, reverse=True)
    check_gradients(
        ref.Variant(), 31,
        lambda a: dict(common, zoneout=0.4, zoneout_key=key),
        lambda a: dict(common, zoneout_c=dc, zoneout_h=dh),
        proj=1,
    )  # fmt: skip
    check_gradients(
        ref.Variant(cifg=True), 32,
        lambda a: dict(zoneout=(0.3, 0.6), mask=MASK),
        lambda a: dict(mask=MASK, zoneout_c=np.full((*GRAD_BATCH, GRAD_T, GRAD_H), 0.3),
                       zoneout_h=np.full((*GRAD_BATCH, GRAD_T, GRAD_H), 0.6)),
    )  # fmt: skip
    rng = np.random.default_rng(33)
    extra = dict(
        rec=(rng.random((*GRAD_BATCH, 4, GRAD_H)) < 0.7) / 0.7,
        inp=(rng.random((*GRAD_BATCH, 4, GRAD_I)) < 0.7) / 0.7,
        drop=(rng.random((GRAD_H, 4 * GRAD_H)) < 0.7) / 0.7,
    )
    check_gradients(
        ref.Variant(layer_norm=True), 34,
        lambda a: dict(dropout_masks="per_gate", recurrent_dropout_mask=a["rec"], input_dropout_mask=a["inp"],
                       weight_drop_mask=a["drop"]),
        lambda a: dict(per_gate_masks=True, recurrent_mask=a["rec"], input_mask=a["inp"], weight_drop_mask=a["drop"]),
        extra=extra,
    )  # fmt: skip


def test_reset_gradients_with_mask_lengths_and_reverse() -> None:
    """Resets x mask x lengths x reverse, gradients including the reset state's."""
    resets = np.array([[False, True, False, True], [False, False, True, False]])
    extra = dict(reset_h=np.array([0.3, -0.2]), reset_c=np.array([-0.5, 0.7]))
    for reverse in (False, True):
        common = dict(mask=MASK, lengths=LENGTHS, reverse=reverse, resets=resets)
        check_gradients(
            ref.Variant(peepholes=True), 35,
            lambda a: dict(common, reset_state=jaxlstm.LSTMState(a["reset_h"], a["reset_c"])),
            lambda a: dict(common, reset_h=a["reset_h"], reset_c=a["reset_c"]),
            extra=extra,
        )  # fmt: skip


def test_no_gradient_through_a_reset_and_all_false_resets_are_no_resets() -> None:
    rng = np.random.default_rng(36)
    params = jaxlstm.init(jax.random.key(0), I, H, layer_norm=True)
    xs = jnp.asarray(rng.normal(size=(2, T, I)), jnp.float32)
    state = jaxlstm.LSTMState(jnp.ones((2, H)), jnp.ones((2, H)))
    resets = np.zeros((2, T), bool)
    resets[:, 3] = True

    def loss(xs, state):
        return jaxlstm.lstm(params, xs, state, resets=resets).sequence[:, 3:].sum()

    g_xs, g_state = jax.grad(loss, argnums=(0, 1))(xs, state)
    assert np.all(np.asarray(g_xs[:, :3]) == 0.0) and np.all(np.abs(np.asarray(g_xs[:, 3:])) > 0)
    assert np.all(np.asarray(g_state.h) == 0.0) and np.all(np.asarray(g_state.c) == 0.0)
    # All-False resets: the same computation, bit for bit, on the reference scan.
    none = jaxlstm.lstm(params, xs, state, impl="scan")
    false = jaxlstm.lstm(params, xs, state, resets=np.zeros((2, T), bool))
    assert_close(jax.tree.leaves(false), jax.tree.leaves(none), 0.0)
    plain = jaxlstm.init(jax.random.key(0), I, H)
    fast_path = jaxlstm.lstm(plain, xs, state)  # no resets: the fast path
    assert_close(
        jax.tree.leaves(jaxlstm.lstm(plain, xs, state, resets=np.zeros((2, T), bool))),
        jax.tree.leaves(fast_path),
        1e-6,
    )


# ----------------------------------------------------------------------------------------------
# Peers: TF Addons (fixture), Keras 3 per-gate dropout
# ----------------------------------------------------------------------------------------------

ADDONS = os.path.join(os.path.dirname(__file__), "fixtures", "addons", "cells.npz")


@pytest.mark.parametrize("cell", ["layer_norm", "peephole"])
def test_addons_cells_reproduced_by_lstm(cell) -> None:
    """TF Addons LayerNormLSTMCell (norm_epsilon 1e-3, random gains/offsets; it carries the
    normalised cell) and PeepholeLSTMCell under keras RNN with a mask and an initial state, forward
    and go_backwards (tests/fixtures/make_addons_files.py, TF 2.15.1 + Addons 0.23.0)."""
    with np.load(ADDONS) as f:
        d = dict(f)
    w = lambda name: jnp.asarray(d[f"{cell}/{name}"])  # noqa: E731
    if cell == "layer_norm":
        ln = LayerNormParams(
            w("kernel_norm/gamma"), w("kernel_norm/beta"), w("recurrent_norm/gamma"), w("recurrent_norm/beta"),
            w("state_norm/gamma"), w("state_norm/beta"),
        )  # fmt: skip
        params = jaxlstm.LSTMParams(w("kernel"), w("recurrent_kernel"), w("bias"), layer_norm=ln)
        kwargs = dict(layer_norm_carry="normalised", layer_norm_epsilon=1e-3)
    else:
        peep = PeepholeParams(
            w("input_gate_peephole_weights"),
            w("forget_gate_peephole_weights"),
            w("output_gate_peephole_weights"),
        )
        params = jaxlstm.LSTMParams(w("kernel"), w("recurrent_kernel"), w("bias"), peepholes=peep)
        kwargs = {}
    state = jaxlstm.LSTMState(jnp.asarray(d["h0"]), jnp.asarray(d["c0"]))
    for direction, reverse in (("forward", False), ("backward", True)):
        out = jaxlstm.lstm(params, jnp.asarray(d["xs"]), state, d["mask"], reverse=reverse, **kwargs)
        expected = [d[f"{cell}/{direction}/{k}"] for k in ("ys", "h", "c")]
        assert_close((out.sequence, out.state.h, out.state.c), expected, F32)
    if cell == "layer_norm":  # Ba et al.'s raw carry is another model
        raw = jaxlstm.lstm(params, jnp.asarray(d["xs"]), state, d["mask"])
        assert np.abs(np.asarray(raw.sequence) - d["layer_norm/forward/ys"]).max() > 1e-2


def test_per_gate_dropout_masks_equal_keras_training() -> None:
    """Keras 3's LSTM with dropout and recurrent_dropout in training draws 4 input and 4 recurrent
    masks per call (ref.keras_masks): ``dropout_masks="per_gate"`` with those masks is that layer."""
    keras = require("keras")
    rng = np.random.default_rng(38)
    seed, rate, dropout, batch = 1234, 0.4, 0.3, 3
    p = ref.init_variant_params(rng, I, H, ref.Variant())
    xs = rng.normal(size=(batch, T, I)).astype(np.float32)
    layer = keras.layers.LSTM(
        H, return_sequences=True, return_state=True, dropout=dropout, recurrent_dropout=rate, seed=seed
    )
    layer.build((None, T, I))
    layer.set_weights([np.asarray(a, np.float32) for a in p[:3]])
    ys, h, c = layer(xs, training=True)
    inp = np.moveaxis(ref.keras_masks(seed, dropout, (batch, I), first_draw=0, count=4), 0, 1)
    rec = np.moveaxis(ref.keras_masks(seed, rate, (batch, H), first_draw=4, count=4), 0, 1)
    out = jaxlstm.lstm(
        lib_params(p, jnp.float32),
        xs,
        dropout_masks="per_gate",
        input_dropout_mask=inp,
        recurrent_dropout_mask=rec,
    )
    assert_close((out.sequence, out.state.h, out.state.c), (ys, h, c), 2e-6)


# ----------------------------------------------------------------------------------------------
# Zoneout's randomness
# ----------------------------------------------------------------------------------------------


def test_zoneout_masks_reproducible_independent_and_at_rate() -> None:
    """Read both zoneout masks off the library (the masks depend on the key and the shapes only).
    h: with a zero recurrent kernel and a closed forget gate the candidate h~_t depends on x_t only,
    so step t kept h exactly where ``h_t == h_{t-1}``. c: with an open forget gate and input gate,
    ``c_T = c_0 + sum of (1 - d_t) tanh(z_c(x_t))``, so the gradient of c_T with respect to x_t is
    exactly 0 where step t kept c. Over n = T*B*H = 10^5 draws each with z = 0.3 the kept fraction
    is within 4 sigma of z (sigma = sqrt(z(1-z)/n) = 0.00145), and the correlations between
    neighbouring steps, units and examples, and between the c and h masks, within 4/sqrt(n) of 0.
    The same key gives the same bits, another key others; evaluation (no key) is deterministic."""
    steps, batch, units, rate = 100, 20, 50, 0.3
    n, key = steps * batch * units, jax.random.key(42)
    k = jax.random.split(jax.random.key(11), 3)
    kernel = jax.random.normal(k[0], (1, 4 * units))
    xs = jax.random.normal(k[1], (batch, steps, 1))
    state = jaxlstm.LSTMState(jax.random.normal(k[2], (batch, units)), jnp.zeros((batch, units)))
    zero_u = jnp.zeros((units, 4 * units))

    def gate_bias(forget: float, inp: float) -> jax.Array:
        return jnp.zeros(4 * units).at[:units].set(inp).at[units : 2 * units].set(forget)

    forgetting = jaxlstm.LSTMParams(kernel, zero_u, gate_bias(-30.0, 0.0))  # f = sigmoid(-30)
    run = lambda key: np.asarray(jaxlstm.lstm(forgetting, xs, state, zoneout=rate, zoneout_key=key).sequence)  # noqa: E731
    ys = run(key)
    previous = np.concatenate([np.asarray(state.h)[:, None], ys[:, :-1]], axis=1)
    kept_h = (ys == previous).astype(np.float64)  # [B, T, H]
    candidate = np.asarray(jaxlstm.lstm(forgetting, xs, state, impl="scan").sequence)
    assert np.all(np.isclose(ys, candidate, rtol=0, atol=1e-6) | (kept_h == 1))  # kept, or the candidate

    remembering = jaxlstm.LSTMParams(kernel, zero_u, gate_bias(30.0, 30.0))  # f = i = 1

    def c_final_unit(xs, unit):
        return jaxlstm.lstm(remembering, xs, state, zoneout=rate, zoneout_key=key).state.c[:, unit].sum()

    grads = jax.vmap(jax.grad(c_final_unit), in_axes=(None, 0))(xs, jnp.arange(units))  # [H, B, T, 1]
    kept_c = np.moveaxis(np.asarray(grads[..., 0]) == 0.0, 0, -1).astype(np.float64)  # [B, T, H]

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean())

    bound = 4 / np.sqrt(n)
    for kept in (kept_c, kept_h):
        assert abs(kept.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
        assert abs(corr(kept[:, 1:], kept[:, :-1])) < bound  # across steps
        assert abs(corr(kept[..., 1:], kept[..., :-1])) < bound  # across units
        assert abs(corr(kept[1:], kept[:-1])) < bound  # across examples
    assert abs(corr(kept_c, kept_h)) < bound  # c and h draw from split keys
    np.testing.assert_array_equal(run(jax.random.key(42)), ys)  # reproducible from the key
    assert np.mean(run(jax.random.key(43)) != ys) > 0.1  # another key, other masks
    evaluation = lambda: np.asarray(jaxlstm.lstm(forgetting, xs, state, zoneout=rate).sequence)  # noqa: E731
    np.testing.assert_array_equal(evaluation(), evaluation())


# ----------------------------------------------------------------------------------------------
# Dispatch, carry dtype, init and checks
# ----------------------------------------------------------------------------------------------


def test_weight_drop_stays_on_the_fast_path_and_variants_refuse_it() -> None:
    params = jaxlstm.init(jax.random.key(1), I, H)
    xs = jax.random.normal(jax.random.key(2), (2, T, I))
    drop = (jax.random.uniform(jax.random.key(3), (H, 4 * H)) < 0.7) / 0.7
    inp = (jax.random.uniform(jax.random.key(4), (2, I)) < 0.7) / 0.7
    fast_run = jaxlstm.lstm(params, xs, weight_drop_mask=drop, input_dropout_mask=inp, impl=FastConfig())
    dropped = params._replace(recurrent_kernel=params.recurrent_kernel * drop)
    scan_run = jaxlstm.lstm(dropped, xs * inp[:, None], impl="scan")
    assert_close(jax.tree.leaves(fast_run), jax.tree.leaves(scan_run), 1e-6)
    refused = {
        "params.layer_norm": dict(params=jaxlstm.init(jax.random.key(1), I, H, layer_norm=True)),
        "params.peepholes": dict(params=jaxlstm.init(jax.random.key(1), I, H, peepholes=True)),
        "3 gate blocks": dict(params=jaxlstm.init(jax.random.key(1), I, H, coupled_gates=True)),
        "zoneout": dict(zoneout=0.1),
        "resets": dict(resets=np.zeros((2, T), bool)),
        "recurrent_dropout_mask": dict(recurrent_dropout_mask=jnp.ones(H)),
        "input_dropout_mask": dict(dropout_masks="per_gate", input_dropout_mask=jnp.ones((4, I))),
        "carry_dtype": dict(carry_dtype=jnp.float32, dtype=jnp.bfloat16),
    }
    for name, kwargs in refused.items():
        kwargs = dict(kwargs)
        p = kwargs.pop("params", params)
        for impl in (FastConfig(), "native", "cudnn"):
            with pytest.raises(ValueError, match=f"impl=.*{name}"):
                jaxlstm.lstm(p, xs, impl=impl, **kwargs)


def test_float32_carry_under_bfloat16() -> None:
    """c in float32 between steps, gates and accumulation in float32, bfloat16 matmul operands:
    closer to the float32 run than all-bfloat16 (benchmarks/bf16_carry.py measures T=1000)."""
    params = jaxlstm.init(jax.random.key(8), 8, 32)
    xs = jax.random.normal(jax.random.key(9), (4, 200, 8))
    f32 = jaxlstm.lstm(params, xs)
    bf16 = jaxlstm.lstm(params, xs, dtype=jnp.bfloat16)
    mixed = jaxlstm.lstm(params, xs, dtype=jnp.bfloat16, carry_dtype=jnp.float32)
    assert mixed.sequence.dtype == jnp.bfloat16 and mixed.state.h.dtype == jnp.bfloat16
    assert mixed.state.c.dtype == jnp.float32
    err = lambda out: float(jnp.abs(out.sequence.astype(jnp.float32) - f32.sequence).mean())  # noqa: E731
    assert err(mixed) < 0.7 * err(bf16)
    same = jaxlstm.lstm(params, xs, carry_dtype=jnp.float32, impl="scan")  # carry = dtype: the plain step
    assert_close(jax.tree.leaves(same), jax.tree.leaves(jaxlstm.lstm(params, xs, impl="scan")), 0.0)


def test_init_variant_weights() -> None:
    key = jax.random.key(3)
    plain = jaxlstm.init(key, I, H)
    full = jaxlstm.init(key, I, H, layer_norm=True, peepholes=True)
    for field in ("kernel", "recurrent_kernel", "bias"):  # the plain fields are the same draws
        np.testing.assert_array_equal(getattr(full, field), getattr(plain, field))
    ln = full.layer_norm
    assert ln is not None and full.peepholes is not None
    assert [a.shape for a in ln] == [(4 * H,)] * 4 + [(H,)] * 2
    np.testing.assert_array_equal(ln.x_gain, 1.0)
    np.testing.assert_array_equal(ln.c_offset, 0.0)
    limit = np.sqrt(3 / H)
    for w in full.peepholes:
        assert w.shape == (H,) and np.all(np.abs(np.asarray(w)) <= limit) and np.std(np.asarray(w)) > 0
    cifg = jaxlstm.init(key, I, H, coupled_gates=True, peepholes=True, proj_size=2)
    assert cifg.gates == 3 and cifg.kernel.shape == (I, 3 * H) and cifg.recurrent_kernel.shape == (2, 3 * H)
    assert cifg.peepholes is not None and cifg.peepholes.i is None
    np.testing.assert_array_equal(cifg.bias, np.r_[np.ones(H), np.zeros(2 * H)])  # the forget block first


def test_variant_errors_name_the_argument() -> None:
    p = jaxlstm.init(jax.random.key(0), I, H)
    full = jaxlstm.init(jax.random.key(0), I, H, layer_norm=True, peepholes=True)
    xs = jnp.ones((2, T, I))
    cases = [
        (dict(resets=np.zeros((2, T + 1), bool)), ValueError, r"resets: expected shape \[2, 6\].*found \[2, 7\]"),
        (dict(reset_state=jaxlstm.zero_state(p)), ValueError, "reset_state: given without resets"),
        (dict(resets=np.zeros((2, T), bool), reset_state=jaxlstm.zero_state(5)), ValueError, r"reset_state.h: expected shape \[2, 4\]"),
        (dict(zoneout_key=jax.random.key(0)), ValueError, "zoneout_key: given, but zoneout is 0"),
        (dict(zoneout=0.1, zoneout_key=3), TypeError, "zoneout_key: expected a PRNG key"),
        (dict(zoneout=1.0), ValueError, r"zoneout: expected rates in \[0, 1\)"),
        (dict(zoneout=(0.1, 0.2, 0.3)), ValueError, "zoneout: expected a float or a pair"),
        (dict(weight_drop_mask=jnp.ones((H, 3 * H))), ValueError, r"weight_drop_mask: expected shape \[4, 16\].*found \[4, 12\]"),
        (dict(dropout_masks="per_gate", recurrent_dropout_mask=jnp.ones((2, H))), ValueError, r"recurrent_dropout_mask: expected shape \[2, 4, 4\]"),
        (dict(input_dropout_mask=jnp.ones((2, I + 1))), ValueError, r"input_dropout_mask: expected shape \[2, 3\]"),
        (dict(dropout_masks="gates"), ValueError, "dropout_masks: expected one of 'shared', 'per_gate'"),
        (dict(layer_norm_carry="normalized"), ValueError, "layer_norm_carry: expected one of 'raw', 'normalised'"),
        (dict(layer_norm_epsilon=0.0), ValueError, "layer_norm_epsilon: expected a positive float"),
        (dict(carry_dtype=jnp.bfloat16), ValueError, "carry_dtype: expected a dtype at least as wide as the computation dtype float32, found bfloat16"),
        (dict(carry_dtype=jnp.int32), TypeError, "carry_dtype: expected a floating-point dtype"),
    ]  # fmt: skip
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            jaxlstm.lstm(p, xs, **kwargs)
    assert full.layer_norm is not None and full.peepholes is not None
    bad_params = [
        (full._replace(layer_norm=full.layer_norm._replace(c_gain=jnp.ones(4 * H))), r"params.layer_norm.c_gain: expected shape \[units\] = \[4\], found \[16\]"),
        (full._replace(layer_norm=full.layer_norm._replace(h_offset=None)), r"params.layer_norm.h_offset: missing"),
        (full._replace(peepholes=full.peepholes._replace(o=jnp.ones(H + 1))), r"params.peepholes.o: expected shape \[units\] = \[4\], found \[5\]"),
        (full._replace(peepholes=full.peepholes._replace(i=None)), r"params.peepholes.i: missing"),
        (jaxlstm.init(jax.random.key(0), I, H, coupled_gates=True)._replace(peepholes=full.peepholes), r"params.peepholes.i: expected None with coupled gates"),
        (p._replace(layer_norm=(1, 2)), r"params.layer_norm: expected LayerNormParams"),
        (p._replace(kernel=jnp.ones((I, 5 * H))), r"params.kernel: expected shape \[input_size, 4\*units\].*found \[3, 20\]"),
    ]  # fmt: skip
    for params, message in bad_params:
        with pytest.raises((ValueError, TypeError), match=message):
            jaxlstm.lstm(params, xs)
