"""PyTorch: ``nn.LSTM`` / ``nn.LSTMCell`` state_dicts, ``.pt`` and ``.safetensors`` files.

PyTorch's gate order i, f, g, o is jaxlstm's i, f, c, o, and its weights are ``[out, in]``, so
``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``, ``projection = weight_hr.T``. PyTorch keeps
two biases that are always summed; jaxlstm keeps their sum. Going back, the sum is put in ``bias_ih``
and ``bias_hh`` is zero (the outputs are identical; the split itself is not recoverable).

    stack = from_torch(module.state_dict())      # tuple: one LSTMParams / BidirectionalParams per layer
    module.load_state_dict(to_torch(stack))
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from .._safe_files import InvalidFileError, check_safetensors, open_zip, reading, refuse
from ..core.pytrees import BidirectionalParams, LSTMParams
from ._arrays import (
    LayerParams,
    MissingWeightError,
    as_stack,
    expect_rank,
    expect_shape,
    gate_width,
    layer_params,
    lstm_params,
    numpy,
    plain_lstm,
    to_params,
)

__all__ = [
    "from_torch",
    "to_torch",
    "from_torch_cell",
    "to_torch_cell",
    "load_torch_file",
    "InvalidFileError",
]

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _state_dict(sd: Any) -> Mapping[str, Any]:
    if hasattr(sd, "state_dict") and callable(sd.state_dict):  # a live nn.Module
        return cast(Mapping[str, Any], sd.state_dict())  # nn.Module.state_dict: an OrderedDict
    if not isinstance(sd, Mapping):
        raise TypeError(
            f"state_dict: expected a mapping of names to tensors or an nn.Module, found {type(sd).__name__}"
        )
    return sd


def _strip(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if not prefix:
        return dict(sd)
    if not prefix.endswith("."):
        prefix += "."
    out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if not out:
        raise KeyError(f"prefix: no key starts with {prefix!r}; keys present: {sorted(sd)}")
    return out


def _direction(sd: dict, layer: int, suffix: str, input_size: int | None) -> LSTMParams:
    key = lambda n: f"{n}_l{layer}{suffix}"  # noqa: E731
    for name in ("weight_ih", "weight_hh"):
        if key(name) not in sd:
            raise MissingWeightError(
                f"state_dict: missing {key(name)!r}; each nn.LSTM layer has weight_ih_l{{k}}, weight_hh_l{{k}} "
                f"(biases, weight_hr optional); found {sorted(sd)}"
            )
    w_ih = expect_rank(sd[key("weight_ih")], 2, key("weight_ih"))
    units = gate_width(w_ih, 0, key("weight_ih"))
    if input_size is not None:
        expect_shape(w_ih, (4 * units, input_size), key("weight_ih"))
    projection = None
    if key("weight_hr") in sd:
        w_hr = expect_rank(sd[key("weight_hr")], 2, key("weight_hr"))
        expect_shape(w_hr, (w_hr.shape[0], units), key("weight_hr"))
        projection = w_hr.T
    out = units if projection is None else projection.shape[1]
    w_hh = expect_shape(sd[key("weight_hh")], (4 * units, out), key("weight_hh"))
    has_ih, has_hh = key("bias_ih") in sd, key("bias_hh") in sd
    if has_ih != has_hh:
        raise ValueError(f"state_dict: found only one of {key('bias_ih')!r}, {key('bias_hh')!r}")
    bias = None
    if has_ih:
        bias = expect_shape(sd[key("bias_ih")], (4 * units,), key("bias_ih")) + expect_shape(
            sd[key("bias_hh")], (4 * units,), key("bias_hh")
        )
    return to_params(w_ih.T, w_hh.T, bias, projection)


def from_torch(state_dict: Any, *, prefix: str = "") -> tuple[LayerParams, ...]:
    """Params of an ``nn.LSTM`` from its state_dict (or the module itself).

    Any ``num_layers``, ``bidirectional``, ``proj_size`` and ``bias=False`` are read from the keys and
    shapes. Args: ``prefix`` selects the LSTM inside a larger model's state_dict (e.g. ``"encoder.lstm"``).

    Returns:
        A tuple with one entry per layer: ``LSTMParams``, or ``BidirectionalParams`` when the LSTM is
        bidirectional. Layer k+1's input is layer k's output (both directions concatenated, forward
        first), as in PyTorch.
    """
    sd = {k: numpy(v, k) for k, v in _strip(_state_dict(state_dict), prefix).items()}
    found: dict[int, set[bool]] = {}
    for k in sd:
        m = _KEY.match(k)
        if m is None:
            raise ValueError(
                f"state_dict: unexpected key {k!r}; an nn.LSTM has weight_ih_l{{k}}, weight_hh_l{{k}}, "
                "bias_ih_l{k}, bias_hh_l{k}, weight_hr_l{k} (and *_reverse); for nn.LSTMCell use from_torch_cell"
            )
        found.setdefault(int(m.group(2)), set()).add(m.group(3) is not None)
    if not found:
        raise ValueError("state_dict: no nn.LSTM weights found (empty)")
    layers = sorted(found)
    if layers != list(range(len(layers))):
        raise ValueError(f"state_dict: layers must be numbered 0..{len(layers) - 1}, found {layers}")
    bidirectional = any(True in d for d in found.values())
    stack: list[LayerParams] = []
    input_size = None
    for layer in layers:
        fwd = _direction(sd, layer, "", input_size)
        if bidirectional:
            if True not in found[layer] or False not in found[layer]:
                raise ValueError(f"state_dict: layer {layer} lacks one direction of a bidirectional LSTM")
            bwd = _direction(sd, layer, "_reverse", fwd.input_size)
            stack.append(BidirectionalParams(fwd, bwd))
            input_size = 2 * fwd.output_size
        else:
            stack.append(fwd)
            input_size = fwd.output_size
    return tuple(stack)


def _tensor(a: Any) -> Any:
    import torch

    return torch.from_numpy(np.array(a, dtype=np.asarray(a).dtype, copy=True))


def _put(sd: OrderedDict, p: LSTMParams, layer: int, suffix: str) -> None:
    p = lstm_params(p, f"params[{layer}]")
    sd[f"weight_ih_l{layer}{suffix}"] = _tensor(np.asarray(p.kernel).T)
    sd[f"weight_hh_l{layer}{suffix}"] = _tensor(np.asarray(p.recurrent_kernel).T)
    if p.bias is not None:
        sd[f"bias_ih_l{layer}{suffix}"] = _tensor(p.bias)
        sd[f"bias_hh_l{layer}{suffix}"] = _tensor(np.zeros_like(np.asarray(p.bias)))
    if p.projection is not None:
        sd[f"weight_hr_l{layer}{suffix}"] = _tensor(np.asarray(p.projection).T)


def to_torch(params: Any) -> OrderedDict[str, Any]:
    """A state_dict that ``nn.LSTM(..., num_layers=len(stack), bidirectional=..., proj_size=...,
    bias=..., batch_first=...).load_state_dict`` accepts.

    ``params`` is one layer's params or a stack (tuple of per-layer params). The fused bias goes into
    ``bias_ih_l{k}``; ``bias_hh_l{k}`` is zero.
    """
    stack = as_stack(params)
    for layer, p in enumerate(stack):
        plain_lstm(p, "PyTorch", f"params[{layer}]")
    bidirectional = isinstance(stack[0], BidirectionalParams)
    for p in stack:
        if isinstance(p, BidirectionalParams) != bidirectional:
            raise ValueError("params: PyTorch's nn.LSTM is bidirectional in every layer or in none")
    _check_torch_stack(stack, bidirectional)
    sd: OrderedDict = OrderedDict()
    for layer, p in enumerate(stack):
        if isinstance(p, BidirectionalParams):  # as every layer, when bidirectional (checked above)
            _put(sd, p.forward, layer, "")
            _put(sd, p.backward, layer, "_reverse")
        else:
            _put(sd, p, layer, "")
    return sd


def _check_torch_stack(stack: tuple[LayerParams, ...], bidirectional: bool) -> None:
    """One ``nn.LSTM``: every layer and direction has the same hidden_size (and proj_size), and layer
    k+1 reads layer k's output (both directions concatenated)."""
    first = None
    for layer, p in enumerate(stack):
        layer_params(p, f"params[{layer}]")
        # to_torch checked that every layer is a BidirectionalParams iff bidirectional.
        directions: tuple[tuple[str, LSTMParams], ...]
        if isinstance(p, BidirectionalParams):
            directions = (("forward", p.forward), ("backward", p.backward))
        else:
            directions = (("", p),)
        if layer > 0:
            expected = first[1] * (2 if bidirectional else 1)  # type: ignore[index]
            d = directions[0][1]
            if d.input_size != expected:
                raise ValueError(
                    f"params[{layer}]: expected input_size {expected} (layer {layer - 1}'s output), found "
                    f"kernel of shape {list(np.shape(d.kernel))}"
                )
        for label, d in directions:
            sizes = (d.units, d.output_size)
            if first is None:
                first = sizes
            elif sizes != first:
                where = f"params[{layer}]" + (f".{label}" if label else "")
                raise ValueError(
                    f"{where}: nn.LSTM has one hidden_size (and proj_size) for every layer; expected "
                    f"units {first[0]} and output size {first[1]}, found {sizes[0]} and {sizes[1]}"
                )


