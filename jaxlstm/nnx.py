"""``flax.nnx`` modules: Keras's ``LSTM`` layer, an ``LSTMCell`` for ``flax.nnx.RNN``, and the
``Bidirectional`` and ``StackedLSTM`` layers.

They hold ``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]``, ``bias [4H]`` (and ``projection [H, P]``)
as ``nnx.Param`` in Keras layout; the variants add ``layer_norm`` and ``peepholes``, each an
``nnx.Dict`` of ``nnx.Param`` (the fields of ``LayerNormParams`` / ``PeepholeParams``), and coupled
gates have 3 gate blocks (``kernel [I, 3H]``). One converter trio for every module: ``module.params`` reads the
functional pytree (``LSTMParams``, ``BidirectionalParams`` or a tuple of per-layer params),
``module.set_params(params)`` writes it, and ``Module.from_params(params, **options)`` builds a
module around given ones. The math is the core's: the modules call ``core.run`` / ``core.step`` and
the layers.

    >>> layer = LSTM(4, 2, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    >>> sequence, h, c = layer(x)               # x [16, 8, 4] -> [16, 8, 2], [16, 2], [16, 2]
    >>> model = StackedLSTM(8, 32, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    >>> out = model(xs, lengths=lengths)        # out.sequence [B, T, 64]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union, cast

import jax
import jax.numpy as jnp
from flax import nnx

from .core import checks
from .core.activations import ActivationLike
from .core.options import CallInputs, WeightOptions
from .core.pytrees import BidirectionalParams, LayerParams, LSTMParams
from .layers import bidirectional as _bidirectional
from .layers import keras_surface, stack
from .layers.bidirectional import BidirectionalOutput, BidirectionalState, merged_size
from .layers.keras_surface import InitializerLike, StateLike
from .layers.stack import StackOutput

__all__ = ["LSTM", "LSTMCell", "KeptState", "Bidirectional", "StackedLSTM"]

RngsLike = Optional[Union[nnx.Rngs, nnx.RngStream, jax.Array]]


class KeptState(nnx.Variable):
    """A stateful ``LSTM``'s ``LSTMState`` between calls (None before the first call)."""


class _Direction:
    """kernel / recurrent_kernel / bias / projection as ``nnx.Param`` (absent ones None), and the
    variants' ``layer_norm`` / ``peepholes`` as an ``nnx.Dict`` of ``nnx.Param`` (``x_gain`` ...,
    ``i``, ``f``, ``o``), made by the one parameter builder, read and written as ``LSTMParams``."""

    kernel: nnx.Param
    recurrent_kernel: nnx.Param
    bias: Optional[nnx.Param]
    projection: Optional[nnx.Param]
    layer_norm: Optional[nnx.Dict]
    peepholes: Optional[nnx.Dict]

    def _make_weights(self, in_features: int, units: int, weights: WeightOptions, rngs: nnx.Rngs) -> None:
        in_features = checks.positive_int(in_features, "in_features")

        def made(spec: Any) -> Any:
            if isinstance(spec, dict):
                return nnx.Dict({sub: made(inner) for sub, inner in spec.items()})
            init, shape = spec
            return nnx.Param(init(rngs.params(), shape, weights.param_dtype))

        specs = weights.specs(in_features, units)
        # Each assigned once: NNX fixes an attribute's data/static status on first assignment.
        for name in LSTMParams._fields:
            setattr(self, name, made(specs[name]) if name in specs else None)

    def _tree(self) -> dict[str, Any]:
        """The stored arrays as ``{field: array}`` / ``{field: {subfield: array}}`` (present ones)."""
        tree: dict[str, Any] = {}
        for name in LSTMParams._fields:
            value = getattr(self, name)
            if isinstance(value, nnx.Dict):
                tree[name] = {sub: param.get_value() for sub, param in value.items()}
            elif value is not None:
                tree[name] = value.get_value()
        return tree

    @property
    def params(self) -> LSTMParams:
        """The weights as the functional ``LSTMParams`` (the arrays themselves, no copy)."""
        return keras_surface.tree_params(self._tree())

    def _write(self, params: LSTMParams, name: str) -> None:
        """Write ``params`` of the same shapes (and the same absent fields) into the ``nnx.Param``s."""
        checks.params(params, name)
        new_tree, old_tree = keras_surface.params_tree(params), self._tree()

        def compare(new: Any, old: Any, path: str) -> None:
            if isinstance(old, dict) or isinstance(new, dict):
                new, old = (v if isinstance(v, dict) else {} for v in (new, old))
                for sub in [*old, *(k for k in new if k not in old)]:
                    compare(new.get(sub), old.get(sub), f"{path}.{sub}")
            elif (new is None) != (old is None) or (new is not None and jnp.shape(new) != jnp.shape(old)):
                found = "None" if new is None else checks.fmt(jnp.shape(new))
                expected = "None" if old is None else checks.fmt(jnp.shape(old))
                raise ValueError(f"{path}: expected shape {expected} for this module, found {found}")

        for field in LSTMParams._fields:
            compare(new_tree.get(field), old_tree.get(field), f"{name}.{field}")
        for field, value in new_tree.items():
            stored = getattr(self, field)
            if isinstance(value, dict):
                for sub, array in value.items():
                    stored[sub].set_value(jnp.asarray(array))
            else:
                stored.set_value(jnp.asarray(value))

    def set_params(self, params: LSTMParams) -> None:
        """Write ``LSTMParams`` (kernel ``[I, G*H]``, recurrent_kernel ``[H, G*H]``, bias ``[G*H]`` iff
        use_bias, layer_norm / peepholes iff the module has them) into the module's ``nnx.Param``s.
        (A method rather than a property setter: NNX intercepts attribute assignment.)"""
        current = self.params
        keras_surface.module_params(params, current.units, keras_surface.variant_flags(current))
        self._write(params, "params")

    @classmethod
    def from_params(cls, params: LSTMParams, *, rngs: Optional[nnx.Rngs] = None, **options: Any) -> Any:
        """A module holding ``params`` (``options`` as in the constructor, less the sizes). ``rngs``
        is needed only for dropout; without it, pass ``rngs=`` to the call when dropping."""
        input_size, units, _ = checks.params(params)
        options = {**keras_surface.PLACEHOLDER_INIT, **options, **keras_surface.variant_flags(params)}
        make: Any = cls  # LSTM or LSTMCell
        module = make(input_size, units, rngs=rngs or nnx.Rngs(0), **options)
        module.set_params(params)
        if rngs is None and hasattr(module, "rngs"):
            module.rngs = nnx.data(None)  # no dropout stream unless one is given
        return module


