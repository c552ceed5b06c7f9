"""The whole LSTM math: initialisation, one step, and the scan over time. Imports jax and numpy only.

    step(params, state, x_t) -> (state, y_t)     one time step
    lstm(params, xs, ...)    -> LSTMOutput       lax.scan(step) over time, vmap over any batch axes

Numerics follow Keras (gate order i, f, c, o; see ``LSTMParams``)::

    z = x_t @ kernel + h @ recurrent_kernel + bias;  z_i, z_f, z_c, z_o = split(z, 4)
    c_t = σ(z_f) * c + σ(z_i) * tanh(z_c);  h_t = σ(z_o) * tanh(c_t);  y_t = h_t
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np

from . import checks, cudnn, fast
from ._manual_axes import vary_like
from ._options import Initializer, SequenceOptions, WeightOptions
from .activations import Activation, ActivationLike, resolve
from .pytrees import LSTMOutput, LSTMParams, LSTMState

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

    Returns:
        ``LSTMParams`` with kernel ``[I, 4H]``, recurrent_kernel ``[H, 4H]`` (``[P, 4H]`` with a
        projection), bias ``[4H]`` or None, projection ``[H, P]`` or None.
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
    )
    return init_params(key, input_size, units, weights)


def init_params(key: jax.Array, input_size: int, units: int, weights: WeightOptions) -> LSTMParams:
    """``init`` with its options as one ``WeightOptions``; one key per field (kernel, recurrent_kernel,
    bias, projection), split from ``key``."""
    keys = dict(zip(LSTMParams._fields, jax.random.split(key, 4)))
    specs = weights.specs(input_size, units)
    return LSTMParams(**{f: draw(keys[f], shape, weights.param_dtype) for f, (draw, shape) in specs.items()})


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


def raw_step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    activation: Activation,
    recurrent_activation: Activation,
    recurrent_dropout_mask: Optional[jax.Array] = None,
) -> tuple[LSTMState, jax.Array]:
    # Recurrent dropout (Keras LSTMCell) scales only what enters the matmul; the carried h is unmasked.
    h_in = state.h if recurrent_dropout_mask is None else state.h * recurrent_dropout_mask
    z = x_t @ params.kernel + h_in @ params.recurrent_kernel
    if params.bias is not None:
        z = z + params.bias
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    c = recurrent_activation(z_f) * state.c + recurrent_activation(z_i) * activation(z_c)
    h = recurrent_activation(z_o) * activation(c)
    if params.projection is not None:
        h = h @ params.projection
    return LSTMState(h=h, c=c), h


def step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    *,
    activation: ActivationLike = "tanh",
    recurrent_activation: ActivationLike = "sigmoid",
) -> tuple[LSTMState, jax.Array]:
    """Advance one example by one time step.

    Args:
        params: ``LSTMParams``.
        state: ``LSTMState`` with h ``[..., output_size]`` and c ``[..., units]`` that broadcast to
            x_t's batch axes (an unbatched state serves a whole batch, as in ``lstm``).
        x_t: ``[..., input_size]``.
        activation, recurrent_activation: a Keras name or a callable (defaults tanh, sigmoid).

    Returns:
        ``(new_state, y_t)`` with ``y_t == new_state.h``, ``[..., output_size]``.
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
    return raw_step(
        params,
        state,
        x_t,
        resolve(activation, "activation"),
        resolve(recurrent_activation, "recurrent_activation"),
    )


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


