"""The whole LSTM math: initialisation, one step, and the scan over time. Imports jax and numpy only.

    step(params, state, x_t) -> (state, y_t)     one time step
    lstm(params, xs, ...)    -> LSTMOutput       lax.scan(step) over time, vmap over any batch axes

Numerics follow Keras (gate order i, f, c, o; see ``LSTMParams``)::

    z = x_t @ kernel + h @ recurrent_kernel + bias;  z_i, z_f, z_c, z_o = split(z, 4)
    c_t = σ(z_f) * c + σ(z_i) * tanh(z_c);  h_t = σ(z_o) * tanh(c_t);  y_t = h_t

The variants (layer norm, peepholes, coupled gates, zoneout, dropout masks, weight drop, resets,
carry dtype) are options of the same step, ``_step``; README "Variants" has their equations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np

from . import checks, cudnn, fast
from ._manual_axes import vary_like
from .activations import Activation, ActivationLike
from .options import CallInputs, Initializer, SequenceOptions, WeightOptions
from .pytrees import LayerNormParams, LSTMOutput, LSTMParams, LSTMState, PeepholeParams

__all__ = ["init", "step", "lstm", "zero_state", "LSTMParams", "LSTMState", "LSTMOutput"]


# ----------------------------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------------------------


def init(
    key: jax.Array,
    input_size: int,
    units: int,
    *,
    use_bias: bool = True,
    unit_forget_bias: bool = True,
    kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
    recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
    bias_init: Initializer = jax.nn.initializers.zeros,
    proj_size: Optional[int] = None,
    projection_init: Initializer = jax.nn.initializers.glorot_uniform(),
    param_dtype: Any = jnp.float32,
    layer_norm: bool = False,
    peepholes: bool = False,
    coupled_gates: bool = False,
) -> LSTMParams:
    """Parameters with Keras's default initialisers.

    Args:
        key: a PRNG key.
        input_size: features per time step, I.
        units: hidden size, H.
        use_bias: ``False`` gives ``bias=None``.
        unit_forget_bias: set the forget block of the initial bias to 1.0 (Keras: it sets, it does
            not add to ``bias_init``'s values).
        kernel_init, recurrent_init, bias_init: ``jax.nn.initializers``-style ``(key, shape, dtype)``
            functions. Defaults: glorot uniform, orthogonal, zeros (Keras's).
        proj_size: P, for an LSTM with projected recurrence (PyTorch ``proj_size``); None for none.
        projection_init: initialiser of the ``[H, P]`` projection.
        param_dtype: dtype of the stored parameters.
        layer_norm: add ``LayerNormParams`` (gains ``x_gain``/``h_gain`` ``[G*H]`` and ``c_gain``
            ``[H]`` at 1, offsets at 0): a layer-normalised LSTM (Ba et al.; TF Addons).
        peepholes: add ``PeepholeParams`` ``i``, ``f``, ``o`` ``[H]`` (no ``i`` with coupled gates),
            drawn like TF Addons' (Keras glorot_uniform of a vector: uniform in +-sqrt(3/H)).
        coupled_gates: 3 gate blocks f, c, o (CIFG, ``i = 1 - f``) instead of 4.

    Returns:
        ``LSTMParams`` with kernel ``[I, G*H]``, recurrent_kernel ``[H, G*H]`` (``[P, G*H]`` with a
        projection), bias ``[G*H]`` or None, projection ``[H, P]`` or None, layer_norm and peepholes
        or None; G = 4, or 3 with ``coupled_gates``. The plain fields draw the same values whatever
        the variant flags.
    """
    checks.prng_key(key)
    weights = WeightOptions(
        use_bias=use_bias,
        unit_forget_bias=unit_forget_bias,
        kernel_init=kernel_init,
        recurrent_init=recurrent_init,
        bias_init=bias_init,
        projection_init=projection_init,
        proj_size=proj_size,
        param_dtype=param_dtype,
        layer_norm=layer_norm,
        peepholes=peepholes,
        coupled_gates=coupled_gates,
    )
    return init_params(key, input_size, units, weights)


def init_params(key: jax.Array, input_size: int, units: int, weights: WeightOptions) -> LSTMParams:
    """``init`` with its options as one ``WeightOptions``; one key per plain field (kernel,
    recurrent_kernel, bias, projection) split from ``key`` (so they are the same for every variant),
    and one per nested field's leaf split from ``fold_in(key, field index)``."""
    keys = dict(zip(LSTMParams._fields, jax.random.split(key, 4)))
    specs = weights.specs(input_size, units)
    dtype = weights.param_dtype
    made: dict[str, Any] = {}
    for index, field in enumerate(LSTMParams._fields):
        spec = specs.get(field)
        if isinstance(spec, dict):  # a nested NamedTuple: LayerNormParams / PeepholeParams
            leaf_keys = jax.random.split(jax.random.fold_in(key, index), len(spec))
            made[field] = {
                name: draw(k, shape, dtype) for k, (name, (draw, shape)) in zip(leaf_keys, spec.items())
            }
        elif spec is not None:
            draw, shape = spec
            made[field] = draw(keys[field], shape, dtype)
    return LSTMParams(
        kernel=made["kernel"],
        recurrent_kernel=made["recurrent_kernel"],
        bias=made.get("bias"),
        projection=made.get("projection"),
        layer_norm=None if "layer_norm" not in made else LayerNormParams(**made["layer_norm"]),
        peepholes=None if "peepholes" not in made else PeepholeParams(**{"i": None, **made["peepholes"]}),
    )


def zero_state(
    params_or_units: LSTMParams | int, batch_shape: Sequence[int] = (), dtype: Any = jnp.float32
) -> LSTMState:
    """All-zero ``LSTMState`` for ``params`` (or for a plain LSTM of ``units``), batch ``batch_shape``.

    h is ``[*batch_shape, output_size]`` and c ``[*batch_shape, units]``.
    """
    if isinstance(params_or_units, LSTMParams):
        _, units, out = checks.params(params_or_units)
    else:
        units = out = checks.positive_int(params_or_units, "units")
    batch_shape = checks.batch_shape(batch_shape)
    checks.float_dtype(dtype, "dtype")
    return LSTMState(h=jnp.zeros((*batch_shape, out), dtype), c=jnp.zeros((*batch_shape, units), dtype))


# ----------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------


class StepInputs(NamedTuple):
    """What one step takes beyond ``(params, state, x_t)``: the same leading axes as x_t, or none.

    Attributes:
        input_mask: ``[..., I]`` (``[..., G, I]`` with ``dropout_masks="per_gate"``), onto x_t.
        recurrent_mask: ``[..., P]`` (``[..., G, P]``), onto h before the recurrent matmul.
        zoneout_c: ``[..., H]`` bool, True keeps the previous c (training); None with a zoneout rate
            is evaluation, the expectation ``z c_{t-1} + (1 - z) c~``.
        zoneout_h: ``[..., P]`` bool, likewise for h.
    """

    input_mask: Optional[jax.Array] = None
    recurrent_mask: Optional[jax.Array] = None
    zoneout_c: Optional[jax.Array] = None
    zoneout_h: Optional[jax.Array] = None


_NO_STEP_INPUTS = StepInputs()


def _layer_norm(a: jax.Array, gain: jax.Array, offset: jax.Array, epsilon: float) -> jax.Array:
    """Over the last axis: biased variance, epsilon inside the square root (Keras LayerNormalization)."""
    mean = jnp.mean(a, axis=-1, keepdims=True)
    centred = a - mean
    var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
    return gain * (centred * jax.lax.rsqrt(var + epsilon)) + offset


def reset(state: LSTMState, resets_t: jax.Array, reset_state: LSTMState) -> LSTMState:
    """``reset_state`` where ``resets_t`` (``[...]`` bool), else ``state``: what a step starts from
    (Haiku ``ResetCore``). ``where`` sends no gradient into the state replaced."""
    flag = resets_t[..., None]
    return LSTMState(h=jnp.where(flag, reset_state.h, state.h), c=jnp.where(flag, reset_state.c, state.c))


def _step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    options: SequenceOptions,
    inputs: Optional[StepInputs] = None,
) -> tuple[LSTMState, jax.Array]:
    """The one step every variant runs through (the variant is in ``params`` and ``options``).

    x_t ``[..., I]``, state h ``[..., P]`` and c ``[..., H]``; returns ``(new_state, y_t)``, y_t = h.
    Order: per-gate masks, matmuls, layer norm of both pre-activations, bias, gates (CIFG:
    i = 1 - f; peepholes on i and f from c_{t-1}), the new cell c~, LN(c~) (carried with
    ``layer_norm_carry="normalised"``), o (its peephole on the carried cell), h~ = o tanh(LN c~),
    projection, zoneout on c and h. Resets (``reset``) and masks are the caller's, around it.
    With ``options.carry_dtype`` the matmuls take their operands in the parameters' dtype and
    accumulate in the carry dtype, where the gates and c stay; h is returned in its own dtype.
    """
    inputs = _NO_STEP_INPUTS if inputs is None else inputs
    act, gate = options.activation, options.recurrent_activation
    gates, units = params.gates, params.units
    acc = options.carry_dtype

    def matmul(a: jax.Array, w: jax.Array) -> jax.Array:
        if acc is None:
            return a @ w
        return jnp.matmul(a.astype(w.dtype), w, preferred_element_type=acc)

    def masked(v: jax.Array, mask: Optional[jax.Array], w: jax.Array) -> jax.Array:
        """``(v * mask) @ w``; per gate ``(v * mask[g]) @ w[:, g]`` for each gate block g."""
        if mask is None:
            return matmul(v, w)
        if options.dropout_masks == "shared":
            return matmul(v * mask, w)
        v_g = (v[..., None, :] * mask).astype(w.dtype)  # [..., G, n]
        w_g = w.reshape(w.shape[0], gates, units)  # [n, G, H]
        out = jnp.einsum("...gn,ngh->...gh", v_g, w_g, preferred_element_type=acc)
        return out.reshape(*out.shape[:-2], gates * units)

    a_x = masked(x_t, inputs.input_mask, params.kernel)
    a_h = masked(state.h, inputs.recurrent_mask, params.recurrent_kernel)
    ln, eps = params.layer_norm, options.layer_norm_epsilon
    if ln is None:
        z = a_x + a_h
    else:
        z = _layer_norm(a_h, ln.h_gain, ln.h_offset, eps) + _layer_norm(a_x, ln.x_gain, ln.x_offset, eps)
    if params.bias is not None:
        z = z + params.bias
    blocks = jnp.split(z, gates, axis=-1)
    z_i, (z_f, z_c, z_o) = (None, blocks) if gates == 3 else (blocks[0], blocks[1:])
    c_prev, peep = state.c, params.peepholes
    f = gate(z_f if peep is None else z_f + peep.f * c_prev)
    if z_i is None:
        i = 1.0 - f  # coupled input and forget gates
    else:
        i = gate(z_i if peep is None else z_i + cast(jax.Array, peep.i) * c_prev)
    c = f * c_prev + i * act(z_c)
    normed = c
    if ln is not None:
        normed = _layer_norm(c, ln.c_gain, ln.c_offset, eps)
        if options.layer_norm_carry == "normalised":
            c = normed
    o = gate(z_o if peep is None else z_o + peep.o * c)
    h = o * act(normed)
    if params.projection is not None:
        h = matmul(h, params.projection)
    if acc is not None:
        h = h.astype(state.h.dtype)
    rate_c, rate_h = options.zoneout
    if rate_c:
        c = _zoneout(c_prev, c, rate_c, inputs.zoneout_c)
    if rate_h:
        h = _zoneout(state.h, h, rate_h, inputs.zoneout_h)
    return LSTMState(h=h, c=c), h


def _zoneout(previous: jax.Array, new: jax.Array, rate: float, keep: Optional[jax.Array]) -> jax.Array:
    """Training (``keep`` drawn Bernoulli(rate)): the previous value where keep; evaluation: the mean."""
    if keep is None:
        return rate * previous + (1.0 - rate) * new
    return jnp.where(keep, previous, new)


def raw_step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    activation: Activation,
    recurrent_activation: Activation,
    recurrent_dropout_mask: Optional[jax.Array] = None,
) -> tuple[LSTMState, jax.Array]:
    """``_step`` with default variant options and a recurrent dropout mask."""
    options = SequenceOptions(activation=activation, recurrent_activation=recurrent_activation)
    return _step(params, state, x_t, options, StepInputs(recurrent_mask=recurrent_dropout_mask))


