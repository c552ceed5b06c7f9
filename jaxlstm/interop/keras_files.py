"""Keras and TensorFlow model files, read with h5py alone (no TensorFlow or Keras needed).

Formats:

* Keras 3 ``.weights.h5``: groups named after the layer *class* (``layers/lstm_1/cell/vars/0``); the
  name the user gave the layer is the ``name`` attribute of the layer's ``vars`` group.
* Keras 3 ``.keras``: a zip holding ``model.weights.h5`` (as above) and ``config.json``.
* legacy tf.keras 2 ``.h5``, whole model (weights under ``model_weights``, config in the
  ``model_config`` attribute) or weights-only: one group per layer name, datasets such as
  ``lstm/lstm_cell/kernel:0`` (``encoder/forward_lstm/lstm_cell/kernel:0`` inside a Bidirectional).
  A nested model is one group holding all its layers' weights; its LSTMs are named
  ``"<model>/<layer>"``.

    layers = list_layers("model.keras")         # [KerasLayer(name, kind, units, ...), ...]
    params = load_layer("model.keras", "encoder")  # LSTMParams or BidirectionalParams
    out = jaxlstm.lstm(params, x, **lstm_options(layers[0]))   # the same as interop.keras.lstm_options

Only arrays are read; nothing in a file is executed. A file that cannot be read (truncated, corrupt
or crafted: sizes it does not hold, links to other files, zip names leaving the archive, a config
over 4 MiB or nested over 100 levels) raises ``InvalidFileError``, a ``ValueError`` naming the file.
"""

from __future__ import annotations

import io as _io
import os
import re
import zipfile
from collections.abc import Iterator
from typing import Any, NamedTuple, Optional, cast

from .._safe_files import (
    MAX_METADATA_BYTES,
    InvalidFileError,
    check_hdf5_links,
    load_json_object,
    open_zip,
    read_attr,
    read_dataset,
    read_member,
    reading,
    refuse,
)
from ..core import checks
from ..core.pytrees import BidirectionalParams, LSTMParams
from ._arrays import LayerParams, expect_rank, expect_shape, to_params
from .keras import KerasLayer, lstm_options  # lstm_options serves layers, configs and these entries

__all__ = [
    "InvalidFileError",
    "KerasLayer",
    "contents",
    "list_layers",
    "load_layer",
    "load_layers",
    "lstm_options",
]

_WHAT = "HDF5 / .keras file"


class _Found(NamedTuple):
    info: KerasLayer
    weights: dict[str, dict[str, str]]  # direction ("" | "forward" | "backward") -> field -> dataset path
    # Other weights of the same cell (their names after the cell's: a TF Addons LayerNormLSTMCell's
    # norms, a PeepholeLSTMCell's peepholes): the layer is not a plain LSTM, loading it is refused.
    unread: tuple[str, ...] = ()


class _Opened(NamedTuple):
    file: Any  # h5py.File
    config: Optional[dict[str, Any]]
    path: str
    size: int  # bytes of HDF5 data: no dataset in it can hold more


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _open(path: str) -> _Opened:
    """The open ``h5py.File`` with the weights, and the model config when the file has one (with the
    writer's Keras version under ``"keras_version"`` when known). Call inside ``reading(path)``."""
    import h5py

    config = None
    keras3 = zipfile.is_zipfile(path)
    if keras3:
        with open_zip(path, _WHAT) as z:
            names = z.namelist()
            if "model.weights.h5" not in names:
                shown = names if len(names) <= 20 else [*names[:20], f"... {len(names) - 20} more"]
                refuse(path, f"is a zip without model.weights.h5 (found {shown}); not a .keras file")
            if "config.json" in names:
                config = load_json_object(
                    read_member(z, "config.json", path, MAX_METADATA_BYTES), path, "config.json"
                )
                if "metadata.json" in names:
                    meta = load_json_object(
                        read_member(z, "metadata.json", path, MAX_METADATA_BYTES), path, "metadata.json"
                    )
                    version = meta.get("keras_version")
                    config["keras_version"] = version if isinstance(version, str) else None
            data = read_member(z, "model.weights.h5", path)
        f, size = h5py.File(_io.BytesIO(data), "r"), len(data)
    else:
        f, size = h5py.File(path, "r"), os.path.getsize(path)
    try:
        check_hdf5_links(f, path)
        raw = None if keras3 else read_attr(f, "model_config", path)  # legacy whole-model .h5
        if raw is not None:
            if not isinstance(raw, (bytes, str)):
                refuse(path, f"has a model_config attribute that is not text ({type(raw).__name__})")
            config = load_json_object(raw, path, "model_config")
            version = read_attr(f, "keras_version", path)
            if version is not None:
                config["keras_version"] = _attr_str(version)
        return _Opened(f, config, path, size)
    except BaseException:
        f.close()
        raise


