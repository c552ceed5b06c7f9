"""What the Flax wrappers (``linen``, ``nnx``) share: their options, input and state checks, the
training/deterministic switch, and the one call that turns a Keras-style layer call into
``core.run`` and its result into Keras-style outputs. The wrappers only own parameters, RNGs and the
kept state; everything they compute goes through here into the core and the layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import core
from ..core import checks
from ..core.options import CallInputs, InitializerLike, SequenceOptions, WeightOptions
from ..core.pytrees import BidirectionalParams, LayerNormParams, LSTMParams, LSTMState, PeepholeParams
from ._dropout import keep_mask, sequence_masks, weight_drop_masks

__all__ = ["InitializerLike", "StateLike"]

StateLike = Union[LSTMState, Sequence[jax.Array]]

_SEQUENCE = (
    "activation",
    "recurrent_activation",
    "unroll",
    "dtype",
    "zero_output_for_mask",
    "impl",
    "layer_norm_epsilon",
    "layer_norm_carry",
    "zoneout",
    "dropout_masks",
    "carry_dtype",
)
# The weight variants (and use_bias): flags of the module that given params must agree with.
_VARIANT_FLAGS = ("use_bias", "coupled_gates", "layer_norm", "peepholes")
_WEIGHTS = (
    *_VARIANT_FLAGS,
    "unit_forget_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "projection_initializer",
    "proj_size",
    "param_dtype",
)
_FLAGS = ("return_sequences", "return_state", "go_backwards", "stateful", "bidirectional", "residual")


def _fields(source: Any, names: Sequence[str]) -> dict[str, Any]:
    """The named options of a module (its attributes) or of a constructor (its ``locals()``)."""
    if isinstance(source, Mapping):
        return {n: source[n] for n in names if n in source}
    return {n: getattr(source, n) for n in names if hasattr(source, n)}


def sequence_options(source: Any) -> SequenceOptions:
    """The ``SequenceOptions`` of a module's (or constructor's) keyword arguments, validated, with
    the module's boolean switches checked to be bools."""
    for name, value in _fields(source, _FLAGS).items():
        checks.flag(value, name)
    return SequenceOptions.of(_fields(source, (*_SEQUENCE, "time_major")))


def weight_options(source: Any) -> WeightOptions:
    """The ``WeightOptions`` of a module's (or constructor's) keyword arguments, validated."""
    return WeightOptions.keras(**_fields(source, _WEIGHTS))


def dropout_rates(dropout: Any, recurrent_dropout: Any = 0.0) -> tuple[float, float]:
    return checks.fraction(dropout, "dropout"), checks.fraction(recurrent_dropout, "recurrent_dropout")


def regularised(
    dropout: float, recurrent_dropout: float, weight_drop: float, options: SequenceOptions
) -> bool:
    """Whether a layer with these rates draws randomness in training (so needs a mode and an RNG):
    input or recurrent dropout, weight drop or zoneout."""
    return dropout > 0 or recurrent_dropout > 0 or weight_drop > 0 or options.zoneout != (0.0, 0.0)


def is_deterministic(
    deterministic: Optional[bool], training: Optional[bool], default: Optional[bool], needed: bool
) -> bool:
    """Resolve Flax's ``deterministic`` and Keras's ``training`` (its negation) into one flag.

    Call arguments win over the module's default. ``needed`` (some dropout, weight-drop or zoneout
    rate > 0) makes a missing
    value an error, as in ``flax.linen.Dropout``; with no dropout the answer does not matter.
    """
    if deterministic is not None and training is not None and bool(deterministic) == bool(training):
        raise ValueError(
            f"deterministic={deterministic} and training={training} disagree; pass only one "
            "(training is Keras's name for not deterministic)"
        )
    if deterministic is not None:
        return checks.flag(deterministic, "deterministic")
    if training is not None:
        return not checks.flag(training, "training")
    if default is not None:
        return checks.flag(default, "deterministic")
    if needed:
        raise ValueError(
            "deterministic: dropout is > 0 (dropout, recurrent_dropout, weight_drop or zoneout), so "
            "pass deterministic=True/False (or training=False/True) to the call or to the module"
        )
    return True