def step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    *,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
) -> tuple[LSTMState, jax.Array]:
    """Advance one example by one time step.

    Args:
        params: ``LSTMParams``; its variant (layer norm, peepholes, 3 coupled gate blocks) is in it.
        state: ``LSTMState`` with h ``[..., output_size]`` and c ``[..., units]`` that broadcast to
            x_t's batch axes (an unbatched state serves a whole batch, as in ``lstm``).
        x_t: ``[..., input_size]``.
        activation, recurrent_activation: a Keras name or a callable (defaults tanh, sigmoid).
        layer_norm_epsilon, layer_norm_carry: with ``params.layer_norm``, as in ``lstm``.

    Returns:
        ``(new_state, y_t)`` with ``y_t == new_state.h``, ``[..., output_size]``.

    The plain float32 LSTM runs on the native CPU kernels where ``jaxlstm.native.preferred`` says
    so for one step (``_step_auto``); every other case runs the reference step.
    """
    input_size, units, out = checks.params(params)
    checks.float_array(x_t, "x_t")
    x_shape = np.shape(x_t)
    if len(x_shape) < 1 or x_shape[-1] != input_size:
        raise ValueError(
            f"x_t: expected shape [{input_size}] (one time step; any leading batch axes), found {checks.fmt(x_shape)}"
        )
    batch_shape = x_shape[:-1]
    checks.state(state, batch_shape, units, out, name="state")
    state = LSTMState(
        h=jnp.broadcast_to(state.h, (*batch_shape, out)), c=jnp.broadcast_to(state.c, (*batch_shape, units))
    )
    options = SequenceOptions(
        activation=activation,
        recurrent_activation=recurrent_activation,
        layer_norm_epsilon=layer_norm_epsilon,
        layer_norm_carry=layer_norm_carry,
    )
    return _step_auto(params, state, x_t, options)


