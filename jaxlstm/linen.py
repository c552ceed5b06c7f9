"""``flax.linen`` modules: Keras's ``LSTM`` layer, an ``LSTMCell`` for ``flax.linen.RNN``, and the
``Bidirectional`` and ``StackedLSTM`` layers.

Parameters live under ``params`` in Keras layout (``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]``,
``bias [4H]``, and ``projection [H, P]`` with a projection), nested like the functional pytree::

    LSTM, LSTMCell: {"kernel", "recurrent_kernel", "bias"}
    Bidirectional:  {"forward": {...}, "backward": {...}}
    StackedLSTM:    {"layer_0": {...}, "layer_1": ...}; bidirectional: {"layer_0": {"forward", "backward"}}

The variants add ``"layer_norm": {"x_gain", "x_offset", "h_gain", "h_offset", "c_gain",
"c_offset"}`` and ``"peepholes": {"i", "f", "o"}`` (no ``"i"`` with coupled gates), and coupled
gates have 3 gate blocks (``kernel [I, 3H]``, blocks f, c, o).

One converter pair for every module: ``get_params(variables)`` reads them as the functional pytree
(``LSTMParams``, ``BidirectionalParams`` or a tuple of per-layer params), ``to_variables(params)``
writes one. The math is the core's: the modules call ``core.run`` / ``core.step`` and the layers.

    >>> layer = LSTM(2, return_sequences=True, return_state=True)
    >>> variables = layer.init(jax.random.key(0), x)          # x [16, 8, 4]
    >>> sequence, h, c = layer.apply(variables, x)            # [16, 8, 2], [16, 2], [16, 2]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import core
from .core import checks
from .core.activations import ActivationLike
from .core.options import CallInputs, WeightOptions
from .core.pytrees import BidirectionalParams, LayerParams, LSTMParams
from .layers import bidirectional as _bidirectional
from .layers import keras_surface, stack
from .layers.bidirectional import BidirectionalOutput, BidirectionalState, merged_size
from .layers.keras_surface import InitializerLike, StateLike
from .layers.stack import StackOutput

__all__ = ["LSTM", "LSTMCell", "get_params", "to_variables", "STATE_COLLECTION"]
__all__ += ["Bidirectional", "StackedLSTM", "layer_params", "layer_variables"]

#: The mutable collection where a stateful ``LSTM`` keeps its state (variable ``"state"``).
STATE_COLLECTION = "lstm_state"


def _nested_init(specs: Mapping[str, Any]) -> Any:
    """One linen param holding a nested field's ``{subfield: array}`` (``layer_norm``, ``peepholes``)."""

    def init(key: jax.Array, dtype: Any) -> dict[str, jax.Array]:
        keys = jax.random.split(key, len(specs))
        return {sub: fn(k, shape, dtype) for k, (sub, (fn, shape)) in zip(keys, specs.items())}

    return init


def declare_params(module: nn.Module, input_size: int, units: int, weights: WeightOptions) -> LSTMParams:
    """Declare (or fetch) one direction's weights on ``module`` with the one parameter builder; the
    variants' nested fields are one param each, a dict (``params/layer_norm/x_gain`` ...)."""
    tree = {
        name: module.param(name, _nested_init(spec), weights.param_dtype)
        if isinstance(spec, dict)
        else module.param(name, spec[0], spec[1], weights.param_dtype)
        for name, spec in weights.specs(input_size, units).items()
    }
    return keras_surface.tree_params(tree)


def _stored(module: nn.Module, path: Sequence[str]) -> Mapping[str, Any]:
    """The params the module holds at ``path`` (empty before the first call)."""
    tree: Any = module.variables.get("params", {})
    for name in path:
        tree = tree.get(name, {}) if isinstance(tree, Mapping) else {}
    return tree