def _names(obj: Any, attr: str, path: str) -> list[str]:
    """An HDF5 attribute holding a list of names (``layer_names``, ``weight_names``)."""
    raw = read_attr(obj, attr, path, [])
    if (
        isinstance(raw, (bytes, str))
        or getattr(raw, "ndim", 1) != 1
        or not all(isinstance(n, (str, bytes)) for n in raw)
    ):
        refuse(path, f"has a {attr} attribute that is not a list of names")
    return [_attr_str(n) for n in raw]


def _layer_configs(config: Any) -> dict[str, dict[str, Any]]:
    """Every LSTM / Bidirectional layer config in a model config, by layer name, in model order."""
    found: dict[str, dict[str, Any]] = {}
    stack = [config]  # depth-first, children pushed in reverse: model order, without recursion
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") in ("LSTM", "Bidirectional") and isinstance(node.get("config"), dict):
                name = node["config"].get("name")
                if isinstance(name, str) and name not in found:
                    found[name] = dict(node["config"], class_name=node["class_name"])
                    continue  # do not descend into a Bidirectional's wrapped layers
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shape(f: Any, name: str) -> tuple[int, ...]:
    """The shape of dataset ``name`` (read from its header; nothing is allocated)."""
    import h5py

    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{name}: expected an HDF5 dataset, found a {type(obj).__name__}")
    return obj.shape


def _keras3_lstm(f: Any, group: str) -> Optional[dict[str, str]]:
    """Dataset paths of a Keras 3 LSTM group (``<group>/cell/vars/0..2``), or None if it is not one."""
    vars_path = f"{group}/cell/vars"
    if vars_path not in f or f"{group}/vars" not in f:
        return None
    keys = set(f[vars_path].keys())
    if keys not in ({"0", "1"}, {"0", "1", "2"}):
        return None
    out = {"kernel": f"{vars_path}/0", "recurrent_kernel": f"{vars_path}/1"}
    if "2" in keys:
        out["bias"] = f"{vars_path}/2"
    return out if _looks_like_lstm(f, out) else None


def _looks_like_lstm(f: Any, paths: dict[str, str]) -> bool:
    """An LSTM's kernel is [I, 4H] with recurrent kernel [H, 4H] (a GRU's are 3H, a SimpleRNN's H)."""
    k, r = _shape(f, paths["kernel"]), _shape(f, paths["recurrent_kernel"])
    return len(k) == 2 and len(r) == 2 and k[1] == r[1] == 4 * r[0] and r[0] > 0


def _is_bidirectional(f: Any, group: str) -> bool:
    return bool(group) and all(
        _keras3_lstm(f, f"{group}/{side}") for side in ("forward_layer", "backward_layer")
    )


