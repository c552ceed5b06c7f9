"""``flax.nnx`` modules: a Keras-style ``LSTM`` layer and an ``LSTMCell`` for ``flax.nnx.RNN``.

Both hold ``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]`` and ``bias [4H]`` as ``nnx.Param`` in
Keras layout; ``module.params`` reads them as the functional ``LSTMParams``, ``module.set_params``
writes them, and ``LSTM.from_params`` builds a layer around given ones. The math is the core's: the
layer calls ``core.lstm``, the cell ``core.step``.

    >>> layer = LSTM(4, 2, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    >>> sequence, h, c = layer(x)               # x [16, 8, 4] -> [16, 8, 2], [16, 2], [16, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from . import _keras_surface as keras_surface
from . import checks, core
from ._dropout import sequence_masks
from ._keras_surface import InitializerLike, StateLike
from .activations import ActivationLike
from .nnx_layers import Bidirectional, StackedLSTM
from .pytrees import LSTMParams

__all__ = ["LSTM", "LSTMCell", "KeptState"]
__all__ += ["Bidirectional", "StackedLSTM"]  # nnx_layers.py


class KeptState(nnx.Variable):
    """A stateful ``LSTM``'s ``LSTMState`` between calls (None before the first call)."""


class _KerasWeights:
    """kernel / recurrent_kernel / bias as ``nnx.Param``, read and written as ``LSTMParams``."""

    kernel: nnx.Param
    recurrent_kernel: nnx.Param
    bias: Optional[nnx.Param]

    def _init_weights(
        self,
        in_features: int,
        units: int,
        *,
        use_bias: bool,
        kernel_initializer: InitializerLike,
        recurrent_initializer: InitializerLike,
        bias_initializer: InitializerLike,
        unit_forget_bias: bool,
        param_dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        in_features = checks.positive_int(in_features, "in_features")
        units = checks.positive_int(units, "units")
        kernel_init = keras_surface.initializer(kernel_initializer, "kernel_initializer")
        recurrent_init = keras_surface.initializer(recurrent_initializer, "recurrent_initializer")
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, 4 * units), param_dtype))
        self.recurrent_kernel = nnx.Param(recurrent_init(rngs.params(), (units, 4 * units), param_dtype))
        bias = None
        if use_bias:
            bias_init = keras_surface.bias_initializer(
                keras_surface.initializer(bias_initializer, "bias_initializer"), units, unit_forget_bias
            )
            bias = nnx.Param(bias_init(rngs.params(), (4 * units,), param_dtype))
        self.bias = bias  # assigned once: NNX fixes an attribute's data/static status on first use

    @property
    def params(self) -> LSTMParams:
        """The weights as the functional ``LSTMParams`` (the arrays themselves, no copy)."""
        bias = None if self.bias is None else self.bias.get_value()
        return LSTMParams(self.kernel.get_value(), self.recurrent_kernel.get_value(), bias)

    def set_params(self, params: LSTMParams) -> None:
        """Write ``LSTMParams`` (same shapes, same use_bias) into the module's ``nnx.Param``s.

        (A method rather than a property setter: NNX intercepts attribute assignment.)
        """
        current = self.params
        keras_surface.module_params(params, current.units, current.bias is not None)
        for field in ("kernel", "recurrent_kernel", "bias"):
            new, old = getattr(params, field), getattr(current, field)
            if new is not None and jnp.shape(new) != jnp.shape(old):
                raise ValueError(
                    f"params.{field}: expected shape {checks.fmt(jnp.shape(old))} for this module, "
                    f"found {checks.fmt(jnp.shape(new))}"
                )
        self.kernel.set_value(jnp.asarray(params.kernel))
        self.recurrent_kernel.set_value(jnp.asarray(params.recurrent_kernel))
        if self.bias is not None:
            self.bias.set_value(jnp.asarray(params.bias))


