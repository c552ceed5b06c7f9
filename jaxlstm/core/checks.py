"""Argument validation shared by every entry point.

Every check runs on shapes and dtypes only, so it works on tracers at trace time and never reaches XLA.
Messages name the argument, what was expected and what was found.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .fast import FastConfig
from .pytrees import BidirectionalParams, LayerNormParams, LSTMParams, LSTMState, PeepholeParams


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _dtype(x: Any) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(x).dtype


def fmt(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive int, found {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, found {value}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    """A boolean option: ``True``/``False`` (or a numpy bool), never a truthy 0/1 or string."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool (True or False), found {type(value).__name__} {value!r}")
    return bool(value)


def optional_flag(value: Any, name: str) -> Any:
    return None if value is None else flag(value, name)


def unroll(value: Any) -> int | bool:
    """Keras's ``unroll`` (bool) or ``lax.scan``'s (positive int) -> ``lax.scan``'s (False is 1)."""
    if value is True or value is False:
        return 1 if value is False else True
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1:
        return int(value)
    raise ValueError(f"unroll: expected a bool or a positive int, found {value!r}")


def renamed(old: str, old_value: Any, new: str, new_value: Any, default: Any) -> Any:
    """A deprecated keyword spelling (None when not given): its value, with a DeprecationWarning."""
    if old_value is None:
        return new_value
    if new_value != default:
        raise TypeError(f"{old}: deprecated spelling of {new}; pass only {new}")
    warnings.warn(f"{old}= is deprecated, use {new}= (same meaning)", DeprecationWarning, stacklevel=3)
    return old_value


def prng_key(key: Any, name: str = "key") -> None:
    """A typed key (``jax.random.key``, shape ``()``) or a raw one (``jax.random.PRNGKey``, uint32 ``[2]``)."""
    if hasattr(key, "dtype"):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape == ():
                return
            raise ValueError(
                f"{name}: expected one PRNG key of shape (), found keys of shape {fmt(key.shape)}"
            )
        if _dtype(key) == np.uint32 and _shape(key) == (2,):
            return
        found = f"an array of shape {fmt(_shape(key))} and dtype {_dtype(key)}"
    else:
        found = f"{type(key).__name__} {key!r}"
    raise TypeError(
        f"{name}: expected a PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)), found {found}"
    )


def fraction(value: Any, name: str) -> float:
    """A probability such as a dropout rate: a real number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float in [0, 1], found {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1], found {value}")
    return float(value)


def positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive float, found {type(value).__name__} {value!r}")
    if not float(value) > 0.0:
        raise ValueError(f"{name}: expected a positive float, found {value}")
    return float(value)


def choice(value: Any, allowed: Sequence[str], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, found {value!r}")
    return value


def zoneout(value: Any, name: str = "zoneout") -> tuple[float, float]:
    """Zoneout rates: one float for c and h, or a pair ``(z_c, z_h)``; each in [0, 1)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}: expected a float or a pair (z_c, z_h), found {value!r}")
    rates = tuple(fraction(rate, name) for rate in pair)
    if max(rates) >= 1.0:
        raise ValueError(
            f"{name}: expected rates in [0, 1) (1 would never update the state), found {value!r}"
        )
    return rates[0], rates[1]


def _is_float(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.floating)) or dtype.name == "bfloat16"


def named_or_callable(
    value: Any, table: Mapping[str, Any], name: str, kind: str, callable_desc: str = "a callable"
) -> Any:
    """Look a Keras-style name up in ``table``, or return a callable as is (activations, initialisers)."""
    if isinstance(value, str):
        try:
            return table[value]
        except KeyError:
            known = ", ".join(sorted(table))
            raise ValueError(
                f"{name}: unknown {kind} {value!r}; expected {callable_desc} or one of: {known}"
            ) from None
    if callable(value):
        return value
    raise TypeError(f"{name}: expected a callable or an {kind} name, found {type(value).__name__}")


def float_array(x: Any, name: str) -> None:
    """Refuse integer, boolean and complex arrays: an LSTM computes on real floats."""
    dtype = _dtype(x)
    if not _is_float(dtype):
        raise TypeError(
            f"{name}: expected a floating-point array (float16/bfloat16/float32/float64), "
            f"found dtype {dtype.name}"
        )