def _scan_keras3(f: Any, path: str) -> Iterator[tuple[str, str, dict[str, dict[str, str]], tuple[str, ...]]]:
    """(name, h5 group, weights) of every LSTM / Bidirectional(LSTM) in a Keras 3 weights file."""
    groups: list[str] = []
    f.visit(lambda n: groups.append(n) if n.endswith("/vars") or n == "vars" else None)
    for vars_group in sorted(groups, key=_natural):
        group = vars_group[: -len("/vars")] if vars_group != "vars" else ""
        parent, _, last = group.rpartition("/")
        if not group or (last in ("forward_layer", "backward_layer") and _is_bidirectional(f, parent)):
            continue  # reported with its Bidirectional wrapper
        name = _attr_str(read_attr(f[vars_group], "name", path, last))
        if _is_bidirectional(f, group):
            fwd, bwd = _keras3_lstm(f, f"{group}/forward_layer"), _keras3_lstm(f, f"{group}/backward_layer")
            # _is_bidirectional found an LSTM in both directions: neither is None.
            yield name, group, cast(dict[str, dict[str, str]], {"forward": fwd, "backward": bwd}), ()
            continue
        single = _keras3_lstm(f, group)
        if single:
            yield name, group, {"": single}, ()


_LEGACY_FIELD = re.compile(r"^(.*?)/?(kernel|recurrent_kernel|bias)(:\d+)?$")
_LEGACY_CELL = re.compile(r"^lstm_cell(_\d+)?$")


def _legacy_owner(prefix: str) -> tuple[str, str]:
    """(layer, direction) of a legacy weight's prefix: ``"top/lstm_cell"`` -> ``("top", "")``,
    ``"bi/forward_lstm/lstm_cell"`` -> ``("bi", "forward")``."""
    parts = [p for p in prefix.split("/") if p and not _LEGACY_CELL.match(p)]
    for k, part in enumerate(parts):
        for direction in ("forward", "backward"):
            if part.startswith(direction + "_"):
                return "/".join(parts[:k]), direction
    return "/".join(parts), ""


def _scan_legacy(f: Any, path: str) -> Iterator[tuple[str, str, dict[str, dict[str, str]], tuple[str, ...]]]:
    """(name, h5 group, weights) of every LSTM / Bidirectional(LSTM) in a legacy tf.keras ``.h5``.

    A top-level layer's group holds its own weights (``top/lstm_cell/kernel:0``). A nested model's
    group holds the weights of all its layers, each prefixed by the layer's name
    (``first/lstm_cell/kernel:0``, ``bi/forward_lstm/...``, ``proj/kernel:0``); its LSTMs are
    reported as ``"<model>/<layer>"``.
    """
    root = f["model_weights"] if "model_weights" in f else f
    prefix = "model_weights/" if "model_weights" in f else ""
    for group_name in _names(root, "layer_names", path):
        owners: dict[str, dict[str, dict[str, str]]] = {}
        cells: dict[str, set[str]] = {}  # layer -> the prefixes of its cells' weights
        names = _names(root[group_name], "weight_names", path)
        for w in names:
            m = _LEGACY_FIELD.match(w)
            if m is None:
                continue  # not an LSTM weight (e.g. a BatchNormalization's moving_mean)
            layer, direction = _legacy_owner(m.group(1))
            owners.setdefault(layer, {}).setdefault(direction, {})[m.group(2)] = f"{prefix}{group_name}/{w}"
            cells.setdefault(layer, set()).add(m.group(1))
        for layer, weights in owners.items():
            if set(weights) not in ({""}, {"forward", "backward"}):
                continue
            if all(
                {"kernel", "recurrent_kernel"} <= set(d)
                and set(d) <= {"kernel", "recurrent_kernel", "bias"}
                and _looks_like_lstm(f, d)
                for d in weights.values()
            ):
                name = group_name if layer in ("", group_name) else f"{group_name}/{layer}"
                unread = tuple(
                    dict.fromkeys(  # the names after the cell's; a Bidirectional's two cells share them
                        w[len(c) + 1 :]
                        for w in names
                        if _LEGACY_FIELD.match(w) is None
                        for c in sorted(cells[layer])
                        if c and w.startswith(c + "/")
                    )
                )
                yield name, prefix + group_name, weights, unread


