"""Golden public API: every exported name of jaxlstm and its signature.

A refactor must change no public name or signature by accident. When one changes on purpose, update
GOLDEN here and say so in CHANGELOG.md (with the old spelling kept, deprecated, for one release).
Regenerate with ``python tests/test_public_api.py``.
"""

from __future__ import annotations

import importlib
import inspect
import pprint
import re
from typing import Any

import pytest

MODULES = [
    "jaxlstm",
    "jaxlstm.linen",
    "jaxlstm.nnx",
    "jaxlstm.checkpoint",
    "jaxlstm.sharding",
    "jaxlstm.interop",
] + [
    f"jaxlstm.interop.{m}"
    for m in ("keras", "keras_files", "torch", "flax", "equinox", "haiku", "addons", "io")
]


def sig(obj: Any) -> str:
    try:
        s = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return type(obj).__name__
    return re.sub(r" at 0x[0-9a-f]+", "", s)


def describe(obj: Any) -> Any:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        out = {"": "class" + sig(obj)}
        # Methods of the class and of its jaxlstm bases (a shared base must not hide one); dataclass
        # fields (linen attributes) are in the class signature.
        fields = getattr(obj, "__dataclass_fields__", {})
        for klass in reversed([k for k in obj.__mro__ if k.__module__.startswith("jaxlstm")]):
            for name, member in vars(klass).items():
                if (name.startswith("_") and name != "__call__") or name in fields:
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    out[name] = "property"
                elif callable(member):
                    out[name] = sig(member)
        return out
    if callable(obj):
        return sig(obj)
    return type(obj).__name__


def current(module_name: str) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    return {name: describe(getattr(module, name)) for name in sorted(module.__all__)}


