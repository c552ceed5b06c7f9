"""Save/load of the issue-15 variant parameters (layer norm, peepholes, coupled gates), and the files
users already hold: checkpoints and interop.io version-1 files written before LSTMParams had the
``layer_norm`` and ``peepholes`` fields (tests/fixtures/legacy, made by make_legacy_files.py with the
code of commit 2437b60) still load into today's types."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

from jaxlstm import BidirectionalParams, LayerNormParams, LSTMParams, PeepholeParams, checkpoint
from jaxlstm.interop import InvalidFileError
from jaxlstm.interop import io as jio

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
LEGACY = os.path.join(FIXTURES, "legacy")
sys.path.insert(0, FIXTURES)
import make_legacy_files  # noqa: E402  (the builder of the legacy files' arrays)


def legacy_trees() -> dict[str, Any]:
    """The arrays the legacy files hold, in today's types."""
    return make_legacy_files.build(LSTMParams, BidirectionalParams)


def variant_params(
    rng: np.random.Generator,
    input_size: int,
    units: int,
    *,
    layer_norm: bool = False,
    peepholes: bool = False,
    cifg: bool = False,
    proj_size: int | None = None,
    dtype: Any = np.float32,
) -> LSTMParams:
    """Random params of a variant (G = 3 gate blocks with ``cifg``), every field a distinct draw."""
    g, out = 3 if cifg else 4, proj_size or units
    draw = lambda *shape: rng.normal(size=shape).astype(dtype)
    return LSTMParams(
        draw(input_size, g * units),
        draw(out, g * units),
        draw(g * units),
        None if proj_size is None else draw(units, proj_size),
        LayerNormParams(*(draw(n) for n in (g * units,) * 4 + (units,) * 2)) if layer_norm else None,
        PeepholeParams(None if cifg else draw(units), draw(units), draw(units)) if peepholes else None,
    )


VARIANTS = {
    "layer_norm": dict(layer_norm=True),
    "peepholes": dict(peepholes=True),
    "cifg": dict(cifg=True),
    "cifg_peepholes": dict(cifg=True, peepholes=True),  # peepholes.i is None
    "all": dict(layer_norm=True, peepholes=True, cifg=True, proj_size=2),
}


def same_bits(a: Any, b: Any) -> None:
    """Equal pytrees: same structure (types, None where None), dtypes, shapes and bytes."""
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        if isinstance(x, (int, float)):
            assert type(x) is type(y) and x == y
            continue
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


# ----------------------------------------------------------------------------------------------
# checkpoint
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "stack"])
def test_checkpoint_saved_before_the_variant_fields_restores(name: str) -> None:
    """The file records LSTMParams as [*, *, *, None] (four fields); today's has six."""
    expected = legacy_trees()[name]
    path = os.path.join(LEGACY, f"checkpoint_{name}.npz")
    with np.load(path) as data:
        assert "[*, *, *, None]" in data["__metadata__"].tobytes().decode()  # really the old format
    same_bits(checkpoint.restore(path, expected), expected)
    same_bits(checkpoint.restore(path, jax.eval_shape(lambda: expected)), expected)


def test_checkpoint_saved_before_the_variant_fields_still_refuses_real_mismatches() -> None:
    path = os.path.join(LEGACY, "checkpoint_stack.npz")
    tree = legacy_trees()["stack"]
    rng = np.random.default_rng(0)
    ln = variant_params(rng, 4, 3, layer_norm=True)
    with pytest.raises(
        ValueError, match=r"only in like: \['ema'\]\.layer_norm\.x_gain, .*only in the checkpoint: none"
    ):
        checkpoint.restore(path, {**tree, "ema": ln})
    with pytest.raises(ValueError, match=r"only in like: none; only in the checkpoint: \['step'\]"):
        checkpoint.restore(path, {k: v for k, v in tree.items() if k != "step"})
    # Same leaf paths in another container: a list where the file has a tuple.
    swapped = {**tree, "params": list(tree["params"])}
    with pytest.raises(ValueError, match=r"structure differs from the checkpoint's \(checkpoint PyTreeDef"):
        checkpoint.restore(path, swapped)
    with pytest.raises(ValueError, match=r"like\['ema'\]\.kernel: expected shape \[5, 12\]"):
        checkpoint.restore(path, {**tree, "ema": tree["ema"]._replace(kernel=jnp.zeros((5, 12)))})


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_round_trips_variant_params(variant: str, tmp_path) -> None:
    rng = np.random.default_rng(1)
    params = variant_params(rng, 3, 4, **VARIANTS[variant])
    tree = {
        "params": params,
        "stack": (BidirectionalParams(params, variant_params(rng, 3, 4, **VARIANTS[variant])), params),
        "step": 3,
    }
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, tree)
    same_bits(checkpoint.restore(path, tree), tree)
    # A plain template does not take a variant's checkpoint, nor the other way round.
    plain = params._replace(layer_norm=None, peepholes=None)
    if params.layer_norm is not None or params.peepholes is not None:
        with pytest.raises(
            ValueError, match=r"only in the checkpoint: \['params'\]\.(layer_norm|peepholes)\."
        ):
            checkpoint.restore(path, {**tree, "params": plain})
    if params.gates == 3:  # into 4 gate blocks: the shapes differ
        four = params._replace(kernel=np.zeros((3, 16), np.float32))
        with pytest.raises(
            ValueError, match=r"like\['params'\]\.kernel: expected shape \[3, 16\] .*has \[3, 12\]"
        ):
            checkpoint.restore(path, {**tree, "params": four})