def _known_input_size(module: nn.Module, path: Sequence[str] = ()) -> Optional[int]:
    """The kernel's input size once initialised (so a wrong feature size gets our error)."""
    tree = _stored(module, path)
    return tree["kernel"].shape[0] if "kernel" in tree else None


def _dropout_key(module: nn.Module, collection: str) -> jax.Array:
    if not module.has_rng(collection):
        raise ValueError(
            f"rngs: dropout is on (deterministic=False) but no {collection!r} RNG was given; apply with "
            f"rngs={{{collection!r}: key}}, or call with deterministic=True"
        )
    return module.make_rng(collection)


class LSTM(nn.Module):
    """Keras's ``LSTM`` layer as a linen module; the input size is taken from the first call.

    Attributes:
        units: H, the hidden size.
        activation, recurrent_activation: Keras names or callables (tanh, sigmoid).
        use_bias: store a ``bias [4H]``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or ``(key, shape,
            dtype)`` callables (glorot_uniform, orthogonal, zeros); half precision is drawn in
            float32 and cast.
        unit_forget_bias: initialise the forget block of the bias to 1.0.
        dropout: Keras's input dropout: fraction of input features dropped, one mask per sequence
            for every step.
        recurrent_dropout: fraction of h dropped where it enters the recurrent matmul, likewise.
        return_sequences: output the whole sequence ``[..., T, H]`` instead of the last ``[..., H]``.
        return_state: return ``(output, h, c)``.
        go_backwards: process the sequence backwards (outputs in processing order, as Keras).
        stateful: keep the final state in the ``"lstm_state"`` collection and start the next call
            from it (apply with ``mutable=["lstm_state"]``).
        zero_output_for_mask: a masked step outputs zeros instead of the previous output (None:
            Keras's default, False).
        unroll: Keras's bool, or ``lax.scan``'s steps per iteration.
        impl: the implementation, as in ``jaxlstm.lstm``.
        time_major: inputs ``[T, ..., I]`` (and mask ``[T, ...]``, sequence output ``[T, ..., H]``).
        dtype: computation dtype (None: promote inputs and parameters); param_dtype: storage dtype.
        deterministic: default for the call's ``deterministic`` (dropout off when True); with
            dropout, the call or the module must set it (as ``flax.linen.Dropout``).
        rng_collection: the RNG stream dropout (weight drop, zoneout) draws from (``"dropout"``).

    The variants (equations in the README, each as in ``jaxlstm.lstm``):
        layer_norm, peepholes, coupled_gates: the weights of a layer-normalised LSTM (params
            ``layer_norm/{x,h,c}_{gain,offset}``), of peephole connections (``peepholes/{i,f,o}``)
            and of coupled input-forget gates (3 gate blocks f, c, o: ``kernel [I, 3H]``).
        layer_norm_epsilon, layer_norm_carry: as in ``jaxlstm.lstm`` (1e-3, ``"raw"``; TF Addons
            carries the normalised cell, ``"normalised"``).
        zoneout: a rate, or ``(z_c, z_h)``: in training each unit keeps its previous c (h) with that
            probability at every step (masks from the ``rng_collection`` stream); in evaluation the
            expectation ``z c_{t-1} + (1 - z) c~``.
        weight_drop: DropConnect rate on ``recurrent_kernel`` (AWD-LSTM): one mask per call in
            training, shared by the batch; none in evaluation.
        dropout_masks: ``"shared"`` (one input and one recurrent mask for every gate) or
            ``"per_gate"`` (Keras 3's ``recurrent_dropout``: an independent mask per gate block, for
            the input and for h, drawn once per call). Keras draws per-gate masks only when
            ``recurrent_dropout > 0``; with input dropout alone it shares one, as ``"shared"``.
        carry_dtype: e.g. float32 under ``dtype=bfloat16``: c and the gates kept in it.
    Zoneout and weight drop count as dropout: with either > 0 the call or the module must set
    ``deterministic``.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None, training=None)``; ``initial_state`` is an ``LSTMState`` or Keras's list
    ``[h, c]``; mask is ``[..., T]`` bool or 0/1; lengths ``[...]`` int is right padding as in
    ``jaxlstm.lstm`` (the last output is then each sequence's own last step); resets ``[..., T]``
    bool (``[T, ...]`` with time_major): the state is zeroed before a True step (episode starts,
    Haiku ``ResetCore``). T must be at least 1.
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
    zero_output_for_mask: Optional[bool] = None
    unroll: int | bool = 1
    dtype: Any = None
    param_dtype: Any = jnp.float32
    deterministic: Optional[bool] = None
    rng_collection: str = "dropout"
    impl: Any = "auto"
    time_major: bool = False
    layer_norm: bool = False
    peepholes: bool = False
    coupled_gates: bool = False
    layer_norm_epsilon: float = 1e-3
    layer_norm_carry: str = "raw"
    zoneout: Any = 0.0
    weight_drop: float = 0.0
    dropout_masks: str = "shared"
    carry_dtype: Any = None

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[StateLike] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        resets: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        training: Optional[bool] = None,
    ) -> Any:
        units = checks.positive_int(self.units, "units")
        options = keras_surface.sequence_options(self)
        weights = keras_surface.weight_options(self)
        batch_shape, _ = keras_surface.check_inputs(inputs, _known_input_size(self), self.time_major)
        if not self.is_initializing():  # given variables must fit: our error, not Flax's ScopeParam*Error
            given = _read_params(_stored(self, ()))
            keras_surface.module_params(given, units, keras_surface.variant_flags(weights))
        params = declare_params(self, inputs.shape[-1], units, weights)
        kept = None
        if self.stateful:
            if not self.is_initializing() and not self.is_mutable_collection(STATE_COLLECTION):
                raise ValueError(
                    f"stateful: this LSTM updates its kept state; apply with mutable=[{STATE_COLLECTION!r}]"
                )
            dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
            kept = self.variable(STATE_COLLECTION, "state", core.zero_state, units, batch_shape, dtype)
        outputs, state = keras_surface.run(
            self,
            params,
            inputs,
            initial_state,
            mask,
            options,
            batch_shape=batch_shape,
            kept=None if kept is None else kept.value,
            lengths=lengths,
            resets=resets,
            deterministic=deterministic,
            training=training,
            dropout_key=lambda: _dropout_key(self, self.rng_collection),
        )
        # Like BatchNorm's statistics, the kept state is not advanced by ``init``.
        if kept is not None and not self.is_initializing():
            kept.value = state
        return outputs

    def reset_state(self, batch_shape: Optional[Sequence[int]] = None) -> None:
        """Zero the kept state (h ``[..., H]``, c ``[..., H]``); with ``batch_shape``, zeros of that
        batch shape (to change it).

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
    The variants' options as in ``LSTM``: ``layer_norm``, ``peepholes``, ``coupled_gates`` (the
    weights), ``layer_norm_epsilon``, ``layer_norm_carry``, ``carry_dtype``; ``zoneout`` is always
    its evaluation form, the expectation (Flax's RNN drivers give a cell no per-step key). No
    dropout and no training-mode zoneout: use ``LSTM`` for those.

    Call: ``(carry (c [..., H], h [..., H]), inputs [..., I]) -> ((c, h), h [..., H])``.
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
    layer_norm: bool = False
    peepholes: bool = False
    coupled_gates: bool = False
    layer_norm_epsilon: float = 1e-3
    layer_norm_carry: str = "raw"
    zoneout: Any = 0.0
    carry_dtype: Any = None

    @nn.compact
    def __call__(
        self, carry: tuple[jax.Array, jax.Array], inputs: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        units = checks.positive_int(self.units, "units")
        options = keras_surface.sequence_options(self)
        weights = keras_surface.weight_options(self)
        state = keras_surface.cell_inputs(carry, inputs, _known_input_size(self), units)
        if not self.is_initializing():
            given = _read_params(_stored(self, ()))
            keras_surface.module_params(given, units, keras_surface.variant_flags(weights))
        params = declare_params(self, inputs.shape[-1], units, weights)
        dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        state, y = keras_surface.cell_step(params, state, inputs, options, dtype)
        return state.to_flax_carry(), y

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
        """Zeros ``(c [..., H], h [..., H])`` for inputs of shape ``[..., I]`` (``rng`` is unused), in
        the dtypes a step returns (h: ``dtype`` or ``param_dtype``; c: ``carry_dtype`` if set)."""
        del rng
        h, c = keras_surface.cell_carry_dtypes(self.dtype, self.param_dtype, self.carry_dtype)
        shape = (*tuple(input_shape)[:-1], self.units)
        return jnp.zeros(shape, c), jnp.zeros(shape, h)

    @property
    def num_feature_axes(self) -> int:
        """1: inputs are ``[..., I]``."""
        return 1


class _Weights(nn.Module):
    """One direction's ``LSTMParams`` as linen params (created on first call, fetched after)."""

    units: int
    weights: WeightOptions

    @nn.compact
    def __call__(self, input_size: int) -> LSTMParams:
        if not self.is_initializing():  # given variables must fit: our error, not Flax's ScopeParam*Error
            name = "variables " + "/".join(self.scope.path) if self.scope is not None else "params"
            flags = keras_surface.variant_flags(self.weights)
            keras_surface.variant_params(_read_params(_stored(self, ())), self.units, flags, name)
        return declare_params(self, input_size, self.units, self.weights)


class _BidirectionalWeights(nn.Module):
    """``BidirectionalParams``: a ``forward`` and a ``backward`` ``_Weights``."""

    units: int
    weights: WeightOptions

    @nn.compact
    def __call__(self, input_size: int) -> BidirectionalParams:
        return BidirectionalParams(
            forward=_Weights(self.units, self.weights, name="forward")(input_size),
            backward=_Weights(self.units, self.weights, name="backward")(input_size),
        )


class _LayerFields(nn.Module):
    """The attributes ``Bidirectional`` and ``StackedLSTM`` share (a dataclass base)."""

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
    layer_norm: bool = False
    peepholes: bool = False
    coupled_gates: bool = False
    layer_norm_epsilon: float = 1e-3
    layer_norm_carry: str = "raw"
    zoneout: Any = 0.0
    weight_drop: float = 0.0
    carry_dtype: Any = None


class Bidirectional(_LayerFields):
    """A bidirectional LSTM (Keras ``Bidirectional(LSTM)``), with optional projection.

    Attributes:
        units: H. proj_size: P, for projected outputs (PyTorch ``proj_size``), or None.
        merge_mode: ``"concat"``, ``"sum"``, ``"mul"``, ``"ave"`` or None (the pair).
        zero_output_for_mask: masked steps output zeros (None: Keras Bidirectional's default, True).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in ``LSTM``;
            ``projection_initializer`` for the ``[H, P]`` projection.
        unroll, dtype, param_dtype, impl, time_major: as in ``LSTM``.
        variants: ``layer_norm``, ``peepholes``, ``coupled_gates``, ``layer_norm_epsilon``,
            ``layer_norm_carry``, ``zoneout``, ``weight_drop``, ``carry_dtype``, as in ``LSTM``, in
            both directions (one weight-drop mask per direction).
        deterministic: default for the call's ``deterministic``; with zoneout or weight drop > 0
            the call or the module must set it. rng_collection: the RNG stream they draw from.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None)`` -> ``BidirectionalOutput`` (sequence ``[..., T, F]``; see
    ``jaxlstm.bidirectional``; ``resets`` are episode starts, as there).
    """

    merge_mode: Optional[str] = "concat"
    zero_output_for_mask: Optional[bool] = None
    time_major: bool = False
    deterministic: Optional[bool] = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[BidirectionalState] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        resets: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
    ) -> BidirectionalOutput:
        units = checks.positive_int(self.units, "units")
        options, weights = keras_surface.sequence_options(self), keras_surface.weight_options(self)
        keras_surface.check_inputs(inputs, _known_input_size(self, ("forward",)), self.time_major)
        params = BidirectionalParams(
            forward=_Weights(units, weights, name="forward")(inputs.shape[-1]),
            backward=_Weights(units, weights, name="backward")(inputs.shape[-1]),
        )
        key = lambda: _dropout_key(self, self.rng_collection)  # noqa: E731
        call = keras_surface.bidirectional_inputs(self, params, resets, deterministic, options, key)
        return _bidirectional.run(
            params, inputs, initial_state, mask, lengths, options, self.merge_mode, call
        )


class StackedLSTM(_LayerFields):
    """``num_layers`` LSTM layers of equal width (PyTorch ``nn.LSTM``), optionally bidirectional
    and projected, with dropout between layers and residual connections.

    Attributes:
        units: H. num_layers: layers in the stack. proj_size: P or None.
        bidirectional: two directions per layer, merged with ``merge_mode`` (``"concat"``, ``"sum"``,
            ``"mul"`` or ``"ave"``) before the next layer.
        inter_layer_dropout: PyTorch's ``dropout`` (after every layer but the last); draws from the
            ``rng_collection`` RNG stream when not deterministic. ``dropout``: its deprecated
            spelling (``LSTM``'s ``dropout`` is Keras's input dropout, a different thing).
        deterministic: default for the call's ``deterministic``; one of them must be set when
            dropping (as ``flax.linen.Dropout``).
        residual: add each upper layer's input to its output.
        zero_output_for_mask: None for Keras's per-layer default (see ``stacked_lstm``).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``Bidirectional``; so are unroll, dtype, param_dtype, impl and time_major, and the
            variants (layer_norm ... carry_dtype; zoneout and weight drop in every layer, drawn
            from ``rng_collection`` when not deterministic, which must then be set).

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None)`` -> ``StackOutput`` (sequence ``[..., T, F]``, per-layer states;
    ``torch_state`` gives h_n / c_n; ``resets`` episode starts for every layer).
    """

    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    inter_layer_dropout: float = 0.0
    deterministic: Optional[bool] = None
    residual: bool = False
    zero_output_for_mask: Optional[bool] = None
    rng_collection: str = "dropout"
    time_major: bool = False
    dropout: Optional[float] = None

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[tuple] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        resets: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
    ) -> StackOutput:
        units = checks.positive_int(self.units, "units")
        num_layers = checks.positive_int(self.num_layers, "num_layers")
        options, weights = keras_surface.sequence_options(self), keras_surface.weight_options(self)
        rate = checks.renamed("dropout", self.dropout, "inter_layer_dropout", self.inter_layer_dropout, 0.0)
        rate = checks.fraction(rate, "inter_layer_dropout")
        bottom = ("layer_0", "forward") if self.bidirectional else ("layer_0",)
        keras_surface.check_inputs(inputs, _known_input_size(self, bottom), self.time_major)
        width = inputs.shape[-1]
        params = []
        make = _BidirectionalWeights if self.bidirectional else _Weights
        for layer in range(num_layers):
            params.append(make(units, weights, name=f"layer_{layer}")(width))
            width = weights.output_size(units)
            width = merged_size(width, self.merge_mode) if self.bidirectional else width
        deterministic = self.deterministic if deterministic is None else deterministic
        weight_drop = checks.fraction(self.weight_drop, "weight_drop")
        randomised = keras_surface.stack_randomised(rate, num_layers, weight_drop, options)
        dropping = randomised and deterministic is False
        return stack.run(
            tuple(params),
            inputs,
            initial_state,
            mask,
            lengths,
            options,
            merge_mode=self.merge_mode,
            inter_layer_dropout=rate,
            key=_dropout_key(self, self.rng_collection) if dropping else None,
            deterministic=deterministic,
            residual=self.residual,
            weight_drop=weight_drop,
            inputs=CallInputs(resets=resets),
        )


