"""``flax.linen`` modules for stacks, bidirectional layers and projection (re-exported by ``jaxlstm.linen``).

They own the parameters and the dropout RNG, and call ``stack.stacked_lstm`` /
``bidirectional.bidirectional``; they return the functional results (``StackOutput``,
``BidirectionalOutput``). Parameters live under ``params`` in Keras layout, nested like the
functional pytree::

    StackedLSTM:    {"layer_0": {"kernel", "recurrent_kernel", "bias", "projection"}, "layer_1": ...}
                    bidirectional: {"layer_0": {"forward": {...}, "backward": {...}}, ...}
    Bidirectional:  {"forward": {...}, "backward": {...}}

``layer_params(variables)`` reads them as the functional pytree, ``layer_variables(params)`` writes one.

    >>> model = StackedLSTM(32, num_layers=2, bidirectional=True, proj_size=16)
    >>> variables = model.init(jax.random.key(0), xs)                # xs [B, T, I]
    >>> out = model.apply(variables, xs, lengths=lengths)            # out.sequence [B, T, 32]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from . import _keras_surface as keras_surface
from . import checks
from ._bidirectional import BidirectionalOutput, BidirectionalState, bidirectional, merged_size
from .activations import ActivationLike
from .pytrees import BidirectionalParams, LSTMParams
from .stack import LayerParams, StackOutput, stacked_lstm

__all__ = ["Bidirectional", "StackedLSTM", "layer_params", "layer_variables"]


class _Options(nn.Module):
    """Fields shared by the modules below (a dataclass base; not used on its own)."""

    units: int
    proj_size: Optional[int] = None
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    recurrent_initializer: Any = "orthogonal"
    bias_initializer: Any = "zeros"
    projection_initializer: Any = "glorot_uniform"
    unit_forget_bias: bool = True
    unroll: int | bool = 1
    dtype: Any = None
    param_dtype: Any = jnp.float32
    impl: Any = "auto"

    def _weight_options(self) -> dict[str, Any]:
        names = (
            "units",
            "proj_size",
            "use_bias",
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
            "projection_initializer",
            "unit_forget_bias",
            "param_dtype",
        )
        return {name: getattr(self, name) for name in names}

    def _check_inputs(self, inputs: Any, bottom: tuple[str, ...]) -> int:
        """The feature size of ``inputs [..., T, I]``, after checking rank, dtype and, once the
        module holds weights, the size its bottom weights (at path ``bottom``) read."""
        checks.positive_int(self.units, "units")
        if self.proj_size is not None:
            checks.positive_int(self.proj_size, "proj_size")
        features = np.shape(inputs)[-1] if np.ndim(inputs) else 0
        tree = self.variables.get("params", {})
        for name in bottom:
            tree = tree.get(name, {}) if isinstance(tree, Mapping) else {}
        if "kernel" in tree:
            features = np.shape(tree["kernel"])[0]
        checks.sequence(inputs, features, name="inputs")
        return features

    @property
    def _output_size(self) -> int:
        return self.units if self.proj_size is None else self.proj_size


class _Weights(nn.Module):
    """One direction's ``LSTMParams`` as linen params (created on first call, fetched after)."""

    units: int
    proj_size: Optional[int]
    use_bias: bool
    kernel_initializer: Any
    recurrent_initializer: Any
    bias_initializer: Any
    projection_initializer: Any
    unit_forget_bias: bool
    param_dtype: Any

    @nn.compact
    def __call__(self, input_size: int) -> LSTMParams:
        units = self.units
        output_size = units if self.proj_size is None else self.proj_size
        init = keras_surface.initializer
        kernel = self.param(
            "kernel",
            init(self.kernel_initializer, "kernel_initializer"),
            (input_size, 4 * units),
            self.param_dtype,
        )
        recurrent_kernel = self.param(
            "recurrent_kernel",
            init(self.recurrent_initializer, "recurrent_initializer"),
            (output_size, 4 * units),
            self.param_dtype,
        )
        bias = None
        if self.use_bias:
            bias_init = keras_surface.bias_initializer(
                init(self.bias_initializer, "bias_initializer"), units, self.unit_forget_bias
            )
            bias = self.param("bias", bias_init, (4 * units,), self.param_dtype)
        projection = None
        if self.proj_size is not None:
            projection = self.param(
                "projection",
                init(self.projection_initializer, "projection_initializer"),
                (units, output_size),
                self.param_dtype,
            )
        return LSTMParams(kernel, recurrent_kernel, bias, projection)


class _BidirectionalWeights(nn.Module):
    """``BidirectionalParams``: a ``forward`` and a ``backward`` ``_Weights``."""

    options: Mapping[str, Any]

    @nn.compact
    def __call__(self, input_size: int) -> BidirectionalParams:
        return BidirectionalParams(
            forward=_Weights(**self.options, name="forward")(input_size),
            backward=_Weights(**self.options, name="backward")(input_size),
        )