# ----------------------------------------------------------------------------------------------
# interop.io
# ----------------------------------------------------------------------------------------------


def header(path: Any) -> dict[str, Any]:
    """The JSON header of an io file (either format)."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return json.loads(data["__jaxlstm__"].tobytes())
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return json.loads((f.metadata() or {})["__jaxlstm__"])


def rewrite_header(src: Any, dst: Any, edit: Any) -> None:
    """Copy the .npz io file ``src`` to ``dst`` with its header edited by ``edit(header)``."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = edit(json.loads(arrays.pop("__jaxlstm__").tobytes()))
    np.savez(dst, **arrays, __jaxlstm__=np.frombuffer(json.dumps(meta).encode(), np.uint8))


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_io_version_1_files_load_with_no_variant_fields(ext: str) -> None:
    if ext == "safetensors":
        require("safetensors")
    path = os.path.join(LEGACY, f"io_v1.{ext}")
    assert header(path)["version"] == 1
    params, config = jio.load(path)
    same_bits(params, legacy_trees()["stack"]["params"])
    assert config == make_legacy_files.CONFIG
    assert all(p.layer_norm is None and p.peepholes is None for p in (params[0].forward, *params[1:]))


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_io_round_trips_variant_params(ext: str, tmp_path) -> None:
    if ext == "safetensors":
        require("safetensors")
    rng = np.random.default_rng(2)
    for variant, kwargs in VARIANTS.items():
        one = variant_params(rng, 3, 4, **kwargs)
        out = one.output_size
        stack = (
            BidirectionalParams(one, variant_params(rng, 3, 4, **{**kwargs, "proj_size": None})),
            variant_params(rng, out + 4, 2, **kwargs, dtype=jnp.bfloat16),
            variant_params(rng, 2, 2),  # plain beside variants
        )
        for params in (one, stack):
            path = tmp_path / f"{variant}.{ext}"
            jio.save(path, params, config={"layer_norm_carry": "normalised"})
            loaded, config = jio.load(path)
            same_bits(loaded, params)
            assert config == {"layer_norm_carry": "normalised"}
    meta = header(path)
    assert meta["version"] == 2
    layer = meta["params"]["stack"][1]["lstm"]
    assert layer["layer_norm"] == {k: f"1.layer_norm.{k}" for k in LayerNormParams._fields}
    assert layer["peepholes"] == {"i": None, "f": "1.peepholes.f", "o": "1.peepholes.o"}  # CIFG: no i
    assert meta["dtypes"]["1.layer_norm.c_gain"] == "bfloat16"
    assert meta["params"]["stack"][2]["lstm"]["layer_norm"] is None


def test_io_refuses_malformed_variant_structures(tmp_path) -> None:
    rng = np.random.default_rng(3)
    good = tmp_path / "good.npz"
    jio.save(good, variant_params(rng, 3, 4, layer_norm=True, peepholes=True))

    def field(name: str, value: Any) -> Any:
        return lambda m: {**m, "params": {"layer": {"lstm": {**m["params"]["layer"]["lstm"], name: value}}}}

    ln = header(good)["params"]["layer"]["lstm"]["layer_norm"]
    cases = {
        "ln-field-missing": (field("layer_norm", {k: v for k, v in ln.items() if k != "c_gain"}), "layer_norm must have the fields \\['x_gain'"),
        "ln-field-extra": (field("layer_norm", {**ln, "eval": "os.system"}), "layer_norm must have the fields"),
        "ln-list": (field("layer_norm", list(ln.values())), "layer_norm must have the fields .*found list"),
        "ln-string": (field("layer_norm", "layer_norm.x_gain"), "layer_norm must have the fields .*found str"),
        "ln-gain-null": (field("layer_norm", {**ln, "x_gain": None}), r"layer_norm\.x_gain is null"),
        "ln-gain-int": (field("layer_norm", {**ln, "x_gain": 3}), r"layer_norm\.x_gain is a int, not a tensor name"),
        "ln-gain-absent": (field("layer_norm", {**ln, "x_gain": "nowhere"}), "tensor 'nowhere' listed in the structure is missing"),
        "peep-f-null": (field("peepholes", {"i": "peepholes.i", "f": None, "o": "peepholes.o"}), r"peepholes\.f is null"),
        "peep-nested": (field("peepholes", {"i": {"i": "peepholes.i"}, "f": "peepholes.f", "o": "peepholes.o"}), r"peepholes\.i is a dict"),
        "kernel-null": (field("kernel", None), r"kernel is null"),
        "v2-without-fields": (lambda m: {**m, "params": {"layer": {"lstm": {k: v for k, v in m["params"]["layer"]["lstm"].items() if k not in ("layer_norm", "peepholes")}}}}, "an LSTMParams entry must have the fields"),
        "v1-with-fields": (lambda m: {**m, "version": 1}, r"an LSTMParams entry must have the fields \['kernel', 'recurrent_kernel', 'bias', 'projection'\], found"),
        "version-true": (lambda m: {**m, "version": True}, "version True, expected 'jaxlstm' version 1 or 2"),
        "version-3": (lambda m: {**m, "version": 3}, "version 3, expected 'jaxlstm' version 1 or 2"),
        "version-str": (lambda m: {**m, "version": "2"}, "version '2', expected"),
        # well-formed, but the tensors do not make valid params: the final check names the field
        "ln-wrong-tensor": (field("layer_norm", {**ln, "x_gain": "layer_norm.c_gain"}), r"layer_norm\.x_gain"),
    }  # fmt: skip
    for label, (edit, message) in cases.items():
        path = tmp_path / f"{label}.npz"
        rewrite_header(good, path, edit)
        with pytest.raises(InvalidFileError, match=f"{label}\\.npz.*{message}") as info:
            jio.load(path)
        assert isinstance(info.value, ValueError)


