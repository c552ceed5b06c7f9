"""An independent float64 NumPy reference for the LSTM variants of issue 15 (not calling jaxlstm).

One example, one step at a time, in plain NumPy; batches by looping over every leading index. The
randomness of the regularisers is outside: dropout, weight-drop and zoneout masks are arguments, so a
test draws them however the library (or a peer) does and checks the arithmetic here.

Layout (Keras, as ``jaxlstm.LSTMParams``): ``kernel [I, G*H]``, ``recurrent_kernel [P, G*H]``,
``bias [G*H]`` or None, ``projection [H, P]`` or None (P = H without one). The gate blocks along the last
axis are ``i, f, c(g), o`` (G = 4), or ``f, c(g), o`` with coupled gates (CIFG, G = 3: the input-gate
block is absent).

One step, in this order (each line applies only when its variant is on)::

    state  <- reset_state (default zeros)      where resets[t]   (Haiku ResetCore: before the step)
    x_g    =  x_t * m_x[g]                      input dropout: one mask [I], or one per gate [G, I]
    h_g    =  h_{t-1} * m_h[g]                  recurrent dropout: one mask [P], or one per gate [G, P]
    U'     =  U * M                             weight drop: one multiplier [P, G*H] per call
    a_x[g] =  x_g @ W[:, g];  a_h[g] = h_g @ U'[:, g]
    z      =  a_x + a_h + b                                            (plain)
    z      =  LN(a_h; gain_h, offset_h) + LN(a_x; gain_x, offset_x) + b (layer norm, over all G*H)
    f      =  σ(z_f + w_f * c_{t-1})
    i      =  1 - f  (CIFG)   else   σ(z_i + w_i * c_{t-1})
    c~     =  f * c_{t-1} + i * tanh(z_c)
    n      =  LN(c~; gain_c, offset_c)  (layer norm)   else   c~
    c~     =  n                                        (TF Addons flag: the carried c is normalised)
    o      =  σ(z_o + w_o * c~)                 the output peephole sees the new (carried) cell
    h~     =  o * tanh(n)                       then  h~ @ projection  with a projection
    c_t    =  d_c * c_{t-1} + (1 - d_c) * c~    zoneout (d ~ Bernoulli(z) in training, d = z in eval)
    h_t    =  d_h * h_{t-1} + (1 - d_h) * h~
    y_t    =  h_t

Layer normalisation (Ba, Kiros & Hinton 2016, eq. 20-22) normalises one vector over its whole feature
axis: ``LN(a; g, b) = g * (a - mean(a)) / sqrt(var(a) + eps) + b`` with the biased (population)
variance and eps inside the square root, which is what ``keras.layers.LayerNormalization`` computes.
The gate pre-activations are normalised as ONE vector of G*H features (all gates together), not per
gate. Ba et al. carry the unnormalised ``c~`` and use ``LN(c~)`` only for the output.

TensorFlow Addons ``LayerNormLSTMCell`` (tensorflow_addons/rnn/layer_norm_lstm_cell.py, read for its
equations; Addons reached end of life in 2024):

- three ``keras.layers.LayerNormalization`` layers, ``epsilon=norm_epsilon`` (default 1e-3), gains
  init ones, offsets init zeros: ``kernel_norm`` over ``x @ kernel`` ([4H]), ``recurrent_norm`` over
  ``h @ recurrent_kernel`` ([4H]), ``state_norm`` over the new cell ([H]);
- ``z = kernel_norm(x @ kernel) + recurrent_norm(h @ recurrent_kernel) + bias``; gates as Keras;
  ``c = state_norm(f * c_{t-1} + i * g)``; ``h = o * tanh(c)``; the state it returns is ``[h, c]`` with
  that NORMALISED c, so the next step's forget gate multiplies the normalised cell (``carry_normalised``);
- weights in order: kernel, recurrent_kernel, bias, kernel_norm/{gamma, beta}, recurrent_norm/{gamma,
  beta}, state_norm/{gamma, beta}; no peepholes, no CIFG;
- dropout: it draws 4 masks per call (``count=4``) but applies only the first, as ONE mask on the input
  and ONE on h before the recurrent matmul (Semeniuta et al. cite is in its docstring, but the
  arithmetic is Gal-style variational dropout on h, not on the cell update).

Peepholes are TensorFlow 1's ``LSTMCell(use_peepholes=True)`` and TF Addons ``PeepholeLSTMCell``:
diagonal ``w_i, w_f, w_o`` of shape [H]; i and f look at ``c_{t-1}``, o at the new cell. With CIFG there
is no input gate and so no ``w_i``. (TF1 also added ``forget_bias=1.0`` at call time; Addons and Keras
put it in the bias initialiser instead. The reference adds no constant.)

Keras 3 recurrent dropout (keras/src/layers/rnn/lstm.py and dropout_rnn_cell.py, Keras 3 installed):
``recurrent_dropout > 0`` switches the cell to ``implementation=1`` and ``dropout_mask_count=4``, so BOTH
the input masks (if ``dropout > 0``) and the recurrent masks are lists of 4 independent masks, one per
gate i, f, c, o, each the shape of one step's input [batch, I] or of h [batch, H] (so per example).
``RNN.call`` draws them once per call, before the scan, input masks first; ``training`` decides only
whether they are applied. A mask is ``where(bernoulli(keep=1-rate), 1/(1-rate), 0)``. See
``keras_masks`` below for the exact keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Variant:
    """Which variants are on (the parameters for them are in ``RefParams``).

    Attributes:
        layer_norm: Ba et al. layer normalisation of both pre-activations and of the output cell.
        carry_normalised: with ``layer_norm``, carry ``LN(c~)`` as the state (TF Addons
            ``LayerNormLSTMCell``) instead of the unnormalised ``c~`` (Ba et al.).
        epsilon: layer-norm epsilon, inside the square root (Keras/Addons default 1e-3).
        peepholes: diagonal peephole weights ``w_i, w_f, w_o`` (no ``w_i`` with ``cifg``).
        cifg: coupled input-forget gate, ``i = 1 - f``; the parameters hold 3 gate blocks f, c, o.
    """

    layer_norm: bool = False
    carry_normalised: bool = False
    epsilon: float = 1e-3
    peepholes: bool = False
    cifg: bool = False

    @property
    def gates(self) -> int:
        return 3 if self.cifg else 4


class RefParams(NamedTuple):
    """Every weight a variant can have; None where absent. Any object with these attributes works
    (``jaxlstm.LSTMParams`` has the first four)."""

    kernel: Any
    recurrent_kernel: Any
    bias: Any = None
    projection: Any = None
    ln_x_gain: Any = None  # [G*H], LN over x @ kernel (Addons kernel_norm/gamma)
    ln_x_offset: Any = None  # [G*H] (kernel_norm/beta)
    ln_h_gain: Any = None  # [G*H], LN over h @ recurrent_kernel (recurrent_norm/gamma)
    ln_h_offset: Any = None  # [G*H] (recurrent_norm/beta)
    ln_c_gain: Any = None  # [H], LN over the new cell (state_norm/gamma)
    ln_c_offset: Any = None  # [H] (state_norm/beta)
    peep_i: Any = None  # [H]
    peep_f: Any = None  # [H]
    peep_o: Any = None  # [H]


def f64(a: Any) -> Array:
    # np.asarray, not np.float64(...): NumPy 2 turns a one-element array into a scalar there.
    return np.asarray(a, np.float64)


def sigmoid(z: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-z))


def layer_norm(a: Array, gain: Any, offset: Any, epsilon: float) -> Array:
    """``gain * (a - mean) / sqrt(var + epsilon) + offset`` over the last axis (biased variance).

    None for gain/offset means 1/0 (the initial values).
    """
    mean = a.mean(-1, keepdims=True)
    var = ((a - mean) ** 2).mean(-1, keepdims=True)
    out = (a - mean) / np.sqrt(var + epsilon)
    if gain is not None:
        out = out * f64(gain)
    if offset is not None:
        out = out + f64(offset)
    return out


def init_variant_params(
    rng: np.random.Generator,
    input_size: int,
    units: int,
    variant: Variant,
    *,
    proj_size: Optional[int] = None,
    use_bias: bool = True,
    scale: float = 0.5,
) -> RefParams:
    """Random float64 parameters of the right shapes (random gains and offsets too, so that a dropped
    or misplaced LN/peephole weight changes the numbers)."""
    g, out = variant.gates, units if proj_size is None else proj_size
    draw = lambda *shape: scale * rng.normal(size=shape)
    ln = variant.layer_norm
    peep = variant.peepholes
    return RefParams(
        kernel=draw(input_size, g * units),
        recurrent_kernel=draw(out, g * units),
        bias=draw(g * units) if use_bias else None,
        projection=None if proj_size is None else draw(units, proj_size),
        ln_x_gain=1.0 + draw(g * units) if ln else None,
        ln_x_offset=draw(g * units) if ln else None,
        ln_h_gain=1.0 + draw(g * units) if ln else None,
        ln_h_offset=draw(g * units) if ln else None,
        ln_c_gain=1.0 + draw(units) if ln else None,
        ln_c_offset=draw(units) if ln else None,
        peep_i=draw(units) if peep and not variant.cifg else None,
        peep_f=draw(units) if peep else None,
        peep_o=draw(units) if peep else None,
    )


def _get(params: Any, name: str) -> Optional[Array]:
    value = getattr(params, name, None)
    return None if value is None else f64(value)


def _shape_check(params: Any, variant: Variant) -> tuple[int, int, int]:
    kernel, recurrent = _get(params, "kernel"), _get(params, "recurrent_kernel")
    assert kernel is not None and recurrent is not None
    g = variant.gates
    if kernel.shape[1] % g:
        raise ValueError(f"kernel: expected [I, {g}*H], found {list(kernel.shape)}")
    units = kernel.shape[1] // g
    out = recurrent.shape[0]
    if recurrent.shape[1] != g * units:
        raise ValueError(f"recurrent_kernel: expected [P, {g * units}], found {list(recurrent.shape)}")
    if variant.peepholes and (_get(params, "peep_f") is None or _get(params, "peep_o") is None):
        raise ValueError("peepholes: params need peep_f and peep_o (and peep_i without cifg)")
    if variant.peepholes and not variant.cifg and _get(params, "peep_i") is None:
        raise ValueError("peepholes: params need peep_i without cifg")
    if variant.cifg and _get(params, "peep_i") is not None:
        raise ValueError("peep_i: a CIFG LSTM has no input gate, so no input peephole")
    return kernel.shape[0], units, out


def step(
    params: Any,
    h: Array,
    c: Array,
    x: Array,
    variant: Variant = Variant(),
    *,
    input_mask: Optional[Array] = None,
    recurrent_mask: Optional[Array] = None,
    per_gate_masks: bool = False,
    weight_drop_mask: Optional[Array] = None,
    zoneout_c: Optional[Array] = None,
    zoneout_h: Optional[Array] = None,
) -> tuple[Array, Array]:
    """One step of one example (float64): x ``[I]``, h ``[P]``, c ``[H]`` -> ``(h_t, c_t)``.

    Masks (multipliers, already scaled by ``1/(1-rate)`` where that applies):
        input_mask: ``[I]``, or ``[G, I]`` with ``per_gate_masks`` (Keras implementation=1).
        recurrent_mask: ``[P]``, or ``[G, P]`` with ``per_gate_masks``.
        weight_drop_mask: ``[P, G*H]``, multiplied onto recurrent_kernel.
        zoneout_c: ``[H]`` in [0, 1]: 1 keeps the previous c (a Bernoulli draw in training, the rate in
            evaluation); zoneout_h: ``[P]`` likewise for h.
    """
    _, units, _ = _shape_check(params, variant)
    g = variant.gates
    kernel, recurrent = _get(params, "kernel"), _get(params, "recurrent_kernel")
    assert kernel is not None and recurrent is not None
    if weight_drop_mask is not None:
        recurrent = recurrent * f64(weight_drop_mask)
    x, h, c = f64(x), f64(h), f64(c)

    def per_gate(v: Array, mask: Optional[Array]) -> list[Array]:
        if mask is None:
            return [v] * g
        mask = f64(mask)
        if per_gate_masks:
            if mask.shape[0] != g:
                raise ValueError(f"per-gate mask: expected {g} masks, found shape {list(mask.shape)}")
            return [v * mask[k] for k in range(g)]
        return [v * mask] * g

    blocks = lambda w, k: w[:, k * units : (k + 1) * units]
    xs_g, hs_g = per_gate(x, input_mask), per_gate(h, recurrent_mask)
    a_x = np.concatenate([xs_g[k] @ blocks(kernel, k) for k in range(g)])
    a_h = np.concatenate([hs_g[k] @ blocks(recurrent, k) for k in range(g)])
    if variant.layer_norm:
        eps = variant.epsilon
        z = layer_norm(a_h, _get(params, "ln_h_gain"), _get(params, "ln_h_offset"), eps) + layer_norm(
            a_x, _get(params, "ln_x_gain"), _get(params, "ln_x_offset"), eps
        )
    else:
        z = a_x + a_h
    bias = _get(params, "bias")
    if bias is not None:
        z = z + bias
    parts = np.split(z, g)
    if variant.cifg:
        z_f, z_c, z_o = parts
        z_i = None
    else:
        z_i, z_f, z_c, z_o = parts
    peep = variant.peepholes
    f = sigmoid(z_f + (_get(params, "peep_f") * c if peep else 0.0))
    if z_i is None:
        i = 1.0 - f
    else:
        i = sigmoid(z_i + (_get(params, "peep_i") * c if peep else 0.0))
    c_new = f * c + i * np.tanh(z_c)
    normed = c_new
    if variant.layer_norm:
        normed = layer_norm(c_new, _get(params, "ln_c_gain"), _get(params, "ln_c_offset"), variant.epsilon)
        if variant.carry_normalised:
            c_new = normed
    o = sigmoid(z_o + (_get(params, "peep_o") * c_new if peep else 0.0))
    h_new = o * np.tanh(normed)
    projection = _get(params, "projection")
    if projection is not None:
        h_new = h_new @ projection
    if zoneout_c is not None:
        d = f64(zoneout_c)
        c_new = d * c + (1.0 - d) * c_new
    if zoneout_h is not None:
        d = f64(zoneout_h)
        h_new = d * h + (1.0 - d) * h_new
    return h_new, c_new


def _order(steps: int, length: Optional[int], reverse: bool) -> list[int]:
    """Input indices in processing order: reversed over the valid prefix only (padding stays put)."""
    if not reverse:
        return list(range(steps))
    valid = steps if length is None else length
    return list(range(valid - 1, -1, -1)) + list(range(valid, steps))


def sequence(
    params: Any,
    xs: Any,
    h0: Any,
    c0: Any,
    variant: Variant = Variant(),
    *,
    reverse: bool = False,
    keep_order: bool = False,
    mask: Any = None,
    length: Optional[int] = None,
    zero_output_for_mask: bool = False,
    resets: Any = None,
    reset_h: Any = None,
    reset_c: Any = None,
    zoneout_c: Any = None,
    zoneout_h: Any = None,
    **step_masks: Any,
) -> tuple[Array, Array, Array]:
    """One sequence: xs ``[T, I]``, h0 ``[P]``, c0 ``[H]`` -> ``(ys [T, P], h [P], c [H])``.

    mask ``[T]`` bool (Keras: a False step keeps the state and emits the previous h, or zeros),
    length: right padding (steps ``t >= length`` keep the state and emit zeros; reverse runs over the
    valid prefix), resets ``[T]`` bool (True: the state becomes ``(reset_h, reset_c)``, default
    ``(h0, c0)``, before the step), zoneout_c ``[T, H]`` / zoneout_h ``[T, P]`` per step. mask, resets
    and the zoneout masks are indexed like xs (input time); under ``reverse`` they travel with their
    step. Outputs are in processing order unless ``keep_order``. ``step_masks`` go to ``step`` as they
    are (the same at every step: one draw per call).
    """
    xs = f64(xs)
    steps = xs.shape[0]
    h, c = f64(h0), f64(c0)
    reset_h = np.zeros_like(h) if reset_h is None else f64(reset_h)
    reset_c = np.zeros_like(c) if reset_c is None else f64(reset_c)
    order = _order(steps, length, reverse)
    ys = [None] * steps
    for n, t in enumerate(order):
        valid = length is None or t < length
        if resets is not None and resets[t] and valid:
            h, c = reset_h, reset_c
        h_new, c_new = step(
            params,
            h,
            c,
            xs[t],
            variant,
            zoneout_c=None if zoneout_c is None else f64(zoneout_c)[t],
            zoneout_h=None if zoneout_h is None else f64(zoneout_h)[t],
            **step_masks,
        )
        if not valid:
            y = np.zeros_like(h)
        elif mask is not None and not mask[t]:
            y = np.zeros_like(h) if zero_output_for_mask else h
        else:
            h, c = h_new, c_new
            y = h
        ys[t if keep_order else n] = y
    return np.stack(ys), h, c


def lstm(
    params: Any,
    xs: Any,
    h0: Any = None,
    c0: Any = None,
    variant: Variant = Variant(),
    *,
    mask: Any = None,
    lengths: Any = None,
    resets: Any = None,
    reset_h: Any = None,
    reset_c: Any = None,
    input_mask: Any = None,
    recurrent_mask: Any = None,
    zoneout_c: Any = None,
    zoneout_h: Any = None,
    **kwargs: Any,
) -> tuple[Array, Array, Array]:
    """Any leading batch axes: xs ``[..., T, I]`` -> ``(ys [..., T, P], h [..., P], c [..., H])``.

    h0/c0/reset_h/reset_c broadcast to ``[..., P]`` / ``[..., H]`` (None: zeros, for the reset state
    too, whatever h0/c0 are); mask/resets ``[..., T]``; lengths ``[...]``; input_mask/recurrent_mask broadcast to
    ``[..., I]``/``[..., P]`` (``[..., G, I]``/``[..., G, P]`` per gate); zoneout masks
    ``[..., T, H]``/``[..., T, P]``. ``weight_drop_mask`` ``[P, G*H]`` is shared by the batch (one
    mask per call, AWD-LSTM). Other keywords go to ``sequence``.
    """
    variant_ = variant
    xs = f64(xs)
    _, units, out = _shape_check(params, variant_)
    batch = xs.shape[:-2]
    steps = xs.shape[-2]
    per_gate = kwargs.get("per_gate_masks", False)
    g = variant_.gates

    def full(a: Any, tail: tuple[int, ...]) -> Optional[Array]:
        return None if a is None else np.broadcast_to(f64(a), (*batch, *tail))

    h0 = np.zeros((*batch, out)) if h0 is None else full(h0, (out,))
    c0 = np.zeros((*batch, units)) if c0 is None else full(c0, (units,))
    reset_h, reset_c = full(reset_h, (out,)), full(reset_c, (units,))
    in_tail = (g, xs.shape[-1]) if per_gate else (xs.shape[-1],)
    rec_tail = (g, out) if per_gate else (out,)
    input_mask, recurrent_mask = full(input_mask, in_tail), full(recurrent_mask, rec_tail)
    zoneout_c, zoneout_h = full(zoneout_c, (steps, units)), full(zoneout_h, (steps, out))
    ys = np.zeros((*batch, steps, out))
    hs = np.zeros((*batch, out))
    cs = np.zeros((*batch, units))
    pick = lambda a, idx: None if a is None else np.asarray(a)[idx]
    for idx in np.ndindex(*batch):
        length = None if lengths is None else int(np.clip(np.asarray(lengths)[idx], 0, steps))
        ys[idx], hs[idx], cs[idx] = sequence(
            params,
            xs[idx],
            h0[idx],
            c0[idx],
            variant_,
            mask=pick(mask, idx),
            length=length,
            resets=pick(resets, idx),
            reset_h=pick(reset_h, idx),
            reset_c=pick(reset_c, idx),
            input_mask=pick(input_mask, idx),
            recurrent_mask=pick(recurrent_mask, idx),
            zoneout_c=pick(zoneout_c, idx),
            zoneout_h=pick(zoneout_h, idx),
            **kwargs,
        )
    return ys, hs, cs


def numeric_grad(fn: Callable[..., float], args: Mapping[str, Any], eps: float = 1e-6) -> dict[str, Array]:
    """Central differences of a scalar ``fn(**args)`` with respect to each array in ``args`` (float64;
    error O(eps^2), so ~1e-9 relative for smooth fns). None entries are passed through untouched."""
    args = {k: (None if v is None else f64(v).copy()) for k, v in args.items()}
    grads: dict[str, Array] = {}
    for name, value in args.items():
        if value is None:
            continue
        grad = np.zeros_like(value)
        for idx in np.ndindex(*value.shape):
            saved = value[idx]
            value[idx] = saved + eps
            up = fn(**args)
            value[idx] = saved - eps
            down = fn(**args)
            value[idx] = saved
            grad[idx] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads


def keras_masks(seed: int, rate: float, shape: tuple[int, ...], *, first_draw: int, count: int) -> Array:
    """The masks Keras 3 (JAX backend) draws for ``LSTM(..., seed=seed)``: ``[count, *shape]`` float32.

    The layer's ``SeedGenerator`` state starts at ``[seed, 0]`` and each draw uses the current state as
    a raw ``uint32[2]`` JAX key, then adds 1 to its second word. One draw per mask, in order: the
    input masks (if dropout > 0), then the recurrent masks; ``first_draw`` is how many draws came
    before (previous calls included). Each mask is ``ones / keep`` where ``bernoulli(key, keep)``, else 0.
    (Imports jax: the keys are JAX's, so this is the one place the reference needs it.)
    """
    import jax
    import jax.numpy as jnp

    keep = 1.0 - rate
    masks = []
    for n in range(first_draw, first_draw + count):
        key = jnp.array([seed, n], dtype=jnp.uint32)
        bits = jax.random.bernoulli(key, p=keep, shape=shape)
        masks.append(np.where(np.asarray(bits), np.float32(1.0) / np.float32(keep), np.float32(0.0)))
    return np.stack(masks).astype(np.float32)
