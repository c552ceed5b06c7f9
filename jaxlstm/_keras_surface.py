"""The Keras ``LSTM`` layer's surface, shared by the Flax wrappers (``linen``, ``nnx``).

Argument checks, initialisers by Keras name, the training/deterministic switch, and the one call that
turns Keras-style arguments into ``core.lstm`` and its result into Keras-style outputs. The wrappers
only own parameters, RNGs and the kept state; everything they compute goes through here into the core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import checks, core
from ._dropout import SequenceDropoutMasks
from .activations import ActivationLike, resolve
from .pytrees import LSTMOutput, LSTMParams, LSTMState

Initializer = Callable[[jax.Array, Sequence[int], Any], jax.Array]
InitializerLike = Union[str, Initializer]
StateLike = Union[LSTMState, Sequence[jax.Array]]

_init = jax.nn.initializers
# Keras names -> jax initialisers with the same distribution (Keras's glorot/he/lecun normals are
# truncated, as jax's are).
INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": _init.glorot_uniform(),
    "glorot_normal": _init.glorot_normal(),
    "he_uniform": _init.he_uniform(),
    "he_normal": _init.he_normal(),
    "lecun_uniform": _init.lecun_uniform(),
    "lecun_normal": _init.lecun_normal(),
    "orthogonal": _init.orthogonal(),
    "zeros": _init.zeros,
    "ones": _init.ones,
}


def initializer(value: InitializerLike, name: str) -> Initializer:
    """A Keras initialiser name, or a ``(key, shape, dtype)`` callable returned as is."""
    return checks.named_or_callable(
        value, INITIALIZERS, name, "initializer", callable_desc="a (key, shape, dtype) callable"
    )


def bias_initializer(bias_init: Initializer, units: int, unit_forget_bias: bool) -> Initializer:
    """Keras's bias initialiser: ``unit_forget_bias`` SETS the forget block (i, f, c, o) to 1.0."""
    if not unit_forget_bias:
        return bias_init

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return bias_init(key, shape, dtype).at[units : 2 * units].set(1.0)

    return init


def check_options(
    *,
    units: Any,
    activation: ActivationLike,
    recurrent_activation: ActivationLike,
    dropout: Any = 0.0,
    recurrent_dropout: Any = 0.0,
    unroll: Any = 1,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
) -> None:
    """Validate the layer's construction arguments (raises ValueError/TypeError naming the argument)."""
    checks.positive_int(units, "units")
    if dtype is not None:
        checks.float_dtype(dtype, "dtype")
    checks.float_dtype(param_dtype, "param_dtype")
    resolve(activation, "activation")
    resolve(recurrent_activation, "recurrent_activation")
    checks.fraction(dropout, "dropout")
    checks.fraction(recurrent_dropout, "recurrent_dropout")
    scan_unroll(unroll)


def scan_unroll(unroll: Any) -> int | bool:
    """Keras's ``unroll`` (bool) or ``lax.scan``'s (positive int) -> ``lax.scan``'s."""
    if unroll is False:
        return 1
    if unroll is True:
        return True
    if isinstance(unroll, (int, np.integer)) and unroll >= 1:
        return int(unroll)
    raise ValueError(f"unroll: expected a bool or a positive int, found {unroll!r}")


def is_deterministic(
    deterministic: Optional[bool], training: Optional[bool], default: Optional[bool], needed: bool
) -> bool:
    """Resolve Flax's ``deterministic`` and Keras's ``training`` (its negation) into one flag.

    Call arguments win over the module's default. ``needed`` (some dropout rate > 0) makes a missing
    value an error, as in ``flax.linen.Dropout``; with no dropout the answer does not matter.
    """
    if deterministic is not None and training is not None and bool(deterministic) == bool(training):
        raise ValueError(
            f"deterministic={deterministic} and training={training} disagree; pass only one "
            "(training is Keras's name for not deterministic)"
        )
    if deterministic is not None:
        return bool(deterministic)
    if training is not None:
        return not training
    if default is not None:
        return bool(default)
    if needed:
        raise ValueError(
            "deterministic: dropout or recurrent_dropout is > 0, so pass deterministic=True/False "
            "(or training=False/True) to the call or to the module"
        )
    return True


def as_state(initial_state: Optional[StateLike]) -> Optional[LSTMState]:
    """``LSTMState(h, c)``, or a Keras-style ``[h, c]`` pair, or None."""
    if initial_state is None or isinstance(initial_state, LSTMState):
        return initial_state
    if isinstance(initial_state, (list, tuple)) and len(initial_state) == 2:
        return LSTMState(h=initial_state[0], c=initial_state[1])
    raise TypeError(
        "initial_state: expected LSTMState(h, c) or a Keras-style [h, c] pair, "
        f"found {type(initial_state).__name__}"
    )