def _step_auto(
    params: LSTMParams, state: LSTMState, x_t: jax.Array, options: SequenceOptions
) -> tuple[LSTMState, jax.Array]:
    """``_step`` with no per-step inputs, on the native CPU kernels where ``lstm(impl="auto")`` would
    pick them for a one-step sequence (``step``'s and ``stream_step``'s call): the plain LSTM
    (``fast.supports``), jax's default backend the CPU and ``native.preferred(N, 1, I, H, dtype)``;
    there, the fast path's one-step sequence (same derivative rules). Else the reference ``_step``."""
    if options.impl == "auto" and fast.supports(
        params, options.activation, options.recurrent_activation, options
    ):
        batch_shape, units = x_t.shape[:-1], params.units
        weights = [params.kernel, params.recurrent_kernel] + ([] if params.bias is None else [params.bias])
        dtype = jnp.result_type(x_t, state.h, state.c, *weights)
        n = math.prod(batch_shape)
        if _auto_picks_native(n, 1, params.input_size, units, dtype):
            cast = _cast_params(params, dtype, dtype)
            flat = lambda a: jnp.broadcast_to(a, (*batch_shape, a.shape[-1])).astype(dtype).reshape(n, -1)  # noqa: E731
            _, h, c = fast.lstm_time_major(
                cast, flat(x_t)[None], flat(state.h), flat(state.c), config=fast.FastConfig(native=True)
            )
            h, c = h.reshape(*batch_shape, units), c.reshape(*batch_shape, units)
            return LSTMState(h=h, c=c), h
    return _step(params, state, x_t, options)


