"""``flax.linen`` modules: a Keras-style ``LSTM`` layer and an ``LSTMCell`` for ``flax.linen.RNN``.

Both store ``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]`` and ``bias [4H]`` in Keras layout under
``params``, so ``get_params(variables)`` is the functional ``LSTMParams`` and ``to_variables(params)``
turns one back into linen variables. The math is the core's: the layer calls ``core.lstm``, the cell
``core.step``.

    >>> layer = LSTM(2, return_sequences=True, return_state=True)
    >>> variables = layer.init(jax.random.key(0), x)          # x [16, 8, 4]
    >>> sequence, h, c = layer.apply(variables, x)            # [16, 8, 2], [16, 2], [16, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import _keras_surface as keras_surface
from . import checks, core
from ._dropout import sequence_masks
from ._keras_surface import InitializerLike, StateLike
from .activations import ActivationLike
from .linen_layers import Bidirectional, StackedLSTM, layer_params, layer_variables
from .pytrees import LSTMParams

__all__ = ["LSTM", "LSTMCell", "get_params", "to_variables", "STATE_COLLECTION"]
__all__ += ["Bidirectional", "StackedLSTM", "layer_params", "layer_variables"]  # linen_layers.py

#: The mutable collection where a stateful ``LSTM`` keeps its state (variable ``"state"``).
STATE_COLLECTION = "lstm_state"


def _make_params(module: nn.Module, input_size: int) -> LSTMParams:
    """Declare (or fetch) kernel / recurrent_kernel / bias on ``module``, in Keras layout."""
    units = module.units
    if not module.is_initializing():  # given variables must fit: our error, not Flax's ScopeParam*Error
        names = ("kernel", "recurrent_kernel", "bias")
        stored = {n: module.get_variable("params", n) for n in names if module.has_variable("params", n)}
        keras_surface.module_params(_read_params(stored), units, module.use_bias)
    kernel = module.param(
        "kernel",
        keras_surface.initializer(module.kernel_initializer, "kernel_initializer"),
        (input_size, 4 * units),
        module.param_dtype,
    )
    recurrent_kernel = module.param(
        "recurrent_kernel",
        keras_surface.initializer(module.recurrent_initializer, "recurrent_initializer"),
        (units, 4 * units),
        module.param_dtype,
    )
    bias = None
    if module.use_bias:
        bias_init = keras_surface.initializer(module.bias_initializer, "bias_initializer")
        bias = module.param(
            "bias",
            keras_surface.bias_initializer(bias_init, units, module.unit_forget_bias),
            (4 * units,),
            module.param_dtype,
        )
    return LSTMParams(kernel, recurrent_kernel, bias)


def _known_input_size(module: nn.Module) -> Optional[int]:
    """The kernel's input size once initialised (so a wrong feature size gets our error)."""
    if module.has_variable("params", "kernel"):
        return module.get_variable("params", "kernel").shape[0]
    return None