def from_torch_cell(state_dict: Any, *, prefix: str = "") -> LSTMParams:
    """Params of an ``nn.LSTMCell`` from its state_dict (weight_ih, weight_hh, bias_ih, bias_hh)."""
    sd = {k: numpy(v, k) for k, v in _strip(_state_dict(state_dict), prefix).items()}
    allowed = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    extra = set(sd) - allowed
    if extra or "weight_ih" not in sd or "weight_hh" not in sd:
        raise ValueError(
            f"state_dict: an nn.LSTMCell has keys {sorted(allowed)} (biases optional), found {sorted(sd)}"
        )
    renamed = {f"{k}_l0": v for k, v in sd.items()}
    return _direction(renamed, 0, "", None)


def to_torch_cell(params: LSTMParams) -> OrderedDict[str, Any]:
    """A state_dict for ``nn.LSTMCell(input_size, units, bias=params.bias is not None)``."""
    plain_lstm(params, "PyTorch")
    p = lstm_params(params)
    if p.projection is not None:
        raise ValueError("params: nn.LSTMCell has no projection (proj_size); found params.projection")
    sd: OrderedDict = OrderedDict()
    _put(sd, p, 0, "")
    return OrderedDict((k[: -len("_l0")], v) for k, v in sd.items())


_PT_WHAT = "weights-only PyTorch file (nothing from it was executed)"