def run_step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    options: SequenceOptions,
    dtype: Any = None,
) -> tuple[LSTMState, jax.Array]:
    """One step with its options as one ``SequenceOptions``, in one computation dtype, past the
    argument checks (what the layers' one-step calls run: a stream's step, a Flax cell's).

    Args:
        params: ``LSTMParams`` (any variant), already checked.
        state: h ``[..., P]`` and c ``[..., H]``, with x_t's batch axes.
        x_t: ``[..., I]``.
        options: the step's options. ``options.impl``: ``"auto"`` runs the native CPU kernels where
            ``step`` would, ``"scan"`` always the reference step. Zoneout is its
            expectation (a step draws no masks).
        dtype: the computation dtype; None is the promotion of x_t's and the kernel's (as in
            ``lstm``). x_t, h and the matmul weights are cast to it; c and the weights added to the
            matmuls' sums (bias, layer norm, peepholes) to ``options.carry_dtype`` when set.

    Returns:
        ``(new_state, y_t)``: h ``[..., P]`` in dtype, c ``[..., H]`` in the carry dtype, y_t = h.
    """
    if options.impl not in ("auto", "scan"):
        raise ValueError(f"impl: a step runs 'auto' or 'scan', found {options.impl!r}")
    x_t = jnp.asarray(x_t)
    dtype = jnp.result_type(x_t.dtype, params.kernel.dtype) if dtype is None else dtype
    checks.carry_dtype(options.carry_dtype, dtype)
    carry = dtype if options.carry_dtype is None else options.carry_dtype
    params = _cast_params(params, dtype, carry)
    state = LSTMState(h=jnp.asarray(state.h).astype(dtype), c=jnp.asarray(state.c).astype(carry))
    if options.impl == "scan":
        return _step(params, state, x_t.astype(dtype), options)
    return _step_auto(params, state, x_t.astype(dtype), options)


def _auto_picks_native(n: int, steps: int, features: int, units: int, dtype: Any) -> bool:
    """Whether ``impl="auto"`` runs the native CPU kernels on ``n`` flattened rows: jax's default
    backend is the CPU and ``native.preferred`` says so (the one rule of ``lstm`` and ``step``)."""
    if jax.default_backend() != "cpu":
        return False
    from . import native  # only here: the extension is optional

    return native.preferred(n, steps, features, units, dtype)


# ----------------------------------------------------------------------------------------------
# The scan over one sequence
# ----------------------------------------------------------------------------------------------


def _processing_order(steps: int, length: Optional[jax.Array], reverse: bool) -> Optional[jax.Array]:
    """Index that puts the inputs in processing order (None when that is input order).

    Reversed with a length L, only the valid prefix is flipped: t -> L-1-t for t < L, padding stays
    put. The permutation is its own inverse, so it also maps processed outputs back to input order.
    """
    if not reverse:
        return None
    t = jnp.arange(steps)
    if length is None:
        return t[::-1]
    return jnp.where(t < length, length - 1 - t, t)


class _PerExample(NamedTuple):
    """One example's variant inputs inside the vmap (the rest are ``_one_sequence``'s arguments)."""

    resets: Optional[jax.Array]  # [T] bool
    reset_state: Optional[LSTMState]  # h [P], c [H]
    zoneout_c: Optional[jax.Array]  # [T, H] bool, input time
    zoneout_h: Optional[jax.Array]  # [T, P] bool
    input_mask: Optional[jax.Array]  # [G, I] per gate (a shared one is already on xs)
    recurrent_mask: Optional[jax.Array]  # [P] or [G, P]


def _one_sequence(
    params: LSTMParams,
    xs: jax.Array,
    state: LSTMState,
    mask: Optional[jax.Array],
    length: Optional[jax.Array],
    extra: _PerExample,
    *,
    reverse: bool,
    keep_order: bool,
    options: SequenceOptions,
) -> LSTMOutput:
    """One sequence: xs ``[T, I]``, state ``[H]``, mask ``[T]`` or None, length ``[]`` or None, and
    the variants' per-example inputs (per-step ones in input time, reordered here with xs)."""
    steps = xs.shape[0]
    order = _processing_order(steps, length, reverse)
    resets, zoneout_c, zoneout_h = extra.resets, extra.zoneout_c, extra.zoneout_h
    if order is not None:
        xs = xs[order]
        mask, resets, zoneout_c, zoneout_h = (
            None if a is None else a[order] for a in (mask, resets, zoneout_c, zoneout_h)
        )
    # After reordering, the valid steps of a sequence with a length are always its first `length`.
    valid = None if length is None else jnp.arange(steps) < length
    zero_output_for_mask = bool(options.zero_output_for_mask)

    def body(carry: LSTMState, inputs: tuple) -> tuple[LSTMState, jax.Array]:
        x_t, m_t, v_t, r_t, dc_t, dh_t = inputs
        if r_t is not None:
            # A reset happens before the step, so a masked reset step holds the reset state;
            # padding never resets (the final state is the last valid step's).
            carry = reset(carry, r_t if v_t is None else r_t & v_t, cast(LSTMState, extra.reset_state))
        new, y = _step(
            params, carry, x_t, options, StepInputs(extra.input_mask, extra.recurrent_mask, dc_t, dh_t)
        )
        if m_t is None:
            if v_t is None:
                return new, y
            keep = v_t
        else:
            keep = m_t if v_t is None else m_t & v_t
        new = LSTMState(h=jnp.where(keep, new.h, carry.h), c=jnp.where(keep, new.c, carry.c))
        # Keras: a masked step emits the previous output (which is h) or zeros; padding emits zeros.
        fill = jnp.zeros_like(y) if zero_output_for_mask else carry.h
        y = jnp.where(keep, y, fill)
        if v_t is not None:
            y = jnp.where(v_t, y, jnp.zeros_like(y))
        return new, y

    per_step = (xs, mask, valid, resets, zoneout_c, zoneout_h)
    final, ys = jax.lax.scan(body, state, per_step, unroll=options.unroll)
    if order is not None and keep_order:
        ys = ys[order]
    return LSTMOutput(sequence=ys, state=final)