def as_state(initial_state: Optional[StateLike]) -> Optional[LSTMState]:
    """``LSTMState(h, c)``, or Keras's list ``[h, c]``, or None. A bare tuple is refused: it is
    Flax's carry order ``(c, h)`` as often as Keras's ``(h, c)``."""
    if initial_state is None or isinstance(initial_state, LSTMState):
        return initial_state
    if isinstance(initial_state, list) and len(initial_state) == 2:
        return LSTMState(h=initial_state[0], c=initial_state[1])
    raise TypeError(
        "initial_state: expected LSTMState(h=..., c=...) or Keras's list [h, c], found "
        f"{type(initial_state).__name__}" + (checks.TUPLE_STATE if isinstance(initial_state, tuple) else "")
    )


def check_inputs(
    inputs: Any, input_size: Optional[int], time_major: bool = False, hint: str = ""
) -> tuple[tuple[int, ...], int]:
    """A module's inputs ``[..., T, input_size]`` (``[T, ..., input_size]`` when ``time_major``)
    with at least one step; returns ``(batch_shape, T)``. ``input_size`` None (a linen module before
    its first call) accepts any feature size.

    Zero time steps are refused, as PyTorch does: a layer's output is its last step's, and an empty
    sequence has none (``jaxlstm.lstm`` itself returns the empty sequence and the initial state).
    """
    if not (hasattr(inputs, "shape") and hasattr(inputs, "dtype")):
        raise TypeError(f"inputs: expected an array (jax or numpy), found {type(inputs).__name__}")
    shape: tuple[int, ...] = np.shape(inputs)
    batch_shape, steps = checks.sequence(inputs, input_size, "inputs", time_major, hint)
    if steps == 0:
        raise ValueError(
            f"inputs: expected at least one time step, found shape {checks.fmt(shape)} with T = 0"
        )
    return batch_shape, steps


def cell_inputs(carry: Any, inputs: Any, input_size: Optional[int], units: int) -> LSTMState:
    """A cell call's Flax carry ``(c [..., H], h [..., H])`` and inputs ``[..., input_size]``, checked
    before the cast to the compute dtype (which would hide integer inputs); returns the carry as state.
    ``input_size`` None (a linen cell before its first call) accepts any feature size."""
    checks.float_array(inputs, "inputs")
    shape = np.shape(inputs)
    if len(shape) < 1 or (input_size is not None and shape[-1] != input_size):
        raise ValueError(
            f"inputs: expected {input_size if input_size is not None else 'some'} features on the last "
            f"axis (shape [..., features], one time step), found shape {checks.fmt(shape)}"
        )
    if not isinstance(carry, (tuple, list)) or len(carry) != 2:
        length = f" of length {len(carry)}" if isinstance(carry, (tuple, list)) else ""
        raise TypeError(f"carry: expected Flax's (c, h) pair, found {type(carry).__name__}{length}")
    expected = (*shape[:-1], units)
    for value, name in zip(carry, ("carry[0] (c)", "carry[1] (h)")):
        checks.float_array(value, name)
        if np.shape(value) != expected:
            raise ValueError(
                f"{name}: expected shape {checks.fmt(expected)} to match inputs {checks.fmt(shape)}, "
                f"found {checks.fmt(np.shape(value))}"
            )
    return LSTMState.from_flax_carry(tuple(carry))


def variant_flags(source: Any) -> dict[str, bool]:
    """``use_bias``, ``coupled_gates``, ``layer_norm``, ``peepholes``: of ``LSTMParams`` (what they
    hold) or of a module's ``WeightOptions`` (what it declares)."""
    if isinstance(source, LSTMParams):
        return dict(
            use_bias=source.bias is not None,
            coupled_gates=source.gates == 3,
            layer_norm=source.layer_norm is not None,
            peepholes=source.peepholes is not None,
        )
    return {name: bool(getattr(source, name, False)) for name in _VARIANT_FLAGS}


def module_params(params: Any, units: int, flags: Mapping[str, bool], name: str = "params") -> LSTMParams:
    """Parameters given to a Keras-style module: ``variant_params`` with no projection."""
    params = variant_params(params, units, flags, name)
    if params.projection is not None:
        raise ValueError(f"{name}.projection: the Keras-style LSTM has no projection; found one")
    return params


