"""Save/load of the issue-15 variant parameters (layer norm, peepholes, coupled gates), and the files
users already hold: checkpoints and interop.io version-1 files written before LSTMParams had the
``layer_norm`` and ``peepholes`` fields (tests/fixtures/legacy, made by make_legacy_files.py with the
code of commit 2437b60) still load into today's types."""

from __future__ import annotations

import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlstm import BidirectionalParams, LayerNormParams, LSTMParams, PeepholeParams, checkpoint

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