def _cast_params(params: LSTMParams, dtype: Any, carry: Any) -> LSTMParams:
    """The matmul weights in the computation dtype; bias, gains, offsets and peepholes (added to
    what the matmuls accumulate) in the carry dtype."""
    to = lambda tree, d: jax.tree_util.tree_map(lambda a: a.astype(d), tree)  # noqa: E731
    return LSTMParams(
        kernel=to(params.kernel, dtype),
        recurrent_kernel=to(params.recurrent_kernel, dtype),
        bias=to(params.bias, carry),
        projection=to(params.projection, dtype),
        layer_norm=to(params.layer_norm, carry),
        peepholes=to(params.peepholes, carry),
    )


def _zoneout_draws(key: jax.Array, rate: float, batch_shape: tuple, steps: int, size: int) -> jax.Array:
    """Zoneout's training masks ``[N, T, size]`` bool: step t (input time) draws
    ``bernoulli(fold_in(key, t), rate, (*batch_shape, size))``, whatever the implementation or order."""
    draw = lambda t: jax.random.bernoulli(jax.random.fold_in(key, t), rate, (*batch_shape, size))  # noqa: E731
    masks = jax.vmap(draw)(jnp.arange(steps))  # [T, *batch, size]
    return jnp.moveaxis(masks.reshape(steps, -1, size), 0, 1)


@partial(jax.jit, static_argnames=("reverse", "keep_order", "options"))
def _lstm(
    params: LSTMParams,
    xs: jax.Array,
    initial_state: Optional[LSTMState],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    inputs: CallInputs,
    *,
    reverse: bool,
    keep_order: bool,
    options: SequenceOptions,
) -> LSTMOutput:
    """``run`` past its checks: xs ``[..., T, I]`` batch-major (resets ``[..., T]`` too);
    ``options.dtype`` is set and ``options.zero_output_for_mask`` resolved."""
    dtype, impl = options.dtype, options.impl
    carry = dtype if options.carry_dtype is None else options.carry_dtype
    batch_shape, (steps, features) = xs.shape[:-2], xs.shape[-2:]
    params = _cast_params(params, dtype, carry)
    if inputs.weight_drop_mask is not None:  # one mask per call, before dispatch (AWD-LSTM)
        params = params._replace(
            recurrent_kernel=params.recurrent_kernel * inputs.weight_drop_mask.astype(dtype)
        )
    units, out_size, gates = params.units, params.output_size, params.gates
    if initial_state is None:
        initial_state = zero_state(params, batch_shape, dtype)

    # Flatten all batch axes into one and vmap over it: any number of batch axes, including none.
    n = math.prod(batch_shape)

    def flat(a: Optional[jax.Array], tail: tuple[int, ...], d: Any) -> Optional[jax.Array]:
        return None if a is None else jnp.broadcast_to(a.astype(d), (*batch_shape, *tail)).reshape(n, *tail)

    def flat_state(s: LSTMState) -> LSTMState:
        return LSTMState(h=flat(s.h, (out_size,), dtype), c=flat(s.c, (units,), carry))  # type: ignore[arg-type]

    state = flat_state(initial_state)
    flat_xs = xs.astype(dtype).reshape(n, steps, features)
    flat_mask = None if mask is None else mask.reshape(n, steps)
    # run() refuses lengths outside [0, T] when it can see them; under jit it cannot, and they
    # count as clamped (otherwise reverse would gather out of range).
    flat_lengths = None if lengths is None else jnp.clip(lengths.reshape(n), 0, steps)
    per_gate = options.dropout_masks == "per_gate"
    gate_axis = (gates,) if per_gate else ()
    input_mask = flat(inputs.input_dropout_mask, (*gate_axis, features), dtype)
    if input_mask is not None and not per_gate:  # one mask for every gate: onto xs, once
        flat_xs, input_mask = flat_xs * input_mask[:, None, :], None
    rd_mask = flat(inputs.recurrent_dropout_mask, (*gate_axis, out_size), dtype)
    resets = reset_state = None
    if inputs.resets is not None:
        resets = inputs.resets.reshape(n, steps)
        given = inputs.reset_state
        reset_state = flat_state(zero_state(params, (), dtype) if given is None else given)
    zoneout_c = zoneout_h = None
    if inputs.zoneout_key is not None:
        key_c, key_h = jax.random.split(inputs.zoneout_key)
        rate_c, rate_h = options.zoneout
        if rate_c:
            zoneout_c = _zoneout_draws(key_c, rate_c, batch_shape, steps, units)
        if rate_h:
            zoneout_h = _zoneout_draws(key_h, rate_h, batch_shape, steps, out_size)
    extra = _PerExample(resets, reset_state, zoneout_c, zoneout_h, input_mask, rd_mask)
    # Under shard_map the carry must vary over the mesh axes its inputs vary over.
    state = vary_like(state, params, flat_xs, flat_mask, flat_lengths, extra)
    zero_output = bool(options.zero_output_for_mask)
    if impl == "cudnn":  # run() has checked that cuDNN computes this configuration
        out = _cudnn_flat(params, flat_xs, state, flat_lengths)
        return _unflatten(out, batch_shape, steps, units, out_size)
    if impl != "scan" and fast.supports(
        params, options.activation, options.recurrent_activation, options, inputs
    ):
        config = impl if isinstance(impl, fast.FastConfig) else fast.FastConfig()
        if impl == "auto":
            config = config._replace(native=_auto_picks_native(n, steps, features, units, dtype))
        out = _fast_flat(
            params,
            flat_xs,
            state,
            flat_mask,
            flat_lengths,
            config=config,
            reverse=reverse,
            keep_order=keep_order,
            zero_output_for_mask=zero_output,
            unroll=options.unroll,
        )
        return _unflatten(out, batch_shape, steps, units, out_size)
    run_one = partial(_one_sequence, reverse=reverse, keep_order=keep_order, options=options)
    out = jax.vmap(run_one, in_axes=(None, 0, 0, 0, 0, 0))(
        params, flat_xs, state, flat_mask, flat_lengths, extra
    )
    return _unflatten(out, batch_shape, steps, units, out_size)