class LSTM(_KerasWeights, nnx.Module):
    """Keras's ``LSTM`` layer as an NNX module.

    Args:
        in_features: I, features per input step.
        units: H, the hidden size.
        activation, recurrent_activation: Keras names or callables (tanh, sigmoid).
        use_bias: hold a ``bias [4H]``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or ``(key, shape,
            dtype)`` callables (glorot_uniform, orthogonal, zeros).
        unit_forget_bias: initialise the forget block of the bias to 1.0.
        dropout: fraction of input features dropped, one mask per sequence for every step.
        recurrent_dropout: fraction of h dropped where it enters the recurrent matmul, likewise.
        return_sequences: output the whole sequence ``[..., T, H]`` instead of the last ``[..., H]``.
        return_state: return ``(output, h, c)``.
        go_backwards: process the sequence backwards (outputs in processing order, as Keras).
        stateful: keep the final state in ``self.kept_state`` (a ``KeptState`` variable) and start
            the next call from it; ``reset_state()`` zeroes it.
        zero_output_for_mask: a masked step outputs zeros instead of the previous output.
        unroll: Keras's bool, or ``lax.scan``'s steps per iteration.
        impl: the implementation, as in ``jaxlstm.lstm`` (``"auto"``, ``"scan"``, ``"cudnn"`` or a
            ``jaxlstm.fast.FastConfig``).
        dtype: computation dtype (None: promote inputs and parameters); param_dtype: storage dtype.
        deterministic: dropout off when True (``model.eval()`` / ``model.train()`` set it).
        rng_collection: the ``rngs`` stream dropout draws from (``"dropout"``).
        rngs: ``nnx.Rngs`` for the initialisers (``params`` stream) and dropout.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, deterministic=None,
    training=None, rngs=None)``; ``initial_state`` is an ``LSTMState`` or Keras's ``[h, c]``; mask
    ``[..., T]`` bool; lengths ``[...]`` int is right padding as in ``jaxlstm.lstm`` (the last output
    is then each sequence's own last step). Returns ``[..., H]``, ``[..., T, H]`` with return_sequences, ``(output, h, c)`` with
    return_state.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        activation: ActivationLike = "tanh",
        recurrent_activation: ActivationLike = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        recurrent_initializer: InitializerLike = "orthogonal",
        bias_initializer: InitializerLike = "zeros",
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        zero_output_for_mask: bool = False,
        unroll: int | bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        impl: Any = "auto",
        rngs: nnx.Rngs,
    ):
        keras_surface.check_options(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            unroll=unroll,
            dtype=dtype,
            param_dtype=param_dtype,
        )
        self._init_weights(
            in_features,
            units,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.in_features, self.units = in_features, units
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.stateful = go_backwards, stateful
        self.zero_output_for_mask, self.unroll = zero_output_for_mask, unroll
        self.dtype, self.param_dtype = dtype, param_dtype
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.impl = checks.impl(impl)
        # A forked stream, as nnx.Dropout keeps: each call draws a fresh key from it.
        dropping = self.dropout > 0 or self.recurrent_dropout > 0
        self.rngs = rngs[rng_collection].fork() if dropping else nnx.data(None)
        if stateful:
            self.kept_state = KeptState(None)

    @classmethod
    def from_params(cls, params: LSTMParams, *, rngs: Optional[nnx.Rngs] = None, **options: Any) -> LSTM:
        """A layer holding ``params`` (``options`` as in the constructor). ``rngs`` is needed only
        for dropout; without it, pass ``rngs=`` to the call when dropping."""
        input_size, units, _ = checks.params(params)
        layer = cls(input_size, units, use_bias=params.bias is not None, rngs=rngs or nnx.Rngs(0), **options)
        layer.set_params(params)
        if rngs is None:
            layer.rngs = nnx.data(None)
        return layer

    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[StateLike] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        training: Optional[bool] = None,
        rngs: Optional[nnx.Rngs | nnx.RngStream | jax.Array] = None,
    ) -> Any:
        batch_shape, _ = keras_surface.check_inputs(inputs, self.in_features)
        initial_state = keras_surface.as_state(initial_state)
        compute_dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        if self.stateful:
            kept = self.kept_state.get_value()
            if kept is None:
                kept = core.zero_state(self.units, batch_shape, compute_dtype)
            keras_surface.check_kept_state(kept, batch_shape)
            if initial_state is None:
                initial_state = kept

        dropping = self.dropout > 0 or self.recurrent_dropout > 0
        deterministic = keras_surface.is_deterministic(deterministic, training, self.deterministic, dropping)
        key = self._dropout_key(rngs) if dropping and not deterministic else None
        masks = sequence_masks(
            key,
            dropout=0.0 if deterministic else self.dropout,
            recurrent_dropout=0.0 if deterministic else self.recurrent_dropout,
            batch_shape=batch_shape,
            input_size=self.in_features,
            output_size=self.units,
            dtype=compute_dtype,
        )
        out = keras_surface.run(
            self.params,
            inputs,
            initial_state,
            mask,
            masks,
            lengths=lengths,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            unroll=self.unroll,
            dtype=self.dtype,
            impl=self.impl,
        )
        if self.stateful:
            self.kept_state.set_value(out.state)
        return keras_surface.keras_outputs(out, self.return_sequences, self.return_state, lengths)

    def _dropout_key(self, rngs: Optional[nnx.Rngs | nnx.RngStream | jax.Array]) -> jax.Array:
        if rngs is None:
            rngs = self.rngs
        if rngs is None:
            raise ValueError(
                "rngs: dropout is on (deterministic=False) but this LSTM has no RNG stream; pass "
                "rngs= to the constructor or the call, or call with deterministic=True"
            )
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if not isinstance(rngs, jax.Array):
            raise TypeError(
                f"rngs: expected nnx.Rngs, an nnx.RngStream or a PRNG key, found {type(rngs).__name__}"
            )
        return rngs

    def reset_state(self, batch_shape: Optional[Sequence[int]] = None) -> None:
        """Zero the kept state; with ``batch_shape``, zeros of that batch shape (to change it)."""
        if not self.stateful:
            raise ValueError("reset_state: this LSTM is not stateful (stateful=False)")
        kept = self.kept_state.get_value()  # None before the first call
        self.kept_state.set_value(keras_surface.zeroed_state(kept, self.units, batch_shape))

    def set_view(self, deterministic: Optional[bool] = None) -> None:
        """For ``nnx.view``. Args: deterministic: if True, dropout is off."""
        if deterministic is not None:
            self.deterministic = deterministic


class LSTMCell(_KerasWeights, nnx.RNNCellBase):
    """An LSTM cell for ``flax.nnx.RNN``: carry ``(c, h)``, one time step per call.

    Same parameters (names, Keras layout, initialisers) and numbers as ``LSTM``; the step is
    ``core.step``. ``nnx.RNN(LSTMCell(I, H, rngs=...))`` equals ``LSTM(I, H, return_sequences=True)``
    with the same params. No dropout: use ``LSTM`` for that.

    Call: ``(carry (c [..., H], h [..., H]), inputs [..., I]) -> ((c, h), h)``.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        activation: ActivationLike = "tanh",
        recurrent_activation: ActivationLike = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        recurrent_initializer: InitializerLike = "orthogonal",
        bias_initializer: InitializerLike = "zeros",
        unit_forget_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        keras_surface.check_options(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            dtype=dtype,
            param_dtype=param_dtype,
        )
        self._init_weights(
            in_features,
            units,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.in_features, self.units = in_features, units
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.dtype, self.param_dtype = dtype, param_dtype

    def __call__(
        self, carry: tuple[jax.Array, jax.Array], inputs: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        state = keras_surface.cell_inputs(carry, inputs, self.in_features, self.units)
        dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        params, state, inputs = keras_surface.cast((self.params, state, inputs), dtype)
        state, y = core.step(
            params, state, inputs, activation=self.activation, recurrent_activation=self.recurrent_activation
        )
        return state.to_flax_carry(), y

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: Optional[nnx.Rngs | nnx.RngStream] = None,
        carry_init: Any = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Zeros ``(c, h)`` for inputs ``[..., I]``; with ``carry_init`` (and ``rngs``), its values."""
        batch_shape = tuple(input_shape)[:-1]
        if carry_init is None:
            return core.zero_state(self.units, batch_shape, self.param_dtype).to_flax_carry()
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        if rngs is None:
            raise ValueError("rngs: carry_init needs an RNG stream to draw the initial carry")
        shape = (*batch_shape, self.units)
        return (carry_init(rngs(), shape, self.param_dtype), carry_init(rngs(), shape, self.param_dtype))

    @property
    def num_feature_axes(self) -> int:
        return 1