def _scan(path: str) -> tuple[list[_Found], _Opened]:
    """The LSTM layers of the file, and the open file (close it). Call inside ``reading(path)``."""
    opened = _open(path)
    f, config = opened.file, opened.config
    try:
        legacy = "layer_names" in f.attrs or "model_weights" in f
        entries = list(_scan_legacy(f, path) if legacy else _scan_keras3(f, path))
        configs = _layer_configs(config) if config is not None else {}
        order = {n: k for k, n in enumerate(configs)}  # model order, as the config lists the layers
        keyed = []
        for name, group, weights, unread in entries:
            first = next(iter(weights.values()))
            kshape = _shape(f, first["kernel"])
            kind = "Bidirectional" if "forward" in weights else "LSTM"
            # A nested layer ("<model>/<layer>") is in the config under its own name.
            config_name = name if name in configs else name.rsplit("/", 1)[-1]
            version = config.get("keras_version") if isinstance(config, dict) else None
            info = KerasLayer(
                name,
                kind,
                kshape[0],
                kshape[1] // 4,
                "bias" in first,
                group,
                configs.get(config_name),
                version,
            )
            keyed.append((order.get(config_name, len(order)), _Found(info, weights, unread)))
        keyed.sort(key=lambda pair: pair[0])  # stable: file order without a config
        return [entry for _, entry in keyed], opened
    except BaseException:
        f.close()
        raise


def _file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    return path


def list_layers(path: str | os.PathLike) -> list[KerasLayer]:
    """The LSTM and Bidirectional(LSTM) layers in a Keras / tf.keras file, in model order when the
    file has a config (else in file order).

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not a readable Keras file (truncated, corrupt or crafted).
    """
    path = _file(path)
    with reading(path, _WHAT):
        found, opened = _scan(path)
        opened.file.close()
    return [e.info for e in found]


def _tensor_name(paths: dict[str, str], field: str) -> str:
    """The dataset path, plus the field when the path alone does not say it (Keras 3's ``vars/0``)."""
    path = paths[field]
    return f"{path} ({field})" if path.rsplit("/", 1)[-1].isdigit() else path


def contents(path: str | os.PathLike) -> dict[str, dict[str, tuple[int, ...]]]:
    """Everything with weights in a Keras / tf.keras file (not only LSTMs): layer -> {dataset: shape}.

    Legacy files key by layer name. Keras 3 files key by the chain of user-given names (the ``vars``
    groups' ``name`` attributes) below the model, e.g. ``"encoder/forward_lstm"`` for the forward
    layer of a Bidirectional named ``encoder``.

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not a readable Keras file (truncated, corrupt or crafted).
    """
    import h5py

    path = _file(path)
    with reading(path, _WHAT):
        f = _open(path).file
        try:
            return _contents(f, path, h5py)
        finally:
            f.close()


def _contents(f: Any, path: str, h5py: Any) -> dict[str, dict[str, tuple[int, ...]]]:
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    if "layer_names" in f.attrs or "model_weights" in f:
        root = f["model_weights"] if "model_weights" in f else f
        prefix = "model_weights/" if "model_weights" in f else ""
        for layer in _names(root, "layer_names", path):
            names = _names(root[layer], "weight_names", path)
            if names:
                out[layer] = {w: tuple(_shape(f, f"{prefix}{layer}/{w}")) for w in names}
        return out
    datasets: list[str] = []
    f.visit(lambda n: datasets.append(n) if isinstance(f[n], h5py.Dataset) else None)
    for d in sorted(datasets, key=_natural):
        parts = d.split("/")
        chain = []
        for k in range(1, len(parts)):
            group = "/".join(parts[:k])
            if parts[k - 1] not in ("vars", "cell") and f"{group}/vars" in f:
                chain.append(_attr_str(read_attr(f[f"{group}/vars"], "name", path, parts[k - 1])))
        out.setdefault("/".join(chain) or d.rsplit("/", 1)[0], {})[d] = tuple(f[d].shape)
    return out