def _unflatten(out: LSTMOutput, batch_shape: tuple, steps: int, units: int, out_size: int) -> LSTMOutput:
    return LSTMOutput(
        sequence=out.sequence.reshape(*batch_shape, steps, out_size),
        state=LSTMState(
            h=out.state.h.reshape(*batch_shape, out_size), c=out.state.c.reshape(*batch_shape, units)
        ),
    )


def _fast_flat(
    params: LSTMParams,
    xs: jax.Array,
    state: LSTMState,
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    *,
    config: fast.FastConfig,
    reverse: bool,
    keep_order: bool,
    zero_output_for_mask: bool,
    unroll: int | bool,
) -> LSTMOutput:
    """``fast.lstm_time_major`` on xs ``[N, T, I]`` with the same sequence semantics as the scan."""
    steps = xs.shape[1]
    order: Optional[jax.Array] = None
    if reverse:
        if lengths is None:
            order = jnp.broadcast_to(jnp.arange(steps)[::-1], xs.shape[:2])
        else:
            # reverse=True: _processing_order returns an index, never None.
            order = cast(jax.Array, jax.vmap(partial(_processing_order, steps, reverse=True))(lengths))
        xs = jnp.take_along_axis(xs, order[..., None], axis=1)
        mask = None if mask is None else jnp.take_along_axis(mask, order, axis=1)
    valid = None if lengths is None else jnp.arange(steps) < lengths[:, None]
    keep = valid if mask is None else (mask if valid is None else mask & valid)
    if unroll != 1:
        config = config._replace(unroll=unroll)
    time_major = partial(jnp.swapaxes, axis1=0, axis2=1)
    ys, h, c = fast.lstm_time_major(
        params,
        time_major(xs),
        state.h,
        state.c,
        None if keep is None else time_major(keep),
        None if valid is None else time_major(valid),
        zero_output_for_mask=zero_output_for_mask,
        config=config,
    )
    ys = time_major(ys)
    if order is not None and keep_order:
        ys = jnp.take_along_axis(ys, order[..., None], axis=1)
    return LSTMOutput(sequence=ys, state=LSTMState(h=h, c=c))


@jax.custom_jvp
def _cudnn_flat(
    params: LSTMParams, xs: jax.Array, state: LSTMState, lengths: Optional[jax.Array]
) -> LSTMOutput:
    return cudnn.lstm(params, xs, state, lengths)


@_cudnn_flat.defjvp
def _cudnn_flat_jvp(primals: tuple, tangents: tuple) -> tuple[LSTMOutput, LSTMOutput]:
    # cuDNN runs undifferentiated calls; derivatives, in every mode and order, are the fast path's
    # (jax.experimental.rnn's custom_vjp could not be differentiated in forward mode).
    def fast_path(params, xs, state, lengths):
        return _fast_flat(
            params,
            xs,
            state,
            None,
            lengths,
            config=fast.FastConfig(),
            reverse=False,
            keep_order=False,
            zero_output_for_mask=False,
            unroll=1,
        )

    return jax.jvp(fast_path, primals, tangents)