class LSTM(nn.Module):
    """Keras's ``LSTM`` layer as a linen module; the input size is taken from the first call.

    Attributes:
        units: H, the hidden size.
        activation, recurrent_activation: Keras names or callables (tanh, sigmoid).
        use_bias: store a ``bias [4H]``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or ``(key, shape,
            dtype)`` callables (glorot_uniform, orthogonal, zeros).
        unit_forget_bias: initialise the forget block of the bias to 1.0.
        dropout: fraction of input features dropped, one mask per sequence for every step.
        recurrent_dropout: fraction of h dropped where it enters the recurrent matmul, likewise.
        return_sequences: output the whole sequence ``[..., T, H]`` instead of the last ``[..., H]``.
        return_state: return ``(output, h, c)``.
        go_backwards: process the sequence backwards (outputs in processing order, as Keras).
        stateful: keep the final state in the ``"lstm_state"`` collection and start the next call
            from it (apply with ``mutable=["lstm_state"]``).
        zero_output_for_mask: a masked step outputs zeros instead of the previous output.
        unroll: Keras's bool, or ``lax.scan``'s steps per iteration.
        impl: the implementation, as in ``jaxlstm.lstm`` (``"auto"``, ``"scan"``, ``"cudnn"`` or a
            ``jaxlstm.fast.FastConfig``).
        dtype: computation dtype (None: promote inputs and parameters); param_dtype: storage dtype.
        deterministic: default for the call's ``deterministic`` (dropout off when True).
        rng_collection: the RNG stream dropout draws from (``"dropout"``).

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, deterministic=None,
    training=None)``; ``initial_state`` is an ``LSTMState`` or Keras's ``[h, c]``; mask is ``[..., T]``
    bool; lengths ``[...]`` int is right padding as in ``jaxlstm.lstm`` (the last output is then
    each sequence's own last step).
    Returns ``[..., H]``, ``[..., T, H]`` with return_sequences, and ``(output, h, c)`` with
    return_state.
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    recurrent_initializer: InitializerLike = "orthogonal"
    bias_initializer: InitializerLike = "zeros"
    unit_forget_bias: bool = True
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    zero_output_for_mask: bool = False
    unroll: int | bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    deterministic: Optional[bool] = None
    rng_collection: str = "dropout"
    impl: Any = "auto"

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[StateLike] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        training: Optional[bool] = None,
    ) -> Any:
        keras_surface.check_options(
            units=self.units,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            unroll=self.unroll,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        batch_shape, _ = keras_surface.check_inputs(inputs, _known_input_size(self))
        params = _make_params(self, inputs.shape[-1])
        dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        initial_state = keras_surface.as_state(initial_state)

        kept = None
        if self.stateful:
            if not self.is_initializing() and not self.is_mutable_collection(STATE_COLLECTION):
                raise ValueError(
                    f"stateful: this LSTM updates its kept state; apply with mutable=[{STATE_COLLECTION!r}]"
                )
            zeros = lambda: core.zero_state(self.units, batch_shape, dtype)  # noqa: E731
            kept = self.variable(STATE_COLLECTION, "state", zeros)
            keras_surface.check_kept_state(kept.value, batch_shape)
            if initial_state is None:
                initial_state = kept.value

        dropping = self.dropout > 0 or self.recurrent_dropout > 0
        deterministic = keras_surface.is_deterministic(deterministic, training, self.deterministic, dropping)
        key = self.make_rng(self.rng_collection) if dropping and not deterministic else None
        masks = sequence_masks(
            key,
            dropout=0.0 if deterministic else self.dropout,
            recurrent_dropout=0.0 if deterministic else self.recurrent_dropout,
            batch_shape=batch_shape,
            input_size=inputs.shape[-1],
            output_size=self.units,
            dtype=dtype,
        )
        out = keras_surface.run(
            params,
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
        # Like BatchNorm's statistics, the kept state is not advanced by ``init``.
        if kept is not None and not self.is_initializing():
            kept.value = out.state
        return keras_surface.keras_outputs(out, self.return_sequences, self.return_state, lengths)

    def reset_state(self, batch_shape: Optional[Sequence[int]] = None) -> None:
        """Zero the kept state; with ``batch_shape``, zeros of that batch shape (to change it).

        Apply with ``method="reset_state", mutable=["lstm_state"]``.
        """
        if not self.stateful:
            raise ValueError("reset_state: this LSTM is not stateful (stateful=False)")
        kept = self.get_variable(STATE_COLLECTION, "state")  # None before the first call
        zeros = keras_surface.zeroed_state(kept, self.units, batch_shape)
        if zeros is not None:
            self.put_variable(STATE_COLLECTION, "state", zeros)


class LSTMCell(nn.RNNCellBase):
    """An LSTM cell for ``flax.linen.RNN``: carry ``(c, h)``, one time step per call.

    Same parameters (names, Keras layout, initialisers) and numbers as ``LSTM``; the step is
    ``core.step``. ``nn.RNN(LSTMCell(units))`` equals ``LSTM(units, return_sequences=True)``.
    No dropout: use ``LSTM`` for that.

    Call: ``(carry (c [..., H], h [..., H]), inputs [..., I]) -> ((c, h), h)``.
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    recurrent_initializer: InitializerLike = "orthogonal"
    bias_initializer: InitializerLike = "zeros"
    unit_forget_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, carry: tuple[jax.Array, jax.Array], inputs: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        keras_surface.check_options(
            units=self.units,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        state = keras_surface.cell_inputs(carry, inputs, _known_input_size(self), self.units)
        params = _make_params(self, inputs.shape[-1])
        dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        params, state, inputs = keras_surface.cast((params, state, inputs), dtype)
        state, y = core.step(
            params, state, inputs, activation=self.activation, recurrent_activation=self.recurrent_activation
        )
        return state.to_flax_carry(), y

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
        """Zeros ``(c, h)`` for inputs of shape ``[..., I]`` (``rng`` is unused: the carry is zeros)."""
        del rng
        return core.zero_state(self.units, tuple(input_shape)[:-1], self.param_dtype).to_flax_carry()

    @property
    def num_feature_axes(self) -> int:
        return 1


def get_params(variables: Mapping[str, Any]) -> LSTMParams:
    """The functional ``LSTMParams`` of an ``LSTM``/``LSTMCell``'s variables (or its ``params`` dict)."""
    params = _read_params(variables)
    checks.params(params)
    return params


def _read_params(variables: Mapping[str, Any]) -> LSTMParams:
    """``get_params`` without the shape checks (so a module can first compare the kernel with its units)."""
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables: expected linen variables (a mapping), found {type(variables).__name__}")
    tree = variables.get("params", variables)
    missing = [n for n in ("kernel", "recurrent_kernel") if n not in tree]
    if missing:
        raise ValueError(
            f"variables: missing {missing}; an LSTM / LSTMCell stores kernel, recurrent_kernel and (with "
            f"use_bias) bias, found {sorted(tree)}"
        )
    return LSTMParams(tree["kernel"], tree["recurrent_kernel"], tree.get("bias"))


def to_variables(params: LSTMParams) -> dict[str, dict[str, jax.Array]]:
    """Linen variables ``{"params": {...}}`` for an ``LSTM``/``LSTMCell`` holding ``params``."""
    checks.params(params)
    if params.projection is not None:
        raise ValueError("params.projection: the Keras-style LSTM has no projection; found one")
    tree = {"kernel": params.kernel, "recurrent_kernel": params.recurrent_kernel}
    if params.bias is not None:
        tree["bias"] = params.bias
    return {"params": tree}
