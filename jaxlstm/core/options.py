"""The two option bundles every entry point builds once from its keyword arguments, and the one
parameter builder.

``SequenceOptions``: how a sequence is computed (activations, unroll, dtype, zero_output_for_mask,
impl, time_major, and the static options of the variants). ``WeightOptions``: how weights are made
(initialisers, use_bias, unit_forget_bias, proj_size, param_dtype, and which variant's weights). Both
are frozen and hashable (a static ``jit`` argument) and validated where they are built, so everything
past the public signature passes one object. ``CallInputs``: the per-call traced arrays of the
variants, one object threaded beside them. Imports jax and numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from . import checks
from .activations import resolve

Initializer = Callable[[jax.Array, Sequence[int], Any], jax.Array]
InitializerLike = Union[str, Initializer]

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


def _set(obj: Any, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


# Ba et al. carry the raw new cell c~; TF Addons' LayerNormLSTMCell carries LN(c~).
LAYER_NORM_CARRIES = ("raw", "normalised")
# One recurrent (and input) dropout mask for all gates, or one per gate block (Keras 3's LSTM).
DROPOUT_MASKS = ("shared", "per_gate")


class CallInputs(NamedTuple):
    """The per-call traced arrays of the variants (all optional), one object through every layer.

    Shapes for xs ``[..., T, I]`` (``...`` the batch axes), h ``[..., P]``, c ``[..., H]``, G gate blocks:

    Attributes:
        resets: ``[..., T]`` bool (``[T, ...]`` with ``time_major``): at a True step the state is
            replaced by ``reset_state`` before the step (Haiku ``ResetCore``).
        reset_state: ``LSTMState`` broadcast to the batch; None is zeros.
        zoneout_key: a PRNG key for zoneout's training masks; None is evaluation (the expectation).
        weight_drop_mask: ``[P, G*H]``, multiplied onto ``recurrent_kernel`` once per call.
        recurrent_dropout_mask: ``[..., P]`` (``dropout_masks="shared"``) or ``[..., G, P]``
            (``"per_gate"``), multiplied onto h before the recurrent matmul; the carried h is unmasked.
        input_dropout_mask: ``[..., I]`` or ``[..., G, I]``, multiplied onto x_t before ``x_t @ kernel``.
    """

    # Any: in a bidirectional layer or a stack, one state / mask per direction or layer.
    resets: Optional[jax.Array] = None
    reset_state: Optional[Any] = None
    zoneout_key: Optional[jax.Array] = None
    weight_drop_mask: Optional[Any] = None
    recurrent_dropout_mask: Optional[jax.Array] = None
    input_dropout_mask: Optional[jax.Array] = None

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> CallInputs:
        """From a function's keyword arguments (its ``locals()``): the fields found there."""
        return cls(**{name: arguments[name] for name in cls._fields if name in arguments})


@dataclasses.dataclass(frozen=True)
class SequenceOptions:
    """How a sequence is computed; see ``jaxlstm.lstm`` for each option.

    ``zero_output_for_mask`` None is Keras's default for the layer kind (False for one direction,
    True for a bidirectional layer). ``unroll`` False is 1 (Keras's bool, or ``lax.scan``'s int).
    ``zoneout`` is held as the pair ``(z_c, z_h)``; ``carry_dtype`` None means the computation dtype.
    """

    # Given as ActivationLike / InitializerLike, held resolved (callables) after __post_init__.
    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    unroll: Union[int, bool] = 1
    dtype: Any = None
    zero_output_for_mask: Optional[bool] = None
    impl: Any = "auto"
    time_major: bool = False
    layer_norm_epsilon: float = 1e-3
    layer_norm_carry: str = "raw"
    zoneout: Any = 0.0
    dropout_masks: str = "shared"
    carry_dtype: Any = None

    def __post_init__(self) -> None:
        _set(
            self,
            layer_norm_epsilon=checks.positive_float(self.layer_norm_epsilon, "layer_norm_epsilon"),
            layer_norm_carry=checks.choice(self.layer_norm_carry, LAYER_NORM_CARRIES, "layer_norm_carry"),
            zoneout=checks.zoneout(self.zoneout),
            dropout_masks=checks.choice(self.dropout_masks, DROPOUT_MASKS, "dropout_masks"),
            carry_dtype=None
            if self.carry_dtype is None
            else checks.float_dtype(self.carry_dtype, "carry_dtype"),
            activation=resolve(self.activation, "activation"),
            recurrent_activation=resolve(self.recurrent_activation, "recurrent_activation"),
            unroll=checks.unroll(self.unroll),
            dtype=None if self.dtype is None else checks.float_dtype(self.dtype, "dtype"),
            zero_output_for_mask=checks.optional_flag(self.zero_output_for_mask, "zero_output_for_mask"),
            impl=checks.impl(self.impl),
            time_major=checks.flag(self.time_major, "time_major"),
        )

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> SequenceOptions:
        """From a function's keyword arguments (its ``locals()``): the fields found there."""
        return cls(**{f.name: arguments[f.name] for f in dataclasses.fields(cls) if f.name in arguments})

    def replace(self, **changes: Any) -> SequenceOptions:
        return dataclasses.replace(self, **changes)

    def zero_output(self, bidirectional: bool) -> bool:
        """``zero_output_for_mask`` with Keras's default for the layer kind filled in."""
        return bidirectional if self.zero_output_for_mask is None else self.zero_output_for_mask