def lstm(
    params: LSTMParams,
    xs: jax.Array,
    initial_state: Optional[LSTMState] = None,
    mask: Optional[jax.Array] = None,
    *,
    reverse: bool = False,
    keep_order: bool = False,
    lengths: Optional[jax.Array] = None,
    zero_output_for_mask: Optional[bool] = None,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
    unroll: int | bool = 1,
    dtype: Any = None,
    recurrent_dropout_mask: Optional[jax.Array] = None,
    impl: str = "auto",
    time_major: bool = False,
    layer_norm_epsilon: float = 1e-3,
    layer_norm_carry: str = "raw",
    zoneout: float | tuple[float, float] = 0.0,
    dropout_masks: str = "shared",
    carry_dtype: Any = None,
    resets: Optional[jax.Array] = None,
    reset_state: Optional[LSTMState] = None,
    zoneout_key: Optional[jax.Array] = None,
    weight_drop_mask: Optional[jax.Array] = None,
    input_dropout_mask: Optional[jax.Array] = None,
) -> LSTMOutput:
    """Run the LSTM over whole sequences: ``lax.scan`` over time, ``vmap`` over batch axes, jitted.

    Args:
        params: ``LSTMParams``.
        xs: ``[..., T, input_size]``; any number of leading batch axes, including none
            (``[T, ..., input_size]`` with ``time_major``).
        initial_state: ``LSTMState`` whose h and c broadcast to the batch (h ``[..., output_size]``,
            c ``[..., units]``); zeros if None. A bare tuple is refused (Flax's carry is ``(c, h)``,
            Keras's state ``[h, c]``): use ``LSTMState(h=..., c=...)`` or ``LSTMState.from_flax_carry``.
        mask: ``[..., T]`` (``[T, ...]`` with ``time_major``), bool or 0/1 numbers, Keras semantics:
            a masked step keeps the state and emits the previous output (h), or zeros with
            ``zero_output_for_mask``. Positional or keyword, as in every entry point.
        reverse: process t = T-1 ... 0 (Keras ``go_backwards``). Outputs come in processing order,
            as in Keras, unless ``keep_order``.
        keep_order: with ``reverse``, return the outputs in input order (what a bidirectional layer
            needs). Only here, deliberately: the layers above never run one direction reversed
            for output (``bidirectional`` sets it itself; the modules' ``go_backwards`` is Keras's,
            outputs in processing order).
        lengths: ``[...]`` int, right padding (PyTorch packed / Flax ``seq_lengths``): the final
            state is each sequence's state at its own last valid step, ``reverse`` runs over each
            valid prefix only, padded outputs are zero. Values outside [0, T] raise when concrete;
            traced (under ``jit``) they count as clamped to [0, T].
        zero_output_for_mask: see ``mask``; None (default) is Keras's LSTM default, False.
        activation, recurrent_activation: a Keras name or a callable (defaults tanh, sigmoid).
        unroll: time steps per scan iteration (``lax.scan``'s ``unroll``); Keras's bool also works
            (False is 1).
        dtype: computation dtype; default: the promoted dtype of xs and params.
        recurrent_dropout_mask: ``[..., output_size]`` float (broadcast to the batch like
            ``initial_state.h``), multiplied onto h before ``h @ recurrent_kernel`` at every step
            (Keras ``recurrent_dropout``: one mask per sequence); the carried h stays unmasked.
            ``[..., G, output_size]`` with ``dropout_masks="per_gate"``: one mask per gate block
            (Keras 3's LSTM draws 4). It is the hook the Flax modules' ``recurrent_dropout`` rate
            draws into; ``stacked_lstm`` has PyTorch's between-layer dropout, which has none.
        impl: which implementation computes the sequence; every one composes with every JAX
            transformation (jit, vmap, grad, jvp, linearize, jacfwd/jacrev, hessian, checkpoint,
            control flow, shard_map), in forward and reverse mode.
            ``"auto"`` (default): ``jaxlstm.fast`` (a time-major scan whose derivatives are a fast
            linear recurrence and its transpose) where it applies (sigmoid/tanh, no projection, no
            recurrent dropout), the reference scan otherwise; the fast path runs on the native CPU
            kernels (as ``"native"``) where ``jaxlstm.native.preferred(N, T, I, H, dtype)`` says they
            are faster (today: jax's default backend is the CPU, float32, T >= 1 and the extension
            available; N is the product of the batch axes as traced, per example under ``vmap``).
            ``"scan"``: always the reference scan.
            A ``jaxlstm.fast.FastConfig``: the fast path with those options, e.g.
            ``FastConfig(checkpoint_chunks=n)`` for O(T/n + n) training memory; a ValueError where the
            fast path does not apply. ``"cudnn"``: cuDNN's LSTM on a CUDA GPU (``jaxlstm.cudnn``:
            float32, sigmoid/tanh, no projection, no mask, no reverse; raises a ValueError where it
            cannot run) for undifferentiated calls, the fast path's derivatives under differentiation.
            ``"native"``: the native CPU kernels (``jaxlstm.native``).
        time_major: xs is ``[T, ..., input_size]`` (PyTorch's default layout; Flax
            ``nn.RNN(time_major=True)``), and so are the mask, ``resets`` and the output sequence.

    The variants (README "Variants" for the equations; G = params.gates, 4, or 3 with coupled
    gates; H units, P output_size, I input_size). Layer norm, peepholes and coupled gates are in
    ``params`` (``init(layer_norm=, peepholes=, coupled_gates=)``); the rest are these keywords.
    Every variant but weight drop and a shared ``input_dropout_mask`` runs on the reference scan.

        layer_norm_epsilon: with ``params.layer_norm``, the epsilon inside the square root
            (default 1e-3, Keras's and TF Addons').
        layer_norm_carry: ``"raw"`` (Ba et al.: the carried c is the unnormalised new cell) or
            ``"normalised"`` (TF Addons ``LayerNormLSTMCell``: it carries LN(c)).
        zoneout: the rate z, or ``(z_c, z_h)``, each in [0, 1) (Krueger et al.): with
            ``zoneout_key`` each unit keeps its previous c (h) with probability z at every step;
            without a key (evaluation) ``c_t = z c_{t-1} + (1 - z) c~_t``.
        dropout_masks: ``"shared"`` (one mask for every gate) or ``"per_gate"``: the shape of
            ``recurrent_dropout_mask`` and ``input_dropout_mask``.
        carry_dtype: e.g. float32 under ``dtype=bfloat16``: the matmuls take bfloat16 operands and
            accumulate in float32, the gates and c are float32 (``state.c`` is returned in it), h
            and the outputs are in ``dtype``. None: ``dtype``.
        resets: ``[..., T]`` bool (``[T, ...]`` with ``time_major``): at a True step the state is
            replaced by ``reset_state`` before the step (Haiku ``ResetCore``; the flag travels with
            its input step under ``reverse``; padding steps never reset). No gradient flows through
            a reset into earlier steps.
        reset_state: ``LSTMState`` broadcast to the batch like ``initial_state``; None: zeros.
        zoneout_key: a PRNG key; step t (input time) keeps c where
            ``bernoulli(fold_in(k_c, t), z_c, (*batch, H))``, h likewise with ``k_h`` and ``[..., P]``,
            ``k_c, k_h = jax.random.split(zoneout_key)``. None: evaluation. The masks are drawn for
            the batch this call sees: under ``vmap`` or ``shard_map`` give each instance its own key
            (e.g. ``fold_in`` its index), or every instance draws the same masks.
        weight_drop_mask: ``[P, G*H]`` float, multiplied onto ``recurrent_kernel`` once per call
            (DropConnect, AWD-LSTM), shared by the batch.
        input_dropout_mask: ``[..., I]`` (``[..., G, I]`` per gate) float, multiplied onto every x_t
            before ``x_t @ kernel``.

    Returns:
        ``LSTMOutput(sequence [..., T, output_size], state LSTMState(h [..., output_size],
        c [..., units]))``; output_size is units unless params has a projection. With
        ``time_major`` the sequence is ``[T, ..., output_size]``.
    """
    options = SequenceOptions.of(locals())
    inputs = CallInputs.of(locals())
    return run(
        params,
        xs,
        initial_state,
        mask,
        lengths,
        options,
        reverse=checks.flag(reverse, "reverse"),
        keep_order=checks.flag(keep_order, "keep_order"),
        inputs=inputs,
    )