def variant_params(params: Any, units: int, flags: Mapping[str, bool], name: str = "params") -> LSTMParams:
    """One direction's parameters given to a module: valid ``LSTMParams`` of ``units`` and of the
    module's variant (``flags``, as ``variant_flags`` gives them): a bias iff ``use_bias``, 3 gate
    blocks iff ``coupled_gates``, ``layer_norm`` / ``peepholes`` fields iff those flags."""
    use_bias, coupled_gates = flags["use_bias"], flags.get("coupled_gates", False)
    layer_norm, peepholes = flags.get("layer_norm", False), flags.get("peepholes", False)
    gates = 3 if coupled_gates else 4
    # None when params has no kernel: np.shape(None) is (), and checks.params below reports it.
    given: Any = getattr(params, "kernel", None)
    kernel = np.shape(given)
    if len(kernel) == 2 and kernel[1] != gates * units:  # the module's units first: blame the kernel
        cifg = " (coupled_gates=True: blocks f, c, o)" if coupled_gates else ""
        other = ""
        if kernel[1] == (7 - gates) * units:
            other = f"; {7 - gates} gate blocks are a module with coupled_gates={not coupled_gates}"
        raise ValueError(
            f"{name}.kernel: expected shape [input_size, {gates}*units] = [{kernel[0]}, {gates * units}] "
            f"for units={units}{cifg}, found {checks.fmt(kernel)}{other}{checks.layout_hint(params)}"
        )
    checks.params(params, name)
    for field, on in (("bias", use_bias), ("layer_norm", layer_norm), ("peepholes", peepholes)):
        if (getattr(params, field) is None) == on:
            flag = "use_bias" if field == "bias" else field
            raise ValueError(
                f"{name}.{field}: this module has {flag}={on}, found {field} "
                f"{'None' if getattr(params, field) is None else 'present'}"
            )
    return params


# The nested fields of LSTMParams: stored as a dict of arrays under the field's name.
NESTED: dict[str, Any] = {"layer_norm": LayerNormParams, "peepholes": PeepholeParams}


def params_tree(params: LSTMParams) -> dict[str, Any]:
    """``LSTMParams`` as the modules store them: ``{field: array}`` for the present fields, and
    ``{subfield: array}`` under ``layer_norm`` / ``peepholes`` (``peepholes.i`` left out when None)."""
    tree: dict[str, Any] = {}
    for field, value in params._asdict().items():
        if value is not None and field in NESTED:
            value = {sub: v for sub, v in value._asdict().items() if v is not None}
        if value is not None:
            tree[field] = value
    return tree


def tree_params(tree: Mapping[str, Any]) -> LSTMParams:
    """The inverse of ``params_tree`` (no checks; absent fields and subfields are None)."""
    fields: dict[str, Any] = {}
    for field in LSTMParams._fields:
        value = tree.get(field)
        if value is not None and field in NESTED:
            value = NESTED[field](**{sub: value.get(sub) for sub in NESTED[field]._fields})
        fields[field] = value
    return LSTMParams(**fields)


def check_kept_state(kept: LSTMState, batch_shape: tuple[int, ...]) -> None:
    """A stateful layer's kept state must have the batch shape of the new inputs."""
    kept_shape = tuple(np.shape(kept.c)[:-1])
    if kept_shape != tuple(batch_shape):
        raise ValueError(
            f"inputs: a stateful LSTM keeps a state of batch shape {checks.fmt(kept_shape)}, but the "
            f"inputs have batch shape {checks.fmt(batch_shape)}; reset_state(batch_shape=...) "
            "starts over with a new batch shape"
        )


def zeroed_state(
    kept: Optional[LSTMState], units: int, batch_shape: Optional[Sequence[int]]
) -> Optional[LSTMState]:
    """What ``reset_state`` keeps: zeros like ``kept``, or zeros of a new ``batch_shape``."""
    if batch_shape is not None:
        dtype = jnp.float32 if kept is None else kept.c.dtype
        return core.zero_state(units, tuple(batch_shape), dtype)
    return None if kept is None else jax.tree_util.tree_map(jnp.zeros_like, kept)