def _one_sequence(
    params: LSTMParams,
    xs: jax.Array,
    state: LSTMState,
    mask: Optional[jax.Array],
    length: Optional[jax.Array],
    recurrent_dropout_mask: Optional[jax.Array] = None,
    *,
    reverse: bool,
    keep_order: bool,
    zero_output_for_mask: bool,
    activation: Activation,
    recurrent_activation: Activation,
    unroll: int | bool,
) -> LSTMOutput:
    """One sequence: xs ``[T, I]``, state ``[H]``, mask ``[T]`` or None, length ``[]`` or None,
    recurrent_dropout_mask ``[output_size]`` or None (the same at every step)."""
    steps = xs.shape[0]
    order = _processing_order(steps, length, reverse)
    if order is not None:
        xs = xs[order]
        mask = None if mask is None else mask[order]
    # After reordering, the valid steps of a sequence with a length are always its first `length`.
    valid = None if length is None else jnp.arange(steps) < length

    def body(carry: LSTMState, inputs: tuple) -> tuple[LSTMState, jax.Array]:
        x_t, m_t, v_t = inputs
        new, y = raw_step(params, carry, x_t, activation, recurrent_activation, recurrent_dropout_mask)
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

    final, ys = jax.lax.scan(body, state, (xs, mask, valid), unroll=unroll)
    if order is not None and keep_order:
        ys = ys[order]
    return LSTMOutput(sequence=ys, state=final)