def _dropout_key(module: Any, rngs: RngsLike, collection: str) -> jax.Array:
    if rngs is None:
        rngs = module.rngs
    if rngs is None:
        raise ValueError(
            f"rngs: dropout is on (deterministic=False) but this {type(module).__name__} has no RNG "
            "stream; pass rngs= to the constructor or the call, or call with deterministic=True"
        )
    if isinstance(rngs, nnx.Rngs):
        return rngs[collection]()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if not isinstance(rngs, jax.Array):
        raise TypeError(
            f"rngs: expected nnx.Rngs, an nnx.RngStream or a PRNG key, found {type(rngs).__name__}"
        )
    return rngs


def _dropout_stream(rngs: nnx.Rngs, collection: str, dropping: bool) -> Any:
    # A forked stream, as nnx.Dropout keeps: each call draws a fresh key from it.
    return rngs[collection].fork() if dropping else nnx.data(None)


class _View:
    """``set_view`` for the modules with a ``deterministic`` switch."""

    def set_view(self, deterministic: Optional[bool] = None) -> None:
        """For ``nnx.view`` (and ``train()`` / ``eval()``). Args: deterministic: dropout (zoneout,
        weight drop) off if True."""
        if deterministic is not None:
            self.deterministic = deterministic


class LSTM(_Direction, _View, nnx.Module):
    """Keras's ``LSTM`` layer as an NNX module.

    Args:
        in_features: I, features per input step (first, as in ``nnx.Linear``).
        units: H, the hidden size.
        activation ... time_major, dtype, param_dtype, rng_collection: as the attributes of
            ``jaxlstm.linen.LSTM`` (one meaning in both flavours); ``stateful`` keeps the final state
            in ``self.kept_state`` (a ``KeptState`` variable), and ``reset_state()`` zeroes it.
        variants: ``layer_norm``, ``peepholes``, ``coupled_gates``, ``layer_norm_epsilon``,
            ``layer_norm_carry``, ``zoneout``, ``weight_drop``, ``dropout_masks``, ``carry_dtype``,
            as the attributes of ``jaxlstm.linen.LSTM``; the nested weights are ``self.layer_norm`` / ``self.peepholes``
            (an ``nnx.Dict`` of ``nnx.Param``). Zoneout and weight drop draw from the dropout stream
            in training and are off (zoneout: its expectation) when deterministic.
        deterministic: dropout off when True (``model.eval()`` / ``model.train()`` set it); False
            by default, as ``nnx.Dropout`` (linen's default is None, as ``flax.linen.Dropout``).
        rngs: ``nnx.Rngs`` for the initialisers (``params`` stream) and dropout.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None, training=None, rngs=None)``; ``initial_state`` is an ``LSTMState`` or Keras's
    list ``[h, c]``; mask ``[..., T]`` bool or 0/1; lengths ``[...]`` int is right padding as in
    ``jaxlstm.lstm`` (the last output is then each sequence's own last step); resets ``[..., T]``
    bool zero the state before a True step (as in ``jaxlstm.lstm``). T must be at least 1. Returns
    ``[..., H]``, ``[..., T, H]`` with return_sequences, ``(output, h, c)`` with return_state.
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
        zero_output_for_mask: Optional[bool] = None,
        unroll: int | bool = 1,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        impl: Any = "auto",
        time_major: bool = False,
        layer_norm: bool = False,
        peepholes: bool = False,
        coupled_gates: bool = False,
        layer_norm_epsilon: float = 1e-3,
        layer_norm_carry: str = "raw",
        zoneout: Any = 0.0,
        weight_drop: float = 0.0,
        dropout_masks: str = "shared",
        carry_dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        self.units = checks.positive_int(units, "units")
        self.options = keras_surface.sequence_options(locals())
        self._make_weights(in_features, units, keras_surface.weight_options(locals()), rngs)
        self.in_features = in_features
        self.dropout, self.recurrent_dropout = keras_surface.dropout_rates(dropout, recurrent_dropout)
        self.weight_drop = checks.fraction(weight_drop, "weight_drop")
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.stateful = go_backwards, stateful
        self.dtype, self.param_dtype = dtype, param_dtype
        self.deterministic = checks.flag(deterministic, "deterministic")
        self.rng_collection = rng_collection
        dropping = keras_surface.regularised(
            self.dropout, self.recurrent_dropout, self.weight_drop, self.options
        )
        self.rngs = _dropout_stream(rngs, rng_collection, dropping)
        if stateful:
            self.kept_state = KeptState(None)

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
        rngs: RngsLike = None,
    ) -> Any:
        """See the class docstring: inputs ``[..., T, I]`` -> ``[..., H]``, ``[..., T, H]`` or
        ``(output, h [..., H], c [..., H])``."""
        swapped = (
            f"; nnx.LSTM takes (in_features, units): was it built as LSTM({self.units}, {self.in_features})?"
            if jnp.shape(inputs)[-1:] == (self.units,)
            else ""
        )
        batch_shape, _ = keras_surface.check_inputs(
            inputs, self.in_features, self.options.time_major, swapped
        )
        outputs, state = keras_surface.run(
            self,
            self.params,
            inputs,
            initial_state,
            mask,
            self.options,
            batch_shape=batch_shape,
            kept=self.kept_state.get_value() if self.stateful else None,
            lengths=lengths,
            resets=resets,
            deterministic=deterministic,
            training=training,
            dropout_key=lambda: _dropout_key(self, rngs, self.rng_collection),
        )
        if self.stateful:
            self.kept_state.set_value(state)
        return outputs

    def reset_state(self, batch_shape: Optional[Sequence[int]] = None) -> None:
        """Zero the kept state (h ``[..., H]``, c ``[..., H]``); with ``batch_shape``, zeros of that
        batch shape (to change it)."""
        if not self.stateful:
            raise ValueError("reset_state: this LSTM is not stateful (stateful=False)")
        kept = self.kept_state.get_value()  # None before the first call
        self.kept_state.set_value(keras_surface.zeroed_state(kept, self.units, batch_shape))


class LSTMCell(_Direction, nnx.RNNCellBase):
    """An LSTM cell for ``flax.nnx.RNN``: carry ``(c, h)``, one time step per call.

    Same parameters (names, Keras layout, initialisers) and numbers as ``LSTM``; the step is
    ``core.step``. ``nnx.RNN(LSTMCell(I, H, rngs=...))`` equals ``LSTM(I, H, return_sequences=True)``
    with the same params. The variants' options as in ``LSTM`` (``layer_norm``, ``peepholes``,
    ``coupled_gates``, ``layer_norm_epsilon``, ``layer_norm_carry``, ``carry_dtype``); ``zoneout``
    is always its evaluation form, the expectation (Flax's RNN drivers give a cell no per-step
    key). No dropout and no training-mode zoneout: use ``LSTM`` for those.

    Call: ``(carry (c [..., H], h [..., H]), inputs [..., I]) -> ((c, h), h [..., H])``.
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
        layer_norm: bool = False,
        peepholes: bool = False,
        coupled_gates: bool = False,
        layer_norm_epsilon: float = 1e-3,
        layer_norm_carry: str = "raw",
        zoneout: Any = 0.0,
        carry_dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        self.units = checks.positive_int(units, "units")
        self.options = keras_surface.sequence_options(locals())
        self._make_weights(in_features, units, keras_surface.weight_options(locals()), rngs)
        self.in_features = in_features
        self.dtype, self.param_dtype = dtype, param_dtype

    def __call__(
        self, carry: tuple[jax.Array, jax.Array], inputs: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """One step: carry ``(c [..., H], h [..., H])``, inputs ``[..., I]`` -> ``((c, h), h)``."""
        state = keras_surface.cell_inputs(carry, inputs, self.in_features, self.units)
        dtype = keras_surface.compute_dtype(self.dtype, inputs, self.param_dtype)
        state, y = keras_surface.cell_step(self.params, state, inputs, self.options, dtype)
        return state.to_flax_carry(), y

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: Optional[nnx.Rngs | nnx.RngStream] = None,
        carry_init: Any = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Zeros ``(c [..., H], h [..., H])`` for inputs ``[..., I]``; with ``carry_init`` (and
        ``rngs``), its values. In the dtypes a step returns (h: ``dtype`` or ``param_dtype``; c:
        ``carry_dtype`` if set)."""
        shape = (*tuple(input_shape)[:-1], self.units)
        h, c = keras_surface.cell_carry_dtypes(self.dtype, self.param_dtype, self.options.carry_dtype)
        if carry_init is None:
            return jnp.zeros(shape, c), jnp.zeros(shape, h)
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        if rngs is None:
            raise ValueError("rngs: carry_init needs an RNG stream to draw the initial carry")
        return (carry_init(rngs(), shape, c), carry_init(rngs(), shape, h))

    @property
    def num_feature_axes(self) -> int:
        """1: inputs are ``[..., I]``."""
        return 1


class _Weights(_Direction, nnx.Module):
    """One direction's ``LSTMParams`` of a layer or stack."""

    def __init__(self, input_size: int, units: int, weights: WeightOptions, rngs: nnx.Rngs) -> None:
        self._make_weights(input_size, units, weights, rngs)


class _BidirectionalWeights(nnx.Module):
    def __init__(self, input_size: int, units: int, weights: WeightOptions, rngs: nnx.Rngs) -> None:
        self.forward = _Weights(input_size, units, weights, rngs)
        self.backward = _Weights(input_size, units, weights, rngs)

    @property
    def params(self) -> BidirectionalParams:
        return BidirectionalParams(self.forward.params, self.backward.params)

    def _write(self, params: BidirectionalParams, name: str) -> None:
        checks.bidirectional(params, name)
        self.forward._write(params.forward, f"{name}.forward")
        self.backward._write(params.backward, f"{name}.backward")


class _Layers:
    """``from_params`` for the layer modules: sizes from the params, placeholder weights, then
    ``set_params``."""

    @classmethod
    def from_params(cls, params: Any, *, rngs: Optional[nnx.Rngs] = None, **options: Any) -> Any:
        """A module holding ``params`` (``options`` as in the constructor, less the sizes and
        ``bidirectional``). ``rngs`` is needed only for dropout."""
        shape = keras_surface.stack_shape(params)
        if cls is Bidirectional:
            del shape["num_layers"], shape["bidirectional"]
        init = {**keras_surface.PLACEHOLDER_INIT, "projection_initializer": "zeros"}
        make: Any = cls  # Bidirectional or StackedLSTM
        module = make(rngs=rngs or nnx.Rngs(0), **{**init, **options, **shape})
        module.set_params(params)
        if rngs is None and hasattr(module, "rngs"):
            module.rngs = nnx.data(None)  # no dropout stream unless one is given
        return module


class Bidirectional(_Layers, _View, nnx.Module):
    """A bidirectional LSTM (Keras ``Bidirectional(LSTM)``), with optional projection.

    Args:
        in_features: I. units: H. proj_size: P for projected outputs (PyTorch ``proj_size``), or None.
        merge_mode: ``"concat"``, ``"sum"``, ``"mul"``, ``"ave"`` or None (the pair).
        zero_output_for_mask: masked steps output zeros (None: Keras Bidirectional's default, True).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in ``LSTM``,
            and so are unroll, dtype, param_dtype, impl and time_major; ``projection_initializer``
            for ``[H, P]``.
        variants: ``layer_norm``, ``peepholes``, ``coupled_gates``, ``layer_norm_epsilon``,
            ``layer_norm_carry``, ``zoneout``, ``weight_drop``, ``carry_dtype``, as in ``LSTM``, in
            both directions.
        deterministic: zoneout and weight drop off (zoneout: its expectation) when True
            (``model.eval()``); False by default. rng_collection: the ``rngs`` stream they draw from.
        rngs: ``nnx.Rngs`` for the initialisers (``params`` stream) and zoneout / weight drop.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None, rngs=None)`` -> ``BidirectionalOutput`` (sequence ``[..., T, F]``;
    ``resets`` are episode starts, as in ``jaxlstm.bidirectional``).
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        proj_size: Optional[int] = None,
        merge_mode: Optional[str] = "concat",
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
        impl: Any = "auto",
        time_major: bool = False,
        layer_norm: bool = False,
        peepholes: bool = False,
        coupled_gates: bool = False,
        layer_norm_epsilon: float = 1e-3,
        layer_norm_carry: str = "raw",
        zoneout: Any = 0.0,
        weight_drop: float = 0.0,
        carry_dtype: Any = None,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ) -> None:
        units = checks.positive_int(units, "units")
        self.merge_mode = checks.merge_mode(merge_mode)
        self.options = keras_surface.sequence_options(locals())
        self.weights = _BidirectionalWeights(in_features, units, keras_surface.weight_options(locals()), rngs)
        self.weight_drop = checks.fraction(weight_drop, "weight_drop")
        self.deterministic = checks.flag(deterministic, "deterministic")
        self.rng_collection = rng_collection
        dropping = keras_surface.regularised(0.0, 0.0, self.weight_drop, self.options)
        self.rngs = _dropout_stream(rngs, rng_collection, dropping)

    @property
    def params(self) -> BidirectionalParams:
        """The weights as ``BidirectionalParams``."""
        return self.weights.params

    def set_params(self, params: BidirectionalParams) -> None:
        """Write ``BidirectionalParams`` of the same shapes into the module's ``nnx.Param``s."""
        self.weights._write(params, "params")

    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[BidirectionalState] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        resets: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        rngs: RngsLike = None,
    ) -> BidirectionalOutput:
        """Inputs ``[..., T, I]`` -> ``BidirectionalOutput`` (see ``jaxlstm.bidirectional``)."""
        params = self.params
        keras_surface.check_inputs(inputs, params.forward.input_size, self.options.time_major)
        key = lambda: _dropout_key(self, rngs, self.rng_collection)  # noqa: E731
        call = keras_surface.bidirectional_inputs(self, params, resets, deterministic, self.options, key)
        return _bidirectional.run(
            params, inputs, initial_state, mask, lengths, self.options, self.merge_mode, call
        )


