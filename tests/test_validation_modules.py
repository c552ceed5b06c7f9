"""Bad input to the functional API and the Flax modules: a ValueError / TypeError naming the argument,
the expected and the found shape or dtype, before anything reaches XLA (tables of cases)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import LSTMState

B, T, I, H = 2, 5, 4, 3
P = jaxlstm.init(jax.random.key(0), I, H)
X = np.ones((B, T, I), np.float32)  # numpy: no device transfer per case


def _match(*fragments: str) -> str:
    """A regex requiring every fragment, in order (argument, expected, found)."""
    return ".*".join(re.escape(f) for f in fragments)


def check(case: tuple[type[Exception], tuple[str, ...], Callable[[], Any]]) -> None:
    exc, fragments, call = case
    with pytest.raises(exc, match=_match(*fragments)):
        call()


# ------------------------------------------------------------------------------------------------
# Functional API: the cases tests/test_errors.py does not already pin
# ------------------------------------------------------------------------------------------------

FUNCTIONAL = {
    "lstm dtype int": (
        TypeError,
        ("dtype", "floating-point dtype", "int32"),
        lambda: jaxlstm.lstm(P, X, dtype=jnp.int32),
    ),
    "lstm dtype complex": (
        TypeError,
        ("dtype", "floating-point dtype", "complex64"),
        lambda: jaxlstm.lstm(P, X, dtype=jnp.complex64),
    ),
    "lstm dtype unknown": (
        TypeError,
        ("dtype", "floating-point dtype", "'float33'"),
        lambda: jaxlstm.lstm(P, X, dtype="float33"),
    ),
    "lstm params leaf a list": (
        TypeError,
        ("params.kernel", "an array", "list"),
        lambda: jaxlstm.lstm(P._replace(kernel=np.ones((I, 4 * H)).tolist()), X),
    ),
    "lstm params kernel rank 3": (
        ValueError,
        ("params.kernel", "[input_size, 4*units]", "[4, 12, 1]"),
        lambda: jaxlstm.lstm(P._replace(kernel=jnp.ones((I, 4 * H, 1))), X),
    ),
    "lstm params bias complex": (
        TypeError,
        ("params.bias", "floating-point", "complex64"),
        lambda: jaxlstm.lstm(P._replace(bias=jnp.ones(4 * H, jnp.complex64)), X),
    ),
    "lstm params rk missing": (
        ValueError,
        ("params.recurrent_kernel", "missing"),
        lambda: jaxlstm.lstm(P._replace(recurrent_kernel=None), X),
    ),
    "lstm lengths bool": (
        TypeError,
        ("lengths", "integer", "bool"),
        lambda: jaxlstm.lstm(P, X, lengths=np.array([True, False])),
    ),
    "lstm mask extra axis": (
        ValueError,
        ("mask", "[2, 5]", "[2, 5, 1]"),
        lambda: jaxlstm.lstm(P, X, mask=np.ones((B, T, 1), bool)),
    ),
    "lstm state int": (
        TypeError,
        ("initial_state.c", "floating-point", "int32"),
        lambda: jaxlstm.lstm(P, X, LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H), jnp.int32))),
    ),
    "lstm recurrent_dropout_mask shape": (
        ValueError,
        ("recurrent_dropout_mask", "[2, 3]", "[2, 4]"),
        lambda: jaxlstm.lstm(P, X, recurrent_dropout_mask=jnp.ones((B, 4))),
    ),
    "lstm recurrent activation unknown": (
        ValueError,
        ("recurrent_activation", "unknown", "'sigmod'"),
        lambda: jaxlstm.lstm(P, X, recurrent_activation="sigmod"),
    ),
    "lstm activation not callable": (
        TypeError,
        ("activation", "callable", "int"),
        lambda: jaxlstm.lstm(P, X, activation=3),
    ),
    "init param_dtype int": (
        TypeError,
        ("param_dtype", "floating-point dtype", "int32"),
        lambda: jaxlstm.init(jax.random.key(0), I, H, param_dtype=jnp.int32),
    ),
    "init proj_size 0": (
        ValueError,
        ("proj_size", "positive int", "0"),
        lambda: jaxlstm.init(jax.random.key(0), I, H, proj_size=0),
    ),
    "zero_state dtype int": (
        TypeError,
        ("dtype", "floating-point dtype", "int32"),
        lambda: jaxlstm.zero_state(P, (B,), jnp.int32),
    ),
    "zero_state batch int": (
        TypeError,
        ("batch_shape", "tuple of non-negative ints", "int 2"),
        lambda: jaxlstm.zero_state(P, 2),
    ),
    "zero_state batch negative": (
        ValueError,
        ("batch_shape", "non-negative", "(-1,)"),
        lambda: jaxlstm.zero_state(P, (-1,)),
    ),
    "zero_state units 0": (ValueError, ("units", "positive int", "0"), lambda: jaxlstm.zero_state(0)),
    "step x_t int": (
        TypeError,
        ("x_t", "floating-point", "int32"),
        lambda: jaxlstm.step(P, jaxlstm.zero_state(P), jnp.ones(I, jnp.int32)),
    ),
    "step x_t scalar": (
        ValueError,
        ("x_t", "[4]", "[]"),
        lambda: jaxlstm.step(P, jaxlstm.zero_state(P), jnp.ones(())),
    ),
    "step state batch": (
        ValueError,
        ("state.h", "[2, 3]", "[3, 3]"),
        lambda: jaxlstm.step(P, jaxlstm.zero_state(P, (3,)), jnp.ones((B, I))),
    ),
}


@pytest.mark.parametrize("case", FUNCTIONAL.values(), ids=FUNCTIONAL.keys())
def test_functional(case) -> None:
    check(case)


def test_numpy_integer_unroll_is_accepted() -> None:
    """A numpy int (e.g. from a config array) is an int: same result as the Python int."""
    np.testing.assert_array_equal(
        jaxlstm.lstm(P, X, unroll=np.int64(2)).sequence, jaxlstm.lstm(P, X, unroll=2).sequence
    )


# ------------------------------------------------------------------------------------------------
# Flax modules (linen, NNX): construction options, call inputs, params in and out
# ------------------------------------------------------------------------------------------------


def _linen_cases() -> dict:
    from jaxlstm import linen as jl

    layer = jl.LSTM(H)
    variables = jax.eval_shape(layer.init, jax.random.key(0), X)  # shapes are all the checks need
    variables = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), variables)
    params = dict(variables["params"])

    def apply(x=X, *args, layer=layer, variables=variables, **kw):
        return lambda: layer.apply(variables, x, *args, **kw)

    def with_params(**changes):
        return {"params": {k: v for k, v in {**params, **changes}.items() if v is not None}}

    cell = jl.LSTMCell(H)
    carry = (np.zeros((B, H), np.float32), np.zeros((B, H), np.float32))
    cell_vars = with_params()  # the cell stores the same names and shapes as the layer
    step = lambda carry=carry, x=np.ones((B, I), np.float32), c=cell: lambda: c.apply(cell_vars, carry, x)  # noqa: B008
    return {
        "units 0": (ValueError, ("units", "positive int", "0"), apply(layer=jl.LSTM(0))),
        "units float": (TypeError, ("units", "positive int", "float 2.5"), apply(layer=jl.LSTM(2.5))),
        "dropout > 1": (ValueError, ("dropout", "[0, 1]", "1.5"), apply(layer=jl.LSTM(H, dropout=1.5))),
        "recurrent_dropout < 0": (
            ValueError,
            ("recurrent_dropout", "[0, 1]", "-0.1"),
            apply(layer=jl.LSTM(H, recurrent_dropout=-0.1)),
        ),
        "dropout str": (
            TypeError,
            ("dropout", "float in [0, 1]", "str"),
            apply(layer=jl.LSTM(H, dropout="0.1")),
        ),
        "activation unknown": (
            ValueError,
            ("activation", "unknown", "'tanhh'"),
            apply(layer=jl.LSTM(H, activation="tanhh")),
        ),
        "recurrent_activation unknown": (
            ValueError,
            ("recurrent_activation", "unknown", "'sigmod'"),
            apply(layer=jl.LSTM(H, recurrent_activation="sigmod")),
        ),
        "dtype int": (
            TypeError,
            ("dtype", "floating-point dtype", "int32"),
            apply(layer=jl.LSTM(H, dtype=jnp.int32)),
        ),
        "param_dtype int": (
            TypeError,
            ("param_dtype", "floating-point dtype", "int32"),
            lambda: jl.LSTM(H, param_dtype=jnp.int32).init(jax.random.key(0), X),
        ),
        "param_dtype complex": (
            TypeError,
            ("param_dtype", "floating-point dtype", "complex64"),
            lambda: jl.LSTM(H, param_dtype=jnp.complex64).init(jax.random.key(0), X),
        ),
        "inputs int": (TypeError, ("inputs", "floating-point", "int32"), apply(X.astype(np.int32))),
        "inputs bool": (TypeError, ("inputs", "floating-point", "bool"), apply(X.astype(bool))),
        "inputs complex": (
            TypeError,
            ("inputs", "floating-point", "complex64"),
            apply(X.astype(np.complex64)),
        ),
        "inputs a list": (TypeError, ("inputs", "an array", "list"), apply(X.tolist())),
        "inputs rank 1": (ValueError, ("inputs", "[..., T, 4]", "[4]"), apply(X[0, 0])),
        "inputs features": (
            ValueError,
            ("inputs", "4 features", "[2, 5, 6]"),
            apply(np.ones((B, T, 6), np.float32)),
        ),
        "mask batch": (ValueError, ("mask", "[2, 5]", "[3, 5]"), apply(X, None, np.ones((3, T), bool))),
        "mask broadcast over batch": (
            ValueError,
            ("mask", "[2, 5]", "[5]"),
            apply(X, None, np.ones(T, bool)),
        ),
        "mask int": (ValueError, ("mask", "0/1", "2"), apply(X, None, np.full((B, T), 2, np.int32))),
        "initial_state batch": (
            ValueError,
            ("initial_state.h", "[2, 3]", "[3, 3]"),
            apply(X, [np.zeros((3, H), np.float32)] * 2),
        ),
        "initial_state int": (
            TypeError,
            ("initial_state.c", "floating-point", "int32"),
            apply(X, [np.zeros((B, H), np.float32), np.zeros((B, H), np.int32)]),
        ),
        "initial_state triple": (
            TypeError,
            ("initial_state", "LSTMState(h=..., c=...)", "tuple"),
            apply(X, (1, 2, 3)),
        ),
        "variables gate width": (
            ValueError,
            ("params.kernel", "[4, 12]", "units=3", "[4, 16]"),
            apply(variables=with_params(kernel=np.zeros((I, 16), np.float32))),
        ),
        "variables recurrent width": (
            ValueError,
            ("params.recurrent_kernel", "[3, 12]", "[3, 16]"),
            apply(variables=with_params(recurrent_kernel=np.zeros((H, 16), np.float32))),
        ),
        "variables missing": (
            ValueError,
            ("variables", "missing ['recurrent_kernel']", "['bias', 'kernel']"),
            apply(variables=with_params(recurrent_kernel=None)),
        ),
        "variables missing bias": (
            ValueError,
            ("params.bias", "use_bias=True", "None"),
            apply(variables=with_params(bias=None)),
        ),
        "variables int": (
            TypeError,
            ("params.bias", "floating-point", "int32"),
            apply(variables=with_params(bias=np.zeros(4 * H, np.int32))),
        ),
        "get_params not a mapping": (TypeError, ("variables", "mapping", "list"), lambda: jl.get_params([1])),
        "get_params missing": (
            ValueError,
            ("variables", "missing ['kernel']", "['bias', 'recurrent_kernel']"),
            lambda: jl.get_params(with_params(kernel=None)),
        ),
        "get_params gate width": (
            ValueError,
            ("params.recurrent_kernel", "[3, 12]", "[3, 16]"),
            lambda: jl.get_params(with_params(recurrent_kernel=np.zeros((H, 16), np.float32))),
        ),
        "to_variables dict": (TypeError, ("params", "LSTMParams", "dict"), lambda: jl.to_variables(params)),
        "to_variables gate width": (
            ValueError,
            ("params.bias", "[12]", "[8]"),
            lambda: jl.to_variables(P._replace(bias=jnp.ones(8))),
        ),
        "cell inputs int": (
            TypeError,
            ("inputs", "floating-point", "int32"),
            step(x=np.ones((B, I), np.int32)),
        ),
        "cell inputs features": (
            ValueError,
            ("inputs", "4 features", "[2, 5]"),
            step(x=np.ones((B, 5), np.float32)),
        ),
        "cell inputs scalar": (
            ValueError,
            ("inputs", "features on the last axis", "[]"),
            step(x=np.float32(1.0)),
        ),
        "cell carry triple": (
            TypeError,
            ("carry", "(c, h) pair", "tuple of length 3"),
            step(carry=carry + carry[:1]),
        ),
        "cell carry array": (TypeError, ("carry", "(c, h) pair", "ndarray"), step(carry=carry[0])),
        "cell carry int": (
            TypeError,
            ("carry[1] (h)", "floating-point", "int32"),
            step(carry=(carry[0], carry[1].astype(np.int32))),
        ),
        "cell carry batch": (
            ValueError,
            ("carry[0] (c)", "[2, 3]", "[3, 3]"),
            step(carry=(np.zeros((3, H), np.float32), carry[1])),
        ),
        "layer_norm_carry unknown": (
            ValueError,
            ("layer_norm_carry", "'raw', 'normalised'", "'ba'"),
            apply(layer=jl.LSTM(H, layer_norm_carry="ba")),
        ),
        "zoneout 1": (ValueError, ("zoneout", "[0, 1)", "1.0"), apply(layer=jl.LSTM(H, zoneout=1.0))),
        "zoneout triple": (
            ValueError,
            ("zoneout", "(z_c, z_h)", "(0.1, 0.1, 0.1)"),
            apply(layer=jl.LSTM(H, zoneout=(0.1, 0.1, 0.1))),
        ),
        "weight_drop > 1": (
            ValueError,
            ("weight_drop", "[0, 1]", "1.5"),
            apply(layer=jl.LSTM(H, weight_drop=1.5)),
        ),
        "dropout_masks unknown": (
            ValueError,
            ("dropout_masks", "'shared', 'per_gate'", "'keras'"),
            apply(layer=jl.LSTM(H, dropout_masks="keras")),
        ),
        "layer_norm int": (TypeError, ("layer_norm", "bool", "int 1"), apply(layer=jl.LSTM(H, layer_norm=1))),
        "carry_dtype narrower": (
            ValueError,
            ("carry_dtype", "at least as wide", "float32", "float16"),
            apply(layer=jl.LSTM(H, carry_dtype=jnp.float16)),
        ),
        "params without the module's layer norm": (
            ValueError,
            ("params.layer_norm", "layer_norm=True", "None"),
            apply(layer=jl.LSTM(H, layer_norm=True)),
        ),
        "params without the module's peepholes": (
            ValueError,
            ("params.peepholes", "peepholes=True", "None"),
            apply(layer=jl.LSTM(H, peepholes=True)),
        ),
        "4 gate blocks for coupled gates": (
            ValueError,
            (
                "params.kernel",
                f"[input_size, 3*units] = [{I}, {3 * H}]",
                f"[{I}, {4 * H}]",
                "coupled_gates=False",
            ),
            apply(layer=jl.LSTM(H, coupled_gates=True)),
        ),
        "resets wrong length": (
            ValueError,
            ("resets", f"[{B}, {T}]", f"[{B}, {T - 1}]"),
            apply(resets=np.zeros((B, T - 1), bool)),
        ),
        "bidirectional params without layer norm": (
            ValueError,
            ("variables forward.layer_norm", "layer_norm=True", "None"),
            lambda: jl.Bidirectional(H, layer_norm=True).apply(
                jl.to_variables(jaxlstm.BidirectionalParams(P, P)), X
            ),
        ),
        "stack params of 4 gate blocks for coupled gates": (
            ValueError,
            ("variables layer_0.kernel", f"[{I}, {3 * H}]", f"[{I}, {4 * H}]"),
            lambda: jl.StackedLSTM(H, coupled_gates=True).apply(jl.to_variables((P,)), X),
        ),
        "cell params without layer norm": (
            ValueError,
            ("params.layer_norm", "layer_norm=True", "None"),
            step(c=jl.LSTMCell(H, layer_norm=True)),
        ),
        "cell units 0": (ValueError, ("units", "positive int", "0"), step(c=jl.LSTMCell(0))),
        "cell dtype complex": (
            TypeError,
            ("dtype", "floating-point dtype", "complex64"),
            step(c=jl.LSTMCell(H, dtype=jnp.complex64)),
        ),
    }


LINEN = _linen_cases()


@pytest.mark.parametrize("case", LINEN.values(), ids=LINEN.keys())
def test_linen(case) -> None:
    check(case)


def _nnx_cases() -> dict:
    from flax import nnx

    from jaxlstm import nnx as jn

    rngs = lambda: nnx.Rngs(0)
    layer = jn.LSTM(I, H, rngs=rngs())
    dropping = jn.LSTM(I, H, dropout=0.5, rngs=rngs())
    cell = jn.LSTMCell(I, H, rngs=rngs())
    carry = cell.initialize_carry((B, I))
    x_t = np.ones((B, I), np.float32)
    return {
        "units 0": (ValueError, ("units", "positive int", "0"), lambda: jn.LSTM(I, 0, rngs=rngs())),
        "in_features -1": (
            ValueError,
            ("in_features", "positive int", "-1"),
            lambda: jn.LSTM(-1, H, rngs=rngs()),
        ),
        "units float": (
            TypeError,
            ("units", "positive int", "float 2.0"),
            lambda: jn.LSTM(I, 2.0, rngs=rngs()),
        ),
        "dropout > 1": (
            ValueError,
            ("dropout", "[0, 1]", "2"),
            lambda: jn.LSTM(I, H, dropout=2, rngs=rngs()),
        ),
        "recurrent_dropout < 0": (
            ValueError,
            ("recurrent_dropout", "[0, 1]", "-0.5"),
            lambda: jn.LSTM(I, H, recurrent_dropout=-0.5, rngs=rngs()),
        ),
        "activation unknown": (
            ValueError,
            ("activation", "unknown", "'rel'"),
            lambda: jn.LSTM(I, H, activation="rel", rngs=rngs()),
        ),
        "unroll 0": (
            ValueError,
            ("unroll", "positive int", "0"),
            lambda: jn.LSTM(I, H, unroll=0, rngs=rngs()),
        ),
        "kernel_initializer unknown": (
            ValueError,
            ("kernel_initializer", "unknown", "'glorot'"),
            lambda: jn.LSTM(I, H, kernel_initializer="glorot", rngs=rngs()),
        ),
        "dtype int": (
            TypeError,
            ("dtype", "floating-point dtype", "int32"),
            lambda: jn.LSTM(I, H, dtype=jnp.int32, rngs=rngs()),
        ),
        "param_dtype int": (
            TypeError,
            ("param_dtype", "floating-point dtype", "int32"),
            lambda: jn.LSTM(I, H, param_dtype=jnp.int32, rngs=rngs()),
        ),
        "inputs int": (TypeError, ("inputs", "floating-point", "int32"), lambda: layer(X.astype(np.int32))),
        "inputs complex": (
            TypeError,
            ("inputs", "floating-point", "complex64"),
            lambda: layer(X.astype(np.complex64)),
        ),
        "inputs features": (ValueError, ("inputs", "4 features", "[2, 5, 3]"), lambda: layer(X[..., :3])),
        "inputs rank 1": (ValueError, ("inputs", "[..., T, 4]", "[4]"), lambda: layer(X[0, 0])),
        "mask batch": (
            ValueError,
            ("mask", "[2, 5]", "[1, 5]"),
            lambda: layer(X, None, np.ones((1, T), bool)),
        ),
        "mask float": (
            ValueError,
            ("mask", "0/1", "0.5"),
            lambda: layer(X, None, np.full((B, T), 0.5, np.float32)),
        ),
        "initial_state batch": (
            ValueError,
            ("initial_state.c", "[2, 3]", "[4, 3]"),
            lambda: layer(X, [np.zeros((B, H), np.float32), np.zeros((4, H), np.float32)]),
        ),
        "rngs wrong type": (TypeError, ("rngs", "nnx.Rngs", "int"), lambda: dropping(X, rngs=3)),
        "set_params dict": (
            TypeError,
            ("params", "LSTMParams", "dict"),
            lambda: layer.set_params(dict(P._asdict())),
        ),
        "set_params units": (
            ValueError,
            ("params.kernel", "[4, 12]", "units=3", "[4, 20]"),
            lambda: layer.set_params(jaxlstm.init(jax.random.key(0), I, 5)),
        ),
        "set_params gate width": (
            ValueError,
            ("params.recurrent_kernel", "[3, 12]", "[3, 16]"),
            lambda: layer.set_params(P._replace(recurrent_kernel=jnp.ones((H, 16)))),
        ),
        "set_params int": (
            TypeError,
            ("params.kernel", "floating-point", "int32"),
            lambda: layer.set_params(P._replace(kernel=P.kernel.astype(jnp.int32))),
        ),
        "set_params projection": (
            ValueError,
            ("params.projection", "no projection"),
            lambda: layer.set_params(jaxlstm.init(jax.random.key(0), I, H, proj_size=2)),
        ),
        "from_params gate width": (
            ValueError,
            ("params.bias", "[12]", "[8]"),
            lambda: jn.LSTM.from_params(P._replace(bias=jnp.ones(8))),
        ),
        "cell inputs int": (
            TypeError,
            ("inputs", "floating-point", "int32"),
            lambda: cell(carry, x_t.astype(np.int32)),
        ),
        "cell inputs bool": (
            TypeError,
            ("inputs", "floating-point", "bool"),
            lambda: cell(carry, x_t.astype(bool)),
        ),
        "cell inputs features": (
            ValueError,
            ("inputs", "4 features", "[2, 5]"),
            lambda: cell(carry, np.ones((B, 5), np.float32)),
        ),
        "cell carry triple": (
            TypeError,
            ("carry", "(c, h) pair", "tuple of length 3"),
            lambda: cell((*carry, carry[0]), x_t),
        ),
        "cell carry int": (
            TypeError,
            ("carry[0] (c)", "floating-point", "int32"),
            lambda: cell((carry[0].astype(jnp.int32), carry[1]), x_t),
        ),
        "cell carry batch": (
            ValueError,
            ("carry[1] (h)", "[2, 3]", "[1, 3]"),
            lambda: cell((carry[0], carry[1][:1]), x_t),
        ),
        "zoneout < 0": (
            ValueError,
            ("zoneout", "[0, 1]", "-0.1"),
            lambda: jn.LSTM(I, H, zoneout=(0.0, -0.1), rngs=rngs()),
        ),
        "weight_drop str": (
            TypeError,
            ("weight_drop", "float in [0, 1]", "str"),
            lambda: jn.LSTM(I, H, weight_drop="0.1", rngs=rngs()),
        ),
        "layer_norm_epsilon 0": (
            ValueError,
            ("layer_norm_epsilon", "positive float", "0"),
            lambda: jn.LSTM(I, H, layer_norm_epsilon=0.0, rngs=rngs()),
        ),
        "peepholes str": (
            TypeError,
            ("peepholes", "bool", "str"),
            lambda: jn.LSTM(I, H, peepholes="yes", rngs=rngs()),
        ),
        "set_params of another variant": (
            ValueError,
            ("params.layer_norm", "layer_norm=False", "present"),
            lambda: layer.set_params(jaxlstm.init(jax.random.key(0), I, H, layer_norm=True)),
        ),
        "set_params of coupled gates": (
            ValueError,
            (
                "params.kernel",
                f"[input_size, 4*units] = [{I}, {4 * H}]",
                f"[{I}, {3 * H}]",
                "coupled_gates=True",
            ),
            lambda: layer.set_params(jaxlstm.init(jax.random.key(0), I, H, coupled_gates=True)),
        ),
        "resets not a mask shape": (
            ValueError,
            ("resets", f"[{B}, {T}]", f"[{T}]"),
            lambda: layer(X, resets=np.zeros((T,), bool)),
        ),
        "bidirectional weight_drop > 1": (
            ValueError,
            ("weight_drop", "[0, 1]", "2"),
            lambda: jn.Bidirectional(I, H, weight_drop=2, rngs=rngs()),
        ),
        "cell units 0": (ValueError, ("units", "positive int", "0"), lambda: jn.LSTMCell(I, 0, rngs=rngs())),
        "cell recurrent_activation": (
            ValueError,
            ("recurrent_activation", "unknown", "'hard'"),
            lambda: jn.LSTMCell(I, H, recurrent_activation="hard", rngs=rngs()),
        ),
    }


NNX = _nnx_cases()


@pytest.mark.parametrize("case", NNX.values(), ids=NNX.keys())
def test_nnx(case) -> None:
    check(case)
