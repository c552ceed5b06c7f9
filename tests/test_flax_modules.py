"""What the linen and NNX modules share, once, parametrised over the flavour: the conventions of
issue 13 (state, layout, masks, options, error hints, empty sequences, half-precision parameters).

Each flavour is driven through a small adapter (``make`` builds a layer holding given params and
returns a call function), so one test states one behaviour for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jaxlstm
from jaxlstm import LSTMState

B, T, I, H = 3, 6, 4, 5
ATOL = 1e-6

_rng = np.random.default_rng(13)
XS = jnp.asarray(_rng.normal(size=(B, T, I)), jnp.float32)
PARAMS = jaxlstm.init(jax.random.key(0), I, H)
STATE = LSTMState(h=jnp.asarray(_rng.normal(size=(B, H)), jnp.float32), c=jnp.full((B, H), 0.5))
MASK = jnp.asarray(_rng.random((B, T)) > 0.3)


def _linen(**options: Any) -> Callable[..., Any]:
    from jaxlstm import linen

    layer = linen.LSTM(H, **options)
    variables = linen.to_variables(PARAMS)
    return lambda *args, **kwargs: layer.apply(variables, *args, **kwargs)


def _nnx(**options: Any) -> Callable[..., Any]:
    from jaxlstm import nnx as jnnx

    return jnnx.LSTM.from_params(PARAMS, **options)


@pytest.fixture(params=["linen", "nnx"])
def make(request) -> Callable[..., Callable[..., Any]]:
    require("flax")
    return {"linen": _linen, "nnx": _nnx}[request.param]


def _build(flavour: str, **options: Any) -> Any:
    """A fresh module that draws its own parameters."""
    if flavour == "linen":
        from jaxlstm import linen

        layer = linen.LSTM(H, **options)
        return layer.init(jax.random.key(0), XS)["params"]
    from flax import nnx

    from jaxlstm import nnx as jnnx

    return jnnx.LSTM(I, H, rngs=nnx.Rngs(0), **options).params


# ----------------------------------------------------------------------------------------------
# State: a bare tuple is ambiguous; LSTMState and Keras's list are not
# ----------------------------------------------------------------------------------------------


def test_bare_tuple_state_is_refused_everywhere(make) -> None:
    # (c, h) is Flax's carry and (h, c) Keras's order: a tuple used to be read as (h, c) silently.
    layer = make(return_sequences=True)
    for call in (lambda s: layer(XS, s), lambda s: jaxlstm.lstm(PARAMS, XS, s)):
        with pytest.raises(TypeError, match=r"ambiguous.*LSTMState\(h=\.\.\., c=\.\.\.\).*from_flax_carry"):
            call((STATE.c, STATE.h))
    expected = jaxlstm.lstm(PARAMS, XS, STATE).sequence
    np.testing.assert_allclose(layer(XS, [STATE.h, STATE.c]), expected, atol=ATOL)  # Keras's list
    carry = STATE.to_flax_carry()
    np.testing.assert_allclose(layer(XS, LSTMState.from_flax_carry(carry)), expected, atol=ATOL)


# ----------------------------------------------------------------------------------------------
# Layout, masks, options
# ----------------------------------------------------------------------------------------------


def test_time_major_matches_pytorch_default_layout(make) -> None:
    torch = require("torch")
    from jaxlstm.interop.torch import to_torch

    module = torch.nn.LSTM(I, H)  # batch_first=False: [T, B, I]
    module.load_state_dict(to_torch(PARAMS))
    xs_tb = np.swapaxes(np.asarray(XS), 0, 1)
    with torch.no_grad():
        ref, (h_n, c_n) = module(torch.from_numpy(xs_tb))
    for sequence, h, c in (
        make(time_major=True, return_sequences=True, return_state=True)(jnp.asarray(xs_tb)),
        (lambda out: (out.sequence, out.state.h, out.state.c))(
            jaxlstm.lstm(PARAMS, jnp.asarray(xs_tb), time_major=True)
        ),
    ):
        assert sequence.shape == (T, B, H)
        np.testing.assert_allclose(sequence, ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(h, h_n[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(c, c_n[0].numpy(), atol=1e-5)


def test_time_major_layers_match_batch_major() -> None:
    # stacked_lstm / bidirectional (parity-tested batch-major) read [T, B, I] and write [T, B, F].
    stack = jaxlstm.init_stack(jax.random.key(1), I, H, num_layers=2, bidirectional=True)
    xs_tb = jnp.swapaxes(XS, 0, 1)
    for run in (
        lambda x, m, **kw: jaxlstm.stacked_lstm(stack, x, None, m, **kw),
        lambda x, m, **kw: jaxlstm.bidirectional(stack[0], x, None, m, **kw),
    ):
        batch_major = run(XS, MASK)
        time_major = run(xs_tb, MASK.T, time_major=True)
        np.testing.assert_allclose(jnp.swapaxes(time_major.sequence, 0, 1), batch_major.sequence, atol=ATOL)


def test_numeric_01_masks_are_bool_masks(make) -> None:
    # Keras accepts a float or int 0/1 mask; any other value is refused while it can be seen.
    layer = make(return_sequences=True)
    expected = layer(XS, None, MASK)
    for dtype in (jnp.float32, jnp.int32):
        np.testing.assert_allclose(layer(XS, None, MASK.astype(dtype)), expected, atol=ATOL)
        np.testing.assert_allclose(
            jaxlstm.lstm(PARAMS, XS, None, MASK.astype(dtype)).sequence, expected, atol=ATOL
        )
    with pytest.raises(ValueError, match="mask: expected bool or 0/1 values"):
        layer(XS, None, MASK * 2.0)


@pytest.mark.parametrize("value", [0, 1, "True", None])
def test_boolean_options_must_be_bools(value) -> None:
    # PyTorch: "bias should be of type bool"; a truthy 0/1/"True" used to be taken silently.
    require("flax")
    from flax import nnx

    from jaxlstm import linen
    from jaxlstm import nnx as jnnx

    for build in (
        lambda: jaxlstm.init(jax.random.key(0), I, H, use_bias=value),
        lambda: linen.LSTM(H, use_bias=value).init(jax.random.key(0), XS),
        lambda: jnnx.LSTM(I, H, use_bias=value, rngs=nnx.Rngs(0)),
        lambda: jnnx.LSTM(I, H, return_sequences=value, rngs=nnx.Rngs(0)),
        lambda: jaxlstm.lstm(PARAMS, XS, reverse=value),
    ):
        with pytest.raises(TypeError, match=r"expected a bool \(True or False\)"):
            build()


def test_unroll_false_works_in_stacks_too() -> None:
    stack = jaxlstm.init_stack(jax.random.key(1), I, H, num_layers=2)
    np.testing.assert_allclose(
        jaxlstm.stacked_lstm(stack, XS, unroll=False).sequence,
        jaxlstm.stacked_lstm(stack, XS).sequence,
        atol=ATOL,
    )


# ----------------------------------------------------------------------------------------------
# Parameters: half precision, hints for the likely mistakes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_half_precision_parameters_are_drawn_in_float32_and_cast(flavour) -> None:
    # The orthogonal initialiser's QR has no bfloat16 kernel: this used to raise NotImplementedError.
    require("flax")
    half, full = _build(flavour, param_dtype=jnp.bfloat16), _build(flavour)
    for name in ("kernel", "recurrent_kernel", "bias"):
        a, b = (half[name], full[name]) if flavour == "linen" else (getattr(half, name), getattr(full, name))
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(a, b.astype(jnp.bfloat16))


def test_pytorch_layout_weights_get_a_hint(make) -> None:
    torch_like = jaxlstm.LSTMParams(PARAMS.kernel.T, PARAMS.recurrent_kernel.T, PARAMS.bias)
    with pytest.raises(ValueError, match="PyTorch's layout.*from_torch"):
        jaxlstm.lstm(torch_like, XS)
    with pytest.raises(ValueError, match="PyTorch's layout.*from_torch"):
        jaxlstm.bidirectional(jaxlstm.BidirectionalParams(torch_like, torch_like), XS)


def test_swapped_nnx_arguments_get_a_hint() -> None:
    require("flax")
    from flax import nnx

    from jaxlstm import nnx as jnnx

    layer = jnnx.LSTM(H, I, rngs=nnx.Rngs(0))  # meant LSTM(in_features=I, units=H)
    with pytest.raises(ValueError, match=r"takes \(in_features, units\): was it built as LSTM\(4, 5\)"):
        layer(jnp.ones((B, T, I)))


def test_missing_bidirectional_kernel_is_our_message() -> None:
    # Used to be AttributeError: 'NoneType' object has no attribute 'shape'.
    broken = jaxlstm.BidirectionalParams(
        jaxlstm.LSTMParams(None, PARAMS.recurrent_kernel, PARAMS.bias), PARAMS
    )
    with pytest.raises(ValueError, match=r"params\.forward\.kernel: missing"):
        jaxlstm.bidirectional(broken, XS)


# ----------------------------------------------------------------------------------------------
# Dropout RNG, empty sequences
# ----------------------------------------------------------------------------------------------


def test_linen_dropout_without_a_dropout_rng_is_our_message() -> None:
    require("flax")
    from jaxlstm import linen

    layer = linen.LSTM(H, dropout=0.5)
    with pytest.raises(ValueError, match=r"no 'dropout' RNG was given.*rngs=\{'dropout': key\}"):
        layer.apply(linen.to_variables(PARAMS), XS, deterministic=False)


def test_zero_time_steps(make) -> None:
    # A layer's output is its last step's, and an empty sequence has none: refused, as PyTorch does.
    # The functional lstm returns the empty sequence and the initial state (what a scan of 0 steps is).
    empty = jnp.zeros((B, 0, I))
    for options in ({}, {"return_sequences": True}):
        with pytest.raises(ValueError, match="inputs: expected at least one time step.*T = 0"):
            make(**options)(empty)
    out = jaxlstm.lstm(PARAMS, empty, STATE)
    assert out.sequence.shape == (B, 0, H)
    np.testing.assert_array_equal(out.state.h, STATE.h)


def test_bidirectional_module_name_is_the_function_and_shadows_no_module() -> None:
    import pathlib
    import types

    # Before, `import jaxlstm.bidirectional as m` silently gave the function in place of the module:
    # the module is now private, so the name means one thing.
    assert callable(jaxlstm.bidirectional) and not isinstance(jaxlstm.bidirectional, types.ModuleType)
    assert not (pathlib.Path(jaxlstm.__file__).parent / "bidirectional.py").exists()