class Bidirectional(_Options):
    """A bidirectional LSTM (Keras ``Bidirectional(LSTM)``), with optional projection.

    Attributes:
        units: H. proj_size: P, for projected outputs (PyTorch ``proj_size``), or None.
        merge_mode: ``"concat"``, ``"sum"``, ``"mul"``, ``"ave"`` or None (the pair).
        zero_output_for_mask: masked steps output zeros (True: Keras Bidirectional's behaviour when
            returning sequences).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``jaxlstm.linen.LSTM``; ``projection_initializer`` for the ``[H, P]`` projection.
        unroll, dtype, param_dtype, impl: as in ``core.lstm`` / ``LSTM``.

    Call: ``(inputs [..., T, I], initial_state=None, *, mask=None, lengths=None)`` ->
    ``BidirectionalOutput`` (see ``bidirectional.bidirectional``).
    """

    merge_mode: Optional[str] = "concat"
    zero_output_for_mask: bool = True

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[BidirectionalState] = None,
        *,
        mask: Optional[jax.Array] = None,
        lengths: Optional[jax.Array] = None,
    ) -> BidirectionalOutput:
        features = self._check_inputs(inputs, ("forward",))
        options = self._weight_options()
        params = BidirectionalParams(
            forward=_Weights(**options, name="forward")(features),
            backward=_Weights(**options, name="backward")(features),
        )
        return bidirectional(
            params,
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


class StackedLSTM(_Options):
    """``num_layers`` LSTM layers of equal width (PyTorch ``nn.LSTM``), optionally bidirectional
    and projected, with inter-layer dropout and residual connections.

    Attributes:
        units: H. num_layers: layers in the stack. proj_size: P or None.
        bidirectional: two directions per layer, merged with ``merge_mode`` (``"concat"``, ``"sum"``,
            ``"mul"`` or ``"ave"``) before the next layer.
        dropout: PyTorch's inter-layer dropout (after every layer but the last); draws from the
            ``rng_collection`` RNG stream when not deterministic.
        deterministic: default for the call's ``deterministic``; one of them must be set when
            ``dropout > 0`` (as ``flax.linen.Dropout``).
        residual: add each upper layer's input to its output.
        zero_output_for_mask: None for Keras's per-layer default (see ``stacked_lstm``).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``Bidirectional``; so are unroll, dtype, param_dtype and impl.

    Call: ``(inputs [..., T, I], initial_state=None, *, mask=None, lengths=None,
    deterministic=None)`` -> ``StackOutput`` (per-layer states; ``torch_state`` gives h_n / c_n).
    """

    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    dropout: float = 0.0
    deterministic: Optional[bool] = None
    residual: bool = False
    zero_output_for_mask: Optional[bool] = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[tuple] = None,
        *,
        mask: Optional[jax.Array] = None,
        lengths: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
    ) -> StackOutput:
        width = self._check_inputs(inputs, ("layer_0", "forward") if self.bidirectional else ("layer_0",))
        num_layers = checks.positive_int(self.num_layers, "num_layers")
        dropout = checks.fraction(self.dropout, "dropout")
        options = self._weight_options()
        params = []
        for layer in range(num_layers):
            if self.bidirectional:
                params.append(_BidirectionalWeights(options, name=f"layer_{layer}")(width))
                width = merged_size(self._output_size, self.merge_mode)
            else:
                params.append(_Weights(**options, name=f"layer_{layer}")(width))
                width = self._output_size
        deterministic = self.deterministic if deterministic is None else deterministic
        dropping = dropout > 0 and num_layers > 1 and deterministic is False
        return stacked_lstm(
            tuple(params),
            inputs,
            initial_state,
            merge_mode=self.merge_mode,
            mask=mask,
            lengths=lengths,
            dropout=dropout,
            key=self.make_rng(self.rng_collection) if dropping else None,
            deterministic=deterministic,
            residual=self.residual,
            zero_output_for_mask=self.zero_output_for_mask,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            unroll=self.unroll,
            dtype=self.dtype,
            impl=self.impl,
        )


# ----------------------------------------------------------------------------------------------
# Variables <-> the functional pytree
# ----------------------------------------------------------------------------------------------


def _lstm_params(tree: Mapping[str, Any]) -> LSTMParams:
    return LSTMParams(tree["kernel"], tree["recurrent_kernel"], tree.get("bias"), tree.get("projection"))


def _one_layer(tree: Mapping[str, Any]) -> Union[LSTMParams, BidirectionalParams]:
    if "forward" in tree:
        return BidirectionalParams(_lstm_params(tree["forward"]), _lstm_params(tree["backward"]))
    return _lstm_params(tree)


def layer_params(variables: Mapping[str, Any]) -> Union[tuple[LayerParams, ...], BidirectionalParams]:
    """The functional parameters held by a ``StackedLSTM`` (a tuple of per-layer params) or a
    ``Bidirectional`` (``BidirectionalParams``), from its variables or their ``params`` dict."""
    tree = variables.get("params", variables)
    if "layer_0" in tree:
        return tuple(_one_layer(tree[f"layer_{i}"]) for i in range(len(tree)))
    if "forward" in tree:
        return cast(BidirectionalParams, _one_layer(tree))  # "forward" in tree: the bidirectional case
    raise ValueError(
        "variables: expected the params of a StackedLSTM (layer_0, layer_1, ...) or a Bidirectional "
        f"(forward, backward), found keys {sorted(tree)}"
    )


def _lstm_tree(params: LSTMParams) -> dict[str, jax.Array]:
    checks.params(params)
    return {field: value for field, value in params._asdict().items() if value is not None}


def _layer_tree(params: Any) -> dict[str, Any]:
    if isinstance(params, BidirectionalParams):
        return {"forward": _lstm_tree(params.forward), "backward": _lstm_tree(params.backward)}
    return _lstm_tree(params)


def layer_variables(params: Union[tuple, BidirectionalParams]) -> dict[str, dict[str, Any]]:
    """Linen variables ``{"params": ...}`` for a ``StackedLSTM`` holding a tuple of per-layer params,
    or for a ``Bidirectional`` holding ``BidirectionalParams``."""
    if isinstance(params, BidirectionalParams):
        return {"params": _layer_tree(params)}
    if isinstance(params, LSTMParams) or not isinstance(params, (tuple, list)):
        raise TypeError(
            "params: expected a tuple of per-layer params (StackedLSTM) or BidirectionalParams "
            f"(Bidirectional), found {type(params).__name__}"
        )
    return {"params": {f"layer_{i}": _layer_tree(layer) for i, layer in enumerate(params)}}