def _read(opened: _Opened, paths: dict[str, str], info: KerasLayer, label: str) -> LSTMParams:
    def dataset(field: str) -> Any:
        return read_dataset(opened.file[paths[field]], opened.path, opened.size)

    kernel = expect_rank(dataset("kernel"), 2, _tensor_name(paths, "kernel"))
    units = kernel.shape[1] // 4
    if info.config is not None:
        cfg = (
            info.config.get("layer", {}).get("config", info.config)
            if info.kind == "Bidirectional"
            else info.config
        )
        if "units" in cfg and cfg["units"] != units:
            raise ValueError(
                f"{_tensor_name(paths, 'kernel')}: expected shape {checks.fmt((kernel.shape[0], 4 * cfg['units']))} "
                f"(config of {label} says units={cfg['units']}), found {checks.fmt(kernel.shape)}"
            )
    recurrent = expect_shape(
        dataset("recurrent_kernel"), (units, 4 * units), _tensor_name(paths, "recurrent_kernel")
    )
    bias = (
        expect_shape(dataset("bias"), (4 * units,), _tensor_name(paths, "bias")) if "bias" in paths else None
    )
    return to_params(kernel, recurrent, bias)


def _entry(found: list[_Found], name: str, path: str) -> _Found:
    by_name = {e.info.name: e for e in found}
    if name not in by_name:
        raise ValueError(
            f"name: no LSTM layer named {name!r} in {path!r}; LSTM layers present: {list(by_name)}"
        )
    return by_name[name]


def _load(opened: _Opened, entry: _Found) -> LayerParams:
    label = f"{entry.info.name!r}"
    if entry.unread:
        hint = ""
        if any("_norm/" in w for w in entry.unread):
            hint = (
                "; a TF Addons LayerNormLSTMCell's: convert them with interop.addons.from_addons_layer_norm"
            )
        elif any("peephole" in w for w in entry.unread):
            hint = "; a TF Addons PeepholeLSTMCell's: convert them with interop.addons.from_addons_peephole"
        raise ValueError(
            f"name: layer {label} is not a Keras LSTM: its cell also has {', '.join(entry.unread[:8])} "
            f"(read its weights with h5py from {entry.info.path!r}){hint}"
        )
    if entry.info.kind == "Bidirectional":
        return BidirectionalParams(
            forward=_read(opened, entry.weights["forward"], entry.info, label),
            backward=_read(opened, entry.weights["backward"], entry.info, label),
        )
    return _read(opened, entry.weights[""], entry.info, label)


def load_layer(path: str | os.PathLike, name: str) -> LayerParams:
    """Params of the LSTM (``LSTMParams``) or Bidirectional(LSTM) (``BidirectionalParams``) layer
    ``name``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: no LSTM layer ``name`` (the message lists the LSTM layers present).
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not a readable Keras file, or its weights do not form valid params, or the
            layer's cell has weights a Keras LSTM does not (a TF Addons ``LayerNormLSTMCell`` or
            ``PeepholeLSTMCell``: see ``interop.addons``).
    """
    return load_layers(path, [name])[0]


def load_layers(path: str | os.PathLike, names: Optional[list[str]] = None) -> tuple[LayerParams, ...]:
    """A stack: params of ``names`` (default: every LSTM layer, in model order when the file has a
    config).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: no LSTM layer of one of ``names`` (the message lists the LSTM layers present),
            or no LSTM layer at all.
        InvalidFileError: (``jaxlstm.interop.InvalidFileError``, a ``ValueError`` naming the file)
            the file is not a readable Keras file, or its weights do not form valid params, or the
            layer's cell has weights a Keras LSTM does not (a TF Addons ``LayerNormLSTMCell`` or
            ``PeepholeLSTMCell``: see ``interop.addons``).
    """
    path = _file(path)
    with reading(path, _WHAT):
        found, opened = _scan(path)
    try:
        names = [e.info.name for e in found] if names is None else list(names)
        if not names:
            raise ValueError(f"path: no LSTM layers in {path!r}")
        entries = [_entry(found, n, path) for n in names]
        with reading(path, _WHAT):
            return tuple(_load(opened, e) for e in entries)
    finally:
        opened.file.close()