def float_dtype(dtype: Any, name: str) -> np.dtype:
    """A ``dtype=`` / ``param_dtype=`` argument: a real floating-point dtype; returned as a numpy dtype."""
    try:
        resolved = np.dtype(jax.numpy.dtype(dtype))  # jax's dtype knows "bfloat16"
    except TypeError:
        raise TypeError(
            f"{name}: expected a floating-point dtype (float16/bfloat16/float32/float64), found {dtype!r}"
        ) from None
    if not _is_float(resolved):
        raise TypeError(
            f"{name}: expected a floating-point dtype (float16/bfloat16/float32/float64), "
            f"found {resolved.name}"
        )
    return resolved


def batch_shape(shape: Any, name: str = "batch_shape") -> tuple[int, ...]:
    """A batch shape: a sequence of non-negative ints (``()`` for one unbatched example)."""
    ints = isinstance(shape, (tuple, list)) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape
    )
    if not ints or any(d < 0 for d in shape):
        raise (ValueError if ints else TypeError)(
            f"{name}: expected a tuple of non-negative ints such as (16,) or (), "
            f"found {type(shape).__name__} {shape!r}"
        )
    return tuple(int(d) for d in shape)


def layout_hint(p: Any) -> str:
    """A hint when the kernels look like PyTorch's layout (weight_ih [4H, I], weight_hh [4H, H]:
    the transposes of Keras's), else ''."""
    kshape, rshape = _shape(getattr(p, "kernel", None)), _shape(getattr(p, "recurrent_kernel", None))
    torch_like = len(kshape) == 2 and len(rshape) == 2 and kshape[0] == rshape[0] and kshape[0] % 4 == 0
    if not torch_like or rshape == (kshape[1] // 4, kshape[1]):
        return ""
    return (
        " (these look like PyTorch's layout, weight_ih [4H, I] and weight_hh [4H, H]: "
        "jaxlstm.interop.torch.from_torch converts a state_dict)"
    )


def _plain_units(width: int) -> int:
    """The units a kernel width suggests in a message (4 gate blocks when it divides)."""
    return width // 4 if width % 4 == 0 else width // 3 if width % 3 == 0 else width // 4


def params(p: Any, name: str = "params") -> tuple[int, int, int]:
    """Check an ``LSTMParams``; return ``(input_size, units, output_size)``.

    units H comes from ``projection`` (``[H, P]``) or ``recurrent_kernel`` (``[H, G*H]``); the gate
    count G = 4, or 3 with coupled gates (CIFG), from the kernel's width ``G*H``. ``layer_norm`` and
    ``peepholes`` are checked against G and H.
    """
    if not isinstance(p, LSTMParams):
        raise TypeError(
            f"{name}: expected LSTMParams(kernel, recurrent_kernel, bias, projection, layer_norm, "
            f"peepholes), found {type(p).__name__}"
        )
    for field in ("kernel", "recurrent_kernel"):
        if getattr(p, field) is None:
            raise ValueError(f"{name}.{field}: missing (found None)")
    for field in ("kernel", "recurrent_kernel", "bias", "projection"):
        _array_field(getattr(p, field), f"{name}.{field}")
    kshape, rshape = _shape(p.kernel), _shape(p.recurrent_kernel)
    hint = layout_hint(p)
    kernel_form = "[input_size, 4*units] (gate blocks i, f, c, o; or [input_size, 3*units], f, c, o, with coupled gates)"
    if len(kshape) != 2 or kshape[1] == 0:
        raise ValueError(f"{name}.kernel: expected shape {kernel_form}, found {fmt(kshape)}{hint}")
    width = kshape[1]
    if p.projection is not None:
        pshape = _shape(p.projection)
        units, out = (pshape[0], pshape[1]) if len(pshape) == 2 else (0, 0)
    else:
        units = out = rshape[0] if len(rshape) == 2 else 0
    if units == 0 or out == 0 or width % units or width // units not in (3, 4):
        guess = _plain_units(width)
        if p.projection is not None and len(rshape) == 2 and rshape[1] == width:
            raise ValueError(
                f"{name}.projection: expected shape [units, proj_size] = [{guess}, proj_size] "
                f"to match {name}.kernel {fmt(kshape)}, found {fmt(_shape(p.projection))}"
            )
        if p.projection is None and len(rshape) == 2 and rshape[1] == width:
            raise ValueError(
                f"{name}.recurrent_kernel: expected shape [units, 4*units] = {fmt((guess, width))} "
                f"to match {name}.kernel {fmt(kshape)}, found {fmt(rshape)}{hint}"
            )
        expected = (
            "" if units == 0 else f" = {fmt((kshape[0], 4 * units))} (or {fmt((kshape[0], 3 * units))})"
        )
        source = f"{name}.projection" if p.projection is not None else f"{name}.recurrent_kernel"
        source_shape = _shape(p.projection) if p.projection is not None else rshape
        raise ValueError(
            f"{name}.kernel: expected shape {kernel_form}{expected} to match {source} "
            f"{fmt(source_shape)}, found {fmt(kshape)}{hint}"
        )
    gates = width // units
    if rshape != (out, width):
        what = "[proj_size, G*units]" if p.projection is not None else "[units, G*units]"
        raise ValueError(
            f"{name}.recurrent_kernel: expected shape {what} = {fmt((out, width))} to match "
            f"{name}.kernel {fmt(kshape)} ({gates} gate blocks of {units} units), found {fmt(rshape)}{hint}"
        )
    if p.bias is not None and _shape(p.bias) != (width,):
        raise ValueError(
            f"{name}.bias: expected shape [{gates}*units] = [{width}] or None, found {fmt(_shape(p.bias))}"
        )
    _layer_norm_params(p.layer_norm, gates, units, f"{name}.layer_norm")
    _peephole_params(p.peepholes, gates, units, f"{name}.peepholes")
    return kshape[0], units, out


def _array_field(value: Any, name: str) -> None:
    if value is None:
        return
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise TypeError(f"{name}: expected an array (jax or numpy), found {type(value).__name__}")
    float_array(value, name)


def _vector(value: Any, size: int, name: str, what: str) -> None:
    if value is None:
        raise ValueError(f"{name}: missing (found None); expected shape {what} = [{size}]")
    _array_field(value, name)
    if _shape(value) != (size,):
        raise ValueError(f"{name}: expected shape {what} = [{size}], found {fmt(_shape(value))}")


def _layer_norm_params(ln: Any, gates: int, units: int, name: str) -> None:
    if ln is None:
        return
    if not isinstance(ln, LayerNormParams):
        raise TypeError(
            f"{name}: expected LayerNormParams(x_gain, x_offset, h_gain, h_offset, c_gain, c_offset) "
            f"or None, found {type(ln).__name__}"
        )
    for field in LayerNormParams._fields:
        size, what = (units, "[units]") if field.startswith("c_") else (gates * units, f"[{gates}*units]")
        _vector(getattr(ln, field), size, f"{name}.{field}", what)


def _peephole_params(peep: Any, gates: int, units: int, name: str) -> None:
    if peep is None:
        return
    if not isinstance(peep, PeepholeParams):
        raise TypeError(f"{name}: expected PeepholeParams(i, f, o) or None, found {type(peep).__name__}")
    if gates == 3 and peep.i is not None:
        raise ValueError(
            f"{name}.i: expected None with coupled gates (3 gate blocks: there is no input gate), "
            f"found shape {fmt(_shape(peep.i))}"
        )
    for field in ("i", "f", "o") if gates == 4 else ("f", "o"):
        _vector(getattr(peep, field), units, f"{name}.{field}", "[units]")


def bidirectional(
    p: Any, name: str = "params", merged: bool = False
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Check ``BidirectionalParams``: two valid directions that read the same input size.

    With ``merged`` (a layer that merges the two outputs step by step) their output sizes must
    match too. Returns each direction's ``(input_size, units, output_size)``."""
    if not isinstance(p, BidirectionalParams):
        raise TypeError(f"{name}: expected BidirectionalParams(forward, backward), found {type(p).__name__}")
    forward, backward = params(p.forward, f"{name}.forward"), params(p.backward, f"{name}.backward")
    if forward[0] != backward[0]:
        raise ValueError(
            f"{name}.backward.kernel: expected shape [{forward[0]}, 4*units] (both directions read the "
            f"same inputs; {name}.forward.kernel is {fmt(_shape(p.forward.kernel))}), "
            f"found {fmt(_shape(p.backward.kernel))}"
        )
    if merged and forward[2] != backward[2]:
        raise ValueError(
            f"{name}.backward: expected output size {forward[2]} like {name}.forward (their outputs "
            f"are merged step by step), found {backward[2]}"
        )
    return forward, backward


def layers(p: Any, name: str = "params") -> tuple:
    """A stack's parameters: a non-empty tuple (or list) of per-layer ``LSTMParams`` /
    ``BidirectionalParams``; returned as a tuple (each layer is checked by ``layer``)."""
    if isinstance(p, (LSTMParams, BidirectionalParams)):
        raise TypeError(
            f"{name}: expected a tuple of per-layer params, found a single {type(p).__name__}; "
            "pass (params,) for a one-layer stack, or call lstm / bidirectional"
        )
    if not isinstance(p, (tuple, list)) or not p:
        raise TypeError(
            f"{name}: expected a non-empty tuple of per-layer LSTMParams / BidirectionalParams "
            f"(see init_stack), found {type(p).__name__}"
            + (" of length 0" if isinstance(p, (tuple, list)) else "")
        )
    return tuple(p)


def layer(p: Any, name: str) -> tuple[int, int, bool]:
    """One layer of a stack; returns ``(input_size, output_size, bidirectional)``."""
    if isinstance(p, LSTMParams):
        input_size, _, output_size = params(p, name)
        return input_size, output_size, False
    if isinstance(p, BidirectionalParams):
        (input_size, _, output_size), _ = bidirectional(p, name, merged=True)
        return input_size, output_size, True
    raise TypeError(f"{name}: expected LSTMParams or BidirectionalParams, found {type(p).__name__}")


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def merge_mode(value: Any) -> Any:
    """Keras ``Bidirectional``'s merge modes; None returns the two sequences unmerged."""
    if value not in MERGE_MODES:
        raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, found {value!r}")
    return value


def sequence(
    xs: Any, input_size: Optional[int], name: str = "xs", time_major: bool = False, hint: str = ""
) -> tuple[tuple[int, ...], int]:
    """Check inputs ``[..., T, input_size]`` (``[T, ..., input_size]`` when ``time_major``);
    return ``(batch_shape, T)``. ``input_size`` None accepts any feature size."""
    float_array(xs, name)
    shape = _shape(xs)
    layout = (
        "[T, ..., {}] (time, then any batch axes, then features)"
        if time_major
        else ("[..., T, {}] (any leading batch axes, then time, then features)")
    )
    if len(shape) < 2:
        raise ValueError(
            f"{name}: expected shape {layout.format('features' if input_size is None else input_size)}, found {fmt(shape)} of rank {len(shape)}"
        )
    if input_size is not None and shape[-1] != input_size:
        raise ValueError(
            f"{name}: expected {input_size} features on the last axis to match params.kernel, "
            f"found shape {fmt(shape)}{hint}"
        )
    if time_major:
        return shape[1:-1], shape[0]
    return shape[:-2], shape[-2]


def state(
    s: Any, batch_shape: tuple[int, ...], units: int, output_size: int, name: str = "initial_state"
) -> None:
    """A state whose h ``[..., output_size]`` and c ``[..., units]`` broadcast to the batch."""
    if not isinstance(s, LSTMState):
        raise TypeError(
            f"{name}: expected LSTMState(h=..., c=...), found {type(s).__name__}{TUPLE_STATE if isinstance(s, tuple) else ''}"
        )
    for field, size in (("h", output_size), ("c", units)):
        broadcasts(getattr(s, field), (*batch_shape, size), f"{name}.{field}")


# A bare pair is ambiguous: Flax's carry is (c, h), Keras's state list [h, c].
TUPLE_STATE = (
    "; a bare tuple is ambiguous (Flax's carry is (c, h), Keras's state [h, c]): pass "
    "LSTMState(h=..., c=...), LSTMState.from_flax_carry((c, h)), or (modules) Keras's list [h, c]"
)


def broadcasts(x: Any, target: tuple[int, ...], name: str) -> None:
    """A float array that broadcasts to ``target`` with the same last axis (e.g. ``[size]`` for all)."""
    float_array(x, name)
    shape = _shape(x)
    ok = (
        len(shape) >= 1
        and shape[-1] == target[-1]
        and len(shape) <= len(target)
        and all(a in (1, b) for a, b in zip(reversed(shape), reversed(target)))
    )
    if not ok:
        raise ValueError(
            f"{name}: expected shape {fmt(target)} (or one that broadcasts to it, such as "
            f"[{target[-1]}]), found {fmt(shape)}"
        )


def mask(
    m: Any, batch_shape: tuple[int, ...], steps: int, time_major: bool = False, name: str = "mask"
) -> None:
    """A mask ``[..., T]`` (``[T, ...]`` when ``time_major``): bool, or numbers that are 0 or 1 (as
    Keras accepts); a concrete numeric mask with other values is refused. Also ``resets``."""
    expected = (steps, *batch_shape) if time_major else (*batch_shape, steps)
    if _shape(m) != expected:
        order = "time then batch" if time_major else "batch then time"
        raise ValueError(f"{name}: expected shape {fmt(expected)} ({order}), found {fmt(_shape(m))}")
    dtype = _dtype(m)
    if dtype == np.bool_:
        return
    if not (np.issubdtype(dtype, np.integer) or _is_float(dtype)):
        raise TypeError(f"{name}: expected dtype bool (or 0/1 numbers), found {dtype.name}")
    if not isinstance(m, jax.core.Tracer):
        values = np.unique(np.asarray(m, dtype=np.float64))
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"{name}: expected bool or 0/1 values, found values {values[:5].tolist()}")


def lengths(n: Any, batch_shape: tuple[int, ...], steps: int) -> None:
    if _shape(n) != batch_shape:
        raise ValueError(
            f"lengths: expected shape {fmt(batch_shape)} (one length per sequence), found {fmt(_shape(n))}"
        )
    dtype = _dtype(n)
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"lengths: expected an integer dtype, found {dtype.name}")
    if not isinstance(n, jax.core.Tracer):
        values = np.asarray(n)
        if values.size and (values.min() < 0 or values.max() > steps):
            raise ValueError(
                f"lengths: expected every length in [0, {steps}] (T = {steps}), "
                f"found min {values.min()} and max {values.max()}"
            )