@partial(jax.jit, static_argnames=("reverse", "keep_order", "options"))
def _lstm(
    params: LSTMParams,
    xs: jax.Array,
    initial_state: Optional[LSTMState],
    mask: Optional[jax.Array],
    lengths: Optional[jax.Array],
    recurrent_dropout_mask: Optional[jax.Array],
    *,
    reverse: bool,
    keep_order: bool,
    options: SequenceOptions,
) -> LSTMOutput:
    """``run`` past its checks: xs ``[..., T, I]`` batch-major; ``options.dtype`` is set and
    ``options.zero_output_for_mask`` resolved."""
    dtype, impl = options.dtype, options.impl
    batch_shape, (steps, features) = xs.shape[:-2], xs.shape[-2:]
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    if initial_state is None:
        initial_state = zero_state(params, batch_shape, dtype)
    units, out_size = params.units, params.output_size

    # Flatten all batch axes into one and vmap over it: any number of batch axes, including none.
    n = math.prod(batch_shape)
    flat_state = LSTMState(
        h=jnp.broadcast_to(initial_state.h.astype(dtype), (*batch_shape, out_size)).reshape(n, out_size),
        c=jnp.broadcast_to(initial_state.c.astype(dtype), (*batch_shape, units)).reshape(n, units),
    )
    flat_xs = xs.astype(dtype).reshape(n, steps, features)
    flat_mask = None if mask is None else mask.reshape(n, steps)
    # run() refuses lengths outside [0, T] when it can see them; under jit it cannot, and they
    # count as clamped (otherwise reverse would gather out of range).
    flat_lengths = None if lengths is None else jnp.clip(lengths.reshape(n), 0, steps)
    flat_rd_mask = None
    if recurrent_dropout_mask is not None:
        rd_mask = recurrent_dropout_mask.astype(dtype)
        flat_rd_mask = jnp.broadcast_to(rd_mask, (*batch_shape, out_size)).reshape(n, out_size)
    # Under shard_map the carry must vary over the mesh axes its inputs vary over.
    flat_state = vary_like(flat_state, params, flat_xs, flat_mask, flat_lengths, flat_rd_mask)
    zero_output = bool(options.zero_output_for_mask)
    if impl == "cudnn":  # run() has checked that cuDNN computes this configuration
        out = _cudnn_flat(params, flat_xs, flat_state, flat_lengths)
        return _unflatten(out, batch_shape, steps, units, out_size)
    if (
        impl != "scan"
        and recurrent_dropout_mask is None
        and fast.supports(params, options.activation, options.recurrent_activation)
    ):
        config = impl if isinstance(impl, fast.FastConfig) else fast.FastConfig()
        if impl == "auto" and jax.default_backend() == "cpu":
            from . import native  # only here: the extension is optional

            config = config._replace(native=native.preferred(n, steps, features, units, dtype))
        out = _fast_flat(
            params,
            flat_xs,
            flat_state,
            flat_mask,
            flat_lengths,
            config=config,
            reverse=reverse,
            keep_order=keep_order,
            zero_output_for_mask=zero_output,
            unroll=options.unroll,
        )
        return _unflatten(out, batch_shape, steps, units, out_size)
    run_one = partial(
        _one_sequence,
        reverse=reverse,
        keep_order=keep_order,
        zero_output_for_mask=zero_output,
        activation=options.activation,
        recurrent_activation=options.recurrent_activation,
        unroll=options.unroll,
    )
    out = jax.vmap(run_one, in_axes=(None, 0, 0, 0, 0, 0))(
        params, flat_xs, flat_state, flat_mask, flat_lengths, flat_rd_mask
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
            Only here, deliberately: it is the hook the Flax modules' ``recurrent_dropout`` rate
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
            ``nn.RNN(time_major=True)``), and so are the mask and the output sequence.

    Returns:
        ``LSTMOutput(sequence [..., T, output_size], state LSTMState(h [..., output_size],
        c [..., units]))``; output_size is units unless params has a projection. With
        ``time_major`` the sequence is ``[T, ..., output_size]``.
    """
    options = SequenceOptions.of(locals())
    return run(
        params,
        xs,
        initial_state,
        mask,
        lengths,
        options,
        reverse=checks.flag(reverse, "reverse"),
        keep_order=checks.flag(keep_order, "keep_order"),
        recurrent_dropout_mask=recurrent_dropout_mask,
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
    recurrent_dropout_mask: Optional[jax.Array] = None,
) -> LSTMOutput:
    """``lstm`` with its options as one ``SequenceOptions`` (what every layer calls)."""
    input_size, units, out = checks.params(params)
    batch_shape, steps = checks.sequence(xs, input_size, time_major=options.time_major)
    if initial_state is not None:
        checks.state(initial_state, batch_shape, units, out)
    if mask is not None:
        checks.mask(mask, batch_shape, steps, options.time_major)
    if lengths is not None:
        checks.lengths(lengths, batch_shape, steps)
    if recurrent_dropout_mask is not None:
        checks.broadcasts(recurrent_dropout_mask, (*batch_shape, out), "recurrent_dropout_mask")
    if keep_order and not reverse:
        raise ValueError("keep_order: only meaningful with reverse=True")
    xs = jnp.asarray(xs)
    mask = None if mask is None else jnp.asarray(mask).astype(bool)
    if options.time_major:
        xs, mask = jnp.moveaxis(xs, 0, -2), None if mask is None else jnp.moveaxis(mask, 0, -1)
    # The computation dtype: as given, else the promoted dtype of the inputs and the parameters.
    dtype = options.dtype if options.dtype is not None else jnp.result_type(xs.dtype, params.kernel.dtype)
    impl = options.impl
    if isinstance(impl, fast.FastConfig):
        _check_fast_supported(params, options, recurrent_dropout_mask, impl, dtype)
    if impl == "cudnn":
        cudnn.check_supported(
            params,
            options.activation,
            options.recurrent_activation,
            mask,
            reverse,
            recurrent_dropout_mask,
            dtype,
        )
    out = _lstm(
        params,
        xs,
        initial_state,
        mask,
        None if lengths is None else jnp.asarray(lengths),
        None if recurrent_dropout_mask is None else jnp.asarray(recurrent_dropout_mask),
        reverse=reverse,
        keep_order=keep_order,
        options=options.replace(
            dtype=dtype, zero_output_for_mask=options.zero_output(False), time_major=False
        ),
    )
    if options.time_major:
        out = out._replace(sequence=jnp.moveaxis(out.sequence, -2, 0))
    return out


def _check_fast_supported(
    params: LSTMParams,
    options: SequenceOptions,
    recurrent_dropout_mask: Optional[jax.Array],
    config: fast.FastConfig,
    dtype: Any,
) -> None:
    """An explicit FastConfig must run the fast path (its memory and speed are why it was asked for)."""
    if params.projection is not None:
        reason = "params: the fast path has no projection (proj_size)"
    elif not fast.supports(params, options.activation, options.recurrent_activation):
        reason = "activation: the fast path computes sigmoid gates and tanh activations only"
    elif recurrent_dropout_mask is not None:
        reason = "recurrent_dropout_mask: not supported by the fast path"
    elif config.native:
        _check_native_supported(dtype)
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