def load_torch_file(path: str | os.PathLike) -> OrderedDict[str, Any]:
    """Read a state_dict from ``.safetensors`` (with safetensors) or a ``.pt``/``.pth`` file.

    ``.pt`` files must be in the zip format ``torch.save`` has written since PyTorch 1.6; they are
    opened with ``torch.load(weights_only=True)``, which refuses any pickle that would build objects
    other than tensors and plain containers, and nothing in them is executed. Older (non-zip) files
    are refused without being unpickled: their loader allocates whatever storage sizes the file
    claims before reading them (load such a file with ``torch.load`` yourself if you trust it, and
    resave it with ``torch.save``). Every tensor must be a dense CPU tensor holding its own elements
    (no stride-0 view claiming more elements than its storage has).

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not a readable weights-only PyTorch or safetensors file: truncated, corrupt,
            crafted, or holding something other than tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        with reading(path, "safetensors file"):
            check_safetensors(path)
            obj: Any = load_file(path)
            _check_tensors(obj, path)
        return OrderedDict(obj)
    import torch

    with reading(path, _PT_WHAT):
        if not zipfile.is_zipfile(path):
            refuse(
                path,
                f"is not a readable {_PT_WHAT}: not in the zip format torch.save writes (PyTorch >= 1.6); "
                "files in the legacy format are refused without unpickling them",
            )
        open_zip(path, _PT_WHAT).close()
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if hasattr(obj, "state_dict") or not isinstance(obj, Mapping):
            refuse(path, f"holds a {type(obj).__name__}, expected a state_dict (a mapping of tensors)")
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            obj = obj["state_dict"]
        _check_tensors(obj, path)
    return OrderedDict(obj)


def _check_tensors(obj: Any, path: str) -> None:
    """Every tensor in ``obj`` (walked without recursion) is a dense CPU tensor whose elements fit
    in its storage: a view with stride 0 can claim 2^40 elements over 4 bytes, and the first
    conversion (``numpy``, a sum, ``jnp.asarray``) would then allocate them all."""
    import torch

    stack, seen = [obj], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 1_000_000:
            refuse(path, "holds more than a million objects")
        if isinstance(node, torch.Tensor):
            if node.layout != torch.strided or node.device.type != "cpu" or node.is_quantized:
                refuse(path, f"holds a {node.layout} tensor on {node.device} (dense CPU tensors only)")
            if node.numel() * node.element_size() > node.untyped_storage().nbytes():
                refuse(
                    path,
                    f"holds a tensor of shape {list(node.shape)} whose storage has only "
                    f"{node.untyped_storage().nbytes()} bytes (overlapping or stride-0 views are refused)",
                )
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