def call_inputs(
    inputs: Any,
    *,
    batch_shape: tuple[int, ...],
    steps: int,
    input_size: int,
    units: int,
    output_size: int,
    gates: int,
    time_major: bool,
    per_gate: bool,
    zoneout: tuple[float, float],
) -> None:
    """The per-call arrays of the variants (a ``CallInputs``), against the sequence's shapes."""
    if inputs.resets is not None:
        mask(inputs.resets, batch_shape, steps, time_major, name="resets")
    if inputs.reset_state is not None:
        if inputs.resets is None:
            raise ValueError("reset_state: given without resets (it is the state a reset step starts from)")
        state(inputs.reset_state, batch_shape, units, output_size, name="reset_state")
    if inputs.zoneout_key is not None:
        prng_key(inputs.zoneout_key, "zoneout_key")
        if zoneout == (0.0, 0.0):
            raise ValueError("zoneout_key: given, but zoneout is 0; set zoneout=rate, or pass no key")
    if inputs.weight_drop_mask is not None:
        broadcasts(inputs.weight_drop_mask, (output_size, gates * units), "weight_drop_mask")
    for field, size in (("recurrent_dropout_mask", output_size), ("input_dropout_mask", input_size)):
        value = getattr(inputs, field)
        if value is None:
            continue
        if not per_gate:
            broadcasts(value, (*batch_shape, size), field)
            continue
        target = (*batch_shape, gates, size)
        shape = _shape(value)
        if len(shape) < 2 or shape[-2] != gates:
            raise ValueError(
                f"{field}: expected shape {fmt(target)} with dropout_masks='per_gate' (one mask per gate "
                f"block, or one that broadcasts to it such as [{gates}, {size}]), found {fmt(shape)}"
            )
        broadcasts(value, target, field)