def test_io_plain_params_are_written_as_version_2(tmp_path) -> None:
    path = tmp_path / "plain.npz"
    jio.save(path, variant_params(np.random.default_rng(4), 2, 3))
    lstm = header(path)["params"]["layer"]["lstm"]
    assert header(path)["version"] == 2 and lstm["layer_norm"] is None and lstm["peepholes"] is None
    assert jio.load(path)[0].layer_norm is None


# ----------------------------------------------------------------------------------------------
# converters to peers without the variants refuse them, naming the field
# ----------------------------------------------------------------------------------------------

REFUSALS = {
    "layer_norm": (dict(layer_norm=True), "has no layer-norm LSTM: {name}.layer_norm is set"),
    "peepholes": (dict(peepholes=True), "has no peephole LSTM: {name}.peepholes is set"),
    "cifg": (dict(cifg=True), r"has no coupled-gate \(CIFG\) LSTM: {name} has 3 gate blocks \({name}.kernel \[3, 12\] for 4 units\)"),
    # the first variant found is named; CIFG with peepholes has peepholes.i None
    "cifg_peepholes": (dict(cifg=True, peepholes=True), "has no peephole LSTM: {name}.peepholes is set"),
    "cifg_projection": (dict(cifg=True, proj_size=2), r"has no coupled-gate \(CIFG\) LSTM: {name} has 3 gate blocks"),
}  # fmt: skip


def _converters() -> dict[str, tuple[str, Any]]:
    """Every to_* converter: (the peer named in the message, a call taking one layer's params)."""
    from jaxlstm.interop import equinox, flax, haiku, keras, torch

    def nnx_cell() -> Any:
        from flax import nnx

        return nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0))

    return {
        "keras_weights": ("Keras", keras.to_keras_weights),
        "keras": ("Keras", lambda p: keras.to_keras(p, None)),  # refused before the layer is looked at
        "torch": ("PyTorch", torch.to_torch),
        "torch_stack": (
            "PyTorch",
            lambda p: torch.to_torch((variant_params(np.random.default_rng(0), 3, 4), p)),
        ),
        "torch_cell": ("PyTorch", torch.to_torch_cell),
        "linen": ("Flax", flax.to_linen),
        "linen_rnn": ("Flax", lambda p: flax.to_linen(p, rnn=True)),
        "nnx": ("Flax", lambda p: flax.to_nnx(p, nnx_cell())),
        "equinox": ("Equinox", equinox.to_equinox),
        "haiku": ("Haiku", haiku.to_haiku),
    }


@pytest.mark.parametrize("variant", REFUSALS)
def test_converters_to_peers_without_the_variant_refuse_it(variant: str) -> None:
    kwargs, message = REFUSALS[variant]
    params = variant_params(np.random.default_rng(5), 3, 4, **kwargs)
    for label, (peer, convert) in _converters().items():
        name = {"torch": "params[0]", "torch_stack": "params[1]"}.get(label, "params")  # to_torch: a stack
        expected = f"^{re.escape(name)}: {peer} " + message.format(name=re.escape(name))
        with pytest.raises(ValueError, match=expected):
            convert(params)


def test_converters_name_the_direction_of_a_bidirectional_variant() -> None:
    from jaxlstm.interop import flax, keras, torch

    rng = np.random.default_rng(6)
    params = BidirectionalParams(variant_params(rng, 3, 4), variant_params(rng, 3, 4, layer_norm=True))
    expected = r"^params\.backward: {} has no layer-norm LSTM: params\.backward\.layer_norm is set"
    for peer, convert in (("Keras", keras.to_keras_weights), ("Flax", flax.to_linen)):
        with pytest.raises(ValueError, match=expected.format(peer)):
            convert(params)
    with pytest.raises(ValueError, match=r"^params\[0\]\.backward: PyTorch has no layer-norm LSTM"):
        torch.to_torch(params)
    # plain params still convert (the refusal looks at nothing else)
    assert len(keras.to_keras_weights(params._replace(backward=params.forward))) == 6