def run(
    params: LSTMParams,
    xs: jax.Array,
    initial_state: Optional[LSTMState],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    options: SequenceOptions,
    *,
    reverse: bool = False,
    keep_order: bool = False,
    inputs: Optional[CallInputs] = None,
) -> LSTMOutput:
    """``lstm`` with its options as one ``SequenceOptions`` and its per-call arrays as one
    ``CallInputs`` (what every layer calls)."""
    inputs = CallInputs() if inputs is None else inputs
    input_size, units, out = checks.params(params)
    batch_shape, steps = checks.sequence(xs, input_size, time_major=options.time_major)
    if initial_state is not None:
        checks.state(initial_state, batch_shape, units, out)
    if mask is not None:
        checks.mask(mask, batch_shape, steps, options.time_major)
    if lengths is not None:
        checks.lengths(lengths, batch_shape, steps)
    checks.call_inputs(
        inputs,
        batch_shape=batch_shape,
        steps=steps,
        input_size=input_size,
        units=units,
        output_size=out,
        gates=params.gates,
        time_major=options.time_major,
        per_gate=options.dropout_masks == "per_gate",
        zoneout=options.zoneout,
    )
    if keep_order and not reverse:
        raise ValueError("keep_order: only meaningful with reverse=True")
    xs = jnp.asarray(xs)
    mask = None if mask is None else jnp.asarray(mask).astype(bool)
    resets = None if inputs.resets is None else jnp.asarray(inputs.resets).astype(bool)
    if options.time_major:
        xs = jnp.moveaxis(xs, 0, -2)
        mask, resets = (None if a is None else jnp.moveaxis(a, 0, -1) for a in (mask, resets))
    as_array = lambda tree: jax.tree_util.tree_map(jnp.asarray, tree)  # noqa: E731
    inputs = inputs._replace(
        resets=resets,
        reset_state=as_array(inputs.reset_state),
        weight_drop_mask=as_array(inputs.weight_drop_mask),
        recurrent_dropout_mask=as_array(inputs.recurrent_dropout_mask),
        input_dropout_mask=as_array(inputs.input_dropout_mask),
    )
    # The computation dtype: as given, else the promoted dtype of the inputs and the parameters.
    dtype = options.dtype if options.dtype is not None else jnp.result_type(xs.dtype, params.kernel.dtype)
    checks.carry_dtype(options.carry_dtype, dtype)
    time_major = options.time_major
    options = options.replace(dtype=dtype, zero_output_for_mask=options.zero_output(False), time_major=False)
    impl = options.impl
    if isinstance(impl, fast.FastConfig):
        _check_fast_supported(params, options, inputs, impl)
    if impl == "cudnn":
        variant = fast.variant(params, options, inputs)
        if variant is not None:
            raise ValueError(
                f"jaxlstm: impl='cudnn': {variant}: cuDNN's LSTM is the plain one; use impl='auto'"
            )
        cudnn.check_supported(
            params, options.activation, options.recurrent_activation, mask, reverse, None, dtype
        )
    out = _lstm(
        params,
        xs,
        initial_state,
        mask,
        None if lengths is None else jnp.asarray(lengths),
        inputs,
        reverse=reverse,
        keep_order=keep_order,
        options=options,
    )
    if time_major:
        out = out._replace(sequence=jnp.moveaxis(out.sequence, -2, 0))
    return out


def _check_fast_supported(
    params: LSTMParams, options: SequenceOptions, inputs: CallInputs, config: fast.FastConfig
) -> None:
    """An explicit FastConfig must run the fast path (its memory and speed are why it was asked for)."""
    variant = fast.variant(params, options, inputs)
    if params.projection is not None:
        reason = "params: the fast path has no projection (proj_size)"
    elif variant is not None:
        reason = f"{variant}: not supported by the fast path (it computes the plain LSTM cell)"
    elif not fast.supports(params, options.activation, options.recurrent_activation):
        reason = "activation: the fast path computes sigmoid gates and tanh activations only"
    elif config.native:
        _check_native_supported(options.dtype)
        return
    else:
        return
    raise ValueError(f"jaxlstm: impl={config!r}: {reason}; use impl='auto' (the reference scan runs it)")


def _check_native_supported(dtype: Any) -> None:
    from . import native  # only when asked for: the extension is optional

    if not native.available():
        reason = f"the native kernels are unavailable: {native.why_unavailable()}"
    elif jnp.dtype(dtype) != jnp.float32:
        reason = f"dtype: float32 only (found {jnp.dtype(dtype).name})"
    elif jax.default_backend() != "cpu":
        reason = f"the native kernels run on CPU, and jax's default backend is {jax.default_backend()!r}"
    else:
        return
    raise ValueError(f"jaxlstm: impl='native': {reason}; use impl='auto'")
