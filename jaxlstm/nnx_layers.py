"""``flax.nnx`` modules for stacks, bidirectional layers and projection (re-exported by ``jaxlstm.nnx``).

They hold the weights as ``nnx.Param`` (Keras layout, plus the ``[H, P]`` projection) and call
``stack.stacked_lstm`` / ``bidirectional.bidirectional``, returning the functional results.
``module.params`` is the functional pytree (a tuple of per-layer params for ``StackedLSTM``,
``BidirectionalParams`` for ``Bidirectional``); ``from_params`` builds a module around given ones.

    >>> model = StackedLSTM(8, 32, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    >>> out = model(xs, lengths=lengths)                 # out.sequence [B, T, 64]
"""

from __future__ import annotations

from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
from flax import nnx

from . import _keras_surface as keras_surface
from . import checks
from ._bidirectional import BidirectionalOutput, BidirectionalState, bidirectional, merged_size
from .activations import ActivationLike
from .pytrees import BidirectionalParams, LSTMParams
from .stack import LayerParams, StackOutput, stacked_lstm

__all__ = ["Bidirectional", "StackedLSTM"]


class _Weights(nnx.Module):
    """One direction's ``LSTMParams`` as ``nnx.Param``: kernel, recurrent_kernel, bias, projection."""

    def __init__(
        self,
        input_size: int,
        units: int,
        *,
        proj_size: Optional[int],
        use_bias: bool,
        kernel_initializer: Any,
        recurrent_initializer: Any,
        bias_initializer: Any,
        projection_initializer: Any,
        unit_forget_bias: bool,
        param_dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        input_size = checks.positive_int(input_size, "in_features")
        units = checks.positive_int(units, "units")
        output_size = units if proj_size is None else checks.positive_int(proj_size, "proj_size")
        init = keras_surface.initializer
        self.kernel = nnx.Param(
            init(kernel_initializer, "kernel_initializer")(
                rngs.params(), (input_size, 4 * units), param_dtype
            )
        )
        self.recurrent_kernel = nnx.Param(
            init(recurrent_initializer, "recurrent_initializer")(
                rngs.params(), (output_size, 4 * units), param_dtype
            )
        )
        bias = projection = None
        if use_bias:
            bias_init = keras_surface.bias_initializer(
                init(bias_initializer, "bias_initializer"), units, unit_forget_bias
            )
            bias = nnx.Param(bias_init(rngs.params(), (4 * units,), param_dtype))
        if proj_size is not None:
            projection = nnx.Param(
                init(projection_initializer, "projection_initializer")(
                    rngs.params(), (units, output_size), param_dtype
                )
            )
        # Assigned once each: NNX fixes an attribute's data/static status on first assignment.
        self.bias = bias
        self.projection = projection

    @property
    def params(self) -> LSTMParams:
        # Only bias and projection are optional (None); the kernels are always Params.
        value = lambda p: None if p is None else p.get_value()  # noqa: E731
        return LSTMParams(
            self.kernel.get_value(),
            self.recurrent_kernel.get_value(),
            value(self.bias),
            value(self.projection),
        )

    def set_params(self, params: LSTMParams, name: str) -> None:
        current = self.params
        for field in LSTMParams._fields:
            new, old = getattr(params, field), getattr(current, field)
            if (new is None) != (old is None) or (new is not None and jnp.shape(new) != jnp.shape(old)):
                found = "None" if new is None else checks.fmt(jnp.shape(new))
                expected = "None" if old is None else checks.fmt(jnp.shape(old))
                raise ValueError(f"{name}.{field}: expected {expected} for this module, found {found}")
            if new is not None:
                getattr(self, field).set_value(jnp.asarray(new))


class _BidirectionalWeights(nnx.Module):
    def __init__(self, input_size: int, units: int, **options: Any) -> None:
        self.forward = _Weights(input_size, units, **options)
        self.backward = _Weights(input_size, units, **options)

    @property
    def params(self) -> BidirectionalParams:
        return BidirectionalParams(self.forward.params, self.backward.params)

    def set_params(self, params: BidirectionalParams, name: str) -> None:
        if not isinstance(params, BidirectionalParams):
            raise TypeError(f"{name}: expected BidirectionalParams, found {type(params).__name__}")
        self.forward.set_params(params.forward, f"{name}.forward")
        self.backward.set_params(params.backward, f"{name}.backward")


# from_params overwrites every weight: zeros are the cheapest placeholders to create first.
_PLACEHOLDER_INIT = dict(
    kernel_initializer="zeros",
    recurrent_initializer="zeros",
    bias_initializer="zeros",
    projection_initializer="zeros",
    unit_forget_bias=False,
)


def _weight_options(
    proj_size: Optional[int],
    use_bias: bool,
    kernel_initializer: Any,
    recurrent_initializer: Any,
    bias_initializer: Any,
    projection_initializer: Any,
    unit_forget_bias: bool,
    param_dtype: Any,
    rngs: nnx.Rngs,
) -> dict[str, Any]:
    return dict(locals())


class Bidirectional(nnx.Module):
    """A bidirectional LSTM (Keras ``Bidirectional(LSTM)``), with optional projection.

    Args:
        in_features: I. units: H. proj_size: P for projected outputs (PyTorch ``proj_size``), or None.
        merge_mode: ``"concat"``, ``"sum"``, ``"mul"``, ``"ave"`` or None (the pair).
        zero_output_for_mask: masked steps output zeros (Keras Bidirectional's behaviour).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``jaxlstm.nnx.LSTM``, and so are unroll, dtype, param_dtype and impl;
            ``projection_initializer`` for ``[H, P]``.
        rngs: ``nnx.Rngs`` for the initialisers (``params`` stream).

    Call: ``(inputs [..., T, I], initial_state=None, *, mask=None, lengths=None)`` ->
    ``BidirectionalOutput``.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        proj_size: Optional[int] = None,
        merge_mode: Optional[str] = "concat",
        zero_output_for_mask: bool = True,
        activation: ActivationLike = "tanh",
        recurrent_activation: ActivationLike = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        projection_initializer: Any = "glorot_uniform",
        unit_forget_bias: bool = True,
        unroll: int | bool = 1,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        impl: Any = "auto",
        rngs: nnx.Rngs,
    ) -> None:
        merged_size(1, merge_mode) if merge_mode is not None else None  # validates merge_mode
        options = _weight_options(
            proj_size, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            projection_initializer, unit_forget_bias, param_dtype, rngs,
        )  # fmt: skip
        self.weights = _BidirectionalWeights(in_features, units, **options)
        self.merge_mode = merge_mode
        self.zero_output_for_mask = zero_output_for_mask
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.unroll = unroll
        self.dtype = dtype
        self.impl = checks.impl(impl)

    @property
    def params(self) -> BidirectionalParams:
        return self.weights.params

    def set_params(self, params: BidirectionalParams) -> None:
        """Write ``BidirectionalParams`` of the same shapes into the module's ``nnx.Param``s."""
        self.weights.set_params(params, "params")

    @classmethod
    def from_params(cls, params: BidirectionalParams, **options: Any) -> Bidirectional:
        """A module holding ``params`` (``options`` as in the constructor, less sizes and rngs)."""
        if not isinstance(params, BidirectionalParams):
            raise TypeError(f"params: expected BidirectionalParams, found {type(params).__name__}")
        forward = params.forward
        checks.params(forward)
        module = cls(
            forward.input_size,
            forward.units,
            proj_size=None if forward.projection is None else forward.output_size,
            use_bias=forward.bias is not None,
            rngs=nnx.Rngs(0),
            **_PLACEHOLDER_INIT,
            **options,
        )
        module.set_params(params)
        return module

    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[BidirectionalState] = None,
        *,
        mask: Optional[jax.Array] = None,
        lengths: Optional[jax.Array] = None,
    ) -> BidirectionalOutput:
        return bidirectional(
            self.params,
            inputs,
            initial_state,
            merge_mode=self.merge_mode,
            mask=mask,
            lengths=lengths,
            zero_output_for_mask=self.zero_output_for_mask,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            unroll=self.unroll,
            dtype=self.dtype,
            impl=self.impl,
        )


