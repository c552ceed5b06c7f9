"""Bad input to the functional API and the Flax modules: a ValueError / TypeError naming the argument,
the expected and the found shape or dtype, before anything reaches XLA (tables of cases)."""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm import LSTMParams, LSTMState

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
    "lstm dtype int": (TypeError, ("dtype", "floating-point dtype", "int32"), lambda: jaxlstm.lstm(P, X, dtype=jnp.int32)),
    "lstm dtype complex": (TypeError, ("dtype", "floating-point dtype", "complex64"), lambda: jaxlstm.lstm(P, X, dtype=jnp.complex64)),
    "lstm dtype unknown": (TypeError, ("dtype", "floating-point dtype", "'float33'"), lambda: jaxlstm.lstm(P, X, dtype="float33")),
    "lstm params leaf a list": (TypeError, ("params.kernel", "an array", "list"), lambda: jaxlstm.lstm(P._replace(kernel=np.ones((I, 4 * H)).tolist()), X)),
    "lstm params kernel rank 3": (ValueError, ("params.kernel", "[input_size, 4*units]", "[4, 12, 1]"), lambda: jaxlstm.lstm(P._replace(kernel=jnp.ones((I, 4 * H, 1))), X)),
    "lstm params bias complex": (TypeError, ("params.bias", "floating-point", "complex64"), lambda: jaxlstm.lstm(P._replace(bias=jnp.ones(4 * H, jnp.complex64)), X)),
    "lstm params rk missing": (ValueError, ("params.recurrent_kernel", "missing"), lambda: jaxlstm.lstm(P._replace(recurrent_kernel=None), X)),
    "lstm lengths bool": (TypeError, ("lengths", "integer", "bool"), lambda: jaxlstm.lstm(P, X, lengths=np.array([True, False]))),
    "lstm mask extra axis": (ValueError, ("mask", "[2, 5]", "[2, 5, 1]"), lambda: jaxlstm.lstm(P, X, mask=np.ones((B, T, 1), bool))),
    "lstm state int": (TypeError, ("initial_state.c", "floating-point", "int32"), lambda: jaxlstm.lstm(P, X, LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H), jnp.int32)))),
    "lstm recurrent_dropout_mask shape": (ValueError, ("recurrent_dropout_mask", "[2, 3]", "[2, 4]"), lambda: jaxlstm.lstm(P, X, recurrent_dropout_mask=jnp.ones((B, 4)))),
    "lstm recurrent activation unknown": (ValueError, ("recurrent_activation", "unknown", "'sigmod'"), lambda: jaxlstm.lstm(P, X, recurrent_activation="sigmod")),
    "lstm activation not callable": (TypeError, ("activation", "callable", "int"), lambda: jaxlstm.lstm(P, X, activation=3)),
    "init param_dtype int": (TypeError, ("param_dtype", "floating-point dtype", "int32"), lambda: jaxlstm.init(jax.random.key(0), I, H, param_dtype=jnp.int32)),
    "init proj_size 0": (ValueError, ("proj_size", "positive int", "0"), lambda: jaxlstm.init(jax.random.key(0), I, H, proj_size=0)),
    "zero_state dtype int": (TypeError, ("dtype", "floating-point dtype", "int32"), lambda: jaxlstm.zero_state(P, (B,), jnp.int32)),
    "zero_state batch int": (TypeError, ("batch_shape", "tuple of non-negative ints", "int 2"), lambda: jaxlstm.zero_state(P, 2)),
    "zero_state batch negative": (ValueError, ("batch_shape", "non-negative", "(-1,)"), lambda: jaxlstm.zero_state(P, (-1,))),
    "zero_state units 0": (ValueError, ("units", "positive int", "0"), lambda: jaxlstm.zero_state(0)),
    "step x_t int": (TypeError, ("x_t", "floating-point", "int32"), lambda: jaxlstm.step(P, jaxlstm.zero_state(P), jnp.ones(I, jnp.int32))),
    "step x_t scalar": (ValueError, ("x_t", "[4]", "[]"), lambda: jaxlstm.step(P, jaxlstm.zero_state(P), jnp.ones(()))),
    "step state batch": (ValueError, ("state.h", "[2, 3]", "[3, 3]"), lambda: jaxlstm.step(P, jaxlstm.zero_state(P, (3,)), jnp.ones((B, I)))),
}


@pytest.mark.parametrize("case", FUNCTIONAL.values(), ids=FUNCTIONAL.keys())
def test_functional(case) -> None:
    check(case)


def test_numpy_integer_unroll_is_accepted() -> None:
    """A numpy int (e.g. from a config array) is an int: same result as the Python int."""
    np.testing.assert_array_equal(jaxlstm.lstm(P, X, unroll=np.int64(2)).sequence, jaxlstm.lstm(P, X, unroll=2).sequence)