def run(
    module: Any,
    params: LSTMParams,
    inputs: jax.Array,
    initial_state: Optional[StateLike],
    mask: Optional[jax.Array],
    options: SequenceOptions,
    *,
    batch_shape: tuple[int, ...],
    kept: Optional[LSTMState],
    lengths: Optional[jax.Array],
    resets: Optional[jax.Array],
    deterministic: Optional[bool],
    training: Optional[bool],
    dropout_key: Callable[[], jax.Array],
) -> tuple[Any, LSTMState]:
    """One call of a linen or NNX ``LSTM`` (``module``: its dropout, recurrent_dropout and
    weight_drop rates, deterministic default, stateful, go_backwards, return_sequences,
    return_state): a stateful layer starts from ``kept`` (zeros when None); in training
    (``dropout_key()`` draws one key when some rate is > 0) input dropout on x_t and recurrent
    dropout on h (one mask per sequence for every step, per gate with ``dropout_masks="per_gate"``),
    one weight-drop mask on ``recurrent_kernel`` and zoneout's key; then ``core.run``. In evaluation
    no mask, and zoneout is its expectation.

    Returns Keras's outputs (the sequence ``[..., T, H]`` or the last output ``[..., H]``, and
    ``(output, h, c)`` with ``return_state``) and the final state. The last output is the last step
    in processing order (zeros there if it is masked with ``zero_output_for_mask``); with
    ``lengths``, each sequence's own last step, h (step T-1 is padding). ``resets`` ``[..., T]``
    (``[T, ...]`` with ``time_major``) resets the state to zeros before a True step.
    """
    initial_state = as_state(initial_state)
    if module.stateful:
        if kept is None:
            kept = core.zero_state(
                params.units, batch_shape, compute_dtype(module.dtype, inputs, module.param_dtype)
            )
        check_kept_state(kept, batch_shape)
        initial_state = kept if initial_state is None else initial_state
    dropout, recurrent_dropout = dropout_rates(module.dropout, module.recurrent_dropout)
    weight_drop = checks.fraction(module.weight_drop, "weight_drop")
    dropping = regularised(dropout, recurrent_dropout, weight_drop, options)
    evaluating = is_deterministic(deterministic, training, module.deterministic, dropping)
    key = dropout_key() if dropping and not evaluating else None
    if options.time_major:  # Keras's layout from here on; the sequence goes back at the end
        inputs = jnp.moveaxis(inputs, 0, -2)
        mask, resets = (None if a is None else jnp.moveaxis(jnp.asarray(a), 0, -1) for a in (mask, resets))
    dtype = compute_dtype(options.dtype, inputs, params.kernel.dtype)
    masks = sequence_masks(
        key,
        dropout=0.0 if key is None else dropout,
        recurrent_dropout=0.0 if key is None else recurrent_dropout,
        batch_shape=np.shape(inputs)[:-2],
        input_size=np.shape(inputs)[-1],
        output_size=params.output_size,
        dtype=dtype,
        gates=params.gates if options.dropout_masks == "per_gate" else None,
    )
    # Weight drop and zoneout draw from keys of their own, so the dropout masks keep their bits.
    weight_drop_mask = None
    if key is not None and weight_drop > 0:
        shape = np.shape(params.recurrent_kernel)
        weight_drop_mask = keep_mask(jax.random.fold_in(key, 1), weight_drop, shape, dtype)
    zoneout_key = None if key is None or options.zoneout == (0.0, 0.0) else jax.random.fold_in(key, 2)
    out = core.run(
        params,
        inputs,
        initial_state,
        mask,
        lengths,
        options.replace(time_major=False),
        reverse=module.go_backwards,
        inputs=CallInputs(
            resets=resets,
            zoneout_key=zoneout_key,
            weight_drop_mask=weight_drop_mask,
            recurrent_dropout_mask=masks.recurrent,
            input_dropout_mask=masks.inputs,
        ),
    )
    if module.return_sequences:
        output = jnp.moveaxis(out.sequence, -2, 0) if options.time_major else out.sequence
    else:
        output = out.state.h if lengths is not None else out.sequence[..., -1, :]
    return ((output, out.state.h, out.state.c) if module.return_state else output), out.state