def carry_dtype(carry: Any, dtype: Any) -> None:
    """A carry dtype at least as wide as the computation dtype (it holds c between steps)."""
    if carry is not None and jnp.promote_types(carry, dtype) != carry:
        raise ValueError(
            f"carry_dtype: expected a dtype at least as wide as the computation dtype "
            f"{np.dtype(dtype).name}, found {np.dtype(carry).name}"
        )


IMPLS = ("auto", "scan", "cudnn", "native")


def impl(value: Any, name: str = "impl") -> Any:
    """An implementation choice: ``"auto"``, ``"scan"``, ``"cudnn"``, a ``jaxlstm.fast.FastConfig``, or
    ``"native"`` (returned as ``FastConfig(native=True)``)."""
    if isinstance(value, FastConfig):
        if (
            isinstance(value.checkpoint_chunks, bool)
            or not isinstance(value.checkpoint_chunks, (int, np.integer))
            or value.checkpoint_chunks < 0
        ):
            raise ValueError(
                f"{name}: FastConfig.checkpoint_chunks must be an int >= 0, found {value.checkpoint_chunks!r}"
            )
        return value
    if isinstance(value, str) and value == "native":
        return FastConfig(native=True)
    if isinstance(value, str) and value in IMPLS:
        return value
    raise ValueError(
        f"{name}: expected 'auto', 'scan', 'cudnn', 'native' or a jaxlstm.fast.FastConfig, found {value!r}"
    )