# ----------------------------------------------------------------------------------------------
# Variables <-> the functional pytree: one converter pair for every module
# ----------------------------------------------------------------------------------------------


def _read_params(tree: Mapping[str, Any]) -> LSTMParams:
    """One direction's params without the shape checks (so a module can first compare the kernel
    with its units)."""
    missing = [n for n in ("kernel", "recurrent_kernel") if n not in tree]
    if missing:
        raise ValueError(
            f"variables: missing {missing}; an LSTM / LSTMCell stores kernel, recurrent_kernel and (with "
            f"use_bias) bias, and layer_norm / peepholes with those variants, found {sorted(tree)}"
        )
    return keras_surface.tree_params(tree)


def _read_layer(tree: Mapping[str, Any]) -> LayerParams:
    if "forward" in tree:
        return BidirectionalParams(_read_params(tree["forward"]), _read_params(tree["backward"]))
    return _read_params(tree)


def get_params(
    variables: Mapping[str, Any],
) -> Union[LSTMParams, BidirectionalParams, tuple[LayerParams, ...]]:
    """The functional parameters held by any module of this file, from its variables (or their
    ``params`` dict): ``LSTMParams`` (``LSTM``, ``LSTMCell``), ``BidirectionalParams``
    (``Bidirectional``) or a tuple of per-layer params (``StackedLSTM``), checked."""
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables: expected linen variables (a mapping), found {type(variables).__name__}")
    tree = variables.get("params", variables)
    if "layer_0" in tree:
        params: Any = tuple(_read_layer(tree[f"layer_{i}"]) for i in range(len(tree)))
        for index, layer in enumerate(params):
            checks.layer(layer, f"params[{index}]")
    elif "forward" in tree:
        params = _read_layer(tree)
        checks.bidirectional(params)
    else:
        params = _read_params(tree)
        checks.params(params)
    return params