def bidirectional_inputs(
    module: Any,
    params: BidirectionalParams,
    resets: Optional[jax.Array],
    deterministic: Optional[bool],
    options: SequenceOptions,
    dropout_key: Callable[[], jax.Array],
) -> CallInputs:
    """A ``Bidirectional`` module's per-call inputs (``module``: its weight_drop rate and
    deterministic default): its resets and, in training (``dropout_key()`` draws one key when weight
    drop or zoneout is on), one weight-drop mask per direction and zoneout's key, from keys of
    their own."""
    weight_drop = checks.fraction(module.weight_drop, "weight_drop")
    dropping = regularised(0.0, 0.0, weight_drop, options)
    evaluating = is_deterministic(deterministic, None, module.deterministic, dropping)
    key = dropout_key() if dropping and not evaluating else None
    weight_drop_mask = zoneout_key = None
    if key is not None and weight_drop > 0:
        kernels = [p.recurrent_kernel for p in params]
        weight_drop_mask = weight_drop_masks(jax.random.fold_in(key, 1), weight_drop, kernels)
    if key is not None and options.zoneout != (0.0, 0.0):
        zoneout_key = jax.random.fold_in(key, 2)
    return CallInputs(resets=resets, zoneout_key=zoneout_key, weight_drop_mask=weight_drop_mask)


def stack_randomised(
    inter_layer_dropout: float, num_layers: int, weight_drop: float, options: SequenceOptions
) -> bool:
    """Whether a ``StackedLSTM`` draws randomness in training: between-layer dropout (with a layer
    above the first), weight drop or zoneout."""
    between = inter_layer_dropout > 0 and num_layers > 1
    return between or regularised(0.0, 0.0, weight_drop, options)


def compute_dtype(dtype: Any, inputs: jax.Array, param_dtype: Any) -> Any:
    """Flax's convention: ``dtype``, or when None the promotion of the inputs' and the parameters'."""
    return dtype if dtype is not None else jnp.result_type(inputs.dtype, param_dtype)


def cell_carry_dtypes(dtype: Any, param_dtype: Any, carry_dtype: Any) -> tuple[Any, Any]:
    """The dtypes ``(h, c)`` a cell's step returns, so its zero carry has them (a Flax RNN's scan
    needs the carry's types unchanged by a step): h in ``dtype`` (None: ``param_dtype``, what
    float inputs promote to), c in ``carry_dtype`` when set."""
    h = param_dtype if dtype is None else dtype
    return h, h if carry_dtype is None else carry_dtype


def cell_step(
    params: LSTMParams, state: LSTMState, inputs: jax.Array, options: SequenceOptions, dtype: Any
) -> tuple[LSTMState, jax.Array]:
    """A cell's one step in the compute ``dtype`` (c and the added weights in ``carry_dtype`` when
    set), every variant of ``params`` and ``options`` included; zoneout is its expectation (a cell
    has no per-step key: the Flax RNN drivers pass none), on the reference step."""
    return core.run_step(params, state, inputs, options.replace(impl="scan"), dtype)


# from_params overwrites every weight: zeros are the cheapest placeholders to create first.
PLACEHOLDER_INIT = dict(
    kernel_initializer="zeros",
    recurrent_initializer="zeros",
    bias_initializer="zeros",
    unit_forget_bias=False,
)


def stack_shape(params: Any) -> dict[str, Any]:
    """The sizes a stack (or bidirectional) module needs to hold ``params``: ``in_features``,
    ``units``, ``proj_size``, the variant flags (``use_bias``, ``coupled_gates``, ``layer_norm``,
    ``peepholes``), ``num_layers`` and ``bidirectional``."""
    layers = checks.layers(params) if not isinstance(params, BidirectionalParams) else (params,)
    checks.layer(layers[0], "params[0]")
    bottom = layers[0].forward if isinstance(layers[0], BidirectionalParams) else layers[0]
    return dict(
        in_features=bottom.input_size,
        units=bottom.units,
        proj_size=None if bottom.projection is None else bottom.output_size,
        **variant_flags(bottom),
        num_layers=len(layers),
        bidirectional=isinstance(layers[0], BidirectionalParams),
    )