class StackedLSTM(nnx.Module):
    """``num_layers`` LSTM layers of equal width (PyTorch ``nn.LSTM``), optionally bidirectional
    and projected, with inter-layer dropout and residual connections.

    Args:
        in_features: I. units: H. num_layers: layers. proj_size: P or None.
        bidirectional: two directions per layer, merged with ``merge_mode`` (``"concat"``, ``"sum"``,
            ``"mul"`` or ``"ave"``) before the next layer.
        dropout: PyTorch's inter-layer dropout (after every layer but the last).
        deterministic: dropout off when True (``model.eval()`` / ``model.train()`` set it).
        residual: add each upper layer's input to its output.
        zero_output_for_mask: None for Keras's per-layer default (see ``stacked_lstm``).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``Bidirectional``; so are unroll, dtype, param_dtype and impl.
        rng_collection: the ``rngs`` stream dropout draws from (``"dropout"``).
        rngs: ``nnx.Rngs`` for the initialisers (``params``) and dropout.

    Call: ``(inputs [..., T, I], initial_state=None, *, mask=None, lengths=None,
    deterministic=None, rngs=None)`` -> ``StackOutput``.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        proj_size: Optional[int] = None,
        dropout: float = 0.0,
        deterministic: bool = False,
        residual: bool = False,
        zero_output_for_mask: Optional[bool] = None,
        activation: ActivationLike = "tanh",
        recurrent_activation: ActivationLike = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        projection_initializer: Any = "glorot_uniform",
        unit_forget_bias: bool = True,
        unroll: int | bool = 1,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rng_collection: str = "dropout",
        impl: Any = "auto",
        rngs: nnx.Rngs,
    ) -> None:
        num_layers = checks.positive_int(num_layers, "num_layers")
        units = checks.positive_int(units, "units")
        self.dropout = checks.fraction(dropout, "dropout")
        options = _weight_options(
            proj_size, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            projection_initializer, unit_forget_bias, param_dtype, rngs,
        )  # fmt: skip
        output_size = units if proj_size is None else proj_size
        width = merged_size(output_size, merge_mode) if bidirectional else output_size
        make = _BidirectionalWeights if bidirectional else _Weights
        self.layers = nnx.List(
            [make(in_features if layer == 0 else width, units, **options) for layer in range(num_layers)]
        )
        self.merge_mode = merge_mode
        self.deterministic = deterministic
        self.residual = residual
        self.zero_output_for_mask = zero_output_for_mask
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.unroll = unroll
        self.dtype = dtype
        self.impl = checks.impl(impl)
        self.rng_collection = rng_collection
        # A forked stream, as nnx.Dropout keeps: each call draws a fresh key from it.
        self.rngs = rngs[rng_collection].fork() if self.dropout > 0 and num_layers > 1 else nnx.data(None)

    @property
    def params(self) -> tuple[LayerParams, ...]:
        return tuple(layer.params for layer in self.layers)

    def set_params(self, params: tuple) -> None:
        """Write per-layer params of the same shapes into the module's ``nnx.Param``s."""
        if not isinstance(params, (tuple, list)) or isinstance(params, (LSTMParams, BidirectionalParams)):
            raise TypeError(f"params: expected a tuple of per-layer params, found {type(params).__name__}")
        if len(params) != len(self.layers):
            raise ValueError(f"params: expected {len(self.layers)} layers, found {len(params)}")
        for index, (layer, new) in enumerate(zip(self.layers, params)):
            layer.set_params(new, f"params[{index}]")

    @classmethod
    def from_params(cls, params: tuple, *, rngs: Optional[nnx.Rngs] = None, **options: Any) -> StackedLSTM:
        """A stack of equal-width layers holding ``params`` (e.g. from ``init_stack`` or a converter);
        ``options`` as in the constructor, less the sizes. ``rngs`` is needed only for dropout."""
        if (
            not isinstance(params, (tuple, list))
            or not params
            or isinstance(params, (LSTMParams, BidirectionalParams))
        ):
            raise TypeError(
                f"params: expected a non-empty tuple of per-layer params, found {type(params).__name__}"
            )
        bottom = params[0]
        first = bottom.forward if isinstance(bottom, BidirectionalParams) else bottom
        checks.params(first)
        module = cls(
            first.input_size,
            first.units,
            len(params),
            bidirectional=isinstance(bottom, BidirectionalParams),
            proj_size=None if first.projection is None else first.output_size,
            use_bias=first.bias is not None,
            rngs=rngs or nnx.Rngs(0),
            **_PLACEHOLDER_INIT,
            **options,
        )
        module.set_params(params)
        if rngs is None:
            module.rngs = nnx.data(None)  # no dropout stream unless one is given
        return module

    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[tuple] = None,
        *,
        mask: Optional[jax.Array] = None,
        lengths: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        rngs: Optional[Union[nnx.Rngs, nnx.RngStream, jax.Array]] = None,
    ) -> StackOutput:
        deterministic = self.deterministic if deterministic is None else deterministic
        key = None
        if self.dropout > 0 and len(self.layers) > 1 and not deterministic:
            key = self._dropout_key(rngs)
        return stacked_lstm(
            self.params,
            inputs,
            initial_state,
            merge_mode=self.merge_mode,
            mask=mask,
            lengths=lengths,
            dropout=self.dropout,
            key=key,
            deterministic=deterministic,
            residual=self.residual,
            zero_output_for_mask=self.zero_output_for_mask,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            unroll=self.unroll,
            dtype=self.dtype,
            impl=self.impl,
        )

    def _dropout_key(self, rngs: Optional[Union[nnx.Rngs, nnx.RngStream, jax.Array]]) -> jax.Array:
        if rngs is None:
            rngs = self.rngs
        if rngs is None:
            raise ValueError(
                "rngs: dropout is on (deterministic=False) but this StackedLSTM has no RNG stream; pass "
                "rngs= to the call, or call with deterministic=True"
            )
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        return rngs

    def set_view(self, deterministic: Optional[bool] = None) -> None:
        """For ``nnx.view`` (and ``train()`` / ``eval()``). Args: deterministic: dropout off if True."""
        if deterministic is not None:
            self.deterministic = deterministic