class StackedLSTM(_Layers, _View, nnx.Module):
    """``num_layers`` LSTM layers of equal width (PyTorch ``nn.LSTM``), optionally bidirectional
    and projected, with dropout between layers and residual connections.

    Args:
        in_features: I. units: H. num_layers: layers. proj_size: P or None.
        bidirectional: two directions per layer, merged with ``merge_mode`` (``"concat"``, ``"sum"``,
            ``"mul"`` or ``"ave"``) before the next layer.
        inter_layer_dropout: PyTorch's ``dropout`` (after every layer but the last). ``dropout``: its
            deprecated spelling (``LSTM``'s ``dropout`` is Keras's input dropout, a different thing).
        deterministic: dropout off when True (``model.eval()`` / ``model.train()`` set it).
        residual: add each upper layer's input to its output.
        zero_output_for_mask: None for Keras's per-layer default (see ``stacked_lstm``).
        activation, recurrent_activation, use_bias, *_initializer, unit_forget_bias: as in
            ``Bidirectional``; so are unroll, dtype, param_dtype, impl and time_major, and the
            variants (layer_norm ... carry_dtype; zoneout and weight drop in every layer).
        rng_collection: the ``rngs`` stream dropout (zoneout, weight drop) draws from (``"dropout"``).
        rngs: ``nnx.Rngs`` for the initialisers (``params``) and dropout.

    Call: ``(inputs [..., T, I], initial_state=None, mask=None, *, lengths=None, resets=None,
    deterministic=None, rngs=None)`` -> ``StackOutput`` (sequence ``[..., T, F]``; ``resets``
    episode starts for every layer).
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
        inter_layer_dropout: float = 0.0,
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
        time_major: bool = False,
        dropout: Optional[float] = None,
        layer_norm: bool = False,
        peepholes: bool = False,
        coupled_gates: bool = False,
        layer_norm_epsilon: float = 1e-3,
        layer_norm_carry: str = "raw",
        zoneout: Any = 0.0,
        weight_drop: float = 0.0,
        carry_dtype: Any = None,
        rngs: nnx.Rngs,
    ) -> None:
        num_layers = checks.positive_int(num_layers, "num_layers")
        units = checks.positive_int(units, "units")
        rate = checks.renamed("dropout", dropout, "inter_layer_dropout", inter_layer_dropout, 0.0)
        self.inter_layer_dropout = checks.fraction(rate, "inter_layer_dropout")
        self.merge_mode = checks.merge_mode(merge_mode)
        self.options = keras_surface.sequence_options(locals())
        weights = keras_surface.weight_options(locals())
        output_size = weights.output_size(units)
        width = merged_size(output_size, merge_mode) if bidirectional else output_size
        make = _BidirectionalWeights if bidirectional else _Weights
        self.layers = nnx.List(
            [make(in_features if layer == 0 else width, units, weights, rngs) for layer in range(num_layers)]
        )
        self.deterministic = checks.flag(deterministic, "deterministic")
        self.residual = residual
        self.rng_collection = rng_collection
        self.weight_drop = checks.fraction(weight_drop, "weight_drop")
        self.rngs = _dropout_stream(rngs, rng_collection, self._randomised())

    def _randomised(self) -> bool:
        return keras_surface.stack_randomised(
            self.inter_layer_dropout, len(self.layers), self.weight_drop, self.options
        )

    @property
    def dropout(self) -> float:
        """Deprecated spelling of ``inter_layer_dropout``."""
        return self.inter_layer_dropout

    @property
    def params(self) -> tuple[LayerParams, ...]:
        """The weights as a tuple of per-layer ``LSTMParams`` / ``BidirectionalParams``."""
        return tuple(layer.params for layer in self.layers)

    def set_params(self, params: Sequence[LayerParams]) -> None:
        """Write per-layer params of the same shapes into the module's ``nnx.Param``s."""
        params = checks.layers(params)
        if len(params) != len(self.layers):
            raise ValueError(f"params: expected {len(self.layers)} layers, found {len(params)}")
        for index, (layer, new) in enumerate(zip(self.layers, params)):
            kind = BidirectionalParams if isinstance(layer, _BidirectionalWeights) else LSTMParams
            if not isinstance(new, kind):
                raise TypeError(f"params[{index}]: expected {kind.__name__}, found {type(new).__name__}")
            cast(Any, layer)._write(new, f"params[{index}]")

    def __call__(
        self,
        inputs: jax.Array,
        initial_state: Optional[tuple] = None,
        mask: Optional[jax.Array] = None,
        *,
        lengths: Optional[jax.Array] = None,
        resets: Optional[jax.Array] = None,
        deterministic: Optional[bool] = None,
        rngs: RngsLike = None,
    ) -> StackOutput:
        """Inputs ``[..., T, I]`` -> ``StackOutput`` (see ``jaxlstm.stacked_lstm``)."""
        params = self.params
        keras_surface.check_inputs(
            inputs, stack.check_stack(params, self.merge_mode, False)[0][0], self.options.time_major
        )
        deterministic = self.deterministic if deterministic is None else deterministic
        key = None
        if self._randomised() and not deterministic:
            key = _dropout_key(self, rngs, self.rng_collection)
        return stack.run(
            params,
            inputs,
            initial_state,
            mask,
            lengths,
            self.options,
            merge_mode=self.merge_mode,
            inter_layer_dropout=self.inter_layer_dropout,
            key=key,
            deterministic=deterministic,
            residual=self.residual,
            weight_drop=self.weight_drop,
            inputs=CallInputs(resets=resets),
        )