def _tree(params: Any, name: str) -> dict[str, Any]:
    if isinstance(params, BidirectionalParams):
        checks.bidirectional(params, name)
        return {
            "forward": _tree(params.forward, f"{name}.forward"),
            "backward": _tree(params.backward, f"{name}.backward"),
        }
    checks.params(params, name)
    return keras_surface.params_tree(params)


def to_variables(params: Union[LayerParams, Sequence[LayerParams]]) -> dict[str, dict[str, Any]]:
    """Linen variables ``{"params": ...}`` for the module holding ``params``: ``LSTMParams`` (an
    ``LSTM`` / ``LSTMCell``, no projection), ``BidirectionalParams`` (a ``Bidirectional``) or a
    tuple of per-layer params (a ``StackedLSTM``)."""
    if isinstance(params, LSTMParams):
        checks.params(params)
        if params.projection is not None:
            raise ValueError("params.projection: the Keras-style LSTM has no projection; found one")
        return {"params": _tree(params, "params")}
    if isinstance(params, BidirectionalParams):
        return {"params": _tree(params, "params")}
    layers = checks.layers(params)
    return {"params": {f"layer_{i}": _tree(layer, f"params[{i}]") for i, layer in enumerate(layers)}}


def layer_params(variables: Mapping[str, Any]) -> Any:
    """Deprecated: ``get_params`` reads every module's variables."""
    warnings.warn("layer_params is deprecated, use get_params", DeprecationWarning, stacklevel=2)
    return get_params(variables)


def layer_variables(params: Any) -> dict[str, dict[str, Any]]:
    """Deprecated: ``to_variables`` writes every module's variables."""
    warnings.warn("layer_variables is deprecated, use to_variables", DeprecationWarning, stacklevel=2)
    return to_variables(params)