def check_inputs(inputs: Any, input_size: Optional[int]) -> tuple[tuple[int, ...], int]:
    """Inputs ``[..., T, input_size]``; returns ``(batch_shape, T)``.

    ``input_size`` None (a linen layer before its first call) accepts any feature size.
    """
    if not (hasattr(inputs, "shape") and hasattr(inputs, "dtype")):
        raise TypeError(f"inputs: expected an array (jax or numpy), found {type(inputs).__name__}")
    if input_size is None:
        shape = np.shape(inputs)
        if len(shape) < 2:
            raise ValueError(
                "inputs: expected shape [..., T, features] (time then features, any leading batch "
                f"axes), found {checks.fmt(shape)} of rank {len(shape)}"
            )
        input_size = shape[-1]
    return checks.sequence(inputs, input_size, "inputs")


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
    if not isinstance(carry, (tuple, list)):
        raise TypeError(f"carry: expected Flax's (c, h) pair, found {type(carry).__name__}")
    if len(carry) != 2:
        raise TypeError(
            f"carry: expected Flax's (c, h) pair, found {type(carry).__name__} of length {len(carry)}"
        )
    expected = (*shape[:-1], units)
    for value, name in zip(carry, ("carry[0] (c)", "carry[1] (h)")):
        checks.float_array(value, name)
        if np.shape(value) != expected:
            raise ValueError(
                f"{name}: expected shape {checks.fmt(expected)} to match inputs {checks.fmt(shape)}, "
                f"found {checks.fmt(np.shape(value))}"
            )
    return LSTMState.from_flax_carry(tuple(carry))


def module_params(params: Any, units: int, use_bias: bool, name: str = "params") -> LSTMParams:
    """Parameters given to a Keras-style module: valid ``LSTMParams`` of ``units`` with a bias iff
    ``use_bias`` and no projection."""
    kernel = np.shape(getattr(params, "kernel", None))
    if len(kernel) == 2 and kernel[1] != 4 * units:  # the module's units first: blame the kernel
        raise ValueError(
            f"{name}.kernel: expected shape [input_size, 4*units] = [{kernel[0]}, {4 * units}] "
            f"for units={units}, found {checks.fmt(kernel)}"
        )
    checks.params(params)
    if params.projection is not None:
        raise ValueError(f"{name}.projection: the Keras-style LSTM has no projection; found one")
    if (params.bias is None) == use_bias:
        raise ValueError(
            f"{name}.bias: this module has use_bias={use_bias}, found bias "
            f"{'None' if params.bias is None else 'present'}"
        )
    return params


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
    params: LSTMParams,
    inputs: jax.Array,
    initial_state: Optional[LSTMState],
    mask: Optional[jax.Array],
    masks: SequenceDropoutMasks,
    *,
    lengths: Optional[jax.Array] = None,
    go_backwards: bool,
    zero_output_for_mask: bool,
    activation: ActivationLike,
    recurrent_activation: ActivationLike,
    unroll: Any,
    dtype: Any,
    impl: Any,
) -> LSTMOutput:
    """One Keras-style pass: input dropout on xs (same mask at every step), then ``core.lstm``."""
    if masks.inputs is not None:
        inputs = inputs * jnp.expand_dims(masks.inputs, -2).astype(inputs.dtype)
    return core.lstm(
        params,
        inputs,
        initial_state,
        reverse=go_backwards,
        mask=mask,
        lengths=lengths,
        zero_output_for_mask=zero_output_for_mask,
        activation=activation,
        recurrent_activation=recurrent_activation,
        unroll=scan_unroll(unroll),
        dtype=dtype,
        recurrent_dropout_mask=masks.recurrent,
        impl=impl,
    )


def keras_outputs(
    out: LSTMOutput, return_sequences: bool, return_state: bool, lengths: Optional[jax.Array] = None
) -> Any:
    """Keras's return convention: output, or ``(output, h, c)`` with ``return_state``.

    The output is the whole sequence ``[..., T, out]`` or Keras's last output ``[..., out]`` (the
    last step in processing order; zeros there if it is masked with ``zero_output_for_mask``). With
    ``lengths`` the last output is each sequence's own last step, h (step T-1 is padding).
    """
    if return_sequences:
        output = out.sequence
    else:
        output = out.state.h if lengths is not None else out.sequence[..., -1, :]
    if return_state:
        return output, out.state.h, out.state.c
    return output


def compute_dtype(dtype: Any, inputs: jax.Array, param_dtype: Any) -> Any:
    """Flax's convention: ``dtype``, or when None the promotion of the inputs' and the parameters'."""
    return dtype if dtype is not None else jnp.result_type(inputs.dtype, param_dtype)


def cast(tree: Any, dtype: Any) -> Any:
    """Every array in ``tree`` as ``dtype`` (the cell's compute dtype; the layer lets the core cast)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a).astype(dtype), tree)