GOLDEN: dict[str, dict[str, Any]] = {
    "jaxlstm": {
        "ACTIVATIONS": "dict",
        "BidirectionalOutput": {
            "": "class(sequence: ForwardRef('Union[jax.Array, tuple[jax.Array, jax.Array]]'), state: ForwardRef('BidirectionalState'))"
        },
        "BidirectionalParams": {
            "": "class(forward: ForwardRef('LSTMParams'), backward: ForwardRef('LSTMParams'))"
        },
        "BidirectionalState": {
            "": "class(forward: ForwardRef('LSTMState'), backward: ForwardRef('LSTMState'))"
        },
        "LSTMOutput": {"": "class(sequence: ForwardRef('jax.Array'), state: ForwardRef('LSTMState'))"},
        "LSTMParams": {
            "": "class(kernel: ForwardRef('jax.Array'), recurrent_kernel: ForwardRef('jax.Array'), bias: ForwardRef('Optional[jax.Array]') = None, projection: "
            "ForwardRef('Optional[jax.Array]') = None, layer_norm: ForwardRef('Optional[LayerNormParams]') = None, peepholes: ForwardRef('Optional[PeepholeParams]') = None)",
            "gates": "property",
            "input_size": "property",
            "output_size": "property",
            "units": "property",
        },
        "LSTMState": {
            "": "class(h: ForwardRef('jax.Array'), c: ForwardRef('jax.Array'))",
            "from_flax_carry": "(cls, carry: 'tuple[jax.Array, jax.Array]') -> 'LSTMState'",
            "to_flax_carry": "(self) -> 'tuple[jax.Array, jax.Array]'",
        },
        "LayerNormParams": {
            "": "class(x_gain: ForwardRef('jax.Array'), x_offset: ForwardRef('jax.Array'), h_gain: ForwardRef('jax.Array'), h_offset: ForwardRef('jax.Array'), "
            "c_gain: ForwardRef('jax.Array'), c_offset: ForwardRef('jax.Array'))"
        },
        "PeepholeParams": {
            "": "class(i: ForwardRef('Optional[jax.Array]'), f: ForwardRef('jax.Array'), o: ForwardRef('jax.Array'))"
        },
        "StackOutput": {
            "": "class(sequence: ForwardRef('jax.Array'), state: ForwardRef('tuple[LayerState, ...]'))"
        },
        "TorchState": {"": "class(h_n: ForwardRef('jax.Array'), c_n: ForwardRef('jax.Array'))"},
        "bidirectional": "(params: 'BidirectionalParams', xs: 'jax.Array', initial_state: 'Optional[BidirectionalState]' = None, mask: 'Optional[jax.Array]' = None, *, merge_mode: 'Optional[str]' = 'concat', lengths: 'Optional[jax.Array]' = None, zero_output_for_mask: 'Optional[bool]' = None, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', unroll: 'int | bool' = 1, dtype: 'Any' = None, impl: 'Any' = 'auto', time_major: 'bool' = False, layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'float | tuple[float, float]' = 0.0, carry_dtype: 'Any' = None, resets: 'Optional[jax.Array]' = None, reset_state: 'Optional[BidirectionalState]' = None, zoneout_key: 'Optional[jax.Array]' = None, weight_drop_mask: 'Optional[tuple[jax.Array, jax.Array]]' = None) -> 'BidirectionalOutput'",
        "from_torch_state": "(h_0: 'jax.Array', c_0: 'jax.Array', params: 'Sequence[LayerParams]') -> 'tuple[LayerState, ...]'",
        "hard_sigmoid": "(x: 'jax.Array') -> 'jax.Array'",
        "init": "(key: 'jax.Array', input_size: 'int', units: 'int', *, use_bias: 'bool' = True, unit_forget_bias: 'bool' = True, kernel_init: 'Initializer' = <function "
        "variance_scaling.<locals>.init>, recurrent_init: 'Initializer' = <function orthogonal.<locals>.init>, bias_init: 'Initializer' = <function zeros>, proj_size: 'Optional[int]' = "
        "None, projection_init: 'Initializer' = <function variance_scaling.<locals>.init>, param_dtype: 'Any' = <class 'jax.numpy.float32'>, layer_norm: 'bool' = False, "
        "peepholes: 'bool' = False, coupled_gates: 'bool' = False) -> 'LSTMParams'",
        "init_bidirectional": "(key: 'jax.Array', input_size: 'int', units: 'int', **init_kwargs: 'Any') -> 'BidirectionalParams'",
        "init_stack": "(key: 'jax.Array', input_size: 'int', units: 'int', num_layers: 'int' = 1, *, bidirectional: 'bool' = False, merge_mode: 'str' = 'concat', proj_size: 'Optional[int]' = "
        "None, **init_kwargs: 'Any') -> 'tuple[LayerParams, ...]'",
        "lstm": "(params: 'LSTMParams', xs: 'jax.Array', initial_state: 'Optional[LSTMState]' = None, mask: 'Optional[jax.Array]' = None, *, reverse: 'bool' = False, keep_order: 'bool' = False, "
        "lengths: 'Optional[jax.Array]' = None, zero_output_for_mask: 'Optional[bool]' = None, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', "
        "unroll: 'int | bool' = 1, dtype: 'Any' = None, recurrent_dropout_mask: 'Optional[jax.Array]' = None, impl: 'str' = 'auto', time_major: 'bool' = False, "
        "layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'float | tuple[float, float]' = 0.0, dropout_masks: 'str' = 'shared', carry_dtype: 'Any' = None, "
        "resets: 'Optional[jax.Array]' = None, reset_state: 'Optional[LSTMState]' = None, zoneout_key: 'Optional[jax.Array]' = None, weight_drop_mask: 'Optional[jax.Array]' = None, "
        "input_dropout_mask: 'Optional[jax.Array]' = None) -> 'LSTMOutput'",
        "merge": "(forward: 'jax.Array', backward: 'jax.Array', merge_mode: 'Optional[str]' = 'concat') -> 'Union[jax.Array, tuple[jax.Array, jax.Array]]'",
        "stacked_lstm": "(params: 'Sequence[LayerParams]', xs: 'jax.Array', initial_state: 'Optional[Sequence[LayerState]]' = None, mask: 'Optional[jax.Array]' = None, *, merge_mode: 'str' = 'concat', lengths: 'Optional[jax.Array]' = None, inter_layer_dropout: 'float' = 0.0, key: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None, residual: 'bool' = False, zero_output_for_mask: 'Optional[bool]' = None, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', unroll: 'int | bool' = 1, dtype: 'Any' = None, impl: 'Any' = 'auto', time_major: 'bool' = False, dropout: 'Optional[float]' = None, layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'float | tuple[float, float]' = 0.0, carry_dtype: 'Any' = None, resets: 'Optional[jax.Array]' = None, reset_state: 'Optional[Sequence[LayerState]]' = None, weight_drop: 'float' = 0.0) -> 'StackOutput'",
        "step": "(params: 'LSTMParams', state: 'LSTMState', x_t: 'jax.Array', *, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', "
        "layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw') -> 'tuple[LSTMState, jax.Array]'",
        "stream_chunk": "(params: 'StreamParams', state: 'StreamState', xs: 'jax.Array', *, mask: 'Optional[jax.Array]' = None, residual: 'bool' = False, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', unroll: 'int | bool' = 1, impl: 'Any' = 'auto', layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'float | tuple[float, float]' = 0.0, carry_dtype: 'Any' = None, resets: 'Optional[jax.Array]' = None, reset_state: 'Optional[StreamState]' = None) -> 'tuple[StreamState, jax.Array]'",
        "stream_state": "(params: 'StreamParams', batch_shape: 'Sequence[int]' = (), dtype: 'Any' = <class 'jax.numpy.float32'>) -> 'StreamState'",
        "stream_step": "(params: 'StreamParams', state: 'StreamState', x_t: 'jax.Array', *, residual: 'bool' = False, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'float | tuple[float, float]' = 0.0, carry_dtype: 'Any' = None, reset: 'Optional[jax.Array]' = None, reset_state: 'Optional[StreamState]' = None) -> 'tuple[StreamState, jax.Array]'",
        "torch_state": "(state: 'Sequence[LayerState]') -> 'TorchState'",
        "zero_state": "(params_or_units: 'LSTMParams | int', batch_shape: 'Sequence[int]' = (), dtype: 'Any' = <class 'jax.numpy.float32'>) -> 'LSTMState'",
    },
    "jaxlstm.checkpoint": {
        "InvalidFileError": {"": "classtype"},
        "restore": "(path: 'str | os.PathLike', like: 'T') -> 'T'",
        "save": "(path: 'str | os.PathLike', tree: 'Any') -> 'None'",
    },
    "jaxlstm.interop": {
        "InvalidFileError": {"": "classtype"},
        "addons": "module",
        "equinox": "module",
        "flax": "module",
        "haiku": "module",
        "io": "module",
        "keras": "module",
        "keras_files": "module",
        "torch": "module",
    },
    "jaxlstm.interop.addons": {
        "from_addons_layer_norm": "(weights: 'Sequence[Any]', *, use_bias: 'bool | None' = None) -> 'LSTMParams'",
        "from_addons_peephole": "(weights: 'Sequence[Any]', *, use_bias: 'bool | None' = None) -> 'LSTMParams'",
        "to_addons_layer_norm": "(params: 'LSTMParams') -> 'list[np.ndarray]'",
        "to_addons_peephole": "(params: 'LSTMParams') -> 'list[np.ndarray]'",
    },
    "jaxlstm.interop.equinox": {
        "from_equinox": "(cell: 'Any') -> 'LSTMParams'",
        "to_equinox": "(params: 'LSTMParams', cell: 'Optional[Any]' = None) -> 'Any'",
    },
    "jaxlstm.interop.flax": {
        "from_linen": "(variables: 'Mapping[str, Any]') -> 'LayerParams'",
        "from_nnx": "(cell: 'Any') -> 'LayerParams'",
        "to_linen": "(params: 'LayerParams', *, rnn: 'bool' = False) -> 'dict[str, Any]'",
        "to_nnx": "(params: 'LayerParams', cell: 'Any') -> 'Any'",
    },
    "jaxlstm.interop.haiku": {
        "FORGET_BIAS": "float",
        "from_haiku": "(params: 'Mapping[str, Any]', module: 'Optional[str]' = None) -> 'LSTMParams'",
        "to_haiku": "(params: 'LSTMParams', name: 'str' = 'lstm') -> 'dict[str, dict[str, Any]]'",
    },
    "jaxlstm.interop.io": {
        "InvalidFileError": {"": "classtype"},
        "load": "(path: 'str | os.PathLike') -> 'tuple[Any, dict[str, Any]]'",
        "save": "(path: 'str | os.PathLike', params: 'Any', config: 'Optional[dict[str, Any]]' = None) -> 'None'",
    },
    "jaxlstm.interop.keras": {
        "from_keras": "(layer: 'Any') -> 'LayerParams'",
        "from_keras_weights": "(weights: 'Sequence[Any]', *, bidirectional: 'bool' = False, use_bias: 'bool | None' = None) -> 'LayerParams'",
        "layer_config": "(layer: 'Any') -> 'dict[str, Any]'",
        "lstm_options": "(layer: 'Any') -> 'dict[str, Any]'",
        "to_keras": "(params: 'LayerParams', layer: 'Any') -> 'Any'",
        "to_keras_weights": "(params: 'LayerParams') -> 'list[np.ndarray]'",
    },
    "jaxlstm.interop.keras_files": {
        "InvalidFileError": {"": "classtype"},
        "KerasLayer": {
            "": "class(name: ForwardRef('str'), kind: ForwardRef('str'), input_size: ForwardRef('int'), units: ForwardRef('int'), use_bias: ForwardRef('bool'), "
            "path: ForwardRef('str'), config: ForwardRef('Optional[dict[str, Any]]'), keras_version: ForwardRef('Optional[str]') = None)"
        },
        "contents": "(path: 'str | os.PathLike') -> 'dict[str, dict[str, tuple[int, ...]]]'",
        "list_layers": "(path: 'str | os.PathLike') -> 'list[KerasLayer]'",
        "load_layer": "(path: 'str | os.PathLike', name: 'str') -> 'LayerParams'",
        "load_layers": "(path: 'str | os.PathLike', names: 'Optional[list[str]]' = None) -> 'tuple[LayerParams, ...]'",
        "lstm_options": "(layer: 'Any') -> 'dict[str, Any]'",
    },
    "jaxlstm.interop.torch": {
        "InvalidFileError": {"": "classtype"},
        "from_torch": "(state_dict: 'Any', *, prefix: 'str' = '') -> 'tuple[LayerParams, ...]'",
        "from_torch_cell": "(state_dict: 'Any', *, prefix: 'str' = '') -> 'LSTMParams'",
        "load_torch_file": "(path: 'str | os.PathLike') -> 'OrderedDict[str, Any]'",
        "to_torch": "(params: 'Any') -> 'OrderedDict[str, Any]'",
        "to_torch_cell": "(params: 'LSTMParams') -> 'OrderedDict[str, Any]'",
    },
    "jaxlstm.linen": {
        "Bidirectional": {
            "": "class(units: 'int', proj_size: 'Optional[int]' = None, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', use_bias: "
            "'bool' = True, kernel_initializer: 'Any' = 'glorot_uniform', recurrent_initializer: 'Any' = 'orthogonal', bias_initializer: 'Any' = 'zeros', "
            "projection_initializer: 'Any' = 'glorot_uniform', unit_forget_bias: 'bool' = True, unroll: 'int | bool' = 1, dtype: 'Any' = None, param_dtype: 'Any' = "
            "<class 'jax.numpy.float32'>, impl: 'Any' = 'auto', layer_norm: 'bool' = False, peepholes: 'bool' = False, coupled_gates: 'bool' = False, layer_norm_epsilon: "
            "'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'Any' = 0.0, weight_drop: 'float' = 0.0, carry_dtype: 'Any' = None, merge_mode: 'Optional[str]' = "
            "'concat', zero_output_for_mask: 'Optional[bool]' = None, time_major: 'bool' = False, deterministic: 'Optional[bool]' = None, rng_collection: 'str' = "
            "'dropout', parent: Union[flax.linen.module.Module, flax.core.scope.Scope, flax.linen.module._Sentinel, NoneType] = <flax.linen.module._Sentinel object>, "
            "name: Optional[str] = None) -> None",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[BidirectionalState]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: "
            "'Optional[jax.Array]' = None, resets: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None) -> 'BidirectionalOutput'",
        },
        "LSTM": {
            "": "class(units: 'int', activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', use_bias: 'bool' = True, kernel_initializer: "
            "'InitializerLike' = 'glorot_uniform', recurrent_initializer: 'InitializerLike' = 'orthogonal', bias_initializer: 'InitializerLike' = 'zeros', unit_forget_bias: "
            "'bool' = True, dropout: 'float' = 0.0, recurrent_dropout: 'float' = 0.0, return_sequences: 'bool' = False, return_state: 'bool' = False, go_backwards: 'bool' = "
            "False, stateful: 'bool' = False, zero_output_for_mask: 'Optional[bool]' = None, unroll: 'int | bool' = 1, dtype: 'Any' = None, param_dtype: 'Any' = <class "
            "'jax.numpy.float32'>, deterministic: 'Optional[bool]' = None, rng_collection: 'str' = 'dropout', impl: 'Any' = 'auto', time_major: 'bool' = False, layer_norm: 'bool' "
            "= False, peepholes: 'bool' = False, coupled_gates: 'bool' = False, layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'Any' = 0.0, "
            "weight_drop: 'float' = 0.0, dropout_masks: 'str' = 'shared', carry_dtype: 'Any' = None, parent: Union[flax.linen.module.Module, flax.core.scope.Scope, "
            "flax.linen.module._Sentinel, NoneType] = <flax.linen.module._Sentinel object>, name: Optional[str] = None) -> None",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[StateLike]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: 'Optional[jax.Array]' = None, "
            "resets: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None, training: 'Optional[bool]' = None) -> 'Any'",
            "reset_state": "(self, batch_shape: 'Optional[Sequence[int]]' = None) -> 'None'",
        },
        "LSTMCell": {
            "": "class(units: 'int', activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', use_bias: 'bool' = True, kernel_initializer: "
            "'InitializerLike' = 'glorot_uniform', recurrent_initializer: 'InitializerLike' = 'orthogonal', bias_initializer: 'InitializerLike' = 'zeros', unit_forget_bias: "
            "'bool' = True, dtype: 'Any' = None, param_dtype: 'Any' = <class 'jax.numpy.float32'>, layer_norm: 'bool' = False, peepholes: 'bool' = False, coupled_gates: "
            "'bool' = False, layer_norm_epsilon: 'float' = 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'Any' = 0.0, carry_dtype: 'Any' = None, parent: "
            "Union[flax.linen.module.Module, flax.core.scope.Scope, flax.linen.module._Sentinel, NoneType] = <flax.linen.module._Sentinel object>, name: Optional[str] = None) "
            "-> None",
            "__call__": "(self, carry: 'tuple[jax.Array, jax.Array]', inputs: 'jax.Array') -> 'tuple[tuple[jax.Array, jax.Array], jax.Array]'",
            "initialize_carry": "(self, rng: 'jax.Array', input_shape: 'tuple[int, ...]') -> 'tuple[jax.Array, jax.Array]'",
        },
        "STATE_COLLECTION": "str",
        "StackedLSTM": {
            "": "class(units: 'int', proj_size: 'Optional[int]' = None, activation: 'ActivationLike' = 'tanh', recurrent_activation: 'ActivationLike' = 'sigmoid', use_bias: "
            "'bool' = True, kernel_initializer: 'Any' = 'glorot_uniform', recurrent_initializer: 'Any' = 'orthogonal', bias_initializer: 'Any' = 'zeros', "
            "projection_initializer: 'Any' = 'glorot_uniform', unit_forget_bias: 'bool' = True, unroll: 'int | bool' = 1, dtype: 'Any' = None, param_dtype: 'Any' = <class "
            "'jax.numpy.float32'>, impl: 'Any' = 'auto', layer_norm: 'bool' = False, peepholes: 'bool' = False, coupled_gates: 'bool' = False, layer_norm_epsilon: 'float' "
            "= 0.001, layer_norm_carry: 'str' = 'raw', zoneout: 'Any' = 0.0, weight_drop: 'float' = 0.0, carry_dtype: 'Any' = None, num_layers: 'int' = 1, bidirectional: "
            "'bool' = False, merge_mode: 'str' = 'concat', inter_layer_dropout: 'float' = 0.0, deterministic: 'Optional[bool]' = None, residual: 'bool' = False, "
            "zero_output_for_mask: 'Optional[bool]' = None, rng_collection: 'str' = 'dropout', time_major: 'bool' = False, dropout: 'Optional[float]' = None, parent: "
            "Union[flax.linen.module.Module, flax.core.scope.Scope, flax.linen.module._Sentinel, NoneType] = <flax.linen.module._Sentinel object>, name: Optional[str] = "
            "None) -> None",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[tuple]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: 'Optional[jax.Array]' = None, "
            "resets: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None) -> 'StackOutput'",
        },
        "get_params": "(variables: 'Mapping[str, Any]') -> 'Union[LSTMParams, BidirectionalParams, tuple[LayerParams, ...]]'",
        "layer_params": "(variables: 'Mapping[str, Any]') -> 'Any'",
        "layer_variables": "(params: 'Any') -> 'dict[str, dict[str, Any]]'",
        "to_variables": "(params: 'Union[LayerParams, Sequence[LayerParams]]') -> 'dict[str, dict[str, Any]]'",
    },
    "jaxlstm.nnx": {
        "Bidirectional": {
            "": "class(*args: 'Any', **kwargs: 'Any') -> 'Any'",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[BidirectionalState]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: "
            "'Optional[jax.Array]' = None, resets: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None, rngs: 'RngsLike' = None) -> "
            "'BidirectionalOutput'",
            "from_params": "(cls, params: 'Any', *, rngs: 'Optional[nnx.Rngs]' = None, **options: 'Any') -> 'Any'",
            "params": "property",
            "set_params": "(self, params: 'BidirectionalParams') -> 'None'",
            "set_view": "(self, deterministic: 'Optional[bool]' = None) -> 'None'",
        },
        "KeptState": {"": "class(*args, **kwargs)"},
        "LSTM": {
            "": "class(*args: 'Any', **kwargs: 'Any') -> 'Any'",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[StateLike]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: 'Optional[jax.Array]' = None, resets: "
            "'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None, training: 'Optional[bool]' = None, rngs: 'RngsLike' = None) -> 'Any'",
            "from_params": "(cls, params: 'LSTMParams', *, rngs: 'Optional[nnx.Rngs]' = None, **options: 'Any') -> 'Any'",
            "params": "property",
            "reset_state": "(self, batch_shape: 'Optional[Sequence[int]]' = None) -> 'None'",
            "set_params": "(self, params: 'LSTMParams') -> 'None'",
            "set_view": "(self, deterministic: 'Optional[bool]' = None) -> 'None'",
        },
        "LSTMCell": {
            "": "class(*args: 'Any', **kwargs: 'Any') -> 'Any'",
            "__call__": "(self, carry: 'tuple[jax.Array, jax.Array]', inputs: 'jax.Array') -> 'tuple[tuple[jax.Array, jax.Array], jax.Array]'",
            "from_params": "(cls, params: 'LSTMParams', *, rngs: 'Optional[nnx.Rngs]' = None, **options: 'Any') -> 'Any'",
            "initialize_carry": "(self, input_shape: 'tuple[int, ...]', rngs: 'Optional[nnx.Rngs | nnx.RngStream]' = None, carry_init: 'Any' = None) -> 'tuple[jax.Array, "
            "jax.Array]'",
            "num_feature_axes": "property",
            "params": "property",
            "set_params": "(self, params: 'LSTMParams') -> 'None'",
        },
        "StackedLSTM": {
            "": "class(*args: 'Any', **kwargs: 'Any') -> 'Any'",
            "__call__": "(self, inputs: 'jax.Array', initial_state: 'Optional[tuple]' = None, mask: 'Optional[jax.Array]' = None, *, lengths: 'Optional[jax.Array]' = None, "
            "resets: 'Optional[jax.Array]' = None, deterministic: 'Optional[bool]' = None, rngs: 'RngsLike' = None) -> 'StackOutput'",
            "dropout": "property",
            "from_params": "(cls, params: 'Any', *, rngs: 'Optional[nnx.Rngs]' = None, **options: 'Any') -> 'Any'",
            "params": "property",
            "set_params": "(self, params: 'Sequence[LayerParams]') -> 'None'",
            "set_view": "(self, deterministic: 'Optional[bool]' = None) -> 'None'",
        },
    },
    "jaxlstm.sharding": {
        "batch_mesh": "(devices: 'Optional[Sequence[jax.Device]]' = None, axis_name: 'str' = 'batch') -> 'Mesh'",
        "batch_parallel": "(fn: 'Callable[..., Any]', mesh: 'Mesh', *, batch_argnums: 'Optional[int | Sequence[int]]' = None, axis_name: 'str' = 'batch') -> 'Callable[..., Any]'",
        "data_parallel": "(fn: 'Callable[..., Any]', mesh: 'Mesh', *, batch_argnums: 'Optional[int | Sequence[int]]' = None, axis_name: 'str' = 'batch', out_shardings: 'Any' = None, "
        "donate_argnums: 'int | Sequence[int]' = ()) -> 'Callable[..., Any]'",
        "replicate": "(tree: 'Any', mesh: 'Mesh') -> 'Any'",
        "shard_batch": "(batch: 'Any', mesh: 'Mesh', axis_name: 'str' = 'batch', *, name: 'str' = 'batch') -> 'Any'",
    },
}


@pytest.mark.parametrize("module_name", MODULES)
def test_public_api_is_unchanged(module_name: str) -> None:
    assert current(module_name) == GOLDEN[module_name]


def test_golden_lists_every_module() -> None:
    assert sorted(GOLDEN) == sorted(MODULES)


if __name__ == "__main__":
    pprint.pprint({name: current(name) for name in MODULES}, width=200, sort_dicts=True)