def _vector_glorot_uniform(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """Keras's glorot_uniform of a vector ``[H]`` (fan_in = fan_out = H): uniform in +-sqrt(3/H), how
    TF Addons' PeepholeLSTMCell draws its peephole weights (with the kernel's default initialiser)."""
    limit = (3.0 / shape[-1]) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)


@dataclasses.dataclass(frozen=True)
class WeightOptions:
    """How one direction's weights are made (``jaxlstm.init``'s keyword arguments; initialisers by
    Keras name or as ``(key, shape, dtype)`` callables). ``layer_norm``, ``peepholes`` and
    ``coupled_gates`` make the weights of those variants (the variant is the weights)."""

    use_bias: bool = True
    unit_forget_bias: bool = True
    kernel_init: Any = "glorot_uniform"
    recurrent_init: Any = "orthogonal"
    bias_init: Any = "zeros"
    projection_init: Any = "glorot_uniform"
    proj_size: Optional[int] = None
    param_dtype: Any = jnp.float32
    layer_norm: bool = False
    peepholes: bool = False
    coupled_gates: bool = False

    def __post_init__(self) -> None:
        _set(
            self,
            use_bias=checks.flag(self.use_bias, "use_bias"),
            unit_forget_bias=checks.flag(self.unit_forget_bias, "unit_forget_bias"),
            kernel_init=initializer(self.kernel_init, "kernel_initializer"),
            recurrent_init=initializer(self.recurrent_init, "recurrent_initializer"),
            bias_init=initializer(self.bias_init, "bias_initializer"),
            projection_init=initializer(self.projection_init, "projection_initializer"),
            proj_size=None if self.proj_size is None else checks.positive_int(self.proj_size, "proj_size"),
            param_dtype=checks.float_dtype(self.param_dtype, "param_dtype"),
            layer_norm=checks.flag(self.layer_norm, "layer_norm"),
            peepholes=checks.flag(self.peepholes, "peepholes"),
            coupled_gates=checks.flag(self.coupled_gates, "coupled_gates"),
        )

    @classmethod
    def keras(cls, **options: Any) -> WeightOptions:
        """From a module's Keras spellings (``kernel_initializer=`` ... ``projection_initializer=``)."""
        return cls(**{name.replace("_initializer", "_init"): value for name, value in options.items()})

    def output_size(self, units: int) -> int:
        return units if self.proj_size is None else self.proj_size

    @property
    def gates(self) -> int:
        """G: 4 gate blocks i, f, c, o, or 3 (f, c, o) with coupled input and forget gates."""
        return 3 if self.coupled_gates else 4

    def specs(self, input_size: int, units: int) -> dict[str, Any]:
        """The one parameter builder: ``{field: (initializer, shape)}`` of ``LSTMParams``, in field
        order (kernel, recurrent_kernel, bias, projection, layer_norm, peepholes; absent ones left
        out); ``layer_norm`` and ``peepholes`` map to ``{subfield: (initializer, shape)}`` in their
        NamedTuple's field order (``peepholes`` without ``i`` with coupled gates). Each initializer
        takes ``(key, shape, dtype)``: it draws half precision in float32 and casts (XLA has no
        bfloat16/float16 QR, which the orthogonal initialiser needs), and the bias's sets the forget
        block (``[H:2H]``, ``[0:H]`` with coupled gates) to 1.0 with ``unit_forget_bias`` (Keras
        sets, it does not add). Layer-norm gains start at 1 and offsets at 0; peephole weights are
        drawn like TF Addons' (Keras glorot_uniform of a vector, uniform in +-sqrt(3/H))."""
        input_size = checks.positive_int(input_size, "input_size")
        units = checks.positive_int(units, "units")
        out, width = self.output_size(units), self.gates * units
        forget = 0 if self.coupled_gates else units

        def drawn(init: Initializer, forget_block: bool = False) -> Initializer:
            def draw(key: jax.Array, shape: Sequence[int], dtype: Any = self.param_dtype) -> jax.Array:
                value = init(key, shape, jnp.promote_types(dtype, jnp.float32)).astype(dtype)
                return value.at[forget : forget + units].set(1.0) if forget_block else value

            return draw

        specs: dict[str, Any] = {
            "kernel": (drawn(self.kernel_init), (input_size, width)),
            "recurrent_kernel": (drawn(self.recurrent_init), (out, width)),
        }
        if self.use_bias:
            specs["bias"] = (drawn(self.bias_init, self.unit_forget_bias), (width,))
        if self.proj_size is not None:
            specs["projection"] = (drawn(self.projection_init), (units, out))
        if self.layer_norm:
            ones, zeros = drawn(INITIALIZERS["ones"]), drawn(INITIALIZERS["zeros"])
            specs["layer_norm"] = {
                "x_gain": (ones, (width,)),
                "x_offset": (zeros, (width,)),
                "h_gain": (ones, (width,)),
                "h_offset": (zeros, (width,)),
                "c_gain": (ones, (units,)),
                "c_offset": (zeros, (units,)),
            }
        if self.peepholes:
            peep = (drawn(_vector_glorot_uniform), (units,))
            specs["peepholes"] = (
                {"f": peep, "o": peep} if self.coupled_gates else {"i": peep, "f": peep, "o": peep}
            )
        return specs
